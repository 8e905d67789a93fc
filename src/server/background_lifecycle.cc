#include "background_lifecycle.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "log_quote.h"

namespace coffre::server {
namespace {

constexpr const char* kActionsName = "coffre_lifecycle_actions_total";
constexpr const char* kActionsHelp = "What the lifecycle passes did, by action.";

}  // namespace

BackgroundLifecycle::BackgroundLifecycle(service::LifecycleRunner& runner, ops::Registry& registry,
                                         std::chrono::milliseconds interval, uint64_t actions_per_second)
    : runner_(runner),
      interval_(interval),
      actions_per_second_(actions_per_second),
      passes_(registry.GetCounter("coffre_lifecycle_passes_total", "Lifecycle passes completed.")),
      expired_(registry.GetCounter(kActionsName, kActionsHelp, {{"action", "expire"}})),
      noncurrent_(registry.GetCounter(kActionsName, kActionsHelp, {{"action", "noncurrent"}})),
      delete_markers_(registry.GetCounter(kActionsName, kActionsHelp, {{"action", "delete_marker"}})),
      uploads_(registry.GetCounter(kActionsName, kActionsHelp, {{"action", "abort_upload"}})),
      protected_(registry.GetCounter("coffre_lifecycle_protected_total",
                                     "Versions a lifecycle rule would have removed that Object Lock kept.")),
      errors_(registry.GetCounter("coffre_lifecycle_errors_total", "Lifecycle actions that failed.")) {}

BackgroundLifecycle::~BackgroundLifecycle() { Stop(); }

void BackgroundLifecycle::Start() {
  if (interval_.count() <= 0 || thread_.started()) return;
  spdlog::info("lifecycle: a pass every {} s, at most {} actions/s", interval_.count() / 1000.0, actions_per_second_);
  thread_.Start([this] { Run(); });
}

void BackgroundLifecycle::RequestStop() { thread_.RequestStop(); }

void BackgroundLifecycle::Stop() { thread_.Stop(); }

void BackgroundLifecycle::Run() {
  const std::chrono::nanoseconds gap(
      actions_per_second_ == 0 ? 0 : 1'000'000'000 / static_cast<int64_t>(actions_per_second_));
  service::LifecycleHooks hooks;
  hooks.before_action = [this, gap] { return thread_.Pause(gap); };
  hooks.on_error = [](const std::string& bucket, const std::string& key, const std::string& what) {
    spdlog::error("lifecycle: bucket={} key={}: {}", LogQuoted(bucket), LogQuoted(key), what);
  };
  auto wait = std::min<std::chrono::milliseconds>(interval_, std::chrono::minutes(1));
  while (thread_.Pause(wait)) {
    auto stats = runner_.RunPass(hooks);
    if (!stats.ok()) {
      spdlog::error("lifecycle: pass failed: {}", stats.error().message);
      errors_.Add();
    } else {
      expired_.Add(stats->expired);
      noncurrent_.Add(stats->noncurrent_removed);
      delete_markers_.Add(stats->delete_markers_removed);
      uploads_.Add(stats->uploads_aborted);
      protected_.Add(stats->protected_kept);
      errors_.Add(stats->failed);
      if (!stats->complete) break;  // stopping: the next start resumes
      passes_.Add();
      if (stats->expired + stats->noncurrent_removed + stats->delete_markers_removed + stats->uploads_aborted > 0) {
        spdlog::info(
            "lifecycle: pass over {} buckets: {} expired, {} noncurrent versions and {} delete markers "
            "removed, {} uploads aborted, {} kept by Object Lock",
            stats->buckets, stats->expired, stats->noncurrent_removed, stats->delete_markers_removed,
            stats->uploads_aborted, stats->protected_kept);
      }
    }
    wait = interval_;
  }
}

}  // namespace coffre::server
