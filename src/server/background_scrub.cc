#include "background_scrub.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "log_quote.h"

namespace coffre::server {
namespace {

// Lowers this thread's CPU and I/O priority (Linux: both are per thread), so that foreground
// requests win any contention. Best effort: failing leaves the scrub at normal priority, still
// rate-limited.
void LowerThreadPriority() {
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  if (::setpriority(PRIO_PROCESS, tid, 10) != 0) {
    spdlog::debug("background scrub: could not lower its CPU priority");
  }
#ifdef SYS_ioprio_set
  // IOPRIO_WHO_PROCESS (1), class best-effort (2) at its lowest level (7). Not the idle class:
  // under constant client load it would never finish a pass.
  constexpr int kWhoProcess = 1;
  constexpr int kClassShift = 13;
  constexpr int kBestEffortLowest = (2 << kClassShift) | 7;
  if (::syscall(SYS_ioprio_set, kWhoProcess, static_cast<int>(tid), kBestEffortLowest) != 0) {
    spdlog::debug("background scrub: could not lower its I/O priority");
  }
#endif
}

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

BackgroundScrub::BackgroundScrub(service::Scrubber& scrubber, ops::Registry& registry,
                                 std::chrono::milliseconds interval, uint64_t bytes_per_second)
    : scrubber_(scrubber),
      interval_(interval),
      bytes_per_second_(bytes_per_second),
      objects_(registry.GetCounter("coffre_scrub_objects_total",
                                   "Objects the background scrub verified intact (every tag and length).")),
      bytes_(registry.GetCounter("coffre_scrub_bytes_total", "Plaintext bytes the background scrub authenticated.")),
      passes_(registry.GetCounter("coffre_scrub_passes_total", "Background scrub passes completed.")),
      last_completed_(registry.GetGauge("coffre_scrub_last_pass_completed_timestamp_seconds",
                                        "End of the last completed background scrub pass, in Unix seconds (0: "
                                        "none since start).")) {}

BackgroundScrub::~BackgroundScrub() { Stop(); }

void BackgroundScrub::Start() {
  if (interval_.count() <= 0 || thread_.started()) {
    return;
  }
  spdlog::info("background scrub: every {:.3g} hours, at most {} bytes/s",
               std::chrono::duration<double, std::ratio<3600>>(interval_).count(), bytes_per_second_);
  thread_.Start([this] { Run(); });
}

void BackgroundScrub::RequestStop() { thread_.RequestStop(); }

void BackgroundScrub::Stop() { thread_.Stop(); }

void BackgroundScrub::Run() {
  LowerThreadPriority();
  service::ScrubOptions options;
  options.bytes_per_second = bytes_per_second_;
  options.pause = [this](std::chrono::nanoseconds d) { return thread_.Pause(d); };
  options.on_verified = [this](uint64_t n) {
    objects_.Add();
    bytes_.Add(n);
  };
  options.on_damaged = [](const service::ScrubFinding& f) {
    // Names, never key material: the error messages of the reader and the blob format carry none.
    const bool integrity = f.error.code == service::Errc::kCorruption;
    spdlog::error("background scrub: {} tenant={} bucket={} key={} object_id={}: {}",
                  integrity ? "damaged object" : "could not verify object", f.tenant_id, LogQuoted(f.bucket),
                  LogQuoted(f.key), f.object_id.empty() ? "-" : f.object_id, f.error.message);
  };
  auto wait = std::min<std::chrono::milliseconds>(interval_, std::chrono::hours(1));
  while (thread_.Pause(wait)) {
    const auto started = std::chrono::steady_clock::now();
    spdlog::info("background scrub: pass started");
    auto report = scrubber_.Run(options);
    if (!report.ok()) {
      spdlog::error("background scrub: pass failed: {}", report.status().ToString());
    } else if (report->stopped) {
      spdlog::info("background scrub: stopped mid-pass after {} objects", report->objects);
      break;
    } else {
      passes_.Add();
      last_completed_.Set(UnixSeconds());
      spdlog::info(
          "background scrub: pass done in {:.1f}s: {} objects ({} bytes) verified, {} damaged, {} changed "
          "during the pass, {} under destroyed named keys",
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), report->objects,
          report->bytes, report->damaged.size(), report->skipped, report->erased);
    }
    wait = interval_;
  }
}

}  // namespace coffre::server
