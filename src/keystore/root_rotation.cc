// Root key rotation: every value the keystore seals under the root key (tenant key versions,
// access-key secrets, the check value) is opened under the current key and sealed again under the
// new one, in one SQLite transaction. Object data and the catalog's wrapped data keys are
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

namespace coffre::keystore {
namespace {

using db::Connection;
using db::Statement;
using db::Transaction;

// The check value opens under `root` (and holds the expected plaintext).
Result<bool> CheckValueOpens(Connection& conn, const SecretBytes& root) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("SELECT value FROM meta WHERE name = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(internal::kRootKeyCheckName));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::FailedPrecondition("the keystore has no root-key check value (never opened?)");
  }
  auto opened = crypto::Open(root, st.ColumnBlobView(0), AsBytes(internal::kCheckAad));
  return opened.ok() && AsChars(*opened) == internal::kCheckPlaintext;
}

struct SealedTenantKey {
  std::string tenant_id;
  uint32_t version = 0;
  Bytes sealed;
};

struct SealedSecret {
  std::string access_key_id;
  std::string tenant_id;
  Bytes sealed;
};

// Opens `sealed` under `from` and seals it again under `to`, with the same associated data.
Result<Bytes> Reseal(const SecretBytes& from, const SecretBytes& to, ByteView sealed, ByteView aad,
                     const std::string& what) {
  auto plain = crypto::OpenSecret(from, sealed, aad);
  if (!plain.ok()) {
    return Status::Corruption(what + " does not open under the current root key (altered row?); nothing was changed");
  }
  return crypto::Seal(to, plain->Reveal(), aad);
}

}  // namespace

Result<RootKeyRotationReport> RotateRootKey(const std::string& keystore_path, const SecretBytes& current_root,
                                            const SecretBytes& new_root, const RootKeyRotationOptions& options) {
  if (current_root.size() != crypto::kKeySize || new_root.size() != crypto::kKeySize) {
    return Status::InvalidArgument("root keys must be 32 bytes");
  }
  if (ConstantTimeEquals(current_root.Reveal(), new_root.Reveal())) {
    return Status::InvalidArgument("the new root key is the current root key; generate a new one "
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
    COFFRE_ASSIGN_OR_RETURN(bool current_ok, CheckValueOpens(conn, current_root));
    if (!current_ok) {
      return Status::PermissionDenied("root key does not match this keystore");
    }

    std::vector<SealedTenantKey> tenant_keys;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("SELECT tenant_id, version, wrapped_key FROM tenant_keys "
                                                         "ORDER BY tenant_id, version"));
      while (true) {
        COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) {
          break;
        }
        tenant_keys.push_back({st.ColumnText(0), static_cast<uint32_t>(st.ColumnInt64(1)), st.ColumnBlob(2)});
      }
    }
    std::vector<SealedSecret> secrets;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("SELECT access_key_id, tenant_id, secret FROM access_keys "
                                                         "ORDER BY access_key_id"));
      while (true) {
        COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) {
          break;
        }
        secrets.push_back({st.ColumnText(0), st.ColumnText(1), st.ColumnBlob(2)});
      }
    }

    size_t done = 0;
    for (const auto& k : tenant_keys) {
      COFFRE_ASSIGN_OR_RETURN(
          Bytes resealed,
          Reseal(current_root, new_root, k.sealed, internal::TenantKeyAad(k.tenant_id, k.version),
                 "key version " + std::to_string(k.version) + " of tenant " + k.tenant_id));
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("UPDATE tenant_keys SET wrapped_key = ? "
                                                               "WHERE tenant_id = ? AND version = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(resealed, k.tenant_id, k.version));
      COFFRE_RETURN_IF_ERROR(st.Run());
      ++report.tenant_keys;
      if (options.after_row) {
        COFFRE_RETURN_IF_ERROR(options.after_row(++done));
      }
    }
    for (const auto& s : secrets) {
      COFFRE_ASSIGN_OR_RETURN(Bytes resealed,
                              Reseal(current_root, new_root, s.sealed,
                                     internal::AccessKeySecretAad(s.access_key_id, s.tenant_id),
                                     "the secret of access key " + s.access_key_id));
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              conn.PrepareCached("UPDATE access_keys SET secret = ? WHERE access_key_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(resealed, s.access_key_id));
      COFFRE_RETURN_IF_ERROR(st.Run());
      ++report.access_keys;
      if (options.after_row) {
        COFFRE_RETURN_IF_ERROR(options.after_row(++done));
      }
    }

    // The new check value: from this commit on, opening with the old key is refused at once.
    {
      COFFRE_ASSIGN_OR_RETURN(Bytes check, crypto::Seal(new_root, AsBytes(internal::kCheckPlaintext),
                                                        AsBytes(internal::kCheckAad)));
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("UPDATE meta SET value = ? WHERE name = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(check, internal::kRootKeyCheckName));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
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
