// The `coffre` command line: each family of subcommands registers itself (commands.h).

#include "coffre/server/cli.h"

#include <sys/prctl.h>

#include <iostream>

#include "commands.h"

namespace coffre::server {

void AddCommonFlags(CLI::App* cmd, CommonFlags& flags) {
  cmd->add_option("--config", flags.config_file, "JSON configuration file (default: the embedded development config)");
  cmd->add_option("--data-dir", flags.data_dir, "Data directory (overrides the config)");
  cmd->add_option("--passphrase-fd", flags.passphrase_fd,
                  "Read the root key passphrase from this file descriptor (root_key_source \"passphrase\")");
}

Result<Config> ResolveConfig(const CommonFlags& flags) {
  Config config = DevelopmentConfig();
  if (!flags.config_file.empty()) {
    COFFRE_ASSIGN_OR_RETURN(config, LoadConfigFile(flags.config_file));
  }
  if (!flags.data_dir.empty()) config.data_dir = flags.data_dir;
  config.passphrase_fd = flags.passphrase_fd;
  return config;
}

int Fail(const Status& st) {
  std::cerr << "coffre: " << st.message() << std::endl;
  return st.code() == StatusCode::kInvalidArgument ? 1 : 2;
}

void PrintList(const char* title, const std::vector<std::string>& items, const char* suffix) {
  if (items.empty()) {
    return;
  }
  std::cout << title << ": " << items.size() << suffix << "\n";
  for (const auto& item : items) {
    std::cout << "  " << item << "\n";
  }
}

int Main(int argc, char** argv) {
  // Admin commands unwrap keys too: keep them out of core dumps and ptrace, as the daemon.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  CLI::App app{"Coffre: a sovereign, encrypting S3 gateway"};
  app.require_subcommand(1);
  CommandRunner runner;
  RegisterServeCommand(app, runner);
  RegisterTenantCommands(app, runner);
  RegisterKeystoreCommands(app, runner);
  RegisterAccessKeyCommands(app, runner);
  RegisterKeyCommands(app, runner);
  RegisterAuditCommands(app, runner);
  RegisterFsckCommands(app, runner);
  RegisterCatalogCommands(app, runner);
  RegisterStorageCommands(app, runner);
  RegisterScrubCommands(app, runner);
  RegisterConfigCommands(app, runner);
  RegisterAdminCredentialCommands(app, runner);
  RegisterApprovalCommands(app, runner);
  CLI11_PARSE(app, argc, argv);
  if (!runner.run) {
    std::cerr << app.help() << std::endl;
    return 1;
  }
  return runner.run();
}

}  // namespace coffre::server
