#include "daemon.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <ratio>
#include <thread>
#include <utility>
#include <vector>

#include "audit_store.h"
#include "coffre/http/tls.h"
#include "coffre/keystore/keystore.h"
#include "coffre/ops/log_format.h"

namespace coffre::server {
namespace {

namespace asio = boost::asio;

// The admin listener serves metric scrapers and health probes, not S3 clients: a few connections.
constexpr size_t kAdminMaxConnections = 64;
// How often unreachable blobs are looked for; each is removed only after its grace period.
constexpr auto kGarbageCollectionInterval = std::chrono::seconds(10);
// The rotate_after_days policy is checked at start and then this often: a key version is rotated
// at most this long after it became due.
constexpr auto kRotationPolicyInterval = std::chrono::hours(1);
// While draining, how often the open connections are counted, to stop as soon as none is left.
constexpr auto kDrainPollInterval = std::chrono::milliseconds(50);

void ApplyLogSettings(const Config& config) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_formatter(ops::MakeLogFormatter(config.log_format));
}

std::string AddressOf(const asio::ip::tcp::endpoint& endpoint) {
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

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

// S3 requests are signed with the secret of an access key from the keystore.
s3::CredentialLookup CredentialLookupOf(keystore::Keystore& keys) {
  return [&keys](std::string_view access_key_id) -> Expected<s3::Credential, s3::Error> {
    auto r = keys.ResolveAccessKey(std::string(access_key_id));
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kNotFound) return s3::Error(s3::ErrorCode::kInvalidAccessKeyId);
      if (r.status().code() == StatusCode::kPermissionDenied) return s3::Error(s3::ErrorCode::kAccessDenied);
      spdlog::error("access key lookup failed: {}", r.status().ToString());
      return s3::Error(s3::ErrorCode::kInternalError);
    }
    return s3::Credential{r->key.tenant_id, std::move(r->secret)};
  };
}

// SIGHUP: the settings bound at start (addresses, directories, keys, threads) keep their running
// values in `next`, with a warning naming each one that changed.
void KeepRestartOnlySettings(Config& next, const Config& running) {
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
  keep("sigv2", next.sigv2, running.sigv2);
  keep("io_threads", next.io_threads, running.io_threads);
  keep("worker_threads", next.worker_threads, running.worker_threads);
  keep("commit_threads", next.commit_threads, running.commit_threads);
  keep("min_free_megabytes", next.min_free_megabytes, running.min_free_megabytes);
  keep("allow_plaintext", next.allow_plaintext, running.allow_plaintext);
  keep("access_log", next.access_log, running.access_log);
  keep("scrub_interval_hours", next.scrub_interval_hours, running.scrub_interval_hours);
  keep("scrub_bytes_per_second", next.scrub_bytes_per_second, running.scrub_bytes_per_second);
  keep("lifecycle_interval_seconds", next.lifecycle_interval_seconds, running.lifecycle_interval_seconds);
  keep("lifecycle_actions_per_second", next.lifecycle_actions_per_second, running.lifecycle_actions_per_second);
  keep("packed_blob_max_bytes", next.packed_blob_max_bytes, running.packed_blob_max_bytes);
  if (next.tls_cert_file.empty() != running.tls_cert_file.empty()) {
    spdlog::warn("SIGHUP: turning TLS on or off ('tls_cert_file') changes only at restart; keeping the running value");
    next.tls_cert_file = running.tls_cert_file;
    next.tls_key_file = running.tls_key_file;
  }
}

}  // namespace

Daemon::Daemon(const Config& config, ConfigLoader reload)
    : config_(config), reload_(std::move(reload)), running_(config) {}

Daemon::~Daemon() = default;

int Daemon::Run() {
  spdlog::set_default_logger(spdlog::stderr_color_mt("coffre"));
  ApplyLogSettings(config_);
  // Keys live in this process's memory: keep them out of core dumps and ptrace.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (!CheckConfig() || !OpenStores()) {
    return exit_status_;
  }
  BuildRequestPath();
  if (!Listen()) {
    return exit_status_;
  }
  ScheduleBackgroundWork();
  Serve();
  return ShutDown();
}

bool Daemon::Refuse(int exit_status, const std::string& message) {
  spdlog::critical("{}", message);
  exit_status_ = exit_status;
  return false;
}

bool Daemon::CheckConfig() {
  if (Status st = ParseListen(config_.listen, &host_, &port_); !st.ok()) {
    return Refuse(kExitBadConfig, st.message());
  }
  // Before anything in data_dir is created or opened: a key there would be in every backup.
  if (Status st = CheckRootKeyPlacement(config_); !st.ok()) {
    return Refuse(kExitBadConfig, "cannot start: " + st.message());
  }
  return true;
}

bool Daemon::OpenStores() {
  // One daemon per data directory, decided before any store is opened, listener bound or
  // READY=1 sent.
  auto lock = DataDirLock::Acquire(config_.data_dir, /*create_directory=*/true);
  if (!lock.ok()) {
    return Refuse(kExitCannotStart, "cannot start: " + lock.status().message());
  }
  data_dir_lock_.emplace(std::move(lock).value());
  auto stores = server::OpenStores(config_, /*for_daemon=*/true);
  if (!stores.ok()) {
    return Refuse(kExitCannotStart, "cannot start: " + stores.status().ToString());
  }
  stores_ = std::move(stores).value();
  service_.emplace(*stores_.catalog, *stores_.keystore, *stores_.blobs);
  service::ObjectService::StartHashingThreads();  // the soak test checks the thread count stays put
  if (auto r = service_->Recover(); !r.ok()) {
    return Refuse(kExitCannotStart, "start-up recovery failed: " + r.error().message);
  }
  // Key-usage audit log (docs/AUDIT.md): no key is used unless its record is durable.
  // With the root key the keystore accepted: it is loaded (a passphrase read) once per process.
  auto audit_log = OpenAuditLog(config_, stores_.root_key);
  stores_.root_key = SecretBytes();  // the keystore and the audit log hold what they need
  if (!audit_log.ok()) {
    return Refuse(kExitCannotStart, "cannot open the audit log: " + audit_log.status().ToString());
  }
  audit_log_ = std::move(audit_log).value();
  if (std::string why = audit_log_->integrity_error(); !why.empty()) {
    // Serve what needs no key (and the health endpoints, which say why) rather than nothing.
    spdlog::critical(
        "the audit log failed its integrity check; the daemon is not ready and refuses every key use "
        "(503) until audit.db is restored: {}",
        why);
  }
  service_->set_audit(audit_log_.get());
  return true;
}

void Daemon::BuildRequestPath() {
  pool_.emplace(WorkerThreads(config_));
  commit_pool_.emplace(config_.commit_threads);
  keystore::Keystore& keys = *stores_.keystore;
  // Key-lifecycle changes made by the daemon itself (dev tenant, rotation policy) are audited too.
  lifecycle_.emplace(keys, audit_log_.get());
  service_->set_observer(ServiceMetricsObserver(metrics_));
  // Every integrity failure the service audits is also counted (coffre_integrity_failures_total).
  audit_recorder_.emplace(*audit_log_, metrics_);
  service_->set_audit(&*audit_recorder_);
  // Background scrub (scrub_interval_hours; 0: off): its own low-priority thread, stopped on SIGTERM.
  scrubber_.emplace(*service_, *stores_.catalog, keys, *stores_.blobs, &*audit_recorder_);
  const std::chrono::duration<double, std::ratio<3600>> scrub_interval(config_.scrub_interval_hours);
  background_scrub_.emplace(*scrubber_, metrics_, std::chrono::duration_cast<std::chrono::milliseconds>(scrub_interval),
                            config_.scrub_bytes_per_second);
  // Bucket lifecycle rules (lifecycle_interval_seconds; 0: off): a thread of its own, stopped on
  // SIGTERM, whose deletions go through the service as a client's do.
  lifecycle_runner_.emplace(*service_, *stores_.catalog, Clock::System());
  background_lifecycle_.emplace(*lifecycle_runner_, metrics_, std::chrono::seconds(config_.lifecycle_interval_seconds),
                                config_.lifecycle_actions_per_second);
  gateway_.emplace(*service_, CredentialLookupOf(keys), *pool_, MakeGatewayOptions());
  // The authenticated admin and auditor endpoints (docs/OPERATIONS.md, "Admin API"): changes go
  // through the lifecycle, so they are audited and fail closed as the CLI's do.
  admin_api_.emplace(keys, *lifecycle_, audit_log_.get(), MakeAdminApiOptions());
  admin_handler_.emplace(metrics_, *pool_,
                         ReadinessChecks(config_, keys, *stores_.catalog, audit_log_.get(), stores_.upstream),
                         &*admin_api_);
  io_.emplace(static_cast<int>(config_.io_threads));
}

s3::GatewayOptions Daemon::MakeGatewayOptions() {
  s3::GatewayOptions options;
  options.observer = S3MetricsObserver(metrics_);
  if (config_.access_log) {
    options.observer = [record_metrics = std::move(options.observer)](const s3::RequestRecord& record) {
      record_metrics(record);
      spdlog::info("{}", AccessLogLine(record));
    };
  }
  options.base_domain = config_.base_domain;
  options.region = config_.region;
  options.auth.sigv2 = config_.sigv2;
  options.commit_pool = &*commit_pool_;
  rate_limiter_.Configure(config_.rate_limits);
  options.admit = RateLimitAdmission(rate_limiter_, *stores_.keystore, metrics_);
  body_limiter_.Configure(config_.max_bodies_per_tenant);
  options.admit_body = BodyLimitAdmission(body_limiter_, metrics_);
  return options;
}

admin::AdminApiOptions Daemon::MakeAdminApiOptions() {
  admin::AdminApiOptions options;
  options.dual_control = DualControlPolicyOf(config_);
  options.count_key_references = [this](const std::string& tenant_id) -> Result<std::map<uint32_t, uint64_t>> {
    auto counts = service_->CountKeyReferences(tenant_id);
    if (!counts.ok()) {
      return Status::Internal("cannot count the objects under each key version: " + counts.error().message);
    }
    return std::move(counts).value();
  };
  return options;
}

http::ServerOptions Daemon::ListenerOptions(const Config& config, bool admin) const {
  http::ServerOptions options;
  options.max_connections = admin ? kAdminMaxConnections : config.max_connections;
  options.max_header_bytes = config.max_header_bytes;
  options.idle_timeout = std::chrono::seconds(config.idle_timeout_seconds);
  options.read_timeout = std::chrono::seconds(config.read_timeout_seconds);
  options.tls = tls_;
  return options;
}

bool Daemon::Listen() {
  if (!LoadTls() || !StartListeners()) {
    return false;
  }
  InstallSignalHandlers();
  Announce();
  RegisterProcessMetrics(metrics_, config_, *server_, admin_server());
  RegisterAuditMetrics(metrics_, *audit_log_);
  if (stores_.upstream != nullptr) RegisterUpstreamMetrics(metrics_, *stores_.upstream);
  if (config_.create_dev_tenant) {
    const std::string scheme = tls_ ? "https://" : "http://";
    if (Status st = EnsureDevTenant(*stores_.keystore, *lifecycle_, config_, scheme + bound_); !st.ok()) {
      return Refuse(kExitCannotStart, "cannot create the development tenant: " + st.ToString());
    }
  }
  return true;
}

// TLS on both listeners; without it, plain HTTP stays on loopback unless explicitly allowed
// (checked here too because --listen/--admin-listen bypass the file's validation).
bool Daemon::LoadTls() {
  if (!config_.tls_cert_file.empty()) {
    auto loaded = http::LoadTlsContext(config_.tls_cert_file, config_.tls_key_file);
    if (!loaded.ok()) {
      return Refuse(kExitCannotStart, "cannot start: " + loaded.status().message());
    }
    tls_ = std::move(loaded).value();
    return true;
  }
  if (config_.allow_plaintext) {
    return true;
  }
  std::string admin_host = "127.0.0.1";
  uint16_t admin_port = 0;
  if (!config_.admin_listen.empty()) {
    (void)ParseListen(config_.admin_listen, &admin_host, &admin_port);
  }
  if (!IsLoopbackHost(host_) || !IsLoopbackHost(admin_host)) {
    return Refuse(kExitBadConfig,
                  "plain HTTP on a non-loopback address: set tls_cert_file and tls_key_file, or allow_plaintext: true");
  }
  return true;
}

// Both listeners are bound before either is announced: a start that fails half-way prints no
// address.
bool Daemon::StartListeners() {
  http::ServerOptions options = ListenerOptions(config_, /*admin=*/false);
  options.listen_host = host_;
  options.listen_port = port_;
  server_.emplace(*io_, *gateway_, options);
  auto endpoint = server_->Start();
  if (!endpoint.ok()) {
    return Refuse(kExitCannotStart, "cannot listen on " + config_.listen + ": " + endpoint.status().message());
  }
  bound_ = AddressOf(*endpoint);
  if (config_.admin_listen.empty()) {
    return true;
  }
  http::ServerOptions admin_options = ListenerOptions(config_, /*admin=*/true);
  if (Status st = ParseListen(config_.admin_listen, &admin_options.listen_host, &admin_options.listen_port); !st.ok()) {
    return Refuse(kExitBadConfig, "admin_listen: " + st.message());
  }
  admin_server_.emplace(*io_, *admin_handler_, admin_options);
  auto admin_endpoint = admin_server_->Start();
  if (!admin_endpoint.ok()) {
    return Refuse(kExitCannotStart,
                  "cannot listen on " + config_.admin_listen + " (admin_listen): " + admin_endpoint.status().message());
  }
  admin_bound_ = AddressOf(*admin_endpoint);
  return true;
}

// Installed before the address is announced: a client (a test, a supervisor) that reads
// "listening on" and at once sends SIGTERM gets a clean stop, not a kill by the default action.
// A signal that comes before the loop runs waits for it.
void Daemon::InstallSignalHandlers() {
  signal_strand_.emplace(asio::make_strand(*io_));
  hangup_.emplace(*signal_strand_, SIGHUP);
  stop_signals_.emplace(*signal_strand_, SIGINT, SIGTERM);
}

// The admin line comes after the S3 one: tools read the first "listening on".
void Daemon::Announce() {
  std::cout << "listening on " << bound_ << std::endl;
  spdlog::info("coffre listening on {} (data in {})", bound_, config_.data_dir);
  spdlog::info("threads: {} network, {} workers, {} commit", config_.io_threads, WorkerThreads(config_),
               config_.commit_threads);
  if (config_.storage.backend == "s3") {
    spdlog::info("blobs go to the upstream bucket \"{}\" at {} under the prefix \"{}\"", config_.storage.bucket,
                 config_.storage.endpoint, config_.storage.prefix);
  } else if (const uint64_t packed = stores_.blobs->MaxPackedBlob(); packed > 0) {
    spdlog::info("blobs up to {} bytes go to pack records (packs/), larger ones to files (blobs/)", packed);
  } else if (config_.packed_blob_max_bytes > 0) {
    spdlog::warn(
        "the data directory's file system cannot punch holes: every blob gets a file, whatever "
        "packed_blob_max_bytes says (a removed pack record's space could not be given back)");
  } else {
    spdlog::info("every blob gets a file (packed_blob_max_bytes is 0)");
  }
  if (admin_server_) {
    std::cout << "admin listening on " << admin_bound_ << std::endl;
    spdlog::info("admin API listening on {}", admin_bound_);
  }
}

void Daemon::ScheduleBackgroundWork() {
  gc_timer_.emplace(*io_);
  ScheduleGarbageCollection();
  background_scrub_->Start();
  background_lifecycle_->Start();
  rotation_timer_.emplace(*io_);
  CheckRotationPolicy();
}

// Unreachable blobs are removed in the background, after their grace period.
void Daemon::ScheduleGarbageCollection() {
  gc_timer_->expires_after(kGarbageCollectionInterval);
  gc_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    asio::post(*pool_, [this] {
      if (auto r = service_->CollectGarbage(); !r.ok()) spdlog::warn("garbage collection: {}", r.error().message);
    });
    ScheduleGarbageCollection();
  });
}

// Key rotation policy (rotate_after_days; docs/KEYS.md).
void Daemon::CheckRotationPolicy() {
  if (config_.rotate_after_days == 0) return;
  asio::post(*pool_, [this] {
    const auto max_age =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::days(config_.rotate_after_days));
    audit::RequestInfo request;
    request.action = "policy";
    // Each rotation is recorded first; an unwritable audit log rotates nothing (retried later).
    auto rotated = lifecycle_->RotateKeysOlderThan(max_age.count(), request);
    if (!rotated.ok()) {
      spdlog::error("key rotation policy: {}", rotated.status().ToString());
      return;
    }
    for (const auto& [key, version] : *rotated) {
      spdlog::info(
          "key rotation policy: tenant {}{} has a new active key version {} (the previous one was older "
          "than {} days)",
          key.tenant_id, key.named() ? ", key " + key.key_id + "," : "", version, config_.rotate_after_days);
    }
  });
  rotation_timer_->expires_after(kRotationPolicyInterval);
  rotation_timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec) CheckRotationPolicy();
  });
}

std::string Daemon::ReadyStatus() const { return "serving S3 on " + bound_ + ", admin on " + admin_bound_; }

void Daemon::Serve() {
  // systemd (Type=notify): ready once the keystore is unlocked and both listeners are bound.
  notifier_.emplace(ops::Notifier::FromEnvironment());
  if (Status st = notifier_->Ready(ReadyStatus()); !st.ok()) {
    spdlog::warn("systemd notification failed: {}", st.ToString());
  }
  watchdog_timer_.emplace(*io_);
  ScheduleWatchdog();
  WaitForHangup();
  drain_deadline_.emplace(*signal_strand_);
  drain_poll_.emplace(*io_);
  WaitForStop();

  std::vector<std::thread> threads;
  for (uint32_t i = 1; i < config_.io_threads; ++i) threads.emplace_back([this] { io_->run(); });
  io_->run();
  for (auto& t : threads) t.join();
}

// WATCHDOG=1 from the io_context itself: a wedged event loop stops the pings.
void Daemon::ScheduleWatchdog() {
  const auto interval = notifier_->watchdog_ping_interval();
  if (!interval) return;
  watchdog_timer_->expires_after(*interval);
  watchdog_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    if (Status st = notifier_->Watchdog(); !st.ok()) spdlog::warn("systemd watchdog: {}", st.ToString());
    ScheduleWatchdog();
  });
}

// SIGHUP: reload what can change in place; an invalid file changes nothing.
void Daemon::WaitForHangup() {
  hangup_->async_wait([this](boost::system::error_code ec, int) {
    if (ec) return;
    (void)notifier_->Reloading();
    Reload();
    (void)notifier_->Ready(ReadyStatus());
    WaitForHangup();
  });
}

void Daemon::Reload() {
  if (!reload_) {
    spdlog::warn("SIGHUP: no configuration to reload");
    return;
  }
  auto loaded = reload_();
  if (!loaded.ok()) {
    spdlog::error("SIGHUP: configuration rejected, the running one stays: {}", loaded.status().message());
    return;
  }
  Config next = std::move(loaded).value();
  KeepRestartOnlySettings(next, running_);
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
  running_ = next;
  tls_ = tls;
  ApplyLogSettings(running_);
  rate_limiter_.Configure(running_.rate_limits);
  body_limiter_.Configure(running_.max_bodies_per_tenant);
  server_->UpdateLimits(ListenerOptions(running_, /*admin=*/false));
  if (admin_server_) {
    admin_server_->UpdateLimits(ListenerOptions(running_, /*admin=*/true));
  }
  spdlog::info(
      "SIGHUP: configuration reloaded (log_level={}, max_connections={}, max_header_bytes={}, "
      "idle_timeout_seconds={}, read_timeout_seconds={}, drain_timeout_seconds={}, tls={})",
      running_.log_level, running_.max_connections, running_.max_header_bytes, running_.idle_timeout_seconds,
      running_.read_timeout_seconds, running_.drain_timeout_seconds, tls ? "certificate reloaded" : "off");
  const ops::RateLimit& default_limit = running_.rate_limits.default_limit;
  spdlog::info("SIGHUP: log_format={}, max_bodies_per_tenant={}, rate_limits: default {}, {} tenant override(s)",
               running_.log_format, running_.max_bodies_per_tenant,
               default_limit.unlimited()
                   ? std::string("unlimited")
                   : fmt::format("{} requests/s (burst {})", default_limit.requests_per_second, default_limit.burst),
               running_.rate_limits.tenants.size());
}

void Daemon::WaitForStop() {
  stop_signals_->async_wait([this](boost::system::error_code ec, int signo) {
    if (!ec) Drain(signo);
  });
}

// SIGTERM/SIGINT: stop accepting and the background work, then stop the loop once the open
// connections are done or the drain deadline has passed.
void Daemon::Drain(int signo) {
  spdlog::info("signal {}: draining connections (up to {}s)", signo, running_.drain_timeout_seconds);
  (void)notifier_->Stopping();
  admin_handler_->SetDraining();
  server_->Stop();
  if (admin_server_) admin_server_->Stop();
  gc_timer_->cancel();
  rotation_timer_->cancel();
  background_scrub_->RequestStop();
  background_lifecycle_->RequestStop();
  watchdog_timer_->cancel();
  hangup_->cancel();
  drain_deadline_->expires_after(std::chrono::seconds(running_.drain_timeout_seconds));
  drain_deadline_->async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    spdlog::warn("drain deadline ({}s) reached: closing {} connection(s) still open", running_.drain_timeout_seconds,
                 server_->open_connections());
    io_->stop();
  });
  PollDrained();
}

// Once no connection is left, stop at once rather than wait for the deadline.
void Daemon::PollDrained() {
  if (server_->open_connections() == 0 && (!admin_server_ || admin_server_->open_connections() == 0)) {
    io_->stop();
    return;
  }
  drain_poll_->expires_after(kDrainPollInterval);
  drain_poll_->async_wait([this](boost::system::error_code ec) {
    if (!ec) PollDrained();
  });
}

int Daemon::ShutDown() {
  background_scrub_->Stop();
  background_lifecycle_->Stop();
  pool_->join();
  commit_pool_->join();
  // A GET cut off by the drain deadline may still wait for its audit record: its callback posts
  // to the io_context, so it must have run before that is destroyed.
  audit_log_->WaitForQueued();
  spdlog::info("coffre stopped");
  return kExitStopped;
}

}  // namespace coffre::server
