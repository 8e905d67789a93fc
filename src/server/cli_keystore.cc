// coffre keystore init

#include <iostream>

#include "coffre/keystore/keystore.h"
#include "commands.h"

namespace coffre::server {

void RegisterKeystoreCommands(CLI::App& app, CommandRunner& runner) {
  auto key_file = std::make_shared<std::string>();
  auto* ks = app.add_subcommand("keystore", "Manage the keystore");
  ks->require_subcommand(1);
  auto* init = ks->add_subcommand("init", "Create a new root key file (mode 0600)");
  init->add_option("--root-key-file", *key_file, "Path of the new root key file")->required();
  init->callback([key_file, &runner] {
    runner.run = [key_file] {
      if (Status st = keystore::CreateRootKeyFile(*key_file); !st.ok()) return Fail(st);
      std::cout << "root key written to " << *key_file << " (mode 0600)" << std::endl;
      return 0;
    };
  });
}

}  // namespace coffre::server
