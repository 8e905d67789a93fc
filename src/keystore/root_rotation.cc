// Root key rotation: every value the keystore seals under the root key's wrapping subkey (tenant
// key versions, access-key secrets, the admin token key, the check value) is opened under the
// current key and sealed again under the new one, and every authenticated row gets a MAC under the
// new row key, in one SQLite transaction (rows.cc, ResealAll). Object data and the catalog's wrapped data keys are
// untouched: they are wrapped under tenant keys, whose plaintext does not change.

#include <sys/stat.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "coffre/common/clock.h"
#include "coffre/crypto/aead.h"
#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"
#include "keystore/rows.h"

namespace coffre::keystore {
namespace {

using db::Connection;
using db::Statement;
using db::Transaction;

// The keystore's check value (FailedPrecondition if it has none).
Result<Bytes> CheckValue(Connection& conn) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("SELECT value FROM meta WHERE name = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(internal::kRootKeyCheckName));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::FailedPrecondition("the keystore has no root-key check value (never opened?)");
  }
  return st.ColumnBlob(0);
}

}  // namespace

Result<RootKeyRotationReport> RotateRootKey(const std::string& keystore_path, const SecretBytes& current_root,
                                            const SecretBytes& new_root, const RootKeyRotationOptions& options) {
  if (current_root.size() != crypto::kKeySize || new_root.size() != crypto::kKeySize) {
    return Status::InvalidArgument("root keys must be 32 bytes");
  }
  if (ConstantTimeEquals(current_root.Reveal(), new_root.Reveal())) {
    return Status::InvalidArgument(
        "the new root key is the current root key; generate a new one "
        "(coffre keystore init --root-key-file FILE)");
  }
  struct stat file {};
  if (::stat(keystore_path.c_str(), &file) != 0) {
    return Status::NotFound("no keystore at " + keystore_path + " (check --data-dir)");
  }
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> opened,
                          Connection::Open(keystore_path, db::OpenMode::kReadWrite));
  Connection& conn = *opened;
  COFFRE_RETURN_IF_ERROR(internal::MigrateKeystoreSchema(conn));
  // The rows rewritten here held values sealed under the old key: zero freed space rather than
  // leave old ciphertexts in free pages.
  COFFRE_RETURN_IF_ERROR(conn.Exec("PRAGMA secure_delete = ON"));

  RootKeyRotationReport report;
  {
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(conn));
    // Checked under the write lock: a concurrent rotation that committed first makes this one
    // fail here instead of sealing rows under a key the keystore no longer uses.
    COFFRE_ASSIGN_OR_RETURN(Bytes check, CheckValue(conn));
    internal::KeystoreKeys current = internal::DeriveKeystoreKeys(current_root);
    const internal::CheckFormat format = internal::CheckValueFormat(check, current_root, current.wrap);
    if (format == internal::CheckFormat::kNoMatch) {
      return Status::PermissionDenied("root key does not match this keystore");
    }
    internal::ResealSource from;
    if (format == internal::CheckFormat::kLegacy) {
      // Written before rows were authenticated: converted on the way, as Keystore::Open would.
      from.legacy = true;
      from.legacy_root = &current_root;
    } else {
      COFFRE_ASSIGN_OR_RETURN(current.admin_token, internal::LoadAdminTokenKey(conn, current.wrap, false));
      from.keys = &current;
    }
    const internal::KeystoreKeys next = internal::DeriveKeystoreKeys(new_root);
    COFFRE_ASSIGN_OR_RETURN(internal::ResealReport resealed, internal::ResealAll(conn, from, next, options.after_row));
    report.tenant_keys = resealed.tenant_keys;
    report.access_keys = resealed.access_keys;

    // The passphrase parameters describe the root key's source: they must follow the new key.
    if (options.passphrase_kdf.empty()) {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("DELETE FROM meta WHERE name = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(internal::kPassphraseKdfName));
      COFFRE_RETURN_IF_ERROR(st.Run());
    } else {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("INSERT INTO meta(name, value) VALUES(?, ?) "
                                                         "ON CONFLICT(name) DO UPDATE SET value = excluded.value"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(internal::kPassphraseKdfName, options.passphrase_kdf));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("INSERT INTO key_events(at, tenant_id, event, version, "
                                                         "detail) VALUES(?, '', 'root-key-rotated', 0, ?)"));
      const std::string detail = std::to_string(report.tenant_keys) + " tenant key version(s), " +
                                 std::to_string(report.access_keys) + " access-key secret(s) re-sealed";
      COFFRE_RETURN_IF_ERROR(st.BindAll(ToUnixMillis(Clock::System().Now()), detail));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    COFFRE_RETURN_IF_ERROR(tx.Commit());
  }
  // Moves the rewritten pages out of the WAL into the database file, so the old sealed values do
  // not linger there (best effort: a reader in another process may hold the WAL; the next
  // checkpoint does it).
  (void)conn.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  return report;
}

}  // namespace coffre::keystore
