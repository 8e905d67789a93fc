// coffre admin-credential create --role admin|auditor [--approval ID] NAME | list | disable NAME
//
// Bearer tokens for the admin API (docs/OPERATIONS.md, "Admin API"). The token is printed once;
// the keystore keeps only its MAC. Creation and disabling are recorded in the audit log
// (admin_credential.create, admin_credential.disable) before they are stored, so the log must
// open; under dual control a new admin credential needs an approval once two have been made
// (service/dual_control.h). The daemon checks tokens against the database on every request, so a
// disabled credential stops working at once.

#include <iostream>
#include <nlohmann/json.hpp>

#include "audit_store.h"
#include "cli_context.h"
#include "coffre/common/clock.h"
#include "coffre/keystore/keystore.h"
#include "coffre/service/dual_control.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {
namespace {

struct CredentialFlags {
  CommonFlags common;
  std::string name;
  std::string role;
  std::string approval;
  bool json = false;
};

// What a change needs: the keystore and the audit log (the change is recorded first).
Result<CliContext> OpenForChange(const CredentialFlags& flags) {
  COFFRE_ASSIGN_OR_RETURN(CliContext context, OpenForCli(flags.common));
  COFFRE_RETURN_IF_ERROR(context.OpenAuditLogOrRefuse());
  return context;
}

int Create(const CredentialFlags& flags) {
  auto role = keystore::ParseAdminRole(flags.role);
  if (!role) {
    return Fail(Status::InvalidArgument("--role must be admin or auditor"));
  }
  auto opened = OpenForChange(flags);
  if (!opened.ok()) {
    return Fail(opened.status());
  }
  service::DualControl dual(opened->keys(), opened->audit_log.get(), DualControlPolicyOf(opened->config));
  auto created =
      dual.CreateAdminCredential(flags.name, *role, flags.approval, CliRequest("cli:admin-credential create"));
  if (!created.ok()) {
    if (created.status().code() == StatusCode::kAlreadyExists) {
      return Fail(Status::InvalidArgument(created.status().message() + " (names are never reused)"));
    }
    if (created.status().code() == StatusCode::kFailedPrecondition) {
      return Fail(Status::InvalidArgument(created.status().message() + " (coffre approval list shows them)"));
    }
    return Fail(created.status());
  }
  if (flags.json) {
    std::cout << nlohmann::json{{"name", created->credential.name},
                                {"role", keystore::AdminRoleName(created->credential.role)},
                                {"token", created->token}}
                     .dump()
              << std::endl;
  } else {
    std::cout << keystore::AdminRoleName(created->credential.role) << " credential " << created->credential.name
              << " created\n"
              << "  token: " << created->token << "  (shown once; send it as 'Authorization: Bearer TOKEN')"
              << std::endl;
  }
  return 0;
}

int List(const CredentialFlags& flags) {
  auto context = OpenForCli(flags.common);
  if (!context.ok()) {
    return Fail(context.status());
  }
  auto listed = context->keys().ListAdminCredentials();
  if (!listed.ok()) {
    return Fail(listed.status());
  }
  if (flags.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& c : *listed) {
      nlohmann::json j = {{"name", c.name},
                          {"role", keystore::AdminRoleName(c.role)},
                          {"created", FormatIso8601(FromUnixMillis(c.created))}};
      j["disabled"] = c.disabled ? nlohmann::json(FormatIso8601(FromUnixMillis(*c.disabled))) : nlohmann::json();
      arr.push_back(std::move(j));
    }
    std::cout << arr.dump() << std::endl;
    return 0;
  }
  std::cout << "NAME\tROLE\tCREATED\tSTATE\n";
  for (const auto& c : *listed) {
    std::cout << c.name << "\t" << keystore::AdminRoleName(c.role) << "\t" << FormatIso8601(FromUnixMillis(c.created))
              << "\t" << (c.disabled ? "disabled " + FormatIso8601(FromUnixMillis(*c.disabled)) : "enabled") << "\n";
  }
  return 0;
}

int Disable(const CredentialFlags& flags) {
  auto opened = OpenForChange(flags);
  if (!opened.ok()) {
    return Fail(opened.status());
  }
  service::DualControl dual(opened->keys(), opened->audit_log.get(), DualControlPolicyOf(opened->config));
  Status st = dual.DisableAdminCredential(flags.name, CliRequest("cli:admin-credential disable"));
  if (st.code() == StatusCode::kNotFound || st.code() == StatusCode::kFailedPrecondition) {
    return Fail(Status::InvalidArgument(st.message() + " (coffre admin-credential list shows them)"));
  }
  if (!st.ok()) {
    return Fail(st);
  }
  std::cout << "admin credential " << flags.name << " disabled; its token is refused from the next request on"
            << std::endl;
  return 0;
}

}  // namespace

void RegisterAdminCredentialCommands(CLI::App& app, CommandRunner& runner) {
  auto flags = std::make_shared<CredentialFlags>();
  auto* group = app.add_subcommand("admin-credential", "Manage the admin API's bearer tokens (admin, auditor)");
  group->require_subcommand(1);

  auto* create = group->add_subcommand("create", "Create a credential and print its token (shown once)");
  AddCommonFlags(create, flags->common);
  create->add_option("--role", flags->role, "admin (tenants, access keys, key versions) or auditor (audit log)")
      ->required();
  create->add_option("NAME", flags->name, "Credential name, recorded as the actor of its changes")->required();
  create->add_option("--approval", flags->approval,
                     "Dual control: the granted approval (coffre approval request admin_credential.create NAME)");
  create->add_flag("--json", flags->json, "Print JSON");
  create->callback([flags, &runner] { runner.run = [flags] { return Create(*flags); }; });

  auto* list = group->add_subcommand("list", "List credentials (never their tokens)");
  AddCommonFlags(list, flags->common);
  list->add_flag("--json", flags->json, "Print JSON");
  list->callback([flags, &runner] { runner.run = [flags] { return List(*flags); }; });

  auto* disable = group->add_subcommand("disable", "Disable a credential for good");
  AddCommonFlags(disable, flags->common);
  disable->add_option("NAME", flags->name, "Credential name")->required();
  disable->callback([flags, &runner] { runner.run = [flags] { return Disable(*flags); }; });
}

}  // namespace coffre::server
