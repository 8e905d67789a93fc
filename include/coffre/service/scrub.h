#pragma once

// The scrub walk: reads every object of every tenant (or of one) through the same path a GET
// takes (data key unwrapped, every blob header and segment tag authenticated), then checks that
// each blob file has exactly the length its header implies (docs/FORMAT.md). Shared by
// `coffre scrub` (src/server/cli_scrub.cc) and the daemon's background scrub
// (src/server/background_scrub.cc). Never repairs, never returns plaintext.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/audit/event.h"
#include "coffre/catalog/catalog.h"
#include "coffre/common/status.h"
#include "coffre/keystore/keystore.h"
#include "coffre/service/object_service.h"
#include "coffre/storage/blob_store.h"

namespace coffre::service {

// RequestInfo::action of the scrub's key uses and audit records, so that auditors (and the
// integrity metric) can tell a scrub's reads from clients'.
inline constexpr std::string_view kScrubAction = "scrub";

// An object that did not read back.
struct ScrubFinding {
  std::string tenant_id;
  std::string tenant_name;
  std::string bucket;
  std::string key;
  std::string object_id;
  // kCorruption: the stored data failed an integrity check (audited as an integrity failure);
  // any other code: the object could not be verified (I/O error, key unavailable).
  Error error;
};

struct ScrubReport {
  uint64_t objects = 0;  // verified intact
  uint64_t bytes = 0;    // plaintext bytes authenticated
  uint64_t skipped = 0;  // overwritten or deleted during the walk
  uint64_t erased = 0;   // under a named key destroyed on purpose: unreadable by design, not damaged
  std::vector<ScrubFinding> damaged;
  bool stopped = false;  // ScrubOptions::pause asked to stop before the walk ended
};

struct ScrubOptions {
  std::string only_tenant;        // a tenant name; empty: every live (not shredded) tenant
  uint64_t bytes_per_second = 0;  // read rate limit; 0: as fast as the disk goes
  // Called between reads, with how long to wait (zero: only a check). Returns false to stop the
  // walk (the daemon's SIGTERM); it should return early, false, when stopped while waiting.
  // Unset: waits with sleep_for and never stops.
  std::function<bool(std::chrono::nanoseconds)> pause;
  // Called on the walking thread as each object is verified / found damaged (metrics, logs).
  std::function<void(uint64_t plaintext_bytes)> on_verified;
  std::function<void(const ScrubFinding&)> on_damaged;
};

// Thread-compatible: one walk at a time per Scrubber. Everything referred to must outlive it.
class Scrubber {
 public:
  // `audit` (may be null) records the integrity failures that only the walk sees (a blob file
  // longer than its header implies); the reads' own failures are recorded by `service`, which
  // should be given the same recorder.
  Scrubber(ObjectService& service, catalog::Catalog& catalog, keystore::TenantStore& keys, storage::BlobStore& blobs,
           audit::Recorder* audit);

  // One pass over the objects, one at a time. Fails only when the walk itself cannot go on
  // (tenants or buckets cannot be listed, no tenant named only_tenant); damaged objects are
  // reported, not errors.
  Result<ScrubReport> Run(const ScrubOptions& options);

 private:
  ObjectService& service_;
  catalog::Catalog& catalog_;
  keystore::TenantStore& keys_;
  storage::BlobStore& blobs_;
  audit::Recorder* audit_;
};

}  // namespace coffre::service
