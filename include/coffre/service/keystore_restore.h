#pragma once

// Restoring a keystore backup into a data directory (docs/KEYS.md "Backup and restore"): the
// keystore module stages, re-seals, re-applies and installs the copy (keystore/backup.h); this
// gathers what must stay destroyed (from the keystore being replaced and from the audit log),
// checks the restored keys against the catalog, and records the restore in the audit log before
// installing it, as every key-lifecycle change is (docs/AUDIT.md 1.1).
//
// Refusals name the options of `coffre keystore restore` that an operator may pass instead: this
// is that command's logic. The caller holds the data directory's lock (no daemon has the keystore
// open) and has staged the backup.

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "coffre/audit/audit_log.h"
#include "coffre/audit/event.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"
#include "coffre/keystore/backup.h"
#include "coffre/keystore/keystore.h"

namespace coffre::service {

struct KeystoreRestoreRequest {
  std::string data_dir;     // holds keystore.db, and audit.db and catalog.db when there are
  std::string backup_file;  // as the operator named it, for messages
  // The current root key: it seals audit.db, and the daemon starts with it. The restored keystore
  // is re-sealed under it when the backup was sealed under `backup_root_key`.
  SecretBytes root_key;
  std::optional<SecretBytes> backup_root_key;
  // Where `root_key` comes from, for messages ("the root key file F"): never the key itself.
  std::string root_key_source;
  // The root key comes from a passphrase: the restored keystore keeps the passphrase parameters
  // of the keystore it replaces (of the backup, when there is none).
  bool root_key_from_passphrase = false;
  // The keystore being replaced, as the caller found it under `root_key`: its tenants, or why it
  // did not open at all (a damaged keystore is what a restore is for; it is moved aside as it is).
  // Both empty when there is none, or it has no tenants.
  std::vector<keystore::Tenant> current_tenants;
  std::vector<keystore::NamedKey> current_named_keys;  // of those tenants
  std::string current_keystore_error;
  // false (--no-reapply-shreds): the audit log is not read, so destructions recorded only there
  // are not re-applied; for an audit log that cannot be read.
  bool reapply_audited_destructions = true;
  // Restore even when the catalog uses key versions the backup lacks (those objects stay unreadable).
  bool allow_missing_key_versions = false;
  audit::AuditLogOptions audit_options;  // how audit.db is opened
  audit::RequestInfo request;            // who restores, for the restore's audit record
  // Told each warning at once, while the restore goes on (the audit log could not be opened, the
  // audit log is not read): the operator sees them even if a later step refuses.
  std::function<void(const std::string&)> warn;
};

struct KeystoreRestored {
  keystore::KeystoreContents backup;    // what the backup held, as staged
  keystore::KeystoreContents restored;  // what the installed keystore holds
  bool resealed = false;                // re-sealed from `backup_root_key` under `root_key`
  // The destructions made since the backup, applied to it.
  std::vector<keystore::StagedRestore::Applied> reapplied;
  // Dual-control approvals still open in the backup, now used up.
  size_t voided_approvals = 0;
  // Catalog objects the restored keystore cannot decrypt, one line per tenant and key version:
  // only when `allow_missing_key_versions`.
  std::vector<std::string> missing_key_versions;
  std::vector<std::string> notes;        // what the operator should know (nothing failed)
  std::vector<std::string> moved_aside;  // the replaced keystore's files, renamed, never deleted
  bool recorded = false;                 // the restore is in the audit log
};

// Re-seals `staged` under the request's root key, re-applies every key destruction recorded by
// the keystore it replaces and (unless told not to) by the audit log since about when the backup
// was taken, voids the dual-control approvals still open in it, checks it, records the restore and
// installs it in place of the data directory's keystore.
//
// Refused with nothing changed: PermissionDenied when neither root key opens the backup;
// Unavailable when the audit log, which holds the destructions to re-apply, cannot be opened or
// read (unless reapply_audited_destructions is false), or cannot record the restore;
// FailedPrecondition when the backup lacks keys the catalog uses (unless allowed) or predates a
// tenant's key rotation whose previous version was destroyed since; the errors of the staged
// copy's checks.
Result<KeystoreRestored> RestoreKeystore(keystore::StagedRestore& staged, const KeystoreRestoreRequest& request,
                                         const Clock& clock = Clock::System());

}  // namespace coffre::service
