#pragma once

// Wiring of the operations features into the daemon: the S3 request metrics fed by the gateway's
// observer, the process-wide gauges, and the admin API's readiness checks.

#include <string>
#include <vector>

#include "coffre/admin/admin_handler.h"
#include "coffre/audit/audit_log.h"
#include "coffre/catalog/catalog.h"
#include "coffre/http/server.h"
#include "coffre/keystore/keystore.h"
#include "coffre/ops/metrics.h"
#include "coffre/ops/rate_limiter.h"
#include "coffre/s3/gateway.h"
#include "coffre/server/config.h"
#include "coffre/service/object_service.h"
#include "coffre/upstream/s3_client.h"

namespace coffre::server {

// Turns each S3 request record into the coffre_s3_* metrics. Series per operation are looked up
// in the registry (a short lock) and then updated with atomics.
s3::RequestObserver S3MetricsObserver(ops::Registry& registry);

// The access-log line of one request: `[request id] access method=… operation=… bucket="…"
// key="…" status=… bytes_in=… bytes_out=… duration_us=… tenant=…`. Bucket and key are quoted
// with JSON escaping, so a key holding a newline or a quote cannot forge a log line.
std::string AccessLogLine(const s3::RequestRecord& record);

// Build info, start time, open connections of both listeners, free bytes of the data directory.
// `s3_server` and `admin_server` must outlive the registry's last Render().
void RegisterProcessMetrics(ops::Registry& registry, const Config& config, const http::Server& s3_server,
                            const http::Server* admin_server);

// keystore (answers a query under the root key), catalog (answers a query), data_dir (writable
// and at least min_free_megabytes free), audit (its last write succeeded; when `audit` is set),
// upstream (the upstream bucket answers HEAD; when `upstream` is set). The stores must outlive the
// checks.
std::vector<admin::ReadinessCheck> ReadinessChecks(const Config& config, keystore::Keystore& keys,
                                                   catalog::Catalog& catalog, const audit::AuditLog* audit,
                                                   upstream::S3Client* upstream);

// What the upstream client counts, as coffre_upstream_operations_total,
// coffre_upstream_retries_total, coffre_upstream_connections_opened_total,
// coffre_upstream_errors_total{code} (operations that failed after their retries) and the
// histogram coffre_upstream_attempt_duration_seconds (every HTTP attempt). `client` must outlive
// the registry's last Render().
void RegisterUpstreamMetrics(ops::Registry& registry, const upstream::S3Client& client);

// coffre_encrypted_bytes_total, coffre_decrypted_bytes_total and
// coffre_key_operations_total{operation, outcome}, fed by the object service. The series are
// registered here, so the callbacks only add to atomics. `registry` must outlive the service's
// last call.
service::ServiceObserver ServiceMetricsObserver(ops::Registry& registry);

// The gateway's admission check for per-tenant rate limits: asks `limiter` (tenant names read
// from `keys` when an override needs them) and counts each refusal in
// coffre_s3_rate_limited_total{tenant}. All three must outlive the gateway.
s3::AdmissionCheck RateLimitAdmission(ops::TenantRateLimiter& limiter, keystore::Keystore& keys,
                                      ops::Registry& registry);

// The gateway's bound on request bodies in flight per tenant (max_bodies_per_tenant): a slot from
// `limiter`, each refusal counted in coffre_s3_bodies_limited_total{tenant}; also registers the
// gauge coffre_s3_bodies_in_flight. Both must outlive the gateway.
s3::BodyAdmission BodyLimitAdmission(ops::TenantBodyLimiter& limiter, ops::Registry& registry);

// coffre_audit_records_written_total, coffre_audit_write_failures_total, coffre_audit_healthy.
void RegisterAuditMetrics(ops::Registry& registry, const audit::AuditLog& audit);

// Forwards every event to `inner` and counts the integrity failures among them (stored data or a
// wrapped key that failed authentication) in coffre_integrity_failures_total{source}: "scrub"
// for the background scrub's (request action service::kScrubAction), "read" for the others (GET,
// ranged GET, Copy source, UploadPartCopy). The service audits each damaged read exactly once,
// so the metric and the audit log agree; counted even when the record cannot be written.
// Both series exist from the start, at 0. `inner` and `registry` must outlive it.
class IntegrityMetricsRecorder final : public audit::Recorder {
 public:
  IntegrityMetricsRecorder(audit::Recorder& inner, ops::Registry& registry);
  Status Record(const audit::Event& event) override;
  // Forwarded, not left to the base class's Start (which would Record at once and block): the
  // inner log's Start is what lets a GET wait for its record without holding a thread.
  std::unique_ptr<audit::PendingRecord> Start(const audit::Event& event) override;

 private:
  void Count(const audit::Event& event);

  audit::Recorder& inner_;
  ops::Counter& read_;
  ops::Counter& scrub_;
};

}  // namespace coffre::server
