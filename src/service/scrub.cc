#include "coffre/service/scrub.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "coffre/crypto/blob_format.h"
#include "key_audit.h"

namespace coffre::service {
namespace {

using Clock = std::chrono::steady_clock;

// Large enough that a fast disk is not slowed by per-read overhead, small enough that a stop
// request or the rate limit is honoured within one read.
constexpr size_t kReadBuffer = 1024 * 1024;

// Spreads reads so that they average at most `bytes_per_second`. Credit for idle time is capped
// at one second, so a pause in the walk (a slow listing) is not followed by a burst.
class Pacer {
 public:
  Pacer(uint64_t bytes_per_second, const std::function<bool(std::chrono::nanoseconds)>& pause)
      : rate_(bytes_per_second), pause_(pause), next_(Clock::now()) {}

  // False once the walk must stop.
  bool Check() { return Wait(std::chrono::nanoseconds(0)); }

  bool Consumed(uint64_t bytes) {
    if (rate_ == 0) {
      return Check();
    }
    const auto now = Clock::now();
    next_ = std::max(next_, now - std::chrono::seconds(1));
    next_ +=
        std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(bytes) * 1e9 / static_cast<double>(rate_)));
    return Wait(next_ > now ? std::chrono::duration_cast<std::chrono::nanoseconds>(next_ - now)
                            : std::chrono::nanoseconds(0));
  }

 private:
  bool Wait(std::chrono::nanoseconds d) {
    if (pause_) {
      return pause_(d);
    }
    if (d.count() > 0) {
      std::this_thread::sleep_for(d);
    }
    return true;
  }

  const uint64_t rate_;
  const std::function<bool(std::chrono::nanoseconds)>& pause_;
  Clock::time_point next_;
};

}  // namespace

Scrubber::Scrubber(ObjectService& service, catalog::Catalog& catalog, keystore::TenantStore& keys,
                   storage::BlobStore& blobs, audit::Recorder* audit)
    : service_(service), catalog_(catalog), keys_(keys), blobs_(blobs), audit_(audit) {}

Result<ScrubReport> Scrubber::Run(const ScrubOptions& options) {
  ScrubReport report;
  Pacer pacer(options.bytes_per_second, options.pause);
  RequestInfo request;
  request.action = std::string(kScrubAction);
  Bytes buffer(kReadBuffer);

  // Whether the object we looked at is still the one the catalog names: a read that fails
  // because its blob was collected after an overwrite is not damage.
  auto still_current = [&](const catalog::Bucket& bucket, const catalog::ObjectRecord& record) {
    auto now = catalog_.GetObject(bucket.id, record.key);
    return !(now.ok() ? now->object_id != record.object_id : now.status().code() == StatusCode::kNotFound);
  };

  auto scrub_object = [&](const keystore::Tenant& tenant, const catalog::Bucket& bucket, const std::string& key) {
    auto record = catalog_.GetObject(bucket.id, key);
    if (!record.ok()) {
      if (record.status().code() == StatusCode::kNotFound) {
        ++report.skipped;
      } else {
        report.damaged.push_back({tenant.id, tenant.name, bucket.name, key, "", FromStatus(record.status())});
      }
      return;
    }
    auto damaged = [&](Error error) {
      if (error.code == Errc::kCorruption && !still_current(bucket, *record)) {
        ++report.skipped;
        return;
      }
      report.damaged.push_back({tenant.id, tenant.name, bucket.name, key, record->object_id, std::move(error)});
      if (options.on_damaged) {
        options.on_damaged(report.damaged.back());
      }
    };

    // 1. Every header and segment tag, exactly as a GET reads them (the service audits the
    //    unwrap and any integrity failure of the read).
    auto reader = service_.OpenObject(bucket, key, &request);
    if (!reader.ok()) {
      if (reader.error().code == Errc::kNoSuchKey) {
        ++report.skipped;
      } else {
        damaged(reader.error());
      }
      return;
    }
    uint64_t bytes = 0;
    for (;;) {
      auto n = (*reader)->Read(buffer);
      if (!n.ok()) {
        damaged(n.error());
        return;
      }
      if (*n == 0) {
        break;
      }
      bytes += *n;
      if (!pacer.Consumed(*n)) {
        report.stopped = true;
        return;
      }
    }
    reader->reset();

    // 2. The file lengths: bytes appended after the last segment are never read, so they pass
    //    step 1; the catalog's part size and the blob's (now authenticated) segment size fix
    //    the exact length.
    for (const auto& part : record->parts) {
      Status st = [&]() -> Status {
        auto blob = blobs_.Open(part.blob_id);
        if (!blob.ok()) {
          return blob.status().code() == StatusCode::kNotFound
                     ? Status::Corruption("the data of this object is missing from storage")
                     : blob.status();
        }
        Bytes header(crypto::kHeaderSize);
        COFFRE_RETURN_IF_ERROR((*blob)->ReadAt(0, header));
        COFFRE_ASSIGN_OR_RETURN(crypto::BlobHeader parsed, crypto::ParseBlobHeaderUnauthenticated(header));
        parsed.plaintext_length = part.size;
        return crypto::CheckBlobFileLength(parsed, (*blob)->size());
      }();
      if (!st.ok()) {
        if (st.code() == StatusCode::kCorruption && still_current(bucket, *record)) {
          // The read itself succeeded, so nothing has recorded this failure yet.
          internal::RecordKeyFailure(
              audit_,
              internal::KeyEvent(audit::Operation::kDecrypt, bucket, key, record->object_id,
                                 record->key_info.tenant_key_id, record->key_info.tenant_key_version, &request),
              st);
        }
        damaged(FromStatus(st));
        return;
      }
    }
    ++report.objects;
    report.bytes += bytes;
    if (options.on_verified) {
      options.on_verified(bytes);
    }
  };

  COFFRE_ASSIGN_OR_RETURN(auto tenants, keys_.ListTenants());
  bool found = options.only_tenant.empty();
  for (const auto& tenant : tenants) {
    if (!options.only_tenant.empty() && tenant.name != options.only_tenant) {
      continue;
    }
    found = true;
    if (tenant.shredded) {
      continue;  // its keys are gone on purpose and its data is being removed
    }
    auto buckets = service_.ListBuckets(tenant.id);
    if (!buckets.ok()) {
      return Status::IOError("list buckets of " + tenant.name + ": " + buckets.error().message);
    }
    for (const auto& bucket : *buckets) {
      catalog::ListQuery query;
      for (;;) {
        auto page = service_.ListObjects(bucket, query);
        if (!page.ok()) {
          if (page.error().code == Errc::kNoSuchBucket) {
            break;  // deleted during the walk
          }
          return Status::IOError("list " + bucket.name + ": " + page.error().message);
        }
        for (const auto& entry : page->entries) {
          if (!entry.object) {
            continue;
          }
          if (!pacer.Check()) {
            report.stopped = true;
          }
          if (report.stopped) {
            return report;
          }
          scrub_object(tenant, bucket, entry.object->key);
        }
        if (!page->is_truncated || page->entries.empty()) {
          break;
        }
        query.start_after = page->next_marker;
      }
    }
  }
  if (!found) {
    return Status::NotFound("no tenant named " + options.only_tenant);
  }
  return report;
}

}  // namespace coffre::service
