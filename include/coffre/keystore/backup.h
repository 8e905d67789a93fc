#pragma once

// Keystore backup and restore (docs/KEYS.md "Backup and restore"): an online, self-contained copy
// of keystore.db taken beside a running daemon, and its verified, atomic installation in a data
// directory whose daemon is stopped.
//
// Everything in a backup is sealed under the root key that was current when it was taken: the file
// is useless without that key, and these functions never read, print or return key material.
//
// The module knows the keystore's own tables only. The caller (the CLI) holds the data-directory
// lock for a restore, gathers the destructions recorded elsewhere (the audit log) and records the
// restore in the audit log.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre::keystore {

// What a keystore file holds, for the operator: counts only, nothing secret.
struct KeystoreContents {
  int64_t schema_version = 0;
  size_t tenants = 0;  // including shredded ones
  size_t shredded_tenants = 0;
  size_t key_versions = 0;  // tenant key versions that exist (destroyed ones are gone)
  size_t access_keys = 0;
  // The newest key event's time (0 if none): the keystore holds no change made after it, so a
  // destruction recorded elsewhere after (about) this time may be missing from it.
  UnixMillis newest_event = 0;
};

struct BackupOptions {
  bool overwrite = false;  // replace an existing backup file (--force)
  // Fault-injection seam for tests: called between the copy and its verification; an error
  // aborts the backup (the temporary file is removed, no backup file appears).
  std::function<Status(const std::string& temporary_path)> before_verify;
};

// Copies the keystore at `keystore_path` to `backup_path` with SQLite's online backup API (one
// consistent snapshot; a running daemon keeps reading and writing). The copy is written to a
// temporary file beside `backup_path` (mode 0600, O_EXCL), switched to journal_mode=DELETE (one
// self-contained file, no -wal), fsync'd, checked (PRAGMA integrity_check; every sealed value
// opens under `root_key`), and only then renamed into place, with the directory fsync'd.
// AlreadyExists if `backup_path` exists and !overwrite; PermissionDenied if `root_key` does not
// open the keystore; Corruption if the copy fails a check. On any error no backup file appears
// (an existing one is left as it was).
Result<KeystoreContents> BackupKeystore(const std::string& keystore_path, const std::string& backup_path,
                                        const SecretBytes& root_key, const BackupOptions& options = {});

// A destruction that a restore must not undo: a destroyed key version, or (version 0) a
// crypto-shredded tenant; with a key_id, a version of that named key, or (version 0) the named key
// destroyed whole.
struct KeyDestruction {
  std::string tenant_id;
  uint32_t version = 0;
  std::string key_id;  // a named key's id; empty for the tenant's default key
  auto operator<=>(const KeyDestruction&) const = default;
};

// The destructions a keystore file records itself (shredded tenants, destroyed named keys;
// "key-destroyed" key events),
// read without changing it. For the keystore a restore is about to replace.
Result<std::vector<KeyDestruction>> ListKeyDestructions(const std::string& keystore_path);

// The Argon2id record (salt and parameters) stored in a keystore whose root key comes from a
// passphrase; empty when there is none.
Result<Bytes> ReadPassphraseKdf(const std::string& keystore_path);

// A restore in progress: the backup copied into the data directory and checked, not installed
// yet. Until Install() succeeds nothing in the data directory changes but the staged copy, which
// the destructor removes.
class StagedRestore {
 public:
  // Copies `backup_path` to <data_dir>/keystore.db.restore-<random> (mode 0600, O_EXCL, fsync'd;
  // owned by the data directory's owner when run as root) and checks the copy: PRAGMA
  // integrity_check, a keystore schema this program knows (an older one is migrated, a newer one
  // refused), a root-key check value. `backup_path` itself is only
  // read. InvalidArgument (saying what to do) for a file that is not a usable keystore backup:
  // not SQLite, truncated, damaged, not a keystore, or with a -wal file beside it.
  static Result<StagedRestore> Stage(const std::string& backup_path, const std::string& data_dir);

  // Makes the staged copy open under `root_key`. If it already does, nothing changes. Otherwise,
  // with `backup_root_key` (the root key current when the backup was taken) that opens it, every
  // sealed value is re-sealed under `root_key` (RotateRootKey) and `passphrase_kdf` becomes its
  // passphrase record (empty: none). PermissionDenied if neither key opens it. Returns whether it
  // re-sealed.
  Result<bool> AdoptRootKey(const SecretBytes& root_key, const std::optional<SecretBytes>& backup_root_key,
                            ByteView passphrase_kdf);

  // Destroys in the staged copy every key version and shreds every tenant in `destructions` that
  // it still holds; those it does not hold (already destroyed, unknown tenant) are skipped.
  // Returns the ones applied, with the tenant's name. FailedPrecondition (nothing installed) for a version that is the
  // copy's active version: the backup predates that tenant's rotation, so the keys the catalog
  // now uses are not in it.
  struct Applied {
    KeyDestruction destruction;
    std::string tenant_name;
  };
  Result<std::vector<Applied>> Reapply(const SecretBytes& root_key, const std::vector<KeyDestruction>& destructions);

  // Marks every dual-control approval of the staged copy that is still open at `now` (not used,
  // not expired) as used: the backup cannot know whether it was used since, and an approval must
  // never serve twice. Returns how many it voided (0 for a keystore without approvals).
  // `root_key` opens the staged copy (after AdoptRootKey): the voided approvals get new MACs.
  Result<size_t> VoidOpenApprovals(const SecretBytes& root_key, UnixMillis now);

  // Opens every sealed value of the staged copy under `root_key` and counts what it holds.
  Result<KeystoreContents> Verify(const SecretBytes& root_key);
  // The tenant ids of the staged copy that are not shredded.
  Result<std::vector<std::string>> LiveTenantIds();

  struct Installed {
    std::vector<std::string> moved_aside;  // the previous keystore's files, renamed, never deleted
  };
  // Installs the staged copy as <data_dir>/keystore.db: it is made self-contained (no -wal) and
  // fsync'd; the current keystore.db and its -wal, -shm and -journal files (those that exist) are
  // checkpointed when possible and renamed to keystore.db.replaced-<UTC time of `now`>[-wal...];
  // the copy is renamed into place and the directory fsync'd. Works without a current keystore.
  // The caller must hold the data-directory lock (no daemon may have keystore.db open).
  Result<Installed> Install(UnixMillis now);

  // The newest key event of the backup as staged (before any re-seal or re-apply adds its own):
  // destructions recorded elsewhere from about this time on may be missing from the backup.
  UnixMillis newest_event() const { return newest_event_; }
  const std::string& staged_path() const { return staged_; }
  const std::string& keystore_path() const { return keystore_; }

  StagedRestore(StagedRestore&& other) noexcept;
  StagedRestore& operator=(StagedRestore&&) = delete;
  StagedRestore(const StagedRestore&) = delete;
  StagedRestore& operator=(const StagedRestore&) = delete;
  ~StagedRestore();

 private:
  StagedRestore(std::string data_dir, std::string staged) noexcept;

  std::string data_dir_;
  std::string staged_;    // empty once installed or moved from
  std::string keystore_;  // <data_dir>/keystore.db
  UnixMillis newest_event_ = 0;
};

}  // namespace coffre::keystore
