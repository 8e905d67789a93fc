#include "cli_context.h"

#include <sys/stat.h>

#include <utility>

#include "audit_store.h"

namespace coffre::server {

Status CliContext::OpenAuditLogOrRefuse() {
  COFFRE_ASSIGN_OR_RETURN(audit_log, OpenAuditOrRefuse(config, stores.root_key));
  stores.root_key = SecretBytes();
  return Status::Ok();
}

Status CliContext::OpenAuditLogToRead() {
  COFFRE_ASSIGN_OR_RETURN(audit_log, OpenAuditLog(config, stores.root_key));
  stores.root_key = SecretBytes();
  return Status::Ok();
}

Result<CliContext> OpenForCli(Config config, CliStores stores) {
  CliContext context;
  context.config = std::move(config);
  if (stores != CliStores::kKeystore) {
    COFFRE_ASSIGN_OR_RETURN(context.stores, OpenStores(context.config, /*for_daemon=*/false,
                                                       /*probe_upstream=*/stores == CliStores::kBlobs));
    return context;
  }
  COFFRE_ASSIGN_OR_RETURN(context.stores.root_key, LoadRootKey(context.config, /*create=*/false));
  COFFRE_ASSIGN_OR_RETURN(context.stores.keystore, OpenKeystoreWithRootKey(context.config, context.stores.root_key));
  return context;
}

Result<CliContext> OpenForCli(const CommonFlags& flags, CliStores stores) {
  COFFRE_ASSIGN_OR_RETURN(Config config, ResolveConfig(flags));
  return OpenForCli(std::move(config), stores);
}

Status RequireKeystore(const Config& config) {
  struct stat st {};
  if (::stat((config.data_dir + "/keystore.db").c_str(), &st) != 0) {
    return Status::NotFound("no keystore in " + config.data_dir + " (check --config and --data-dir)");
  }
  return Status::Ok();
}

Result<keystore::Tenant> FindTenant(keystore::Keystore& keys, const std::string& name) {
  auto tenant = keys.GetTenantByName(name);
  if (!tenant.ok() && tenant.status().code() == StatusCode::kNotFound) {
    return Status::InvalidArgument("no tenant named '" + name + "' (coffre tenant list shows them)");
  }
  return tenant;
}

}  // namespace coffre::server
