#include "upstream/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

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
#include <cerrno>
#include <string>
#include <utility>

namespace coffre::upstream {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using boost::system::error_code;

// The most an answer's body is read by, and handed to the caller by: large enough that a fast
// upstream costs few system calls per megabyte.
constexpr size_t kReadPiece = 256 * 1024;

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

// Runs one asynchronous operation on this thread until it ends or `limit` passes, when the socket
// is closed (which ends the operation) and the result is beast::error::timeout. No timer is armed:
// the io_context waits in epoll_wait with the time left, so a deadline costs no system call.
template <typename Op>
error_code Connection::Run(Op&& op, SteadyTime limit) {
  bool done = false;
  error_code result;
  std::forward<Op>(op)([&done, &result](error_code ec, auto&&...) {
    result = ec;
    done = true;
  });
  io_.restart();
  while (!done) {
    if (io_.run_one_until(limit) == 0 && !done && std::chrono::steady_clock::now() >= limit) {
      tcp().close();
      io_.restart();
      while (!done && io_.run_one() > 0) {
      }
      return beast::error::timeout;
    }
  }
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

SteadyTime Connection::Limit(std::chrono::milliseconds timeout, SteadyTime deadline) {
  return std::min(std::chrono::steady_clock::now() + timeout, deadline);
}

// Waits until the socket can be read (or written) or `limit` passes; false on the latter. poll is
// level-triggered, so readiness that arrived before the call is seen too.
bool Connection::AwaitReady(short events, SteadyTime limit) {
  pollfd fd{};
  fd.fd = tcp().socket().native_handle();
  fd.events = events;
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(limit - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    const int ready = ::poll(&fd, 1, static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
    if (ready > 0 || (ready < 0 && errno != EINTR)) {
      return true;  // the read or write that follows reports any error
    }
  }
}

// Asks the kernel to acknowledge what arrives next at once rather than after its delayed-ACK timer
// (up to 40 ms). A server that writes an answer's head and body apart with Nagle's algorithm on
// (Ceph RGW's beast frontend by default) holds the body until the head is acknowledged, so a small
// answer would otherwise wait out that timer. The kernel leaves quick-ACK mode by itself, hence a
// call before each wait for the server.
void Connection::AckPromptly() {
  const int one = 1;
  ::setsockopt(tcp().socket().native_handle(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
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
  // Resolution cannot be cut short (the resolver's thread sits in getaddrinfo), so it has no limit.
  error_code ec = Run(
      [&](auto handler) {
        resolver.async_resolve(endpoint_.connect_host, std::to_string(endpoint_.port),
                               [&endpoints, handler](error_code e, asio::ip::tcp::resolver::results_type r) mutable {
                                 endpoints = std::move(r);
                                 handler(e);
                               });
      },
      SteadyTime::max());
  if (ec) {
    return Failure("resolving the host name", ec);
  }
  ec = Run([&](auto handler) { plain_->async_connect(endpoints, std::move(handler)); },
           Limit(connect_timeout, deadline));
  if (ec) {
    return Failure("connecting", ec);
  }
  plain_->socket().set_option(asio::ip::tcp::no_delay(true), ec);
  // Reads and plain writes are tried at once and return would_block rather than wait; the waits
  // are AwaitReady's (asynchronous operations are not affected).
  plain_->socket().non_blocking(true, ec);
  if (ec) {
    return Failure("configuring the socket", ec);
  }
  if (tls == nullptr) {
    return Status::Ok();
  }
  secure_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*plain_), *tls);
  plain_.reset();
  return Handshake(Limit(connect_timeout, deadline));
}

Status Connection::Handshake(SteadyTime limit) {
  // SNI names the host unless it is an address (RFC 6066 forbids literal addresses there).
  if (!IsIpLiteral(endpoint_.connect_host) &&
      SSL_set_tlsext_host_name(secure_->native_handle(), endpoint_.connect_host.c_str()) != 1) {
    return Status::Internal("upstream: cannot set the TLS server name");
  }
  secure_->set_verify_mode(asio::ssl::verify_peer);
  secure_->set_verify_callback(asio::ssl::host_name_verification(endpoint_.connect_host));
  const error_code ec =
      Run([&](auto handler) { secure_->async_handshake(asio::ssl::stream_base::client, handler); }, limit);
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
  error_code ec =
      Run([&](auto handler) { OnStream([&](auto& stream) { bhttp::async_write(stream, head, std::move(handler)); }); },
          Limit(timeout, deadline));
  return ec ? Failure("sending the request", ec) : Status::Ok();
}

// The piece must be through within `timeout`, as one step. Over TCP it is sent straight from this
// thread, waiting only when the socket's buffer is full. Over TLS a write may need several records
// to go out whole, which a non-blocking write could cut, so the io_context sends it.
Status Connection::WriteBody(ByteView piece, std::chrono::milliseconds timeout, SteadyTime deadline) {
  const SteadyTime limit = Limit(timeout, deadline);
  error_code ec;
  if (secure_) {
    ec = Run([&](auto handler) { asio::async_write(*secure_, asio::buffer(piece.data(), piece.size()), handler); },
             limit);
  } else {
    while (!piece.empty()) {
      const size_t sent = plain_->socket().write_some(asio::buffer(piece.data(), piece.size()), ec);
      piece = piece.subspan(sent);
      if (ec == asio::error::would_block) {
        ec = AwaitReady(POLLOUT, limit) ? error_code() : error_code(beast::error::timeout);
      }
      if (ec) {
        break;
      }
    }
  }
  return ec ? Failure("sending the request body", ec) : Status::Ok();
}

Result<Connection::ResponseHead> Connection::ReadHead(bool head_request, std::chrono::milliseconds timeout,
                                                      SteadyTime deadline) {
  parser_.emplace();
  parser_->body_limit(boost::none);  // bodies stream through ReadBody, never held whole
  parser_->skip(head_request);
  AckPromptly();
  error_code ec = Run(
      [&](auto handler) {
        OnStream([&](auto& stream) { bhttp::async_read_header(stream, buffer_, *parser_, std::move(handler)); });
      },
      Limit(timeout, deadline));
  if (ec) {
    return Failure("reading the answer", ec);
  }
  AckPromptly();  // the body may be waiting for the head's acknowledgement
  return ResponseHead(parser_->get().base());
}

// Reads straight from the socket on this thread: what has arrived is taken in large reads without
// waiting, and only when nothing is there does the thread wait, after handing the caller what it
// has (so the caller sees bytes as they come, and an answer cut short after some bytes reached the
// caller is not retried behind its back). Each wait may last `timeout`: an upstream that stops
// sending for that long is cut. Reading a TLS record is safe without blocking: asio keeps what it
// read, and its only writes (a key update's answer) go to a send buffer this exchange left empty.
Status Connection::ReadBody(const BodySink& sink, std::chrono::milliseconds timeout, SteadyTime deadline) {
  // A body of known length needs no larger buffers than itself: small answers stay small.
  const size_t read_size = static_cast<size_t>(
      std::clamp<uint64_t>(parser_->content_length_remaining().value_or(kReadPiece), 1, kReadPiece));
  piece_.resize(read_size);
  size_t filled = 0;
  const auto deliver = [&]() -> Status {
    const size_t size = std::exchange(filled, 0);
    return size == 0 ? Status::Ok() : sink(ByteView(piece_.data(), size));
  };
  const auto fail = [&](const error_code& ec) -> Status {
    COFFRE_RETURN_IF_ERROR(deliver());
    return Failure("reading the answer's body", ec);
  };
  parser_->eager(true);  // one put() parses everything the buffer holds
  SteadyTime limit = Limit(timeout, deadline);
  while (!parser_->is_done()) {
    if (buffer_.size() > 0) {
      auto& body = parser_->get().body();
      body.data = piece_.data() + filled;
      body.size = piece_.size() - filled;
      error_code ec;
      buffer_.consume(parser_->put(buffer_.data(), ec));
      filled = piece_.size() - body.size;
      if (ec && ec != bhttp::error::need_buffer && ec != bhttp::error::need_more) {
        return fail(ec);
      }
      if (filled == piece_.size()) {
        COFFRE_RETURN_IF_ERROR(deliver());
      }
      if (ec != bhttp::error::need_more) {
        continue;  // done, or room was made for the rest of the buffer
      }
    }
    error_code ec;
    const asio::mutable_buffer space = buffer_.prepare(read_size);
    const size_t got = secure_ ? secure_->read_some(space, ec) : plain_->socket().read_some(space, ec);
    buffer_.commit(got);
    if (got > 0) {
      limit = Limit(timeout, deadline);
      continue;
    }
    if (ec == asio::error::would_block) {
      COFFRE_RETURN_IF_ERROR(deliver());
      AckPromptly();
      if (!AwaitReady(POLLIN, limit)) {
        return fail(beast::error::timeout);
      }
    } else if (ec == asio::error::eof) {
      // The end of a body that runs to the connection's close, or of one cut short.
      parser_->put_eof(ec);
      if (ec) {
        return fail(ec);
      }
    } else {
      return fail(ec);
    }
  }
  COFFRE_RETURN_IF_ERROR(deliver());
  broken_ = !parser_->keep_alive();
  // An idle connection in the pool holds no body buffers: many readers' connections would
  // otherwise keep a large GET's buffers each, long after it ended.
  piece_ = std::vector<uint8_t>();
  if (buffer_.size() == 0) {
    buffer_.shrink_to_fit();
  }
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
