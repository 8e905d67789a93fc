#pragma once

// Opens the key-usage audit log of a data directory (data_dir/audit.db) for the daemon and the
// `coffre audit` commands. The root key is the one the process already loaded for its keystore
// (LoadRootKey in stores.h, or Stores::root_key), so that it is read, or its passphrase asked,
// once per process; the audit module uses it only to seal and unseal its signing key.

#include <memory>
#include <string_view>

#include "coffre/audit/audit_log.h"
#include "coffre/common/secret.h"
#include "coffre/server/config.h"

namespace coffre::server {

// The config's audit log settings (audit_checkpoint_records, audit_checkpoint_seconds).
audit::AuditLogOptions AuditLogOptionsOf(const Config& config);

Result<std::unique_ptr<audit::AuditLog>> OpenAuditLog(const Config& config, const SecretBytes& root);

// For the commands that change keys (docs/AUDIT.md 1.1): the log must open before anything
// changes, or nothing is done (Unavailable, saying so).
Result<std::unique_ptr<audit::AuditLog>> OpenAuditOrRefuse(const Config& config, const SecretBytes& root);

// Who acts, in such a command's records: action = `command` ("cli:key rotate"), no request.
audit::RequestInfo CliRequest(std::string_view command);

}  // namespace coffre::server
