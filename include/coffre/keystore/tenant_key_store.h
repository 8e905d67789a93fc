#pragma once

// The tenants' versioned keys and the data keys wrapped under them (part of keystore.h's
// Keystore): rotation, destruction and its fence, crypto-shredding, and wrapping and unwrapping
// data keys. Tenant keys are stored sealed and cached unwrapped after first use; they never leave
// the keystore.
//
// A tenant has a default key, whose id is the tenant id, and any number of named keys, each with
// its own random id (docs/KEYS.md "Named keys"). Both kinds are versioned, rotated, re-wrapped
// and destroyed version by version alike; a named key can also be destroyed whole, which
// crypto-shreds exactly the objects under it.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre::keystore {

// Names one key of one tenant: its default key (key_id == tenant_id) or one of its named keys.
// Every key operation checks that the key belongs to the tenant, so a catalog row moved to another
// tenant never opens under the key it names.
struct KeyRef {
  // The tenant's default key; implicit because a tenant id names exactly that key.
  KeyRef(std::string tenant) : tenant_id(std::move(tenant)), key_id(tenant_id) {}
  KeyRef(std::string tenant, std::string key) : tenant_id(std::move(tenant)), key_id(std::move(key)) {}
  KeyRef(const char* tenant) : KeyRef(std::string(tenant)) {}
  bool named() const { return key_id != tenant_id; }
  bool operator==(const KeyRef&) const = default;

  std::string tenant_id;
  std::string key_id;  // 32 lower-case hex characters
};

// A named key (CreateNamedKey). Its name is unique within its tenant and never reused, even once
// the key is destroyed.
struct NamedKey {
  std::string key_id;  // 32 lower-case hex characters, drawn at creation
  std::string tenant_id;
  std::string name;
  UnixMillis created = 0;
  std::optional<UnixMillis> destroyed;  // every version deleted (DestroyNamedKey)
  KeyRef ref() const { return KeyRef(tenant_id, key_id); }
};

// Whether `name` may name a key: 1 to 200 of [A-Za-z0-9/_.-], not starting with "aws/" (AWS's
// reserved prefix) or "alias/", and not shaped like a key id (32 hex characters or a UUID), so
// that a name and an id never look alike.
bool IsValidNamedKeyName(std::string_view name);
// A key id written as 32 hex characters or as a UUID (8-4-4-4-12), either case, as the 32
// lower-case hex characters; nullopt if it is neither.
std::optional<std::string> ParseKeyId(std::string_view text);
// The key id as a UUID (8-4-4-4-12, lower case), the form AWS gives KMS key ids.
std::string KeyIdAsUuid(std::string_view key_id);

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
  Bytes tenant_key_id;  // 16 bytes: the key id decoded from hex (the tenant id for the default key)
  uint32_t tenant_key_version = 0;
  Bytes wrapped;  // crypto::kWrappedDataKeySize bytes
};

class TenantKeyStore {
 public:
  // --- tenant key versions -------------------------------------------------------------
  // Every method below that takes a KeyRef answers NotFound for a key that is not the tenant's,
  // and PermissionDenied for a shredded tenant or a destroyed named key.

  // Makes a new version active (the previous one is retired) and returns it. FailedPrecondition
  // for a shredded tenant or a destroyed named key, NotFound for an unknown one.
  virtual Result<uint32_t> RotateTenantKey(const KeyRef& key) = 0;
  // Rotates every key of a live tenant (default and named, not destroyed) whose active version is
  // older than max_age_ms (the rotate_after_days policy); returns the keys rotated.
  virtual Result<std::vector<KeyRef>> RotateKeysOlderThan(int64_t max_age_ms) = 0;
  // Versions that still exist, ascending (destroyed ones are gone; see Keystore::ListKeyEvents).
  virtual Result<std::vector<KeyVersion>> ListKeyVersions(const KeyRef& key) = 0;
  // Deletes a retired version (secure_delete: the page is zeroed). FailedPrecondition for the
  // active version; NotFound if absent. The caller checks first that no object or upload still
  // references it: the keystore does not know the catalog.
  virtual Status DestroyKeyVersion(const KeyRef& key, uint32_t version) = 0;
  // The destroy fence. A PUT that began before a rotation wraps its data key under the version
  // that was active then and commits its catalog row later; `key destroy` cannot see that row
  // before it exists. So destruction first marks the version (`destroying`), then counts its
  // references again, and every writer, once its row is committed, asks IsKeyVersionDestroying
  // (a fresh read) and re-wraps its data key under the active version if so. Either the count
  // sees the row, or the writer sees the mark (docs/KEYS.md "Destroy"). Marking: FailedPrecondition
  // for the active version, NotFound if absent; unmarking when the destruction is abandoned.
  virtual Status SetKeyVersionDestroying(const KeyRef& key, uint32_t version, bool destroying) = 0;
  // True when the version is marked, or no longer exists (destroyed). Always reads the database.
  virtual Result<bool> IsKeyVersionDestroying(const KeyRef& key, uint32_t version) = 0;
  // Unwraps a data key wrapped under `tenant_key_version` and wraps it again under the active
  // version, with the same `aad`; the data key never leaves the keystore. Errors as UnwrapDataKey.
  virtual Result<RewrappedKey> RewrapDataKey(const KeyRef& key, uint32_t tenant_key_version, ByteView wrapped,
                                             ByteView aad) = 0;
  // Crypto-shredding: in one transaction, deletes every key version of the tenant (its named
  // keys' too, which are marked destroyed), disables its
  // access keys, marks the tenant shredded and records the event; then drops the cached keys.
  // From then on UnwrapDataKey and NewDataKey answer PermissionDenied ("crypto-shredded").
  // FailedPrecondition if already shredded.
  virtual Status ShredTenant(const std::string& tenant_id) = 0;

  // --- named keys -----------------------------------------------------------------------
  // Creates a named key of the tenant with its version 1 active, and records the event.
  // InvalidArgument for a name IsValidNamedKeyName refuses, AlreadyExists for a name the tenant
  // has (or had), FailedPrecondition for a shredded tenant, NotFound for an unknown one.
  virtual Result<NamedKey> CreateNamedKey(const std::string& tenant_id, const std::string& name) = 0;
  // The tenant's named keys, destroyed ones included, by name.
  virtual Result<std::vector<NamedKey>> ListNamedKeys(const std::string& tenant_id) = 0;
  // The tenant's named key with that name or id (as ParseKeyId reads it); NotFound otherwise.
  virtual Result<NamedKey> FindNamedKey(const std::string& tenant_id, const std::string& name_or_id) = 0;
  // The named key with that id, whoever's it is (dual control and audit records name a key by
  // its id alone); NotFound otherwise.
  virtual Result<NamedKey> NamedKeyById(const std::string& key_id) = 0;
  // Destroys a named key whole: in one transaction, deletes every version (secure_delete), marks
  // the key destroyed and records the event. Every data key under it stops opening, for good
  // (PermissionDenied, "destroyed"); nothing else is touched. FailedPrecondition if already
  // destroyed; NotFound if it is not the tenant's.
  virtual Status DestroyNamedKey(const KeyRef& key) = 0;

  // --- data keys ------------------------------------------------------------------------
  // A new random data key wrapped under the key's active version. `aad` binds the wrapped key to
  // its object (the caller passes the object's identity); the tenant, the key and its version
  // are bound too.
  virtual Result<DataKey> NewDataKey(const KeyRef& key, ByteView aad) = 0;
  // Wraps a data key the caller holds (one NewDataKey or UnwrapDataKey gave it) once more under
  // `tenant_key_version`, bound to another `aad`: a second copy for another place, such as the
  // header of a blob. Errors as UnwrapDataKey.
  virtual Result<Bytes> WrapDataKey(const KeyRef& key, uint32_t tenant_key_version, const SecretBytes& data_key,
                                    ByteView aad) = 0;
  // The version new data keys are wrapped under (as NewDataKey would use now).
  virtual Result<uint32_t> ActiveKeyVersion(const KeyRef& key) = 0;
  // Corruption if the wrapped key does not open (altered, other tenant, other aad);
  // NotFound if that key version does not exist (destroyed).
  virtual Result<SecretBytes> UnwrapDataKey(const KeyRef& key, uint32_t tenant_key_version, ByteView wrapped,
                                            ByteView aad) = 0;

 protected:
  // Owned through Keystore, never through this part of it.
  ~TenantKeyStore() = default;
};

}  // namespace coffre::keystore
