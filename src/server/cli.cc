// The `coffre` command line: serve, tenant, keystore.

#include "coffre/server/cli.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "coffre/common/clock.h"
#include "daemon.h"
#include "stores.h"

namespace coffre::server {
namespace {

struct CommonFlags {
  std::string config_file;
  std::string data_dir;
};

void AddCommonFlags(CLI::App* cmd, CommonFlags& flags) {
  cmd->add_option("--config", flags.config_file, "JSON configuration file (default: the embedded development config)");
  cmd->add_option("--data-dir", flags.data_dir, "Data directory (overrides the config)");
}

Result<Config> ResolveConfig(const CommonFlags& flags) {
  Config config = DevelopmentConfig();
  if (!flags.config_file.empty()) {
    COFFRE_ASSIGN_OR_RETURN(config, LoadConfigFile(flags.config_file));
  }
  if (!flags.data_dir.empty()) config.data_dir = flags.data_dir;
  return config;
}

int Fail(const Status& st) {
  std::cerr << "coffre: " << st.message() << std::endl;
  return st.code() == StatusCode::kInvalidArgument ? 1 : 2;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"Coffre: a sovereign, encrypting S3 gateway"};
  app.require_subcommand(1);

  CommonFlags serve_flags;
  std::string listen;
  auto* serve = app.add_subcommand("serve", "Run the S3 gateway");
  AddCommonFlags(serve, serve_flags);
  serve->add_option("--listen", listen, "HOST:PORT to listen on (port 0 picks a free port)");

  auto* tenant = app.add_subcommand("tenant", "Manage tenants");
  tenant->require_subcommand(1);
  CommonFlags tenant_flags;
  std::string tenant_name;
  bool json = false;
  auto* tenant_create = tenant->add_subcommand("create", "Create a tenant with its key and an access key");
  AddCommonFlags(tenant_create, tenant_flags);
  tenant_create->add_option("NAME", tenant_name, "Tenant name")->required();
  tenant_create->add_flag("--json", json, "Print the credentials as JSON");
  auto* tenant_list = tenant->add_subcommand("list", "List tenants");
  AddCommonFlags(tenant_list, tenant_flags);
  tenant_list->add_flag("--json", json, "Print JSON");

  auto* ks = app.add_subcommand("keystore", "Manage the keystore");
  ks->require_subcommand(1);
  std::string new_key_file;
  auto* ks_init = ks->add_subcommand("init", "Create a new root key file (mode 0600)");
  ks_init->add_option("--root-key-file", new_key_file, "Path of the new root key file")->required();

  CLI11_PARSE(app, argc, argv);

  if (serve->parsed()) {
    auto config = ResolveConfig(serve_flags);
    if (!config.ok()) return Fail(config.status());
    if (!listen.empty()) config->listen = listen;
    return RunDaemon(*config);
  }
  if (ks_init->parsed()) {
    if (Status st = keystore::CreateRootKeyFile(new_key_file); !st.ok()) return Fail(st);
    std::cout << "root key written to " << new_key_file << " (mode 0600)" << std::endl;
    return 0;
  }
  auto config = ResolveConfig(tenant_flags);
  if (!config.ok()) return Fail(config.status());
  auto keys = OpenKeystore(*config, /*create=*/false);
  if (!keys.ok()) return Fail(keys.status());
  if (tenant_create->parsed()) {
    auto t = (*keys)->CreateTenant(tenant_name);
    if (!t.ok()) return Fail(t.status());
    auto k = (*keys)->CreateAccessKey(t->id);
    if (!k.ok()) return Fail(k.status());
    if (json) {
      std::cout << nlohmann::json{{"tenant", t->name},
                                  {"access_key_id", k->key.access_key_id},
                                  {"secret_access_key", k->secret_access_key}}
                       .dump()
                << std::endl;
    } else {
      std::cout << "tenant " << t->name << " created\n"
                << "  access key id:     " << k->key.access_key_id << "\n"
                << "  secret access key: " << k->secret_access_key << "  (shown once)" << std::endl;
    }
    return 0;
  }
  if (tenant_list->parsed()) {
    auto tenants = (*keys)->ListTenants();
    if (!tenants.ok()) return Fail(tenants.status());
    if (json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& t : *tenants) {
        arr.push_back({{"tenant", t.name}, {"id", t.id}, {"created", FormatIso8601(FromUnixMillis(t.created))}});
      }
      std::cout << arr.dump() << std::endl;
    } else {
      for (const auto& t : *tenants) {
        std::cout << t.name << "\t" << t.id << "\t" << FormatIso8601(FromUnixMillis(t.created)) << "\n";
      }
    }
    return 0;
  }
  return 1;
}

}  // namespace coffre::server
