#pragma once

// Dual control (docs/KEYS.md "Dual control"): the operations that cannot be undone — destroying a
// tenant key version, crypto-shredding a tenant, rotating the root key — run only with an approval
// that one admin credential requested and a second, different admin credential granted, when the
// config asks for it (`dual_control`). Both steps are recorded in the auditors' log
// (approval.request, approval.grant) before they are stored, as every key-lifecycle change is
// (fail-closed: an approval that cannot be recorded is not made). The guarded operation's own
// record names the approval it used (RequestInfo::action).
//
// An approval names its operation and target, expires `approval_ttl_ms` after the request, and is
// used up by one execution; if that execution fails, it is released for another attempt until it
// expires. Whoever runs the operation (the CLI on the host) must also hold the root key: dual
// control adds a second person to the decision, it does not replace host access control.
//
// Admin credentials are who takes part, so making and disabling them is recorded the same way
// (admin_credential.create, admin_credential.disable), and under dual control a new admin-role
// credential needs an approval once the first kBootstrapAdmins have been made: otherwise one
// person could make a second name and grant their own requests with it.
//
// Thread safety: as the keystore and the recorder; no state of its own besides the policy.

#include <cstdint>
#include <string>

#include "coffre/audit/event.h"
#include "coffre/common/clock.h"
#include "coffre/common/status.h"
#include "coffre/keystore/keystore.h"

namespace coffre::service {

struct DualControlPolicy {
  bool required = false;                       // the config's `dual_control`
  int64_t approval_ttl_ms = 60LL * 60 * 1000;  // the config's `dual_control_approval_minutes`
};

// The right to run one guarded operation. Call Done() once the operation succeeded; destroyed
// without it, a used approval is released again (best effort: it expires anyway).
class Authorization {
 public:
  Authorization() = default;
  Authorization(keystore::ApprovalStore* keys, std::string approval_id)
      : keys_(keys), approval_id_(std::move(approval_id)) {}
  Authorization(Authorization&& other) noexcept
      : keys_(other.keys_), approval_id_(std::move(other.approval_id_)), done_(other.done_) {
    other.keys_ = nullptr;
  }
  Authorization& operator=(Authorization&& other) noexcept;
  Authorization(const Authorization&) = delete;
  Authorization& operator=(const Authorization&) = delete;
  ~Authorization();

  void Done() { done_ = true; }
  // "" when the operation runs without an approval (dual control off, none given).
  const std::string& approval_id() const { return approval_id_; }
  // " with approval apr-..." for the operation's audit record, or "".
  std::string ActionSuffix() const { return approval_id_.empty() ? "" : " with approval " + approval_id_; }

 private:
  keystore::ApprovalStore* keys_ = nullptr;
  std::string approval_id_;
  bool done_ = false;
};

class DualControl {
 public:
  // A fresh install must be able to make the two admin credentials that dual control needs; the
  // count includes disabled credentials (names are never reused), so disabling some does not
  // open this door again.
  static constexpr size_t kBootstrapAdmins = 2;

  // Neither is owned. `recorder` null: approvals are stored unrecorded (tests, tools without an
  // audit log); the commands that run with dual control always pass one.
  // `clock` must be the keystore's (it decides expiry).
  DualControl(keystore::Keystore& keys, audit::Recorder* recorder, DualControlPolicy policy,
              const Clock& clock = Clock::System());

  const DualControlPolicy& policy() const { return policy_; }

  // `requester` asks for the operation: approval.request is recorded (naming the new approval's
  // id), then the pending approval is stored. Errors as Keystore::RequestApproval; Unavailable
  // when the record cannot be made (nothing stored).
  Result<keystore::Approval> Request(keystore::GuardedOperation operation, const std::string& tenant_id,
                                     uint32_t version, const std::string& requester, const audit::RequestInfo& request);
  // `approver` grants it: checked (pending, unexpired, another admin), approval.grant recorded,
  // then stored atomically with the same checks. Errors as Keystore::GrantApproval.
  Result<keystore::Approval> Grant(const std::string& approval_id, const std::string& approver,
                                   const audit::RequestInfo& request);

  // Before a guarded operation. With an approval id, uses it up (errors as
  // Keystore::UseApproval), whatever the policy. Without one: allowed when dual control is off;
  // PermissionDenied, saying how to get an approval, when it is on.
  Result<Authorization> Authorize(keystore::GuardedOperation operation, const std::string& tenant_id, uint32_t version,
                                  const std::string& approval_id);

  // Makes an admin API credential: admin_credential.create is recorded (name and role, never the
  // token), then the credential is stored. An admin-role credential needs `approval_id` (an
  // approved admin_credential.create of this name, used up here) when dual control is on and
  // kBootstrapAdmins admin-role credentials have ever been made; PermissionDenied without it.
  // Auditor credentials take no part in dual control and need none. Errors as
  // Keystore::CreateAdminCredential and Authorize; Unavailable when the record cannot be made
  // (nothing created).
  Result<keystore::NewAdminCredential> CreateAdminCredential(const std::string& name, keystore::AdminRole role,
                                                             const std::string& approval_id,
                                                             const audit::RequestInfo& request);
  // Disables one: admin_credential.disable is recorded, then stored. Errors as
  // Keystore::DisableAdminCredential; Unavailable when the record cannot be made.
  Status DisableAdminCredential(const std::string& name, const audit::RequestInfo& request);

 private:
  audit::Event ApprovalEvent(audit::Operation operation, const keystore::Approval& approval,
                             const audit::RequestInfo& request, const std::string& actor) const;
  // Best effort, after a recorded request or grant was refused by the keystore: says so in the
  // log (outcome failure).
  void RecordFailure(audit::Event event);

  keystore::Keystore& keys_;
  audit::Recorder* recorder_;
  DualControlPolicy policy_;
  const Clock& clock_;
};

}  // namespace coffre::service
