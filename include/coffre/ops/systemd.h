#pragma once

// The systemd service-manager notification protocol (sd_notify(3)), written out here so the
// daemon needs no libsystemd: one datagram of "KEY=VALUE\n" lines sent to the AF_UNIX socket
// named by $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@').
//
// Outside systemd ($NOTIFY_SOCKET unset) every call is a successful no-op.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "coffre/common/status.h"

namespace coffre::ops {

class Notifier {
 public:
  // Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID once. The socket is opened lazily.
  static Notifier FromEnvironment();
  // For tests: an explicit socket address ("" disables) and watchdog interval.
  Notifier(std::string socket_address, std::optional<std::chrono::microseconds> watchdog);

  Notifier(Notifier&& other) noexcept;
  Notifier& operator=(Notifier&&) = delete;
  Notifier(const Notifier&) = delete;
  ~Notifier();

  bool enabled() const { return !address_.empty(); }
  // Sends `state` (e.g. "READY=1\nSTATUS=serving") as one datagram. Thread-safe.
  Status Notify(std::string_view state);

  // Notify() with the usual states.
  Status Ready(std::string_view status_text);
  Status Reloading();  // RELOADING=1 with MONOTONIC_USEC, as systemd 253's Type=notify-reload wants
  Status Stopping();
  Status Watchdog();

  // How often to send WATCHDOG=1 (half of WatchdogSec=), when the watchdog is on for this PID.
  std::optional<std::chrono::microseconds> watchdog_ping_interval() const;

 private:
  std::string address_;
  std::optional<std::chrono::microseconds> watchdog_;
  int fd_ = -1;
};

}  // namespace coffre::ops
