#pragma once

// The keystore: tenants, their versioned keys and their access keys, in SQLite, everything
// secret stored sealed (crypto/aead.h) under the root key, which is never stored here.
//
// Thread safety: all methods may be called concurrently. Unwrapped tenant keys and access-key
// secrets are cached in memory (SecretBytes) after first use.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"
#include "coffre/crypto/root_subkeys.h"

namespace coffre::keystore {

// Root key files hold 32 raw bytes or 64 hex characters (with an optional trailing newline).
// Refuses (PermissionDenied, with the path and the mode in the message) a file that is readable
// or writable by group or others, or that is not a regular file.
Result<SecretBytes> LoadRootKeyFile(const std::string& path);
// Creates a new random root key file (hex) with mode 0600; AlreadyExists if the path exists.
Status CreateRootKeyFile(const std::string& path);

// --- root key sources (root_key_sources.cc; docs/KEYS.md) ---------------------------------
// A systemd credential (LoadCredential= / LoadCredentialEncrypted=): the file `name` in
// $CREDENTIALS_DIRECTORY, loaded as a root key file. FailedPrecondition when systemd passed no
// credentials directory.
Result<SecretBytes> LoadRootKeyCredential(const std::string& name);
// Reads a passphrase (up to 1024 bytes, one trailing newline dropped) from a file descriptor,
// which it does not close. InvalidArgument if empty.
Result<SecretBytes> ReadPassphraseFromFd(int fd);
// Asks for the passphrase on the controlling terminal without echo (twice when `confirm`).
// FailedPrecondition when stdin is not a terminal: use --passphrase-fd instead.
Result<SecretBytes> PromptPassphrase(bool confirm);
// Argon2id (libsodium crypto_pwhash) parameters; the defaults are libsodium's MODERATE limits.
struct PassphraseKdfParams {
  uint64_t opslimit = 3;
  uint64_t memlimit = 256ull * 1024 * 1024;
};
// Stretches the passphrase into the root key with the salt and parameters stored in the keystore
// at `keystore_path`. With `create`, a keystore without them (a new one) gets a random salt and
// `params` first. FailedPrecondition if the keystore was not set up for a passphrase.
Result<SecretBytes> DeriveRootKeyFromPassphrase(const std::string& keystore_path, const SecretBytes& passphrase,
                                                bool create, const PassphraseKdfParams& params = {});
// A root key from a passphrase for root key rotation: a fresh random salt, and the encoded salt
// and parameters (`kdf_record`) for RotateRootKey to store in the keystore.
struct PassphraseRootKey {
  SecretBytes root_key;
  Bytes kdf_record;
};
Result<PassphraseRootKey> DeriveRootKeyFromNewPassphrase(const SecretBytes& passphrase,
                                                         const PassphraseKdfParams& params = {});

// --- keys derived from the root key (crypto/root_subkeys.h; docs/KEYS.md "Derived keys") ---
// The derivation lives in the crypto module so that the audit log, which must not depend on the
// keystore, derives its subkeys from the same root key the same way.
using crypto::DeriveRootSubkey;
using crypto::RootKeyPurpose;

// --- root key rotation (root_rotation.cc; docs/KEYS.md "Root key rotation") ----------------
struct RootKeyRotationOptions {
  // The new key's passphrase parameters (PassphraseRootKey::kdf_record) when it comes from a
  // passphrase; empty when it comes from a file or credential, and then any passphrase parameters
  // are removed (the keystore's root key no longer comes from a passphrase).
  Bytes passphrase_kdf;
  // Fault-injection seam for tests: called inside the transaction after each re-sealed row; an
  // error aborts the rotation (rolled back, nothing changed).
  std::function<Status(size_t rows_done)> after_row;
};
struct RootKeyRotationReport {
  size_t tenant_keys = 0;  // tenant key versions re-sealed
  size_t access_keys = 0;  // access-key secrets re-sealed
};
// Re-seals every tenant key version and every access-key secret of the keystore at
// `keystore_path` under `new_root`'s wrapping key, gives every authenticated row a new MAC under
// `new_root`'s row key, replaces the root-key check value and records a "root-key-rotated" key
// event, all in ONE SQLite transaction: a crash or error at any point leaves the keystore
// entirely under `current_root`, or entirely under `new_root`. A keystore still in the format
// before authenticated rows is converted on the way. `after_row` is called after each rewritten
// row (not only sealed ones).
// PermissionDenied if `current_root` does not match the keystore (checked inside the
// transaction, so two concurrent rotations cannot both succeed); InvalidArgument if the two keys
// are equal; Corruption (nothing changed) if a stored value does not open under `current_root`
// or a row fails its integrity check (a rotation never makes a forged row valid);
// NotFound if there is no keystore. Safe beside a running daemon (WAL), but that daemon still
// holds the old root key: it must be restarted with the new one.
Result<RootKeyRotationReport> RotateRootKey(const std::string& keystore_path, const SecretBytes& current_root,
                                            const SecretBytes& new_root, const RootKeyRotationOptions& options = {});

struct Tenant {
  std::string id;    // 32 lower-case hex chars (16 random bytes): the tenant key id in blob headers
  std::string name;  // unique, [a-z0-9][a-z0-9._-]{0,62}
  UnixMillis created = 0;
  std::optional<UnixMillis> shredded;  // set once its keys were destroyed (ShredTenant)
};

// One version of a tenant key. Exactly one version of a live tenant is active (used for new
// data keys); retired versions only unwrap the data keys still wrapped under them.
struct KeyVersion {
  uint32_t version = 0;
  bool active = false;
  UnixMillis created = 0;
  bool destroying = false;  // its destruction began (SetKeyVersionDestroying)
};

// A key-lifecycle event, kept in the keystore's key_events table for auditors (until the audit
// log records them): "tenant-created", "key-rotated", "key-destroyed", "tenant-shredded",
// "access-key-created", "access-key-disabled", "access-key-enabled", "access-key-deleted",
// "root-key-rotated", "admin-credential-created", "admin-credential-disabled".
struct KeyEvent {
  int64_t id = 0;
  UnixMillis at = 0;
  std::string tenant_id;  // empty for keystore-wide events
  std::string event;
  uint32_t version = 0;  // the key version concerned, 0 if none
  std::string detail;    // e.g. the access key id; never secret
};

// A data key re-wrapped under the tenant's active version (RewrapDataKey).
struct RewrappedKey {
  uint32_t tenant_key_version = 0;
  Bytes wrapped;
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

// --- admin API credentials (docs/OPERATIONS.md, "Admin API") -----------------------------
// Bearer tokens for the admin listener. Two roles, kept apart (separation of duties): an admin
// manages tenants, access keys and key versions and cannot read the audit log; an auditor reads
// the audit log (export, public key) and nothing else.
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

// --- dual control (docs/KEYS.md "Dual control") -----------------------------------------
// The operations that cannot be undone. With `dual_control` in the config, each needs an approval
// that one admin credential requested and a second, different admin credential granted; the
// approval names the operation and its target and is used up by one execution.
// kCreateAdminCredential guards the making of a new admin-role credential (once two exist): a
// second credential made by one person would otherwise let that person grant their own requests.
enum class GuardedOperation { kDestroyKeyVersion, kShredTenant, kRotateRootKey, kCreateAdminCredential };
// "tenant_key.destroy", "tenant.shred", "root_key.rotate", "admin_credential.create".
std::string_view GuardedOperationName(GuardedOperation op);
std::optional<GuardedOperation> ParseGuardedOperation(std::string_view name);
// Whether the operation's target is a tenant (Approval::tenant_id is a tenant id). For
// kCreateAdminCredential that field holds the new credential's name instead, and the approval's
// records go to the global chain.
bool TargetsTenant(GuardedOperation op);

enum class ApprovalState { kPending, kApproved, kUsed, kExpired };
std::string_view ApprovalStateName(ApprovalState state);  // "pending", "approved", "used", "expired"

struct Approval {
  std::string id;  // "apr-" + 16 lower-case hex characters
  GuardedOperation operation = GuardedOperation::kDestroyKeyVersion;
  std::string tenant_id;     // empty for root key rotation; the credential's name for kCreateAdminCredential
  uint32_t version = 0;      // the key version to destroy; 0 for the other operations
  std::string requested_by;  // admin credential names
  UnixMillis requested = 0;
  UnixMillis expires = 0;  // the approval must be granted and used before this time
  std::optional<std::string> approved_by;
  std::optional<UnixMillis> approved;
  std::optional<UnixMillis> used;
  ApprovalState StateAt(UnixMillis now) const;
};

// InvalidArgument unless the target fits the operation: a tenant for the tenant operations, a
// valid credential name for kCreateAdminCredential and none for root key rotation; a key version
// (>= 1) for kDestroyKeyVersion only.
Status CheckApprovalTarget(GuardedOperation operation, const std::string& tenant_id, uint32_t version);

// Whether `approver` may grant `approval` at `now`: FailedPrecondition unless it is pending (not
// granted, used or expired); PermissionDenied for its own requester. (Whether the approver is an
// enabled admin credential is the keystore's to check, in its transaction.)
Status CheckGrantable(const Approval& approval, const std::string& approver, UnixMillis now);

// A fresh random approval id (ids are drawn before anything is stored, so that the audit record
// of a request can name it before the request exists: service/key_lifecycle.h).
std::string NewApprovalId();

// A fresh data key and its wrapped form under the tenant's active key version.
struct DataKey {
  SecretBytes key;      // 32 bytes
  Bytes tenant_key_id;  // 16 bytes (the tenant id decoded from hex)
  uint32_t tenant_key_version = 0;
  Bytes wrapped;  // crypto::kWrappedDataKeySize bytes
};

class Keystore {
 public:
  // Other processes (the admin CLI) change the keystore while the daemon caches it. Every
  // kRevalidateInterval at most, a lookup asks SQLite whether another connection committed
  // since (PRAGMA data_version, no I/O when nothing changed); if so, every cached entry is
  // dropped. A disabled access key, a rotation or a shred therefore takes effect in the daemon
  // within about this interval. kCacheTtl bounds an entry's life in any case.
  static constexpr int64_t kRevalidateIntervalMs = 1'000;

  virtual ~Keystore() = default;

  // Opens or creates the keystore at `path`. A new keystore records a check value sealed under
  // the root key; an existing one verifies it, so a wrong root key fails here (PermissionDenied,
  // "root key does not match this keystore") and never later as garbage decryption. A keystore
  // written before rows were authenticated is converted here, in one transaction: its sealed
  // values are re-sealed under the derived wrapping key, every row gets its MAC and stored admin
  // token digests become MACs (docs/KEYS.md "Authenticated rows").
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
  // Disables or enables an access key of the tenant (NotFound if the tenant has no such key;
  // FailedPrecondition to enable a key of a shredded tenant). Takes effect in this process at
  // once and in other processes (the daemon) within kRevalidateInterval (see below).
  virtual Status SetAccessKeyEnabled(const std::string& tenant_id, const std::string& access_key_id, bool enabled) = 0;
  // Removes the access key and its sealed secret (NotFound as above); same propagation.
  virtual Status DeleteAccessKey(const std::string& tenant_id, const std::string& access_key_id) = 0;

  // --- tenant key versions -------------------------------------------------------------
  // Makes a new version active (the previous one is retired) and returns it. FailedPrecondition
  // for a shredded tenant, NotFound for an unknown one.
  virtual Result<uint32_t> RotateTenantKey(const std::string& tenant_id) = 0;
  // Rotates every live tenant whose active version is older than max_age_ms (the
  // rotate_after_days policy); returns the ids of the tenants rotated.
  virtual Result<std::vector<std::string>> RotateKeysOlderThan(int64_t max_age_ms) = 0;
  // Versions that still exist, ascending (destroyed ones are gone; see ListKeyEvents).
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
  virtual Result<std::vector<KeyEvent>> ListKeyEvents(const std::string& tenant_id) = 0;

  // --- admin API credentials ------------------------------------------------------------
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

  // --- dual control approvals -------------------------------------------------------------
  // Stores a pending approval request. `requested_by` must name an enabled admin-role credential
  // (PermissionDenied otherwise); `tenant_id` a live tenant for the tenant operations (NotFound,
  // FailedPrecondition if shredded) and empty for root key rotation; `version` >= 1 only for
  // kDestroyKeyVersion (InvalidArgument). AlreadyExists if the id is taken. Records an
  // "approval-requested" key event.
  virtual Result<Approval> RequestApproval(const std::string& id, GuardedOperation operation,
                                           const std::string& tenant_id, uint32_t version,
                                           const std::string& requested_by, int64_t ttl_ms) = 0;
  virtual Result<Approval> GetApproval(const std::string& id) = 0;  // NotFound
  // Every approval, newest first (at most `limit`).
  virtual Result<std::vector<Approval>> ListApprovals(size_t limit) = 0;
  // Grants a pending, unexpired approval, atomically. `approved_by` must be an enabled admin-role
  // credential other than the requester, created no later than the request (PermissionDenied:
  // a credential made after the request could be the requester's own second name). FailedPrecondition if it is not
  // pending (already granted, used or expired); NotFound if unknown. Records "approval-granted".
  virtual Result<Approval> GrantApproval(const std::string& id, const std::string& approved_by) = 0;
  // Uses up a granted approval for exactly this operation and target, atomically (two concurrent
  // uses: one wins). FailedPrecondition if it is pending, used or expired, or if the requester or
  // the approver has been disabled since; InvalidArgument if it approves another operation or
  // target; NotFound if unknown. Records "approval-used".
  virtual Result<Approval> UseApproval(const std::string& id, GuardedOperation operation, const std::string& tenant_id,
                                       uint32_t version) = 0;
  // The guarded operation failed after UseApproval: the approval becomes usable again until it
  // expires (nothing was done with it). Records "approval-released".
  virtual Status ReleaseApproval(const std::string& id) = 0;

  // --- integrity --------------------------------------------------------------------------
  // For /health/ready: Corruption (with counts and the first row's identity, never contents)
  // when a stored row fails its MAC now, or when this process has refused a forged or replayed
  // row since it opened the keystore; Ok otherwise. Reads every authenticated row.
  virtual Status CheckIntegrity() = 0;
  // How many reads this process refused because a row failed its integrity check.
  virtual uint64_t IntegrityFailures() const = 0;

  // A new random data key wrapped under the tenant's active key version. `aad` binds the wrapped
  // key to its object (the caller passes the object's identity); the tenant id and version are
  // bound too.
  virtual Result<DataKey> NewDataKey(const std::string& tenant_id, ByteView aad) = 0;
  // Corruption if the wrapped key does not open (altered, other tenant, other aad);
  // NotFound if that key version does not exist (destroyed).
  virtual Result<SecretBytes> UnwrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version, ByteView wrapped,
                                            ByteView aad) = 0;
};

}  // namespace coffre::keystore
