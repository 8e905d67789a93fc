#include <string>

#include "coffre/db/sqlite.h"

namespace coffre::db {

Result<int64_t> SchemaVersion(Connection& conn) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("PRAGMA user_version"));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::Internal("PRAGMA user_version returned no row");
  }
  return st.ColumnInt64(0);
}

Status Migrate(Connection& conn, std::span<const std::string_view> migrations) {
  const auto latest = static_cast<int64_t>(migrations.size());
  while (true) {
    // The version is read again inside the write transaction: another process may have migrated
    // the same file between our read and our BEGIN.
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(conn, Transaction::Kind::kImmediate));
    COFFRE_ASSIGN_OR_RETURN(int64_t version, SchemaVersion(conn));
    if (version == latest) {
      return tx.Commit();
    }
    if (version < 0 || version > latest) {
      return Status::FailedPrecondition("database " + conn.path() + " has schema version " + std::to_string(version) +
                                        ", newer than this program understands (" + std::to_string(latest) + ")");
    }
    COFFRE_RETURN_IF_ERROR(conn.Exec(migrations[static_cast<size_t>(version)]));
    // PRAGMA does not take bound parameters; the value is an integer we computed.
    COFFRE_RETURN_IF_ERROR(conn.Exec("PRAGMA user_version=" + std::to_string(version + 1)));
    COFFRE_RETURN_IF_ERROR(tx.Commit());
  }
}

}  // namespace coffre::db
