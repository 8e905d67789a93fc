#pragma once

// Key-usage events: what the auditors' log records (docs/AUDIT.md). An event names a key by its
// id and version and never carries key material.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "coffre/common/status.h"

namespace coffre::audit {

enum class Operation {
  kDataKeyWrap,    // a data key was created and wrapped (PUT, CreateMultipartUpload, Copy
                   // destination) or its wrapped form was bound to an object (Complete)
  kDataKeyUnwrap,  // GET, ranged GET, Copy source, UploadPart, UploadPartCopy
  kDataKeyRewrap,  // a wrapped data key re-encrypted under a newer tenant-key version
  kDecrypt,        // object data decryption; recorded when it fails its integrity check
  kTenantKeyCreate,
  kTenantKeyRotate,
  kTenantKeyDestroy,
  kTenantShred,
  kRootKeyRotate,
  kAccessKeyCreate,
  kAccessKeyDisable,
  kAccessKeyDelete,
  kApprovalRequest,  // dual control: an admin asked for a guarded operation (request.action names it)
  kApprovalGrant,    // dual control: a second, different admin approved it
  kKeystoreRestore,  // the keystore was replaced by a backup (coffre keystore restore)
  kAccessKeyEnable,  // a disabled access key was enabled again
  // Admin API credentials (global chain): who can take part in dual control is itself recorded,
  // so that a second credential made by the same person is visible to the auditors.
  kAdminCredentialCreate,
  kAdminCredentialDisable,
  // A tenant's named keys (docs/KEYS.md "Named keys"): key_id is the named key's id. Their
  // rotations and version destructions are tenant_key.rotate and tenant_key.destroy with that id.
  kNamedKeyCreate,
  kNamedKeyDestroy,
};

// "data_key.wrap", "tenant_key.rotate", ... (the names in records and exports).
std::string_view OperationName(Operation op);

enum class Outcome {
  kSuccess,
  kFailure,           // the key operation failed (key missing, keystore error, ...)
  kIntegrityFailure,  // a wrapped key or object data failed authentication
};

std::string_view OutcomeName(Outcome outcome);  // "success", "failure", "integrity_failure"

// Who asked, as the protocol layer knows it. request_id is the x-amz-request-id returned to the
// client; action is the protocol operation ("GetObject", "UploadPartCopy", "cli", ...).
struct RequestInfo {
  std::string request_id;
  std::string access_key_id;
  std::string client_address;
  std::string action;
};

struct Event {
  Operation operation = Operation::kDataKeyUnwrap;
  Outcome outcome = Outcome::kSuccess;
  std::string tenant;  // tenant id; empty for events of no tenant (root key rotation)
  std::string key_id;  // tenant key id (hex); empty when no tenant key is involved
  uint32_t key_version = 0;
  std::string bucket;
  std::string object_key;
  std::string object_id;
  RequestInfo request;
};

// A record on its way to durability (Recorder::Start).
class PendingRecord {
 public:
  virtual ~PendingRecord() = default;
  // Returns once the record is durable (OK) or has failed. May be called more than once.
  virtual Status Wait() = 0;
  // Calls `done` once the record is durable or has failed (at once if it already is), then Wait()
  // returns without blocking. Lets a caller wait without holding a thread: `done` may run on the
  // log's writer thread, under its lock, so it must only schedule work (post to an executor) and
  // never call back into the log. At most one call per record.
  virtual void OnDone(std::function<void()> done) {
    (void)Wait();
    done();
  }
};

// Where key-using code records events.
//
// Record() returns only once the event is durable (or failed): a caller uses the key only after
// an OK return, so no key is used without a record (fail-closed). Thread-safe.
//
// Start() lets the record's fsync overlap with work whose result nobody can see yet (sealing a
// blob that no catalog row names, decrypting into a private buffer): the caller may compute with
// the key at once but must not release anything derived from it (publish the object, send
// plaintext) before Wait() returned OK; on failure it discards that work. This is the
// "durable before the key's result is released" rule (docs/AUDIT.md section 4), with the fsync off the request's
// critical path.
class Recorder {
 public:
  virtual ~Recorder() = default;
  // Unavailable (or NoSpace, IOError) when the log cannot be written: the caller must refuse the
  // key operation.
  virtual Status Record(const Event& event) = 0;
  // By default the record is made at once, and Wait() reports how that went.
  virtual std::unique_ptr<PendingRecord> Start(const Event& event) {
    class Recorded final : public PendingRecord {
     public:
      explicit Recorded(Status status) : status_(std::move(status)) {}
      Status Wait() override { return status_; }

     private:
      Status status_;
    };
    return std::make_unique<Recorded>(Record(event));
  }
};

}  // namespace coffre::audit
