#pragma once

// One accepted TCP connection: reads requests one at a time, hands each to the Handler as an
// Exchange, and decides after each response whether the connection can carry another request.
// Private to the http module.

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "coffre/http/server.h"

namespace coffre::http::internal {

class ExchangeImpl;

// The connection's byte stream: plain TCP, or TLS over TCP. Beast's HTTP algorithms see one
// stream type either way; the timeouts live on the TCP layer in both cases.
class Transport {
 public:
  using executor_type = asio::any_io_executor;

  // `tls` null: plain TCP.
  Transport(asio::ip::tcp::socket socket, const std::shared_ptr<asio::ssl::context>& tls) {
    if (tls) {
      tls_.emplace(boost::beast::tcp_stream(std::move(socket)), *tls);
    } else {
      plain_.emplace(std::move(socket));
    }
  }

  executor_type get_executor() { return tcp().get_executor(); }
  bool is_tls() const { return tls_.has_value(); }
  boost::beast::tcp_stream& tcp() { return tls_ ? tls_->next_layer() : *plain_; }
  asio::ip::tcp::socket& socket() { return tcp().socket(); }
  void expires_after(std::chrono::steady_clock::duration d) { tcp().expires_after(d); }
  void cancel() { tcp().cancel(); }
  void close() { tcp().close(); }

  // The server side of the TLS handshake; only when is_tls().
  template <typename Token>
  auto async_handshake(Token&& token) {
    return tls_->async_handshake(asio::ssl::stream_base::server, std::forward<Token>(token));
  }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (tls_) {
            tls_->async_read_some(b, std::move(handler));
          } else {
            plain_->async_read_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (tls_) {
            tls_->async_write_some(b, std::move(handler));
          } else {
            plain_->async_write_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

 private:
  std::optional<boost::beast::tcp_stream> plain_;
  std::optional<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls_;
};

class Connection {
 public:
  // `socket` must be bound to an executor that serialises this connection's work (a strand):
  // every member below runs on it.
  Connection(asio::ip::tcp::socket socket, Handler& handler, std::shared_ptr<const ServerOptions> options);

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
  Transport stream_;
  boost::beast::flat_buffer buffer_;
  Handler& handler_;
  std::shared_ptr<const ServerOptions> options_;
  std::string remote_;
  bool idle_ = false;
  bool stop_requested_ = false;
};

}  // namespace coffre::http::internal
