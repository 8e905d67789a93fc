// coffre keystore backup | restore  (docs/KEYS.md "Backup and restore", docs/OPERATIONS.md 6a)

#include <sys/stat.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "audit_store.h"
#include "coffre/audit/audit_log.h"
#include "coffre/audit/destructions.h"
#include "coffre/audit/event.h"
#include "coffre/catalog/catalog.h"
#include "coffre/common/clock.h"
#include "coffre/keystore/backup.h"
#include "coffre/keystore/keystore.h"
#include "commands.h"
#include "data_dir_lock.h"
#include "stores.h"

namespace coffre::server {
namespace {

// Audit records of a destruction are written just before the keystore change (docs/AUDIT.md
// 1.1), and the backup's newest key event only bounds from below when it was taken: records from
// this long before that event are read too (re-applying one the backup already holds is a no-op).
constexpr UnixMillis kReapplyMarginMs = 24LL * 3600 * 1000;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Where the root key comes from, for messages: never the key itself nor a fingerprint of it.
std::string RootKeySource(const Config& config) {
  if (config.root_key_source == "passphrase") {
    return "the passphrase";
  }
  if (config.root_key_source == "credential") {
    return "the systemd credential " + config.root_key_credential;
  }
  return "the root key file " + config.ResolvedRootKeyFile();
}

std::string Plural(size_t n, const std::string& what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); }

std::string Describe(const keystore::KeystoreContents& c) {
  return Plural(c.tenants, "tenant") + " (" + std::to_string(c.shredded_tenants) + " crypto-shredded), " +
         Plural(c.key_versions, "tenant key version") + ", " + Plural(c.access_keys, "access key") +
         ", schema version " + std::to_string(c.schema_version);
}

int RunBackup(const CommonFlags& common, const std::string& file, bool force) {
  auto config = ResolveConfig(common);
  if (!config.ok()) {
    return Fail(config.status());
  }
  const std::string keystore_path = config->data_dir + "/keystore.db";
  if (!Exists(keystore_path)) {
    return Fail(Status::NotFound("no keystore in " + config->data_dir + " (check --config and --data-dir)"));
  }
  auto root = LoadRootKey(*config, /*create=*/false);
  if (!root.ok()) {
    return Fail(root.status());
  }
  {
    // Names a wrong root key clearly ("wrong root key in ...") before anything is written.
    auto keys = OpenKeystoreWithRootKey(*config, *root);
    if (!keys.ok()) {
      return Fail(keys.status());
    }
  }
  keystore::BackupOptions options;
  options.overwrite = force;
  auto contents = keystore::BackupKeystore(keystore_path, file, *root, options);
  if (!contents.ok()) {
    const Status& st = contents.status();
    if (st.code() == StatusCode::kAlreadyExists || st.code() == StatusCode::kInvalidArgument) {
      return Fail(Status::InvalidArgument(st.message()));
    }
    return Fail(Status(st.code(), "keystore backup failed: " + st.message() + " (no backup file was written)"));
  }
  std::cout << "keystore " << keystore_path << " backed up to " << file << " (mode 0600, one self-contained file)\n"
            << "  " << Describe(*contents) << "\n"
            << "  checked: SQLite integrity_check ok; every tenant key and access-key secret opens under the root "
               "key\n"
            << "Everything in it is sealed under the root key current now (" << RootKeySource(*config)
            << "): the backup is useless without that key. Keep the key, apart from the backup, for as long as you "
               "keep the backup; after a root key rotation, back up again.\n"
            << "The backup holds the tenant keys as of now: take a new one after every tenant creation and key "
               "rotation (objects written under a key version created later cannot be read with this backup).\n";
  std::cout.flush();
  return 0;
}

// The current root key for a restore. With a keystore in place it is loaded as for any command
// (a passphrase is stretched with the current keystore's parameters); without one (disaster
// recovery), a passphrase is stretched with the backup's parameters.
Result<SecretBytes> LoadRootKeyForRestore(const Config& config, bool keystore_exists, const std::string& staged_path) {
  if (keystore_exists) {
    return LoadRootKey(config, /*create=*/false);
  }
  if (config.root_key_source == "credential") {
    return keystore::LoadRootKeyCredential(config.root_key_credential);
  }
  if (config.root_key_source == "passphrase") {
    auto passphrase = config.passphrase_fd >= 0 ? keystore::ReadPassphraseFromFd(config.passphrase_fd)
                                                : keystore::PromptPassphrase(/*confirm=*/false);
    if (!passphrase.ok()) {
      return passphrase.status();
    }
    return keystore::DeriveRootKeyFromPassphrase(staged_path, *passphrase, /*create=*/false);
  }
  return keystore::LoadRootKeyFile(config.ResolvedRootKeyFile());
}

// Objects and uploads of the catalog whose key version the restored keystore does not hold (it
// was created after the backup): "tenant name (id) key version V: N object(s)", and those of the
// tenants of the replaced keystore that the backup does not know at all. Destroyed versions and
// shredded tenants are not listed: their objects are unreadable on purpose.
Result<std::vector<std::string>> MissingKeyVersions(const Config& config, const std::string& staged_path,
                                                    const SecretBytes& root,
                                                    const std::vector<keystore::Tenant>& current_tenants) {
  std::vector<std::string> out;
  const std::string catalog_path = config.data_dir + "/catalog.db";
  if (!Exists(catalog_path)) {
    return out;
  }
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<keystore::Keystore> keys, keystore::Keystore::Open(staged_path, root));
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<catalog::Catalog> catalog, catalog::Catalog::Open(catalog_path));
  COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::Tenant> tenants, keys->ListTenants());
  for (const auto& tenant : tenants) {
    if (tenant.shredded) {
      continue;
    }
    auto id = HexDecode(tenant.id);
    if (!id) {
      continue;
    }
    COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::KeyVersion> versions, keys->ListKeyVersions(tenant.id));
    uint32_t newest = 0;
    for (const auto& v : versions) {
      newest = std::max(newest, v.version);
    }
    COFFRE_ASSIGN_OR_RETURN(auto counts, catalog->CountKeyVersions(*id));
    for (const auto& [version, n] : counts) {
      if (version > newest && n > 0) {
        out.push_back("tenant " + tenant.name + " (" + tenant.id + ") key version " + std::to_string(version) + ": " +
                      Plural(n, "object or upload"));
      }
    }
  }
  std::set<std::string> known;
  for (const auto& tenant : tenants) {
    known.insert(tenant.id);
  }
  for (const auto& tenant : current_tenants) {
    auto id = HexDecode(tenant.id);
    if (tenant.shredded || known.contains(tenant.id) || !id) {
      continue;
    }
    COFFRE_ASSIGN_OR_RETURN(auto counts, catalog->CountKeyVersions(*id));
    uint64_t n = 0;
    for (const auto& [version, count] : counts) {
      n += count;
    }
    if (n > 0) {
      out.push_back("tenant " + tenant.name + " (" + tenant.id +
                    "), created after the backup: " + Plural(n, "object or upload"));
    }
  }
  return out;
}

struct RestoreFlags {
  CommonFlags common;
  std::string file;
  std::string backup_root_key_file;
  int backup_passphrase_fd = -1;
  bool no_reapply_shreds = false;
  bool allow_missing_key_versions = false;
};

int RunRestore(const RestoreFlags& flags) {
  auto config = ResolveConfig(flags.common);
  if (!config.ok()) {
    return Fail(config.status());
  }
  const std::string& data_dir = config->data_dir;
  const std::string keystore_path = data_dir + "/keystore.db";
  const std::string audit_path = data_dir + "/audit.db";

  // Replacing the keystore under a running daemon would leave it serving the old keys from its
  // cache and its open file: the daemon must be stopped, and stays out while this runs.
  auto lock = DataDirLock::Acquire(data_dir);
  if (!lock.ok()) {
    if (lock.status().code() == StatusCode::kUnavailable) {
      return Fail(Status::Unavailable("keystore restore refused: " + lock.status().message() +
                                      "; stop coffre serve first (systemctl stop coffre). Nothing was changed"));
    }
    return Fail(lock.status());
  }

  if (!flags.backup_root_key_file.empty() && flags.backup_passphrase_fd >= 0) {
    return Fail(Status::InvalidArgument("give --backup-root-key-file or --backup-passphrase-fd, not both"));
  }
  if (flags.backup_passphrase_fd >= 0 && flags.backup_passphrase_fd == flags.common.passphrase_fd) {
    return Fail(Status::InvalidArgument("--backup-passphrase-fd and --passphrase-fd must be different descriptors"));
  }
  std::optional<SecretBytes> backup_root;
  if (!flags.backup_root_key_file.empty()) {
    auto key = keystore::LoadRootKeyFile(flags.backup_root_key_file);
    if (!key.ok()) {
      return Fail(Status::InvalidArgument("--backup-root-key-file: " + key.status().message()));
    }
    backup_root = std::move(key).value();
  }

  auto staged = keystore::StagedRestore::Stage(flags.file, data_dir);
  if (!staged.ok()) {
    return Fail(staged.status());
  }
  if (flags.backup_passphrase_fd >= 0) {
    // Stretched with the backup's own Argon2id parameters, which only the staged copy holds.
    auto passphrase = keystore::ReadPassphraseFromFd(flags.backup_passphrase_fd);
    if (!passphrase.ok()) {
      return Fail(Status(passphrase.status().code(), "--backup-passphrase-fd: " + passphrase.status().message()));
    }
    auto key = keystore::DeriveRootKeyFromPassphrase(staged->staged_path(), *passphrase, /*create=*/false);
    if (!key.ok()) {
      return Fail(Status::InvalidArgument("--backup-passphrase-fd: " + key.status().message()));
    }
    backup_root = std::move(key).value();
  }
  const UnixMillis backup_newest_event = staged->newest_event();
  const bool keystore_exists = Exists(keystore_path);

  auto root = LoadRootKeyForRestore(*config, keystore_exists, staged->staged_path());
  if (!root.ok()) {
    return Fail(root.status());
  }
  std::vector<std::string> notes;
  std::vector<keystore::Tenant> current_tenants;
  if (keystore_exists) {
    // The current root key must be the right one: it seals audit.db too, and the daemon will start
    // with it. A keystore that does not open at all (damaged) is what a restore is for.
    auto current = OpenKeystoreWithRootKey(*config, *root);
    if (!current.ok()) {
      if (current.status().code() == StatusCode::kPermissionDenied) {
        return Fail(Status::PermissionDenied(current.status().message() +
                                             "; a restore needs the current root key, the one audit.db is sealed "
                                             "with"));
      }
      notes.push_back("the current keystore could not be opened (" + current.status().message() +
                      "); it is moved aside as it is");
    } else if (auto listed = (*current)->ListTenants(); listed.ok()) {
      current_tenants = std::move(listed).value();
    }
  }

  Bytes passphrase_kdf;
  if (config->root_key_source == "passphrase") {
    auto kdf = keystore::ReadPassphraseKdf(keystore_exists ? keystore_path : staged->staged_path());
    if (!kdf.ok()) {
      return Fail(kdf.status());
    }
    passphrase_kdf = std::move(kdf).value();
  }
  auto resealed = staged->AdoptRootKey(*root, backup_root, passphrase_kdf);
  if (!resealed.ok()) {
    if (resealed.status().code() == StatusCode::kPermissionDenied) {
      const std::string hint =
          backup_root ? "check that --backup-root-key-file (or --backup-passphrase-fd) gives the root key that was "
                        "current when the backup was taken"
                      : "if the backup was taken before a root key rotation, give the root key of that time with "
                        "--backup-root-key-file FILE (or its passphrase with --backup-passphrase-fd N)";
      return Fail(Status::PermissionDenied(flags.file + ": " + resealed.status().message() + " (" +
                                           RootKeySource(*config) + "); " + hint + ". Nothing was changed"));
    }
    return Fail(Status(resealed.status().code(), "cannot re-seal the backup under the current root key: " +
                                                     resealed.status().message() + "; nothing was changed"));
  }
  auto before = staged->Verify(*root);
  if (!before.ok()) {
    return Fail(Status(before.status().code(),
                       flags.file + ": " + before.status().message() + "; nothing was changed (use another backup)"));
  }

  // The audit log: opened before anything changes, to record the restore and to read the
  // destructions it holds.
  const bool audit_exists = Exists(audit_path);
  std::unique_ptr<audit::AuditLog> log;
  {
    auto opened = OpenAuditLog(*config, *root);
    if (opened.ok()) {
      log = std::move(opened).value();
    } else if (!flags.no_reapply_shreds) {
      return Fail(Status::Unavailable(
          "cannot open the audit log " + audit_path + " (" + opened.status().message() +
          "), which a restore reads to re-apply the crypto-shredding done since the backup; nothing was changed. "
          "Repair or restore audit.db first, or pass --no-reapply-shreds to restore without it (tenants shredded "
          "and key versions destroyed since the backup, that the current keystore does not record, would come "
          "back)"));
    } else {
      std::cerr << "coffre: WARNING: the audit log cannot be opened (" << opened.status().message()
                << "): this restore is NOT recorded in it" << std::endl;
    }
  }

  // What must stay destroyed: what the keystore being replaced records, and what the audit log
  // records since about when the backup was taken.
  std::set<keystore::KeyDestruction> destructions;
  if (keystore_exists) {
    auto from_keystore = keystore::ListKeyDestructions(keystore_path);
    if (from_keystore.ok()) {
      destructions.insert(from_keystore->begin(), from_keystore->end());
    } else {
      notes.push_back("the current keystore's own record of destroyed keys could not be read (" +
                      from_keystore.status().message() + ")");
    }
  }
  if (flags.no_reapply_shreds) {
    std::cerr << "coffre: WARNING: --no-reapply-shreds: the audit log is not read; tenants shredded and key "
                 "versions destroyed since the backup come back unless the current keystore records them"
              << std::endl;
  } else if (audit_exists) {
    auto tenants = staged->LiveTenantIds();
    if (!tenants.ok()) {
      return Fail(tenants.status());
    }
    const UnixMillis since = backup_newest_event > kReapplyMarginMs ? backup_newest_event - kReapplyMarginMs : 0;
    auto records = audit::ReadDestructions(audit_path, *tenants, since);
    if (!records.ok()) {
      return Fail(Status::Unavailable("cannot read the audit log " + audit_path + " (" + records.status().message() +
                                      "), which a restore reads to re-apply the crypto-shredding done since the "
                                      "backup; nothing was changed. Repair it, or pass --no-reapply-shreds"));
    }
    for (const auto& r : *records) {
      destructions.insert({r.tenant, r.operation == audit::Operation::kTenantShred ? 0 : r.key_version});
    }
  } else {
    notes.push_back("there was no audit log in " + data_dir +
                    ": only the destructions the current keystore records were re-applied");
  }

  auto applied = staged->Reapply(*root, {destructions.begin(), destructions.end()});
  if (!applied.ok()) {
    return Fail(Status(applied.status().code(), "cannot re-apply the key destructions made since the backup: " +
                                                    applied.status().message() + ". Nothing was changed"));
  }
  auto voided = staged->VoidOpenApprovals(*root, ToUnixMillis(Clock::System().Now()));
  if (!voided.ok()) {
    return Fail(Status(voided.status().code(), "cannot void the dual-control approvals still open in the backup: " +
                                                   voided.status().message() + "; nothing was changed"));
  }
  auto after = staged->Verify(*root);
  if (!after.ok()) {
    return Fail(Status(after.status().code(), after.status().message() + "; nothing was changed"));
  }

  auto missing = MissingKeyVersions(*config, staged->staged_path(), *root, current_tenants);
  if (!missing.ok()) {
    return Fail(Status(missing.status().code(), "cannot compare the backup with the catalog: " +
                                                    missing.status().message() + "; nothing was changed"));
  }
  if (!missing->empty() && !flags.allow_missing_key_versions) {
    std::string list;
    for (const auto& m : *missing) {
      list += "\n  " + m;
    }
    return Fail(Status::FailedPrecondition(
        "the backup lacks keys that the catalog uses (created after the backup was taken):" + list +
        "\nThese objects could not be decrypted after the restore. Nothing was changed. Use a newer backup, or pass "
        "--allow-missing-key-versions to restore anyway"));
  }

  // Recorded before the change, as every key-lifecycle change is (docs/AUDIT.md 1.1).
  audit::Event event;
  event.operation = audit::Operation::kKeystoreRestore;
  event.outcome = audit::Outcome::kSuccess;
  event.request.action = "cli:keystore restore";
  if (log) {
    if (Status recorded = log->Record(event); !recorded.ok()) {
      return Fail(Status::Unavailable("the audit log cannot record the restore (" + recorded.message() +
                                      "); nothing was changed"));
    }
  }
  auto installed = staged->Install(ToUnixMillis(Clock::System().Now()));
  if (!installed.ok()) {
    if (log) {
      event.outcome = audit::Outcome::kFailure;
      (void)log->Record(event);
    }
    return Fail(Status(installed.status().code(), "keystore restore failed: " + installed.status().message()));
  }

  std::cout << "keystore restored from " << flags.file << " into " << keystore_path << "\n"
            << "  backup: " << Describe(*before) << "\n";
  if (*resealed) {
    std::cout << "  re-sealed under the current root key (" << RootKeySource(*config) << "); it was sealed under "
              << (flags.backup_passphrase_fd >= 0 ? "--backup-passphrase-fd" : "--backup-root-key-file") << "\n";
  }
  size_t shreds = 0;
  for (const auto& a : *applied) {
    shreds += a.destruction.version == 0 ? 1 : 0;
  }
  std::cout << "  re-applied " << Plural(shreds, "crypto-shred") << " and "
            << Plural(applied->size() - shreds, "key version destruction") << " made since the backup"
            << (applied->empty() ? "" : ":") << "\n";
  for (const auto& a : *applied) {
    std::cout << "    tenant " << a.tenant_name << " (" << a.destruction.tenant_id << "): "
              << (a.destruction.version == 0 ? "crypto-shredded"
                                             : "key version " + std::to_string(a.destruction.version) + " destroyed")
              << "\n";
  }
  if (*voided > 0) {
    std::cout << "  voided " << Plural(*voided, "dual-control approval")
              << " still open in the backup (it cannot tell whether they were used since): request new ones\n";
  }
  std::cout << "  now: " << Describe(*after) << "\n";
  for (const auto& m : *missing) {
    std::cout << "  WARNING: not in the backup, unreadable: " << m << "\n";
  }
  for (const auto& n : notes) {
    std::cout << "  note: " << n << "\n";
  }
  if (installed->moved_aside.empty()) {
    std::cout << "  there was no keystore to replace\n";
  } else {
    std::cout << "  the previous keystore was moved aside, not deleted:";
    for (const auto& f : installed->moved_aside) {
      std::cout << " " << f;
    }
    std::cout << "\n";
  }
  std::cout << (log ? "  recorded in the audit log (keystore.restore)\n" : "  NOT recorded in the audit log\n")
            << "Next:\n"
            << "  1. start the daemon (systemctl start coffre)\n"
            << "  2. verify: coffre tenant list, coffre access-key list TENANT, a GET of an object of each tenant, "
               "coffre audit check\n"
            << "  3. access keys created or deleted since the backup are as they were at the backup: re-create or "
               "delete them as needed\n"
            << "  4. once verified, remove the moved-aside keystore files (shred -u) if you do not need them\n";
  std::cout.flush();
  return 0;
}

}  // namespace

void RegisterKeystoreBackupCommands(CLI::App* keystore, CommandRunner& runner) {
  struct BackupFlags {
    CommonFlags common;
    std::string file;
    bool force = false;
  };
  auto backup_flags = std::make_shared<BackupFlags>();
  auto* backup = keystore->add_subcommand(
      "backup", "Copy the keystore to FILE (online, beside a running daemon; checked; mode 0600; docs/KEYS.md)");
  backup->add_option("FILE", backup_flags->file, "The backup file to write (refused if it exists, unless --force)")
      ->required();
  backup->add_flag("--force", backup_flags->force, "Replace FILE if it exists");
  AddCommonFlags(backup, backup_flags->common);
  backup->callback([backup_flags, &runner] {
    runner.run = [backup_flags] { return RunBackup(backup_flags->common, backup_flags->file, backup_flags->force); };
  });

  auto restore_flags = std::make_shared<RestoreFlags>();
  auto* restore = keystore->add_subcommand(
      "restore",
      "Replace the keystore with a backup (daemon stopped; destructions since the backup are re-applied; the "
      "previous keystore is moved aside)");
  restore->add_option("FILE", restore_flags->file, "The backup file (written by coffre keystore backup)")->required();
  restore->add_option("--backup-root-key-file", restore_flags->backup_root_key_file,
                      "The root key that was current when the backup was taken, if it differs from the current "
                      "one: the backup is re-sealed under the current key");
  restore->add_option("--backup-passphrase-fd", restore_flags->backup_passphrase_fd,
                      "Read the passphrase that was current when the backup was taken from this descriptor, if it "
                      "differs from the current one: the backup is re-sealed under the current root key");
  restore->add_flag("--no-reapply-shreds", restore_flags->no_reapply_shreds,
                    "Do not read the audit log (when it cannot be read): shreds and key destructions recorded only "
                    "there are NOT re-applied");
  restore->add_flag("--allow-missing-key-versions", restore_flags->allow_missing_key_versions,
                    "Restore even if the catalog uses key versions the backup lacks (those objects stay unreadable)");
  AddCommonFlags(restore, restore_flags->common);
  restore->callback([restore_flags, &runner] { runner.run = [restore_flags] { return RunRestore(*restore_flags); }; });
}

}  // namespace coffre::server
