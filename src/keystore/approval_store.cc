// The rules of dual control approvals that do not depend on the storage (approval_store.h).

#include "coffre/keystore/approval_store.h"

#include <optional>
#include <string>
#include <string_view>

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "keystore/format.h"

namespace coffre::keystore {

std::string_view GuardedOperationName(GuardedOperation op) {
  switch (op) {
    case GuardedOperation::kDestroyKeyVersion:
      return "tenant_key.destroy";
    case GuardedOperation::kShredTenant:
      return "tenant.shred";
    case GuardedOperation::kRotateRootKey:
      return "root_key.rotate";
    case GuardedOperation::kCreateAdminCredential:
      return "admin_credential.create";
    case GuardedOperation::kDestroyNamedKey:
      return "named_key.destroy";
  }
  return "unknown";
}

bool TargetsTenant(GuardedOperation op) {
  return op == GuardedOperation::kDestroyKeyVersion || op == GuardedOperation::kShredTenant ||
         op == GuardedOperation::kDestroyNamedKey;
}

std::optional<GuardedOperation> ParseGuardedOperation(std::string_view name) {
  for (GuardedOperation op :
       {GuardedOperation::kDestroyKeyVersion, GuardedOperation::kShredTenant, GuardedOperation::kRotateRootKey,
        GuardedOperation::kCreateAdminCredential, GuardedOperation::kDestroyNamedKey}) {
    if (GuardedOperationName(op) == name) {
      return op;
    }
  }
  return std::nullopt;
}

std::string_view ApprovalStateName(ApprovalState state) {
  switch (state) {
    case ApprovalState::kPending:
      return "pending";
    case ApprovalState::kApproved:
      return "approved";
    case ApprovalState::kUsed:
      return "used";
    case ApprovalState::kExpired:
      return "expired";
  }
  return "unknown";
}

ApprovalState Approval::StateAt(UnixMillis now) const {
  if (used) {
    return ApprovalState::kUsed;
  }
  if (now >= expires) {
    return ApprovalState::kExpired;
  }
  return approved ? ApprovalState::kApproved : ApprovalState::kPending;
}

Status CheckApprovalTarget(GuardedOperation operation, const std::string& tenant_id, uint32_t version) {
  if (operation == GuardedOperation::kCreateAdminCredential) {
    if (!internal::IsValidTenantName(tenant_id)) {
      return Status::InvalidArgument(
          "admin_credential.create needs the new credential's name ([a-z0-9][a-z0-9._-]{0,62})");
    }
  } else if (const bool for_tenant = TargetsTenant(operation); for_tenant == tenant_id.empty()) {
    return Status::InvalidArgument(std::string(GuardedOperationName(operation)) +
                                   (for_tenant ? " needs a tenant" : " takes no tenant"));
  }
  if ((operation == GuardedOperation::kDestroyKeyVersion) != (version >= 1)) {
    return Status::InvalidArgument(operation == GuardedOperation::kDestroyKeyVersion
                                       ? "tenant_key.destroy needs the key version (1 or more)"
                                       : std::string(GuardedOperationName(operation)) + " takes no key version");
  }
  return Status::Ok();
}

Status CheckGrantable(const Approval& approval, const std::string& approver, UnixMillis now) {
  const ApprovalState state = approval.StateAt(now);
  if (state != ApprovalState::kPending) {
    return Status::FailedPrecondition("approval " + approval.id + " is " + std::string(ApprovalStateName(state)) +
                                      ", not pending");
  }
  if (approver == approval.requested_by) {
    return Status::PermissionDenied("approval " + approval.id + " was requested by " + approver +
                                    "; a second, different admin credential must grant it");
  }
  return Status::Ok();
}

std::string NewApprovalId() {
  SecretBytes random = SecretBytes::Random(8);
  return "apr-" + HexEncode(random.Reveal());
}

}  // namespace coffre::keystore
