// coffre config check FILE

#include <iostream>

#include "commands.h"

namespace coffre::server {

void RegisterConfigCommands(CLI::App& app, CommandRunner& runner) {
  auto* config = app.add_subcommand("config", "Configuration file tools");
  config->require_subcommand(1);
  auto file = std::make_shared<std::string>();
  auto* check =
      config->add_subcommand("check",
                             "Validate a configuration file as `serve` would (fields, types, ranges, addresses); "
                             "exit 0 when valid, 1 with a message naming the bad field otherwise");
  check->add_option("FILE", *file, "JSON configuration file")->required();
  check->callback([file, &runner] {
    runner.run = [file] {
      auto loaded = LoadConfigFile(*file);
      if (!loaded.ok()) {
        return Fail(loaded.status());
      }
      if (Status placed = CheckRootKeyPlacement(*loaded); !placed.ok()) {
        return Fail(Status::InvalidArgument(*file + ": " + placed.message()));
      }
      std::cout << *file << ": valid" << std::endl;
      return 0;
    };
  });
}

}  // namespace coffre::server
