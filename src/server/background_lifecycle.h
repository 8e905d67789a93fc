#pragma once

// The daemon's lifecycle pass (docs/OPERATIONS.md, "Lifecycle"): a thread of its own that runs
// service::LifecycleRunner every lifecycle_interval_seconds, its deletions rate-limited to
// lifecycle_actions_per_second. A pass stopped by shutdown resumes where it was at the next one
// (each bucket keeps its place in its settings). Metrics: coffre_lifecycle_passes_total,
// coffre_lifecycle_actions_total{action}, coffre_lifecycle_protected_total,
// coffre_lifecycle_errors_total.

#include <chrono>
#include <cstdint>

#include "background_thread.h"
#include "coffre/ops/metrics.h"
#include "coffre/service/lifecycle.h"

namespace coffre::server {

class BackgroundLifecycle {
 public:
  // interval zero: Start() does nothing. `runner` and `registry` must outlive this object.
  BackgroundLifecycle(service::LifecycleRunner& runner, ops::Registry& registry, std::chrono::milliseconds interval,
                      uint64_t actions_per_second);
  ~BackgroundLifecycle();  // Stop()
  BackgroundLifecycle(const BackgroundLifecycle&) = delete;
  BackgroundLifecycle& operator=(const BackgroundLifecycle&) = delete;

  // The first pass one interval after Start() (at most a minute after it, so that a daemon
  // restarted often still applies its rules), the next one interval after the previous ended.
  void Start();
  // Asks the thread to stop (before its next action) without waiting; safe from any thread.
  void RequestStop();
  // RequestStop(), then waits for the thread.
  void Stop();

 private:
  void Run();

  service::LifecycleRunner& runner_;
  const std::chrono::milliseconds interval_;
  const uint64_t actions_per_second_;
  ops::Counter& passes_;
  ops::Counter& expired_;
  ops::Counter& noncurrent_;
  ops::Counter& delete_markers_;
  ops::Counter& uploads_;
  ops::Counter& protected_;
  ops::Counter& errors_;
  BackgroundThread thread_;  // last: stopped before the members its body uses go
};

}  // namespace coffre::server
