#pragma once

// Admin API credentials (part of keystore.h's Keystore; docs/OPERATIONS.md, "Admin API").
// Bearer tokens for the admin listener. Two roles, kept apart (separation of duties): an admin
// manages tenants, access keys and key versions and cannot read the audit log; an auditor reads
// the audit log (export, public key) and nothing else.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/common/clock.h"
#include "coffre/common/status.h"

namespace coffre::keystore {

enum class AdminRole { kAdmin, kAuditor };
std::string_view AdminRoleName(AdminRole role);  // "admin", "auditor"
std::optional<AdminRole> ParseAdminRole(std::string_view name);
// Tokens are "coffre_adm_" followed by 32 random bytes in unpadded base64url (43 characters).
inline constexpr std::string_view kAdminTokenPrefix = "coffre_adm_";

struct AdminCredential {
  std::string name;  // unique, [a-z0-9][a-z0-9._-]{0,62}; recorded as the actor of its changes
  AdminRole role = AdminRole::kAdmin;
  UnixMillis created = 0;
  std::optional<UnixMillis> disabled;  // set once disabled; a disabled credential never comes back
};

struct NewAdminCredential {
  AdminCredential credential;
  // Shown once; only HMAC(admin token key, SHA-256(token)) is stored. The characters are wiped
  // when the object is destroyed.
  std::string token;
  NewAdminCredential() = default;
  NewAdminCredential(NewAdminCredential&&) = default;
  NewAdminCredential& operator=(NewAdminCredential&&) = default;
  NewAdminCredential(const NewAdminCredential&) = default;
  NewAdminCredential& operator=(const NewAdminCredential&) = default;
  ~NewAdminCredential();
};

class AdminCredentialStore {
 public:
  // Creates a credential with a fresh random token; stores only the token's SHA-256 and records
  // an "admin-credential-created" key event (keystore-wide: empty tenant id). InvalidArgument for
  // a bad name; AlreadyExists if the name is taken (also by a disabled credential).
  virtual Result<NewAdminCredential> CreateAdminCredential(const std::string& name, AdminRole role) = 0;
  virtual Result<std::vector<AdminCredential>> ListAdminCredentials() = 0;  // by name
  // Disables it for good and records "admin-credential-disabled". NotFound if unknown;
  // FailedPrecondition if already disabled. Takes effect at the daemon's next request (tokens are
  // checked against the database on every request, never cached).
  virtual Status DisableAdminCredential(const std::string& name) = 0;
  // The credential whose token this is. The token's hash is compared with every stored hash in
  // constant time (no early exit, no index lookup keyed by it). NotFound for an unknown or
  // malformed token, PermissionDenied for a disabled credential. Never logs the token.
  virtual Result<AdminCredential> AuthenticateAdminToken(std::string_view token) = 0;

 protected:
  // Owned through Keystore, never through this part of it.
  ~AdminCredentialStore() = default;
};

}  // namespace coffre::keystore
