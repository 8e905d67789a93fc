#include "coffre/ops/systemd.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "support/status_matchers.h"

namespace coffre::ops {
namespace {

using test_support::IsOk;
using ::testing::Not;

// A datagram socket standing in for systemd's notification socket.
class FakeNotifySocket {
 public:
  // `address`: a path, or "@name" for the abstract namespace.
  explicit FakeNotifySocket(std::string address) : address_(std::move(address)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address_.data(), address_.size());
    if (address_[0] == '@') {
      addr.sun_path[0] = '\0';
    }
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr),
                    static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size())) == 0;
  }
  ~FakeNotifySocket() {
    ::close(fd_);
    if (address_[0] == '/') {
      ::unlink(address_.c_str());
    }
  }
  bool bound() const { return bound_; }
  std::string Receive() {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n < 0 ? std::string("<nothing>") : std::string(buf, static_cast<size_t>(n));
  }

 private:
  std::string address_;
  int fd_ = -1;
  bool bound_ = false;
};

std::string TempSocketPath() {
  return (std::filesystem::temp_directory_path() / ("coffre-notify-" + std::to_string(::getpid()) + ".sock")).string();
}

TEST(NotifierTest, WithoutSocketEveryCallIsANoOp) {
  Notifier notifier("", std::nullopt);
  EXPECT_FALSE(notifier.enabled());
  EXPECT_OK(notifier.Ready("serving"));
  EXPECT_FALSE(notifier.watchdog_ping_interval().has_value());
}

TEST(NotifierTest, SendsReadyReloadingStoppingToAPathSocket) {
  const std::string path = TempSocketPath();
  ::unlink(path.c_str());
  FakeNotifySocket systemd(path);
  ASSERT_TRUE(systemd.bound());
  Notifier notifier(path, std::nullopt);
  ASSERT_OK(notifier.Ready("serving"));
  const std::string ready = systemd.Receive();
  EXPECT_EQ(ready.rfind("READY=1\n", 0), 0u) << ready;
  EXPECT_NE(ready.find("MAINPID=" + std::to_string(::getpid())), std::string::npos) << ready;
  ASSERT_OK(notifier.Reloading());
  const std::string reloading = systemd.Receive();
  EXPECT_EQ(reloading.rfind("RELOADING=1\n", 0), 0u) << reloading;
  EXPECT_NE(reloading.find("MONOTONIC_USEC="), std::string::npos) << reloading;
  ASSERT_OK(notifier.Stopping());
  EXPECT_EQ(systemd.Receive().rfind("STOPPING=1", 0), 0u);
}

TEST(NotifierTest, AbstractNamespaceSocket) {
  const std::string name = "@coffre-notify-test-" + std::to_string(::getpid());
  FakeNotifySocket systemd(name);
  ASSERT_TRUE(systemd.bound());
  Notifier notifier(name, std::nullopt);
  ASSERT_OK(notifier.Watchdog());
  EXPECT_EQ(systemd.Receive(), "WATCHDOG=1");
}

TEST(NotifierTest, MissingSocketIsAnErrorNotACrash) {
  Notifier notifier("/nonexistent/coffre/notify.sock", std::nullopt);
  EXPECT_THAT(notifier.Ready("serving"), Not(IsOk()));
}

TEST(NotifierTest, RelativeSocketPathIsRefused) {
  Notifier notifier("relative.sock", std::nullopt);
  EXPECT_THAT(notifier.Ready("serving"), Not(IsOk()));
}

TEST(NotifierTest, WatchdogFromEnvironmentPingsAtHalfTheInterval) {
  ::setenv("WATCHDOG_USEC", "4000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  auto notifier = Notifier::FromEnvironment();
  ASSERT_TRUE(notifier.watchdog_ping_interval().has_value());
  EXPECT_EQ(*notifier.watchdog_ping_interval(), std::chrono::seconds(2));
  // The watchdog of another process (a parent that forked us) is not ours.
  ::setenv("WATCHDOG_PID", "1", 1);
  EXPECT_FALSE(Notifier::FromEnvironment().watchdog_ping_interval().has_value());
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  EXPECT_FALSE(Notifier::FromEnvironment().watchdog_ping_interval().has_value());
}

}  // namespace
}  // namespace coffre::ops
