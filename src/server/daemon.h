#pragma once

// The gateway process (`coffre serve`): its steps in order are opening the stores, building the
// request path, listening, scheduling the background work, serving, and on SIGTERM/SIGINT
// draining and shutting down.

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "background_lifecycle.h"
#include "background_scrub.h"
#include "coffre/admin/admin_api.h"
#include "coffre/admin/admin_handler.h"
#include "coffre/audit/audit_log.h"
#include "coffre/http/server.h"
#include "coffre/ops/metrics.h"
#include "coffre/ops/rate_limiter.h"
#include "coffre/ops/systemd.h"
#include "coffre/s3/gateway.h"
#include "coffre/server/config.h"
#include "coffre/service/key_lifecycle.h"
#include "coffre/service/object_service.h"
#include "coffre/service/scrub.h"
#include "data_dir_lock.h"
#include "operations.h"
#include "stores.h"

namespace coffre::server {

// Reads the configuration again (the file and the command line's overrides), for SIGHUP.
using ConfigLoader = std::function<Result<Config>()>;

// Runs the gateway until SIGTERM/SIGINT. On SIGHUP, calls `reload` (when set) and applies what can
// change in place (log level and format, limits, tenants' rate limits, timeouts, drain deadline);
// an invalid configuration is logged and changes nothing. Refuses to start (exit 2) while another
// process holds the data directory's lock (data_dir_lock.h).
class Daemon {
 public:
  // Exit statuses of Run().
  static constexpr int kExitStopped = 0;      // stopped by a signal, after draining
  static constexpr int kExitBadConfig = 1;    // the configuration cannot work: fix it
  static constexpr int kExitCannotStart = 2;  // the stores, the listeners or the key material refused

  Daemon(const Config& config, ConfigLoader reload = {});
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon();

  // Starts, serves until SIGTERM/SIGINT, drains and stops. Returns the process exit status; a
  // failed start logs why.
  int Run();

 private:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  // The start-up steps, in order. Each returns false once it has logged why the daemon cannot
  // start, with exit_status_ set.
  bool CheckConfig();
  bool OpenStores();
  void BuildRequestPath();
  bool Listen();
  bool LoadTls();
  bool StartListeners();
  void InstallSignalHandlers();
  void Announce();
  void ScheduleBackgroundWork();
  // Ready for systemd, then the event loop until a stop: returns once it has drained.
  void Serve();
  int ShutDown();

  // The repeating jobs on the event loop.
  void ScheduleGarbageCollection();
  void CheckRotationPolicy();
  void ScheduleWatchdog();
  void WaitForHangup();
  void WaitForStop();
  void Drain(int signo);
  void PollDrained();
  // SIGHUP. Settings bound at start (addresses, directories, keys, threads) keep their running
  // values, with a warning naming each one that changed.
  void Reload();

  // Logs `message` as critical and records the exit status; returns false, for the steps.
  bool Refuse(int exit_status, const std::string& message);
  s3::GatewayOptions MakeGatewayOptions();
  admin::AdminApiOptions MakeAdminApiOptions();
  // The limits and timeouts of `config`, and the TLS context, for one of the two listeners.
  http::ServerOptions ListenerOptions(const Config& config, bool admin) const;
  std::string ReadyStatus() const;
  http::Server* admin_server() { return admin_server_ ? &*admin_server_ : nullptr; }

  const Config config_;  // as started
  const ConfigLoader reload_;
  Config running_;  // as last reloaded (SIGHUP); touched on the signal strand only
  int exit_status_ = kExitStopped;
  std::string host_;
  uint16_t port_ = 0;
  std::shared_ptr<boost::asio::ssl::context> tls_;  // null: plain HTTP
  std::string bound_;                               // the S3 listener's address
  std::string admin_bound_ = "disabled";            // the admin listener's address

  // Before everything that refers to it: the service, the gateway, the admin handler.
  ops::Registry metrics_;
  ops::TenantRateLimiter rate_limiter_;
  ops::TenantBodyLimiter body_limiter_;
  // The lock lives as long as the daemon: one daemon per data directory.
  std::optional<DataDirLock> data_dir_lock_;
  Stores stores_;
  std::optional<service::ObjectService> service_;
  std::unique_ptr<audit::AuditLog> audit_log_;
  std::optional<boost::asio::thread_pool> pool_;
  std::optional<boost::asio::thread_pool> commit_pool_;
  std::optional<service::KeyLifecycle> lifecycle_;
  std::optional<IntegrityMetricsRecorder> audit_recorder_;
  std::optional<service::Scrubber> scrubber_;
  std::optional<BackgroundScrub> background_scrub_;
  std::optional<service::LifecycleRunner> lifecycle_runner_;
  std::optional<BackgroundLifecycle> background_lifecycle_;
  std::optional<s3::Gateway> gateway_;
  std::optional<admin::AdminApi> admin_api_;
  std::optional<admin::AdminHandler> admin_handler_;
  // Declared after the gateway and the admin handler, so destroyed before them: coroutine frames
  // still queued on it refer to them.
  std::optional<boost::asio::io_context> io_;
  std::optional<http::Server> server_;
  std::optional<http::Server> admin_server_;
  // The signal handlers and the drain deadline share one strand: with several io threads, a
  // reload and a stop must not touch `running_` at the same time.
  std::optional<Strand> signal_strand_;
  std::optional<boost::asio::signal_set> hangup_;
  std::optional<boost::asio::signal_set> stop_signals_;
  std::optional<boost::asio::steady_timer> gc_timer_;
  std::optional<boost::asio::steady_timer> rotation_timer_;
  std::optional<ops::Notifier> notifier_;
  std::optional<boost::asio::steady_timer> watchdog_timer_;
  std::optional<boost::asio::steady_timer> drain_deadline_;
  std::optional<boost::asio::steady_timer> drain_poll_;
};

}  // namespace coffre::server
