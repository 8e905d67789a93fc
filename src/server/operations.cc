#include "operations.h"

#include <chrono>
#include <string>

#include "coffre/ops/probes.h"
#include "coffre/service/scrub.h"
#include "log_quote.h"

namespace coffre::server {
namespace {

constexpr const char* kIntegrityHelp =
    "Objects whose stored data or wrapped key failed authentication, by who found it (read, scrub).";

}  // namespace

s3::RequestObserver S3MetricsObserver(ops::Registry& registry) {
  return [&registry](const s3::RequestRecord& r) {
    const std::string operation(r.operation);
    registry
        .GetCounter("coffre_s3_requests_total", "S3 requests answered, by operation and HTTP status.",
                    {{"operation", operation}, {"status", std::to_string(r.status)}})
        .Add();
    registry
        .GetHistogram("coffre_s3_request_duration_seconds", "Time from request header to the end of the answer.",
                      ops::LatencyBuckets(), {{"operation", operation}})
        .Observe(std::chrono::duration<double>(r.duration).count());
    if (r.bytes_received > 0) {
      registry
          .GetCounter("coffre_s3_received_bytes_total", "Request body bytes read, by operation.",
                      {{"operation", operation}})
          .Add(r.bytes_received);
    }
    if (r.bytes_sent > 0) {
      registry
          .GetCounter("coffre_s3_sent_bytes_total", "Response body bytes written, by operation.",
                      {{"operation", operation}})
          .Add(r.bytes_sent);
    }
  };
}

std::string AccessLogLine(const s3::RequestRecord& r) {
  return "[" + std::string(r.request_id) + "] access method=" + std::string(r.method) +
         " operation=" + std::string(r.operation) + " bucket=" + LogQuoted(r.bucket) + " key=" + LogQuoted(r.key) +
         " status=" + std::to_string(r.status) + " bytes_in=" + std::to_string(r.bytes_received) +
         " bytes_out=" + std::to_string(r.bytes_sent) + " duration_us=" + std::to_string(r.duration.count()) +
         " tenant=" + (r.tenant_id.empty() ? std::string("-") : std::string(r.tenant_id));
}

void RegisterProcessMetrics(ops::Registry& registry, const Config& config, const http::Server& s3_server,
                            const http::Server* admin_server) {
  registry.GetGauge("coffre_build_info", "Always 1; the labels say which build runs.", {{"version", COFFRE_VERSION}})
      .Set(1);
  registry.GetGauge("coffre_process_start_time_seconds", "Start time of the process, in Unix seconds.")
      .Set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  registry.AddCallbackGauge("coffre_http_open_connections", "Open client connections, by listener.",
                            {{"listener", "s3"}},
                            [&s3_server] { return static_cast<double>(s3_server.open_connections()); });
  if (admin_server != nullptr) {
    registry.AddCallbackGauge("coffre_http_open_connections", "Open client connections, by listener.",
                              {{"listener", "admin"}},
                              [admin_server] { return static_cast<double>(admin_server->open_connections()); });
  }
  const std::string data_dir = config.data_dir;
  registry.AddCallbackGauge("coffre_data_dir_free_bytes",
                            "Bytes available to Coffre on the data directory's file system (-1: unknown).", {},
                            [data_dir] {
                              auto free = ops::FreeBytes(data_dir);
                              return free.ok() ? static_cast<double>(*free) : -1.0;
                            });
}

service::ServiceObserver ServiceMetricsObserver(ops::Registry& registry) {
  service::ServiceObserver observer;
  ops::Counter& encrypted = registry.GetCounter("coffre_encrypted_bytes_total",
                                                "Plaintext bytes encrypted into blobs (object and part uploads).");
  ops::Counter& decrypted = registry.GetCounter(
      "coffre_decrypted_bytes_total", "Plaintext bytes decrypted and authenticated from blobs (reads, copies).");
  observer.encrypted = [&encrypted](uint64_t n) { encrypted.Add(n); };
  observer.decrypted = [&decrypted](uint64_t n) { decrypted.Add(n); };
  const char* const kHelp =
      "Data-key operations by the object service, by operation (wrap, unwrap) and outcome (ok, error).";
  // Every series exists from the start (at 0), so that rate() and alerts see the first error.
  struct Series {
    ops::Counter* ok;
    ops::Counter* error;
  };
  auto series = [&](const char* operation) {
    return Series{
        &registry.GetCounter("coffre_key_operations_total", kHelp, {{"operation", operation}, {"outcome", "ok"}}),
        &registry.GetCounter("coffre_key_operations_total", kHelp, {{"operation", operation}, {"outcome", "error"}})};
  };
  const Series wrap = series("wrap");
  const Series unwrap = series("unwrap");
  observer.key_operation = [wrap, unwrap](service::KeyOperation operation, bool ok) {
    const Series* s = nullptr;
    switch (operation) {
      case service::KeyOperation::kWrap:
        s = &wrap;
        break;
      case service::KeyOperation::kUnwrap:
        s = &unwrap;
        break;
      case service::KeyOperation::kRewrap:
        return;  // not done by the daemon
    }
    (ok ? s->ok : s->error)->Add();
  };
  return observer;
}

s3::AdmissionCheck RateLimitAdmission(ops::TenantRateLimiter& limiter, keystore::Keystore& keys,
                                      ops::Registry& registry) {
  return [&limiter, &keys, &registry](std::string_view tenant_id) {
    const bool admitted = limiter.Admit(tenant_id, [&keys, tenant_id]() -> std::optional<std::string> {
      auto tenant = keys.GetTenant(std::string(tenant_id));
      if (!tenant.ok()) {
        return std::nullopt;
      }
      return tenant->name;
    });
    if (!admitted) {
      registry
          .GetCounter("coffre_s3_rate_limited_total",
                      "S3 requests refused with SlowDown by the tenant's rate limit, by tenant id.",
                      {{"tenant", std::string(tenant_id)}})
          .Add();
    }
    return admitted;
  };
}

s3::BodyAdmission BodyLimitAdmission(ops::TenantBodyLimiter& limiter, ops::Registry& registry) {
  registry.AddCallbackGauge("coffre_s3_bodies_in_flight",
                            "S3 request bodies being received, all tenants (bounded per tenant by "
                            "max_bodies_per_tenant).",
                            {}, [&limiter] { return static_cast<double>(limiter.in_flight()); });
  return [&limiter, &registry](std::string_view tenant_id) -> std::shared_ptr<void> {
    auto slot = limiter.TryAcquire(tenant_id);
    if (!slot) {
      registry
          .GetCounter("coffre_s3_bodies_limited_total",
                      "S3 requests refused with SlowDown because the tenant had max_bodies_per_tenant "
                      "bodies in flight, by tenant id.",
                      {{"tenant", std::string(tenant_id)}})
          .Add();
    }
    return slot;
  };
}

void RegisterAuditMetrics(ops::Registry& registry, const audit::AuditLog& audit) {
  registry.AddCallbackCounter("coffre_audit_records_written_total", "Key-usage audit records made durable since start.",
                              {}, [&audit] { return audit.records_written(); });
  registry.AddCallbackCounter("coffre_audit_commits_total",
                              "Audit transactions (one flush each) that made those records durable.", {},
                              [&audit] { return audit.commits(); });
  registry.AddCallbackCounter("coffre_audit_write_failures_total",
                              "Audit writes that failed since start (each refused a key use).", {},
                              [&audit] { return audit.write_failures(); });
  registry.AddCallbackGauge("coffre_audit_healthy", "1 when the last audit write succeeded, else 0.", {},
                            [&audit] { return audit.healthy() ? 1.0 : 0.0; });
}

IntegrityMetricsRecorder::IntegrityMetricsRecorder(audit::Recorder& inner, ops::Registry& registry)
    : inner_(inner),
      read_(registry.GetCounter("coffre_integrity_failures_total", kIntegrityHelp, {{"source", "read"}})),
      scrub_(registry.GetCounter("coffre_integrity_failures_total", kIntegrityHelp, {{"source", "scrub"}})) {}

void IntegrityMetricsRecorder::Count(const audit::Event& event) {
  if (event.outcome == audit::Outcome::kIntegrityFailure) {
    (event.request.action == service::kScrubAction ? scrub_ : read_).Add();
  }
}

Status IntegrityMetricsRecorder::Record(const audit::Event& event) {
  Count(event);
  return inner_.Record(event);
}

std::unique_ptr<audit::PendingRecord> IntegrityMetricsRecorder::Start(const audit::Event& event) {
  Count(event);
  return inner_.Start(event);
}

std::vector<admin::ReadinessCheck> ReadinessChecks(const Config& config, keystore::Keystore& keys,
                                                   catalog::Catalog& catalog, const audit::AuditLog* audit,
                                                   upstream::S3Client* upstream) {
  std::vector<admin::ReadinessCheck> checks;
  // Reads every authenticated keystore row: it fails on a forged or replayed one as well as on
  // a keystore that cannot answer.
  checks.push_back({"keystore", [&keys]() -> Status { return keys.CheckIntegrity(); }});
  checks.push_back({"catalog", [&catalog]() -> Status {
                      // A name no bucket can have: "not found" proves the catalog answers.
                      auto bucket = catalog.GetBucket("coffre..readiness-probe");
                      if (bucket.ok() || bucket.status().code() == StatusCode::kNotFound) {
                        return Status::Ok();
                      }
                      return bucket.status();
                    }});
  const std::string data_dir = config.data_dir;
  const uint64_t min_free = static_cast<uint64_t>(config.min_free_megabytes) * 1024 * 1024;
  checks.push_back({"data_dir", [data_dir, min_free]() -> Status {
                      COFFRE_RETURN_IF_ERROR(ops::ProbeWritable(data_dir));
                      auto free = ops::FreeBytes(data_dir);
                      if (!free.ok()) {
                        return free.status();
                      }
                      if (*free < min_free) {
                        return Status::NoSpace(std::to_string(*free / (1024 * 1024)) +
                                               " MiB free, below min_free_megabytes (" +
                                               std::to_string(min_free / (1024 * 1024)) + ")");
                      }
                      return Status::Ok();
                    }});
  if (audit != nullptr) {
    checks.push_back({"audit", [audit]() -> Status {
                        if (audit->healthy()) {
                          return Status::Ok();
                        }
                        return Status::Unavailable("audit log cannot be written: " + audit->last_error());
                      }});
  }
  if (upstream != nullptr) {
    // Every object's bytes are upstream: without it no GET or PUT can succeed, so a load balancer
    // should send the requests to a gateway that reaches it.
    const std::string where = "bucket \"" + config.storage.bucket + "\" at " + config.storage.endpoint;
    checks.push_back({"upstream", [upstream, where]() -> Status {
                        Status st = upstream->HeadBucket();
                        return st.ok() ? st : Status(st.code(), where + ": " + st.message());
                      }});
  }
  return checks;
}

void RegisterUpstreamMetrics(ops::Registry& registry, const upstream::S3Client& client) {
  const upstream::ClientCounters& c = client.counters();
  registry.AddCallbackCounter("coffre_upstream_operations_total",
                              "Operations asked of the upstream bucket (each may take several attempts).", {},
                              [&c] { return c.operations.load(std::memory_order_relaxed); });
  registry.AddCallbackCounter("coffre_upstream_retries_total", "Upstream attempts that were a retry.", {},
                              [&c] { return c.retries.load(std::memory_order_relaxed); });
  registry.AddCallbackCounter("coffre_upstream_connections_opened_total", "Connections opened to the upstream.", {},
                              [&c] { return c.connections_opened.load(std::memory_order_relaxed); });
  for (size_t i = 0; i < upstream::ClientCounters::kStatusCodes; ++i) {
    const auto code = static_cast<StatusCode>(i);
    if (code == StatusCode::kOk) continue;
    registry.AddCallbackCounter("coffre_upstream_errors_total",
                                "Upstream operations that failed after their retries, by error.",
                                {{"code", std::string(StatusCodeName(code))}}, [&c, code] { return c.Errors(code); });
  }
  std::vector<double> bounds;
  for (uint64_t ms : upstream::ClientCounters::kLatencyBoundsMs) bounds.push_back(static_cast<double>(ms) / 1000);
  registry.AddCallbackHistogram(
      "coffre_upstream_attempt_duration_seconds", "Time of each HTTP attempt to the upstream, its body included.", {},
      std::move(bounds), [&c] {
        ops::HistogramSnapshot snapshot;
        for (const auto& bucket : c.latency_buckets) {
          snapshot.buckets.push_back(bucket.load(std::memory_order_relaxed));
        }
        snapshot.sum = static_cast<double>(c.latency_total_us.load(std::memory_order_relaxed)) / 1e6;
        return snapshot;
      });
}

}  // namespace coffre::server
