#include "coffre/storage/s3_blob_store.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/slots.h"
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

// Runs `task` on a thread of its own, or in this one when no thread can be had (EAGAIN): the
// work is done either way, only not alongside the caller.
template <typename Task>
void RunInBackground(std::thread& thread, Task task) {
  try {
    thread = std::thread(task);
  } catch (const std::system_error&) {
    task();
  }
}

// How many streamed parts may await the upstream's answer while the next part streams: each holds
// a connection and a thread, no bytes. Waiting for an answer takes a round trip plus the
// upstream's own work on the part, which the next part's transfer hides.
constexpr size_t kStreamedPartsAwaitingAnswer = 3;
// Parts sent from memory (streaming refused) are held whole: one may be sent while the next
// fills, so a writer holds at most two.
constexpr size_t kMemoryPartsInFlight = 1;

// A part whose last byte is written and whose answer (its ETag) a task of its own awaits. The
// task alone touches the stream, the body, the status and the ETag until it sets `done`, and the
// writer reads them only then, or after joining it.
struct PartInFlight {
  int part_number = 0;
  std::optional<upstream::UploadStream> stream;  // streamed: the answer is read from it
  Bytes body;                                    // or sent signed, from memory
  Status status;
  std::string etag;
  std::atomic<bool> done{false};
  std::thread task;  // not joinable when the part was sent in the writer's own thread
};

// Reads are ranged GETs. One per read would cost a round trip per 64 KiB segment (tens of
// seconds for a large object over an upstream 40 ms away), so a read past what is held fetches a
// window beyond it too: 256 KiB first, doubling while the reads stay sequential, up to
// kMaxReadAhead. While they stay sequential, the windows after the one being read are fetched
// ahead, each on a thread of its own, so that the upstream's round trips and transfers overlap
// with the decryption and sending of what came before: one window at first, one more for each
// window read, up to kMaxWindowsAhead.
constexpr uint64_t kMinReadAhead = 256 * 1024;
constexpr uint64_t kMaxReadAhead = 4 * 1024 * 1024;
constexpr size_t kMaxWindowsAhead = 3;

// The read-ahead memory of a store's readers (windows held and in flight), bounded so that many
// concurrent large GETs share it rather than each holding (1 + kMaxWindowsAhead) windows of
// kMaxReadAhead. A read always gets what it needs; only what goes beyond it waits for room.
class ReadAheadBudget {
 public:
  explicit ReadAheadBudget(uint64_t limit) : limit_(limit) {}

  // Takes up to `want` bytes and at least `need`, even past the limit; 0 (nothing taken) when
  // `need` is 0 and less than `least` is free.
  uint64_t Take(uint64_t want, uint64_t need, uint64_t least) {
    uint64_t used = used_.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t free = used < limit_ ? limit_ - used : 0;
      uint64_t granted = std::max(need, std::min(want, free));
      if (granted < least && need == 0) {
        granted = 0;
      }
      if (granted == 0 || used_.compare_exchange_weak(used, used + granted, std::memory_order_relaxed)) {
        return granted;
      }
    }
  }

  void Give(uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

// Bytes of a budget, given back when the holder goes.
class BudgetGrant {
 public:
  BudgetGrant(std::shared_ptr<ReadAheadBudget> budget, uint64_t bytes) : budget_(std::move(budget)), bytes_(bytes) {}
  ~BudgetGrant() { budget_->Give(bytes_); }
  BudgetGrant(const BudgetGrant&) = delete;
  BudgetGrant& operator=(const BudgetGrant&) = delete;

 private:
  const std::shared_ptr<ReadAheadBudget> budget_;
  const uint64_t bytes_;
};

// One ranged GET of [start, start + length). When fetched ahead, its task alone touches `data`
// and `status` until the reader joins it.
struct Window {
  Window(uint64_t first, uint64_t bytes, std::shared_ptr<ReadAheadBudget> budget)
      : start(first), length(bytes), grant(std::move(budget), bytes) {}

  bool Holds(uint64_t offset) const { return offset >= start && offset - start < length; }
  uint64_t end() const { return start + length; }

  const uint64_t start;
  const uint64_t length;
  const BudgetGrant grant;
  Bytes data;
  Status status;
  std::atomic<bool> cancelled{false};  // no longer wanted: the GET stops at its next piece
  std::atomic<bool> done{false};       // fetched ahead, and its task has set `data` and `status`
  std::thread task;                    // joinable while fetched ahead and not yet joined
};

// What a failed or abandoned writer leaves upstream (its parts still awaiting their answers, and
// the multipart upload to abort once they have them) and what a dropped reader leaves (windows
// still being fetched, cancelled but not yet at their next piece). All of it waits for the
// upstream, so it is dropped on a thread of the store's own rather than on the thread that drops
// the writer or the reader (a network thread, say), which an upstream slow to answer would
// otherwise stall for every connection it serves.
class Reaper {
 public:
  struct Leftover {
    std::shared_ptr<upstream::S3Client> client;
    std::string key;
    std::string upload_id;  // empty: nothing to abort
    std::deque<std::unique_ptr<PartInFlight>> parts;
    std::deque<std::unique_ptr<Window>> windows;  // cancelled
  };

  Reaper() = default;
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // Drops what is queued first; nothing queued holds the reaper, so this never runs on its thread.
  ~Reaper() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void Add(Leftover leftover) {
    std::unique_lock lock(mu_);
    if (!thread_.joinable()) {
      try {
        thread_ = std::thread([this] { Run(); });
      } catch (const std::system_error&) {
        lock.unlock();
        Drop(leftover);  // no thread to be had (EAGAIN): dropped here, as it can be
        return;
      }
    }
    queue_.push_back(std::move(leftover));
    wake_.notify_one();
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    for (;;) {
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      Leftover leftover = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      Drop(leftover);
      lock.lock();
    }
  }

  // The parts' tasks end before the upload is aborted, which would otherwise race with a part
  // still being stored. Best effort: an upload left behind holds its parts until the bucket's
  // lifecycle rule for incomplete uploads removes it, and is never visible as an object.
  static void Drop(Leftover& leftover) {
    for (const std::unique_ptr<Window>& window : leftover.windows) {
      if (window->task.joinable()) window->task.join();
    }
    leftover.windows.clear();
    for (const std::unique_ptr<PartInFlight>& part : leftover.parts) {
      if (part->task.joinable()) part->task.join();
    }
    leftover.parts.clear();
    if (!leftover.upload_id.empty()) {
      (void)leftover.client->AbortMultipartUpload(leftover.key, leftover.upload_id);
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Leftover> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

// A blob's writer. Every error ends it: the blob can no longer be committed, and what went
// upstream is dropped (the open stream's connection closed, the multipart upload aborted once
// the parts in flight have their answers).
class S3BlobWriter final : public BlobWriter {
 public:
  S3BlobWriter(std::shared_ptr<upstream::S3Client> client, std::shared_ptr<Slots> slots, std::shared_ptr<Reaper> reaper,
               const S3BlobStoreOptions& options, std::string id, std::string key, uint64_t declared)
      : client_(std::move(client)),
        slots_(std::move(slots)),
        reaper_(std::move(reaper)),
        id_(std::move(id)),
        key_(std::move(key)),
        declared_(declared),
        part_size_(options.part_size),
        streaming_(client_->CanStream()),
        multipart_(declared > options.part_size),
        whole_in_memory_(declared <= options.single_put_max || (!multipart_ && !streaming_)),
        max_in_flight_(streaming_ ? kStreamedPartsAwaitingAnswer : kMemoryPartsInFlight) {
    if (whole_in_memory_) {
      buffer_.reserve(declared_);
    }
  }

  ~S3BlobWriter() override {
    stream_.reset();
    const bool abort = !committed_ && !upload_id_.empty();
    if (in_flight_.empty() && !abort) return;
    reaper_->Add({.client = client_,
                  .key = key_,
                  .upload_id = abort ? upload_id_ : std::string(),
                  .parts = std::move(in_flight_)});
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
    if (multipart_) {
      // Every part's answer, in part order, before the upload is completed.
      COFFRE_RETURN_IF_ERROR(Collect(0));
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

  // The parts in flight go on until they have their answers (the destructor waits for them).
  Status Fail(Status status) {
    failed_ = std::move(status);
    stream_.reset();
    buffer_ = Bytes();
    return failed_;
  }

  // Appends what fits of `data` in the current part, starting the upload and the part when
  // needed, and handing the part to a task of its own when it is full. Returns the bytes taken
  // (at least one).
  Result<size_t> AppendToPart(std::span<const uint8_t> data) {
    if (upload_id_.empty()) {
      Result<std::string> upload = client_->CreateMultipartUpload(key_);
      if (!upload.ok()) {
        return Fail(ForBlob(id_, upload.status()));
      }
      upload_id_ = std::move(upload).value();
    }
    const uint64_t part_start = parts_begun_ * part_size_;
    const uint64_t filled = size_ - part_start;
    if (filled == 0 && !stream_) {
      // A new part: first wait while the most parts are in flight, which bounds the connections
      // (streamed) or the memory (two parts) a writer holds, and notices a failed part early.
      COFFRE_RETURN_IF_ERROR(Collect(max_in_flight_));
    }
    const uint64_t part_length = std::min(part_size_, declared_ - part_start);
    const int part_number = static_cast<int>(parts_begun_) + 1;
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
      auto part = std::make_unique<PartInFlight>();
      part->part_number = part_number;
      if (streaming_) {
        part->stream = std::move(stream_);
        stream_.reset();
      } else {
        part->body = std::exchange(buffer_, Bytes());
      }
      ++parts_begun_;
      Send(std::move(part));
    }
    return taken;
  }

  // Awaits the part's answer (streamed) or sends it (from memory) on a task of its own, so that
  // the next part goes up meanwhile, when one of the store's slots is free; else here. The slots
  // are shared by all the store's writers, so that many concurrent uploads hold at most one
  // upstream request each beyond them: an upstream that answers slowly slows the uploads down
  // (their clients' bodies wait in the network buffers) rather than receiving more requests at
  // once than it can answer before they time out.
  void Send(std::unique_ptr<PartInFlight> part) {
    PartInFlight* const sent = part.get();
    in_flight_.push_back(std::move(part));
    // The task may outlive the writer (Reaper): it holds what it needs, not the writer.
    const auto answer = [client = client_, key = key_, upload_id = upload_id_, sent](Slots* slot_held) {
      Result<std::string> etag =
          sent->stream ? sent->stream->Finish() : client->UploadPart(key, upload_id, sent->part_number, sent->body);
      sent->stream.reset();
      sent->body = Bytes();
      if (etag.ok()) {
        sent->etag = std::move(etag).value();
      } else {
        sent->status = etag.status();
      }
      // Given back first, so that a writer that sees this part done finds the slot free.
      if (slot_held != nullptr) slot_held->Release();
      sent->done.store(true, std::memory_order_release);
    };
    if (slots_->TryTake()) {
      RunInBackground(sent->task, [answer, slots = slots_] { answer(slots.get()); });
    } else {
      answer(nullptr);
    }
  }

  // Takes the answers of the parts in flight into parts_, oldest first (so in part order): all
  // that have arrived, and while more than `keep` parts are in flight, the oldest's after waiting
  // for it. A failed part fails the writer, also when an earlier one has no answer yet.
  Status Collect(size_t keep) {
    while (!in_flight_.empty() &&
           (in_flight_.size() > keep || in_flight_.front()->done.load(std::memory_order_acquire))) {
      const std::unique_ptr<PartInFlight> part = std::move(in_flight_.front());
      in_flight_.pop_front();
      if (part->task.joinable()) part->task.join();
      if (!part->status.ok()) {
        return Fail(ForBlob(id_, part->status));
      }
      parts_.push_back({.part_number = part->part_number, .etag = std::move(part->etag)});
    }
    for (const std::unique_ptr<PartInFlight>& part : in_flight_) {
      if (part->done.load(std::memory_order_acquire) && !part->status.ok()) {
        return Fail(ForBlob(id_, part->status));
      }
    }
    return Status::Ok();
  }

  const std::shared_ptr<upstream::S3Client> client_;
  const std::shared_ptr<Slots> slots_;    // the store's, which the parts' tasks may outlive
  const std::shared_ptr<Reaper> reaper_;  // the store's, which the writer may outlive
  const std::string id_;
  const std::string key_;
  const uint64_t declared_;
  const uint64_t part_size_;
  const bool streaming_;        // the client may stream bodies (TLS, or a loopback address)
  const bool multipart_;        // larger than one part
  const bool whole_in_memory_;  // held whole and sent at Commit: small, or one part not streamable
  const size_t max_in_flight_;  // parts in flight at most when the next one begins
  uint64_t size_ = 0;
  Bytes buffer_;  // the whole blob, or the current part when streaming was refused
  std::optional<upstream::UploadStream> stream_;
  std::string upload_id_;     // set before the first part goes, unchanged while parts are in flight
  uint64_t parts_begun_ = 0;  // parts handed to their tasks (in flight or answered)
  std::deque<std::unique_ptr<PartInFlight>> in_flight_;
  std::vector<upstream::CompletedPart> parts_;  // the answered parts, in order
  Status failed_;
  bool committed_ = false;
};

// One ranged GET of the window, on the reader's thread or on the window's task, which may outlive
// the reader (Reaper): it is given what it needs, not the reader.
Status FetchWindow(upstream::S3Client& client, const std::string& id, const std::string& key, Window& window) {
  window.data.reserve(static_cast<size_t>(window.length));
  const Result<upstream::ObjectInfo> info = client.GetObject(
      key,
      [&](ByteView piece) {
        if (window.cancelled.load(std::memory_order_relaxed)) {
          return Status::Aborted("blob " + id + ": read ahead, then no longer needed");
        }
        if (piece.size() > window.length - window.data.size()) {
          return Status::Corruption("blob " + id + ": the upstream sent more than the range asked for");
        }
        window.data.insert(window.data.end(), piece.begin(), piece.end());
        return Status::Ok();
      },
      upstream::ByteRange{.first = window.start, .last = window.end() - 1});
  const uint64_t received = window.data.size();
  if (!info.ok() || received != window.length) window.data = Bytes();  // never serve part of a failed fetch
  if (!info.ok()) {
    if (info.status().code() == StatusCode::kOutOfRange || info.status().code() == StatusCode::kCorruption) {
      return Status::Corruption("blob " + id + ": shorter upstream than when opened: " + info.status().message());
    }
    return ForBlob(id, info.status());
  }
  if (received != window.length) {
    return Status::Corruption("blob " + id + ": the upstream sent " + std::to_string(received) + " bytes of the " +
                              std::to_string(window.length) + " asked for at " + std::to_string(window.start));
  }
  return Status::Ok();
}

class S3BlobReader final : public BlobReader {
 public:
  S3BlobReader(std::shared_ptr<upstream::S3Client> client, std::shared_ptr<ReadAheadBudget> budget,
               std::shared_ptr<Reaper> reaper, std::string id, std::string key, uint64_t size, Bytes head)
      : client_(std::move(client)),
        budget_(std::move(budget)),
        reaper_(std::move(reaper)),
        id_(std::move(id)),
        key_(std::move(key)),
        size_(size),
        head_(std::move(head)) {}

  ~S3BlobReader() override { DropAhead(); }

  S3BlobReader(const S3BlobReader&) = delete;
  S3BlobReader& operator=(const S3BlobReader&) = delete;

  uint64_t size() const override { return size_; }

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) const override {
    if (offset > size_ || out.size() > size_ - offset) {
      return Status::Corruption("blob " + id_ + ": read of " + std::to_string(out.size()) + " bytes at " +
                                std::to_string(offset) + " past its end (" + std::to_string(size_) + " bytes)");
    }
    // What the prefetched head holds is copied; then what the windows hold; the rest is fetched.
    if (offset < head_.size()) {
      const auto from_head = static_cast<size_t>(std::min<uint64_t>(out.size(), head_.size() - offset));
      std::memcpy(out.data(), head_.data() + offset, from_head);
      offset += from_head;
      out = out.subspan(from_head);
    }
    std::lock_guard lock(mu_);
    while (!out.empty()) {
      if (held_ && held_->Holds(offset)) {
        const auto n = static_cast<size_t>(std::min<uint64_t>(out.size(), held_->end() - offset));
        std::memcpy(out.data(), held_->data.data() + (offset - held_->start), n);
        offset += n;
        out = out.subspan(n);
        continue;
      }
      if (!ahead_.empty() && ahead_.front()->Holds(offset)) {
        // The read goes on into the window fetched ahead: it becomes the held one once in.
        std::unique_ptr<Window> next = std::move(ahead_.front());
        ahead_.pop_front();
        next->task.join();
        held_.reset();
        Status fetched = next->status;
        if (fetched.code() == StatusCode::kUnavailable) {
          // A transient failure is tried again here, with the client's retries, as without
          // read-ahead; the windows after it go on.
          fetched = Fetch(*next);
        }
        if (!fetched.ok()) {
          DropAhead();
          return fetched;
        }
        held_ = std::move(next);
        windows_ahead_ = std::min(kMaxWindowsAhead, windows_ahead_ + 1);
        FetchAhead();
        continue;
      }
      // A read right after the held window (or the head) is sequential: the next window is larger,
      // and the ones after it are fetched ahead. Any other read drops what is in flight.
      const bool sequential = (held_ && offset == held_->end()) || offset == head_.size();
      DropAhead();
      held_.reset();
      ahead_size_ = sequential ? std::min(kMaxReadAhead, std::max(kMinReadAhead, ahead_size_ * 2)) : kMinReadAhead;
      windows_ahead_ = 1;
      const uint64_t need = std::min(size_ - offset, std::max<uint64_t>(out.size(), kMinReadAhead));
      const uint64_t want = std::min(size_ - offset, std::max<uint64_t>(out.size(), ahead_size_));
      auto window = std::make_unique<Window>(offset, budget_->Take(want, need, 0), budget_);
      COFFRE_RETURN_IF_ERROR(Fetch(*window));
      held_ = std::move(window);
      if (sequential) {
        FetchAhead();
      }
    }
    return Status::Ok();
  }

 private:
  // Starts fetching the windows after the held one (and after those in flight), each twice the
  // size of the one before up to kMaxReadAhead, until windows_ahead_ are in flight, the blob ends,
  // or the budget has no room for one of at least kMinReadAhead.
  void FetchAhead() const {
    while (ahead_.size() < windows_ahead_) {
      const uint64_t start = ahead_.empty() ? held_->end() : ahead_.back()->end();
      if (start >= size_) {
        return;
      }
      const uint64_t want = std::min(size_ - start, std::min(kMaxReadAhead, ahead_size_ * 2));
      const uint64_t length = budget_->Take(want, 0, std::min(want, kMinReadAhead));
      if (length == 0) {
        return;
      }
      ahead_size_ = length;
      auto window = std::make_unique<Window>(start, length, budget_);
      Window* const fetched = window.get();
      try {
        fetched->task = std::thread([client = client_, id = id_, key = key_, fetched] {
          fetched->status = FetchWindow(*client, id, key, *fetched);
          fetched->done.store(true, std::memory_order_release);
        });
      } catch (const std::system_error&) {
        return;  // no thread to be had (EAGAIN): the window is fetched when it is read
      }
      ahead_.push_back(std::move(window));
    }
  }

  // Stops the windows in flight at their next piece. Those whose tasks have ended are dropped
  // here; the others go to the store's thread, which waits for them, since a stalled upstream
  // may hold a piece back until the client's timeout.
  void DropAhead() const {
    std::deque<std::unique_ptr<Window>> running;
    for (std::unique_ptr<Window>& window : ahead_) {
      window->cancelled.store(true, std::memory_order_relaxed);
      if (window->done.load(std::memory_order_acquire)) {
        window->task.join();
      } else {
        running.push_back(std::move(window));
      }
    }
    ahead_.clear();
    if (!running.empty()) {
      reaper_->Add({.client = client_, .windows = std::move(running)});
    }
  }

  Status Fetch(Window& window) const { return FetchWindow(*client_, id_, key_, window); }

  const std::shared_ptr<upstream::S3Client> client_;
  const std::shared_ptr<ReadAheadBudget> budget_;
  const std::shared_ptr<Reaper> reaper_;  // the store's, which the reader may outlive
  const std::string id_;
  const std::string key_;
  const uint64_t size_;
  const Bytes head_;  // the blob's first min(size, kPrefetch) bytes
  // The windows: ReadAt is const, and a reader may be shared by a request's threads.
  mutable std::mutex mu_;
  mutable std::unique_ptr<Window> held_;               // the window reads are served from
  mutable std::deque<std::unique_ptr<Window>> ahead_;  // in flight, each starting where the one before ends
  mutable uint64_t ahead_size_ = 0;                    // the last window's size
  mutable size_t windows_ahead_ = 1;                   // how many may be in flight now
};

class S3BlobStore final : public BlobStore {
 public:
  S3BlobStore(std::shared_ptr<upstream::S3Client> client, S3BlobStoreOptions options)
      : client_(std::move(client)),
        options_(std::move(options)),
        budget_(std::make_shared<ReadAheadBudget>(options_.read_ahead_budget)),
        answer_slots_(std::make_shared<Slots>(options_.parts_awaiting_answer)),
        reaper_(std::make_shared<Reaper>()) {}

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
    return std::unique_ptr<BlobWriter>(
        new S3BlobWriter(client_, answer_slots_, reaper_, options_, blob_id, std::move(key), *expected_size));
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
    return std::unique_ptr<BlobReader>(
        new S3BlobReader(client_, budget_, reaper_, blob_id, std::move(key), info->size, std::move(head)));
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
  const std::shared_ptr<ReadAheadBudget> budget_;  // shared with the readers, which may outlive the store
  const std::shared_ptr<Slots> answer_slots_;      // for parts awaiting their answer, see S3BlobWriter::Send
  const std::shared_ptr<Reaper> reaper_;
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
