#include "coffre/http/server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http/connection.h"

namespace coffre::http {

namespace {

using asio::ip::tcp;
using boost::system::error_code;
using internal::Connection;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

// After an accept error other than a stop (typically EMFILE), wait before retrying so a
// descriptor shortage does not turn the accept loop into a busy loop.
constexpr std::chrono::milliseconds kAcceptBackoff{100};

// Shared between the Server object and its coroutines, so that destroying the Server while
// connections are still finishing leaves them valid memory to finish with.
struct ServerState {
  ServerState(asio::io_context& io_in, Handler& handler_in, ServerOptions options_in)
      : io(io_in),
        handler(handler_in),
        listen(std::make_shared<const ServerOptions>(std::move(options_in))),
        options(listen),
        strand(asio::make_strand(io_in)),
        acceptor(strand) {}

  void Remove(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu);
    connections.erase(id);
  }

  asio::io_context& io;
  Handler& handler;
  const std::shared_ptr<const ServerOptions> listen;  // as constructed: the address to bind
  std::shared_ptr<const ServerOptions> options;       // current limits; guarded by mu
  asio::strand<asio::io_context::executor_type> strand;
  tcp::acceptor acceptor;  // used only on `strand` once Start() has returned

  mutable std::mutex mu;
  bool started = false;
  bool stopping = false;
  uint64_t next_id = 0;
  std::unordered_map<uint64_t, std::shared_ptr<Connection>> connections;
};

asio::awaitable<void> ServeConnection(std::shared_ptr<ServerState> state, uint64_t id,
                                      std::shared_ptr<Connection> connection) {
  // Deregisters also when the frame is destroyed without finishing (io_context shut down).
  struct Deregister {
    ServerState& state;
    uint64_t id;
    ~Deregister() { state.Remove(id); }
  } deregister{*state, id};
  co_await connection->Run();
}

asio::awaitable<void> AcceptLoop(std::shared_ptr<ServerState> state) {
  asio::steady_timer backoff(state->strand);
  for (;;) {
    // Each connection gets its own strand: the io_context may be run by several threads.
    auto [ec, socket] = co_await state->acceptor.async_accept(asio::make_strand(state->io), kAsTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !state->acceptor.is_open()) {
        co_return;
      }
      backoff.expires_after(kAcceptBackoff);
      co_await backoff.async_wait(kAsTuple);
      if (!state->acceptor.is_open()) {
        co_return;
      }
      continue;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);

    std::shared_ptr<Connection> connection;
    uint64_t id = 0;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->stopping) {
        socket.close(ignored);
        co_return;
      }
      // Over the limit the connection is closed at once rather than answered with a 503: a
      // reply needs a coroutine, buffers and a write timeout for each refused client, the very
      // resources the limit rations. S3 clients retry a closed connection with backoff.
      if (state->connections.size() >= state->options->max_connections) {
        socket.close(ignored);
        continue;
      }
      id = state->next_id++;
      connection = std::make_shared<Connection>(std::move(socket), state->handler, state->options);
      state->connections.emplace(id, connection);
    }
    asio::co_spawn(connection->executor(), ServeConnection(state, id, connection), asio::detached);
  }
}

}  // namespace

struct Server::Impl {
  std::shared_ptr<ServerState> state;
};

Server::Server(asio::io_context& io, Handler& handler, ServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->state = std::make_shared<ServerState>(io, handler, std::move(options));
}

Server::~Server() { Stop(); }

Result<asio::ip::tcp::endpoint> Server::Start() {
  ServerState& state = *impl_->state;
  {
    std::lock_guard<std::mutex> lock(state.mu);
    if (state.started || state.stopping) {
      return Status::FailedPrecondition("server already started or stopped");
    }
  }
  const ServerOptions& options = *state.listen;
  const std::string where = options.listen_host + ":" + std::to_string(options.listen_port);

  error_code ec;
  tcp::endpoint endpoint;
  const auto address = asio::ip::make_address(options.listen_host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, options.listen_port);
  } else {
    // A host name ("localhost"): resolved once, at start-up, before any request is served.
    tcp::resolver resolver(state.io);
    auto results =
        resolver.resolve(options.listen_host, std::to_string(options.listen_port), tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return Status::Unavailable("cannot resolve " + where + ": " + (ec ? ec.message() : "no address"));
    }
    endpoint = results.begin()->endpoint();
  }

  auto step_failed = [&](const char* step) {
    error_code ignored;
    state.acceptor.close(ignored);
    return Status::Unavailable(std::string(step) + " " + where + ": " + ec.message());
  };
  state.acceptor.open(endpoint.protocol(), ec);
  if (ec) {
    return step_failed("open");
  }
  state.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) {
    return step_failed("set SO_REUSEADDR on");
  }
  state.acceptor.bind(endpoint, ec);
  if (ec) {
    return step_failed("bind");
  }
  state.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return step_failed("listen on");
  }
  const auto bound = state.acceptor.local_endpoint(ec);
  if (ec) {
    return step_failed("local_endpoint of");
  }
  {
    std::lock_guard<std::mutex> lock(state.mu);
    state.started = true;
  }
  asio::co_spawn(state.strand, AcceptLoop(impl_->state), asio::detached);
  return bound;
}

void Server::Stop() {
  std::shared_ptr<ServerState> state = impl_->state;
  std::vector<std::shared_ptr<Connection>> connections;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    if (state->stopping) {
      return;
    }
    state->stopping = true;
    connections.reserve(state->connections.size());
    for (const auto& [id, connection] : state->connections) {
      connections.push_back(connection);
    }
  }
  // Posted, not done here: the acceptor and each connection belong to their strands, and Stop()
  // may be called from any thread (a signal handler's, a test's, a request handler's).
  asio::post(state->strand, [state] {
    error_code ignored;
    state->acceptor.close(ignored);
  });
  for (auto& connection : connections) {
    asio::post(connection->executor(), [connection] { connection->RequestStop(); });
  }
}

void Server::UpdateLimits(const ServerOptions& options) {
  ServerState& state = *impl_->state;
  std::lock_guard<std::mutex> lock(state.mu);
  auto next = std::make_shared<ServerOptions>(options);
  next->listen_host = state.listen->listen_host;
  next->listen_port = state.listen->listen_port;
  next->server_header = state.listen->server_header;
  state.options = std::move(next);
}

size_t Server::open_connections() const {
  std::lock_guard<std::mutex> lock(impl_->state->mu);
  return impl_->state->connections.size();
}

}  // namespace coffre::http
