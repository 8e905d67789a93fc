// coffre serve

#include "commands.h"
#include "daemon.h"

namespace coffre::server {

void RegisterServeCommand(CLI::App& app, CommandRunner& runner) {
  struct Flags {
    CommonFlags common;
    std::string listen;
  };
  auto flags = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("serve", "Run the S3 gateway");
  AddCommonFlags(cmd, flags->common);
  cmd->add_option("--listen", flags->listen, "HOST:PORT to listen on (port 0 picks a free port)");
  cmd->callback([flags, &runner] {
    runner.run = [flags] {
      auto config = ResolveConfig(flags->common);
      if (!config.ok()) return Fail(config.status());
      if (!flags->listen.empty()) config->listen = flags->listen;
      return RunDaemon(*config);
    };
  });
}

}  // namespace coffre::server
