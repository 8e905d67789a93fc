#pragma once

// One process at a time owns a data directory: `coffre serve` (and `coffre fsck --repair`, which
// removes files a running daemon may be writing) hold an exclusive lock on <data_dir>/coffre.lock
// for as long as they run. Two daemons on one directory would each believe they are the single
// SQLite writer and collect each other's blobs as garbage.
//
// The lock is flock(2) on a descriptor opened with O_CLOEXEC: the kernel drops it when the process
// exits, however it exits (no stale lock after kill -9), and no child inherits it. The file holds
// the holder's pid, for the message another process prints; the pid is informative only, the lock
// is what counts. Read-only admin commands never take the lock: they run beside a live daemon.

#include <string>
#include <string_view>

#include "coffre/common/status.h"

namespace coffre::server {

class DataDirLock {
 public:
  // Takes the lock without waiting. With `create_directory` (the daemon), a missing data
  // directory is created first, mode 0700; otherwise it must exist. Unavailable, naming the
  // directory and the holder's pid, when another process holds it; IOError (or NoSpace,
  // PermissionDenied) when the lock file cannot be created (read-only file system, ...).
  static Result<DataDirLock> Acquire(const std::string& data_dir, bool create_directory = false);
  // The pid recorded by the holder (0 when unknown); for messages.
  static int HolderPid(const std::string& data_dir);
  static std::string Path(const std::string& data_dir) { return data_dir + "/coffre.lock"; }

  DataDirLock(DataDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();  // releases the lock

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace coffre::server
