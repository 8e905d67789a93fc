#pragma once

// What an admin command opens, in the order each of them opens it: the configuration (--config,
// --data-dir), the root key (loaded once: a passphrase is read or asked once), the keystore the key
// must open (a wrong key is named clearly), the catalog and blobs when the command reads objects,
// and the audit log when the command changes keys (docs/AUDIT.md 1.1: without it nothing changes).
// The audit log is a separate step because some commands check their own arguments against the
// keystore (a tenant's name, an admin token) before they open it.

#include <memory>

#include "coffre/audit/audit_log.h"
#include "coffre/keystore/keystore.h"
#include "coffre/server/config.h"
#include "commands.h"
#include "stores.h"

namespace coffre::server {

enum class CliStores {
  kKeystore,  // the keystore only
  // The keystore, the catalog and the blob store, which the command does not read (it changes keys
  // and catalog rows; rewrap also writes key copies): an upstream bucket is not asked first, so
  // that a key can be destroyed or a tenant shredded while the upstream is unreachable.
  kCatalog,
  // The same, with the blob store read (fsck, scrub): an upstream bucket must answer HEAD first.
  kBlobs,
};

struct CliContext {
  Config config;
  // stores.catalog and stores.blobs are open with CliStores::kCatalog and kBlobs only. stores.root_key is held
  // for the audit log (and the commands that hand it on: backup, rotate-root) and cleared once the
  // log is open: the keystore and the log hold what they need.
  Stores stores;
  std::unique_ptr<audit::AuditLog> audit_log;  // once OpenAuditLogOrRefuse or OpenAuditLogToRead succeeded

  keystore::Keystore& keys() { return *stores.keystore; }

  // For a command that changes keys (OpenAuditOrRefuse): Unavailable, saying nothing was changed,
  // when the log does not open or fails its integrity check.
  Status OpenAuditLogOrRefuse();
  // For a command that reads the log (OpenAuditLog): its errors as they are.
  Status OpenAuditLogToRead();
};

// Opens the root key, the keystore and (kCatalog, kBlobs) the other stores of an existing data
// directory.
Result<CliContext> OpenForCli(Config config, CliStores stores = CliStores::kKeystore);
// ResolveConfig(flags), then the above.
Result<CliContext> OpenForCli(const CommonFlags& flags, CliStores stores = CliStores::kKeystore);

// NotFound, telling to check --config and --data-dir, when the data directory has no keystore: for
// the commands that check it before they read anything else (a new root key, a backup's).
Status RequireKeystore(const Config& config);

// A tenant by name; InvalidArgument, telling how to list them, when there is none.
Result<keystore::Tenant> FindTenant(keystore::Keystore& keys, const std::string& name);

}  // namespace coffre::server
