#include "admin/admin_endpoints.h"

#include <spdlog/spdlog.h>

#include <map>
#include <optional>
#include <utility>

namespace coffre::admin {
namespace {

using nlohmann::json;

std::string Dump(const json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/true, json::error_handler_t::replace) + "\n";
}

json TenantJson(const keystore::Tenant& t) {
  json j = {{"name", t.name}, {"id", t.id}, {"created", IsoTime(t.created)}};
  j["shredded"] = t.shredded ? json(IsoTime(*t.shredded)) : json();
  return j;
}

json AccessKeyJson(const keystore::AccessKey& k) {
  json j = {{"access_key_id", k.access_key_id}, {"enabled", k.enabled}, {"created", IsoTime(k.created)}};
  j["last_used"] = k.last_used ? json(IsoTime(*k.last_used)) : json();
  return j;
}

// A tenant created (and recorded) whose first access key could not be issued: 503 at least, as
// the change is half done, and the message says how to finish it.
ApiResponse PartialTenant(const keystore::Tenant& t, const Status& key_failure) {
  ApiResponse r = FromStatus(key_failure);
  if (r.status < 500) {
    r = Error(503, "unavailable", key_failure.message());
  }
  r.body = Dump({{"error",
                  {{"code", "partial"},
                   {"message", "tenant " + t.name + " was created (and recorded), but no access key was issued: " +
                                   key_failure.message() + "; POST /tenants/" + t.name + "/access-keys issues one"}}}});
  return r;
}

// Disable, enable or delete the access key of the path; `change` is the lifecycle's call, `done`
// the status the answer reports.
template <typename Change>
ApiResponse ChangeAccessKey(const EndpointCall& call, std::string_view done, Change change) {
  auto t = TenantNamed(call, call.Param("tenant"));
  if (!t.ok()) {
    return t.error();
  }
  const std::string& key = call.Param("access_key");
  const Status st = change(t->id, key);
  if (st.code() == StatusCode::kNotFound) {
    return Error(404, "not_found", "tenant " + t->name + " has no access key " + key);
  }
  if (!st.ok()) {
    return FromStatus(st);
  }
  return Json(200, json{{"tenant", t->name}, {"access_key_id", key}, {"status", done}});
}

// The key versions of a tenant, with how many objects and uploads each still protects when the
// host can count them.
Result<json> KeyVersionsJson(const EndpointCall& call, const keystore::Tenant& t) {
  COFFRE_ASSIGN_OR_RETURN(const auto versions, call.keys.ListKeyVersions(t.id));
  std::optional<std::map<uint32_t, uint64_t>> counts;
  if (call.options.count_key_references) {
    COFFRE_ASSIGN_OR_RETURN(counts, call.options.count_key_references(t.id));
  }
  json arr = json::array();
  for (const auto& v : versions) {
    json j = {{"version", v.version},
              {"state", v.active ? "active" : (v.destroying ? "destroying" : "retired")},
              {"created", IsoTime(v.created)}};
    if (counts) {
      auto it = counts->find(v.version);
      j["objects"] = it == counts->end() ? 0 : it->second;
    }
    arr.push_back(std::move(j));
  }
  return arr;
}

}  // namespace

const std::string& EndpointCall::Param(std::string_view name) const {
  static const std::string kNone;
  auto it = path.find(name);
  return it == path.end() ? kNone : it->second;
}

audit::RequestInfo EndpointCall::Action(std::string_view what) const {
  audit::RequestInfo info;
  info.request_id = request.request_id;
  info.access_key_id = credential.name;
  info.client_address = request.client_address;
  info.action = "admin-api:" + std::string(what) + " by " + credential.name;
  return info;
}

UnixMillis EndpointCall::Now() const { return ToUnixMillis(options.clock->Now()); }

ApiResponse Json(int status, const json& body) {
  ApiResponse r;
  r.status = status;
  r.body = Dump(body);
  return r;
}

ApiResponse Error(int status, std::string_view code, std::string_view message) {
  return Json(status, json{{"error", {{"code", code}, {"message", message}}}});
}

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

Expected<json, ApiResponse> JsonObjectBody(const EndpointCall& call, std::string_view example) {
  json body = json::parse(call.request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return Error(400, "malformed_json", "the body must be a JSON object such as " + std::string(example));
  }
  return body;
}

Expected<keystore::Tenant, ApiResponse> TenantNamed(const EndpointCall& call, const std::string& name) {
  auto t = call.keys.GetTenantByName(name);
  if (!t.ok()) {
    if (t.status().code() == StatusCode::kNotFound) {
      return Error(404, "not_found", "no tenant named '" + name + "'");
    }
    return FromStatus(t.status());
  }
  return std::move(t).value();
}

std::string IsoTime(UnixMillis ms) { return FormatIso8601(FromUnixMillis(ms)); }

ApiResponse ListTenants(const EndpointCall& call) {
  auto tenants = call.keys.ListTenants();
  if (!tenants.ok()) {
    return FromStatus(tenants.status());
  }
  json arr = json::array();
  for (const auto& t : *tenants) {
    arr.push_back(TenantJson(t));
  }
  return Json(200, json{{"tenants", std::move(arr)}});
}

ApiResponse CreateTenant(const EndpointCall& call) {
  auto body = JsonObjectBody(call, R"({"name": "acme"})");
  if (!body.ok()) {
    return body.error();
  }
  if (!body->contains("name") || !(*body)["name"].is_string()) {
    return Error(400, "invalid_argument", "\"name\" (a string) is required");
  }
  // As `coffre tenant create`: the tenant and its first access key. Issuing the key is also what
  // marks the creation complete for KeyLifecycle::CreateTenant, so a repeated POST is 409 rather
  // than a second tenant_key.create record.
  const audit::RequestInfo request = call.Action("tenant create");
  auto t = call.lifecycle.CreateTenant((*body)["name"].get<std::string>(), request);
  if (!t.ok()) {
    return FromStatus(t.status());
  }
  auto k = call.lifecycle.CreateAccessKey(t->id, request);
  if (!k.ok()) {
    return PartialTenant(*t, k.status());
  }
  json j = TenantJson(*t);
  j["access_key"] = {{"access_key_id", k->key.access_key_id},
                     {"secret_access_key", k->secret_access_key}};  // shown once, as by the CLI
  return Json(201, j);
}

ApiResponse ListAccessKeys(const EndpointCall& call) {
  auto t = TenantNamed(call, call.Param("tenant"));
  if (!t.ok()) {
    return t.error();
  }
  auto listed = call.keys.ListAccessKeys(t->id);
  if (!listed.ok()) {
    return FromStatus(listed.status());
  }
  json arr = json::array();
  for (const auto& k : *listed) {
    arr.push_back(AccessKeyJson(k));
  }
  return Json(200, json{{"tenant", t->name}, {"access_keys", std::move(arr)}});
}

ApiResponse CreateAccessKey(const EndpointCall& call) {
  auto t = TenantNamed(call, call.Param("tenant"));
  if (!t.ok()) {
    return t.error();
  }
  auto k = call.lifecycle.CreateAccessKey(t->id, call.Action("access-key create"));
  if (!k.ok()) {
    return FromStatus(k.status());
  }
  json j = AccessKeyJson(k->key);
  j["tenant"] = t->name;
  j["secret_access_key"] = k->secret_access_key;  // shown once, as by the CLI
  return Json(201, j);
}

ApiResponse DisableAccessKey(const EndpointCall& call) {
  return ChangeAccessKey(call, "disabled", [&call](const std::string& tenant_id, const std::string& key) {
    return call.lifecycle.DisableAccessKey(tenant_id, key, call.Action("access-key disable"));
  });
}

ApiResponse EnableAccessKey(const EndpointCall& call) {
  return ChangeAccessKey(call, "enabled", [&call](const std::string& tenant_id, const std::string& key) {
    return call.lifecycle.EnableAccessKey(tenant_id, key, call.Action("access-key enable"));
  });
}

ApiResponse DeleteAccessKey(const EndpointCall& call) {
  return ChangeAccessKey(call, "deleted", [&call](const std::string& tenant_id, const std::string& key) {
    return call.lifecycle.DeleteAccessKey(tenant_id, key, call.Action("access-key delete"));
  });
}

ApiResponse ListKeyVersions(const EndpointCall& call) {
  auto t = TenantNamed(call, call.Param("tenant"));
  if (!t.ok()) {
    return t.error();
  }
  auto versions = KeyVersionsJson(call, *t);
  if (!versions.ok()) {
    return FromStatus(versions.status());
  }
  auto named = call.keys.ListNamedKeys(t->id);
  if (!named.ok()) {
    return FromStatus(named.status());
  }
  json named_keys = json::array();
  for (const auto& n : *named) {
    named_keys.push_back({{"name", n.name},
                          {"key_id", keystore::KeyIdAsUuid(n.key_id)},
                          {"created", IsoTime(n.created)},
                          {"destroyed", n.destroyed ? json(IsoTime(*n.destroyed)) : json(nullptr)}});
  }
  return Json(200, json{{"tenant", t->name},
                        {"shredded", t->shredded.has_value()},
                        {"versions", *versions},
                        {"named_keys", std::move(named_keys)}});
}

ApiResponse RotateKey(const EndpointCall& call) {
  auto t = TenantNamed(call, call.Param("tenant"));
  if (!t.ok()) {
    return t.error();
  }
  auto version = call.lifecycle.RotateTenantKey(t->id, call.Action("key rotate"));
  if (!version.ok()) {
    return FromStatus(version.status());
  }
  return Json(200, json{{"tenant", t->name}, {"active_version", *version}});
}

}  // namespace coffre::admin
