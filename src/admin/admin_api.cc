#include "coffre/admin/admin_api.h"

#include <string>
#include <utility>

#include "admin/admin_endpoints.h"
#include "coffre/http/uri.h"

namespace coffre::admin {
namespace {

using keystore::AdminRole;

struct Route {
  std::string_view method;
  std::string_view path;  // a template: "{name}" captures one segment (http::MatchPathTemplate)
  AdminRole role;
  Endpoint endpoint;
};

// Every endpoint (admin_api.h lists them). The routes of one path are in the order its 405 answer
// lists their methods.
constexpr Route kRoutes[] = {
    {"GET", "/tenants", AdminRole::kAdmin, ListTenants},
    {"POST", "/tenants", AdminRole::kAdmin, CreateTenant},
    {"GET", "/tenants/{tenant}/access-keys", AdminRole::kAdmin, ListAccessKeys},
    {"POST", "/tenants/{tenant}/access-keys", AdminRole::kAdmin, CreateAccessKey},
    {"POST", "/tenants/{tenant}/access-keys/{access_key}/disable", AdminRole::kAdmin, DisableAccessKey},
    {"POST", "/tenants/{tenant}/access-keys/{access_key}/enable", AdminRole::kAdmin, EnableAccessKey},
    {"DELETE", "/tenants/{tenant}/access-keys/{access_key}", AdminRole::kAdmin, DeleteAccessKey},
    {"GET", "/tenants/{tenant}/keys", AdminRole::kAdmin, ListKeyVersions},
    {"POST", "/tenants/{tenant}/keys/rotate", AdminRole::kAdmin, RotateKey},
    {"GET", "/approvals", AdminRole::kAdmin, ListApprovals},
    {"POST", "/approvals", AdminRole::kAdmin, RequestApproval},
    {"POST", "/approvals/{approval}/approve", AdminRole::kAdmin, GrantApproval},
    {"GET", "/audit/export", AdminRole::kAuditor, ExportAudit},
    {"GET", "/audit/public-key", AdminRole::kAuditor, AuditPublicKey},
};

// Where a request goes: its route and what the route's template captured; without a route, the
// methods the path accepts ("" when no route has the path).
struct RouteMatch {
  const Route* route = nullptr;
  http::PathParams params;
  std::string allow;
};

RouteMatch FindRoute(std::string_view method, std::string_view path) {
  RouteMatch match;
  for (const Route& route : kRoutes) {
    std::optional<http::PathParams> params = http::MatchPathTemplate(route.path, path);
    if (!params) {
      continue;
    }
    if (route.method == method) {
      match.route = &route;
      match.params = std::move(*params);
      return match;
    }
    match.allow += (match.allow.empty() ? "" : ", ") + std::string(route.method);
  }
  return match;
}

// The bearer token of an Authorization header; "" when there is none or it is not a bearer one.
std::string_view BearerToken(std::string_view header) {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size()) {
    return {};
  }
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = header[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != kScheme[i]) {
      return {};
    }
  }
  std::string_view token = header.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') {
    token.remove_prefix(1);
  }
  while (!token.empty() && token.back() == ' ') {
    token.remove_suffix(1);
  }
  return token;
}

// The credential of the request's token, if it has `role`. The token's hash is checked against the
// keystore on every request, so a credential disabled with the CLI stops working at once; unknown
// and disabled tokens get the same answer.
Expected<keystore::AdminCredential, ApiResponse> Authenticate(keystore::Keystore& keys, std::string_view authorization,
                                                              AdminRole role) {
  const std::string_view token = BearerToken(authorization);
  if (token.empty()) {
    return Error(401, "unauthenticated", "an 'Authorization: Bearer TOKEN' header is required");
  }
  auto credential = keys.AuthenticateAdminToken(token);
  if (!credential.ok()) {
    if (credential.status().code() == StatusCode::kNotFound ||
        credential.status().code() == StatusCode::kPermissionDenied) {
      return Error(401, "unauthenticated", "invalid or disabled admin token");
    }
    return FromStatus(credential.status());
  }
  if (credential->role != role) {
    ApiResponse r = Error(403, "forbidden",
                          "this endpoint needs an " + std::string(keystore::AdminRoleName(role)) + " credential; '" +
                              credential->name + "' is an " + std::string(keystore::AdminRoleName(credential->role)) +
                              " credential");
    r.credential = credential->name;
    return r;
  }
  return std::move(credential).value();
}

}  // namespace

AdminApi::AdminApi(keystore::Keystore& keys, service::KeyLifecycle& lifecycle, audit::AuditLog* audit,
                   AdminApiOptions options)
    : keys_(keys), lifecycle_(lifecycle), audit_(audit), options_(std::move(options)) {}

bool AdminApi::Handles(std::string_view path) {
  for (const Route& route : kRoutes) {
    if (http::MatchPathTemplate(route.path, path)) {
      return true;
    }
  }
  return false;
}

ApiResponse AdminApi::Handle(const ApiRequest& request) {
  const RouteMatch match = FindRoute(request.method, http::SplitTarget(request.target).path);
  if (match.route == nullptr && match.allow.empty()) {
    return Error(404, "not_found", "no such admin API path");
  }
  if (match.route == nullptr) {
    ApiResponse r = Error(405, "method_not_allowed", "this path accepts " + match.allow);
    r.allow = match.allow;
    return r;
  }
  auto credential = Authenticate(keys_, request.authorization, match.route->role);
  if (!credential.ok()) {
    return credential.error();
  }
  const EndpointCall call{request, match.params, *credential, keys_, lifecycle_, audit_, options_};
  ApiResponse response = match.route->endpoint(call);
  response.credential = credential->name;
  return response;
}

}  // namespace coffre::admin
