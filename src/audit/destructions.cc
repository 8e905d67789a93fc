#include "coffre/audit/destructions.h"

#include <sys/stat.h>

#include <memory>

#include "coffre/db/sqlite.h"

namespace coffre::audit {

Result<std::vector<DestructionRecord>> ReadDestructions(const std::string& path,
                                                        const std::vector<std::string>& tenants, UnixMillis since_ms) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::NotFound("no audit log at " + path);
  }
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<db::Connection> conn, db::Connection::Open(path, db::OpenMode::kQueryOnly));
  // One snapshot for every tenant; each query follows the (tenant, time_ms) index.
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(*conn, db::Transaction::Kind::kDeferred));
  const std::string shred(OperationName(Operation::kTenantShred));
  const std::string destroy(OperationName(Operation::kTenantKeyDestroy));
  const std::string destroy_named(OperationName(Operation::kNamedKeyDestroy));
  const std::string success(OutcomeName(Outcome::kSuccess));
  std::vector<DestructionRecord> out;
  for (const std::string& tenant : tenants) {
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement q, conn->Prepare("SELECT key_version, operation, time_ms, key_id FROM records WHERE tenant = ? "
                                       "AND time_ms >= ? AND operation IN (?, ?, ?) AND outcome = ? ORDER BY gseq"));
    COFFRE_RETURN_IF_ERROR(q.BindAll(tenant, since_ms, shred, destroy, destroy_named, success));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) {
        break;
      }
      DestructionRecord r;
      r.tenant = tenant;
      r.key_version = static_cast<uint32_t>(q.ColumnInt64(0));
      const std::string_view operation = q.ColumnTextView(1);
      r.operation = operation == shred           ? Operation::kTenantShred
                    : operation == destroy_named ? Operation::kNamedKeyDestroy
                                                 : Operation::kTenantKeyDestroy;
      r.time_ms = q.ColumnInt64(2);
      r.key_id = q.ColumnText(3);
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace coffre::audit
