#pragma once

// An http::Server for tests that drive a handler over a real socket: it listens on 127.0.0.1 on
// a port the kernel picks and runs its io_context on a thread of its own. Stop() (also run by the
// destructor) closes it and joins that thread; a handler that posts work to a pool must outlive
// it, and the pool is joined after it.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "coffre/http/server.h"

namespace coffre::test_support {

class LoopbackServer {
 public:
  LoopbackServer() = default;
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;
  ~LoopbackServer() { Stop(); }

  // Use as ASSERT_TRUE(server.Start(handler)); a failure says why the server could not listen.
  ::testing::AssertionResult Start(http::Handler& handler, http::ServerOptions options = {}) {
    options.listen_host = "127.0.0.1";
    options.listen_port = 0;
    server_ = std::make_unique<http::Server>(io_, handler, std::move(options));
    auto endpoint = server_->Start();
    if (!endpoint.ok()) return ::testing::AssertionFailure() << "cannot listen: " << endpoint.status().message();
    port_ = endpoint->port();
    thread_ = std::thread([this] { io_.run(); });
    return ::testing::AssertionSuccess();
  }

  void Stop() {
    server_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  uint16_t port() const { return port_; }

 private:
  boost::asio::io_context io_;
  std::unique_ptr<http::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace coffre::test_support
