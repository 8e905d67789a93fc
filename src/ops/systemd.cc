#include "coffre/ops/systemd.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace coffre::ops {
namespace {

std::optional<uint64_t> ParseDecimal(const char* text) {
  if (text == nullptr || *text == '\0') {
    return std::nullopt;
  }
  uint64_t n = 0;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9' || n > (UINT64_MAX - 9) / 10) {
      return std::nullopt;
    }
    n = n * 10 + static_cast<uint64_t>(*p - '0');
  }
  return n;
}

}  // namespace

Notifier Notifier::FromEnvironment() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  std::optional<std::chrono::microseconds> watchdog;
  const auto usec = ParseDecimal(std::getenv("WATCHDOG_USEC"));
  if (usec && *usec > 0) {
    // WATCHDOG_PID, when set, names the process the watchdog is for (not a child we forked).
    const auto pid = ParseDecimal(std::getenv("WATCHDOG_PID"));
    if (!pid || *pid == static_cast<uint64_t>(::getpid())) {
      watchdog = std::chrono::microseconds(static_cast<int64_t>(*usec));
    }
  }
  return Notifier(socket != nullptr ? socket : "", watchdog);
}

Notifier::Notifier(std::string socket_address, std::optional<std::chrono::microseconds> watchdog)
    : address_(std::move(socket_address)), watchdog_(watchdog) {}

Notifier::Notifier(Notifier&& other) noexcept
    : address_(std::move(other.address_)), watchdog_(other.watchdog_), fd_(other.fd_) {
  other.fd_ = -1;
  other.address_.clear();
}

Notifier::~Notifier() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Status Notifier::Notify(std::string_view state) {
  if (address_.empty()) {
    return Status::Ok();
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (address_.size() >= sizeof(addr.sun_path) || (address_[0] != '/' && address_[0] != '@')) {
    return Status::InvalidArgument("NOTIFY_SOCKET must be an absolute path or an abstract name");
  }
  std::memcpy(addr.sun_path, address_.data(), address_.size());
  if (address_[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract namespace: no terminating NUL, the length says it all
  }
  const socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
  // One socket for the process' lifetime; sendto() on a datagram socket is atomic, so
  // concurrent callers (the watchdog timer, the signal handler's coroutine) do not interleave.
  if (fd_ < 0) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      return Status::FromErrno(errno, "notify socket");
    }
  }
  ssize_t sent = 0;
  do {
    sent = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), length);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    return Status::FromErrno(errno, "notify " + address_);
  }
  return Status::Ok();
}

Status Notifier::Ready(std::string_view status_text) {
  return Notify("READY=1\nSTATUS=" + std::string(status_text) + "\nMAINPID=" + std::to_string(::getpid()));
}

Status Notifier::Reloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t usec = static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
  return Notify("RELOADING=1\nSTATUS=reloading configuration\nMONOTONIC_USEC=" + std::to_string(usec));
}

Status Notifier::Stopping() { return Notify("STOPPING=1\nSTATUS=draining connections"); }

Status Notifier::Watchdog() { return Notify("WATCHDOG=1"); }

std::optional<std::chrono::microseconds> Notifier::watchdog_ping_interval() const {
  if (!watchdog_) {
    return std::nullopt;
  }
  return *watchdog_ / 2;
}

}  // namespace coffre::ops
