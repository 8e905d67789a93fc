// coffre serve

#include "commands.h"
#include "daemon.h"

namespace coffre::server {

void RegisterServeCommand(CLI::App& app, CommandRunner& runner) {
  struct Flags {
    CommonFlags common;
    std::string listen;
    std::string admin_listen;
  };
  auto flags = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("serve", "Run the S3 gateway");
  AddCommonFlags(cmd, flags->common);
  cmd->add_option("--listen", flags->listen, "HOST:PORT to listen on (port 0 picks a free port)");
  cmd->add_option("--admin-listen", flags->admin_listen,
                  "HOST:PORT of the admin API (health, metrics); port 0 picks a free port and prints "
                  "'admin listening on HOST:PORT'. Default: the config's admin_listen, or a free port "
                  "when --listen asks for port 0");
  cmd->callback([flags, &runner] {
    runner.run = [flags] {
      // The same resolution at start and on SIGHUP, so that the command line still wins.
      ConfigLoader load = [flags]() -> Result<Config> {
        COFFRE_ASSIGN_OR_RETURN(Config config, ResolveConfig(flags->common));
        if (!flags->listen.empty()) {
          config.listen = flags->listen;
        }
        if (!flags->admin_listen.empty()) {
          config.admin_listen = flags->admin_listen;
        } else if (config.listen.ends_with(":0") && !config.admin_listen.empty()) {
          // A free S3 port (tests, several instances side by side) would still collide on a
          // fixed admin port: take a free one there too.
          std::string host;
          uint16_t port = 0;
          if (ParseListen(config.admin_listen, &host, &port).ok()) {
            config.admin_listen = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":0";
          }
        }
        return config;
      };
      auto config = load();
      if (!config.ok()) {
        return Fail(config.status());
      }
      return Daemon(*config, load).Run();
    };
  });
}

}  // namespace coffre::server
