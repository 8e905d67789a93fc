// coffre tenant create | list | shred
//
// Creating and shredding are recorded in the audit log (docs/AUDIT.md, "Key-lifecycle events"):
// a command whose record cannot be made durable fails, and shredding is recorded before it acts.

#include <iostream>
#include <nlohmann/json.hpp>

#include "audit_store.h"
#include "coffre/common/clock.h"
#include "coffre/service/key_lifecycle.h"
#include "coffre/service/object_service.h"
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
      if (!config.ok()) {
        return Fail(config.status());
      }
      auto root = LoadRootKey(*config, /*create=*/false);
      if (!root.ok()) {
        return Fail(root.status());
      }
      auto keys = OpenKeystoreWithRootKey(*config, *root);
      if (!keys.ok()) {
        return Fail(keys.status());
      }
      auto log = OpenAuditOrRefuse(*config, *root);
      if (!log.ok()) {
        return Fail(log.status());
      }
      *root = SecretBytes();  // the keystore and the audit log hold what they need
      service::KeyLifecycle lifecycle(**keys, log->get());
      const audit::RequestInfo request = CliRequest("cli:tenant create");
      auto t = lifecycle.CreateTenant(flags->name, request);
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

  // Crypto-shredding (docs/KEYS.md): the keys go first, in one keystore transaction; from then
  // on nothing of the tenant decrypts. Its catalog rows then go in batches (rerunning the command
  // finishes an interrupted cleanup), and the daemon's garbage collector removes the blob files.
  auto shred_confirm = std::make_shared<std::string>();
  auto shred_approval = std::make_shared<std::string>();
  auto* shred = tenant->add_subcommand("shred", "Destroy all key versions of a tenant (crypto-shredding)");
  AddCommonFlags(shred, flags->common);
  shred->add_option("NAME", flags->name, "Tenant name")->required();
  shred->add_option("--confirm", *shred_confirm, "The tenant name again: shredding cannot be undone")->required();
  shred->add_option("--approval", *shred_approval, "Dual control: the granted approval (coffre approval request)");
  shred->callback([flags, shred_confirm, shred_approval, &runner] {
    runner.run = [flags, shred_confirm, shred_approval] {
      if (*shred_confirm != flags->name) {
        return Fail(Status::InvalidArgument("--confirm must repeat the tenant name (" + flags->name +
                                            "): shredding destroys every object of the tenant for good"));
      }
      auto config = ResolveConfig(flags->common);
      if (!config.ok()) {
        return Fail(config.status());
      }
      auto stores = OpenStores(*config, /*for_daemon=*/false);
      if (!stores.ok()) {
        return Fail(stores.status());
      }
      auto t = stores->keystore->GetTenantByName(flags->name);
      if (!t.ok() && t.status().code() == StatusCode::kNotFound) {
        return Fail(Status::InvalidArgument("no tenant named '" + flags->name + "' (coffre tenant list shows them)"));
      }
      if (!t.ok()) {
        return Fail(t.status());
      }
      if (t->shredded) {
        std::cout << "tenant " << t->name << " was already shredded; finishing the removal of its catalog entries"
                  << std::endl;
      } else {
        // Shredding cannot be undone: its record is made durable first, so the audit log must open.
        auto log = OpenAuditOrRefuse(*config, stores->root_key);
        if (!log.ok()) {
          return Fail(log.status());
        }
        stores->root_key = SecretBytes();
        service::DualControl dual(*stores->keystore, log->get(), DualControlPolicyOf(*config));
        auto authorization = dual.Authorize(keystore::GuardedOperation::kShredTenant, t->id, 0, *shred_approval);
        if (!authorization.ok()) {
          return Fail(authorization.status());
        }
        service::KeyLifecycle lifecycle(*stores->keystore, log->get());
        if (Status st = lifecycle.ShredTenant(t->id, CliRequest("cli:tenant shred" + authorization->ActionSuffix()));
            !st.ok()) {
          return Fail(st);
        }
        authorization->Done();
        std::cout << "tenant " << t->name
                  << ": every key version destroyed and its access keys disabled; its objects can no longer be "
                     "decrypted (recorded in the audit log)"
                  << std::endl;
      }
      service::ObjectService service(*stores->catalog, *stores->keystore, *stores->blobs);
      uint64_t removed = 0;
      while (true) {
        auto r = service.RemoveTenantData(t->id, 1000);
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
