// coffre tenant create | list | shred
//
// Creating and shredding are recorded in the audit log (docs/AUDIT.md, "Key-lifecycle events"):
// a command whose record cannot be made durable fails, and shredding is recorded before it acts.

#include <iostream>
#include <nlohmann/json.hpp>

#include "audit_store.h"
#include "cli_context.h"
#include "coffre/common/clock.h"
#include "coffre/service/dual_control.h"
#include "coffre/service/key_lifecycle.h"
#include "coffre/service/object_service.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {
namespace {

struct TenantFlags {
  CommonFlags common;
  std::string name;
  bool json = false;
  std::string confirm;   // shred: the tenant name again
  std::string approval;  // shred, dual control: the approval id
};

// How many catalog rows of a shredded tenant one transaction removes.
constexpr uint32_t kRemovalBatch = 1000;

int Create(const TenantFlags& flags) {
  auto context = OpenForCli(flags.common);
  if (!context.ok()) {
    return Fail(context.status());
  }
  if (Status st = context->OpenAuditLogOrRefuse(); !st.ok()) {
    return Fail(st);
  }
  service::KeyLifecycle lifecycle(context->keys(), context->audit_log.get());
  const audit::RequestInfo request = CliRequest("cli:tenant create");
  auto t = lifecycle.CreateTenant(flags.name, request);
  if (!t.ok()) {
    return Fail(t.status());
  }
  auto k = lifecycle.CreateAccessKey(t->id, request);
  if (!k.ok()) {
    std::cerr << "coffre: tenant " << t->name
              << " was created (and recorded), but no access key was issued: " << k.status().message()
              << " (coffre access-key create " << t->name << " issues one)" << std::endl;
    return 2;
  }
  if (flags.json) {
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

// Destroys the tenant's keys, recorded first (the audit log must open) and under dual control.
int ShredKeys(CliContext& context, const keystore::Tenant& tenant, const std::string& approval) {
  if (Status st = context.OpenAuditLogOrRefuse(); !st.ok()) {
    return Fail(st);
  }
  service::DualControl dual(context.keys(), context.audit_log.get(), DualControlPolicyOf(context.config));
  auto authorization = dual.Authorize(keystore::GuardedOperation::kShredTenant, tenant.id, 0, approval);
  if (!authorization.ok()) {
    return Fail(authorization.status());
  }
  service::KeyLifecycle lifecycle(context.keys(), context.audit_log.get());
  if (Status st = lifecycle.ShredTenant(tenant.id, CliRequest("cli:tenant shred" + authorization->ActionSuffix()));
      !st.ok()) {
    return Fail(st);
  }
  authorization->Done();
  std::cout << "tenant " << tenant.name
            << ": every key version destroyed and its access keys disabled; its objects can no longer be "
               "decrypted (recorded in the audit log)"
            << std::endl;
  return 0;
}

// Crypto-shredding (docs/KEYS.md): the keys go first, in one keystore transaction; from then on
// nothing of the tenant decrypts. Its catalog rows then go in batches (rerunning the command
// finishes an interrupted cleanup), and the daemon's garbage collector removes the blob files.
int Shred(const TenantFlags& flags) {
  if (flags.confirm != flags.name) {
    return Fail(Status::InvalidArgument("--confirm must repeat the tenant name (" + flags.name +
                                        "): shredding destroys every object of the tenant for good"));
  }
  auto context = OpenForCli(flags.common, CliStores::kCatalog);
  if (!context.ok()) {
    return Fail(context.status());
  }
  auto t = FindTenant(context->keys(), flags.name);
  if (!t.ok()) {
    return Fail(t.status());
  }
  Stores& stores = context->stores;
  service::ObjectService service(*stores.catalog, *stores.keystore, *stores.blobs);
  if (t->shredded) {
    std::cout << "tenant " << t->name << " was already shredded; finishing the removal of its catalog entries"
              << std::endl;
  } else {
    // Object Lock outlives crypto-shredding, which would make every version of the tenant
    // unreadable; GOVERNANCE retention yields to a dual-control approval.
    auto refused =
        service.RefuseWhileProtected(t->id, {}, !flags.approval.empty(), "tenant " + t->name,
                                     keystore::GuardedOperationName(keystore::GuardedOperation::kShredTenant));
    if (!refused.ok()) {
      std::cerr << "coffre: " << refused.error().message << std::endl;
      return 1;
    }
    if (int failed = ShredKeys(*context, *t, flags.approval); failed != 0) {
      return failed;
    }
  }
  uint64_t removed = 0;
  while (true) {
    auto r = service.RemoveTenantData(t->id, kRemovalBatch);
    if (!r.ok()) {
      std::cerr << "coffre: removing the tenant's catalog entries: " << r.error().message
                << " (run the command again to finish)" << std::endl;
      return 2;
    }
    if (*r == 0) break;
    removed += *r;
  }
  std::cout << "removed " << removed << " buckets, objects and uploads from the catalog; the daemon deletes "
            << "their data files in the background" << std::endl;
  return 0;
}

int List(const TenantFlags& flags) {
  auto context = OpenForCli(flags.common);
  if (!context.ok()) return Fail(context.status());
  auto tenants = context->keys().ListTenants();
  if (!tenants.ok()) return Fail(tenants.status());
  if (flags.json) {
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

}  // namespace

void RegisterTenantCommands(CLI::App& app, CommandRunner& runner) {
  auto flags = std::make_shared<TenantFlags>();
  auto* tenant = app.add_subcommand("tenant", "Manage tenants");
  tenant->require_subcommand(1);

  auto* create = tenant->add_subcommand("create", "Create a tenant with its key and an access key");
  AddCommonFlags(create, flags->common);
  create->add_option("NAME", flags->name, "Tenant name")->required();
  create->add_flag("--json", flags->json, "Print the credentials as JSON");
  create->callback([flags, &runner] { runner.run = [flags] { return Create(*flags); }; });

  auto* shred = tenant->add_subcommand("shred", "Destroy all key versions of a tenant (crypto-shredding)");
  AddCommonFlags(shred, flags->common);
  shred->add_option("NAME", flags->name, "Tenant name")->required();
  shred->add_option("--confirm", flags->confirm, "The tenant name again: shredding cannot be undone")->required();
  shred->add_option("--approval", flags->approval, "Dual control: the granted approval (coffre approval request)");
  shred->callback([flags, &runner] { runner.run = [flags] { return Shred(*flags); }; });

  auto* list = tenant->add_subcommand("list", "List tenants");
  AddCommonFlags(list, flags->common);
  list->add_flag("--json", flags->json, "Print JSON");
  list->callback([flags, &runner] { runner.run = [flags] { return List(*flags); }; });
}

}  // namespace coffre::server
