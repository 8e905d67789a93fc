// coffre approval request OPERATION [TENANT [VERSION]] | approve ID | list
//
// Dual control (docs/KEYS.md "Dual control"): one admin credential requests a guarded operation,
// a second one grants it, and the operation's own command then runs with --approval ID. The
// command authenticates the person by their admin API token (--token-file or --token-fd, never
// an argument: argv is visible to every user of the host), exactly as the admin API does, and
// records the request or grant in the audit log before storing it.

#include <fcntl.h>
#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "audit_store.h"
#include "cli_context.h"
#include "coffre/admin/admin_api.h"
#include "coffre/common/clock.h"
#include "coffre/service/dual_control.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {
namespace {

struct ApprovalFlags {
  CommonFlags common;
  std::string operation;
  std::string tenant;
  uint32_t version = 0;
  std::string key;  // a named key of the tenant (tenant_key.destroy of its version, named_key.destroy)
  std::string id;
  std::string token_file;
  int token_fd = -1;
  bool json = false;
};

Result<SecretBytes> ReadToken(const ApprovalFlags& flags) {
  if (flags.token_file.empty() == (flags.token_fd < 0)) {
    return Status::InvalidArgument(
        "give your admin credential's token with exactly one of --token-file FILE or "
        "--token-fd N");
  }
  if (flags.token_fd >= 0) {
    return keystore::ReadPassphraseFromFd(flags.token_fd);
  }
  const int fd = ::open(flags.token_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::FromErrno(errno, "--token-file " + flags.token_file);
  }
  auto token = keystore::ReadPassphraseFromFd(fd);
  ::close(fd);
  return token;
}

// The admin credential whose token was given; PermissionDenied for an unknown, disabled or
// auditor token (the same answer for unknown and disabled, as the admin API gives).
Result<keystore::AdminCredential> Authenticate(keystore::Keystore& keys, const ApprovalFlags& flags) {
  COFFRE_ASSIGN_OR_RETURN(SecretBytes token, ReadToken(flags));
  std::string_view text(reinterpret_cast<const char*>(token.Reveal().data()), token.size());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  auto credential = keys.AuthenticateAdminToken(text);
  if (!credential.ok()) {
    if (credential.status().code() == StatusCode::kNotFound ||
        credential.status().code() == StatusCode::kPermissionDenied) {
      return Status::PermissionDenied("invalid or disabled admin token");
    }
    return credential.status();
  }
  if (credential->role != keystore::AdminRole::kAdmin) {
    return Status::PermissionDenied("'" + credential->name + "' is an auditor credential; only admin credentials " +
                                    "request and grant approvals");
  }
  return credential;
}

void PrintApproval(const keystore::Approval& a, const std::string& tenant_name, bool json) {
  const UnixMillis now = ToUnixMillis(Clock::System().Now());
  if (json) {
    std::cout << admin::ApprovalJson(a, tenant_name, now).dump() << std::endl;
    return;
  }
  std::cout << "approval " << a.id << ": " << keystore::GuardedOperationName(a.operation);
  if (!keystore::TargetsTenant(a.operation)) {
    std::cout << (a.tenant_id.empty() ? "" : " " + a.tenant_id);
  } else if (!tenant_name.empty()) {
    std::cout << " of tenant " << tenant_name;
  }
  if (a.version != 0) {
    std::cout << " version " << a.version;
  }
  std::cout << ", " << keystore::ApprovalStateName(a.StateAt(now)) << ", requested by " << a.requested_by;
  if (a.approved_by) {
    std::cout << ", granted by " << *a.approved_by;
  }
  std::cout << ", expires " << FormatIso8601(FromUnixMillis(a.expires)) << std::endl;
}

// Opens what a request or a grant needs: the keystore, the credential of the person acting, and
// the audit log (the change is recorded before it is stored, so the log must open).
struct Opened {
  CliContext context;
  keystore::AdminCredential actor;
};

Result<Opened> OpenForChange(const ApprovalFlags& flags) {
  COFFRE_ASSIGN_OR_RETURN(CliContext context, OpenForCli(flags.common));
  COFFRE_ASSIGN_OR_RETURN(keystore::AdminCredential actor, Authenticate(context.keys(), flags));
  COFFRE_RETURN_IF_ERROR(context.OpenAuditLogOrRefuse());
  return Opened{std::move(context), std::move(actor)};
}

int Request(const ApprovalFlags& flags) {
  auto op = keystore::ParseGuardedOperation(flags.operation);
  if (!op) {
    return Fail(Status::InvalidArgument("unknown operation '" + flags.operation +
                                        "': expected tenant_key.destroy TENANT VERSION [--key NAME], tenant.shred "
                                        "TENANT, named_key.destroy TENANT --key NAME, root_key.rotate or "
                                        "admin_credential.create NAME"));
  }
  auto opened = OpenForChange(flags);
  if (!opened.ok()) {
    return Fail(opened.status());
  }
  CliContext& context = opened->context;
  std::string tenant_id;
  if (!keystore::TargetsTenant(*op)) {
    tenant_id = flags.tenant;  // the credential's name (admin_credential.create), or none
  } else if (!flags.tenant.empty()) {
    auto t = FindTenant(context.keys(), flags.tenant);
    if (!t.ok()) {
      return Fail(t.status());
    }
    tenant_id = t->id;
    // A named key's operations target the key: its id stands where the tenant's would.
    if (!flags.key.empty()) {
      auto key = context.keys().FindNamedKey(t->id, flags.key);
      if (!key.ok()) {
        return Fail(key.status());
      }
      tenant_id = key->key_id;
    } else if (*op == keystore::GuardedOperation::kDestroyNamedKey) {
      return Fail(Status::InvalidArgument("named_key.destroy needs --key NAME"));
    }
  }
  service::DualControl dual(context.keys(), context.audit_log.get(), DualControlPolicyOf(context.config));
  auto approval = dual.Request(*op, tenant_id, flags.version, opened->actor.name, CliRequest("cli:approval request"));
  if (!approval.ok()) {
    return Fail(approval.status());
  }
  PrintApproval(*approval, flags.tenant, flags.json);
  if (!flags.json) {
    std::cout << "A second, different admin grants it with: coffre approval approve " << approval->id
              << " --token-file FILE (or POST /approvals/" << approval->id << "/approve on the admin API)" << std::endl;
  }
  return 0;
}

int Approve(const ApprovalFlags& flags) {
  auto opened = OpenForChange(flags);
  if (!opened.ok()) {
    return Fail(opened.status());
  }
  CliContext& context = opened->context;
  service::DualControl dual(context.keys(), context.audit_log.get(), DualControlPolicyOf(context.config));
  auto approval = dual.Grant(flags.id, opened->actor.name, CliRequest("cli:approval approve"));
  if (!approval.ok()) {
    const StatusCode code = approval.status().code();
    if (code == StatusCode::kNotFound || code == StatusCode::kFailedPrecondition) {
      return Fail(Status::InvalidArgument(approval.status().message() + " (coffre approval list shows them)"));
    }
    return Fail(approval.status());
  }
  PrintApproval(*approval, admin::ApprovalTenantName(context.keys(), approval->tenant_id), flags.json);
  return 0;
}

int List(const ApprovalFlags& flags) {
  auto context = OpenForCli(flags.common);
  if (!context.ok()) {
    return Fail(context.status());
  }
  keystore::Keystore& keys = context->keys();
  constexpr size_t kShown = 100;
  auto listed = keys.ListApprovals(kShown);
  if (!listed.ok()) {
    return Fail(listed.status());
  }
  const UnixMillis now = ToUnixMillis(Clock::System().Now());
  if (flags.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& a : *listed) {
      arr.push_back(admin::ApprovalJson(a, admin::ApprovalTenantName(keys, a.tenant_id), now));
    }
    std::cout << arr.dump() << std::endl;
    return 0;
  }
  std::cout << "ID\tOPERATION\tTENANT\tVERSION\tSTATE\tREQUESTED_BY\tAPPROVED_BY\tEXPIRES\n";
  for (const auto& a : *listed) {
    const std::string tenant = admin::ApprovalTenantName(keys, a.tenant_id);
    std::cout << a.id << "\t" << keystore::GuardedOperationName(a.operation) << "\t" << (tenant.empty() ? "-" : tenant)
              << "\t" << (a.version == 0 ? "-" : std::to_string(a.version)) << "\t"
              << keystore::ApprovalStateName(a.StateAt(now)) << "\t" << a.requested_by << "\t"
              << a.approved_by.value_or("-") << "\t" << FormatIso8601(FromUnixMillis(a.expires)) << "\n";
  }
  return 0;
}

void AddTokenFlags(CLI::App* cmd, ApprovalFlags& flags) {
  cmd->add_option("--token-file", flags.token_file, "A file holding your admin credential's token");
  cmd->add_option("--token-fd", flags.token_fd, "Read your admin credential's token from this file descriptor");
  cmd->add_flag("--json", flags.json, "Print JSON");
}

}  // namespace

void RegisterApprovalCommands(CLI::App& app, CommandRunner& runner) {
  auto flags = std::make_shared<ApprovalFlags>();
  auto* group = app.add_subcommand("approval", "Dual control: request and grant approvals of guarded operations");
  group->require_subcommand(1);

  auto* request = group->add_subcommand(
      "request",
      "Ask for a guarded operation: tenant_key.destroy TENANT VERSION [--key NAME], tenant.shred TENANT, "
      "named_key.destroy TENANT --key NAME, root_key.rotate, admin_credential.create NAME");
  AddCommonFlags(request, flags->common);
  request
      ->add_option("OPERATION", flags->operation,
                   "tenant_key.destroy, tenant.shred, named_key.destroy, root_key.rotate or admin_credential.create")
      ->required();
  request->add_option("TENANT", flags->tenant, "Tenant name (tenant operations), or the new credential's name");
  request->add_option("VERSION", flags->version, "Key version (tenant_key.destroy)");
  request->add_option("--key", flags->key, "A named key of the tenant (tenant_key.destroy, named_key.destroy)");
  AddTokenFlags(request, *flags);
  request->callback([flags, &runner] { runner.run = [flags] { return Request(*flags); }; });

  auto* approve = group->add_subcommand("approve", "Grant another admin's pending request");
  AddCommonFlags(approve, flags->common);
  approve->add_option("ID", flags->id, "Approval id (apr-...)")->required();
  AddTokenFlags(approve, *flags);
  approve->callback([flags, &runner] { runner.run = [flags] { return Approve(*flags); }; });

  auto* list = group->add_subcommand("list", "The latest 100 approvals and their states");
  AddCommonFlags(list, flags->common);
  list->add_flag("--json", flags->json, "Print JSON");
  list->callback([flags, &runner] { runner.run = [flags] { return List(*flags); }; });
}

}  // namespace coffre::server
