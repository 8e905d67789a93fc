#include "coffre/common/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "coffre/common/unique_fd.h"

namespace coffre {
namespace {

std::string ModeString(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

Status CheckPrivate(const struct stat& st, const std::string& name) {
  if (!S_ISREG(st.st_mode)) {
    return Status::PermissionDenied(name + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    return Status::PermissionDenied(name + " has mode " + ModeString(st.st_mode) +
                                    "; it must not be accessible by group or others (chmod 600)");
  }
  if ((st.st_mode & 0777) != 0600 && (st.st_mode & 0777) != 0400) {
    return Status::PermissionDenied(name + " has mode " + ModeString(st.st_mode) +
                                    "; it must be 0600 or 0400 (chmod 400)");
  }
  if (st.st_uid != ::geteuid()) {
    return Status::PermissionDenied(name + " is owned by uid " + std::to_string(st.st_uid) +
                                    ", not by the user running coffre (uid " + std::to_string(::geteuid()) +
                                    "); chown it to the service user");
  }
  return Status::Ok();
}

}  // namespace

Result<SecretBytes> ReadPrivateFile(const std::string& path, std::string_view what, size_t max_size) {
  const std::string name = std::string(what) + " " + path;
  // O_NONBLOCK: opening a FIFO must not hang before fstat can refuse it.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    return Status::FromErrno(errno, name);
  }
  // Checked on the opened descriptor, so the file checked is the file read.
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Status::FromErrno(errno, name);
  }
  COFFRE_RETURN_IF_ERROR(CheckPrivate(st, name));
  // One byte more than allowed, to tell an oversized file apart.
  SecretBytes buf(max_size + 1);
  size_t len = 0;
  while (len < buf.size()) {
    const ssize_t n = ::read(fd.get(), buf.RevealMutable().data() + len, buf.size() - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read " + name);
    }
    if (n == 0) break;
    len += static_cast<size_t>(n);
  }
  if (len > max_size) {
    return Status::InvalidArgument(name + " is larger than " + std::to_string(max_size) + " bytes");
  }
  return SecretBytes(buf.Reveal().first(len));
}

}  // namespace coffre
