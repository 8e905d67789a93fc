#pragma once

// Group commit for files: makes everything written to one filesystem durable with one syncfs(2)
// shared by all the callers waiting at the time. On ext4 without a journal (the data disk here)
// each fsync is its own device cache flush, so per-file fsyncs cannot share one; a syncfs writes
// back every dirty file and directory of the filesystem and flushes once.
//
// Errors: the kernel reports a writeback error to the next syncfs on the same open file, once,
// whatever file it struck. A writer whose pages failed in background writeback before an earlier
// group's syncfs would see its own group's syncfs succeed. So a writer takes an Epoch before its
// first write, and Sync fails for every epoch older than the last failure: a failure may fail
// writers whose data was fine (they retry), never pass one whose data was lost.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "coffre/common/status.h"

namespace coffre::storage {

class FilesystemSync {
 public:
  // Makes the filesystem durable; returns 0 or an errno value.
  using SyncFn = std::function<int()>;

  // Syncs the filesystem that holds `path` (a directory), through a descriptor opened now.
  static Result<std::unique_ptr<FilesystemSync>> Open(const std::string& path);
  explicit FilesystemSync(SyncFn sync, int fd = -1);
  ~FilesystemSync();
  FilesystemSync(const FilesystemSync&) = delete;
  FilesystemSync& operator=(const FilesystemSync&) = delete;

  struct Epoch {
    uint64_t failures = 0;
  };
  // Taken by a writer before its first write.
  Epoch Begin() const;
  // Returns once everything written to the filesystem before the call is durable: joins the next
  // sync to start (a sync already running may have missed this caller's writes). Fails if that
  // sync or any since `since` failed.
  Status Sync(Epoch since);

  uint64_t syncs() const;    // syncs made so far
  uint64_t waiting() const;  // callers of Sync not yet answered

 private:
  SyncFn sync_;
  int fd_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t requested_ = 0;  // tickets handed out; guarded by mu_
  uint64_t completed_ = 0;  // every ticket up to this one has its answer; guarded by mu_
  bool running_ = false;    // a caller is syncing on everyone's behalf; guarded by mu_
  uint64_t syncs_ = 0;      // guarded by mu_
  uint64_t failures_ = 0;   // guarded by mu_
  int last_error_ = 0;      // errno of the last failed sync; guarded by mu_
};

}  // namespace coffre::storage
