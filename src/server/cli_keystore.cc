// coffre keystore init | rotate-root

#include <sys/stat.h>

#include <iostream>

#include "audit_store.h"
#include "cli_context.h"
#include "coffre/keystore/keystore.h"
#include "coffre/service/root_key_rotation.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {
namespace {

struct KeystoreFlags {
  CommonFlags common;
  std::string key_file;  // init: the new root key file
  std::string new_key_file;
  int new_passphrase_fd = -1;
  std::string approval;
};

int RunInit(const KeystoreFlags& flags) {
  const bool with_keystore = !flags.common.config_file.empty() || !flags.common.data_dir.empty();
  if (!with_keystore) {
    if (flags.key_file.empty()) {
      return Fail(
          Status::InvalidArgument("keystore init needs --root-key-file FILE, and --config or --data-dir "
                                  "to create the keystore too"));
    }
    if (Status st = keystore::CreateRootKeyFile(flags.key_file); !st.ok()) return Fail(st);
    std::cout << "root key written to " << flags.key_file << " (mode 0600)" << std::endl;
    return 0;
  }
  auto config = ResolveConfig(flags.common);
  if (!config.ok()) return Fail(config.status());
  struct stat st {};
  if (::stat((config->data_dir + "/keystore.db").c_str(), &st) == 0) {
    return Fail(Status::InvalidArgument("a keystore already exists in " + config->data_dir));
  }
  if (config->root_key_source == "file") {
    if (!flags.key_file.empty()) config->root_key_file = flags.key_file;
    if (Status placed = CheckRootKeyPlacement(*config); !placed.ok()) return Fail(placed);
    if (Status created = keystore::CreateRootKeyFile(config->ResolvedRootKeyFile()); !created.ok()) {
      return Fail(created);
    }
    std::cout << "root key written to " << config->ResolvedRootKeyFile() << " (mode 0600)" << std::endl;
  } else if (!flags.key_file.empty()) {
    return Fail(Status::InvalidArgument("--root-key-file is for root_key_source \"file\", not \"" +
                                        config->root_key_source + "\""));
  }
  config->create_root_key = false;
  auto keys = OpenKeystore(*config, /*create=*/true);
  if (!keys.ok()) return Fail(keys.status());
  std::cout << "keystore created in " << config->data_dir << " (root key source: " << config->root_key_source << ")"
            << std::endl;
  return 0;
}

// The new root key from --new-key-file or --new-passphrase-fd.
Result<service::NewRootKey> ReadNewRootKey(const Config& config, const KeystoreFlags& flags) {
  service::NewRootKey new_root;
  if (flags.new_key_file.empty()) {
    auto read = keystore::ReadPassphraseFromFd(flags.new_passphrase_fd);
    if (!read.ok()) {
      return Status(read.status().code(), "--new-passphrase-fd: " + read.status().message());
    }
    new_root.passphrase = std::move(read).value();
    return new_root;
  }
  // The new key goes where the daemon will accept it: not inside data_dir (outside development).
  Config placed = config;
  placed.root_key_source = "file";
  placed.root_key_file = flags.new_key_file;
  if (Status st = CheckRootKeyPlacement(placed); !st.ok()) {
    return Status::InvalidArgument("--new-key-file: " + st.message());
  }
  auto key = keystore::LoadRootKeyFile(flags.new_key_file);
  if (!key.ok()) {
    return Status(key.status().code(), "--new-key-file: " + key.status().message() +
                                           " (create one with coffre keystore init --root-key-file FILE)");
  }
  new_root.key = std::move(key).value();
  return new_root;
}

void PrintRotateRootNextSteps(const Config& config, const KeystoreFlags& flags, const service::RootKeyRotated& done) {
  std::cout << "root key rotated: " << done.tenant_keys << " tenant key version(s) and " << done.access_keys
            << " access-key secret(s) re-sealed under the new root key in " << done.keystore_path << "\n"
            << "The old root key no longer opens this keystore. Next:\n";
  if (!flags.new_key_file.empty()) {
    if (config.root_key_source == "credential") {
      std::cout << "  1. install " << flags.new_key_file << " as the systemd credential " << config.root_key_credential
                << " (LoadCredential=" << config.root_key_credential << ":" << flags.new_key_file
                << " or LoadCredentialEncrypted=)\n";
    } else {
      std::cout << "  1. point the config at the new key: \"root_key_source\": \"file\", \"root_key_file\": \""
                << flags.new_key_file << "\"\n";
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
}

// coffre keystore rotate-root (docs/KEYS.md "Root key rotation"; service/root_key_rotation.h).
int RunRotateRoot(const KeystoreFlags& flags) {
  if (flags.new_key_file.empty() == (flags.new_passphrase_fd < 0)) {
    return Fail(
        Status::InvalidArgument("keystore rotate-root needs exactly one of --new-key-file FILE or "
                                "--new-passphrase-fd N"));
  }
  if (flags.new_passphrase_fd >= 0 && flags.new_passphrase_fd == flags.common.passphrase_fd) {
    return Fail(Status::InvalidArgument("--new-passphrase-fd and --passphrase-fd must be different descriptors"));
  }
  auto config = ResolveConfig(flags.common);
  if (!config.ok()) {
    return Fail(config.status());
  }
  if (Status st = RequireKeystore(*config); !st.ok()) {
    return Fail(st);
  }
  // The new key is read before the current one is asked for: a bad file is refused at once.
  service::RootKeyRotationRequest request;
  auto new_root = ReadNewRootKey(*config, flags);
  if (!new_root.ok()) {
    return Fail(new_root.status());
  }
  request.new_root = std::move(new_root).value();
  // Names a wrong current key clearly ("wrong root key in ...") before anything is written.
  auto context = OpenForCli(*config);
  if (!context.ok()) {
    return Fail(context.status());
  }
  request.data_dir = config->data_dir;
  request.approval_id = flags.approval;
  request.policy = DualControlPolicyOf(*config);
  request.request = CliRequest("cli:keystore rotate-root");
  request.audit_options = AuditLogOptionsOf(*config);
  auto rotated = service::RotateDataDirRootKey(context->keys(), context->stores.root_key, request);
  if (!rotated.ok()) {
    return Fail(rotated.status());
  }
  for (const auto& warning : rotated->warnings) {
    std::cerr << "coffre: warning: " << warning << std::endl;
  }
  PrintRotateRootNextSteps(*config, flags, *rotated);
  return rotated->warnings.empty() ? 0 : 2;
}

}  // namespace

void RegisterKeystoreCommands(CLI::App& app, CommandRunner& runner) {
  auto flags = std::make_shared<KeystoreFlags>();
  auto* ks = app.add_subcommand("keystore", "Manage the keystore");
  ks->require_subcommand(1);
  auto* init = ks->add_subcommand(
      "init", "Create a new root key file (mode 0600); with --config or --data-dir, also create the keystore");
  init->add_option("--root-key-file", flags->key_file, "Path of the new root key file");
  AddCommonFlags(init, flags->common);
  init->callback([flags, &runner] { runner.run = [flags] { return RunInit(*flags); }; });

  auto* rotate = ks->add_subcommand(
      "rotate-root",
      "Re-seal every tenant key and access-key secret under a new root key, in one transaction (docs/KEYS.md)");
  rotate->add_option("--new-key-file", flags->new_key_file,
                     "The new root key file (mode 0600/0400, yours; coffre keystore init --root-key-file FILE)");
  rotate->add_option("--new-passphrase-fd", flags->new_passphrase_fd,
                     "Read a new passphrase from this file descriptor (the root key then comes from it)");
  rotate->add_option("--approval", flags->approval, "Dual control: the granted approval (coffre approval request)");
  AddCommonFlags(rotate, flags->common);
  rotate->callback([flags, &runner] { runner.run = [flags] { return RunRotateRoot(*flags); }; });
  RegisterKeystoreBackupCommands(ks, runner);
}

}  // namespace coffre::server
