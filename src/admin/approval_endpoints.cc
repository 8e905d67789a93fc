#include <cstdint>
#include <optional>
#include <utility>

#include "admin/admin_endpoints.h"
#include "coffre/service/dual_control.h"

namespace coffre::admin {
namespace {

using nlohmann::json;

// What POST /approvals asks for, checked: the operation and its target.
struct ApprovalRequest {
  keystore::GuardedOperation operation = keystore::GuardedOperation::kRotateRootKey;
  std::string target;       // tenant id, or the new admin credential's name; "" for root key rotation
  std::string tenant_name;  // as given, for the answer
  uint32_t version = 0;     // 0: none given
};

// The operation's target from the body: the new credential's name, or a tenant (by name) when given.
std::optional<ApiResponse> ParseApprovalTarget(const EndpointCall& call, const json& body, ApprovalRequest& out) {
  if (out.operation == keystore::GuardedOperation::kCreateAdminCredential) {
    if (!body.contains("credential") || !body["credential"].is_string()) {
      return Error(400, "invalid_argument", "\"credential\" must be the new admin credential's name");
    }
    out.target = body["credential"].get<std::string>();
    return std::nullopt;
  }
  if (!body.contains("tenant")) {
    return std::nullopt;
  }
  if (!body["tenant"].is_string()) {
    return Error(400, "invalid_argument", "\"tenant\" must be a tenant name");
  }
  out.tenant_name = body["tenant"].get<std::string>();
  auto t = TenantNamed(call, out.tenant_name);
  if (!t.ok()) {
    return t.error();
  }
  out.target = t->id;
  return std::nullopt;
}

Expected<ApprovalRequest, ApiResponse> ParseApprovalRequest(const EndpointCall& call) {
  auto body = JsonObjectBody(call, R"({"operation": "tenant.shred", "tenant": "acme"})");
  if (!body.ok()) {
    return body.error();
  }
  const auto op = body->contains("operation") && (*body)["operation"].is_string()
                      ? keystore::ParseGuardedOperation((*body)["operation"].get<std::string>())
                      : std::nullopt;
  if (!op) {
    return Error(400, "invalid_argument",
                 "\"operation\" must be \"tenant_key.destroy\" (with \"tenant\" and \"version\"), "
                 "\"tenant.shred\" (with \"tenant\"), \"root_key.rotate\" or \"admin_credential.create\" (with "
                 "\"credential\")");
  }
  ApprovalRequest request;
  request.operation = *op;
  if (std::optional<ApiResponse> bad = ParseApprovalTarget(call, *body, request)) {
    return std::move(*bad);
  }
  if (body->contains("version")) {
    const json& version = (*body)["version"];
    if (!version.is_number_unsigned() || version.get<uint64_t>() > UINT32_MAX) {
      return Error(400, "invalid_argument", "\"version\" must be a key version number");
    }
    request.version = version.get<uint32_t>();
  }
  return request;
}

service::DualControl DualControlOf(const EndpointCall& call) {
  return service::DualControl(call.keys, call.lifecycle.recorder(), call.options.dual_control, *call.options.clock);
}

}  // namespace

nlohmann::json ApprovalJson(const keystore::Approval& a, const std::string& tenant_name, UnixMillis now) {
  auto optional_time = [](const std::optional<UnixMillis>& ms) { return ms ? json(IsoTime(*ms)) : json(); };
  json j = {{"id", a.id},
            {"operation", keystore::GuardedOperationName(a.operation)},
            {"state", keystore::ApprovalStateName(a.StateAt(now))},
            {"requested_by", a.requested_by},
            {"requested", IsoTime(a.requested)},
            {"expires", IsoTime(a.expires)}};
  j["tenant"] = tenant_name.empty() || !keystore::TargetsTenant(a.operation) ? json() : json(tenant_name);
  if (a.operation == keystore::GuardedOperation::kCreateAdminCredential) {
    j["credential"] = a.tenant_id;
  }
  j["version"] = a.version == 0 ? json() : json(a.version);
  j["approved_by"] = a.approved_by ? json(*a.approved_by) : json();
  j["approved"] = optional_time(a.approved);
  j["used"] = optional_time(a.used);
  return j;
}

std::string ApprovalTenantName(keystore::Keystore& keys, const std::string& tenant_id) {
  if (tenant_id.empty()) {
    return {};
  }
  auto t = keys.GetTenant(tenant_id);
  return t.ok() ? t->name : tenant_id;
}

ApiResponse ListApprovals(const EndpointCall& call) {
  constexpr size_t kListed = 100;
  auto listed = call.keys.ListApprovals(kListed);
  if (!listed.ok()) {
    return FromStatus(listed.status());
  }
  const UnixMillis now = call.Now();
  json arr = json::array();
  for (const auto& a : *listed) {
    arr.push_back(ApprovalJson(a, ApprovalTenantName(call.keys, a.tenant_id), now));
  }
  return Json(200, json{{"dual_control", call.options.dual_control.required}, {"approvals", std::move(arr)}});
}

ApiResponse RequestApproval(const EndpointCall& call) {
  auto request = ParseApprovalRequest(call);
  if (!request.ok()) {
    return request.error();
  }
  auto approval = DualControlOf(call).Request(request->operation, request->target, request->version,
                                              call.credential.name, call.Action("approval request"));
  if (!approval.ok()) {
    return FromStatus(approval.status());
  }
  return Json(201, ApprovalJson(*approval, request->tenant_name, call.Now()));
}

ApiResponse GrantApproval(const EndpointCall& call) {
  auto approval =
      DualControlOf(call).Grant(call.Param("approval"), call.credential.name, call.Action("approval grant"));
  if (!approval.ok()) {
    return FromStatus(approval.status());
  }
  return Json(200, ApprovalJson(*approval, ApprovalTenantName(call.keys, approval->tenant_id), call.Now()));
}

}  // namespace coffre::admin
