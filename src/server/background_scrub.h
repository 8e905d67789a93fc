#pragma once

// The daemon's background scrub (docs/OPERATIONS.md, "Background scrub"): a thread of its own
// that runs service::Scrubber every scrub_interval_hours, rate-limited, one object at a time,
// at low CPU and I/O priority. Each damaged object gets an error log line naming tenant, bucket,
// key and object id; its audit record and the coffre_integrity_failures_total{source="scrub"}
// count come from the scrubber's reads through the service's recorder
// (IntegrityMetricsRecorder). Progress metrics: coffre_scrub_objects_total,
// coffre_scrub_bytes_total, coffre_scrub_passes_total,
// coffre_scrub_last_pass_completed_timestamp_seconds.

#include <chrono>
#include <cstdint>

#include "background_thread.h"
#include "coffre/ops/metrics.h"
#include "coffre/service/scrub.h"

namespace coffre::server {

class BackgroundScrub {
 public:
  // interval zero: Start() does nothing. `scrubber` and `registry` must outlive this object.
  BackgroundScrub(service::Scrubber& scrubber, ops::Registry& registry, std::chrono::milliseconds interval,
                  uint64_t bytes_per_second);
  ~BackgroundScrub();  // Stop()
  BackgroundScrub(const BackgroundScrub&) = delete;
  BackgroundScrub& operator=(const BackgroundScrub&) = delete;

  // The first pass starts one interval after Start(), but no later than an hour after it, so a
  // daemon restarted more often than the interval still scrubs; the next pass one interval
  // after the previous one ended.
  void Start();
  // Asks the thread to stop (within one read of at most 1 MiB) without waiting. Safe from any
  // thread, e.g. a signal handler's strand.
  void RequestStop();
  // RequestStop(), then waits for the thread.
  void Stop();

 private:
  void Run();

  service::Scrubber& scrubber_;
  const std::chrono::milliseconds interval_;
  const uint64_t bytes_per_second_;
  ops::Counter& objects_;
  ops::Counter& bytes_;
  ops::Counter& passes_;
  ops::Gauge& last_completed_;
  BackgroundThread thread_;  // last: stopped before the members its body uses go
};

}  // namespace coffre::server
