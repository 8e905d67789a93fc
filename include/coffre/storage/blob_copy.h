#pragma once

// Copying every blob of one store into another under the same ids (`coffre storage migrate`, from
// the data directory to an upstream bucket). A blob's authenticated data names its id, so its bytes
// move unchanged and the catalog, which names blobs by id, stays as it is.
//
// Resumable: a blob the destination already holds with the same size was committed there by an
// earlier run (a commit is all or nothing) and is skipped. One with another size is reported and
// left alone on both sides. A blob removed from the source during the run (a deleted object, on a
// running daemon) is counted as gone. Blobs committed to the source after the listing are not
// copied: a later run copies them.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "coffre/common/status.h"
#include "coffre/storage/blob_store.h"

namespace coffre::storage {

struct BlobCopyReport {
  uint64_t listed = 0;              // blobs in the source when the run began
  uint64_t copied = 0;              // committed to the destination by this run
  uint64_t bytes_copied = 0;        // their bytes
  uint64_t already_there = 0;       // in the destination with the same size: skipped
  uint64_t gone = 0;                // removed from the source before they were read
  std::vector<std::string> failed;  // "<blob id>: <why>", nothing left behind in the destination
};

struct BlobCopyOptions {
  int jobs = 4;  // blobs copied at the same time (1 to 64)
  // Each copy is read back from the destination and its SHA-256 compared with the source's; a
  // mismatch is a failure (the copy is removed).
  bool verify = true;
  // After this many failures the run stops early (what remains is for the next run).
  size_t max_failures = 100;
  // Called after each blob with the report so far, under the report's lock (for progress lines).
  std::function<void(const BlobCopyReport&)> progress;
};

// InvalidArgument for bad options; an error when either store cannot be listed. Failures of single
// blobs are in the report.
Result<BlobCopyReport> CopyBlobs(const BlobStore& from, BlobStore& to, const BlobCopyOptions& options);

}  // namespace coffre::storage
