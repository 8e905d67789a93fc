#pragma once

// Tenant-key and access-key lifecycle changes, each recorded in the auditors' log
// (docs/AUDIT.md, "Key-lifecycle events"). The admin commands and the daemon (development tenant,
// rotate_after_days policy) make these changes only through this class, so none of them can
// happen without its record.
//
// Fail-closed, as for data keys: when a record cannot be made durable the change is not made (or,
// where the keystore chooses an identifier the record must name, it is undone) and the call fails
// with Unavailable. Which changes are recorded before and which right after, and why, is in
// docs/AUDIT.md; the per-method comments below say which.
//
// Thread safety: as the keystore and the recorder (both thread-safe); the class holds no state of
// its own besides references.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "coffre/audit/event.h"
#include "coffre/common/clock.h"
#include "coffre/common/status.h"
#include "coffre/keystore/keystore.h"

namespace coffre::service {

class KeyLifecycle {
 public:
  // Neither is owned; both must outlive this object. `recorder` null means no audit log (tools and
  // tests that do not audit): the changes are made unrecorded. `clock` decides the age of a key
  // version for RotateKeysOlderThan and must agree with the keystore's clock.
  KeyLifecycle(keystore::Keystore& keys, audit::Recorder* recorder, const Clock& clock = Clock::System());

  // Creates the tenant (key version 1), then records tenant_key.create: the tenant id is the key
  // id and the keystore draws it, so it cannot be recorded before. If the record fails, the
  // tenant stays without any access key (so its key cannot be used) and the call fails; calling
  // CreateTenant again with the same name once the log is writable records it then and returns
  // the tenant. AlreadyExists for a tenant whose creation was completed.
  Result<keystore::Tenant> CreateTenant(const std::string& name, const audit::RequestInfo& request);

  // Creates an access key, then records access_key.create (the keystore draws the id). If the
  // record fails, the key is deleted again before its secret was shown to anyone, and the call
  // fails. FailedPrecondition for a shredded tenant (checked before anything is done).
  Result<keystore::NewAccessKey> CreateAccessKey(const std::string& tenant_id, const audit::RequestInfo& request);

  // Record access_key.disable / access_key.delete first, then change the keystore. NotFound (before
  // any record) if the tenant has no such access key.
  Status DisableAccessKey(const std::string& tenant_id, const std::string& access_key_id,
                          const audit::RequestInfo& request);
  Status DeleteAccessKey(const std::string& tenant_id, const std::string& access_key_id,
                         const audit::RequestInfo& request);
  // Recorded (access_key.enable) before the key is enabled, as disabling is: a key that comes
  // back into use is as much the auditors' business as one that stops.
  Status EnableAccessKey(const std::string& tenant_id, const std::string& access_key_id,
                         const audit::RequestInfo& request);

  // Records tenant_key.rotate with the version the rotation will create (versions only grow: the
  // active one plus one), then rotates the key (a tenant's default key, or one of its named keys).
  // Returns the new version. FailedPrecondition (nothing recorded) for a shredded tenant or a
  // destroyed named key.
  Result<uint32_t> RotateTenantKey(const keystore::KeyRef& key, const audit::RequestInfo& request);

  // Creates a named key of the tenant (keystore::TenantKeyStore::CreateNamedKey), then records
  // named_key.create (the keystore draws the id). If the record fails, the key is destroyed again
  // before anything was encrypted under it, and the call fails.
  Result<keystore::NamedKey> CreateNamedKey(const std::string& tenant_id, const std::string& name,
                                            const audit::RequestInfo& request);

  // The rotate_after_days policy: rotates, as RotateTenantKey, every key of a live tenant (default
  // and named, not destroyed) whose active version is older than max_age_ms. Returns (key, new
  // version) of each rotation. Stops at the first failure (an unwritable log rotates nothing
  // more; the next run retries).
  Result<std::vector<std::pair<keystore::KeyRef, uint32_t>>> RotateKeysOlderThan(int64_t max_age_ms,
                                                                                 const audit::RequestInfo& request);

  // Records tenant.shred (key_version: the active version; every version goes), then shreds.
  // FailedPrecondition (nothing recorded) if the tenant is already shredded.
  Status ShredTenant(const std::string& tenant_id, const audit::RequestInfo& request);

  // Where this lifecycle records (null: unrecorded), for the changes other classes make on the
  // same footing (service::DualControl).
  audit::Recorder* recorder() const { return recorder_; }

 private:
  // Records `event`; Unavailable naming what was not done when the log cannot make it durable.
  Status RecordOrRefuse(const audit::Event& event, const std::string& not_done);
  // Best effort: after a recorded change failed, says so in the log (outcome failure).
  void RecordFailure(audit::Event event);
  Status CheckAccessKey(const std::string& tenant_id, const std::string& access_key_id);

  keystore::Keystore& keys_;
  audit::Recorder* recorder_;
  const Clock& clock_;
};

}  // namespace coffre::service
