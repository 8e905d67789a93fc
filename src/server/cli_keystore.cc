// coffre keystore init | rotate-root

#include <sys/stat.h>

#include <iostream>

#include "audit_store.h"
#include "coffre/audit/audit_log.h"
#include "coffre/audit/event.h"
#include "coffre/keystore/keystore.h"
#include "coffre/service/dual_control.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// coffre keystore rotate-root (docs/KEYS.md "Root key rotation"). The audit log's signing key is
// sealed under the root key in another database (audit.db); without a transaction spanning both,
// the order makes every crash point safe: (1) audit.db gains a copy sealed under the new key (it
// then opens with either key), (2) the keystore switches to the new key in one transaction, (3)
// the copy under the old key is dropped. Whichever key the keystore accepts opens the audit log.
int RunRotateRoot(const CommonFlags& common, const std::string& new_key_file, int new_passphrase_fd,
                  const std::string& approval) {
  if (new_key_file.empty() == (new_passphrase_fd < 0)) {
    return Fail(
        Status::InvalidArgument("keystore rotate-root needs exactly one of --new-key-file FILE or "
                                "--new-passphrase-fd N"));
  }
  if (new_passphrase_fd >= 0 && new_passphrase_fd == common.passphrase_fd) {
    return Fail(Status::InvalidArgument("--new-passphrase-fd and --passphrase-fd must be different descriptors"));
  }
  auto config = ResolveConfig(common);
  if (!config.ok()) {
    return Fail(config.status());
  }
  const std::string keystore_path = config->data_dir + "/keystore.db";
  const std::string audit_path = config->data_dir + "/audit.db";
  if (!Exists(keystore_path)) {
    return Fail(Status::NotFound("no keystore in " + config->data_dir + " (check --config and --data-dir)"));
  }
  // The new key is read before the current one is asked for: a bad file is refused at once.
  SecretBytes new_root;
  Bytes new_passphrase_kdf;
  SecretBytes new_passphrase;
  if (new_key_file.empty()) {
    auto read = keystore::ReadPassphraseFromFd(new_passphrase_fd);
    if (!read.ok()) {
      return Fail(Status(read.status().code(), "--new-passphrase-fd: " + read.status().message()));
    }
    new_passphrase = std::move(read).value();
  } else {
    // The new key goes where the daemon will accept it: not inside data_dir (outside development).
    Config placed = *config;
    placed.root_key_source = "file";
    placed.root_key_file = new_key_file;
    if (Status st = CheckRootKeyPlacement(placed); !st.ok()) {
      return Fail(Status::InvalidArgument("--new-key-file: " + st.message()));
    }
    auto key = keystore::LoadRootKeyFile(new_key_file);
    if (!key.ok()) {
      return Fail(Status(key.status().code(), "--new-key-file: " + key.status().message() +
                                                  " (create one with coffre keystore init --root-key-file FILE)"));
    }
    new_root = std::move(key).value();
  }

  auto current = LoadRootKey(*config, /*create=*/false);
  if (!current.ok()) {
    return Fail(current.status());
  }
  // Names a wrong current key clearly ("wrong root key in ...") before anything is written.
  auto keys = OpenKeystoreWithRootKey(*config, *current);
  if (!keys.ok()) {
    return Fail(keys.status());
  }
  if (!new_passphrase.empty()) {
    // Argon2id with a fresh salt: only once the current key is known to be right, as it is slow.
    auto derived = keystore::DeriveRootKeyFromNewPassphrase(new_passphrase);
    if (!derived.ok()) {
      return Fail(derived.status());
    }
    new_root = std::move(derived->root_key);
    new_passphrase_kdf = std::move(derived->kdf_record);
  }
  if (ConstantTimeEquals(current->Reveal(), new_root.Reveal())) {
    return Fail(
        Status::InvalidArgument("the new root key is the current root key; nothing was changed (create a new "
                                "one with coffre keystore init --root-key-file FILE)"));
  }

  // Dual control: the approval is used up before anything changes, and released if the rotation
  // fails. Its records (request, grant) are in the audit log, which this process can open.
  std::unique_ptr<audit::AuditLog> approval_log;
  if (Exists(audit_path)) {
    auto opened = OpenAuditLog(*config, *current);
    if (!opened.ok()) {
      return Fail(opened.status());
    }
    approval_log = std::move(opened).value();
  }
  service::DualControl dual(**keys, approval_log.get(), DualControlPolicyOf(*config));
  auto authorization = dual.Authorize(keystore::GuardedOperation::kRotateRootKey, "", 0, approval);
  if (!authorization.ok()) {
    return Fail(authorization.status());
  }
  approval_log.reset();

  // (1) A second sealed copy of the audit signing key, under the new key.
  const bool has_audit = Exists(audit_path);
  if (has_audit) {
    if (Status st = audit::AuditLog::AddRootKeySeal(audit_path, *current, new_root); !st.ok()) {
      return Fail(Status(
          st.code(), "cannot prepare the audit log for the new root key: " + st.message() + "; nothing was changed"));
    }
  }
  // (2) The keystore, in one transaction.
  keystore::RootKeyRotationOptions options;
  options.passphrase_kdf = new_passphrase_kdf;
  auto report = keystore::RotateRootKey(keystore_path, *current, new_root, options);
  if (!report.ok()) {
    // The keystore still uses the current key: the copy made in (1) is not needed (best effort;
    // it is harmless if it stays).
    if (has_audit && OpenKeystoreWithRootKey(*config, *current).ok()) {
      (void)audit::AuditLog::DropRootKeySealsExcept(audit_path, *current);
    }
    return Fail(Status(report.status().code(),
                       "root key rotation failed: " + report.status().message() + "; the keystore is unchanged"));
  }
  authorization->Done();
  int exit_code = 0;
  // (3) Only the new key opens the audit signing key from now on.
  if (has_audit) {
    if (Status st = audit::AuditLog::DropRootKeySealsExcept(audit_path, new_root); !st.ok()) {
      std::cerr << "coffre: warning: the keystore now uses the new root key, but the audit log's copy of its "
                   "signing key under the old root key could not be removed: "
                << st.message() << std::endl;
      exit_code = 2;
    }
  }
  {
    auto log = OpenAuditLog(*config, new_root);
    Status recorded = log.ok() ? Status::Ok() : log.status();
    if (log.ok()) {
      audit::Event event;
      event.operation = audit::Operation::kRootKeyRotate;
      event.outcome = audit::Outcome::kSuccess;
      event.request.action = "cli:keystore rotate-root" + authorization->ActionSuffix();
      recorded = (*log)->Record(event);
    }
    if (!recorded.ok()) {
      std::cerr << "coffre: warning: the root key was rotated, but the audit event could not be recorded: "
                << recorded.message() << std::endl;
      exit_code = 2;
    }
  }

  std::cout << "root key rotated: " << report->tenant_keys << " tenant key version(s) and " << report->access_keys
            << " access-key secret(s) re-sealed under the new root key in " << keystore_path << "\n"
            << "The old root key no longer opens this keystore. Next:\n";
  if (!new_key_file.empty()) {
    if (config->root_key_source == "credential") {
      std::cout << "  1. install " << new_key_file << " as the systemd credential " << config->root_key_credential
                << " (LoadCredential=" << config->root_key_credential << ":" << new_key_file
                << " or LoadCredentialEncrypted=)\n";
    } else {
      std::cout << "  1. point the config at the new key: \"root_key_source\": \"file\", \"root_key_file\": \""
                << new_key_file << "\"\n";
    }
  } else {
    std::cout << "  1. use the new passphrase from now on (--passphrase-fd or the prompt); the config needs "
                 "\"root_key_source\": \"passphrase\"\n";
  }
  std::cout << "  2. restart coffre serve now: a daemon still running holds the old root key and cannot open keys "
               "it has not cached\n"
            << "  3. verify: coffre tenant list, a GET of an object, coffre audit check\n"
            << "  4. keep the old root key until this is verified (keystore backups taken before now still need "
               "it), then destroy it\n";
  std::cout.flush();
  return exit_code;
}

}  // namespace

void RegisterKeystoreCommands(CLI::App& app, CommandRunner& runner) {
  struct Flags {
    CommonFlags common;
    std::string key_file;
    std::string new_key_file;
    int new_passphrase_fd = -1;
    std::string approval;
  };
  auto flags = std::make_shared<Flags>();
  auto* ks = app.add_subcommand("keystore", "Manage the keystore");
  ks->require_subcommand(1);
  auto* init = ks->add_subcommand(
      "init", "Create a new root key file (mode 0600); with --config or --data-dir, also create the keystore");
  init->add_option("--root-key-file", flags->key_file, "Path of the new root key file");
  AddCommonFlags(init, flags->common);
  init->callback([flags, &runner] {
    runner.run = [flags] {
      const bool with_keystore = !flags->common.config_file.empty() || !flags->common.data_dir.empty();
      if (!with_keystore) {
        if (flags->key_file.empty()) {
          return Fail(
              Status::InvalidArgument("keystore init needs --root-key-file FILE, and --config or --data-dir "
                                      "to create the keystore too"));
        }
        if (Status st = keystore::CreateRootKeyFile(flags->key_file); !st.ok()) return Fail(st);
        std::cout << "root key written to " << flags->key_file << " (mode 0600)" << std::endl;
        return 0;
      }
      auto config = ResolveConfig(flags->common);
      if (!config.ok()) return Fail(config.status());
      struct stat st {};
      if (::stat((config->data_dir + "/keystore.db").c_str(), &st) == 0) {
        return Fail(Status::InvalidArgument("a keystore already exists in " + config->data_dir));
      }
      if (config->root_key_source == "file") {
        if (!flags->key_file.empty()) config->root_key_file = flags->key_file;
        if (Status placed = CheckRootKeyPlacement(*config); !placed.ok()) return Fail(placed);
        if (Status created = keystore::CreateRootKeyFile(config->ResolvedRootKeyFile()); !created.ok()) {
          return Fail(created);
        }
        std::cout << "root key written to " << config->ResolvedRootKeyFile() << " (mode 0600)" << std::endl;
      } else if (!flags->key_file.empty()) {
        return Fail(Status::InvalidArgument("--root-key-file is for root_key_source \"file\", not \"" +
                                            config->root_key_source + "\""));
      }
      config->create_root_key = false;
      auto keys = OpenKeystore(*config, /*create=*/true);
      if (!keys.ok()) return Fail(keys.status());
      std::cout << "keystore created in " << config->data_dir << " (root key source: " << config->root_key_source << ")"
                << std::endl;
      return 0;
    };
  });

  auto* rotate = ks->add_subcommand(
      "rotate-root",
      "Re-seal every tenant key and access-key secret under a new root key, in one transaction (docs/KEYS.md)");
  rotate->add_option("--new-key-file", flags->new_key_file,
                     "The new root key file (mode 0600/0400, yours; coffre keystore init --root-key-file FILE)");
  rotate->add_option("--new-passphrase-fd", flags->new_passphrase_fd,
                     "Read a new passphrase from this file descriptor (the root key then comes from it)");
  rotate->add_option("--approval", flags->approval, "Dual control: the granted approval (coffre approval request)");
  AddCommonFlags(rotate, flags->common);
  rotate->callback([flags, &runner] {
    runner.run = [flags] {
      return RunRotateRoot(flags->common, flags->new_key_file, flags->new_passphrase_fd, flags->approval);
    };
  });
  RegisterKeystoreBackupCommands(ks, runner);
}

}  // namespace coffre::server
