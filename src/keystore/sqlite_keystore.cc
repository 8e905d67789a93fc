// The keystore on SQLite (sqlite_keystore.h): opening it, and what its parts share: row checks,
// cache revalidation, key events and the integrity check.

#include "keystore/sqlite_keystore.h"

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/blob_format.h"
#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"
#include "keystore/rows.h"

namespace coffre::keystore::internal {

using db::Connection;
using db::Statement;
using db::Transaction;

namespace {

constexpr std::string_view kCheckName = kRootKeyCheckName;

Result<int64_t> DataVersion(Connection& conn) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("PRAGMA data_version"));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::Internal("PRAGMA data_version returned no row");
  }
  return st.ColumnInt64(0);
}

// Verifies the root key against the keystore's check value and loads the keys derived from it;
// records a check value in a new keystore; converts a keystore written before rows were
// authenticated (its check value opens under the raw root key), in one transaction.
Result<KeystoreKeys> OpenKeys(Connection& conn, const SecretBytes& root) {
  KeystoreKeys keys = DeriveKeystoreKeys(root);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(conn));
  Bytes sealed;
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("SELECT value FROM meta WHERE name = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(kCheckName));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      sealed = st.ColumnBlob(0);
    }
  }
  if (sealed.empty()) {
    COFFRE_ASSIGN_OR_RETURN(Bytes check, SealCheckValue(keys.wrap));
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("INSERT INTO meta(name, value) VALUES(?, ?)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(kCheckName, check));
    COFFRE_RETURN_IF_ERROR(st.Run());
    COFFRE_ASSIGN_OR_RETURN(keys.admin_token, LoadAdminTokenKey(conn, keys.wrap, /*create=*/true));
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    return keys;
  }
  switch (CheckValueFormat(sealed, root, keys.wrap)) {
    case CheckFormat::kNoMatch:
      return Status::PermissionDenied("root key does not match this keystore");
    case CheckFormat::kCurrent:
      break;
    case CheckFormat::kLegacy: {
      ResealSource from;
      from.legacy = true;
      from.legacy_root = &root;
      COFFRE_ASSIGN_OR_RETURN(ResealReport report, ResealAll(conn, from, keys, nullptr));
      const std::string detail = std::to_string(report.rows) + " row(s) authenticated, " +
                                 std::to_string(report.tenant_keys + report.access_keys) +
                                 " sealed value(s) moved to the derived wrapping key";
      COFFRE_RETURN_IF_ERROR(
          RecordEvent(conn, ToUnixMillis(Clock::System().Now()), "", "keystore-rows-authenticated", 0, detail));
      spdlog::warn("keystore: converted to authenticated rows under the root key: {}", detail);
      break;
    }
  }
  COFFRE_ASSIGN_OR_RETURN(keys.admin_token, LoadAdminTokenKey(conn, keys.wrap, /*create=*/false));
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  return keys;
}

}  // namespace

// Appends a key event inside the caller's transaction.
Status RecordEvent(Connection& conn, UnixMillis at, std::string_view tenant_id, std::string_view event,
                   uint32_t version, std::string_view detail) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("INSERT INTO key_events(at, tenant_id, event, version, "
                                                           "detail) VALUES(?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(at, tenant_id, event, version, detail));
  return st.Run();
}

SqliteKeystore::SqliteKeystore(std::unique_ptr<Connection> conn, KeystoreKeys keys, const Clock& clock,
                               int64_t data_version)
    : clock_(clock),
      keys_(std::move(keys)),
      conn_(std::move(conn)),
      data_version_(data_version),
      last_flush_(Now()),
      last_revalidate_(Now()) {}

SqliteKeystore::~SqliteKeystore() {
  // Nothing can report an error from here; the times are advisory.
  (void)FlushLastUsed(/*force=*/true);
}

bool SqliteKeystore::RootKeyRotatedLocked() {
  auto st = conn_->PrepareCached("SELECT value FROM meta WHERE name = ?");
  if (!st.ok() || !st->BindAll(kCheckName).ok()) {
    return false;
  }
  auto row = st->Step();
  if (!row.ok() || !*row) {
    return false;
  }
  auto opened = crypto::Open(keys_.wrap, st->ColumnBlobView(0), AsBytes(kCheckAadV2));
  return !(opened.ok() && AsChars(*opened) == kCheckPlaintext);
}

Status SqliteKeystore::Refuse(const std::string& what, RowCheck why, Status as) {
  if (why == RowCheck::kForged && RootKeyRotatedLocked()) {
    // Every row fails under the old keys once the root key was rotated by another process: that
    // is not a forgery, and only a restart with the new key helps.
    return Status::FailedPrecondition(std::string(kRotatedMessage));
  }
  integrity_failures_.fetch_add(1);
  if (why == RowCheck::kReplayed) {
    spdlog::error("keystore: {} was written back in an older state than this process saw (replayed row); refused",
                  what);
  } else {
    spdlog::error("keystore: {}{}", what, kIntegrityMessage);
  }
  return as;
}

void SqliteKeystore::Revalidate(UnixMillis now) {
  {
    std::lock_guard lock(cache_mu_);
    if (now - last_revalidate_ < kRevalidateIntervalMs && now >= last_revalidate_) {
      return;
    }
    last_revalidate_ = now;
  }
  bool changed = false;
  {
    std::lock_guard lock(db_mu_);
    auto v = DataVersion(*conn_);
    // If the question cannot be asked, assume the worst: reload.
    changed = !v.ok() || *v != data_version_;
    if (v.ok()) {
      data_version_ = *v;
    }
  }
  if (changed) {
    std::lock_guard lock(cache_mu_);
    InvalidateLocked();
  }
}

Status SqliteKeystore::UnlessRootKeyRotated(Status failed) {
  std::lock_guard lock(db_mu_);
  return RootKeyRotatedLocked() ? Status::FailedPrecondition(std::string(kRotatedMessage)) : failed;
}

// --- key events and integrity ------------------------------------------------------------

Result<std::vector<KeyEvent>> SqliteKeystore::ListKeyEvents(const std::string& tenant_id) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT id, at, tenant_id, event, version, detail "
                                                             "FROM key_events WHERE tenant_id = ? ORDER BY id"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
  std::vector<KeyEvent> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    out.push_back(KeyEvent{st.ColumnInt64(0), st.ColumnInt64(1), st.ColumnText(2), st.ColumnText(3),
                           static_cast<uint32_t>(st.ColumnInt64(4)), st.ColumnText(5)});
  }
  return out;
}

Status SqliteKeystore::CheckIntegrity() {
  RowScan scan;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, Transaction::Kind::kDeferred));
    if (RootKeyRotatedLocked()) {
      return Status::FailedPrecondition(std::string(kRotatedMessage));
    }
    COFFRE_ASSIGN_OR_RETURN(scan, ScanRows(*conn_, keys_));
    COFFRE_RETURN_IF_ERROR(tx.Commit());
  }
  const uint64_t refused = integrity_failures_.load();
  if (scan.failed == 0 && refused == 0) {
    return Status::Ok();
  }
  std::string msg =
      std::to_string(scan.failed) + " of " + std::to_string(scan.rows) + " keystore row(s) fail their integrity check";
  if (scan.failed != 0) {
    msg += " (first: " + scan.first_failure + ")";
  }
  msg += "; " + std::to_string(refused) +
         " read(s) refused a forged or replayed row since start (see the log; docs/KEYS.md \"Authenticated rows\")";
  return Status::Corruption(msg);
}

}  // namespace coffre::keystore::internal

namespace coffre::keystore {

Result<std::unique_ptr<Keystore>> Keystore::Open(const std::string& path, SecretBytes root_key, const Clock& clock) {
  if (root_key.size() != crypto::kKeySize) {
    return Status::InvalidArgument("root key must be 32 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<db::Connection> conn,
                          db::Connection::Open(path, db::OpenMode::kReadWriteCreate));
  COFFRE_RETURN_IF_ERROR(internal::MigrateKeystoreSchema(*conn));
  COFFRE_ASSIGN_OR_RETURN(internal::KeystoreKeys keys, internal::OpenKeys(*conn, root_key));
  root_key = SecretBytes();  // only the derived keys are kept
  // Deleted rows (destroyed key versions, shredded tenants, deleted access keys) are overwritten
  // with zeros rather than left in free pages.
  COFFRE_RETURN_IF_ERROR(conn->Exec("PRAGMA secure_delete = ON"));
  COFFRE_ASSIGN_OR_RETURN(int64_t data_version, internal::DataVersion(*conn));
  return std::unique_ptr<Keystore>(new internal::SqliteKeystore(std::move(conn), std::move(keys), clock, data_version));
}

}  // namespace coffre::keystore
