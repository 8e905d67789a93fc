// coffre key create | rotate | list | rewrap | destroy | shred TENANT
//
// Every command acts on the tenant's default key, or with --key NAME on one of its named keys
// (docs/KEYS.md "Named keys"); `create` makes a named key and `shred` destroys one whole.
//
// These run beside a live daemon (docs/KEYS.md): the keystore changes reach the daemon within
// keystore::Keystore::kRevalidateIntervalMs, and rewrap's catalog updates are short
// compare-and-swap transactions that never clobber a concurrent write.

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

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

struct KeyFlags {
  CommonFlags common;
  std::string tenant;
  uint32_t version = 0;
  uint32_t from = 0;
  uint32_t rate = 500;
  bool json = false;
  std::string approval;  // dual control: the approval id for destroy and shred
  std::string key;       // --key: a named key of the tenant (its name or id)
  std::string name;      // create / shred: the named key
  std::string confirm;   // shred: the key's name again
};

// The key a command acts on: the tenant's default key, or the named key --key names.
Result<keystore::KeyRef> KeyOf(keystore::Keystore& keys, const keystore::Tenant& tenant, const std::string& named) {
  if (named.empty()) return keystore::KeyRef(tenant.id);
  COFFRE_ASSIGN_OR_RETURN(keystore::NamedKey key, keys.FindNamedKey(tenant.id, named));
  return key.ref();
}

// How messages name that key.
std::string KeyLabel(const keystore::Tenant& tenant, const std::string& named) {
  return named.empty() ? "tenant " + tenant.name : "key " + named + " of tenant " + tenant.name;
}

// Exit status for a service error: 1 for what the operator must change, 2 otherwise.
int FailService(const service::Error& e) {
  std::cerr << "coffre: " << e.message << std::endl;
  return e.code == service::Errc::kInvalidArgument || e.code == service::Errc::kPreconditionFailed ? 1 : 2;
}

int Rotate(const KeyFlags& flags) {
  auto context = OpenForCli(flags.common);
  if (!context.ok()) {
    return Fail(context.status());
  }
  auto tenant = FindTenant(context->keys(), flags.tenant);
  if (!tenant.ok()) {
    return Fail(tenant.status());
  }
  if (Status st = context->OpenAuditLogOrRefuse(); !st.ok()) {
    return Fail(st);
  }
  auto key = KeyOf(context->keys(), *tenant, flags.key);
  if (!key.ok()) {
    return Fail(key.status());
  }
  service::KeyLifecycle lifecycle(context->keys(), context->audit_log.get());
  auto version = lifecycle.RotateTenantKey(*key, CliRequest("cli:key rotate"));
  if (!version.ok() && version.status().code() == StatusCode::kFailedPrecondition) {
    return Fail(Status::InvalidArgument(version.status().message()));
  }
  if (!version.ok()) {
    return Fail(version.status());
  }
  std::cout << KeyLabel(*tenant, flags.key) << ": key version " << *version
            << " is now active for new objects; older versions keep decrypting theirs "
               "(coffre key rewrap "
            << tenant->name << (flags.key.empty() ? "" : " --key " + flags.key) << " moves them to the new version)"
            << std::endl;
  return 0;
}

int Create(const KeyFlags& flags) {
  auto context = OpenForCli(flags.common);
  if (!context.ok()) return Fail(context.status());
  auto tenant = FindTenant(context->keys(), flags.tenant);
  if (!tenant.ok()) return Fail(tenant.status());
  if (Status st = context->OpenAuditLogOrRefuse(); !st.ok()) return Fail(st);
  service::KeyLifecycle lifecycle(context->keys(), context->audit_log.get());
  auto key = lifecycle.CreateNamedKey(tenant->id, flags.name, CliRequest("cli:key create"));
  if (!key.ok()) {
    if (key.status().code() == StatusCode::kFailedPrecondition) {
      return Fail(Status::InvalidArgument(key.status().message()));
    }
    return Fail(key.status());
  }
  if (flags.json) {
    std::cout << nlohmann::json{{"tenant", tenant->name},
                                {"name", key->name},
                                {"key_id", keystore::KeyIdAsUuid(key->key_id)}}
                     .dump()
              << std::endl;
    return 0;
  }
  std::cout << "tenant " << tenant->name << ": key " << key->name << " created (id "
            << keystore::KeyIdAsUuid(key->key_id)
            << "); clients select it with x-amz-server-side-encryption: aws:kms and "
               "x-amz-server-side-encryption-aws-kms-key-id: "
            << key->name << std::endl;
  return 0;
}

int List(const KeyFlags& flags) {
  auto context = OpenForCli(flags.common, CliStores::kCatalog);
  if (!context.ok()) return Fail(context.status());
  Stores& stores = context->stores;
  auto tenant = FindTenant(*stores.keystore, flags.tenant);
  if (!tenant.ok()) return Fail(tenant.status());
  auto key = KeyOf(*stores.keystore, *tenant, flags.key);
  if (!key.ok()) return Fail(key.status());
  auto versions = stores.keystore->ListKeyVersions(*key);
  if (!versions.ok()) return Fail(versions.status());
  auto named = stores.keystore->ListNamedKeys(tenant->id);
  if (!named.ok()) return Fail(named.status());
  service::ObjectService service(*stores.catalog, *stores.keystore, *stores.blobs);
  auto counts = service.CountKeyReferences(*key);
  if (!counts.ok()) return FailService(counts.error());
  auto refs = [&](uint32_t v) -> uint64_t {
    auto it = counts->find(v);
    return it == counts->end() ? 0 : it->second;
  };
  if (flags.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& v : *versions) {
      arr.push_back({{"version", v.version},
                     {"state", v.active ? "active" : (v.destroying ? "destroying" : "retired")},
                     {"created", FormatIso8601(FromUnixMillis(v.created))},
                     {"objects", refs(v.version)}});
    }
    nlohmann::json out{{"tenant", tenant->name}, {"shredded", tenant->shredded.has_value()}, {"versions", arr}};
    if (flags.key.empty()) {
      nlohmann::json keys = nlohmann::json::array();
      for (const auto& n : *named) {
        keys.push_back({{"name", n.name},
                        {"key_id", keystore::KeyIdAsUuid(n.key_id)},
                        {"created", FormatIso8601(FromUnixMillis(n.created))},
                        {"destroyed", n.destroyed ? nlohmann::json(FormatIso8601(FromUnixMillis(*n.destroyed)))
                                                  : nlohmann::json(nullptr)}});
      }
      out["named_keys"] = keys;
    } else {
      out["key"] = flags.key;
    }
    std::cout << out.dump() << std::endl;
    return 0;
  }
  if (tenant->shredded) {
    std::cout << "tenant " << tenant->name << " was crypto-shredded on "
              << FormatIso8601(FromUnixMillis(*tenant->shredded)) << ": no key version is left\n";
  }
  std::cout << "VERSION\tSTATE\tCREATED\tOBJECTS+UPLOADS\n";
  for (const auto& v : *versions) {
    std::cout << v.version << "\t" << (v.active ? "active" : (v.destroying ? "destroying" : "retired")) << "\t"
              << FormatIso8601(FromUnixMillis(v.created)) << "\t" << refs(v.version) << "\n";
  }
  if (flags.key.empty() && !named->empty()) {
    std::cout << "\nNAMED KEY\tID\tCREATED\tSTATE\n";
    for (const auto& n : *named) {
      std::cout << n.name << "\t" << keystore::KeyIdAsUuid(n.key_id) << "\t" << FormatIso8601(FromUnixMillis(n.created))
                << "\t" << (n.destroyed ? "destroyed " + FormatIso8601(FromUnixMillis(*n.destroyed)) : "live") << "\n";
    }
  }
  return 0;
}

int Rewrap(const KeyFlags& flags) {
  if (flags.rate == 0) return Fail(Status::InvalidArgument("--rate must be at least 1 object per second"));
  auto context = OpenForCli(flags.common, CliStores::kCatalog);
  if (!context.ok()) return Fail(context.status());
  Stores& stores = context->stores;
  auto tenant = FindTenant(*stores.keystore, flags.tenant);
  if (!tenant.ok()) return Fail(tenant.status());
  if (tenant->shredded) {
    return Fail(Status::InvalidArgument("tenant " + tenant->name + " was crypto-shredded: nothing can be rewrapped"));
  }
  // Every data key re-wrapped is recorded (data_key.rewrap) before its new wrapping is stored.
  if (Status st = context->OpenAuditLogOrRefuse(); !st.ok()) {
    return Fail(st);
  }
  const audit::RequestInfo request = CliRequest("cli:key rewrap");
  auto key = KeyOf(*stores.keystore, *tenant, flags.key);
  if (!key.ok()) return Fail(key.status());
  auto versions = stores.keystore->ListKeyVersions(*key);
  if (!versions.ok()) return Fail(versions.status());
  uint32_t active = 0;
  for (const auto& v : *versions) {
    if (v.active) active = v.version;
  }
  service::ObjectService service(*stores.catalog, *stores.keystore, *stores.blobs);
  service.set_audit(context->audit_log.get());
  auto counts = service.CountKeyReferences(*key);
  if (!counts.ok()) return FailService(counts.error());
  std::vector<uint32_t> sources;
  if (flags.from != 0) {
    if (flags.from == active) {
      return Fail(Status::InvalidArgument("version " + std::to_string(active) +
                                          " is the active version; --from names an older version to move away from"));
    }
    sources.push_back(flags.from);
  } else {
    for (const auto& [v, n] : *counts) {
      if (v != active && n > 0) sources.push_back(v);
    }
  }
  uint64_t total = 0;
  for (uint32_t v : sources) {
    if (auto it = counts->find(v); it != counts->end()) total += it->second;
  }
  std::cerr << "rewrap: " << total << " data keys of " << KeyLabel(*tenant, flags.key) << " to move to version "
            << active << " at most " << flags.rate << "/s" << std::endl;

  // Throttle: after n keys, wait until n / rate seconds have passed since the start.
  const uint32_t batch = std::min<uint32_t>(flags.rate, 200);
  const auto start = std::chrono::steady_clock::now();
  auto last_report = start;
  service::ObjectService::RewrapStats sum;
  // A PUT that began before the rotation (or before the daemon saw it) may commit a row under an
  // old version behind the walk's cursor: after a walk, count again and walk what is left (a few
  // passes at most; what still remains is reported). Before a later pass, wait a moment: writes
  // that took their data key just before a rotation land within it, and the operator who runs
  // rewrap right after `key rotate` is then not told to run it again for them.
  for (int pass = 0; pass < 3 && !sources.empty(); ++pass) {
    if (pass > 0) {
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
    for (uint32_t from : sources) {
      catalog::WrappedKeyCursor cursor;
      while (true) {
        auto r = service.RewrapBatch(*key, from, &cursor, batch, &request);
        if (!r.ok()) return FailService(r.error());
        if (r->examined == 0) break;
        sum.examined += r->examined;
        sum.rewrapped += r->rewrapped;
        sum.changed += r->changed;
        sum.failed += r->failed;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_report >= std::chrono::seconds(1)) {
          last_report = now;
          std::cerr << "rewrap: " << sum.examined << "/" << total << " (rewrapped " << sum.rewrapped
                    << ", changed meanwhile " << sum.changed << ", failed " << sum.failed << ")" << std::endl;
        }
        const auto due = start + std::chrono::microseconds(sum.examined * 1'000'000 / flags.rate);
        std::this_thread::sleep_until(due);
      }
    }
    auto left = service.CountKeyReferences(*key);
    if (!left.ok()) return FailService(left.error());
    std::vector<uint32_t> remaining;
    for (uint32_t v : sources) {
      if (auto it = left->find(v); it != left->end() && it->second > sum.failed) remaining.push_back(v);
    }
    sources = std::move(remaining);
  }
  uint64_t left_behind = 0;
  if (!sources.empty()) {
    auto left = service.CountKeyReferences(*key);
    if (!left.ok()) return FailService(left.error());
    for (uint32_t v : sources) left_behind += (*left)[v];
  }
  std::cout << "rewrap of " << KeyLabel(*tenant, flags.key) << " done: " << sum.rewrapped
            << " data keys now under version " << active << ", " << sum.changed
            << " changed meanwhile (already on a newer wrapping), " << sum.failed << " failed" << std::endl;
  if (left_behind > sum.failed) {
    std::cerr << "coffre: " << left_behind - sum.failed
              << " data keys were written under an old version while rewrap ran; run it again" << std::endl;
    return 2;
  }
  if (sum.failed > 0) {
    std::cerr << "coffre: " << sum.failed << " wrapped data keys did not open (altered rows); they were left unchanged"
              << std::endl;
    return 2;
  }
  return 0;
}

int Destroy(const KeyFlags& flags) {
  auto context = OpenForCli(flags.common, CliStores::kCatalog);
  if (!context.ok()) {
    return Fail(context.status());
  }
  Stores& stores = context->stores;
  auto tenant = FindTenant(*stores.keystore, flags.tenant);
  if (!tenant.ok()) {
    return Fail(tenant.status());
  }
  // Destruction is recorded before it happens, so the audit log must open first.
  if (Status st = context->OpenAuditLogOrRefuse(); !st.ok()) {
    return Fail(st);
  }
  auto key = KeyOf(*stores.keystore, *tenant, flags.key);
  if (!key.ok()) {
    return Fail(key.status());
  }
  service::DualControl dual(*stores.keystore, context->audit_log.get(), DualControlPolicyOf(context->config));
  // The approval names the key by its id (the tenant's for its default key).
  auto authorization =
      dual.Authorize(keystore::GuardedOperation::kDestroyKeyVersion, key->key_id, flags.version, flags.approval);
  if (!authorization.ok()) {
    return Fail(authorization.status());
  }
  service::ObjectService service(*stores.catalog, *stores.keystore, *stores.blobs);
  service.set_audit(context->audit_log.get());
  const audit::RequestInfo request = CliRequest("cli:key destroy" + authorization->ActionSuffix());
  auto r = service.DestroyKeyVersion(*key, flags.version, &request);
  if (!r.ok()) {
    return FailService(r.error());  // an approval used for it is released (Authorization)
  }
  authorization->Done();
  std::cout << KeyLabel(*tenant, flags.key) << ": key version " << flags.version << " destroyed" << std::endl;
  return 0;
}

// Destroys a named key whole: exactly the objects under it can no longer be decrypted (a
// customer's erasure). Object Lock outlives it as it outlives tenant shredding.
int Shred(const KeyFlags& flags) {
  if (flags.confirm != flags.name) {
    return Fail(Status::InvalidArgument("--confirm must repeat the key's name (" + flags.name +
                                        "): shredding it makes every object under it unreadable for good"));
  }
  auto context = OpenForCli(flags.common, CliStores::kCatalog);
  if (!context.ok()) return Fail(context.status());
  Stores& stores = context->stores;
  auto tenant = FindTenant(*stores.keystore, flags.tenant);
  if (!tenant.ok()) return Fail(tenant.status());
  auto key = KeyOf(*stores.keystore, *tenant, flags.name);
  if (!key.ok()) return Fail(key.status());
  if (Status st = context->OpenAuditLogOrRefuse(); !st.ok()) return Fail(st);
  service::DualControl dual(*stores.keystore, context->audit_log.get(), DualControlPolicyOf(context->config));
  auto authorization = dual.Authorize(keystore::GuardedOperation::kDestroyNamedKey, key->key_id, 0, flags.approval);
  if (!authorization.ok()) return Fail(authorization.status());
  service::ObjectService service(*stores.catalog, *stores.keystore, *stores.blobs);
  service.set_audit(context->audit_log.get());
  const audit::RequestInfo request = CliRequest("cli:key shred " + flags.name + authorization->ActionSuffix());
  // GOVERNANCE retention yields to dual control, as for tenant shredding: an approval given for
  // this key is that control.
  auto r = service.DestroyNamedKey(*key, !flags.approval.empty(), &request);
  if (!r.ok()) return FailService(r.error());
  authorization->Done();
  std::cout << "key " << flags.name << " of tenant " << tenant->name
            << " destroyed: the objects under it can no longer be decrypted (recorded in the audit log)" << std::endl;
  return 0;
}

}  // namespace

void RegisterKeyCommands(CLI::App& app, CommandRunner& runner) {
  auto flags = std::make_shared<KeyFlags>();
  auto* group = app.add_subcommand("key", "Manage tenant keys: the default key, named keys and their versions");
  group->require_subcommand(1);
  auto add_key_flag = [&](CLI::App* cmd) {
    cmd->add_option("--key", flags->key, "A named key of the tenant (name or id); default: the tenant's default key");
  };

  auto* create = group->add_subcommand("create", "Create a named key of the tenant (aws:kms in S3 requests)");
  AddCommonFlags(create, flags->common);
  create->add_option("TENANT", flags->tenant, "Tenant name")->required();
  create->add_option("NAME", flags->name, "Key name: [A-Za-z0-9/_.-], up to 200")->required();
  create->add_flag("--json", flags->json, "Print JSON");
  create->callback([flags, &runner] { runner.run = [flags] { return Create(*flags); }; });

  auto* shred = group->add_subcommand("shred", "Destroy a named key: every object under it becomes unreadable");
  AddCommonFlags(shred, flags->common);
  shred->add_option("TENANT", flags->tenant, "Tenant name")->required();
  shred->add_option("NAME", flags->name, "The named key")->required();
  shred->add_option("--confirm", flags->confirm, "The key's name again")->required();
  shred->add_option("--approval", flags->approval, "Dual control: the granted approval (coffre approval request)");
  shred->callback([flags, &runner] { runner.run = [flags] { return Shred(*flags); }; });

  auto* rotate = group->add_subcommand("rotate", "Make a new key version active for new objects");
  AddCommonFlags(rotate, flags->common);
  rotate->add_option("TENANT", flags->tenant, "Tenant name")->required();
  add_key_flag(rotate);
  rotate->callback([flags, &runner] { runner.run = [flags] { return Rotate(*flags); }; });

  auto* list = group->add_subcommand("list", "List key versions and how many objects each wraps");
  AddCommonFlags(list, flags->common);
  list->add_option("TENANT", flags->tenant, "Tenant name")->required();
  add_key_flag(list);
  list->add_flag("--json", flags->json, "Print JSON");
  list->callback([flags, &runner] { runner.run = [flags] { return List(*flags); }; });

  auto* rewrap = group->add_subcommand("rewrap", "Re-wrap data keys under the active version (object data untouched)");
  AddCommonFlags(rewrap, flags->common);
  rewrap->add_option("TENANT", flags->tenant, "Tenant name")->required();
  add_key_flag(rewrap);
  rewrap->add_option("--from", flags->from, "Only the data keys under this version (default: every older version)");
  rewrap->add_option("--rate", flags->rate, "At most this many data keys per second (default 500)");
  rewrap->callback([flags, &runner] { runner.run = [flags] { return Rewrap(*flags); }; });

  auto* destroy = group->add_subcommand("destroy", "Destroy a retired key version nothing references any more");
  AddCommonFlags(destroy, flags->common);
  destroy->add_option("TENANT", flags->tenant, "Tenant name")->required();
  destroy->add_option("VERSION", flags->version, "Key version")->required();
  add_key_flag(destroy);
  destroy->add_option("--approval", flags->approval, "Dual control: the granted approval (coffre approval request)");
  destroy->callback([flags, &runner] { runner.run = [flags] { return Destroy(*flags); }; });
}

}  // namespace coffre::server
