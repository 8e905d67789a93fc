#include "coffre/storage/filesystem_sync.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace coffre::storage {

Result<std::unique_ptr<FilesystemSync>> FilesystemSync::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Status::FromErrno(errno, "open " + path);
  }
  // The descriptor's view of the filesystem's writeback errors starts now: errors reported to
  // syncfs on it are those that happen from here on.
  return std::make_unique<FilesystemSync>([fd] { return ::syncfs(fd) == 0 ? 0 : errno; }, fd);
}

FilesystemSync::FilesystemSync(SyncFn sync, int fd) : sync_(std::move(sync)), fd_(fd) {}

FilesystemSync::~FilesystemSync() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

FilesystemSync::Epoch FilesystemSync::Begin() const {
  std::lock_guard lock(mu_);
  return Epoch{failures_};
}

Status FilesystemSync::Sync(Epoch since) {
  std::unique_lock lock(mu_);
  const uint64_t ticket = ++requested_;
  while (completed_ < ticket) {
    if (running_) {
      cv_.wait(lock);
      continue;
    }
    // No sync running: this caller makes one for every ticket handed out so far.
    running_ = true;
    const uint64_t covers = requested_;
    lock.unlock();
    const int err = sync_();
    lock.lock();
    running_ = false;
    ++syncs_;
    if (err != 0) {
      ++failures_;
      last_error_ = err;
    }
    completed_ = covers;
    cv_.notify_all();
  }
  if (failures_ != since.failures) {
    return Status::FromErrno(last_error_, "sync the blob filesystem");
  }
  return Status::Ok();
}

uint64_t FilesystemSync::syncs() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

uint64_t FilesystemSync::waiting() const {
  std::lock_guard lock(mu_);
  return requested_ - completed_;
}

}  // namespace coffre::storage
