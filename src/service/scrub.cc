#include "coffre/service/scrub.h"

#include <algorithm>
#include <optional>
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

// One walk's state, and the check of one object: Scrubber::Run lists the objects and hands each
// to ScrubObject.
class ScrubPass {
 public:
  ScrubPass(ObjectService& service, catalog::Catalog& catalog, storage::BlobStore& blobs, audit::Recorder* audit,
            const ScrubOptions& options)
      : service_(service),
        catalog_(catalog),
        blobs_(blobs),
        audit_(audit),
        options_(options),
        pacer_(options.bytes_per_second, options.pause),
        buffer_(kReadBuffer) {
    request_.action = std::string(kScrubAction);
  }

  // False once the walk must stop (the pause callback said so, now or during a read).
  bool MayContinue() {
    if (!pacer_.Check()) {
      report_.stopped = true;
    }
    return !report_.stopped;
  }

  ScrubReport TakeReport() { return std::move(report_); }

  void ScrubObject(const keystore::Tenant& tenant, const catalog::Bucket& bucket, const std::string& key) {
    auto record = catalog_.GetObject(bucket.id, key);
    if (!record.ok()) {
      if (record.status().code() == StatusCode::kNotFound) {
        ++report_.skipped;
      } else {
        report_.damaged.push_back({tenant.id, tenant.name, bucket.name, key, "", FromStatus(record.status())});
      }
      return;
    }
    const Object object{tenant, bucket, key, *record};
    std::optional<uint64_t> bytes = ReadThrough(object);
    if (!bytes) {
      return;
    }
    if (!CheckFileLengths(object)) {
      return;
    }
    ++report_.objects;
    report_.bytes += *bytes;
    if (options_.on_verified) {
      options_.on_verified(*bytes);
    }
  }

 private:
  struct Object {
    const keystore::Tenant& tenant;
    const catalog::Bucket& bucket;
    const std::string& key;
    const catalog::ObjectRecord& record;
  };

  // Whether the object we looked at is still the one the catalog names: a read that fails
  // because its blob was collected after an overwrite is not damage.
  bool StillCurrent(const Object& object) {
    auto now = catalog_.GetObject(object.bucket.id, object.record.key);
    return !(now.ok() ? now->object_id != object.record.object_id : now.status().code() == StatusCode::kNotFound);
  }

  void Damaged(const Object& object, Error error) {
    if (error.code == Errc::kCorruption && !StillCurrent(object)) {
      ++report_.skipped;
      return;
    }
    report_.damaged.push_back({object.tenant.id, object.tenant.name, object.bucket.name, object.key,
                               object.record.object_id, std::move(error)});
    if (options_.on_damaged) {
      options_.on_damaged(report_.damaged.back());
    }
  }

  // 1. Every header and segment tag, exactly as a GET reads them (the service audits the unwrap
  //    and any integrity failure of the read). The plaintext size, or nothing when the object is
  //    gone, damaged, or the walk must stop.
  std::optional<uint64_t> ReadThrough(const Object& object) {
    auto reader = service_.OpenObject(object.bucket, object.key, &request_);
    if (!reader.ok()) {
      if (reader.error().code == Errc::kNoSuchKey) {
        ++report_.skipped;
      } else if (reader.error().code == Errc::kAccessDenied) {
        // The only key a live tenant's object can be denied is a named key destroyed on purpose
        // (docs/KEYS.md "Named keys"): its data is gone by design, which is no damage to report.
        ++report_.erased;
      } else {
        Damaged(object, reader.error());
      }
      return std::nullopt;
    }
    uint64_t bytes = 0;
    for (;;) {
      auto n = (*reader)->Read(buffer_);
      if (!n.ok()) {
        Damaged(object, n.error());
        return std::nullopt;
      }
      if (*n == 0) {
        break;
      }
      bytes += *n;
      if (!pacer_.Consumed(*n)) {
        report_.stopped = true;
        return std::nullopt;
      }
    }
    return bytes;
  }

  // 2. The file lengths: bytes appended after the last segment are never read, so they pass
  //    step 1; the catalog's part size and the blob's (now authenticated) segment size fix the
  //    exact length. False when a part is damaged.
  bool CheckFileLengths(const Object& object) {
    const catalog::ObjectRecord& record = object.record;
    for (const auto& part : record.parts) {
      Status st = CheckFileLength(part);
      if (!st.ok()) {
        if (st.code() == StatusCode::kCorruption && StillCurrent(object)) {
          // The read itself succeeded, so nothing has recorded this failure yet.
          internal::RecordKeyFailure(
              audit_,
              internal::KeyEvent(audit::Operation::kDecrypt, object.bucket, object.key, record.object_id,
                                 record.key_info.tenant_key_id, record.key_info.tenant_key_version, &request_),
              st);
        }
        Damaged(object, FromStatus(st));
        return false;
      }
    }
    return true;
  }

  Status CheckFileLength(const catalog::ObjectPart& part) {
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
  }

  ObjectService& service_;
  catalog::Catalog& catalog_;
  storage::BlobStore& blobs_;
  audit::Recorder* audit_;
  const ScrubOptions& options_;
  Pacer pacer_;
  RequestInfo request_;
  Bytes buffer_;
  ScrubReport report_;
};

}  // namespace

Scrubber::Scrubber(ObjectService& service, catalog::Catalog& catalog, keystore::TenantStore& keys,
                   storage::BlobStore& blobs, audit::Recorder* audit)
    : service_(service), catalog_(catalog), keys_(keys), blobs_(blobs), audit_(audit) {}

Result<ScrubReport> Scrubber::Run(const ScrubOptions& options) {
  ScrubPass pass(service_, catalog_, blobs_, audit_, options);
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
          if (!pass.MayContinue()) {
            return pass.TakeReport();
          }
          pass.ScrubObject(tenant, bucket, entry.object->key);
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
  return pass.TakeReport();
}

}  // namespace coffre::service
