#include "coffre/ops/probes.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

namespace coffre::ops {

Status ProbeWritable(const std::string& dir) {
  std::string path = dir + "/.coffre-probe-XXXXXX";
  std::vector<char> name(path.begin(), path.end());
  name.push_back('\0');
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    return Status::FromErrno(errno, "create a file in " + dir);
  }
  const char byte = 'p';
  ssize_t n = 0;
  do {
    n = ::write(fd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  const int write_errno = errno;
  ::close(fd);
  ::unlink(name.data());
  if (n != 1) {
    return Status::FromErrno(n < 0 ? write_errno : EIO, "write a file in " + dir);
  }
  return Status::Ok();
}

Result<uint64_t> FreeBytes(const std::string& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) {
    return Status::FromErrno(errno, "statvfs " + path);
  }
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
}

}  // namespace coffre::ops
