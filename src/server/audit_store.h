#pragma once

// Opens the key-usage audit log of a data directory (data_dir/audit.db) for the daemon and the
// `coffre audit` commands. The root key is read from the configured root key file and handed to
// the audit module, which uses it only to seal and unseal its signing key.

#include <memory>

#include "coffre/audit/audit_log.h"
#include "coffre/server/config.h"

namespace coffre::server {

Result<std::unique_ptr<audit::AuditLog>> OpenAuditLog(const Config& config);

}  // namespace coffre::server
