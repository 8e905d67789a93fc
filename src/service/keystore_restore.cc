#include "coffre/service/keystore_restore.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>
#include <utility>

#include "coffre/audit/destructions.h"
#include "coffre/catalog/catalog.h"
#include "coffre/common/bytes.h"

namespace coffre::service {
namespace {

// Audit records of a destruction are written just before the keystore change (docs/AUDIT.md
// 1.1), and the backup's newest key event only bounds from below when it was taken: records from
// this long before that event are read too (re-applying one the backup already holds is a no-op).
constexpr UnixMillis kReapplyMarginMs = 24LL * 3600 * 1000;

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

void Warn(const KeystoreRestoreRequest& request, const std::string& warning) {
  if (request.warn) {
    request.warn(warning);
  }
}

std::string ObjectsOrUploads(uint64_t n) { return std::to_string(n) + " object or upload" + (n == 1 ? "" : "s"); }

// Paths of the data directory's stores.
struct DataDirPaths {
  explicit DataDirPaths(const std::string& data_dir)
      : keystore(data_dir + "/keystore.db"), audit(data_dir + "/audit.db"), catalog(data_dir + "/catalog.db") {}
  std::string keystore;
  std::string audit;
  std::string catalog;
};

// Makes the staged copy open under the current root key (re-sealing it when the backup was sealed
// under an older one) and checks it. Returns whether it re-sealed.
Result<bool> AdoptCurrentRootKey(keystore::StagedRestore& staged, const KeystoreRestoreRequest& request,
                                 const DataDirPaths& paths) {
  Bytes passphrase_kdf;
  if (request.root_key_from_passphrase) {
    COFFRE_ASSIGN_OR_RETURN(
        passphrase_kdf, keystore::ReadPassphraseKdf(Exists(paths.keystore) ? paths.keystore : staged.staged_path()));
  }
  auto resealed = staged.AdoptRootKey(request.root_key, request.backup_root_key, passphrase_kdf);
  if (resealed.ok()) {
    return resealed;
  }
  if (resealed.status().code() != StatusCode::kPermissionDenied) {
    return Status(resealed.status().code(), "cannot re-seal the backup under the current root key: " +
                                                resealed.status().message() + "; nothing was changed");
  }
  const std::string hint =
      request.backup_root_key
          ? "check that --backup-root-key-file (or --backup-passphrase-fd) gives the root key that was current when "
            "the backup was taken"
          : "if the backup was taken before a root key rotation, give the root key of that time with "
            "--backup-root-key-file FILE (or its passphrase with --backup-passphrase-fd N)";
  return Status::PermissionDenied(request.backup_file + ": " + resealed.status().message() + " (" +
                                  request.root_key_source + "); " + hint + ". Nothing was changed");
}

// The audit log, opened before anything changes, to record the restore and to read the
// destructions it holds. Null when it cannot be opened and the caller said not to read it.
Result<std::unique_ptr<audit::AuditLog>> OpenAuditLog(const KeystoreRestoreRequest& request,
                                                      const DataDirPaths& paths) {
  auto opened = audit::AuditLog::Open(paths.audit, request.root_key, request.audit_options);
  if (opened.ok()) {
    return opened;
  }
  if (request.reapply_audited_destructions) {
    return Status::Unavailable(
        "cannot open the audit log " + paths.audit + " (" + opened.status().message() +
        "), which a restore reads to re-apply the crypto-shredding done since the backup; nothing was changed. "
        "Repair or restore audit.db first, or pass --no-reapply-shreds to restore without it (tenants shredded "
        "and key versions destroyed since the backup, that the current keystore does not record, would come "
        "back)");
  }
  Warn(request,
       "the audit log cannot be opened (" + opened.status().message() + "): this restore is NOT recorded in it");
  return std::unique_ptr<audit::AuditLog>();
}

// What must stay destroyed: what the keystore being replaced records, and what the audit log
// records since about when the backup was taken.
Result<std::set<keystore::KeyDestruction>> DestructionsToReapply(keystore::StagedRestore& staged,
                                                                 const KeystoreRestoreRequest& request,
                                                                 const DataDirPaths& paths, bool audit_exists,
                                                                 std::vector<std::string>& notes) {
  std::set<keystore::KeyDestruction> destructions;
  if (Exists(paths.keystore)) {
    auto from_keystore = keystore::ListKeyDestructions(paths.keystore);
    if (from_keystore.ok()) {
      destructions.insert(from_keystore->begin(), from_keystore->end());
    } else {
      notes.push_back("the current keystore's own record of destroyed keys could not be read (" +
                      from_keystore.status().message() + ")");
    }
  }
  if (!request.reapply_audited_destructions) {
    Warn(request,
         "--no-reapply-shreds: the audit log is not read; tenants shredded and key versions destroyed since the "
         "backup come back unless the current keystore records them");
    return destructions;
  }
  if (!audit_exists) {
    notes.push_back("there was no audit log in " + request.data_dir +
                    ": only the destructions the current keystore records were re-applied");
    return destructions;
  }
  COFFRE_ASSIGN_OR_RETURN(std::vector<std::string> tenants, staged.LiveTenantIds());
  const UnixMillis newest = staged.newest_event();
  const UnixMillis since = newest > kReapplyMarginMs ? newest - kReapplyMarginMs : 0;
  auto records = audit::ReadDestructions(paths.audit, tenants, since);
  if (!records.ok()) {
    return Status::Unavailable("cannot read the audit log " + paths.audit + " (" + records.status().message() +
                               "), which a restore reads to re-apply the crypto-shredding done since the backup; "
                               "nothing was changed. Repair it, or pass --no-reapply-shreds");
  }
  for (const auto& r : *records) {
    // A default key's id is its tenant's; any other id is a named key's.
    const std::string named_key = r.key_id == r.tenant ? std::string() : r.key_id;
    switch (r.operation) {
      case audit::Operation::kTenantShred:
        destructions.insert({r.tenant, 0, ""});
        break;
      case audit::Operation::kNamedKeyDestroy:
        destructions.insert({r.tenant, 0, named_key});
        break;
      default:
        destructions.insert({r.tenant, r.key_version, named_key});
        break;
    }
  }
  return destructions;
}

// How many objects and uploads of the catalog are under the key `key_id`, any version.
Result<uint64_t> ObjectsUnderKey(catalog::Catalog& catalog, ByteView key_id) {
  COFFRE_ASSIGN_OR_RETURN(auto counts, catalog.CountKeyVersions(key_id));
  uint64_t n = 0;
  for (const auto& [version, count] : counts) {
    n += count;
  }
  return n;
}

// Objects and uploads of the catalog whose key version the restored keystore does not hold (it
// was created after the backup): "tenant name (id) key version V: N object(s)", and those of the
// tenants of the replaced keystore that the backup does not know at all. Destroyed versions and
// shredded tenants are not listed: their objects are unreadable on purpose.
Result<std::vector<std::string>> MissingKeyVersions(const keystore::StagedRestore& staged,
                                                    const KeystoreRestoreRequest& request, const DataDirPaths& paths) {
  std::vector<std::string> out;
  if (!Exists(paths.catalog)) {
    return out;
  }
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<keystore::Keystore> keys,
                          keystore::Keystore::Open(staged.staged_path(), request.root_key));
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<catalog::Catalog> catalog, catalog::Catalog::Open(paths.catalog));
  COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::Tenant> tenants, keys->ListTenants());
  std::set<std::string> known;       // tenant ids
  std::set<std::string> known_keys;  // named key ids
  for (const auto& tenant : tenants) {
    known.insert(tenant.id);
    if (tenant.shredded) {
      continue;
    }
    // The default key, then each named key the backup has (a destroyed one's objects are
    // unreadable on purpose).
    std::vector<std::pair<keystore::KeyRef, std::string>> keys_of_tenant{{keystore::KeyRef(tenant.id), ""}};
    COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::NamedKey> named, keys->ListNamedKeys(tenant.id));
    for (const auto& n : named) {
      known_keys.insert(n.key_id);
      if (!n.destroyed) keys_of_tenant.emplace_back(n.ref(), " named key " + n.name);
    }
    for (const auto& [key, label] : keys_of_tenant) {
      auto id = HexDecode(key.key_id);
      if (!id) {
        continue;
      }
      COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::KeyVersion> versions, keys->ListKeyVersions(key));
      uint32_t newest = 0;
      for (const auto& v : versions) {
        newest = std::max(newest, v.version);
      }
      COFFRE_ASSIGN_OR_RETURN(auto counts, catalog->CountKeyVersions(*id));
      for (const auto& [version, n] : counts) {
        if (version > newest && n > 0) {
          out.push_back("tenant " + tenant.name + " (" + tenant.id + ")" + label + " key version " +
                        std::to_string(version) + ": " + ObjectsOrUploads(n));
        }
      }
    }
  }
  // Named keys created after the backup, of tenants it knows.
  for (const auto& key : request.current_named_keys) {
    auto id = HexDecode(key.key_id);
    if (key.destroyed || known_keys.contains(key.key_id) || !known.contains(key.tenant_id) || !id) {
      continue;
    }
    COFFRE_ASSIGN_OR_RETURN(uint64_t n, ObjectsUnderKey(*catalog, *id));
    if (n > 0) {
      out.push_back("tenant " + key.tenant_id + " named key " + key.name +
                    ", created after the backup: " + ObjectsOrUploads(n));
    }
  }
  for (const auto& tenant : request.current_tenants) {
    auto id = HexDecode(tenant.id);
    if (tenant.shredded || known.contains(tenant.id) || !id) {
      continue;
    }
    COFFRE_ASSIGN_OR_RETURN(uint64_t n, ObjectsUnderKey(*catalog, *id));
    if (n > 0) {
      out.push_back("tenant " + tenant.name + " (" + tenant.id + "), created after the backup: " + ObjectsOrUploads(n));
    }
  }
  return out;
}

// Re-applies the destructions, voids the open approvals and checks the result.
Status ReapplyAndCheck(keystore::StagedRestore& staged, const KeystoreRestoreRequest& request,
                       const std::set<keystore::KeyDestruction>& destructions, const Clock& clock,
                       KeystoreRestored& out) {
  auto applied = staged.Reapply(request.root_key, {destructions.begin(), destructions.end()});
  if (!applied.ok()) {
    return Status(applied.status().code(), "cannot re-apply the key destructions made since the backup: " +
                                               applied.status().message() + ". Nothing was changed");
  }
  out.reapplied = std::move(applied).value();
  auto voided = staged.VoidOpenApprovals(request.root_key, ToUnixMillis(clock.Now()));
  if (!voided.ok()) {
    return Status(voided.status().code(), "cannot void the dual-control approvals still open in the backup: " +
                                              voided.status().message() + "; nothing was changed");
  }
  out.voided_approvals = *voided;
  auto after = staged.Verify(request.root_key);
  if (!after.ok()) {
    return Status(after.status().code(), after.status().message() + "; nothing was changed");
  }
  out.restored = *after;
  return Status::Ok();
}

// The backup must hold every key the catalog uses, unless the operator accepts the loss.
Status CheckCatalogKeys(const keystore::StagedRestore& staged, const KeystoreRestoreRequest& request,
                        const DataDirPaths& paths, KeystoreRestored& out) {
  auto missing = MissingKeyVersions(staged, request, paths);
  if (!missing.ok()) {
    return Status(missing.status().code(), "cannot compare the backup with the catalog: " + missing.status().message() +
                                               "; nothing was changed");
  }
  if (!missing->empty() && !request.allow_missing_key_versions) {
    std::string list;
    for (const auto& m : *missing) {
      list += "\n  " + m;
    }
    return Status::FailedPrecondition(
        "the backup lacks keys that the catalog uses (created after the backup was taken):" + list +
        "\nThese objects could not be decrypted after the restore. Nothing was changed. Use a newer backup, or pass "
        "--allow-missing-key-versions to restore anyway");
  }
  out.missing_key_versions = std::move(missing).value();
  return Status::Ok();
}

// Recorded before the change, as every key-lifecycle change is (docs/AUDIT.md 1.1); a failed
// installation is recorded too.
Status RecordAndInstall(keystore::StagedRestore& staged, const KeystoreRestoreRequest& request, audit::AuditLog* log,
                        const Clock& clock, KeystoreRestored& out) {
  audit::Event event;
  event.operation = audit::Operation::kKeystoreRestore;
  event.outcome = audit::Outcome::kSuccess;
  event.request = request.request;
  if (log != nullptr) {
    if (Status recorded = log->Record(event); !recorded.ok()) {
      return Status::Unavailable("the audit log cannot record the restore (" + recorded.message() +
                                 "); nothing was changed");
    }
  }
  auto installed = staged.Install(ToUnixMillis(clock.Now()));
  if (!installed.ok()) {
    if (log != nullptr) {
      event.outcome = audit::Outcome::kFailure;
      (void)log->Record(event);
    }
    return Status(installed.status().code(), "keystore restore failed: " + installed.status().message());
  }
  out.moved_aside = std::move(installed->moved_aside);
  out.recorded = log != nullptr;
  return Status::Ok();
}

}  // namespace

Result<KeystoreRestored> RestoreKeystore(keystore::StagedRestore& staged, const KeystoreRestoreRequest& request,
                                         const Clock& clock) {
  const DataDirPaths paths(request.data_dir);
  KeystoreRestored out;
  if (!request.current_keystore_error.empty()) {
    out.notes.push_back("the current keystore could not be opened (" + request.current_keystore_error +
                        "); it is moved aside as it is");
  }
  COFFRE_ASSIGN_OR_RETURN(out.resealed, AdoptCurrentRootKey(staged, request, paths));
  auto backup = staged.Verify(request.root_key);
  if (!backup.ok()) {
    return Status(backup.status().code(), request.backup_file + ": " + backup.status().message() +
                                              "; nothing was changed (use another backup)");
  }
  out.backup = *backup;

  const bool audit_exists = Exists(paths.audit);
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<audit::AuditLog> log, OpenAuditLog(request, paths));
  COFFRE_ASSIGN_OR_RETURN(std::set<keystore::KeyDestruction> destructions,
                          DestructionsToReapply(staged, request, paths, audit_exists, out.notes));
  COFFRE_RETURN_IF_ERROR(ReapplyAndCheck(staged, request, destructions, clock, out));
  COFFRE_RETURN_IF_ERROR(CheckCatalogKeys(staged, request, paths, out));
  COFFRE_RETURN_IF_ERROR(RecordAndInstall(staged, request, log.get(), clock, out));
  return out;
}

}  // namespace coffre::service
