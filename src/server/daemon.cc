#include "daemon.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "audit_store.h"
#include "background_scrub.h"
#include "coffre/admin/admin_api.h"
#include "coffre/admin/admin_handler.h"
#include "coffre/catalog/catalog.h"
#include "coffre/http/server.h"
#include "coffre/http/tls.h"
#include "coffre/keystore/keystore.h"
#include "coffre/ops/log_format.h"
#include "coffre/ops/metrics.h"
#include "coffre/ops/rate_limiter.h"
#include "coffre/ops/systemd.h"
#include "coffre/s3/gateway.h"
#include "coffre/service/key_lifecycle.h"
#include "coffre/service/object_service.h"
#include "coffre/service/scrub.h"
#include "coffre/storage/blob_store.h"
#include "data_dir_lock.h"
#include "operations.h"
#include "stores.h"

namespace coffre::server {
namespace {

namespace asio = boost::asio;

// Creates the development tenant once and saves its credentials beside the data (mode 0600).
// Its key and access key are recorded in the audit log through `lifecycle` (docs/AUDIT.md).
Status EnsureDevTenant(keystore::Keystore& keys, service::KeyLifecycle& lifecycle, const Config& config,
                       const std::string& endpoint) {
  const std::string path = config.data_dir + "/dev-credentials.json";
  std::ifstream existing(path);
  nlohmann::json creds;
  if (existing) {
    creds = nlohmann::json::parse(existing, nullptr, false);
    if (creds.is_discarded() || !creds.contains("access_key_id")) {
      return Status::Corruption(path + " is not valid; remove it to create new development credentials");
    }
  } else {
    audit::RequestInfo request;
    request.action = "daemon:dev tenant";
    // CreateTenant also completes (records) a creation whose record failed at an earlier start.
    auto tenant = lifecycle.CreateTenant("dev", request);
    if (!tenant.ok() && tenant.status().code() == StatusCode::kAlreadyExists) {
      tenant = keys.GetTenantByName("dev");
    }
    if (!tenant.ok()) return tenant.status();
    auto key = lifecycle.CreateAccessKey(tenant->id, request);
    if (!key.ok()) return key.status();
    creds = {
        {"tenant", "dev"}, {"access_key_id", key->key.access_key_id}, {"secret_access_key", key->secret_access_key}};
  }
  creds["endpoint"] = endpoint;
  const std::string tmp = path + ".tmp";
  {
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) return Status::FromErrno(errno, "write " + tmp);
    ::chmod(tmp.c_str(), 0600);
    std::string text = creds.dump(2) + "\n";
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno(errno, "rename " + path);
  std::cout << "\nDevelopment tenant 'dev' (credentials saved in " << path << "):\n"
            << "  export AWS_ACCESS_KEY_ID=" << creds["access_key_id"].get<std::string>() << "\n"
            << "  export AWS_SECRET_ACCESS_KEY=" << creds["secret_access_key"].get<std::string>() << "\n"
            << "  export AWS_DEFAULT_REGION=" << config.region << "\n"
            << "  aws --endpoint-url " << endpoint << " s3 mb s3://my-bucket\n"
            << "  aws --endpoint-url " << endpoint << " s3 ls\n"
            << std::endl;
  return Status::Ok();
}

http::ServerOptions LimitsOf(const Config& config) {
  http::ServerOptions options;
  options.max_connections = config.max_connections;
  options.max_header_bytes = config.max_header_bytes;
  options.idle_timeout = std::chrono::seconds(config.idle_timeout_seconds);
  options.read_timeout = std::chrono::seconds(config.read_timeout_seconds);
  return options;
}

// SIGHUP. Settings bound at start (addresses, directories, keys, threads) keep their running
// values, with a warning naming each one that changed.
void ReloadConfig(const ConfigLoader& reload, Config& running, http::Server& s3_server, http::Server* admin_server,
                  ops::TenantRateLimiter& rate_limiter, ops::TenantBodyLimiter& body_limiter) {
  if (!reload) {
    spdlog::warn("SIGHUP: no configuration to reload");
    return;
  }
  auto loaded = reload();
  if (!loaded.ok()) {
    spdlog::error("SIGHUP: configuration rejected, the running one stays: {}", loaded.status().message());
    return;
  }
  Config next = std::move(loaded).value();
  auto keep = [](const char* name, auto& next_value, const auto& running_value) {
    if (next_value != running_value) {
      spdlog::warn("SIGHUP: '{}' changes only at restart; keeping the running value", name);
      next_value = running_value;
    }
  };
  keep("listen", next.listen, running.listen);
  keep("admin_listen", next.admin_listen, running.admin_listen);
  keep("data_dir", next.data_dir, running.data_dir);
  keep("root_key_file", next.root_key_file, running.root_key_file);
  keep("development", next.development, running.development);
  keep("create_root_key", next.create_root_key, running.create_root_key);
  keep("create_dev_tenant", next.create_dev_tenant, running.create_dev_tenant);
  keep("base_domain", next.base_domain, running.base_domain);
  keep("region", next.region, running.region);
  keep("io_threads", next.io_threads, running.io_threads);
  keep("worker_threads", next.worker_threads, running.worker_threads);
  keep("commit_threads", next.commit_threads, running.commit_threads);
  keep("min_free_megabytes", next.min_free_megabytes, running.min_free_megabytes);
  keep("allow_plaintext", next.allow_plaintext, running.allow_plaintext);
  keep("access_log", next.access_log, running.access_log);
  keep("scrub_interval_hours", next.scrub_interval_hours, running.scrub_interval_hours);
  keep("scrub_bytes_per_second", next.scrub_bytes_per_second, running.scrub_bytes_per_second);
  keep("packed_blob_max_bytes", next.packed_blob_max_bytes, running.packed_blob_max_bytes);
  if (next.tls_cert_file.empty() != running.tls_cert_file.empty()) {
    spdlog::warn("SIGHUP: turning TLS on or off ('tls_cert_file') changes only at restart; keeping the running value");
    next.tls_cert_file = running.tls_cert_file;
    next.tls_key_file = running.tls_key_file;
  }
  // The certificate files are read again even when their names did not change: renewal
  // replaces them in place. A bad certificate rejects the whole reload.
  std::shared_ptr<asio::ssl::context> tls;
  if (!next.tls_cert_file.empty()) {
    auto context = http::LoadTlsContext(next.tls_cert_file, next.tls_key_file);
    if (!context.ok()) {
      spdlog::error("SIGHUP: configuration rejected, the running one stays: {}", context.status().message());
      return;
    }
    tls = std::move(context).value();
  }
  running = next;
  spdlog::set_level(spdlog::level::from_str(running.log_level));
  spdlog::set_formatter(ops::MakeLogFormatter(running.log_format));
  rate_limiter.Configure(running.rate_limits);
  body_limiter.Configure(running.max_bodies_per_tenant);
  http::ServerOptions s3_limits = LimitsOf(running);
  s3_limits.tls = tls;
  s3_server.UpdateLimits(s3_limits);
  if (admin_server != nullptr) {
    http::ServerOptions admin_limits = LimitsOf(running);
    admin_limits.tls = tls;
    admin_limits.max_connections = 64;
    admin_server->UpdateLimits(admin_limits);
  }
  spdlog::info(
      "SIGHUP: configuration reloaded (log_level={}, max_connections={}, max_header_bytes={}, "
      "idle_timeout_seconds={}, read_timeout_seconds={}, drain_timeout_seconds={}, tls={})",
      running.log_level, running.max_connections, running.max_header_bytes, running.idle_timeout_seconds,
      running.read_timeout_seconds, running.drain_timeout_seconds, tls ? "certificate reloaded" : "off");
  const ops::RateLimit& default_limit = running.rate_limits.default_limit;
  spdlog::info("SIGHUP: log_format={}, max_bodies_per_tenant={}, rate_limits: default {}, {} tenant override(s)",
               running.log_format, running.max_bodies_per_tenant,
               default_limit.unlimited()
                   ? std::string("unlimited")
                   : fmt::format("{} requests/s (burst {})", default_limit.requests_per_second, default_limit.burst),
               running.rate_limits.tenants.size());
}

}  // namespace

int RunDaemon(const Config& config, const ConfigLoader& reload) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("coffre"));
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_formatter(ops::MakeLogFormatter(config.log_format));
  // Keys live in this process's memory: keep them out of core dumps and ptrace.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  std::string host;
  uint16_t port = 0;
  if (Status st = ParseListen(config.listen, &host, &port); !st.ok()) {
    spdlog::critical("{}", st.message());
    return 1;
  }
  // Before anything in data_dir is created or opened: a key there would be in every backup.
  if (Status st = CheckRootKeyPlacement(config); !st.ok()) {
    spdlog::critical("cannot start: {}", st.message());
    return 1;
  }
  // One daemon per data directory, decided before any store is opened, listener bound or
  // READY=1 sent; the lock lives as long as this function.
  auto data_dir_lock = DataDirLock::Acquire(config.data_dir, /*create_directory=*/true);
  if (!data_dir_lock.ok()) {
    spdlog::critical("cannot start: {}", data_dir_lock.status().message());
    return 2;
  }
  auto stores = OpenStores(config, /*for_daemon=*/true);
  if (!stores.ok()) {
    spdlog::critical("cannot start: {}", stores.status().ToString());
    return 2;
  }
  Stores& s = *stores;
  service::ObjectService service(*s.catalog, *s.keystore, *s.blobs);
  service::ObjectService::StartHashingThreads();  // the soak test checks the thread count stays put
  if (auto r = service.Recover(); !r.ok()) {
    spdlog::critical("start-up recovery failed: {}", r.error().message);
    return 2;
  }
  // Key-usage audit log (docs/AUDIT.md): no key is used unless its record is durable.
  // With the root key the keystore accepted: it is loaded (a passphrase read) once per process.
  auto audit_log = OpenAuditLog(config, s.root_key);
  s.root_key = SecretBytes();  // the keystore and the audit log hold what they need
  if (!audit_log.ok()) {
    spdlog::critical("cannot open the audit log: {}", audit_log.status().ToString());
    return 2;
  }
  if (std::string why = (*audit_log)->integrity_error(); !why.empty()) {
    // Serve what needs no key (and the health endpoints, which say why) rather than nothing.
    spdlog::critical(
        "the audit log failed its integrity check; the daemon is not ready and refuses every key use "
        "(503) until audit.db is restored: {}",
        why);
  }
  service.set_audit(audit_log->get());

  // Declaration order matters: the io_context is destroyed before the gateway, because
  // coroutine frames still queued on it refer to the gateway.
  asio::thread_pool pool(WorkerThreads(config));
  asio::thread_pool commit_pool(config.commit_threads);
  keystore::Keystore& keys = *s.keystore;
  // Key-lifecycle changes made by the daemon itself (dev tenant, rotation policy) are audited too.
  service::KeyLifecycle lifecycle(keys, audit_log->get());
  s3::CredentialLookup lookup = [&keys](std::string_view access_key_id) -> Expected<s3::Credential, s3::Error> {
    auto r = keys.ResolveAccessKey(std::string(access_key_id));
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kNotFound) return s3::Error(s3::ErrorCode::kInvalidAccessKeyId);
      if (r.status().code() == StatusCode::kPermissionDenied) return s3::Error(s3::ErrorCode::kAccessDenied);
      spdlog::error("access key lookup failed: {}", r.status().ToString());
      return s3::Error(s3::ErrorCode::kInternalError);
    }
    return s3::Credential{r->key.tenant_id, std::move(r->secret)};
  };
  ops::Registry metrics;  // before the gateway and the admin handler, which refer to it
  service.set_observer(ServiceMetricsObserver(metrics));
  // Every integrity failure the service audits is also counted (coffre_integrity_failures_total).
  IntegrityMetricsRecorder audit_recorder(**audit_log, metrics);
  service.set_audit(&audit_recorder);
  // Background scrub (scrub_interval_hours; 0: off): its own low-priority thread, stopped on SIGTERM.
  service::Scrubber scrubber(service, *s.catalog, keys, *s.blobs, &audit_recorder);
  BackgroundScrub background_scrub(
      scrubber, metrics, std::chrono::milliseconds(static_cast<int64_t>(config.scrub_interval_hours * 3600.0 * 1000.0)),
      config.scrub_bytes_per_second);
  s3::GatewayOptions gopts;
  gopts.observer = S3MetricsObserver(metrics);
  if (config.access_log) {
    gopts.observer = [record_metrics = std::move(gopts.observer)](const s3::RequestRecord& record) {
      record_metrics(record);
      spdlog::info("{}", AccessLogLine(record));
    };
  }
  gopts.base_domain = config.base_domain;
  gopts.region = config.region;
  gopts.commit_pool = &commit_pool;
  ops::TenantRateLimiter rate_limiter;
  rate_limiter.Configure(config.rate_limits);
  gopts.admit = RateLimitAdmission(rate_limiter, keys, metrics);
  ops::TenantBodyLimiter body_limiter;
  body_limiter.Configure(config.max_bodies_per_tenant);
  gopts.admit_body = BodyLimitAdmission(body_limiter, metrics);
  s3::Gateway gateway(service, lookup, pool, gopts);
  // The authenticated admin and auditor endpoints (docs/OPERATIONS.md, "Admin API"): changes go
  // through `lifecycle`, so they are audited and fail closed as the CLI's do.
  admin::AdminApiOptions api_options;
  api_options.dual_control = DualControlPolicyOf(config);
  api_options.count_key_references = [&service](const std::string& tenant_id) -> Result<std::map<uint32_t, uint64_t>> {
    auto counts = service.CountKeyReferences(tenant_id);
    if (!counts.ok()) {
      return Status::Internal("cannot count the objects under each key version: " + counts.error().message);
    }
    return std::move(counts).value();
  };
  admin::AdminApi admin_api(keys, lifecycle, audit_log->get(), std::move(api_options));
  admin::AdminHandler admin_handler(metrics, pool, ReadinessChecks(config, keys, *s.catalog, audit_log->get()),
                                    &admin_api);
  asio::io_context io(static_cast<int>(config.io_threads));

  // TLS on both listeners; without it, plain HTTP stays on loopback unless explicitly allowed
  // (checked here too because --listen/--admin-listen bypass the file's validation).
  std::shared_ptr<asio::ssl::context> tls;
  if (!config.tls_cert_file.empty()) {
    auto loaded = http::LoadTlsContext(config.tls_cert_file, config.tls_key_file);
    if (!loaded.ok()) {
      spdlog::critical("cannot start: {}", loaded.status().message());
      return 2;
    }
    tls = std::move(loaded).value();
  } else if (!config.allow_plaintext) {
    std::string admin_host = "127.0.0.1";
    uint16_t admin_port = 0;
    if (!config.admin_listen.empty()) {
      (void)ParseListen(config.admin_listen, &admin_host, &admin_port);
    }
    if (!IsLoopbackHost(host) || !IsLoopbackHost(admin_host)) {
      spdlog::critical(
          "plain HTTP on a non-loopback address: set tls_cert_file and tls_key_file, or "
          "allow_plaintext: true");
      return 1;
    }
  }
  const std::string scheme = tls ? "https://" : "http://";

  http::ServerOptions sopts;
  sopts.tls = tls;
  sopts.listen_host = host;
  sopts.listen_port = port;
  sopts.max_connections = config.max_connections;
  sopts.max_header_bytes = config.max_header_bytes;
  sopts.idle_timeout = std::chrono::seconds(config.idle_timeout_seconds);
  sopts.read_timeout = std::chrono::seconds(config.read_timeout_seconds);
  http::Server server(io, gateway, sopts);
  std::string error;
  auto endpoint = server.Start(&error);
  if (!endpoint) {
    spdlog::critical("cannot listen on {}: {}", config.listen, error);
    return 2;
  }
  const std::string bound = endpoint->address().to_string() + ":" + std::to_string(endpoint->port());
  // Both listeners are bound before either is announced: a start that fails half-way prints
  // no address. The admin line comes after the S3 one: tools read the first "listening on".
  std::optional<http::Server> admin_server;
  std::string admin_bound = "disabled";
  if (!config.admin_listen.empty()) {
    http::ServerOptions aopts = sopts;
    if (Status st = ParseListen(config.admin_listen, &aopts.listen_host, &aopts.listen_port); !st.ok()) {
      spdlog::critical("admin_listen: {}", st.message());
      return 1;
    }
    aopts.max_connections = 64;  // scrapers and probes, not clients
    admin_server.emplace(io, admin_handler, aopts);
    auto admin_endpoint = admin_server->Start(&error);
    if (!admin_endpoint) {
      spdlog::critical("cannot listen on {} (admin_listen): {}", config.admin_listen, error);
      return 2;
    }
    admin_bound = admin_endpoint->address().to_string() + ":" + std::to_string(admin_endpoint->port());
  }
  // The signal handlers are installed before the address is announced: a client (a test, a
  // supervisor) that reads "listening on" and at once sends SIGTERM gets a clean stop, not a
  // kill by the default action. A signal that comes before the loop runs waits for it.
  auto signal_strand = asio::make_strand(io);
  asio::signal_set hangup(signal_strand, SIGHUP);
  asio::signal_set signals(signal_strand, SIGINT, SIGTERM);
  std::cout << "listening on " << bound << std::endl;
  spdlog::info("coffre listening on {} (data in {})", bound, config.data_dir);
  spdlog::info("threads: {} network, {} workers, {} commit", config.io_threads, WorkerThreads(config),
               config.commit_threads);
  if (const uint64_t packed = s.blobs->MaxPackedBlob(); packed > 0) {
    spdlog::info("blobs up to {} bytes go to pack records (packs/), larger ones to files (blobs/)", packed);
  } else if (config.packed_blob_max_bytes > 0) {
    spdlog::warn(
        "the data directory's file system cannot punch holes: every blob gets a file, whatever "
        "packed_blob_max_bytes says (a removed pack record's space could not be given back)");
  } else {
    spdlog::info("every blob gets a file (packed_blob_max_bytes is 0)");
  }
  if (admin_server) {
    std::cout << "admin listening on " << admin_bound << std::endl;
    spdlog::info("admin API listening on {}", admin_bound);
  }
  RegisterProcessMetrics(metrics, config, server, admin_server ? &*admin_server : nullptr);
  RegisterAuditMetrics(metrics, **audit_log);
  if (config.create_dev_tenant) {
    if (Status st = EnsureDevTenant(keys, lifecycle, config, scheme + bound); !st.ok()) {
      spdlog::critical("cannot create the development tenant: {}", st.ToString());
      return 2;
    }
  }

  // Unreachable blobs are removed in the background, after their grace period.
  asio::steady_timer gc_timer(io);
  std::function<void()> schedule_gc = [&] {
    gc_timer.expires_after(std::chrono::seconds(10));
    gc_timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      asio::post(pool, [&] {
        if (auto r = service.CollectGarbage(); !r.ok()) spdlog::warn("garbage collection: {}", r.error().message);
      });
      schedule_gc();
    });
  };
  schedule_gc();
  background_scrub.Start();

  // Key rotation policy (rotate_after_days): checked at start, then every hour (docs/KEYS.md).
  asio::steady_timer rotation_timer(io);
  std::function<void()> check_rotation = [&] {
    if (config.rotate_after_days == 0) return;
    asio::post(pool, [&] {
      const int64_t max_age_ms = int64_t{config.rotate_after_days} * 24 * 3600 * 1000;
      audit::RequestInfo request;
      request.action = "policy";
      // Each rotation is recorded first; an unwritable audit log rotates nothing (retried hourly).
      auto rotated = lifecycle.RotateKeysOlderThan(max_age_ms, request);
      if (!rotated.ok()) {
        spdlog::error("key rotation policy: {}", rotated.status().ToString());
        return;
      }
      for (const auto& [tenant_id, version] : *rotated) {
        spdlog::info(
            "key rotation policy: tenant {} has a new active key version {} (the previous one was older "
            "than {} days)",
            tenant_id, version, config.rotate_after_days);
      }
    });
    rotation_timer.expires_after(std::chrono::hours(1));
    rotation_timer.async_wait([&](boost::system::error_code ec) {
      if (!ec) check_rotation();
    });
  };
  check_rotation();

  // systemd (Type=notify): ready once the keystore is unlocked and both listeners are bound.
  ops::Notifier notifier = ops::Notifier::FromEnvironment();
  if (Status st = notifier.Ready("serving S3 on " + bound + ", admin on " + admin_bound); !st.ok()) {
    spdlog::warn("systemd notification failed: {}", st.ToString());
  }
  // WATCHDOG=1 from the io_context itself: a wedged event loop stops the pings.
  asio::steady_timer watchdog_timer(io);
  std::function<void()> schedule_watchdog = [&] {
    const auto interval = notifier.watchdog_ping_interval();
    if (!interval) return;
    watchdog_timer.expires_after(*interval);
    watchdog_timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      if (Status st = notifier.Watchdog(); !st.ok()) spdlog::warn("systemd watchdog: {}", st.ToString());
      schedule_watchdog();
    });
  };
  schedule_watchdog();

  // SIGHUP: reload what can change in place; an invalid file changes nothing.
  Config running = config;
  // The signal handlers and the drain deadline share one strand: with several io threads, a
  // reload and a stop must not touch `running` at the same time.
  std::function<void()> wait_hangup = [&] {
    hangup.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      (void)notifier.Reloading();
      ReloadConfig(reload, running, server, admin_server ? &*admin_server : nullptr, rate_limiter, body_limiter);
      (void)notifier.Ready("serving S3 on " + bound + ", admin on " + admin_bound);
      wait_hangup();
    });
  };
  wait_hangup();

  asio::steady_timer drain_deadline(signal_strand);
  asio::steady_timer drain_poll(io);
  // Once no connection is left, stop at once rather than wait for the deadline.
  std::function<void()> poll_drained = [&] {
    if (server.open_connections() == 0 && (!admin_server || admin_server->open_connections() == 0)) {
      io.stop();
      return;
    }
    drain_poll.expires_after(std::chrono::milliseconds(50));
    drain_poll.async_wait([&](boost::system::error_code ec) {
      if (!ec) poll_drained();
    });
  };
  signals.async_wait([&](boost::system::error_code ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: draining connections (up to {}s)", signo, running.drain_timeout_seconds);
    (void)notifier.Stopping();
    admin_handler.SetDraining();
    server.Stop();
    if (admin_server) admin_server->Stop();
    gc_timer.cancel();
    rotation_timer.cancel();
    background_scrub.RequestStop();
    watchdog_timer.cancel();
    hangup.cancel();
    drain_deadline.expires_after(std::chrono::seconds(running.drain_timeout_seconds));
    drain_deadline.async_wait([&](boost::system::error_code wait_ec) {
      if (wait_ec) return;
      spdlog::warn("drain deadline ({}s) reached: closing {} connection(s) still open", running.drain_timeout_seconds,
                   server.open_connections());
      io.stop();
    });
    poll_drained();
  });

  std::vector<std::thread> threads;
  for (uint32_t i = 1; i < config.io_threads; ++i) threads.emplace_back([&] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  background_scrub.Stop();
  pool.join();
  commit_pool.join();
  // A GET cut off by the drain deadline may still wait for its audit record: its callback posts
  // to `io`, so it must have run before `io` is destroyed.
  (*audit_log)->WaitForQueued();
  spdlog::info("coffre stopped");
  return 0;
}

}  // namespace coffre::server
