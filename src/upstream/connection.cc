#include "upstream/connection.h"

#include <openssl/ssl.h>
#include <poll.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <string>
#include <utility>

namespace coffre::upstream {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using boost::system::error_code;

constexpr size_t kReadPiece = 64 * 1024;

bool IsIpLiteral(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

Connection::Connection(const Endpoint& endpoint) : endpoint_(endpoint), last_used_(std::chrono::steady_clock::now()) {}

Connection::~Connection() = default;

Result<std::unique_ptr<Connection>> Connection::Open(const Endpoint& endpoint, asio::ssl::context* tls,
                                                     std::chrono::milliseconds connect_timeout, SteadyTime deadline) {
  std::unique_ptr<Connection> connection(new Connection(endpoint));
  COFFRE_RETURN_IF_ERROR(connection->Connect(connect_timeout, deadline, tls));
  return connection;
}

// Runs one asynchronous operation to its end on this thread; the stream's expiry (Expire) turns a
// stalled operation into beast::error::timeout.
template <typename Op>
error_code Connection::Run(Op&& op) {
  error_code result;
  std::forward<Op>(op)([&result](error_code ec, auto&&...) { result = ec; });
  io_.restart();
  io_.run();
  return result;
}

// Calls `fn` with the stream requests travel on: the TLS stream, or the TCP one.
template <typename Fn>
void Connection::OnStream(Fn&& fn) {
  if (secure_) {
    fn(*secure_);
  } else {
    fn(*plain_);
  }
}

beast::tcp_stream& Connection::tcp() { return secure_ ? secure_->next_layer() : *plain_; }

void Connection::Expire(std::chrono::milliseconds timeout, SteadyTime deadline) {
  tcp().expires_at(std::min(std::chrono::steady_clock::now() + timeout, deadline));
}

Status Connection::Failure(std::string_view step, const error_code& ec) const {
  std::string message =
      "upstream " + endpoint_.connect_host + ":" + std::to_string(endpoint_.port) + ": " + std::string(step) + ": ";
  message += ec == beast::error::timeout ? std::string("timed out") : ec.message();
  return Status::Unavailable(std::move(message));
}

Status Connection::Connect(std::chrono::milliseconds connect_timeout, SteadyTime deadline, asio::ssl::context* tls) {
  plain_ = std::make_unique<beast::tcp_stream>(io_);
  asio::ip::tcp::resolver resolver(io_);
  asio::ip::tcp::resolver::results_type endpoints;
  error_code ec = Run([&](auto handler) {
    resolver.async_resolve(endpoint_.connect_host, std::to_string(endpoint_.port),
                           [&endpoints, handler](error_code e, asio::ip::tcp::resolver::results_type r) mutable {
                             endpoints = std::move(r);
                             handler(e);
                           });
  });
  if (ec) {
    return Failure("resolving the host name", ec);
  }
  Expire(connect_timeout, deadline);
  ec = Run([&](auto handler) { plain_->async_connect(endpoints, std::move(handler)); });
  if (ec) {
    return Failure("connecting", ec);
  }
  plain_->socket().set_option(asio::ip::tcp::no_delay(true), ec);
  if (tls == nullptr) {
    return Status::Ok();
  }
  secure_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*plain_), *tls);
  plain_.reset();
  Expire(connect_timeout, deadline);
  return Handshake();
}

Status Connection::Handshake() {
  // SNI names the host unless it is an address (RFC 6066 forbids literal addresses there).
  if (!IsIpLiteral(endpoint_.connect_host) &&
      SSL_set_tlsext_host_name(secure_->native_handle(), endpoint_.connect_host.c_str()) != 1) {
    return Status::Internal("upstream: cannot set the TLS server name");
  }
  secure_->set_verify_mode(asio::ssl::verify_peer);
  secure_->set_verify_callback(asio::ssl::host_name_verification(endpoint_.connect_host));
  const error_code ec = Run([&](auto handler) { secure_->async_handshake(asio::ssl::stream_base::client, handler); });
  if (!ec) {
    return Status::Ok();
  }
  if (ec == beast::error::timeout || ec.category() != asio::error::get_ssl_category()) {
    return Failure("TLS handshake", ec);
  }
  return Status::FailedPrecondition("upstream " + endpoint_.connect_host + ": TLS handshake failed: " + ec.message());
}

Status Connection::WriteHead(RequestHead& head, std::chrono::milliseconds timeout, SteadyTime deadline) {
  broken_ = true;  // until the whole exchange is done
  Expire(timeout, deadline);
  error_code ec =
      Run([&](auto handler) { OnStream([&](auto& stream) { bhttp::async_write(stream, head, std::move(handler)); }); });
  return ec ? Failure("sending the request", ec) : Status::Ok();
}

Status Connection::WriteBody(ByteView piece, std::chrono::milliseconds timeout, SteadyTime deadline) {
  Expire(timeout, deadline);
  error_code ec = Run([&](auto handler) {
    OnStream(
        [&](auto& stream) { asio::async_write(stream, asio::buffer(piece.data(), piece.size()), std::move(handler)); });
  });
  return ec ? Failure("sending the request body", ec) : Status::Ok();
}

Result<Connection::ResponseHead> Connection::ReadHead(bool head_request, std::chrono::milliseconds timeout,
                                                      SteadyTime deadline) {
  parser_.emplace();
  parser_->body_limit(boost::none);  // bodies stream through ReadBody, never held whole
  parser_->skip(head_request);
  Expire(timeout, deadline);
  error_code ec = Run([&](auto handler) {
    OnStream([&](auto& stream) { bhttp::async_read_header(stream, buffer_, *parser_, std::move(handler)); });
  });
  if (ec) {
    return Failure("reading the answer", ec);
  }
  return ResponseHead(parser_->get().base());
}

// Reads what has arrived, not until the piece is full, so the caller sees bytes as they come (and
// an answer cut short after some bytes reached the caller is not retried behind its back).
Status Connection::ReadBody(const BodySink& sink, std::chrono::milliseconds timeout, SteadyTime deadline) {
  piece_.resize(kReadPiece);
  while (!parser_->is_done()) {
    parser_->get().body().data = piece_.data();
    parser_->get().body().size = piece_.size();
    Expire(timeout, deadline);
    error_code ec = Run([&](auto handler) {
      OnStream([&](auto& stream) { bhttp::async_read_some(stream, buffer_, *parser_, std::move(handler)); });
    });
    if (ec && ec != bhttp::error::need_buffer) {
      return Failure("reading the answer's body", ec);
    }
    const size_t received = piece_.size() - parser_->get().body().size;
    if (received > 0) {
      COFFRE_RETURN_IF_ERROR(sink(ByteView(piece_.data(), received)));
    }
  }
  broken_ = !parser_->keep_alive();
  Touch();
  return Status::Ok();
}

bool Connection::Reusable() const { return !broken_ && parser_ && parser_->is_done(); }

bool Connection::ClosedByPeer() const {
  // Between exchanges the server has nothing to say: anything readable is its FIN, a reset, or a
  // TLS close_notify, and the next request on this connection would fail.
  pollfd fd{};
  fd.fd = const_cast<Connection*>(this)->tcp().socket().native_handle();
  fd.events = POLLIN;
  return ::poll(&fd, 1, 0) != 0;
}

ConnectionPool::ConnectionPool(const S3ClientOptions& options, const Endpoint& endpoint, asio::ssl::context* tls,
                               ClientCounters& counters)
    : options_(options), endpoint_(endpoint), tls_(tls), counters_(counters) {}

std::unique_ptr<Connection> ConnectionPool::TakeIdle() {
  const SteadyTime now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  while (!idle_.empty()) {
    std::unique_ptr<Connection> connection = std::move(idle_.front());
    idle_.pop_front();
    if (now - connection->last_used() < options_.pool_idle_timeout && !connection->ClosedByPeer()) {
      return connection;
    }
  }
  return nullptr;
}

Result<std::unique_ptr<Connection>> ConnectionPool::Acquire(SteadyTime deadline) {
  if (std::unique_ptr<Connection> idle = TakeIdle()) {
    return idle;
  }
  counters_.connections_opened.fetch_add(1, std::memory_order_relaxed);
  return Connection::Open(endpoint_, tls_, options_.connect_timeout, deadline);
}

void ConnectionPool::Release(std::unique_ptr<Connection> connection) {
  if (!connection->Reusable()) {
    return;
  }
  std::lock_guard lock(mutex_);
  if (idle_.size() < options_.max_idle_connections) {
    idle_.push_front(std::move(connection));
  }
}

}  // namespace coffre::upstream
