#include <map>
#include <optional>
#include <utility>

#include "admin/admin_endpoints.h"
#include "coffre/audit/bundle.h"
#include "coffre/audit/export_arguments.h"
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

Expected<ExportRequest, ApiResponse> ParseExportRequest(const EndpointCall& call) {
  auto query = UniqueQueryParams(http::SplitTarget(call.request.target).query);
  if (!query) {
    return Error(400, "invalid_argument", "malformed query string");
  }
  auto param = [&query](const char* name) -> std::string {
    auto it = query->find(name);
    return it == query->end() ? std::string() : it->second;
  };
  static constexpr audit::ExportArgumentNames kNames{"format", "from", "to", /*quote_rejected_time=*/false};
  ExportRequest r;
  r.format = param("format").empty() ? "jsonl" : param("format");
  auto format = audit::ParseBundleFormat(r.format, kNames);
  if (!format.ok()) {
    return FromStatus(format.status());
  }
  r.bundle_format = *format;
  r.tenant = param("tenant");
  if (r.tenant.empty()) {
    return Error(400, "invalid_argument", "tenant is required");
  }
  auto range = audit::ParseExportTimeRange(param("from"), param("to"), call.Now(), kNames);
  if (!range.ok()) {
    return FromStatus(range.status());
  }
  r.from_ms = range->from_ms;
  r.to_ms = range->to_ms;
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
