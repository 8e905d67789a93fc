#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

namespace coffre::load {
namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return (x | 0x20) == (y | 0x20); });
}

std::optional<uint64_t> ParseUint(std::string_view s, int base) {
  uint64_t v = 0;
  bool any = false;
  for (char c : s) {
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (d < 0) break;
    v = v * base + d;
    any = true;
  }
  return any ? std::optional<uint64_t>(v) : std::nullopt;
}

}  // namespace

HttpClient::~HttpClient() { Close(); }

void HttpClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  begin_ = end_ = 0;
}

bool HttpClient::Connect() {
  Close();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error_ = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  if (::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr) != 1) {
    error_ = "bad IPv4 address " + host_;
    Close();
    return false;
  }
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    error_ = std::string("connect: ") + std::strerror(errno);
    Close();
    return false;
  }
  return true;
}

bool HttpClient::SendAll(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd_, p, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      error_ = std::string("send: ") + std::strerror(errno);
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool HttpClient::Fill() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (end_ == buf_.size()) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);
  }
  for (;;) {
    // Acknowledge at once what arrives (see AckPromptly in src/upstream/connection.cc): a server
    // that sends an answer's head and body apart with Nagle on would otherwise hold the body
    // for the delayed-ACK timer, and the gateway's upstream client does the same.
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    const ssize_t n = ::recv(fd_, buf_.data() + end_, buf_.size() - end_, 0);
    if (n > 0) {
      end_ += static_cast<size_t>(n);
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    error_ = n == 0 ? "connection closed by peer" : std::string("recv: ") + std::strerror(errno);
    return false;
  }
}

bool HttpClient::Do(std::string_view method, std::string_view target,
                    const std::vector<std::pair<std::string, std::string>>& headers, std::span<const uint8_t> body,
                    bool keep_body, Response* out) {
  std::string head;
  head.reserve(512);
  head.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ").append(HostHeader()).append("\r\n");
  for (const auto& [name, value] : headers) head.append(name).append(": ").append(value).append("\r\n");
  if (!body.empty() || method == "PUT" || method == "POST") {
    head.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  head.append("\r\n");
  for (int attempt = 0; attempt < 2; ++attempt) {
    // A kept-alive connection the server has closed meanwhile gets one retry on a fresh one.
    const bool reused = attempt == 0 && fd_ >= 0;
    if (fd_ < 0 && !Connect()) return false;
    if (SendAll(head.data(), head.size()) && (body.empty() || SendAll(body.data(), body.size())) &&
        ReadResponse(method == "HEAD", keep_body, out)) {
      return true;
    }
    Close();
    if (!reused) return false;
  }
  return false;
}

bool HttpClient::ReadResponse(bool head, bool keep_body, Response* out) {
  *out = Response();
  // Status line and headers.
  size_t header_end = std::string::npos;
  for (;;) {
    std::string_view avail(buf_.data() + begin_, end_ - begin_);
    header_end = avail.find("\r\n\r\n");
    if (header_end != std::string_view::npos) break;
    if (!Fill()) return false;
  }
  const std::string_view header_block(buf_.data() + begin_, header_end);
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool close = false;
  size_t line_start = 0;
  bool first = true;
  while (line_start <= header_block.size()) {
    size_t line_end = header_block.find("\r\n", line_start);
    if (line_end == std::string_view::npos) line_end = header_block.size();
    const std::string_view line = header_block.substr(line_start, line_end - line_start);
    if (first) {
      // HTTP/1.1 200 OK
      if (line.size() < 12) {
        error_ = "bad status line";
        return false;
      }
      out->status = static_cast<int>(ParseUint(line.substr(9, 3), 10).value_or(0));
      first = false;
    } else if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
      const std::string_view name = line.substr(0, colon);
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (IEquals(name, "content-length")) content_length = ParseUint(value, 10);
      if (IEquals(name, "transfer-encoding") && value.find("chunked") != std::string_view::npos) chunked = true;
      if (IEquals(name, "connection") && value.find("close") != std::string_view::npos) close = true;
    }
    line_start = line_end + 2;
  }
  begin_ += header_end + 4;
  const bool no_body = head || out->status == 204 || out->status == 304 || (out->status >= 100 && out->status < 200);
  auto consume = [&](uint64_t n) -> bool {
    while (n > 0) {
      if (begin_ == end_ && !Fill()) return false;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(n, end_ - begin_));
      if (keep_body) out->body.append(buf_.data() + begin_, take);
      out->body_bytes += take;
      begin_ += take;
      n -= take;
    }
    return true;
  };
  auto read_line = [&](std::string* line) -> bool {
    for (;;) {
      std::string_view avail(buf_.data() + begin_, end_ - begin_);
      const size_t eol = avail.find("\r\n");
      if (eol != std::string_view::npos) {
        line->assign(avail.substr(0, eol));
        begin_ += eol + 2;
        return true;
      }
      if (!Fill()) return false;
    }
  };
  if (!no_body) {
    if (chunked) {
      std::string line;
      for (;;) {
        if (!read_line(&line)) return false;
        const uint64_t size = ParseUint(line, 16).value_or(0);
        if (size == 0) {
          do {  // trailers up to the empty line
            if (!read_line(&line)) return false;
          } while (!line.empty());
          break;
        }
        if (!consume(size) || !read_line(&line)) return false;
      }
    } else if (content_length.has_value()) {
      if (!consume(*content_length)) return false;
    } else {
      // Body delimited by the end of the connection.
      while (Fill()) consume(end_ - begin_);
      close = true;
    }
  }
  if (close) Close();
  return true;
}

}  // namespace coffre::load
