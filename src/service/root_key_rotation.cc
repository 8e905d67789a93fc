#include "coffre/service/root_key_rotation.h"

#include <filesystem>
#include <memory>
#include <utility>

#include "coffre/common/bytes.h"

namespace coffre::service {
namespace {

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

// The new root key, and the passphrase parameters the keystore stores with it (empty for a key).
struct NewKey {
  SecretBytes root;
  Bytes passphrase_kdf;
};

Result<NewKey> ResolveNewKey(const NewRootKey& new_root) {
  if (new_root.passphrase.empty()) {
    return NewKey{new_root.key, {}};
  }
  COFFRE_ASSIGN_OR_RETURN(keystore::PassphraseRootKey derived,
                          keystore::DeriveRootKeyFromNewPassphrase(new_root.passphrase, new_root.passphrase_params));
  return NewKey{std::move(derived.root_key), std::move(derived.kdf_record)};
}

// Uses up the approval before anything changes. Its records (request, grant) are in the audit
// log, opened under the current key for as long as this takes.
Result<Authorization> Authorize(keystore::Keystore& keys, const SecretBytes& current_root,
                                const RootKeyRotationRequest& request, const std::string& audit_path) {
  std::unique_ptr<audit::AuditLog> approval_log;
  if (Exists(audit_path)) {
    COFFRE_ASSIGN_OR_RETURN(approval_log, audit::AuditLog::Open(audit_path, current_root, request.audit_options));
  }
  DualControl dual(keys, approval_log.get(), request.policy);
  return dual.Authorize(keystore::GuardedOperation::kRotateRootKey, "", 0, request.approval_id);
}

// Step (3) and the rotation's record, once the keystore uses the new key: what fails here is a
// warning, the rotation stands.
void FinishUnderNewKey(const RootKeyRotationRequest& request, const std::string& audit_path, bool has_audit,
                       const SecretBytes& new_root, const Authorization& authorization, RootKeyRotated& done) {
  if (has_audit) {
    if (Status st = audit::AuditLog::DropRootKeySealsExcept(audit_path, new_root); !st.ok()) {
      done.warnings.push_back(
          "the keystore now uses the new root key, but the audit log's copy of its signing key under the old root "
          "key could not be removed: " +
          st.message());
    }
  }
  auto log = audit::AuditLog::Open(audit_path, new_root, request.audit_options);
  Status recorded = StatusOf(log);
  if (log.ok()) {
    audit::Event event;
    event.operation = audit::Operation::kRootKeyRotate;
    event.outcome = audit::Outcome::kSuccess;
    event.request = request.request;
    event.request.action += authorization.ActionSuffix();
    recorded = (*log)->Record(event);
  }
  if (!recorded.ok()) {
    done.warnings.push_back("the root key was rotated, but the audit event could not be recorded: " +
                            recorded.message());
  }
}

}  // namespace

Result<RootKeyRotated> RotateDataDirRootKey(keystore::Keystore& keys, const SecretBytes& current_root,
                                            const RootKeyRotationRequest& request) {
  const std::string keystore_path = request.data_dir + "/keystore.db";
  const std::string audit_path = request.data_dir + "/audit.db";
  COFFRE_ASSIGN_OR_RETURN(NewKey new_key, ResolveNewKey(request.new_root));
  if (ConstantTimeEquals(current_root.Reveal(), new_key.root.Reveal())) {
    return Status::InvalidArgument(
        "the new root key is the current root key; nothing was changed (create a new one with coffre keystore init "
        "--root-key-file FILE)");
  }
  COFFRE_ASSIGN_OR_RETURN(Authorization authorization, Authorize(keys, current_root, request, audit_path));

  // (1) A second sealed copy of the audit signing key, under the new key.
  const bool has_audit = Exists(audit_path);
  if (has_audit) {
    if (Status st = audit::AuditLog::AddRootKeySeal(audit_path, current_root, new_key.root); !st.ok()) {
      return Status(st.code(),
                    "cannot prepare the audit log for the new root key: " + st.message() + "; nothing was changed");
    }
  }
  // (2) The keystore, in one transaction.
  keystore::RootKeyRotationOptions options;
  options.passphrase_kdf = new_key.passphrase_kdf;
  auto report = keystore::RotateRootKey(keystore_path, current_root, new_key.root, options);
  if (!report.ok()) {
    // The keystore still uses the current key: the copy made in (1) is not needed (best effort;
    // it is harmless if it stays).
    if (has_audit && Exists(keystore_path) && keystore::Keystore::Open(keystore_path, current_root).ok()) {
      (void)audit::AuditLog::DropRootKeySealsExcept(audit_path, current_root);
    }
    return Status(report.status().code(),
                  "root key rotation failed: " + report.status().message() + "; the keystore is unchanged");
  }
  authorization.Done();

  RootKeyRotated done;
  done.keystore_path = keystore_path;
  done.tenant_keys = report->tenant_keys;
  done.access_keys = report->access_keys;
  // (3) Only the new key opens the audit signing key from now on.
  FinishUnderNewKey(request, audit_path, has_audit, new_key.root, authorization, done);
  return done;
}

}  // namespace coffre::service
