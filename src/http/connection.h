#pragma once

// One accepted TCP connection: reads requests one at a time, hands each to the Handler as an
// Exchange, and decides after each response whether the connection can carry another request.
// Private to the http module.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <memory>
#include <string>

#include "coffre/http/server.h"

namespace coffre::http::internal {

class ExchangeImpl;

class Connection {
 public:
  // `socket` must be bound to an executor that serialises this connection's work (a strand):
  // every member below runs on it.
  Connection(asio::ip::tcp::socket socket, Handler& handler,
             std::shared_ptr<const ServerOptions> options);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Serves requests until the client leaves, an error forces a close, or RequestStop().
  asio::awaitable<void> Run();

  // Graceful stop, to be called on executor(): an idle keep-alive connection closes now; a
  // connection inside a request finishes it and then closes.
  void RequestStop();

  // Safe to call from any thread.
  const asio::any_io_executor& executor() const { return executor_; }

 private:
  friend class ExchangeImpl;

  // Waits up to idle_timeout for the first byte of the next request. False: close.
  asio::awaitable<bool> WaitForRequest();
  // Answers a request that never reached the handler (bad framing, oversized header).
  asio::awaitable<void> Reject(unsigned status, const char* code, const char* message);
  // `linger`: the client may still be sending (a rejected body, a broken header), so read and
  // discard for a moment after our FIN; closing with unread data makes the kernel send RST,
  // which can destroy the error response before the client reads it.
  asio::awaitable<void> Close(bool linger);

  const asio::any_io_executor executor_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  Handler& handler_;
  std::shared_ptr<const ServerOptions> options_;
  std::string remote_;
  bool idle_ = false;
  bool stop_requested_ = false;
};

}  // namespace coffre::http::internal
