#include "data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

namespace coffre::server {

DataDirLock& DataDirLock::operator=(DataDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

int DataDirLock::HolderPid(const std::string& data_dir) {
  const int fd = ::open(Path(data_dir).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return 0;
  }
  char buffer[32] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  ::close(fd);
  int pid = 0;
  for (ssize_t i = 0; i < n && buffer[i] >= '0' && buffer[i] <= '9' && pid < 100'000'000; ++i) {
    pid = pid * 10 + (buffer[i] - '0');
  }
  return pid;
}

Result<DataDirLock> DataDirLock::Acquire(const std::string& data_dir, bool create_directory) {
  const std::string path = Path(data_dir);
  if (create_directory) {
    std::error_code ec;
    if (!std::filesystem::exists(data_dir, ec)) {
      std::filesystem::create_directories(data_dir, ec);
      if (ec) {
        return Status::IOError("create data directory " + data_dir + ": " + ec.message());
      }
      ::chmod(data_dir.c_str(), 0700);  // it will hold the keystore: private to the service
    }
  }
  // O_NOFOLLOW: a symlink planted in the data directory must not make us truncate another file.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return Status::FromErrno(errno, "cannot lock data directory " + data_dir + " (" + path + ")");
  }
  DataDirLock lock(fd);
  int rc = 0;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == EWOULDBLOCK) {
      const int holder = HolderPid(data_dir);
      return Status::Unavailable("data directory " + data_dir + " is in use by another coffre process" +
                                 (holder > 0 ? " (pid " + std::to_string(holder) + ")" : std::string()) +
                                 ", which holds " + path);
    }
    return Status::FromErrno(errno, "cannot lock data directory " + data_dir + " (" + path + ")");
  }
  // The pid is rewritten only under the lock, so a reader sees the current holder's (or a stale
  // one once it has exited, when the lock is free anyway).
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return Status::FromErrno(errno, "cannot write " + path);
  }
  return lock;
}

}  // namespace coffre::server
