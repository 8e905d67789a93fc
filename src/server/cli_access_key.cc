// coffre access-key create | disable | enable | delete | list TENANT
//
// The daemon caches resolved access keys; a change made here reaches it within
// keystore::Keystore::kRevalidateIntervalMs (it polls SQLite's data_version), see docs/KEYS.md.
// create, disable, enable and delete are recorded in the audit log (docs/AUDIT.md, "Key-lifecycle
// events"); a command whose record cannot be made durable changes nothing and fails.

#include <iostream>
#include <nlohmann/json.hpp>

#include "audit_store.h"
#include "cli_context.h"
#include "coffre/common/clock.h"
#include "coffre/service/key_lifecycle.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {
namespace {

struct AccessKeyFlags {
  CommonFlags common;
  std::string tenant;
  std::string access_key_id;
  bool json = false;
};

struct Opened {
  CliContext context;
  keystore::Tenant tenant;
};

// Opens the keystore (and, for a command that changes something, the audit log: without it
// nothing is changed) and resolves the tenant by name.
Result<Opened> OpenTenant(const AccessKeyFlags& flags, bool with_audit) {
  COFFRE_ASSIGN_OR_RETURN(CliContext context, OpenForCli(flags.common));
  COFFRE_ASSIGN_OR_RETURN(keystore::Tenant tenant, FindTenant(context.keys(), flags.tenant));
  if (with_audit) {
    COFFRE_RETURN_IF_ERROR(context.OpenAuditLogOrRefuse());
  }
  return Opened{std::move(context), std::move(tenant)};
}

std::string FormatTime(std::optional<UnixMillis> t) {
  return t ? FormatIso8601(FromUnixMillis(*t)) : std::string("never");
}

}  // namespace

void RegisterAccessKeyCommands(CLI::App& app, CommandRunner& runner) {
  auto flags = std::make_shared<AccessKeyFlags>();
  auto* group = app.add_subcommand("access-key", "Manage the access keys of a tenant");
  group->require_subcommand(1);

  auto* create = group->add_subcommand("create", "Create an access key (the secret is shown once)");
  AddCommonFlags(create, flags->common);
  create->add_option("TENANT", flags->tenant, "Tenant name")->required();
  create->add_flag("--json", flags->json, "Print JSON");
  create->callback([flags, &runner] {
    runner.run = [flags] {
      auto opened = OpenTenant(*flags, /*with_audit=*/true);
      if (!opened.ok()) {
        return Fail(opened.status());
      }
      const keystore::Tenant& tenant = opened->tenant;
      service::KeyLifecycle lifecycle(opened->context.keys(), opened->context.audit_log.get());
      auto k = lifecycle.CreateAccessKey(tenant.id, CliRequest("cli:access-key create"));
      if (!k.ok()) {
        // A shredded tenant: what the operator asked for cannot be done.
        if (k.status().code() == StatusCode::kFailedPrecondition) {
          return Fail(Status::InvalidArgument(k.status().message()));
        }
        return Fail(k.status());
      }
      if (flags->json) {
        std::cout << nlohmann::json{{"tenant", tenant.name},
                                    {"access_key_id", k->key.access_key_id},
                                    {"secret_access_key", k->secret_access_key}}
                         .dump()
                  << std::endl;
      } else {
        std::cout << "access key created for tenant " << tenant.name << "\n"
                  << "  access key id:     " << k->key.access_key_id << "\n"
                  << "  secret access key: " << k->secret_access_key << "  (shown once)" << std::endl;
      }
      return 0;
    };
  });

  auto add_change = [&](const char* name, const char* help, int kind) {
    auto* cmd = group->add_subcommand(name, help);
    AddCommonFlags(cmd, flags->common);
    cmd->add_option("TENANT", flags->tenant, "Tenant name")->required();
    cmd->add_option("ACCESS_KEY_ID", flags->access_key_id, "Access key id")->required();
    cmd->callback([flags, &runner, kind, name] {
      runner.run = [flags, kind, name] {
        auto opened = OpenTenant(*flags, /*with_audit=*/true);
        if (!opened.ok()) {
          return Fail(opened.status());
        }
        const keystore::Tenant& tenant = opened->tenant;
        service::KeyLifecycle lifecycle(opened->context.keys(), opened->context.audit_log.get());
        const audit::RequestInfo request = CliRequest(std::string("cli:access-key ") + name);
        Status st = kind == 2   ? lifecycle.DeleteAccessKey(tenant.id, flags->access_key_id, request)
                    : kind == 1 ? lifecycle.EnableAccessKey(tenant.id, flags->access_key_id, request)
                                : lifecycle.DisableAccessKey(tenant.id, flags->access_key_id, request);
        if (st.code() == StatusCode::kNotFound) {
          return Fail(Status::InvalidArgument("tenant " + tenant.name + " has no access key " + flags->access_key_id +
                                              " (coffre access-key list " + tenant.name + ")"));
        }
        if (st.code() == StatusCode::kFailedPrecondition) {
          return Fail(Status::InvalidArgument(st.message()));
        }
        if (!st.ok()) {
          return Fail(st);
        }
        std::cout << "access key " << flags->access_key_id << " " << name << "d; the daemon applies it within "
                  << keystore::Keystore::kRevalidateIntervalMs / 1000 << " s" << std::endl;
        return 0;
      };
    });
  };
  add_change("disable", "Disable an access key (S3 requests with it get AccessDenied)", 0);
  add_change("enable", "Enable a disabled access key", 1);
  add_change("delete", "Delete an access key and its sealed secret", 2);

  auto* list = group->add_subcommand("list", "List a tenant's access keys with their last use");
  AddCommonFlags(list, flags->common);
  list->add_option("TENANT", flags->tenant, "Tenant name")->required();
  list->add_flag("--json", flags->json, "Print JSON");
  list->callback([flags, &runner] {
    runner.run = [flags] {
      auto opened = OpenTenant(*flags, /*with_audit=*/false);
      if (!opened.ok()) return Fail(opened.status());
      const keystore::Tenant& tenant = opened->tenant;
      auto listed = opened->context.keys().ListAccessKeys(tenant.id);
      if (!listed.ok()) return Fail(listed.status());
      if (flags->json) {
        nlohmann::json arr = nlohmann::json::array();
        for (const auto& k : *listed) {
          nlohmann::json j = {{"access_key_id", k.access_key_id},
                              {"enabled", k.enabled},
                              {"created", FormatIso8601(FromUnixMillis(k.created))}};
          j["last_used"] = k.last_used ? nlohmann::json(FormatIso8601(FromUnixMillis(*k.last_used))) : nlohmann::json();
          arr.push_back(std::move(j));
        }
        std::cout << arr.dump() << std::endl;
      } else {
        std::cout << "ACCESS KEY ID\tSTATE\tCREATED\tLAST USED (the daemon writes it at most once a minute)\n";
        for (const auto& k : *listed) {
          std::cout << k.access_key_id << "\t" << (k.enabled ? "enabled" : "disabled") << "\t"
                    << FormatIso8601(FromUnixMillis(k.created)) << "\t" << FormatTime(k.last_used) << "\n";
        }
      }
      return 0;
    };
  });
}

}  // namespace coffre::server
