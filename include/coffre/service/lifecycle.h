#pragma once

// Bucket lifecycle (S3's PutBucketLifecycleConfiguration): the rules a bucket keeps in its
// settings, and the pass that applies them. The pass expires current versions (a delete, or a
// delete marker in a versioned bucket), removes noncurrent versions and delete markers left alone,
// and aborts old multipart uploads, through the object service: Object Lock still refuses what it
// protects, and the pass counts it and goes on.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "coffre/common/clock.h"
#include "coffre/common/status.h"
#include "coffre/service/object_service.h"

namespace coffre::service {

// The bucket setting that holds the configuration (EncodeLifecycle), and the one that holds where
// an interrupted pass stopped in the bucket (a key: the next pass starts after it).
inline constexpr std::string_view kLifecycleSetting = "lifecycle";
inline constexpr std::string_view kLifecycleResumeSetting = "lifecycle_resume";

struct LifecycleFilter {
  std::string prefix;
  catalog::Tags tags;  // all of them, with these values
  std::optional<uint64_t> size_greater_than;
  std::optional<uint64_t> size_less_than;
};

struct LifecycleRule {
  std::string id;
  bool enabled = true;
  LifecycleFilter filter;
  std::optional<uint32_t> expiration_days;
  std::optional<UnixMillis> expiration_date;  // midnight UTC
  // ExpiredObjectDeleteMarker as given: true removes delete markers with nothing behind them,
  // false (kept, to be answered as set) does nothing.
  std::optional<bool> expired_object_delete_marker;
  std::optional<uint32_t> noncurrent_days;
  std::optional<uint32_t> newer_noncurrent_versions;  // with noncurrent_days: that many newest kept
  std::optional<uint32_t> abort_incomplete_days;
  // How the rule's filter was written, so that it reads back the same way: "filter" (a Filter
  // element), "prefix" (the legacy rule-level Prefix).
  std::string filter_form = "filter";
};

struct LifecycleConfiguration {
  std::vector<LifecycleRule> rules;
};

// The configuration in its setting's text (JSON); Corruption when the text is not one.
std::string EncodeLifecycle(const LifecycleConfiguration& config);
Result<LifecycleConfiguration> DecodeLifecycle(std::string_view text);

// Whether an object matches the rule's filter. `tags` is consulted only when the filter has some.
bool LifecycleMatches(const LifecycleFilter& filter, const std::string& key, uint64_t size, const catalog::Tags& tags);

struct LifecycleStats {
  uint64_t buckets = 0;             // with a configuration, scanned
  uint64_t expired = 0;             // current versions deleted or given a delete marker
  uint64_t noncurrent_removed = 0;  // noncurrent versions removed
  uint64_t delete_markers_removed = 0;
  uint64_t uploads_aborted = 0;
  uint64_t protected_kept = 0;  // a rule would have removed them; Object Lock kept them
  uint64_t failed = 0;          // other errors (logged by the caller through on_error)
  bool complete = true;         // false when stopped early (should_stop), resumable
};

struct LifecycleHooks {
  // Before each action (a deletion, an abort): may wait (rate limit); false stops the pass, which
  // records where it was so that the next pass resumes there.
  std::function<bool()> before_action;
  // An action that failed for another reason than Object Lock: bucket, key, what.
  std::function<void(const std::string&, const std::string&, const std::string&)> on_error;
};

// One pass over every bucket that has a lifecycle configuration, by the clock given (tests set
// one): ages are measured from a version's Last-Modified (a noncurrent one's from when the version
// after it was written, when it stopped being current; an upload's from its initiation), in whole
// days of 24 hours. Each key use (a delete marker's data key) is recorded with the action
// "lifecycle rule <id>".
class LifecycleRunner {
 public:
  LifecycleRunner(ObjectService& service, catalog::Catalog& catalog, const Clock& clock)
      : service_(service), catalog_(catalog), clock_(clock) {}

  SResult<LifecycleStats> RunPass(const LifecycleHooks& hooks = {});

 private:
  // Applies `config` to `bucket`, from its resume point; false from should_stop.
  bool RunBucket(const catalog::Bucket& bucket, const LifecycleConfiguration& config, const LifecycleHooks& hooks,
                 LifecycleStats& stats);
  bool AbortUploads(const catalog::Bucket& bucket, const LifecycleConfiguration& config, const LifecycleHooks& hooks,
                    LifecycleStats& stats);

  ObjectService& service_;
  catalog::Catalog& catalog_;
  const Clock& clock_;
};

}  // namespace coffre::service
