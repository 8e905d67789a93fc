#include "coffre/storage/s3_blob_store.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "storage/blob_id.h"

namespace coffre::storage {
namespace {

constexpr uint64_t kMinPartSize = uint64_t{5} << 20;
constexpr uint64_t kMaxPartSize = uint64_t{5} << 30;
constexpr uint64_t kMaxParts = 10'000;  // S3's limit per multipart upload
// Open reads this much from the start of the blob at once: the blob format's header is there, and
// a small blob is then read with that one GET.
constexpr uint64_t kPrefetch = 64 * 1024;

// The client's error, its code kept, its message prefixed with the blob it concerns.
Status ForBlob(const std::string& id, const Status& status) {
  return Status(status.code(), "blob " + id + ": " + status.message());
}

// A blob's writer. Every error ends it: the blob can no longer be committed, and what went
// upstream is dropped (the open stream's connection closed, the multipart upload aborted).
class S3BlobWriter final : public BlobWriter {
 public:
  S3BlobWriter(std::shared_ptr<upstream::S3Client> client, const S3BlobStoreOptions& options, std::string id,
               std::string key, uint64_t declared)
      : client_(std::move(client)),
        id_(std::move(id)),
        key_(std::move(key)),
        declared_(declared),
        part_size_(options.part_size),
        streaming_(client_->CanStream()),
        multipart_(declared > options.part_size),
        whole_in_memory_(declared <= options.single_put_max || (!multipart_ && !streaming_)) {
    if (whole_in_memory_) {
      buffer_.reserve(declared_);
    }
  }

  ~S3BlobWriter() override {
    stream_.reset();
    if (!committed_ && !upload_id_.empty()) {
      // Best effort: an upload left behind holds its parts until the bucket's lifecycle rule for
      // incomplete uploads removes it, and is never visible as an object.
      (void)client_->AbortMultipartUpload(key_, upload_id_);
    }
  }

  S3BlobWriter(const S3BlobWriter&) = delete;
  S3BlobWriter& operator=(const S3BlobWriter&) = delete;

  const std::string& id() const override { return id_; }
  uint64_t size() const override { return size_; }

  Status WriteAt(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) override {
    return Status::InvalidArgument("blob " + id_ + ": an upstream blob is written in order only (no WriteAt)");
  }

  Status Append(std::span<const uint8_t> data) override {
    COFFRE_RETURN_IF_ERROR(Usable());
    if (data.size() > declared_ - size_) {
      return Fail(Status::InvalidArgument("blob " + id_ + ": appending " + std::to_string(data.size()) +
                                          " bytes would pass its declared size of " + std::to_string(declared_)));
    }
    if (whole_in_memory_) {
      buffer_.insert(buffer_.end(), data.begin(), data.end());
      size_ += data.size();
      return Status::Ok();
    }
    if (!multipart_) {
      if (!stream_) {
        Result<upstream::UploadStream> stream = client_->BeginPutObject(key_, declared_);
        if (!stream.ok()) {
          return Fail(ForBlob(id_, stream.status()));
        }
        stream_.emplace(std::move(stream).value());
      }
      if (Status written = stream_->Write(data); !written.ok()) {
        return Fail(ForBlob(id_, written));
      }
      size_ += data.size();
      return Status::Ok();
    }
    while (!data.empty()) {
      COFFRE_ASSIGN_OR_RETURN(const size_t taken, AppendToPart(data));
      data = data.subspan(taken);
    }
    return Status::Ok();
  }

  Status Commit() override {
    COFFRE_RETURN_IF_ERROR(Usable());
    if (size_ != declared_) {
      return Fail(Status::InvalidArgument("blob " + id_ + ": " + std::to_string(size_) + " bytes written of the " +
                                          std::to_string(declared_) + " declared"));
    }
    // A single streamed PUT was begun by the first Append (the blob is larger than
    // single_put_max, so not empty).
    Result<std::string> etag = whole_in_memory_ ? client_->PutObject(key_, buffer_)
                               : multipart_     ? client_->CompleteMultipartUpload(key_, upload_id_, parts_)
                                                : stream_->Finish();
    stream_.reset();
    if (!etag.ok()) {
      return Fail(ForBlob(id_, etag.status()));
    }
    committed_ = true;
    upload_id_.clear();
    buffer_ = Bytes();
    return Status::Ok();
  }

 private:
  Status Usable() const {
    if (committed_) {
      return Status::FailedPrecondition("blob " + id_ + ": already committed");
    }
    return failed_;
  }

  Status Fail(Status status) {
    failed_ = std::move(status);
    stream_.reset();
    buffer_ = Bytes();
    return failed_;
  }

  // Appends what fits of `data` in the current part, starting the upload and the part when
  // needed and finishing the part when it is full. Returns the bytes taken (at least one).
  Result<size_t> AppendToPart(std::span<const uint8_t> data) {
    if (upload_id_.empty()) {
      Result<std::string> upload = client_->CreateMultipartUpload(key_);
      if (!upload.ok()) {
        return Fail(ForBlob(id_, upload.status()));
      }
      upload_id_ = std::move(upload).value();
    }
    const uint64_t part_start = parts_.size() * part_size_;
    const uint64_t part_length = std::min(part_size_, declared_ - part_start);
    const int part_number = static_cast<int>(parts_.size()) + 1;
    const uint64_t filled = size_ - part_start;
    const auto taken = static_cast<size_t>(std::min<uint64_t>(data.size(), part_length - filled));
    const std::span<const uint8_t> piece = data.first(taken);
    if (streaming_) {
      if (!stream_) {
        Result<upstream::UploadStream> stream = client_->BeginUploadPart(key_, upload_id_, part_number, part_length);
        if (!stream.ok()) {
          return Fail(ForBlob(id_, stream.status()));
        }
        stream_.emplace(std::move(stream).value());
      }
      if (Status written = stream_->Write(piece); !written.ok()) {
        return Fail(ForBlob(id_, written));
      }
    } else {
      // Streaming was refused (plain http to a remote host): the part is sent signed, from memory.
      if (buffer_.empty()) {
        buffer_.reserve(part_length);
      }
      buffer_.insert(buffer_.end(), piece.begin(), piece.end());
    }
    size_ += taken;
    if (filled + taken == part_length) {
      Result<std::string> etag =
          streaming_ ? stream_->Finish() : client_->UploadPart(key_, upload_id_, part_number, buffer_);
      stream_.reset();
      buffer_.clear();
      if (!etag.ok()) {
        return Fail(ForBlob(id_, etag.status()));
      }
      parts_.push_back({.part_number = part_number, .etag = std::move(etag).value()});
    }
    return taken;
  }

  const std::shared_ptr<upstream::S3Client> client_;
  const std::string id_;
  const std::string key_;
  const uint64_t declared_;
  const uint64_t part_size_;
  const bool streaming_;        // the client may stream bodies (TLS, or a loopback address)
  const bool multipart_;        // larger than one part
  const bool whole_in_memory_;  // held whole and sent at Commit: small, or one part not streamable
  uint64_t size_ = 0;
  Bytes buffer_;  // the whole blob, or the current part when streaming was refused
  std::optional<upstream::UploadStream> stream_;
  std::string upload_id_;
  std::vector<upstream::CompletedPart> parts_;
  Status failed_;
  bool committed_ = false;
};

// Reads are ranged GETs. One per read would cost a round trip per 64 KiB segment (tens of
// seconds for a large object over an upstream 40 ms away), so a read past what is held fetches a
// window beyond it too: 256 KiB first, doubling while the reads stay sequential, up to
// kMaxReadAhead. At most one window per reader is held.
constexpr uint64_t kMinReadAhead = 256 * 1024;
constexpr uint64_t kMaxReadAhead = 4 * 1024 * 1024;

class S3BlobReader final : public BlobReader {
 public:
  S3BlobReader(std::shared_ptr<upstream::S3Client> client, std::string id, std::string key, uint64_t size, Bytes head)
      : client_(std::move(client)), id_(std::move(id)), key_(std::move(key)), size_(size), head_(std::move(head)) {}

  uint64_t size() const override { return size_; }

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) const override {
    if (offset > size_ || out.size() > size_ - offset) {
      return Status::Corruption("blob " + id_ + ": read of " + std::to_string(out.size()) + " bytes at " +
                                std::to_string(offset) + " past its end (" + std::to_string(size_) + " bytes)");
    }
    // What the prefetched head holds is copied; then what the window holds; the rest is fetched.
    if (offset < head_.size()) {
      const auto from_head = static_cast<size_t>(std::min<uint64_t>(out.size(), head_.size() - offset));
      std::memcpy(out.data(), head_.data() + offset, from_head);
      offset += from_head;
      out = out.subspan(from_head);
    }
    std::lock_guard lock(mu_);
    while (!out.empty()) {
      if (offset >= window_start_ && offset < window_start_ + window_.size()) {
        const auto n = static_cast<size_t>(std::min<uint64_t>(out.size(), window_start_ + window_.size() - offset));
        std::memcpy(out.data(), window_.data() + (offset - window_start_), n);
        offset += n;
        out = out.subspan(n);
        continue;
      }
      // A read right after the window (or the head) is sequential: the next window is larger.
      const bool sequential = offset == window_start_ + window_.size() || offset == head_.size();
      ahead_ = sequential ? std::min(kMaxReadAhead, std::max(kMinReadAhead, ahead_ * 2)) : kMinReadAhead;
      const uint64_t length = std::min(size_ - offset, std::max<uint64_t>(out.size(), ahead_));
      COFFRE_RETURN_IF_ERROR(Fetch(offset, length));
    }
    return Status::Ok();
  }

 private:
  // One ranged GET of [offset, offset + length) into the window.
  Status Fetch(uint64_t offset, uint64_t length) const {
    window_.clear();
    window_start_ = offset;
    window_.reserve(static_cast<size_t>(length));
    const Result<upstream::ObjectInfo> info = client_->GetObject(
        key_,
        [&](ByteView piece) {
          if (piece.size() > length - window_.size()) {
            return Status::Corruption("blob " + id_ + ": the upstream sent more than the range asked for");
          }
          window_.insert(window_.end(), piece.begin(), piece.end());
          return Status::Ok();
        },
        upstream::ByteRange{.first = offset, .last = offset + length - 1});
    const uint64_t received = window_.size();
    if (!info.ok() || received != length) window_.clear();  // never serve part of a failed fetch
    if (!info.ok()) {
      if (info.status().code() == StatusCode::kOutOfRange || info.status().code() == StatusCode::kCorruption) {
        return Status::Corruption("blob " + id_ + ": shorter upstream than when opened: " + info.status().message());
      }
      return ForBlob(id_, info.status());
    }
    if (received != length) {
      return Status::Corruption("blob " + id_ + ": the upstream sent " + std::to_string(received) + " bytes of the " +
                                std::to_string(length) + " asked for at " + std::to_string(offset));
    }
    return Status::Ok();
  }

  const std::shared_ptr<upstream::S3Client> client_;
  const std::string id_;
  const std::string key_;
  const uint64_t size_;
  const Bytes head_;  // the blob's first min(size, kPrefetch) bytes
  // The read-ahead window: ReadAt is const, and a reader may be shared by a request's threads.
  mutable std::mutex mu_;
  mutable Bytes window_;
  mutable uint64_t window_start_ = 0;
  mutable uint64_t ahead_ = 0;  // the last window's size
};

class S3BlobStore final : public BlobStore {
 public:
  S3BlobStore(std::shared_ptr<upstream::S3Client> client, S3BlobStoreOptions options)
      : client_(std::move(client)), options_(std::move(options)) {}

  Result<std::unique_ptr<BlobWriter>> CreateBlob(std::optional<uint64_t> expected_size) override {
    return Create(RandomId(16), expected_size);
  }

  uint64_t MaxPackedBlob() const override { return 0; }

  Result<std::unique_ptr<BlobWriter>> Create(const std::string& blob_id,
                                             std::optional<uint64_t> expected_size) override {
    COFFRE_RETURN_IF_ERROR(CheckId(blob_id));
    if (!expected_size) {
      return Status::InvalidArgument("an upstream blob needs its size declared when it is created");
    }
    if (*expected_size > options_.part_size * kMaxParts) {
      return Status::InvalidArgument("a blob of " + std::to_string(*expected_size) + " bytes needs more than " +
                                     std::to_string(kMaxParts) + " parts of " + std::to_string(options_.part_size) +
                                     " bytes");
    }
    std::string key = KeyOf(blob_id);
    return std::unique_ptr<BlobWriter>(new S3BlobWriter(client_, options_, blob_id, std::move(key), *expected_size));
  }

  Result<std::unique_ptr<BlobReader>> Open(const std::string& blob_id) const override {
    COFFRE_RETURN_IF_ERROR(CheckId(blob_id));
    std::string key = KeyOf(blob_id);
    Bytes head;
    Result<upstream::ObjectInfo> info = client_->GetObject(
        key,
        [&](ByteView piece) {
          if (head.size() + piece.size() > kPrefetch) {
            return Status::Corruption("blob " + blob_id + ": the upstream sent more than the range asked for");
          }
          head.insert(head.end(), piece.begin(), piece.end());
          return Status::Ok();
        },
        upstream::ByteRange{.first = 0, .last = kPrefetch - 1});
    if (!info.ok() && info.status().code() == StatusCode::kOutOfRange) {
      // An empty object has no first byte to range over.
      head.clear();
      info = client_->HeadObject(key);
    }
    if (!info.ok()) {
      return ForBlob(blob_id, info.status());
    }
    if (head.size() != std::min(info->size, kPrefetch)) {
      return Status::Corruption("blob " + blob_id + ": the upstream sent " + std::to_string(head.size()) +
                                " bytes of its first " + std::to_string(std::min(info->size, kPrefetch)));
    }
    return std::unique_ptr<BlobReader>(new S3BlobReader(client_, blob_id, std::move(key), info->size, std::move(head)));
  }

  Status Remove(const std::string& blob_id) override {
    COFFRE_RETURN_IF_ERROR(CheckId(blob_id));
    const Status removed = client_->DeleteObject(KeyOf(blob_id));
    return removed.ok() ? removed : ForBlob(blob_id, removed);
  }

  // Nothing is kept locally. Uploads a crash left unfinished are not looked for: the bucket's
  // lifecycle rule for incomplete multipart uploads removes them.
  Result<uint64_t> RemoveTemporaries() override { return uint64_t{0}; }

  Result<std::vector<StoredFile>> ListBlobs(std::vector<std::string>* strays) const override {
    std::vector<StoredFile> blobs;
    upstream::ListRequest request{.prefix = options_.prefix, .max_keys = options_.list_page_size};
    do {
      COFFRE_ASSIGN_OR_RETURN(upstream::ListPage page, client_->ListObjectsV2(request));
      for (upstream::ListedObject& object : page.objects) {
        std::optional<std::string> id = IdOfKey(object.key);
        if (id) {
          blobs.push_back({.name = std::move(*id), .size = object.size, .modified_unix = object.last_modified / 1000});
        } else if (strays != nullptr) {
          strays->push_back("s3://" + client_->bucket() + "/" + object.key);
        }
      }
      request.continuation_token = std::move(page.next_continuation_token);
    } while (!request.continuation_token.empty());
    return blobs;
  }

  Status RemoveStray(const std::string& stray) override {
    return Status::InvalidArgument(stray + " is not a blob: not Coffre's to remove");
  }

  Result<std::vector<StoredFile>> ListTemporaries() const override { return std::vector<StoredFile>(); }

  Status RemoveTemporary(const std::string& /*name*/) override { return Status::Ok(); }

 private:
  static Status CheckId(const std::string& blob_id) {
    return IsValidBlobId(blob_id) ? Status::Ok() : Status::InvalidArgument("not a blob id: " + blob_id);
  }

  std::string KeyOf(const std::string& id) const { return options_.prefix + id.substr(0, 4) + "/" + id; }

  // The blob id a listed key names: prefix, the id's first four digits, '/', the id.
  std::optional<std::string> IdOfKey(std::string_view key) const {
    if (!key.starts_with(options_.prefix)) {
      return std::nullopt;
    }
    key.remove_prefix(options_.prefix.size());
    if (key.size() < 5 || key[4] != '/') {
      return std::nullopt;
    }
    const std::string_view id = key.substr(5);
    if (!IsValidBlobId(id) || id.substr(0, 4) != key.substr(0, 4)) {
      return std::nullopt;
    }
    return std::string(id);
  }

  const std::shared_ptr<upstream::S3Client> client_;
  const S3BlobStoreOptions options_;
};

}  // namespace

Result<std::unique_ptr<BlobStore>> OpenS3BlobStore(std::unique_ptr<upstream::S3Client> client,
                                                   S3BlobStoreOptions options) {
  if (client == nullptr) {
    return Status::InvalidArgument("upstream blob store: no client");
  }
  if (options.part_size < kMinPartSize || options.part_size > kMaxPartSize) {
    return Status::InvalidArgument("upstream blob store: part_size " + std::to_string(options.part_size) +
                                   " is outside S3's bounds (5 MiB to 5 GiB)");
  }
  if (options.single_put_max > options.part_size) {
    return Status::InvalidArgument("upstream blob store: single_put_max " + std::to_string(options.single_put_max) +
                                   " is above part_size, which bounds what a writer holds in memory");
  }
  if (options.list_page_size < 1 || options.list_page_size > 1000) {
    return Status::InvalidArgument("upstream blob store: list_page_size " + std::to_string(options.list_page_size) +
                                   " is outside 1 to 1000");
  }
  return std::unique_ptr<BlobStore>(new S3BlobStore(std::move(client), std::move(options)));
}

}  // namespace coffre::storage
