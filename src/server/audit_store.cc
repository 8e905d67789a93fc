#include "audit_store.h"

namespace coffre::server {

Result<std::unique_ptr<audit::AuditLog>> OpenAuditLog(const Config& config, const SecretBytes& root) {
  audit::AuditLogOptions options;
  options.checkpoint_every_records = config.audit_checkpoint_records;
  options.checkpoint_interval = std::chrono::seconds(config.audit_checkpoint_seconds);
  return audit::AuditLog::Open(config.data_dir + "/audit.db", root, options);
}

}  // namespace coffre::server
