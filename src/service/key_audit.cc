#include "key_audit.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

namespace coffre::service::internal {
namespace {

class AuditedReader final : public ObjectReader {
 public:
  AuditedReader(std::unique_ptr<ObjectReader> inner, audit::Recorder* recorder, audit::Event event)
      : inner_(std::move(inner)), recorder_(recorder), event_(std::move(event)) {}

  const ObjectInfo& info() const override { return inner_->info(); }
  SResult<Done> SetRange(uint64_t first, uint64_t last) override { return inner_->SetRange(first, last); }
  uint64_t remaining() const override { return inner_->remaining(); }
  void WhenReadable(std::function<void()> ready) override { inner_->WhenReadable(std::move(ready)); }
  bool NextReadInMemory() const override { return inner_->NextReadInMemory(); }

  SResult<size_t> Read(std::span<uint8_t> out) override {
    auto r = inner_->Read(out);
    if (!r.ok() && r.error().code == Errc::kCorruption && !recorded_) {
      recorded_ = true;
      RecordKeyFailure(recorder_, event_, Status::Corruption(r.error().message));
    }
    return r;
  }

 private:
  std::unique_ptr<ObjectReader> inner_;
  audit::Recorder* recorder_;
  audit::Event event_;
  bool recorded_ = false;
};

}  // namespace

audit::Event KeyEvent(audit::Operation operation, const catalog::Bucket& bucket, const std::string& key,
                      const std::string& object_id, ByteView tenant_key_id, uint32_t key_version,
                      const RequestInfo* request) {
  audit::Event ev;
  ev.operation = operation;
  ev.tenant = bucket.tenant_id;
  ev.key_id = HexEncode(tenant_key_id);
  ev.key_version = key_version;
  ev.bucket = bucket.name;
  ev.object_key = key;
  ev.object_id = object_id;
  if (request != nullptr) {
    ev.request = *request;
  }
  return ev;
}

audit::Event LifecycleEvent(audit::Operation operation, const keystore::KeyRef& key, uint32_t key_version,
                            const RequestInfo& request) {
  audit::Event ev;
  ev.operation = operation;
  ev.tenant = key.tenant_id;
  ev.key_id = key.key_id;
  ev.key_version = key_version;
  ev.request = request;
  return ev;
}

std::vector<Status> RecordEach(audit::Recorder* recorder, const std::vector<audit::Event>& events) {
  std::vector<Status> results(events.size());
  if (recorder == nullptr) {
    return results;
  }
  // Each Record() blocks until its batch is durable: callers waiting together share one commit.
  // A few threads are enough to fill a batch while the previous one is being synced.
  constexpr size_t kMaxThreads = 16;
  const size_t n_threads = std::min(kMaxThreads, events.size());
  if (n_threads <= 1) {
    for (size_t i = 0; i < events.size(); ++i) {
      results[i] = recorder->Record(events[i]);
    }
    return results;
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < events.size(); i = next++) {
      results[i] = recorder->Record(events[i]);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(n_threads - 1);
  for (size_t t = 1; t < n_threads; ++t) {
    threads.emplace_back(work);
  }
  work();
  for (auto& t : threads) {
    t.join();
  }
  return results;
}

std::optional<Error> RecordKeyUse(audit::Recorder* recorder, const audit::Event& event) {
  return AwaitKeyUse(StartKeyUse(recorder, event).get(), event);
}

std::unique_ptr<audit::PendingRecord> StartKeyUse(audit::Recorder* recorder, const audit::Event& event) {
  if (recorder == nullptr) {
    return nullptr;
  }
  return recorder->Start(event);
}

std::optional<Error> AwaitKeyUse(audit::PendingRecord* pending, const audit::Event& event) {
  if (pending == nullptr) {
    return std::nullopt;
  }
  Status st = pending->Wait();
  if (st.ok()) {
    return std::nullopt;
  }
  spdlog::error("[{}] key use refused: the audit log cannot record {} ({})", event.request.request_id,
                audit::OperationName(event.operation), st.ToString());
  return Error{Errc::kUnavailable, "the audit log is not writable; no key was used"};
}

void RecordKeyFailure(audit::Recorder* recorder, audit::Event event, const Status& status) {
  if (recorder == nullptr) {
    return;
  }
  event.outcome =
      status.code() == StatusCode::kCorruption ? audit::Outcome::kIntegrityFailure : audit::Outcome::kFailure;
  if (Status st = recorder->Record(event); !st.ok()) {
    spdlog::error("[{}] the audit log could not record a failed {} ({})", event.request.request_id,
                  audit::OperationName(event.operation), st.ToString());
  }
}

std::unique_ptr<ObjectReader> AuditReads(std::unique_ptr<ObjectReader> reader, audit::Recorder* recorder,
                                         audit::Event event) {
  if (recorder == nullptr) {
    return reader;
  }
  event.operation = audit::Operation::kDecrypt;
  return std::make_unique<AuditedReader>(std::move(reader), recorder, std::move(event));
}

}  // namespace coffre::service::internal
