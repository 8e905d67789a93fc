#pragma once

// One keep-alive HTTP/1.1 connection to the upstream (TCP, or TLS over it), used by one thread at
// a time, and the pool that lends them out. Each connection runs its own io_context on the calling
// thread for the steps that are composed operations (connect, handshake, an answer's head), with
// the step's limit as the time the io_context may wait, so a blocking call still puts a deadline on
// every step. Bodies, where the bytes are, are read (and over TCP written) straight from the
// non-blocking socket, waiting in poll only when nothing can move.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/status.h"
#include "coffre/upstream/counters.h"
#include "coffre/upstream/options.h"
#include "coffre/upstream/s3_client.h"

namespace coffre::upstream {

using SteadyTime = std::chrono::steady_clock::time_point;

// Transport failures are Unavailable (worth retrying: reset, refused, timed out, closed early)
// except a failed TLS handshake, FailedPrecondition: a certificate that does not verify will not
// verify on the next try either.
class Connection {
 public:
  using RequestHead = boost::beast::http::request<boost::beast::http::empty_body>;
  using ResponseHead = boost::beast::http::response_header<>;

  static Result<std::unique_ptr<Connection>> Open(const Endpoint& endpoint, boost::asio::ssl::context* tls,
                                                  std::chrono::milliseconds connect_timeout, SteadyTime deadline);
  ~Connection();

  // Every step below must finish within `timeout` and before `deadline`.
  Status WriteHead(RequestHead& head, std::chrono::milliseconds timeout, SteadyTime deadline);
  Status WriteBody(ByteView piece, std::chrono::milliseconds timeout, SteadyTime deadline);
  // `head_request`: the answer has no body whatever its Content-Length says.
  Result<ResponseHead> ReadHead(bool head_request, std::chrono::milliseconds timeout, SteadyTime deadline);
  // Passes the body to `sink` piece by piece until its end.
  Status ReadBody(const BodySink& sink, std::chrono::milliseconds timeout, SteadyTime deadline);

  // Whether the last exchange ended cleanly and the server keeps the connection open.
  bool Reusable() const;
  // Whether the server closed (or wrote to) the connection while it sat idle in the pool.
  bool ClosedByPeer() const;
  SteadyTime last_used() const { return last_used_; }
  void Touch() { last_used_ = std::chrono::steady_clock::now(); }

 private:
  explicit Connection(const Endpoint& endpoint);
  Status Connect(std::chrono::milliseconds connect_timeout, SteadyTime deadline, boost::asio::ssl::context* tls);
  Status Handshake(SteadyTime limit);
  boost::beast::tcp_stream& tcp();
  // When a step that may take `timeout` must end.
  static SteadyTime Limit(std::chrono::milliseconds timeout, SteadyTime deadline);
  bool AwaitReady(short events, SteadyTime limit);
  void AckPromptly();
  Status Failure(std::string_view step, const boost::system::error_code& ec) const;
  template <typename Op>
  boost::system::error_code Run(Op&& op, SteadyTime limit);
  template <typename Fn>
  void OnStream(Fn&& fn);

  const Endpoint& endpoint_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::beast::tcp_stream> plain_;
  std::unique_ptr<boost::beast::ssl_stream<boost::beast::tcp_stream>> secure_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::response_parser<boost::beast::http::buffer_body>> parser_;
  std::vector<uint8_t> piece_;
  bool broken_ = false;
  SteadyTime last_used_;
};

// Idle connections to the one endpoint, most recently used first. Thread-safe.
class ConnectionPool {
 public:
  ConnectionPool(const S3ClientOptions& options, const Endpoint& endpoint, boost::asio::ssl::context* tls,
                 ClientCounters& counters);
  // An idle connection that is still open, or a new one.
  Result<std::unique_ptr<Connection>> Acquire(SteadyTime deadline);
  // Keeps the connection for reuse if its last exchange allows it and there is room.
  void Release(std::unique_ptr<Connection> connection);

 private:
  std::unique_ptr<Connection> TakeIdle();

  const S3ClientOptions& options_;
  const Endpoint& endpoint_;
  boost::asio::ssl::context* tls_;
  ClientCounters& counters_;
  std::mutex mutex_;
  std::deque<std::unique_ptr<Connection>> idle_;
};

}  // namespace coffre::upstream
