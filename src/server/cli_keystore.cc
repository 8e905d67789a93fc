// coffre keystore init

#include <sys/stat.h>

#include <iostream>

#include "coffre/keystore/keystore.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {

void RegisterKeystoreCommands(CLI::App& app, CommandRunner& runner) {
  struct Flags {
    CommonFlags common;
    std::string key_file;
  };
  auto flags = std::make_shared<Flags>();
  auto* ks = app.add_subcommand("keystore", "Manage the keystore");
  ks->require_subcommand(1);
  auto* init = ks->add_subcommand(
      "init",
      "Create a new root key file (mode 0600); with --config or --data-dir, also create the keystore");
  init->add_option("--root-key-file", flags->key_file, "Path of the new root key file");
  AddCommonFlags(init, flags->common);
  init->callback([flags, &runner] {
    runner.run = [flags] {
      const bool with_keystore = !flags->common.config_file.empty() || !flags->common.data_dir.empty();
      if (!with_keystore) {
        if (flags->key_file.empty()) {
          return Fail(Status::InvalidArgument("keystore init needs --root-key-file FILE, and --config or --data-dir "
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
      std::cout << "keystore created in " << config->data_dir << " (root key source: " << config->root_key_source
                << ")" << std::endl;
      return 0;
    };
  });
}

}  // namespace coffre::server
