#pragma once

// A scripted S3 server for the client's tests: plain HTTP/1.1 on 127.0.0.1, a thread per
// connection, keep-alive. Every request is authenticated with the s3 module's own SigV4 verifier
// (and its signed payload hash checked against the body) before the test's handler sees it; the
// handler then answers, or misbehaves on purpose (resets the connection, stalls, cuts the body).

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/crypto/hash.h"
#include "coffre/s3/sigv4.h"

namespace coffre::test_support {

inline constexpr std::string_view kFakeAccessKey = "AKIDUPSTREAMTEST";
inline constexpr std::string_view kFakeSecret = "upstream-test-secret-0123456789abcdef";

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string auth_error;  // empty when the signature (and any signed payload hash) verified

  std::string Header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (EqualsIgnoreCase(n, name)) return v;
    }
    return {};
  }
};

struct Reply {
  enum class Action { kRespond, kReset, kStall, kTruncateBody };
  Action action = Action::kRespond;
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds stall{0};

  static Reply Error(unsigned status, std::string_view code, std::string_view message = "test error") {
    Reply r;
    r.status = status;
    r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + std::string(code) + "</Code><Message>" +
             std::string(message) + "</Message></Error>";
    return r;
  }
  static Reply Misbehave(Action action, std::chrono::milliseconds stall = {}) {
    Reply r;
    r.action = action;
    r.stall = stall;
    return r;
  }
};

class FakeS3Server {
 public:
  using Handler = std::function<Reply(const ReceivedRequest&)>;

  explicit FakeS3Server(Handler handler) : handler_(std::move(handler)) {
    namespace ip = boost::asio::ip;
    acceptor_.open(ip::tcp::v4());
    acceptor_.set_option(ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind({ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  FakeS3Server(const FakeS3Server&) = delete;
  FakeS3Server& operator=(const FakeS3Server&) = delete;

  ~FakeS3Server() {
    stopping_ = true;
    // Wake the blocking accept with a connection of our own, then end every connection's read.
    boost::asio::ip::tcp::socket wake(io_);
    boost::system::error_code ec;
    wake.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    accept_thread_.join();
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : connection_threads_) t.join();
  }

  uint16_t port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }

  std::vector<ReceivedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void AcceptLoop() {
    while (true) {
      boost::asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (stopping_) return;
      if (ec) continue;
      connections_.fetch_add(1);
      std::lock_guard lock(mutex_);
      open_fds_.push_back(socket.native_handle());
      connection_threads_.emplace_back([this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
    }
  }

  static std::string Authenticate(const ReceivedRequest& r) {
    s3::HttpRequestView view;
    view.method = r.method;
    view.target = r.target;
    for (const auto& [n, v] : r.headers) view.headers.emplace_back(n, v);
    auto lookup = [](std::string_view akid) -> Expected<s3::Credential, s3::Error> {
      if (akid != kFakeAccessKey) return s3::Error(s3::ErrorCode::kInvalidAccessKeyId);
      return s3::Credential{"tenant", SecretBytes(AsBytes(kFakeSecret))};
    };
    auto result = s3::Authenticate(view, lookup, s3::AuthOptions{});
    if (!result.ok()) return "signature refused: " + result.error().message;
    if (result->payload_mode == s3::PayloadMode::kSignedHash &&
        result->payload_sha256_hex != HexEncode(crypto::Sha256::Digest(AsBytes(r.body)))) {
      return "the body does not match its signed hash";
    }
    return {};
  }

  // The descriptor leaves open_fds_ before it is closed, so the destructor never shuts down a
  // descriptor number the process has reused meanwhile.
  void Serve(boost::asio::ip::tcp::socket socket) {
    ServeRequests(socket);
    {
      std::lock_guard lock(mutex_);
      std::erase(open_fds_, socket.native_handle());
    }
    boost::system::error_code ec;
    socket.close(ec);
  }

  void ServeRequests(boost::asio::ip::tcp::socket& socket) {
    namespace bhttp = boost::beast::http;
    boost::beast::flat_buffer buffer;
    while (true) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      boost::system::error_code ec;
      bhttp::read(socket, buffer, parser, ec);
      if (ec) return;
      const auto& message = parser.get();
      ReceivedRequest received;
      received.method = std::string(message.method_string());
      received.target = std::string(message.target());
      for (const auto& field : message) received.headers.emplace_back(field.name_string(), field.value());
      received.body = message.body();
      received.auth_error = Authenticate(received);
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(received);
      }
      const Reply reply = received.auth_error.empty() ? handler_(received)
                                                      : Reply::Error(403, "SignatureDoesNotMatch", received.auth_error);
      if (!Answer(socket, received, reply) || !message.keep_alive()) return;
    }
  }

  // False when the connection must end.
  static bool Answer(boost::asio::ip::tcp::socket& socket, const ReceivedRequest& request, const Reply& reply) {
    namespace bhttp = boost::beast::http;
    boost::system::error_code ec;
    switch (reply.action) {
      case Reply::Action::kReset:
        socket.set_option(boost::asio::socket_base::linger(true, 0), ec);  // close sends RST
        return false;
      case Reply::Action::kStall:
        std::this_thread::sleep_for(reply.stall);
        return false;
      default:
        break;
    }
    bhttp::response<bhttp::string_body> response(static_cast<bhttp::status>(reply.status), 11);
    for (const auto& [n, v] : reply.headers) response.set(n, v);
    if (request.method == "HEAD" || reply.action == Reply::Action::kTruncateBody) {
      // The header announces the whole body; HEAD sends none, a truncated answer half of it.
      if (!response.count(bhttp::field::content_length)) response.content_length(reply.body.size());
      bhttp::response<bhttp::empty_body> header_only(response.base());
      bhttp::write(socket, header_only, ec);
      if (reply.action == Reply::Action::kTruncateBody) {
        boost::asio::write(socket, boost::asio::buffer(reply.body.data(), reply.body.size() / 2), ec);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the client reads the half first
        return false;
      }
      return !ec;
    }
    response.body() = reply.body;
    response.prepare_payload();
    bhttp::write(socket, response, ec);
    return !ec;
  }

  Handler handler_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread accept_thread_;
  mutable std::mutex mutex_;
  std::vector<int> open_fds_;
  std::vector<std::thread> connection_threads_;
  std::vector<ReceivedRequest> requests_;
};

}  // namespace coffre::test_support
