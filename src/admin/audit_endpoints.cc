#include <map>
#include <optional>
#include <utility>

#include "admin/admin_endpoints.h"
#include "coffre/audit/bundle.h"
#include "coffre/audit/record.h"

namespace coffre::admin {
namespace {

using nlohmann::json;

// What GET /audit/export asks for, checked.
struct ExportRequest {
  std::string format;  // "jsonl" or "csv", as in the file name
  audit::BundleFormat bundle_format = audit::BundleFormat::kJsonl;
  std::string tenant;  // name
  UnixMillis from_ms = 0;
  UnixMillis to_ms = 0;
};

// The query's parameters by name, form-encoded ('+' is a space); nullopt for a malformed query
// (a bad escape, a name given twice).
std::optional<std::map<std::string, std::string>> UniqueQueryParams(std::string_view query) {
  auto params = http::ParseQuery(query, http::PlusSign::kSpace);
  if (!params) {
    return std::nullopt;
  }
  std::map<std::string, std::string> out;
  for (auto& [name, value] : *params) {
    if (!out.emplace(std::move(name), std::move(value)).second) {
      return std::nullopt;
    }
  }
  return out;
}

// Sets `out` from the UTC time `text`; leaves it when `text` is empty.
std::optional<ApiResponse> ParseTimeParam(std::string_view name, const std::string& text, UnixMillis& out) {
  if (text.empty()) {
    return std::nullopt;
  }
  auto t = ParseUtcTime(text);
  if (!t) {
    return Error(400, "invalid_argument",
                 std::string(name) + ": expected a UTC time such as 2026-11-28 or 2026-11-28T10:15:00Z");
  }
  out = *t;
  return std::nullopt;
}

Expected<ExportRequest, ApiResponse> ParseExportRequest(const EndpointCall& call) {
  auto query = UniqueQueryParams(http::SplitTarget(call.request.target).query);
  if (!query) {
    return Error(400, "invalid_argument", "malformed query string");
  }
  auto param = [&query](const char* name) -> std::string {
    auto it = query->find(name);
    return it == query->end() ? std::string() : it->second;
  };
  ExportRequest r;
  r.format = param("format").empty() ? "jsonl" : param("format");
  if (r.format == "csv") {
    r.bundle_format = audit::BundleFormat::kCsv;
  } else if (r.format != "jsonl") {
    return Error(400, "invalid_argument", "format must be jsonl or csv");
  }
  r.tenant = param("tenant");
  if (r.tenant.empty()) {
    return Error(400, "invalid_argument", "tenant is required");
  }
  r.to_ms = call.Now();
  for (const auto& [name, out] : {std::pair{"from", &r.from_ms}, std::pair{"to", &r.to_ms}}) {
    if (std::optional<ApiResponse> bad = ParseTimeParam(name, param(name), *out)) {
      return std::move(*bad);
    }
  }
  if (r.from_ms > r.to_ms) {
    return Error(400, "invalid_argument", "the time range is reversed: from is after to");
  }
  return r;
}

}  // namespace

ApiResponse ExportAudit(const EndpointCall& call) {
  if (call.audit == nullptr) {
    return Error(503, "unavailable", "no audit log is open");
  }
  auto request = ParseExportRequest(call);
  if (!request.ok()) {
    return request.error();
  }
  auto t = TenantNamed(call, request->tenant);
  if (!t.ok()) {
    return t.error();
  }
  // As `coffre audit export`: sign the newest records first, so the export has no unsigned tail.
  if (Status st = call.audit->Checkpoint(); !st.ok()) {
    return FromStatus(Status(st.code(), "cannot sign a checkpoint before exporting: " + st.message()));
  }
  auto data = call.audit->ExportTenant(t->id, request->from_ms, request->to_ms);
  if (!data.ok()) {
    return FromStatus(data.status());
  }
  audit::BundleInfo bundle;
  bundle.tenant = t->id;
  bundle.tenant_name = t->name;
  bundle.from_ms = request->from_ms;
  bundle.to_ms = request->to_ms;
  bundle.generated_ms = call.Now();
  ApiResponse r;
  r.body = audit::EncodeBundle(*data, bundle, request->bundle_format);
  r.content_type =
      request->bundle_format == audit::BundleFormat::kCsv ? "text/csv; charset=utf-8" : "application/x-ndjson";
  r.content_disposition = "attachment; filename=\"coffre-audit-" + t->name + "." + request->format + "\"";
  return r;
}

ApiResponse AuditPublicKey(const EndpointCall& call) {
  if (call.audit == nullptr) {
    return Error(503, "unavailable", "no audit log is open");
  }
  return Json(200, json{{"public_key", audit::EncodePublicKey(call.audit->public_key())}});
}

}  // namespace coffre::admin
