#pragma once

// The keystore: tenants, their versioned keys and their access keys, in SQLite, everything
// secret stored sealed (crypto/aead.h) under the root key, which is never stored here.
//
// Keystore is the aggregate of one interface per thing it owns, each in its own header:
// TenantStore (tenant_store.h), AccessKeyStore (access_key_store.h), TenantKeyStore (key versions,
// the destroy fence, crypto-shredding and data keys: tenant_key_store.h), AdminCredentialStore
// (admin_credential_store.h) and ApprovalStore (approval_store.h).
//
// What a backend (today SQLite, src/keystore/sqlite_keystore.h) must guarantee: every change,
// with the checks that guard it (a tenant not shredded, an enabled admin, an approval's state)
// and the key event it records, happens in one serializable transaction, so that it is all or
// nothing and two racing changes cannot both pass a check only one of them may pass; a change is
// durable before the method returns (a destroyed key version is gone, an approval is used up);
// every authenticated row (src/keystore/rows.h) is written with its next generation and a fresh
// MAC, and checked on every read, a row that fails or is older than a generation this process
// saw being refused and counted (IntegrityFailures); secrets are stored only sealed under the
// root key's wrapping subkey with the associated data of src/keystore/format.h; and a change made
// by another process is seen within kRevalidateIntervalMs.
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
#include "coffre/keystore/access_key_store.h"
#include "coffre/keystore/admin_credential_store.h"
#include "coffre/keystore/approval_store.h"
#include "coffre/keystore/tenant_key_store.h"
#include "coffre/keystore/tenant_store.h"

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

// The whole keystore: every part above, which a caller that needs only one of them takes alone
// (the object service takes only a TenantKeyStore), plus what spans them all.
class Keystore : public TenantStore,
                 public AccessKeyStore,
                 public TenantKeyStore,
                 public AdminCredentialStore,
                 public ApprovalStore {
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

  // Every key event of the tenant ("" for the keystore-wide ones), oldest first.
  virtual Result<std::vector<KeyEvent>> ListKeyEvents(const std::string& tenant_id) = 0;

  // --- integrity --------------------------------------------------------------------------
  // For /health/ready: Corruption (with counts and the first row's identity, never contents)
  // when a stored row fails its MAC now, or when this process has refused a forged or replayed
  // row since it opened the keystore; Ok otherwise. Reads every authenticated row.
  virtual Status CheckIntegrity() = 0;
  // How many reads this process refused because a row failed its integrity check.
  virtual uint64_t IntegrityFailures() const = 0;
};

}  // namespace coffre::keystore
