#pragma once

// Dual control approvals (part of keystore.h's Keystore; docs/KEYS.md "Dual control").
// The operations that cannot be undone. With `dual_control` in the config, each needs an approval
// that one admin credential requested and a second, different admin credential granted; the
// approval names the operation and its target and is used up by one execution.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/common/clock.h"
#include "coffre/common/status.h"

namespace coffre::keystore {

// kCreateAdminCredential guards the making of a new admin-role credential (once two exist): a
// second credential made by one person would otherwise let that person grant their own requests.
enum class GuardedOperation {
  kDestroyKeyVersion,
  kShredTenant,
  kRotateRootKey,
  kCreateAdminCredential,
  kDestroyNamedKey
};
// "tenant_key.destroy", "tenant.shred", "root_key.rotate", "admin_credential.create",
// "named_key.destroy".
std::string_view GuardedOperationName(GuardedOperation op);
std::optional<GuardedOperation> ParseGuardedOperation(std::string_view name);
// Whether the operation's target is a tenant's key (Approval::tenant_id is the key's id: a tenant
// id for its default key, a named key's id for kDestroyNamedKey and for kDestroyKeyVersion of a
// named key). For kCreateAdminCredential that field holds the new credential's name instead, and
// the approval's records go to the global chain.
bool TargetsTenant(GuardedOperation op);

enum class ApprovalState { kPending, kApproved, kUsed, kExpired };
std::string_view ApprovalStateName(ApprovalState state);  // "pending", "approved", "used", "expired"

struct Approval {
  std::string id;  // "apr-" + 16 lower-case hex characters
  GuardedOperation operation = GuardedOperation::kDestroyKeyVersion;
  std::string tenant_id;     // the key's id (TargetsTenant); empty for root key rotation; the credential's name
                             // for kCreateAdminCredential
  uint32_t version = 0;      // the key version to destroy; 0 for the other operations
  std::string requested_by;  // admin credential names
  UnixMillis requested = 0;
  UnixMillis expires = 0;  // the approval must be granted and used before this time
  std::optional<std::string> approved_by;
  std::optional<UnixMillis> approved;
  std::optional<UnixMillis> used;
  ApprovalState StateAt(UnixMillis now) const;
};

// InvalidArgument unless the target fits the operation: a tenant for the tenant operations, a
// valid credential name for kCreateAdminCredential and none for root key rotation; a key version
// (>= 1) for kDestroyKeyVersion only.
Status CheckApprovalTarget(GuardedOperation operation, const std::string& tenant_id, uint32_t version);

// Whether `approver` may grant `approval` at `now`: FailedPrecondition unless it is pending (not
// granted, used or expired); PermissionDenied for its own requester. (Whether the approver is an
// enabled admin credential is the keystore's to check, in its transaction.)
Status CheckGrantable(const Approval& approval, const std::string& approver, UnixMillis now);

// A fresh random approval id (ids are drawn before anything is stored, so that the audit record
// of a request can name it before the request exists: service/key_lifecycle.h).
std::string NewApprovalId();

class ApprovalStore {
 public:
  // Stores a pending approval request. `requested_by` must name an enabled admin-role credential
  // (PermissionDenied otherwise); `tenant_id` a live tenant for the tenant operations (NotFound,
  // FailedPrecondition if shredded) and empty for root key rotation; `version` >= 1 only for
  // kDestroyKeyVersion (InvalidArgument). AlreadyExists if the id is taken. Records an
  // "approval-requested" key event.
  virtual Result<Approval> RequestApproval(const std::string& id, GuardedOperation operation,
                                           const std::string& tenant_id, uint32_t version,
                                           const std::string& requested_by, int64_t ttl_ms) = 0;
  virtual Result<Approval> GetApproval(const std::string& id) = 0;  // NotFound
  // Every approval, newest first (at most `limit`).
  virtual Result<std::vector<Approval>> ListApprovals(size_t limit) = 0;
  // Grants a pending, unexpired approval, atomically. `approved_by` must be an enabled admin-role
  // credential other than the requester, created no later than the request (PermissionDenied:
  // a credential made after the request could be the requester's own second name). FailedPrecondition if it is not
  // pending (already granted, used or expired); NotFound if unknown. Records "approval-granted".
  virtual Result<Approval> GrantApproval(const std::string& id, const std::string& approved_by) = 0;
  // Uses up a granted approval for exactly this operation and target, atomically (two concurrent
  // uses: one wins). FailedPrecondition if it is pending, used or expired, or if the requester or
  // the approver has been disabled since; InvalidArgument if it approves another operation or
  // target; NotFound if unknown. Records "approval-used".
  virtual Result<Approval> UseApproval(const std::string& id, GuardedOperation operation, const std::string& tenant_id,
                                       uint32_t version) = 0;
  // The guarded operation failed after UseApproval: the approval becomes usable again until it
  // expires (nothing was done with it). Records "approval-released".
  virtual Status ReleaseApproval(const std::string& id) = 0;

 protected:
  // Owned through Keystore, never through this part of it.
  ~ApprovalStore() = default;
};

}  // namespace coffre::keystore
