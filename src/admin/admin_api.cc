#include "coffre/admin/admin_api.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "coffre/audit/bundle.h"
#include "coffre/audit/record.h"
#include "coffre/service/dual_control.h"

namespace coffre::admin {
namespace {

using keystore::AdminRole;
using nlohmann::json;

enum class Endpoint {
  kListTenants,
  kCreateTenant,
  kListAccessKeys,
  kCreateAccessKey,
  kDisableAccessKey,
  kEnableAccessKey,
  kDeleteAccessKey,
  kListKeyVersions,
  kRotateKey,
  kAuditExport,
  kAuditPublicKey,
  kListApprovals,
  kRequestApproval,
  kGrantApproval,
};

struct Route {
  Endpoint endpoint;
  AdminRole role;
  std::string tenant;      // name, for /tenants/T/...
  std::string access_key;  // id, for /tenants/T/access-keys/ID...
};

// One path with its methods; `allow` lists them for a 405.
struct PathMatch {
  std::vector<std::pair<std::string_view, Endpoint>> methods;
  std::string allow;
  AdminRole role = AdminRole::kAdmin;
  std::string tenant;
  std::string access_key;
  std::string approval;  // id, for /approvals/ID/approve
};

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path.front() != '/') {
    return out;
  }
  path.remove_prefix(1);
  while (true) {
    const size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) {
      break;
    }
    path.remove_prefix(slash + 1);
  }
  return out;
}

std::optional<PathMatch> MatchPath(std::string_view path) {
  const std::vector<std::string_view> s = Segments(path);
  for (std::string_view seg : s) {
    // An empty segment ("//", a trailing "/") names nothing.
    if (seg.empty()) {
      return std::nullopt;
    }
  }
  PathMatch m;
  if (s.size() == 2 && s[0] == "audit") {
    m.role = AdminRole::kAuditor;
    m.allow = "GET";
    if (s[1] == "export") {
      m.methods = {{"GET", Endpoint::kAuditExport}};
      return m;
    }
    if (s[1] == "public-key") {
      m.methods = {{"GET", Endpoint::kAuditPublicKey}};
      return m;
    }
    return std::nullopt;
  }
  if (!s.empty() && s[0] == "approvals") {
    if (s.size() == 1) {
      m.methods = {{"GET", Endpoint::kListApprovals}, {"POST", Endpoint::kRequestApproval}};
      m.allow = "GET, POST";
      return m;
    }
    if (s.size() == 3 && s[2] == "approve") {
      m.approval = std::string(s[1]);
      m.methods = {{"POST", Endpoint::kGrantApproval}};
      m.allow = "POST";
      return m;
    }
    return std::nullopt;
  }
  if (s.empty() || s[0] != "tenants") {
    return std::nullopt;
  }
  if (s.size() == 1) {
    m.methods = {{"GET", Endpoint::kListTenants}, {"POST", Endpoint::kCreateTenant}};
    m.allow = "GET, POST";
    return m;
  }
  m.tenant = std::string(s[1]);
  if (s.size() == 3 && s[2] == "access-keys") {
    m.methods = {{"GET", Endpoint::kListAccessKeys}, {"POST", Endpoint::kCreateAccessKey}};
    m.allow = "GET, POST";
    return m;
  }
  if (s.size() == 3 && s[2] == "keys") {
    m.methods = {{"GET", Endpoint::kListKeyVersions}};
    m.allow = "GET";
    return m;
  }
  if (s.size() == 4 && s[2] == "keys" && s[3] == "rotate") {
    m.methods = {{"POST", Endpoint::kRotateKey}};
    m.allow = "POST";
    return m;
  }
  if (s.size() >= 4 && s[2] == "access-keys") {
    m.access_key = std::string(s[3]);
    if (s.size() == 4) {
      m.methods = {{"DELETE", Endpoint::kDeleteAccessKey}};
      m.allow = "DELETE";
      return m;
    }
    if (s.size() == 5 && s[4] == "disable") {
      m.methods = {{"POST", Endpoint::kDisableAccessKey}};
      m.allow = "POST";
      return m;
    }
    if (s.size() == 5 && s[4] == "enable") {
      m.methods = {{"POST", Endpoint::kEnableAccessKey}};
      m.allow = "POST";
      return m;
    }
  }
  return std::nullopt;
}

std::string_view PathOf(std::string_view target) {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// application/x-www-form-urlencoded decoding of one query component; nullopt for a bad escape.
std::optional<std::string> Unescape(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) {
        return std::nullopt;
      }
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// The query's parameters; nullopt for a malformed one (bad escape, a name given twice).
std::optional<std::map<std::string, std::string>> ParseQuery(std::string_view target) {
  std::map<std::string, std::string> out;
  const size_t q = target.find('?');
  if (q == std::string_view::npos) {
    return out;
  }
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    const size_t eq = pair.find('=');
    auto name = Unescape(pair.substr(0, eq));
    auto value = Unescape(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!name || !value || !out.emplace(std::move(*name), std::move(*value)).second) {
      return std::nullopt;
    }
  }
  return out;
}

std::string Dump(const json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/true, json::error_handler_t::replace) + "\n";
}

ApiResponse Json(int status, const json& body) {
  ApiResponse r;
  r.status = status;
  r.body = Dump(body);
  return r;
}

// {"error": {"code": "...", "message": "..."}}: `code` is stable for programs, `message` for people.
ApiResponse Error(int status, std::string_view code, std::string_view message) {
  return Json(status, json{{"error", {{"code", code}, {"message", message}}}});
}

// The one place where a Status from the keystore, the lifecycle or the audit log becomes an HTTP
// answer. Status messages never carry key material (common/status.h).
ApiResponse FromStatus(const Status& st) {
  switch (st.code()) {
    case StatusCode::kNotFound:
      return Error(404, "not_found", st.message());
    case StatusCode::kAlreadyExists:
      return Error(409, "already_exists", st.message());
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return Error(400, "invalid_argument", st.message());
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAborted:
      return Error(409, "conflict", st.message());
    case StatusCode::kPermissionDenied:
      return Error(403, "forbidden", st.message());
    case StatusCode::kUnavailable:
    case StatusCode::kNoSpace:
    case StatusCode::kIOError:
      // Fail-closed: what could not be recorded was not done (key_lifecycle.h).
      return Error(503, "unavailable", st.message());
    default:
      spdlog::error("admin API: {}", st.ToString());
      return Error(500, "internal", "internal error (see the daemon's log)");
  }
}

std::string Time(UnixMillis ms) { return FormatIso8601(FromUnixMillis(ms)); }

json TenantJson(const keystore::Tenant& t) {
  json j = {{"name", t.name}, {"id", t.id}, {"created", Time(t.created)}};
  j["shredded"] = t.shredded ? json(Time(*t.shredded)) : json();
  return j;
}

json AccessKeyJson(const keystore::AccessKey& k) {
  json j = {{"access_key_id", k.access_key_id}, {"enabled", k.enabled}, {"created", Time(k.created)}};
  j["last_used"] = k.last_used ? json(Time(*k.last_used)) : json();
  return j;
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

}  // namespace

nlohmann::json ApprovalJson(const keystore::Approval& a, const std::string& tenant_name, UnixMillis now) {
  auto optional_time = [](const std::optional<UnixMillis>& ms) { return ms ? json(Time(*ms)) : json(); };
  json j = {{"id", a.id},
            {"operation", keystore::GuardedOperationName(a.operation)},
            {"state", keystore::ApprovalStateName(a.StateAt(now))},
            {"requested_by", a.requested_by},
            {"requested", Time(a.requested)},
            {"expires", Time(a.expires)}};
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

AdminApi::AdminApi(keystore::Keystore& keys, service::KeyLifecycle& lifecycle, audit::AuditLog* audit,
                   AdminApiOptions options)
    : keys_(keys), lifecycle_(lifecycle), audit_(audit), options_(std::move(options)) {}

bool AdminApi::Handles(std::string_view path) { return MatchPath(path).has_value(); }

ApiResponse AdminApi::Handle(const ApiRequest& request) {
  const std::string_view path = PathOf(request.target);
  std::optional<PathMatch> match = MatchPath(path);
  if (!match) {
    return Error(404, "not_found", "no such admin API path");
  }
  std::optional<Endpoint> endpoint;
  for (const auto& [method, e] : match->methods) {
    if (request.method == method) {
      endpoint = e;
    }
  }
  if (!endpoint) {
    ApiResponse r = Error(405, "method_not_allowed", "this path accepts " + match->allow);
    r.allow = match->allow;
    return r;
  }

  // Authentication: the token's hash against the keystore, on every request (a credential
  // disabled with the CLI stops working at once). Unknown and disabled tokens get the same answer.
  const std::string_view token = BearerToken(request.authorization);
  if (token.empty()) {
    return Error(401, "unauthenticated", "an 'Authorization: Bearer TOKEN' header is required");
  }
  auto credential = keys_.AuthenticateAdminToken(token);
  if (!credential.ok()) {
    if (credential.status().code() == StatusCode::kNotFound ||
        credential.status().code() == StatusCode::kPermissionDenied) {
      return Error(401, "unauthenticated", "invalid or disabled admin token");
    }
    return FromStatus(credential.status());
  }
  if (credential->role != match->role) {
    ApiResponse r = Error(403, "forbidden",
                          "this endpoint needs an " + std::string(keystore::AdminRoleName(match->role)) +
                              " credential; '" + credential->name + "' is an " +
                              std::string(keystore::AdminRoleName(credential->role)) + " credential");
    r.credential = credential->name;
    return r;
  }

  audit::RequestInfo info;
  info.request_id = request.request_id;
  info.access_key_id = credential->name;
  info.client_address = request.client_address;
  // The actor is named in the action too: access-key records use their access_key_id field for
  // the access key acted on (docs/AUDIT.md), and the credential must not be lost there.
  auto action = [&info](std::string_view what) {
    audit::RequestInfo i = info;
    i.action = "admin-api:" + std::string(what) + " by " + i.access_key_id;
    return i;
  };
  // The tenant named in the path; 404 if there is none.
  auto tenant = [&]() -> Result<keystore::Tenant> {
    auto t = keys_.GetTenantByName(match->tenant);
    if (!t.ok() && t.status().code() == StatusCode::kNotFound) {
      return Status::NotFound("no tenant named '" + match->tenant + "'");
    }
    return t;
  };

  ApiResponse response = [&]() -> ApiResponse {
    switch (*endpoint) {
      case Endpoint::kListTenants: {
        auto tenants = keys_.ListTenants();
        if (!tenants.ok()) {
          return FromStatus(tenants.status());
        }
        json arr = json::array();
        for (const auto& t : *tenants) {
          arr.push_back(TenantJson(t));
        }
        return Json(200, json{{"tenants", std::move(arr)}});
      }
      case Endpoint::kCreateTenant: {
        const json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
        if (body.is_discarded() || !body.is_object()) {
          return Error(400, "malformed_json", "the body must be a JSON object such as {\"name\": \"acme\"}");
        }
        if (!body.contains("name") || !body["name"].is_string()) {
          return Error(400, "invalid_argument", "\"name\" (a string) is required");
        }
        // As `coffre tenant create`: the tenant and its first access key. Issuing the key is also
        // what marks the creation complete for KeyLifecycle::CreateTenant, so a repeated POST is
        // 409 rather than a second tenant_key.create record.
        const audit::RequestInfo create_request = action("tenant create");
        auto t = lifecycle_.CreateTenant(body["name"].get<std::string>(), create_request);
        if (!t.ok()) {
          return FromStatus(t.status());
        }
        auto k = lifecycle_.CreateAccessKey(t->id, create_request);
        if (!k.ok()) {
          ApiResponse r = FromStatus(k.status());
          if (r.status < 500) {
            r = Error(503, "unavailable", k.status().message());
          }
          const json err = {
              {"error",
               {{"code", "partial"},
                {"message", "tenant " + t->name + " was created (and recorded), but no access key was issued: " +
                                k.status().message() + "; POST /tenants/" + t->name + "/access-keys issues one"}}}};
          r.body = Dump(err);
          return r;
        }
        json j = TenantJson(*t);
        j["access_key"] = {{"access_key_id", k->key.access_key_id},
                           {"secret_access_key", k->secret_access_key}};  // shown once, as by the CLI
        return Json(201, j);
      }
      case Endpoint::kListAccessKeys: {
        auto t = tenant();
        if (!t.ok()) {
          return FromStatus(t.status());
        }
        auto listed = keys_.ListAccessKeys(t->id);
        if (!listed.ok()) {
          return FromStatus(listed.status());
        }
        json arr = json::array();
        for (const auto& k : *listed) {
          arr.push_back(AccessKeyJson(k));
        }
        return Json(200, json{{"tenant", t->name}, {"access_keys", std::move(arr)}});
      }
      case Endpoint::kCreateAccessKey: {
        auto t = tenant();
        if (!t.ok()) {
          return FromStatus(t.status());
        }
        auto k = lifecycle_.CreateAccessKey(t->id, action("access-key create"));
        if (!k.ok()) {
          return FromStatus(k.status());
        }
        json j = AccessKeyJson(k->key);
        j["tenant"] = t->name;
        j["secret_access_key"] = k->secret_access_key;  // shown once, as by the CLI
        return Json(201, j);
      }
      case Endpoint::kDisableAccessKey:
      case Endpoint::kEnableAccessKey:
      case Endpoint::kDeleteAccessKey: {
        auto t = tenant();
        if (!t.ok()) {
          return FromStatus(t.status());
        }
        Status st;
        std::string done;
        if (*endpoint == Endpoint::kDisableAccessKey) {
          st = lifecycle_.DisableAccessKey(t->id, match->access_key, action("access-key disable"));
          done = "disabled";
        } else if (*endpoint == Endpoint::kEnableAccessKey) {
          st = lifecycle_.EnableAccessKey(t->id, match->access_key, action("access-key enable"));
          done = "enabled";
        } else {
          st = lifecycle_.DeleteAccessKey(t->id, match->access_key, action("access-key delete"));
          done = "deleted";
        }
        if (st.code() == StatusCode::kNotFound) {
          return Error(404, "not_found", "tenant " + t->name + " has no access key " + match->access_key);
        }
        if (!st.ok()) {
          return FromStatus(st);
        }
        return Json(200, json{{"tenant", t->name}, {"access_key_id", match->access_key}, {"status", done}});
      }
      case Endpoint::kListKeyVersions: {
        auto t = tenant();
        if (!t.ok()) {
          return FromStatus(t.status());
        }
        auto versions = keys_.ListKeyVersions(t->id);
        if (!versions.ok()) {
          return FromStatus(versions.status());
        }
        std::optional<std::map<uint32_t, uint64_t>> counts;
        if (options_.count_key_references) {
          auto c = options_.count_key_references(t->id);
          if (!c.ok()) {
            return FromStatus(c.status());
          }
          counts = std::move(c).value();
        }
        json arr = json::array();
        for (const auto& v : *versions) {
          json j = {{"version", v.version},
                    {"state", v.active ? "active" : (v.destroying ? "destroying" : "retired")},
                    {"created", Time(v.created)}};
          if (counts) {
            auto it = counts->find(v.version);
            j["objects"] = it == counts->end() ? 0 : it->second;
          }
          arr.push_back(std::move(j));
        }
        return Json(200, json{{"tenant", t->name}, {"shredded", t->shredded.has_value()}, {"versions", arr}});
      }
      case Endpoint::kRotateKey: {
        auto t = tenant();
        if (!t.ok()) {
          return FromStatus(t.status());
        }
        auto version = lifecycle_.RotateTenantKey(t->id, action("key rotate"));
        if (!version.ok()) {
          return FromStatus(version.status());
        }
        return Json(200, json{{"tenant", t->name}, {"active_version", *version}});
      }
      case Endpoint::kListApprovals: {
        constexpr size_t kListed = 100;
        auto listed = keys_.ListApprovals(kListed);
        if (!listed.ok()) {
          return FromStatus(listed.status());
        }
        const UnixMillis now = ToUnixMillis(options_.clock->Now());
        json arr = json::array();
        for (const auto& a : *listed) {
          arr.push_back(ApprovalJson(a, ApprovalTenantName(keys_, a.tenant_id), now));
        }
        return Json(200, json{{"dual_control", options_.dual_control.required}, {"approvals", std::move(arr)}});
      }
      case Endpoint::kRequestApproval: {
        const json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
        if (body.is_discarded() || !body.is_object()) {
          return Error(
              400, "malformed_json",
              "the body must be a JSON object such as {\"operation\": \"tenant.shred\", \"tenant\": \"acme\"}");
        }
        const auto op = body.contains("operation") && body["operation"].is_string()
                            ? keystore::ParseGuardedOperation(body["operation"].get<std::string>())
                            : std::nullopt;
        if (!op) {
          return Error(400, "invalid_argument",
                       "\"operation\" must be \"tenant_key.destroy\" (with \"tenant\" and \"version\"), "
                       "\"tenant.shred\" (with \"tenant\"), \"root_key.rotate\" or \"admin_credential.create\" (with "
                       "\"credential\")");
        }
        std::string tenant_id;
        if (*op == keystore::GuardedOperation::kCreateAdminCredential) {
          if (!body.contains("credential") || !body["credential"].is_string()) {
            return Error(400, "invalid_argument", "\"credential\" must be the new admin credential's name");
          }
          tenant_id = body["credential"].get<std::string>();
        } else if (body.contains("tenant")) {
          if (!body["tenant"].is_string()) {
            return Error(400, "invalid_argument", "\"tenant\" must be a tenant name");
          }
          match->tenant = body["tenant"].get<std::string>();
          auto t = tenant();
          if (!t.ok()) {
            return FromStatus(t.status());
          }
          tenant_id = t->id;
        }
        uint32_t version = 0;
        if (body.contains("version")) {
          if (!body["version"].is_number_unsigned() || body["version"].get<uint64_t>() > UINT32_MAX) {
            return Error(400, "invalid_argument", "\"version\" must be a key version number");
          }
          version = body["version"].get<uint32_t>();
        }
        service::DualControl dual(keys_, lifecycle_.recorder(), options_.dual_control, *options_.clock);
        auto approval = dual.Request(*op, tenant_id, version, credential->name, action("approval request"));
        if (!approval.ok()) {
          return FromStatus(approval.status());
        }
        return Json(201, ApprovalJson(*approval, match->tenant, ToUnixMillis(options_.clock->Now())));
      }
      case Endpoint::kGrantApproval: {
        service::DualControl dual(keys_, lifecycle_.recorder(), options_.dual_control, *options_.clock);
        auto approval = dual.Grant(match->approval, credential->name, action("approval grant"));
        if (!approval.ok()) {
          return FromStatus(approval.status());
        }
        return Json(200, ApprovalJson(*approval, ApprovalTenantName(keys_, approval->tenant_id),
                                      ToUnixMillis(options_.clock->Now())));
      }
      case Endpoint::kAuditPublicKey: {
        if (audit_ == nullptr) {
          return Error(503, "unavailable", "no audit log is open");
        }
        return Json(200, json{{"public_key", audit::EncodePublicKey(audit_->public_key())}});
      }
      case Endpoint::kAuditExport: {
        if (audit_ == nullptr) {
          return Error(503, "unavailable", "no audit log is open");
        }
        auto query = ParseQuery(request.target);
        if (!query) {
          return Error(400, "invalid_argument", "malformed query string");
        }
        auto param = [&](const char* name) -> std::string {
          auto it = query->find(name);
          return it == query->end() ? std::string() : it->second;
        };
        const std::string format = param("format").empty() ? "jsonl" : param("format");
        audit::BundleFormat fmt;
        if (format == "jsonl") {
          fmt = audit::BundleFormat::kJsonl;
        } else if (format == "csv") {
          fmt = audit::BundleFormat::kCsv;
        } else {
          return Error(400, "invalid_argument", "format must be jsonl or csv");
        }
        if (param("tenant").empty()) {
          return Error(400, "invalid_argument", "tenant is required");
        }
        UnixMillis from_ms = 0;
        UnixMillis to_ms = ToUnixMillis(options_.clock->Now());
        for (const auto& [name, out] : {std::pair{"from", &from_ms}, std::pair{"to", &to_ms}}) {
          const std::string text = param(name);
          if (text.empty()) {
            continue;
          }
          auto t = ParseUtcTime(text);
          if (!t) {
            return Error(400, "invalid_argument",
                         std::string(name) + ": expected a UTC time such as 2026-11-28 or 2026-11-28T10:15:00Z");
          }
          *out = *t;
        }
        if (from_ms > to_ms) {
          return Error(400, "invalid_argument", "the time range is reversed: from is after to");
        }
        match->tenant = param("tenant");
        auto t = tenant();
        if (!t.ok()) {
          return FromStatus(t.status());
        }
        // As `coffre audit export`: sign the newest records first, so the export has no unsigned tail.
        if (Status st = audit_->Checkpoint(); !st.ok()) {
          return FromStatus(Status(st.code(), "cannot sign a checkpoint before exporting: " + st.message()));
        }
        auto data = audit_->ExportTenant(t->id, from_ms, to_ms);
        if (!data.ok()) {
          return FromStatus(data.status());
        }
        audit::BundleInfo bundle;
        bundle.tenant = t->id;
        bundle.tenant_name = t->name;
        bundle.from_ms = from_ms;
        bundle.to_ms = to_ms;
        bundle.generated_ms = ToUnixMillis(options_.clock->Now());
        ApiResponse r;
        r.body = audit::EncodeBundle(*data, bundle, fmt);
        r.content_type = fmt == audit::BundleFormat::kCsv ? "text/csv; charset=utf-8" : "application/x-ndjson";
        r.content_disposition = "attachment; filename=\"coffre-audit-" + t->name + "." + format + "\"";
        return r;
      }
    }
    return Error(500, "internal", "unhandled endpoint");
  }();
  response.credential = credential->name;
  return response;
}

}  // namespace coffre::admin
