#pragma once

// The tenants' S3 access keys (part of keystore.h's Keystore). Secrets are stored sealed and
// cached unwrapped after first use.

#include <optional>
#include <string>
#include <vector>

#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre::keystore {

struct AccessKey {
  std::string access_key_id;  // 20 chars, "CO" + 18 upper-case alphanumerics
  std::string tenant_id;
  bool enabled = true;
  UnixMillis created = 0;
  std::optional<UnixMillis> last_used;
};

struct NewAccessKey {
  AccessKey key;
  // 40 chars of [A-Za-z0-9+/]; shown once, never stored in clear. Wiped when the object is
  // destroyed.
  std::string secret_access_key;
  NewAccessKey() = default;
  NewAccessKey(NewAccessKey&&) = default;
  NewAccessKey& operator=(NewAccessKey&&) = default;
  NewAccessKey(const NewAccessKey&) = default;
  NewAccessKey& operator=(const NewAccessKey&) = default;
  ~NewAccessKey();
};

struct ResolvedAccessKey {
  AccessKey key;
  SecretBytes secret;  // the secret access key's characters
};

class AccessKeyStore {
 public:
  virtual Result<NewAccessKey> CreateAccessKey(const std::string& tenant_id) = 0;
  virtual Result<std::vector<AccessKey>> ListAccessKeys(const std::string& tenant_id) = 0;
  // NotFound if unknown; PermissionDenied if disabled. Updates last_used (coalesced, not a
  // write per request).
  virtual Result<ResolvedAccessKey> ResolveAccessKey(const std::string& access_key_id) = 0;
  // Disables or enables an access key of the tenant (NotFound if the tenant has no such key;
  // FailedPrecondition to enable a key of a shredded tenant). Takes effect in this process at
  // once and in other processes (the daemon) within Keystore::kRevalidateIntervalMs.
  virtual Status SetAccessKeyEnabled(const std::string& tenant_id, const std::string& access_key_id, bool enabled) = 0;
  // Removes the access key and its sealed secret (NotFound as above); same propagation.
  virtual Status DeleteAccessKey(const std::string& tenant_id, const std::string& access_key_id) = 0;

 protected:
  // Owned through Keystore, never through this part of it.
  ~AccessKeyStore() = default;
};

}  // namespace coffre::keystore
