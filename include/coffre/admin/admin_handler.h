#pragma once

// The admin API, served on its own listener (default 127.0.0.1:9001) by an http::Server:
//
//   GET /health/live   200 while the process serves HTTP at all.
//   GET /health/ready  200 when every readiness check passes, else 503 naming the failures;
//                      503 "draining" once shutdown has begun, so load balancers move away.
//   GET /metrics       the metrics registry in the Prometheus text format.
//   /tenants..., /audit...  the authenticated admin and auditor endpoints (admin_api.h), when an
//                      AdminApi is given; their request bodies are read here, up to
//                      AdminApi::kMaxBodyBytes (larger ones get 413 unread).
//
// The handler knows nothing of the stores: the composition root (server) hands it named checks.
// Checks and rendering run on the worker pool, never on a network thread. The answers carry no
// secrets: check messages are Status messages, which never hold key material.

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <string>
#include <vector>

#include "coffre/admin/admin_api.h"
#include "coffre/common/status.h"
#include "coffre/http/server.h"
#include "coffre/ops/metrics.h"

namespace coffre::admin {

struct ReadinessCheck {
  std::string name;             // "keystore", "catalog", "data_dir", …
  std::function<Status()> run;  // blocking; thread-safe
};

class AdminHandler final : public http::Handler {
 public:
  // `metrics`, `pool` and `api` (when not null) must outlive the handler. Without `api` the
  // listener serves health and metrics only.
  AdminHandler(ops::Registry& metrics, boost::asio::thread_pool& pool, std::vector<ReadinessCheck> checks,
               AdminApi* api = nullptr);

  boost::asio::awaitable<void> Handle(http::Exchange& exchange) override;

  // From now on /health/ready answers 503 (shutdown has begun). Thread-safe.
  void SetDraining() { draining_.store(true, std::memory_order_relaxed); }

 private:
  ops::Registry& metrics_;
  boost::asio::thread_pool& pool_;
  const std::vector<ReadinessCheck> checks_;
  std::atomic<bool> draining_{false};
  AdminApi* const api_;

  boost::asio::awaitable<void> HandleApi(http::Exchange& exchange);
};

}  // namespace coffre::admin
