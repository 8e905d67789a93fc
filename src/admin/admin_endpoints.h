#pragma once

// The admin API's endpoints, one function each, and the steps they share. Private to the admin
// module: AdminApi::Handle (admin_api.cc) routes a request here once it has found the route and
// authenticated the credential; the endpoints check the input, make the change and render it.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "coffre/admin/admin_api.h"
#include "coffre/common/status.h"
#include "coffre/http/uri.h"

namespace coffre::admin {

// One authenticated request on its way to its endpoint, with what the endpoint may use.
struct EndpointCall {
  const ApiRequest& request;
  const http::PathParams& path;  // captured by the route's template: tenant, access_key, approval
  const keystore::AdminCredential& credential;
  keystore::Keystore& keys;
  service::KeyLifecycle& lifecycle;
  audit::AuditLog* audit;  // null: no audit log is open
  const AdminApiOptions& options;

  // The path parameter `name` of the route's template.
  const std::string& Param(std::string_view name) const;
  // Who asks, for the audit record of the change `what` ("tenant create"). The actor is named in
  // the action too: access-key records use their access_key_id field for the access key acted on
  // (docs/AUDIT.md), and the credential must not be lost there.
  audit::RequestInfo Action(std::string_view what) const;
  UnixMillis Now() const;
};

using Endpoint = ApiResponse (*)(const EndpointCall& call);

// --- shared steps (admin_endpoints.cc) ---
ApiResponse Json(int status, const nlohmann::json& body);
// {"error": {"code": "...", "message": "..."}}: `code` is stable for programs, `message` for people.
ApiResponse Error(int status, std::string_view code, std::string_view message);
// The one place where a Status from the keystore, the lifecycle or the audit log becomes an HTTP
// answer. Status messages never carry key material (common/status.h).
ApiResponse FromStatus(const Status& st);
// The request body as a JSON object, else 400 malformed_json naming `example` of a good one.
Expected<nlohmann::json, ApiResponse> JsonObjectBody(const EndpointCall& call, std::string_view example);
// The tenant called `name`; 404 when there is none.
Expected<keystore::Tenant, ApiResponse> TenantNamed(const EndpointCall& call, const std::string& name);
// An ISO 8601 UTC time, as every answer shows times.
std::string IsoTime(UnixMillis ms);

// --- tenants, access keys and key versions (admin_endpoints.cc) ---
ApiResponse ListTenants(const EndpointCall& call);
ApiResponse CreateTenant(const EndpointCall& call);
ApiResponse ListAccessKeys(const EndpointCall& call);
ApiResponse CreateAccessKey(const EndpointCall& call);
ApiResponse DisableAccessKey(const EndpointCall& call);
ApiResponse EnableAccessKey(const EndpointCall& call);
ApiResponse DeleteAccessKey(const EndpointCall& call);
ApiResponse ListKeyVersions(const EndpointCall& call);
ApiResponse RotateKey(const EndpointCall& call);

// --- dual control (approval_endpoints.cc) ---
ApiResponse ListApprovals(const EndpointCall& call);
ApiResponse RequestApproval(const EndpointCall& call);
ApiResponse GrantApproval(const EndpointCall& call);

// --- the audit log, for auditors (audit_endpoints.cc) ---
ApiResponse ExportAudit(const EndpointCall& call);
ApiResponse AuditPublicKey(const EndpointCall& call);

}  // namespace coffre::admin
