#pragma once

// A TCP proxy on 127.0.0.1 between an upstream client and the server it talks to, for tests that
// need the network to misbehave at a chosen moment, as tests/integration/fault_proxy.py does for
// the daemon: it can reset the connection that carries a given byte of the requests or of the
// answers (counted over every connection), and hold each answer back for a while before its first
// byte. It also counts the requests in flight (begun, their answer not yet forwarded), so a test can
// see requests overlap without timing anything. Each accepted connection gets a connection of its
// own to the server and two threads that copy bytes; Stop() (also run by the destructor) closes
// everything and joins them.
//
//   test_support::FaultProxy proxy;
//   ASSERT_TRUE(proxy.Start(server_port));
//   proxy.CutAtRequestByte(12 << 20);  // the endpoint is "http://127.0.0.1:" + proxy.port()

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace coffre::test_support {

class FaultProxy {
 public:
  FaultProxy() = default;
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;
  ~FaultProxy() { Stop(); }

  ::testing::AssertionResult Start(uint16_t server_port) {
    server_port_ = server_port;
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = Loopback(0);
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listen_fd_, 64) != 0) {
      return ::testing::AssertionFailure() << "cannot listen on 127.0.0.1";
    }
    socklen_t length = sizeof address;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
    return ::testing::AssertionSuccess();
  }

  void Stop() {
    if (listen_fd_ < 0) return;
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    ::close(listen_fd_);
    listen_fd_ = -1;
    std::vector<std::thread> connections;
    {
      std::lock_guard lock(mu_);
      for (const int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      connections.swap(connections_);
    }
    for (std::thread& connection : connections) connection.join();
  }

  uint16_t port() const { return port_; }
  // Connections accepted so far.
  uint64_t connections() const { return accepted_.load(); }
  // The most requests that were in flight at the same time so far: a request is in flight from its
  // first byte until the first byte of its answer is forwarded (after any DelayAnswers).
  uint64_t max_in_flight() const { return max_in_flight_.load(); }

  // Resets, once, the connection that carries the `n`th request byte from now on (0: the next
  // one), counted over every connection: the bytes before it reach the server, which then sees
  // the connection closed, and the client sees it reset.
  void CutAtRequestByte(uint64_t n) { request_cut_at_.store(request_bytes_.load() + n); }
  // The same for the `n`th byte of the answers from now on: the client gets the bytes before it.
  void CutAtAnswerByte(uint64_t n) { answer_cut_at_.store(answer_bytes_.load() + n); }
  // Holds every answer back this long before forwarding its first byte.
  void DelayAnswers(std::chrono::milliseconds delay) { delay_ms_.store(delay.count()); }

 private:
  static sockaddr_in Loopback(uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
  }

  void Accept() {
    for (;;) {
      const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        if (stopping_) return;
        continue;
      }
      accepted_.fetch_add(1);
      std::lock_guard lock(mu_);
      if (stopping_) {
        ::close(client);
        return;
      }
      open_fds_.insert(client);
      connections_.emplace_back([this, client] { Serve(client); });
    }
  }

  // Copies both ways until either side closes (or a cut), then closes both.
  void Serve(int client) {
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in address = Loopback(server_port_);
    const int one = 1;
    ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(server, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
      {
        std::lock_guard lock(mu_);
        open_fds_.insert(server);
      }
      Link link{.client = client, .server = server};
      std::thread answers([&] { Copy(link, false); });
      Copy(link, true);
      answers.join();
      if (link.cut) {
        // Closing with a zero linger resets the connection rather than closing it in order.
        const linger reset{.l_onoff = 1, .l_linger = 0};
        ::setsockopt(client, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      }
      std::lock_guard lock(mu_);
      open_fds_.erase(server);
    }
    std::lock_guard lock(mu_);
    open_fds_.erase(client);
    ::close(server);
    ::close(client);
  }

  struct Link {
    int client = -1;
    int server = -1;
    std::atomic<bool> awaiting_answer{false};  // a request went out since the last answer was forwarded
    std::atomic<bool> cut{false};
  };

  // Copies one way until that side closes or the cut, then shuts both sockets (which ends the
  // other way's copy too).
  void Copy(Link& link, bool requests) {
    const int from = requests ? link.client : link.server;
    const int to = requests ? link.server : link.client;
    std::atomic<uint64_t>& counted = requests ? request_bytes_ : answer_bytes_;
    std::atomic<uint64_t>& cut_at = requests ? request_cut_at_ : answer_cut_at_;
    std::vector<char> buffer(64 * 1024);
    for (;;) {
      const ssize_t got = ::recv(from, buffer.data(), buffer.size(), 0);
      if (got <= 0) break;
      // The request stays in flight through the delay: that is when an overlap shows.
      if (!requests && link.awaiting_answer.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_.load()));
        if (link.awaiting_answer.exchange(false)) in_flight_.fetch_sub(1);
      }
      auto n = static_cast<uint64_t>(got);
      const uint64_t before = counted.fetch_add(n);
      uint64_t at = cut_at.load();
      const bool cut = at >= before && at < before + n && cut_at.compare_exchange_strong(at, UINT64_MAX);
      if (cut) {
        n = at - before;
        link.cut = true;
      }
      // Counted before the bytes go on, so that the answer cannot overtake the count.
      if (requests && n > 0 && !link.awaiting_answer.exchange(true)) {
        const uint64_t now = in_flight_.fetch_add(1) + 1;
        uint64_t seen = max_in_flight_.load();
        while (seen < now && !max_in_flight_.compare_exchange_weak(seen, now)) {
        }
      }
      if (n > 0 && !SendAll(to, buffer.data(), n)) break;
      if (cut) break;
    }
    if (requests && link.awaiting_answer.exchange(false)) in_flight_.fetch_sub(1);
    ::shutdown(link.client, SHUT_RDWR);
    ::shutdown(link.server, SHUT_RDWR);
  }

  static bool SendAll(int fd, const char* data, size_t size) {
    while (size > 0) {
      const ssize_t sent = ::send(fd, data, size, MSG_NOSIGNAL);
      if (sent <= 0) return false;
      data += sent;
      size -= static_cast<size_t>(sent);
    }
    return true;
  }

  uint16_t server_port_ = 0;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::set<int> open_fds_;
  std::vector<std::thread> connections_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> request_bytes_{0};
  std::atomic<uint64_t> answer_bytes_{0};
  std::atomic<uint64_t> request_cut_at_{UINT64_MAX};
  std::atomic<uint64_t> answer_cut_at_{UINT64_MAX};
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> max_in_flight_{0};
};

}  // namespace coffre::test_support
