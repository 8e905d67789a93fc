#include "audit_store.h"

#include <string>

namespace coffre::server {

audit::AuditLogOptions AuditLogOptionsOf(const Config& config) {
  audit::AuditLogOptions options;
  options.checkpoint_every_records = config.audit_checkpoint_records;
  options.checkpoint_interval = std::chrono::seconds(config.audit_checkpoint_seconds);
  return options;
}

Result<std::unique_ptr<audit::AuditLog>> OpenAuditLog(const Config& config, const SecretBytes& root) {
  return audit::AuditLog::Open(config.data_dir + "/audit.db", root, AuditLogOptionsOf(config));
}

Result<std::unique_ptr<audit::AuditLog>> OpenAuditOrRefuse(const Config& config, const SecretBytes& root) {
  auto log = OpenAuditLog(config, root);
  if (!log.ok()) {
    return Status::Unavailable("cannot open the audit log, so nothing was changed: " + log.status().ToString());
  }
  if (std::string why = (*log)->integrity_error(); !why.empty()) {
    return Status::Unavailable("the audit log failed its integrity check, so nothing was changed: " + why);
  }
  return log;
}

audit::RequestInfo CliRequest(std::string_view command) {
  audit::RequestInfo request;
  request.action = std::string(command);
  return request;
}

}  // namespace coffre::server
