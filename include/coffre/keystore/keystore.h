#pragma once

// The keystore: tenants, their versioned keys and their access keys, in SQLite, everything
// secret stored sealed (crypto/aead.h) under the root key, which is never stored here.
//
// Thread safety: all methods may be called concurrently. Unwrapped tenant keys and access-key
// secrets are cached in memory (SecretBytes) after first use.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre::keystore {

// Root key files hold 32 raw bytes or 64 hex characters (with an optional trailing newline).
// Refuses (PermissionDenied, with the path and the mode in the message) a file that is readable
// or writable by group or others, or that is not a regular file.
Result<SecretBytes> LoadRootKeyFile(const std::string& path);
// Creates a new random root key file (hex) with mode 0600; AlreadyExists if the path exists.
Status CreateRootKeyFile(const std::string& path);

struct Tenant {
  std::string id;    // 32 lower-case hex chars (16 random bytes): the tenant key id in blob headers
  std::string name;  // unique, [a-z0-9][a-z0-9._-]{0,62}
  UnixMillis created = 0;
};

struct AccessKey {
  std::string access_key_id;  // 20 chars, "CO" + 18 upper-case alphanumerics
  std::string tenant_id;
  bool enabled = true;
  UnixMillis created = 0;
  std::optional<UnixMillis> last_used;
};

struct NewAccessKey {
  AccessKey key;
  std::string secret_access_key;  // 40 chars of [A-Za-z0-9+/]; shown once, never stored in clear
};

struct ResolvedAccessKey {
  AccessKey key;
  SecretBytes secret;  // the secret access key's characters
};

// A fresh data key and its wrapped form under the tenant's active key version.
struct DataKey {
  SecretBytes key;                 // 32 bytes
  Bytes tenant_key_id;             // 16 bytes (the tenant id decoded from hex)
  uint32_t tenant_key_version = 0;
  Bytes wrapped;                   // crypto::kWrappedDataKeySize bytes
};

class Keystore {
 public:
  virtual ~Keystore() = default;

  // Opens or creates the keystore at `path`. A new keystore records a check value sealed under
  // the root key; an existing one verifies it, so a wrong root key fails here (PermissionDenied,
  // "root key does not match this keystore") and never later as garbage decryption.
  static Result<std::unique_ptr<Keystore>> Open(const std::string& path, SecretBytes root_key,
                                                const Clock& clock = Clock::System());

  // Creates the tenant with key version 1. AlreadyExists if the name is taken; InvalidArgument
  // for a bad name.
  virtual Result<Tenant> CreateTenant(const std::string& name) = 0;
  virtual Result<std::vector<Tenant>> ListTenants() = 0;
  virtual Result<Tenant> GetTenantByName(const std::string& name) = 0;  // NotFound
  virtual Result<Tenant> GetTenant(const std::string& tenant_id) = 0;   // NotFound

  virtual Result<NewAccessKey> CreateAccessKey(const std::string& tenant_id) = 0;
  virtual Result<std::vector<AccessKey>> ListAccessKeys(const std::string& tenant_id) = 0;
  // NotFound if unknown; PermissionDenied if disabled. Updates last_used (coalesced, not a
  // write per request).
  virtual Result<ResolvedAccessKey> ResolveAccessKey(const std::string& access_key_id) = 0;

  // A new random data key wrapped under the tenant's active key version. `aad` binds the wrapped
  // key to its object (the caller passes the object's identity); the tenant id and version are
  // bound too.
  virtual Result<DataKey> NewDataKey(const std::string& tenant_id, ByteView aad) = 0;
  // Corruption if the wrapped key does not open (altered, other tenant, other aad);
  // NotFound if that key version does not exist (destroyed).
  virtual Result<SecretBytes> UnwrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version,
                                            ByteView wrapped, ByteView aad) = 0;
};

}  // namespace coffre::keystore
