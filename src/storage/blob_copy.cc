#include "coffre/storage/blob_copy.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "coffre/crypto/hash.h"

namespace coffre::storage {
namespace {

// Bytes read and written at a time by each job.
constexpr size_t kChunk = size_t{1} << 20;

// How one blob's copy ended.
enum class Outcome { kCopied, kGone, kFailed };

struct Copied {
  Outcome outcome = Outcome::kFailed;
  uint64_t bytes = 0;
  std::string why;  // kFailed
};

Copied Failed(std::string why) { return {Outcome::kFailed, 0, std::move(why)}; }

// The SHA-256 of a blob's bytes as `store` returns them.
Result<crypto::Sha256Digest> HashOf(const BlobStore& store, const std::string& id, uint64_t size, Bytes& buffer) {
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader, store.Open(id));
  if (reader->size() != size) {
    return Status::Corruption(std::to_string(reader->size()) + " bytes, " + std::to_string(size) + " written");
  }
  crypto::Sha256 hash;
  for (uint64_t at = 0; at < size;) {
    const auto n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - at));
    COFFRE_RETURN_IF_ERROR(reader->ReadAt(at, std::span<uint8_t>(buffer).first(n)));
    hash.Update(ByteView(buffer).first(n));
    at += n;
  }
  return hash.Final();
}

Copied CopyOne(const BlobStore& from, BlobStore& to, const std::string& id, const BlobCopyOptions& options,
               Bytes& buffer) {
  auto reader = from.Open(id);
  if (!reader.ok()) {
    if (reader.status().code() == StatusCode::kNotFound) return {Outcome::kGone, 0, ""};
    return Failed("reading the source: " + reader.status().message());
  }
  const uint64_t size = (*reader)->size();
  auto writer = to.Create(id, size);
  if (!writer.ok()) return Failed("creating the copy: " + writer.status().message());
  crypto::Sha256 hash;
  for (uint64_t at = 0; at < size;) {
    const auto n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - at));
    const std::span<uint8_t> piece = std::span<uint8_t>(buffer).first(n);
    if (Status st = (*reader)->ReadAt(at, piece); !st.ok()) return Failed("reading the source: " + st.message());
    hash.Update(piece);
    if (Status st = (*writer)->Append(piece); !st.ok()) return Failed("writing the copy: " + st.message());
    at += n;
  }
  if (Status st = (*writer)->Commit(); !st.ok()) return Failed("committing the copy: " + st.message());
  if (options.verify) {
    auto copied = HashOf(to, id, size, buffer);
    if (!copied.ok() || *copied != hash.Final()) {
      const std::string why = copied.ok() ? "the copy read back differs from the source" : copied.status().message();
      (void)to.Remove(id);  // never leave a copy that is not the blob
      return Failed("verifying the copy: " + why);
    }
  }
  return {Outcome::kCopied, size, ""};
}

}  // namespace

Result<BlobCopyReport> CopyBlobs(const BlobStore& from, BlobStore& to, const BlobCopyOptions& options) {
  if (options.jobs < 1 || options.jobs > 64) return Status::InvalidArgument("jobs must be from 1 to 64");
  COFFRE_ASSIGN_OR_RETURN(std::vector<StoredFile> source, from.ListBlobs(nullptr));
  COFFRE_ASSIGN_OR_RETURN(std::vector<StoredFile> there, to.ListBlobs(nullptr));
  std::unordered_map<std::string, uint64_t> sizes_there;
  for (const StoredFile& f : there) sizes_there.emplace(f.name, f.size);

  BlobCopyReport report;
  report.listed = source.size();
  std::vector<const StoredFile*> todo;
  for (const StoredFile& f : source) {
    auto it = sizes_there.find(f.name);
    if (it == sizes_there.end()) {
      todo.push_back(&f);
    } else if (it->second == f.size) {
      ++report.already_there;
    } else {
      report.failed.push_back(f.name + ": the destination holds " + std::to_string(it->second) +
                              " bytes under this id, the source " + std::to_string(f.size) + " (both left alone)");
    }
  }

  std::mutex mu;  // guards report
  std::atomic<size_t> next{0};
  const auto job = [&] {
    Bytes buffer(kChunk);
    for (size_t i = next.fetch_add(1); i < todo.size(); i = next.fetch_add(1)) {
      {
        std::lock_guard lock(mu);
        if (report.failed.size() >= options.max_failures) return;
      }
      const std::string& id = todo[i]->name;
      Copied copied = CopyOne(from, to, id, options, buffer);
      std::lock_guard lock(mu);
      switch (copied.outcome) {
        case Outcome::kCopied:
          ++report.copied;
          report.bytes_copied += copied.bytes;
          break;
        case Outcome::kGone:
          ++report.gone;
          break;
        case Outcome::kFailed:
          report.failed.push_back(id + ": " + copied.why);
          break;
      }
      if (options.progress) options.progress(report);
    }
  };
  std::vector<std::thread> jobs;
  const auto n = static_cast<size_t>(options.jobs);
  for (size_t j = 1; j < std::min(n, todo.size()); ++j) jobs.emplace_back(job);
  job();
  for (std::thread& t : jobs) t.join();
  return report;
}

}  // namespace coffre::storage
