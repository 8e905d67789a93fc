#pragma once

// A deliberately dumb HTTP/1.1 client over a blocking POSIX socket, so tests can send exactly the
// bytes an attacker or a broken client would, and observe exactly what comes back.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/beast/core/string.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace coffre::http::testing {

struct RawResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::map<std::string, std::string, boost::beast::iless> headers;
  std::string body;

  bool Has(const std::string& name) const { return headers.count(name) != 0; }
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    // Every read is bounded, so a server bug fails the test instead of hanging it.
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { Close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  void Close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  // Reads one response. `head`: the response to a HEAD request, which has no body whatever its
  // Content-Length says.
  std::optional<RawResponse> ReadResponse(bool head = false) {
    size_t end;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) {
        return std::nullopt;
      }
    }
    RawResponse response;
    const std::string head_text = pending_.substr(0, end + 2);
    pending_.erase(0, end + 4);
    size_t line_end = head_text.find("\r\n");
    const std::string status_line = head_text.substr(0, line_end);
    const size_t sp = status_line.find(' ');
    if (sp == std::string::npos) {
      return std::nullopt;
    }
    response.version = status_line.substr(0, sp);
    response.status = std::atoi(status_line.c_str() + sp + 1);
    size_t pos = line_end + 2;
    while (pos < head_text.size()) {
      const size_t next = head_text.find("\r\n", pos);
      const std::string line = head_text.substr(pos, next - pos);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t value_start = colon + 1;
        while (value_start < line.size() && line[value_start] == ' ') {
          ++value_start;
        }
        response.headers[line.substr(0, colon)] = line.substr(value_start);
      }
      pos = next + 2;
    }
    const int s = response.status;
    if (head || s / 100 == 1 || s == 204 || s == 304) {
      return response;
    }
    if (boost::beast::iequals(response.Header("Transfer-Encoding"), "chunked")) {
      for (;;) {
        size_t line_stop;
        while ((line_stop = pending_.find("\r\n")) == std::string::npos) {
          if (!Fill()) {
            return std::nullopt;
          }
        }
        const size_t size = std::strtoul(pending_.substr(0, line_stop).c_str(), nullptr, 16);
        pending_.erase(0, line_stop + 2);
        if (!Need(size + 2)) {
          return std::nullopt;
        }
        response.body.append(pending_, 0, size);
        pending_.erase(0, size + 2);
        if (size == 0) {
          return response;
        }
      }
    }
    if (response.Has("Content-Length")) {
      const size_t length = std::strtoul(response.Header("Content-Length").c_str(), nullptr, 10);
      if (!Need(length)) {
        return std::nullopt;
      }
      response.body = pending_.substr(0, length);
      pending_.erase(0, length);
      return response;
    }
    while (Fill()) {
    }
    response.body = std::move(pending_);
    pending_.clear();
    return response;
  }

  // Everything until the peer closes (or the read times out).
  std::string ReadUntilClosed() {
    while (Fill()) {
    }
    std::string out = std::move(pending_);
    pending_.clear();
    return out;
  }

  // True when the peer closes the connection (FIN or RST) within `timeout` without sending
  // anything more.
  bool ClosedWithin(std::chrono::milliseconds timeout) {
    if (!pending_.empty()) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
      return false;
    }
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    if (n > 0) {
      pending_.push_back(c);
      return false;
    }
    return n == 0 || errno == ECONNRESET;
  }

  // True when nothing arrives within `timeout`.
  bool SilentFor(std::chrono::milliseconds timeout) {
    if (!pending_.empty()) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) == 0;
  }

 private:
  bool Fill() {
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      return false;
    }
    pending_.append(buf, static_cast<size_t>(n));
    return true;
  }

  bool Need(size_t n) {
    while (pending_.size() < n) {
      if (!Fill()) {
        return false;
      }
    }
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string pending_;
};

}  // namespace coffre::http::testing
