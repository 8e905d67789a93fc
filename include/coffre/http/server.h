#pragma once

// The HTTP/1.1 listener (Boost.Beast): connections, keep-alive, timeouts, header limits,
// `Expect: 100-continue`, streamed request and response bodies. It knows nothing of S3: each
// request is handed to a Handler as an Exchange.
//
// Threading: the server runs on the io_context it is given; one coroutine per connection, one
// request at a time per connection. Handlers must not block the io_context: blocking work goes
// to a thread pool through RunBlocking().

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "coffre/common/status.h"

namespace coffre::http {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

using RequestHeader = bhttp::request_header<bhttp::fields>;
using ResponseHeader = bhttp::response_header<bhttp::fields>;

// Why reading the request body stopped early.
enum class BodyError {
  kNone,
  kTimeout,       // no bytes within the read timeout (slow client)
  kDisconnected,  // the client closed or reset the connection
  kMalformed,     // invalid chunked framing or a body larger than Content-Length allows
  kTooLarge,      // over the configured body limit
};

// One request/response exchange on a connection.
class Exchange {
 public:
  virtual ~Exchange() = default;

  virtual const RequestHeader& request() const = 0;
  virtual const std::string& remote_address() const = 0;  // "ip:port"
  // Content-Length of the request body, when the client sent one (nullopt with chunked transfer).
  virtual std::optional<uint64_t> content_length() const = 0;

  // Reads up to out.size() body bytes; 0 when the body is complete. The first call sends
  // "100 Continue" if the client asked for it, so a handler that rejects the request before
  // reading never makes the client send the body. On error the connection will be closed.
  virtual asio::awaitable<std::pair<size_t, BodyError>> ReadBody(std::span<uint8_t> out) = 0;
  virtual bool body_complete() const = 0;

  // Sends a complete response (Content-Length set from the body). Returns false if the
  // connection failed. Sets Connection: close when the request body was not fully read.
  virtual asio::awaitable<bool> Send(bhttp::response<bhttp::string_body> response) = 0;

  // Streams a response: first the header (Content-Length must be set by the caller; for HEAD
  // and 304 no body follows and SendBody() discards its data), then body pieces whose sizes add
  // up to it, then FinishBody(). Without a Content-Length an HTTP/1.1 body is sent chunked. When
  // a body follows, the header goes out with its first piece (or with FinishBody), in one write:
  // a failure to send it is then reported by that call.
  virtual asio::awaitable<bool> SendHeader(ResponseHeader header) = 0;
  virtual asio::awaitable<bool> SendBody(std::span<const uint8_t> data) = 0;
  virtual asio::awaitable<bool> FinishBody() = 0;
  virtual bool response_started() const = 0;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Must send exactly one response (unless the connection failed).
  virtual asio::awaitable<void> Handle(Exchange& exchange) = 0;
};

struct ServerOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 9000;            // 0: pick a free port
  size_t max_header_bytes = 16 * 1024;    // larger header sections get 431
  size_t max_connections = 1024;          // beyond it, new connections are accepted and closed
  std::chrono::seconds idle_timeout{60};  // between requests on a keep-alive connection
  std::chrono::seconds read_timeout{30};  // no progress while reading a header or body
  std::chrono::seconds write_timeout{60};
  std::string server_header = "Coffre";
  // TLS (LoadTlsContext()); null: plain HTTP. Each connection keeps the context it was accepted
  // with, so replacing it (UpdateLimits) reloads the certificate without dropping connections.
  std::shared_ptr<asio::ssl::context> tls;
};

class Server {
 public:
  Server(asio::io_context& io, Handler& handler, ServerOptions options);
  ~Server();

  // Binds and starts accepting. Returns the bound endpoint (the real port when 0 was asked);
  // Unavailable when the address cannot be resolved or bound, FailedPrecondition when started twice.
  Result<asio::ip::tcp::endpoint> Start();
  // Stops accepting; open connections finish their current request and close.
  void Stop();
  size_t open_connections() const;
  // Replaces the limits, timeouts and TLS context (everything but the listen address and the
  // server header) for connections accepted from now on; open connections keep the options they
  // started with. Thread-safe.
  void UpdateLimits(const ServerOptions& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

namespace detail {
// Hands `schedule` a job that runs f() and then resumes the calling coroutine on its own executor
// with the result; `schedule` decides where and when the job runs.
template <typename F, typename Schedule>
auto RunScheduled(F& f, Schedule schedule) -> asio::awaitable<decltype(f())> {
  using R = decltype(f());
  using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  std::optional<Stored> result;
  std::exception_ptr failure;
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [&schedule, &f, &result, &failure](auto handler) {
        schedule([&f, &result, &failure, handler = std::move(handler)]() mutable {
          try {
            if constexpr (std::is_void_v<R>) {
              f();
              result.emplace();
            } else {
              result.emplace(f());
            }
          } catch (...) {
            failure = std::current_exception();
          }
          auto executor = asio::get_associated_executor(handler);
          asio::post(executor, std::move(handler));
        });
      },
      asio::use_awaitable);
  if (failure) {
    std::rethrow_exception(failure);
  }
  if constexpr (!std::is_void_v<R>) {
    co_return std::move(*result);
  }
}
}  // namespace detail

// Runs f() on `pool` and resumes the calling coroutine on its own executor with the result.
// R may be move-only (std::unique_ptr) or void. The caller must be a co_spawn'ed coroutine: its
// spawn keeps the io_context's run() from returning while f() is away on the pool. An exception
// thrown by f() is rethrown in the caller instead of escaping on a pool thread (which would
// terminate the process). `pool` and the caller's io_context must outlive the call.
template <typename F>
auto RunBlocking(asio::thread_pool& pool, F f) -> asio::awaitable<decltype(f())> {
  co_return co_await detail::RunScheduled(f, [&pool](auto job) { asio::post(pool, std::move(job)); });
}

// As RunBlocking, but f() starts only once a notification has come, and the caller holds no thread
// meanwhile: subscribe(notify) is called at once, and notify() may be called from any thread (from
// inside subscribe too), at most once; it posts f() to `pool`. One hand-off fewer than awaiting
// the notification on the caller's executor and then calling RunBlocking. `pool` and the caller's
// io_context must still exist when notify() is called.
template <typename Subscribe, typename F>
auto RunBlockingWhen(asio::thread_pool& pool, Subscribe subscribe, F f) -> asio::awaitable<decltype(f())> {
  co_return co_await detail::RunScheduled(f, [&pool, &subscribe](auto job) {
    // std::function needs a copyable target; the job holds the move-only handler, so it is shared.
    auto shared = std::make_shared<decltype(job)>(std::move(job));
    subscribe(std::function<void()>([&pool, shared] { asio::post(pool, std::move(*shared)); }));
  });
}

// Resumes the calling coroutine on its own executor once a notification has come, holding no
// thread meanwhile: subscribe(notify) is called at once, and notify() may be called from any thread
// (from inside subscribe too), at most once; it only posts the coroutine's resumption. The caller's
// io_context must still exist when notify() is called.
template <typename Subscribe>
asio::awaitable<void> WaitForNotification(Subscribe subscribe) {
  auto nothing = [] {};
  co_await detail::RunScheduled(nothing, [&subscribe](auto job) {
    auto shared = std::make_shared<decltype(job)>(std::move(job));
    subscribe(std::function<void()>([shared] { (*shared)(); }));
  });
}

}  // namespace coffre::http
