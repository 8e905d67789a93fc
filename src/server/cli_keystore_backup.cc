// coffre keystore backup | restore  (docs/KEYS.md "Backup and restore", docs/OPERATIONS.md 6a)

#include <sys/stat.h>

#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "audit_store.h"
#include "cli_context.h"
#include "coffre/keystore/backup.h"
#include "coffre/keystore/keystore.h"
#include "coffre/service/keystore_restore.h"
#include "commands.h"
#include "data_dir_lock.h"
#include "stores.h"

namespace coffre::server {
namespace {

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
  if (Status st = RequireKeystore(*config); !st.ok()) {
    return Fail(st);
  }
  // Names a wrong root key clearly ("wrong root key in ...") before anything is written.
  auto context = OpenForCli(*config);
  if (!context.ok()) {
    return Fail(context.status());
  }
  context->stores.keystore.reset();  // the backup reads the file itself
  const std::string keystore_path = config->data_dir + "/keystore.db";
  keystore::BackupOptions options;
  options.overwrite = force;
  auto contents = keystore::BackupKeystore(keystore_path, file, context->stores.root_key, options);
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

struct RestoreFlags {
  CommonFlags common;
  std::string file;
  std::string backup_root_key_file;
  int backup_passphrase_fd = -1;
  bool no_reapply_shreds = false;
  bool allow_missing_key_versions = false;
};

// Replacing the keystore under a running daemon would leave it serving the old keys from its
// cache and its open file: the daemon must be stopped, and stays out while the restore runs.
Result<DataDirLock> LockForRestore(const std::string& data_dir) {
  auto lock = DataDirLock::Acquire(data_dir);
  if (!lock.ok() && lock.status().code() == StatusCode::kUnavailable) {
    return Status::Unavailable("keystore restore refused: " + lock.status().message() +
                               "; stop coffre serve first (systemctl stop coffre). Nothing was changed");
  }
  return lock;
}

Status CheckRestoreFlags(const RestoreFlags& flags) {
  if (!flags.backup_root_key_file.empty() && flags.backup_passphrase_fd >= 0) {
    return Status::InvalidArgument("give --backup-root-key-file or --backup-passphrase-fd, not both");
  }
  if (flags.backup_passphrase_fd >= 0 && flags.backup_passphrase_fd == flags.common.passphrase_fd) {
    return Status::InvalidArgument("--backup-passphrase-fd and --passphrase-fd must be different descriptors");
  }
  return Status::Ok();
}

// The root key the backup was sealed under, when it is not the current one: from
// --backup-root-key-file, or from --backup-passphrase-fd stretched with the backup's own Argon2id
// parameters, which only the staged copy holds.
Result<std::optional<SecretBytes>> BackupRootKeyFromFile(const RestoreFlags& flags) {
  if (flags.backup_root_key_file.empty()) {
    return std::optional<SecretBytes>();
  }
  auto key = keystore::LoadRootKeyFile(flags.backup_root_key_file);
  if (!key.ok()) {
    return Status::InvalidArgument("--backup-root-key-file: " + key.status().message());
  }
  return std::optional<SecretBytes>(std::move(key).value());
}

Result<SecretBytes> BackupRootKeyFromPassphrase(const RestoreFlags& flags, const keystore::StagedRestore& staged) {
  auto passphrase = keystore::ReadPassphraseFromFd(flags.backup_passphrase_fd);
  if (!passphrase.ok()) {
    return Status(passphrase.status().code(), "--backup-passphrase-fd: " + passphrase.status().message());
  }
  auto key = keystore::DeriveRootKeyFromPassphrase(staged.staged_path(), *passphrase, /*create=*/false);
  if (!key.ok()) {
    return Status::InvalidArgument("--backup-passphrase-fd: " + key.status().message());
  }
  return key;
}

// The keystore being replaced, under the current root key, which must be the right one: it seals
// audit.db too, and the daemon will start with it. A keystore that does not open at all (damaged)
// is what a restore is for: the request says why, and it is moved aside as it is.
Status InspectCurrentKeystore(const Config& config, service::KeystoreRestoreRequest& request) {
  auto current = OpenKeystoreWithRootKey(config, request.root_key);
  if (!current.ok()) {
    if (current.status().code() == StatusCode::kPermissionDenied) {
      return Status::PermissionDenied(current.status().message() +
                                      "; a restore needs the current root key, the one audit.db is sealed with");
    }
    request.current_keystore_error = current.status().message();
  } else if (auto listed = (*current)->ListTenants(); listed.ok()) {
    request.current_tenants = std::move(listed).value();
    for (const auto& tenant : request.current_tenants) {
      if (auto named = (*current)->ListNamedKeys(tenant.id); named.ok()) {
        request.current_named_keys.insert(request.current_named_keys.end(), named->begin(), named->end());
      }
    }
  }
  return Status::Ok();
}

void PrintRestored(const RestoreFlags& flags, const Config& config, const service::KeystoreRestored& restored) {
  std::cout << "keystore restored from " << flags.file << " into " << config.data_dir << "/keystore.db\n"
            << "  backup: " << Describe(restored.backup) << "\n";
  if (restored.resealed) {
    std::cout << "  re-sealed under the current root key (" << RootKeySource(config) << "); it was sealed under "
              << (flags.backup_passphrase_fd >= 0 ? "--backup-passphrase-fd" : "--backup-root-key-file") << "\n";
  }
  size_t shreds = 0;
  for (const auto& a : restored.reapplied) {
    shreds += a.destruction.version == 0 ? 1 : 0;
  }
  std::cout << "  re-applied " << Plural(shreds, "crypto-shred") << " and "
            << Plural(restored.reapplied.size() - shreds, "key version destruction") << " made since the backup"
            << (restored.reapplied.empty() ? "" : ":") << "\n";
  for (const auto& a : restored.reapplied) {
    const std::string key = a.destruction.key_id.empty() ? "" : "key " + a.destruction.key_id + " ";
    std::cout << "    tenant " << a.tenant_name << " (" << a.destruction.tenant_id << "): " << key
              << (a.destruction.version == 0 ? "crypto-shredded"
                                             : "key version " + std::to_string(a.destruction.version) + " destroyed")
              << "\n";
  }
  if (restored.voided_approvals > 0) {
    std::cout << "  voided " << Plural(restored.voided_approvals, "dual-control approval")
              << " still open in the backup (it cannot tell whether they were used since): request new ones\n";
  }
  std::cout << "  now: " << Describe(restored.restored) << "\n";
  for (const auto& m : restored.missing_key_versions) {
    std::cout << "  WARNING: not in the backup, unreadable: " << m << "\n";
  }
  for (const auto& n : restored.notes) {
    std::cout << "  note: " << n << "\n";
  }
  if (restored.moved_aside.empty()) {
    std::cout << "  there was no keystore to replace\n";
  } else {
    std::cout << "  the previous keystore was moved aside, not deleted:";
    for (const auto& f : restored.moved_aside) {
      std::cout << " " << f;
    }
    std::cout << "\n";
  }
  std::cout << (restored.recorded ? "  recorded in the audit log (keystore.restore)\n"
                                  : "  NOT recorded in the audit log\n")
            << "Next:\n"
            << "  1. start the daemon (systemctl start coffre)\n"
            << "  2. verify: coffre tenant list, coffre access-key list TENANT, a GET of an object of each tenant, "
               "coffre audit check\n"
            << "  3. access keys created or deleted since the backup are as they were at the backup: re-create or "
               "delete them as needed\n"
            << "  4. once verified, remove the moved-aside keystore files (shred -u) if you do not need them\n";
  std::cout.flush();
}

// coffre keystore restore: gathers the keys and the backup, then service::RestoreKeystore
// (service/keystore_restore.h) does the restore.
int RunRestore(const RestoreFlags& flags) {
  auto config = ResolveConfig(flags.common);
  if (!config.ok()) {
    return Fail(config.status());
  }
  auto lock = LockForRestore(config->data_dir);
  if (!lock.ok()) {
    return Fail(lock.status());
  }
  if (Status st = CheckRestoreFlags(flags); !st.ok()) {
    return Fail(st);
  }
  service::KeystoreRestoreRequest request;
  auto backup_root = BackupRootKeyFromFile(flags);
  if (!backup_root.ok()) {
    return Fail(backup_root.status());
  }
  request.backup_root_key = std::move(backup_root).value();
  auto staged = keystore::StagedRestore::Stage(flags.file, config->data_dir);
  if (!staged.ok()) {
    return Fail(staged.status());
  }
  if (flags.backup_passphrase_fd >= 0) {
    auto key = BackupRootKeyFromPassphrase(flags, *staged);
    if (!key.ok()) {
      return Fail(key.status());
    }
    request.backup_root_key = std::move(key).value();
  }
  const bool keystore_exists = Exists(config->data_dir + "/keystore.db");
  auto root = LoadRootKeyForRestore(*config, keystore_exists, staged->staged_path());
  if (!root.ok()) {
    return Fail(root.status());
  }
  request.root_key = std::move(root).value();
  if (keystore_exists) {
    if (Status st = InspectCurrentKeystore(*config, request); !st.ok()) {
      return Fail(st);
    }
  }
  request.data_dir = config->data_dir;
  request.backup_file = flags.file;
  request.root_key_source = RootKeySource(*config);
  request.root_key_from_passphrase = config->root_key_source == "passphrase";
  request.reapply_audited_destructions = !flags.no_reapply_shreds;
  request.allow_missing_key_versions = flags.allow_missing_key_versions;
  request.audit_options = AuditLogOptionsOf(*config);
  request.request = CliRequest("cli:keystore restore");
  request.warn = [](const std::string& warning) { std::cerr << "coffre: WARNING: " << warning << std::endl; };
  auto restored = service::RestoreKeystore(*staged, request);
  if (!restored.ok()) {
    return Fail(restored.status());
  }
  PrintRestored(flags, *config, *restored);
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
