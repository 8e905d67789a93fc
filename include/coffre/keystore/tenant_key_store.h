#pragma once

// The tenants' versioned keys and the data keys wrapped under them (part of keystore.h's
// Keystore): rotation, destruction and its fence, crypto-shredding, and wrapping and unwrapping
// data keys. Tenant keys are stored sealed and cached unwrapped after first use; they never leave
// the keystore.

#include <cstdint>
#include <string>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre::keystore {

// One version of a tenant key. Exactly one version of a live tenant is active (used for new
// data keys); retired versions only unwrap the data keys still wrapped under them.
struct KeyVersion {
  uint32_t version = 0;
  bool active = false;
  UnixMillis created = 0;
  bool destroying = false;  // its destruction began (SetKeyVersionDestroying)
};

// A data key re-wrapped under the tenant's active version (RewrapDataKey).
struct RewrappedKey {
  uint32_t tenant_key_version = 0;
  Bytes wrapped;
};

// A fresh data key and its wrapped form under the tenant's active key version.
struct DataKey {
  SecretBytes key;      // 32 bytes
  Bytes tenant_key_id;  // 16 bytes (the tenant id decoded from hex)
  uint32_t tenant_key_version = 0;
  Bytes wrapped;  // crypto::kWrappedDataKeySize bytes
};

class TenantKeyStore {
 public:
  // --- tenant key versions -------------------------------------------------------------
  // Makes a new version active (the previous one is retired) and returns it. FailedPrecondition
  // for a shredded tenant, NotFound for an unknown one.
  virtual Result<uint32_t> RotateTenantKey(const std::string& tenant_id) = 0;
  // Rotates every live tenant whose active version is older than max_age_ms (the
  // rotate_after_days policy); returns the ids of the tenants rotated.
  virtual Result<std::vector<std::string>> RotateKeysOlderThan(int64_t max_age_ms) = 0;
  // Versions that still exist, ascending (destroyed ones are gone; see Keystore::ListKeyEvents).
  virtual Result<std::vector<KeyVersion>> ListKeyVersions(const std::string& tenant_id) = 0;
  // Deletes a retired version (secure_delete: the page is zeroed). FailedPrecondition for the
  // active version; NotFound if absent. The caller checks first that no object or upload still
  // references it: the keystore does not know the catalog.
  virtual Status DestroyKeyVersion(const std::string& tenant_id, uint32_t version) = 0;
  // The destroy fence. A PUT that began before a rotation wraps its data key under the version
  // that was active then and commits its catalog row later; `key destroy` cannot see that row
  // before it exists. So destruction first marks the version (`destroying`), then counts its
  // references again, and every writer, once its row is committed, asks IsKeyVersionDestroying
  // (a fresh read) and re-wraps its data key under the active version if so. Either the count
  // sees the row, or the writer sees the mark (docs/KEYS.md "Destroy"). Marking: FailedPrecondition
  // for the active version, NotFound if absent; unmarking when the destruction is abandoned.
  virtual Status SetKeyVersionDestroying(const std::string& tenant_id, uint32_t version, bool destroying) = 0;
  // True when the version is marked, or no longer exists (destroyed). Always reads the database.
  virtual Result<bool> IsKeyVersionDestroying(const std::string& tenant_id, uint32_t version) = 0;
  // Unwraps a data key wrapped under `tenant_key_version` and wraps it again under the active
  // version, with the same `aad`; the data key never leaves the keystore. Errors as UnwrapDataKey.
  virtual Result<RewrappedKey> RewrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version,
                                             ByteView wrapped, ByteView aad) = 0;
  // Crypto-shredding: in one transaction, deletes every key version of the tenant, disables its
  // access keys, marks the tenant shredded and records the event; then drops the cached keys.
  // From then on UnwrapDataKey and NewDataKey answer PermissionDenied ("crypto-shredded").
  // FailedPrecondition if already shredded.
  virtual Status ShredTenant(const std::string& tenant_id) = 0;

  // --- data keys ------------------------------------------------------------------------
  // A new random data key wrapped under the tenant's active key version. `aad` binds the wrapped
  // key to its object (the caller passes the object's identity); the tenant id and version are
  // bound too.
  virtual Result<DataKey> NewDataKey(const std::string& tenant_id, ByteView aad) = 0;
  // Wraps a data key the caller holds (one NewDataKey or UnwrapDataKey gave it) once more under
  // `tenant_key_version`, bound to another `aad`: a second copy for another place, such as the
  // header of a blob. Errors as UnwrapDataKey.
  virtual Result<Bytes> WrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version,
                                    const SecretBytes& data_key, ByteView aad) = 0;
  // The version new data keys are wrapped under (as NewDataKey would use now); PermissionDenied
  // for a shredded tenant, NotFound for an unknown one.
  virtual Result<uint32_t> ActiveKeyVersion(const std::string& tenant_id) = 0;
  // Corruption if the wrapped key does not open (altered, other tenant, other aad);
  // NotFound if that key version does not exist (destroyed).
  virtual Result<SecretBytes> UnwrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version, ByteView wrapped,
                                            ByteView aad) = 0;

 protected:
  // Owned through Keystore, never through this part of it.
  ~TenantKeyStore() = default;
};

}  // namespace coffre::keystore
