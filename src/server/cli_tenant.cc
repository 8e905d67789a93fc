// coffre tenant create | list

#include <iostream>
#include <nlohmann/json.hpp>

#include "coffre/common/clock.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {

void RegisterTenantCommands(CLI::App& app, CommandRunner& runner) {
  struct Flags {
    CommonFlags common;
    std::string name;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  auto* tenant = app.add_subcommand("tenant", "Manage tenants");
  tenant->require_subcommand(1);

  auto* create = tenant->add_subcommand("create", "Create a tenant with its key and an access key");
  AddCommonFlags(create, flags->common);
  create->add_option("NAME", flags->name, "Tenant name")->required();
  create->add_flag("--json", flags->json, "Print the credentials as JSON");
  create->callback([flags, &runner] {
    runner.run = [flags] {
      auto config = ResolveConfig(flags->common);
      if (!config.ok()) return Fail(config.status());
      auto keys = OpenKeystore(*config, /*create=*/false);
      if (!keys.ok()) return Fail(keys.status());
      auto t = (*keys)->CreateTenant(flags->name);
      if (!t.ok()) return Fail(t.status());
      auto k = (*keys)->CreateAccessKey(t->id);
      if (!k.ok()) return Fail(k.status());
      if (flags->json) {
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
    };
  });

  auto* list = tenant->add_subcommand("list", "List tenants");
  AddCommonFlags(list, flags->common);
  list->add_flag("--json", flags->json, "Print JSON");
  list->callback([flags, &runner] {
    runner.run = [flags] {
      auto config = ResolveConfig(flags->common);
      if (!config.ok()) return Fail(config.status());
      auto keys = OpenKeystore(*config, /*create=*/false);
      if (!keys.ok()) return Fail(keys.status());
      auto tenants = (*keys)->ListTenants();
      if (!tenants.ok()) return Fail(tenants.status());
      if (flags->json) {
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
    };
  });
}

}  // namespace coffre::server
