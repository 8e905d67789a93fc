#include "coffre/service/dual_control.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace coffre::service {

using keystore::Approval;
using keystore::GuardedOperation;

Authorization::~Authorization() {
  if (keys_ == nullptr || approval_id_.empty() || done_) {
    return;
  }
  if (Status st = keys_->ReleaseApproval(approval_id_); !st.ok()) {
    spdlog::warn("approval {} could not be released after its operation failed ({}); it stays used", approval_id_,
                 st.ToString());
  }
}

Authorization& Authorization::operator=(Authorization&& other) noexcept {
  if (this != &other) {
    Authorization released(std::move(*this));  // releases what this held, unless done
    keys_ = other.keys_;
    approval_id_ = std::move(other.approval_id_);
    done_ = other.done_;
    other.keys_ = nullptr;
  }
  return *this;
}

DualControl::DualControl(keystore::Keystore& keys, audit::Recorder* recorder, DualControlPolicy policy,
                         const Clock& clock)
    : keys_(keys), recorder_(recorder), policy_(policy), clock_(clock) {}

audit::Event DualControl::ApprovalEvent(audit::Operation operation, const Approval& approval,
                                        const audit::RequestInfo& request, const std::string& actor) const {
  audit::Event ev;
  ev.operation = operation;
  if (keystore::TargetsTenant(approval.operation)) {
    // The target is a key: a tenant's default key, whose id is the tenant's (docs/KEYS.md), or a
    // named key, whose tenant the keystore knows.
    ev.key_id = approval.tenant_id;
    auto named = keys_.NamedKeyById(approval.tenant_id);
    ev.tenant = named.ok() ? named->tenant_id : approval.tenant_id;
  }
  ev.key_version = approval.version;
  ev.request = request;
  ev.request.access_key_id = actor;
  // The approval's id and what it approves: an auditor matches request, grant and the operation's
  // own record ("... with approval apr-...") by it.
  ev.request.action = request.action + " " + approval.id + " " + std::string(GuardedOperationName(approval.operation));
  if (approval.operation == GuardedOperation::kCreateAdminCredential) {
    ev.request.action += " " + approval.tenant_id;  // the credential's name
  }
  if (operation == audit::Operation::kApprovalGrant) {
    ev.request.action += " requested by " + approval.requested_by;
  }
  return ev;
}

void DualControl::RecordFailure(audit::Event event) {
  if (recorder_ == nullptr) {
    return;
  }
  event.outcome = audit::Outcome::kFailure;
  if (Status st = recorder_->Record(event); !st.ok()) {
    spdlog::error("audit: cannot record that {} failed: {}", event.request.action, st.ToString());
  }
}

Result<Approval> DualControl::Request(GuardedOperation operation, const std::string& tenant_id, uint32_t version,
                                      const std::string& requester, const audit::RequestInfo& request) {
  // Malformed requests are refused before anything is recorded.
  COFFRE_RETURN_IF_ERROR(keystore::CheckApprovalTarget(operation, tenant_id, version));
  Approval planned;
  planned.id = keystore::NewApprovalId();
  planned.operation = operation;
  planned.tenant_id = tenant_id;
  planned.version = version;
  planned.requested_by = requester;
  const audit::Event event = ApprovalEvent(audit::Operation::kApprovalRequest, planned, request, requester);
  if (recorder_ != nullptr) {
    if (Status recorded = recorder_->Record(event); !recorded.ok()) {
      return Status::Unavailable("the audit log cannot record the approval request (" + recorded.message() +
                                 "); nothing was requested");
    }
  }
  auto stored = keys_.RequestApproval(planned.id, operation, tenant_id, version, requester, policy_.approval_ttl_ms);
  if (!stored.ok()) {
    RecordFailure(event);
  }
  return stored;
}

Result<Approval> DualControl::Grant(const std::string& approval_id, const std::string& approver,
                                    const audit::RequestInfo& request) {
  COFFRE_ASSIGN_OR_RETURN(Approval current, keys_.GetApproval(approval_id));
  // The check the keystore makes again atomically, made first so that a grant that cannot
  // succeed leaves no approval.grant record.
  COFFRE_RETURN_IF_ERROR(keystore::CheckGrantable(current, approver, ToUnixMillis(clock_.Now())));
  const audit::Event event = ApprovalEvent(audit::Operation::kApprovalGrant, current, request, approver);
  if (recorder_ != nullptr) {
    if (Status recorded = recorder_->Record(event); !recorded.ok()) {
      return Status::Unavailable("the audit log cannot record the approval (" + recorded.message() + "); approval " +
                                 approval_id + " was not granted");
    }
  }
  auto granted = keys_.GrantApproval(approval_id, approver);
  if (!granted.ok()) {
    RecordFailure(event);
  }
  return granted;
}

Result<Authorization> DualControl::Authorize(GuardedOperation operation, const std::string& tenant_id, uint32_t version,
                                             const std::string& approval_id) {
  if (approval_id.empty()) {
    if (policy_.required) {
      return Status::PermissionDenied(
          "dual control is on: " + std::string(GuardedOperationName(operation)) +
          " needs an approval. One admin requests it (coffre approval request, or POST /approvals on the admin "
          "API), a second admin grants it (coffre approval approve ID, or POST /approvals/ID/approve); then run "
          "this command again with --approval ID");
    }
    return Authorization();
  }
  if (auto used = keys_.UseApproval(approval_id, operation, tenant_id, version); !used.ok()) {
    return used.status();
  }
  return Authorization(&keys_, approval_id);
}

namespace {

audit::Event CredentialEvent(audit::Operation operation, const std::string& name, keystore::AdminRole role,
                             const audit::RequestInfo& request, const std::string& suffix) {
  // Global chain (no tenant); the credential acted on goes where access-key events put theirs.
  audit::Event ev;
  ev.operation = operation;
  ev.request = request;
  ev.request.access_key_id = name;
  ev.request.action = request.action + " " + name + " (" + std::string(keystore::AdminRoleName(role)) + ")" + suffix;
  return ev;
}

}  // namespace

Result<keystore::NewAdminCredential> DualControl::CreateAdminCredential(const std::string& name,
                                                                        keystore::AdminRole role,
                                                                        const std::string& approval_id,
                                                                        const audit::RequestInfo& request) {
  COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::AdminCredential> existing, keys_.ListAdminCredentials());
  size_t admins = 0;
  for (const auto& c : existing) {
    if (c.name == name) {
      return Status::AlreadyExists("admin credential " + name + " already exists");
    }
    admins += c.role == keystore::AdminRole::kAdmin ? 1 : 0;
  }
  Authorization authorization;
  if (role == keystore::AdminRole::kAdmin) {
    const bool bootstrap = admins < kBootstrapAdmins;
    if (!approval_id.empty() || (policy_.required && !bootstrap)) {
      COFFRE_ASSIGN_OR_RETURN(authorization, Authorize(GuardedOperation::kCreateAdminCredential, name, 0, approval_id));
    }
  } else if (!approval_id.empty()) {
    return Status::InvalidArgument("auditor credentials take no part in dual control and need no approval");
  }
  const audit::Event event =
      CredentialEvent(audit::Operation::kAdminCredentialCreate, name, role, request, authorization.ActionSuffix());
  if (recorder_ != nullptr) {
    if (Status recorded = recorder_->Record(event); !recorded.ok()) {
      return Status::Unavailable("the audit log cannot record the credential's creation (" + recorded.message() +
                                 "); nothing was created");
    }
  }
  auto created = keys_.CreateAdminCredential(name, role);
  if (!created.ok()) {
    RecordFailure(event);
    return created.status();
  }
  authorization.Done();
  return created;
}

Status DualControl::DisableAdminCredential(const std::string& name, const audit::RequestInfo& request) {
  COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::AdminCredential> existing, keys_.ListAdminCredentials());
  auto it = std::find_if(existing.begin(), existing.end(), [&](const auto& c) { return c.name == name; });
  if (it == existing.end()) {
    return Status::NotFound("no admin credential named " + name);
  }
  const audit::Event event = CredentialEvent(audit::Operation::kAdminCredentialDisable, name, it->role, request, "");
  if (recorder_ != nullptr) {
    if (Status recorded = recorder_->Record(event); !recorded.ok()) {
      return Status::Unavailable("the audit log cannot record the credential's disabling (" + recorded.message() +
                                 "); nothing was disabled");
    }
  }
  Status st = keys_.DisableAdminCredential(name);
  if (!st.ok()) {
    RecordFailure(event);
  }
  return st;
}

}  // namespace coffre::service
