#pragma once

// A minimal blocking HTTP/1.1 client for the load generator: one keep-alive connection per
// worker thread to 127.0.0.1, TCP_NODELAY, whole-buffer sends, response bodies read into a
// reused buffer and discarded (only their length is kept). Not a general-purpose client.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coffre::load {

struct Response {
  int status = 0;
  uint64_t body_bytes = 0;  // bytes of body received (discarded unless keep_body)
  std::string body;         // only when keep_body (small XML answers)
};

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port) : host_(std::move(host)), port_(port), buf_(1 << 20) {}
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request (headers must not include Host or Content-Length; they are added) and
  // reads the whole response. Reconnects once if the kept-alive connection was closed.
  // Returns false on a transport error (message in error()).
  bool Do(std::string_view method, std::string_view target,
          const std::vector<std::pair<std::string, std::string>>& headers, std::span<const uint8_t> body,
          bool keep_body, Response* out);

  const std::string& error() const { return error_; }
  std::string HostHeader() const { return host_ + ":" + std::to_string(port_); }

 private:
  bool Connect();
  void Close();
  bool SendAll(const void* data, size_t size);
  bool ReadResponse(bool head, bool keep_body, Response* out);
  // Fills buf_ from the socket after what is buffered; false on EOF/error.
  bool Fill();

  std::string host_;
  uint16_t port_;
  int fd_ = -1;
  std::vector<char> buf_;
  size_t begin_ = 0;  // unread bytes are buf_[begin_, end_)
  size_t end_ = 0;
  std::string error_;
};

}  // namespace coffre::load
