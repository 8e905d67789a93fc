#pragma once

// The authenticated part of the admin listener (docs/OPERATIONS.md, "Admin API"): tenants,
// access keys and key versions for an *admin* credential; the audit log (export, public key) for
// an *auditor* credential. Separation of duties: neither role reaches the other's endpoints.
//
//   GET    /tenants                                       admin    list tenants
//   POST   /tenants                  {"name": "acme"}     admin    create a tenant (key version 1)
//   GET    /tenants/T/access-keys                         admin    list with last use
//   POST   /tenants/T/access-keys                         admin    create; the secret is in the answer, once
//   POST   /tenants/T/access-keys/ID/disable | /enable    admin
//   DELETE /tenants/T/access-keys/ID                      admin
//   GET    /tenants/T/keys                                admin    key versions
//   POST   /tenants/T/keys/rotate                         admin    new active version
//   GET    /approvals                                     admin    dual control: the latest 100 approvals
//   POST   /approvals   {"operation": "tenant.shred", "tenant": "acme"}   admin   request one (pending)
//   POST   /approvals/ID/approve                          admin    grant it (another admin than the requester)
//   GET    /audit/export?tenant=T&from=&to=&format=jsonl|csv   auditor  the bundle `coffre audit export` writes
//   GET    /audit/public-key                              auditor  the checkpoints' Ed25519 public key
//
// Requests carry `Authorization: Bearer TOKEN` (keystore.h, AdminCredential). Decisions, in this
// order: unknown path 404, method not allowed 405, no or unknown token 401, wrong role 403, bad
// input 400, unknown tenant 404; then the change, made through service::KeyLifecycle so that it
// is recorded in the audit log exactly as the CLI's (request.action "admin-api:WHAT by NAME",
// the credential's NAME as access_key_id except in access-key records, where that field names the
// access key acted on; the peer as client_address; the X-Request-Id as request_id) and refused
// with 503 when the log cannot record it. Every answer is JSON (the export: the bundle itself). Tokens are never
// logged or echoed.
//
// Thread safety: Handle() may be called concurrently (the keystore, the lifecycle and the audit
// log are thread-safe). It blocks (SQLite): call it on the worker pool, never a network thread.

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "coffre/audit/audit_log.h"
#include "coffre/common/clock.h"
#include "coffre/common/status.h"
#include "coffre/keystore/keystore.h"
#include "coffre/service/dual_control.h"
#include "coffre/service/key_lifecycle.h"

namespace coffre::admin {

struct ApiRequest {
  std::string method;          // "GET", "POST", "DELETE", ...
  std::string target;          // path and query string, as received
  std::string authorization;   // the Authorization header ("" when absent)
  std::string body;            // at most AdminApi::kMaxBodyBytes
  std::string client_address;  // "ip:port" of the peer
  std::string request_id;      // returned as X-Request-Id and recorded in audit records
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;                // for 405: the methods the path accepts
  std::string content_disposition;  // for the export: a file name to save it under
  std::string credential;           // the authenticated credential's name, for the log line
};

struct AdminApiOptions {
  // Objects and uploads per key version of a tenant (ObjectService::CountKeyReferences), shown by
  // GET /tenants/T/keys; unset: not shown.
  std::function<Result<std::map<uint32_t, uint64_t>>(const std::string& tenant_id)> count_key_references;
  const Clock* clock = &Clock::System();
  // Dual control (service/dual_control.h): the approvals' lifetime, and whether they are required
  // (shown by GET /approvals; the guarded operations themselves run on the host's CLI).
  service::DualControlPolicy dual_control;
};

// An approval as the admin API and `coffre approval` show it (docs/OPERATIONS.md, GET /approvals).
nlohmann::json ApprovalJson(const keystore::Approval& approval, const std::string& tenant_name, UnixMillis now);
// The name of an approval's tenant ("" for root key rotation; its id once the tenant is gone).
std::string ApprovalTenantName(keystore::Keystore& keys, const std::string& tenant_id);

class AdminApi {
 public:
  // Requests with larger bodies are refused (413) before they are read.
  static constexpr uint64_t kMaxBodyBytes = 64 * 1024;

  // None is owned; all must outlive this object. `audit` serves the auditor's endpoints; null
  // makes them answer 503 (no audit log open).
  AdminApi(keystore::Keystore& keys, service::KeyLifecycle& lifecycle, audit::AuditLog* audit,
           AdminApiOptions options = {});

  // Whether `path` (without query) is one of the API's paths, whatever the method: the handler
  // routes it here rather than to the health and metrics endpoints.
  static bool Handles(std::string_view path);

  // Blocking; see the decision order above.
  ApiResponse Handle(const ApiRequest& request);

 private:
  keystore::Keystore& keys_;
  service::KeyLifecycle& lifecycle_;
  audit::AuditLog* audit_;
  AdminApiOptions options_;
};

}  // namespace coffre::admin
