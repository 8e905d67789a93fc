// ApprovalStore on SQLite (sqlite_keystore.h): dual control approvals, checked and changed in the
// same transaction as the admin credentials they name.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"
#include "keystore/rows.h"
#include "keystore/sqlite_keystore.h"

namespace coffre::keystore::internal {

using db::Statement;

namespace {

Result<Approval> ToApproval(const ApprovalRow& r) {
  Approval a;
  a.id = r.id;
  auto op = ParseGuardedOperation(r.operation);
  if (!op) {
    return Status::Corruption("approval " + LoggableId(r.id) + " names an unknown operation");
  }
  a.operation = *op;
  a.tenant_id = r.tenant_id;
  a.version = r.version;
  a.requested_by = r.requested_by;
  a.requested = r.requested;
  a.expires = r.expires;
  a.approved_by = r.approved_by;
  a.approved = r.approved;
  a.used = r.used;
  return a;
}

std::string DescribeApproval(const Approval& a) {
  std::string out = std::string(GuardedOperationName(a.operation));
  if (a.operation == GuardedOperation::kDestroyKeyVersion) {
    out += " version " + std::to_string(a.version);
  }
  if (a.operation == GuardedOperation::kCreateAdminCredential || a.operation == GuardedOperation::kDestroyNamedKey) {
    out += " " + a.tenant_id;
  }
  return out;
}

// The tenant whose key_events an approval's events belong to ("" = keystore-wide).
std::string EventTenant(const Approval& a) { return TargetsTenant(a.operation) ? a.tenant_id : std::string(); }

}  // namespace

Result<ApprovalRow> SqliteKeystore::LoadApprovalRow(const std::string& id) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kApprovalRowColumns) +
                                                             " FROM approvals WHERE id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::NotFound("no approval " + id);
  }
  ApprovalRow r = ReadApprovalRow(st);
  if (RowCheck check = Check(ApprovalRowKey(id), r); check != RowCheck::kOk) {
    return Refuse("approval " + LoggableId(id), check,
                  Status::PermissionDenied("approval " + id + std::string(kIntegrityMessage) + "; request a new one"));
  }
  return r;
}

// PermissionDenied unless `name` is an enabled credential of the admin role (auditors approve
// nothing: separation of duties).
Status SqliteKeystore::CheckEnabledAdmin(const std::string& name, UnixMillis* created) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kAdminCredentialColumns) +
                                                             " FROM admin_credentials WHERE name = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(name));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::PermissionDenied("no admin credential named " + name);
  }
  AdminCredentialRow r = ReadAdminCredentialRow(st);
  if (RowCheck check = Check(AdminRowKey(name), r); check != RowCheck::kOk) {
    return Refuse("admin credential " + LoggableId(name), check,
                  Status::PermissionDenied("admin credential " + name + std::string(kIntegrityMessage)));
  }
  if (r.disabled) {
    return Status::PermissionDenied("admin credential " + name + " is disabled");
  }
  if (r.role != AdminRoleName(AdminRole::kAdmin)) {
    return Status::PermissionDenied("credential " + name +
                                    " is an auditor credential; only admin credentials take "
                                    "part in dual control");
  }
  if (created != nullptr) {
    *created = r.created;
  }
  return Status::Ok();
}

Result<Approval> SqliteKeystore::RequestApproval(const std::string& id, GuardedOperation operation,
                                                 const std::string& tenant_id, uint32_t version,
                                                 const std::string& requested_by, int64_t ttl_ms) {
  COFFRE_RETURN_IF_ERROR(CheckApprovalTarget(operation, tenant_id, version));
  const bool for_tenant = TargetsTenant(operation);
  if (ttl_ms <= 0) {
    return Status::InvalidArgument("an approval's lifetime must be positive");
  }
  Approval a;
  a.id = id;
  a.operation = operation;
  a.tenant_id = tenant_id;
  a.version = version;
  a.requested_by = requested_by;
  a.requested = Now();
  a.expires = a.requested + ttl_ms;
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(CheckEnabledAdmin(requested_by));
    if (for_tenant) {
      // The target is a key: a tenant's default key (its id is the tenant's) or a named key.
      std::string owner = tenant_id;
      COFFRE_ASSIGN_OR_RETURN(std::optional<NamedKeyRow> named, LoadNamedKeyRow(tenant_id));
      if (named) {
        if (named->destroyed) {
          return Status::FailedPrecondition("key " + named->name + std::string(kDestroyedKeyMessage));
        }
        owner = named->tenant_id;
      } else if (operation == GuardedOperation::kDestroyNamedKey) {
        return Status::NotFound("no named key " + tenant_id);
      }
      COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(owner));
      if (shredded) {
        return Status::FailedPrecondition("tenant " + owner + std::string(kShreddedMessage));
      }
    }
    ApprovalRow row;
    row.id = a.id;
    row.operation = std::string(GuardedOperationName(operation));
    row.tenant_id = tenant_id;
    row.version = version;
    row.requested_by = requested_by;
    row.requested = a.requested;
    row.expires = a.expires;
    row.gen = 1;
    Status inserted = InsertRow(*conn_, keys_.row_mac, row);
    if (inserted.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("approval " + id + " already exists");
    }
    COFFRE_RETURN_IF_ERROR(inserted);
    Saw(ApprovalRowKey(id), row.gen);
    return RecordEvent(*conn_, a.requested, EventTenant(a), "approval-requested", version,
                       a.id + " " + DescribeApproval(a) + " by " + requested_by);
  });
  if (!written.ok()) {
    return written;
  }
  return a;
}

Result<Approval> SqliteKeystore::GetApproval(const std::string& id) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(ApprovalRow r, LoadApprovalRow(id));
  return ToApproval(r);
}

Result<std::vector<Approval>> SqliteKeystore::ListApprovals(size_t limit) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kApprovalRowColumns) +
                                                             " FROM approvals ORDER BY requested DESC, id LIMIT ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX))));
  std::vector<Approval> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    ApprovalRow r = ReadApprovalRow(st);
    if (RowCheck check = Check(ApprovalRowKey(r.id), r); check != RowCheck::kOk) {
      (void)Refuse("approval " + LoggableId(r.id), check, Status::Ok());  // left out of the list
      continue;
    }
    COFFRE_ASSIGN_OR_RETURN(Approval a, ToApproval(r));
    out.push_back(std::move(a));
  }
  return out;
}

Result<Approval> SqliteKeystore::GrantApproval(const std::string& id, const std::string& approved_by) {
  const UnixMillis now = Now();
  Approval a;
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(ApprovalRow row, LoadApprovalRow(id));
    COFFRE_ASSIGN_OR_RETURN(a, ToApproval(row));
    COFFRE_RETURN_IF_ERROR(CheckGrantable(a, approved_by, now));
    UnixMillis approver_created = 0;
    COFFRE_RETURN_IF_ERROR(CheckEnabledAdmin(approved_by, &approver_created));
    // Checked here, in the grant's transaction: a credential that did not exist when the request
    // was made may be the requester's own second name.
    if (approver_created > a.requested) {
      return Status::PermissionDenied("admin credential " + approved_by + " was created after approval " + id +
                                      " was requested; only a credential that existed then can grant it");
    }
    row.approved_by = approved_by;
    row.approved = now;
    row.gen = NextGen(ApprovalRowKey(id), row.gen);
    COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, row));
    Saw(ApprovalRowKey(id), row.gen);
    a.approved_by = approved_by;
    a.approved = now;
    return RecordEvent(
        *conn_, now, EventTenant(a), "approval-granted", a.version,
        id + " " + DescribeApproval(a) + " by " + approved_by + " (requested by " + a.requested_by + ")");
  });
  if (!written.ok()) {
    return written;
  }
  return a;
}

Result<Approval> SqliteKeystore::UseApproval(const std::string& id, GuardedOperation operation,
                                             const std::string& tenant_id, uint32_t version) {
  const UnixMillis now = Now();
  Approval a;
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(ApprovalRow row, LoadApprovalRow(id));
    COFFRE_ASSIGN_OR_RETURN(a, ToApproval(row));
    if (a.operation != operation || a.tenant_id != tenant_id || a.version != version) {
      return Status::InvalidArgument("approval " + id + " approves " + DescribeApproval(a) +
                                     (!TargetsTenant(a.operation) ? std::string() : " of tenant " + a.tenant_id) +
                                     ", not this operation");
    }
    const ApprovalState state = a.StateAt(now);
    if (state != ApprovalState::kApproved) {
      return Status::FailedPrecondition(
          "approval " + id + " is " + std::string(ApprovalStateName(state)) +
          (state == ApprovalState::kPending ? ": a second admin must grant it first" : ": request a new one"));
    }
    // Both people must still be trusted when the operation runs.
    for (const std::string& who : {a.requested_by, *a.approved_by}) {
      if (Status admin = CheckEnabledAdmin(who); !admin.ok()) {
        return Status::FailedPrecondition("approval " + id + " no longer counts: " + admin.message());
      }
    }
    row.used = now;
    row.gen = NextGen(ApprovalRowKey(id), row.gen);
    COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, row));
    Saw(ApprovalRowKey(id), row.gen);
    a.used = now;
    return RecordEvent(*conn_, now, EventTenant(a), "approval-used", a.version, id + " " + DescribeApproval(a));
  });
  if (!written.ok()) {
    return written;
  }
  return a;
}

Status SqliteKeystore::ReleaseApproval(const std::string& id) {
  const UnixMillis now = Now();
  return WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(ApprovalRow row, LoadApprovalRow(id));
    COFFRE_ASSIGN_OR_RETURN(Approval a, ToApproval(row));
    if (!a.used) {
      return Status::FailedPrecondition("approval " + id + " is not in use");
    }
    row.used = std::nullopt;
    row.gen = NextGen(ApprovalRowKey(id), row.gen);
    COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, row));
    Saw(ApprovalRowKey(id), row.gen);
    return RecordEvent(*conn_, now, EventTenant(a), "approval-released", a.version, id + " " + DescribeApproval(a));
  });
}

}  // namespace coffre::keystore::internal
