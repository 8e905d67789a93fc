#include "coffre/http/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "http/raw_client.h"
#include "support/status_matchers.h"

namespace coffre::http {
namespace {

using test_support::StatusIs;
using ::testing::HasSubstr;

using namespace std::chrono_literals;
using testing::RawClient;
using testing::RawResponse;

class FnHandler : public Handler {
 public:
  using Fn = std::function<asio::awaitable<void>(Exchange&)>;

  asio::awaitable<void> Handle(Exchange& exchange) override {
    ++calls;
    co_await fn(exchange);
  }

  Fn fn;
  std::atomic<int> calls{0};
};

bhttp::response<bhttp::string_body> TextResponse(bhttp::status status, std::string body) {
  bhttp::response<bhttp::string_body> response{status, 11};
  response.set(bhttp::field::content_type, "text/plain");
  response.body() = std::move(body);
  return response;
}

asio::awaitable<void> Sleep(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::use_awaitable);
}

// Reads the whole body in `piece`-sized reads; returns it, or the first error.
asio::awaitable<std::pair<std::string, BodyError>> ReadAll(Exchange& exchange, size_t piece = 4096) {
  std::vector<uint8_t> buffer(piece);
  std::string body;
  for (;;) {
    auto [n, error] = co_await exchange.ReadBody(buffer);
    if (error != BodyError::kNone) {
      co_return std::pair{body, error};
    }
    if (n == 0) {
      co_return std::pair{body, BodyError::kNone};
    }
    body.append(reinterpret_cast<const char*>(buffer.data()), n);
  }
}

uint64_t Fnv1a(uint64_t hash, const uint8_t* data, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    hash ^= data[i];
    hash *= 1099511628211ull;
  }
  return hash;
}
constexpr uint64_t kFnvOffset = 14695981039346656037ull;

template <typename Pred>
bool WaitUntil(Pred pred, std::chrono::milliseconds timeout = 2s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::string Get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

class HttpServerTest : public ::testing::Test {
 protected:
  static ServerOptions TestOptions() {
    ServerOptions options;
    options.listen_host = "127.0.0.1";
    options.listen_port = 0;
    options.idle_timeout = 5s;
    options.read_timeout = 5s;
    options.write_timeout = 5s;
    return options;
  }

  void StartServer(ServerOptions options = TestOptions(), int io_threads = 1) {
    server_ = std::make_unique<Server>(io_, handler_, options);
    auto endpoint = server_->Start();
    ASSERT_OK(endpoint);
    ASSERT_NE(endpoint->port(), 0);
    port_ = endpoint->port();
    for (int i = 0; i < io_threads; ++i) {
      threads_.emplace_back([this] { io_.run(); });
    }
  }

  void TearDown() override {
    server_.reset();
    io_.stop();
    for (auto& thread : threads_) {
      thread.join();
    }
  }

  // Handler answering "hello <target>".
  void EchoTarget() {
    handler_.fn = [](Exchange& exchange) -> asio::awaitable<void> {
      co_await exchange.Send(TextResponse(bhttp::status::ok, "hello " + std::string(exchange.request().target())));
    };
  }

  FnHandler handler_;
  asio::io_context io_;
  std::unique_ptr<Server> server_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
};

TEST_F(HttpServerTest, GetAndKeepAlive) {
  EchoTarget();
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send(Get("/a")));
  auto first = client.ReadResponse();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "hello /a");
  EXPECT_EQ(first->Header("Server"), "Coffre");
  EXPECT_NE(first->Header("Date").find(" GMT"), std::string::npos);
  EXPECT_FALSE(first->Has("Connection"));

  ASSERT_TRUE(client.Send(Get("/b")));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "hello /b");
  EXPECT_EQ(server_->open_connections(), 1u);
  EXPECT_EQ(handler_.calls, 2);
}

TEST_F(HttpServerTest, PipelinedRequestsAnsweredInOrder) {
  EchoTarget();
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/1") + Get("/2") + Get("/3")));
  for (const char* target : {"/1", "/2", "/3"}) {
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->body, std::string("hello ") + target);
  }
}

TEST_F(HttpServerTest, PutOneMebibyteReadIn64KiBPieces) {
  constexpr size_t kSize = 1 << 20;
  std::string payload(kSize, '\0');
  for (size_t i = 0; i < kSize; ++i) {
    payload[i] = static_cast<char>((i * 31 + i / 7) & 0xff);
  }
  const uint64_t expected = Fnv1a(kFnvOffset, reinterpret_cast<const uint8_t*>(payload.data()), kSize);

  std::atomic<size_t> largest_piece{0};
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    EXPECT_EQ(exchange.content_length(), std::optional<uint64_t>(kSize));
    std::vector<uint8_t> buffer(64 * 1024);
    uint64_t count = 0;
    uint64_t hash = kFnvOffset;
    for (;;) {
      auto [n, error] = co_await exchange.ReadBody(buffer);
      EXPECT_EQ(error, BodyError::kNone);
      if (n == 0 || error != BodyError::kNone) {
        break;
      }
      largest_piece = std::max<size_t>(largest_piece, n);
      hash = Fnv1a(hash, buffer.data(), n);
      count += n;
    }
    EXPECT_TRUE(exchange.body_complete());
    co_await exchange.Send(TextResponse(bhttp::status::ok, std::to_string(count) + ":" + std::to_string(hash)));
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(
      client.Send("PUT /bucket/key HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(kSize) + "\r\n\r\n"));
  ASSERT_TRUE(client.Send(payload));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, std::to_string(kSize) + ":" + std::to_string(expected));
  EXPECT_EQ(largest_piece, 64u * 1024);
}

// The body of a Content-Length request is read from the socket straight into the handler's
// buffer once the bytes that came with the header are used up. Those reads must stop at the
// body's end, even into a buffer larger than what is left of it: the next request, sent in the same
// packet as the body's tail, belongs to the parser.
TEST_F(HttpServerTest, BodyReadIntoALargerBufferLeavesThePipelinedRequest) {
  constexpr size_t kSize = 200000;
  std::string payload(kSize, '\0');
  for (size_t i = 0; i < kSize; ++i) {
    payload[i] = static_cast<char>((i * 13 + i / 251) & 0xff);
  }
  const uint64_t expected = Fnv1a(kFnvOffset, reinterpret_cast<const uint8_t*>(payload.data()), kSize);
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    if (exchange.request().method() != bhttp::verb::put) {
      co_await exchange.Send(TextResponse(bhttp::status::ok, "hello " + std::string(exchange.request().target())));
      co_return;
    }
    auto [body, error] = co_await ReadAll(exchange, 1 << 20);
    EXPECT_EQ(error, BodyError::kNone);
    EXPECT_TRUE(exchange.body_complete());
    const uint64_t hash = Fnv1a(kFnvOffset, reinterpret_cast<const uint8_t*>(body.data()), body.size());
    co_await exchange.Send(TextResponse(bhttp::status::ok, std::to_string(body.size()) + ":" + std::to_string(hash)));
  };
  StartServer();
  RawClient client(port_);
  // The header and the first bytes arrive first, so the rest is read directly from the socket.
  ASSERT_TRUE(client.Send("PUT /k HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(kSize) + "\r\n\r\n" +
                          payload.substr(0, 1000)));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(client.Send(payload.substr(1000) + Get("/next")));
  auto first = client.ReadResponse();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, std::to_string(kSize) + ":" + std::to_string(expected));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "hello /next");
  EXPECT_EQ(handler_.calls, 2);
}

TEST_F(HttpServerTest, ExpectContinueSentOnlyWhenHandlerReadsBody) {
  handler_.fn = [](Exchange& exchange) -> asio::awaitable<void> {
    co_await Sleep(300ms);  // authentication, say: the client must not be told to go on yet
    auto [body, error] = co_await ReadAll(exchange);
    EXPECT_EQ(error, BodyError::kNone);
    co_await exchange.Send(TextResponse(bhttp::status::ok, "got " + body));
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send("PUT /k HTTP/1.1\r\nHost: test\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n"));
  EXPECT_TRUE(client.SilentFor(150ms));
  auto interim = client.ReadResponse();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.Send("hello"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "got hello");
  EXPECT_FALSE(response->Has("Connection"));
}

TEST_F(HttpServerTest, ExpectContinueRejectedWithoutReadingNeverSends100AndCloses) {
  handler_.fn = [](Exchange& exchange) -> asio::awaitable<void> {
    co_await exchange.Send(TextResponse(bhttp::status::forbidden, "denied"));
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send("PUT /k HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 403);
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(client.ClosedWithin(2s));
  EXPECT_EQ(handler_.calls, 1);
}

TEST_F(HttpServerTest, ChunkedRequestBodyIsDecoded) {
  std::atomic<bool> saw_no_length{false};
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    saw_no_length = !exchange.content_length().has_value();
    auto [body, error] = co_await ReadAll(exchange, 3);
    EXPECT_EQ(error, BodyError::kNone);
    co_await exchange.Send(TextResponse(bhttp::status::ok, body));
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(
      client.Send("POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "hello, world");
  EXPECT_TRUE(saw_no_length);
  // The connection is still in step: the trailer was consumed.
  ASSERT_TRUE(client.Send("POST /d HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "ok");
}

TEST_F(HttpServerTest, MalformedChunkSizeIsReportedAsMalformed) {
  std::promise<BodyError> seen;
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    auto [body, error] = co_await ReadAll(exchange);
    seen.set_value(error);
    co_await exchange.Send(TextResponse(bhttp::status::bad_request, "bad chunk"));
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(
      client.Send("POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: "
                  "chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"));
  auto future = seen.get_future();
  ASSERT_EQ(future.wait_for(3s), std::future_status::ready);
  EXPECT_EQ(future.get(), BodyError::kMalformed);
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(client.ClosedWithin(2s));
}

TEST_F(HttpServerTest, OversizedHeaderGets431) {
  EchoTarget();
  ServerOptions options = TestOptions();
  options.max_header_bytes = 1024;
  StartServer(options);
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/", "X-Big: " + std::string(4000, 'a') + "\r\n")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 431);
  EXPECT_EQ(response->Header("Content-Type"), "application/xml");
  EXPECT_EQ(response->body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>RequestHeaderSectionTooLarge"
            "</Code><Message>Your request header section exceeds the maximum allowed size."
            "</Message></Error>");
  EXPECT_TRUE(client.ClosedWithin(2s));
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(HttpServerTest, HeaderJustUnderTheLimitIsAccepted) {
  EchoTarget();
  ServerOptions options = TestOptions();
  options.max_header_bytes = 1024;
  StartServer(options);
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/", "X-Big: " + std::string(800, 'a') + "\r\n")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

// SIGHUP reloads limits: new connections get them, an open one keeps what it started with.
TEST_F(HttpServerTest, UpdatedLimitsApplyToNewConnectionsOnly) {
  EchoTarget();
  StartServer();
  RawClient before(port_);
  ASSERT_TRUE(before.Send(Get("/warm")));
  ASSERT_TRUE(before.ReadResponse());

  ServerOptions tighter = TestOptions();
  tighter.max_header_bytes = 1024;
  tighter.listen_port = 1;  // ignored: the listener stays where it is
  server_->UpdateLimits(tighter);

  RawClient after(port_);
  ASSERT_TRUE(after.connected());
  ASSERT_TRUE(after.Send(Get("/", "X-Big: " + std::string(4000, 'a') + "\r\n")));
  auto refused = after.ReadResponse();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 431);

  ASSERT_TRUE(before.Send(Get("/", "X-Big: " + std::string(4000, 'a') + "\r\n")));
  auto accepted = before.ReadResponse();
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->status, 200);
}

TEST_F(HttpServerTest, UpdatedConnectionLimitRefusesBeyondIt) {
  EchoTarget();
  StartServer();
  ServerOptions one = TestOptions();
  one.max_connections = 1;
  server_->UpdateLimits(one);
  RawClient first(port_);
  ASSERT_TRUE(first.Send(Get("/first")));
  ASSERT_TRUE(first.ReadResponse());
  RawClient second(port_);
  EXPECT_TRUE(second.ClosedWithin(2s));
}

// Request smuggling: a front end that honours Content-Length and a back end that honours
// Transfer-Encoding (or the reverse) disagree on where the request ends. Refusing both, and
// closing, leaves nothing to disagree on.
class SmugglingTest : public HttpServerTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(SmugglingTest, AmbiguousFramingIsRefusedAndClosed) {
  EchoTarget();
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(GetParam()));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_NE(response->body.find("<Code>BadRequest</Code>"), std::string::npos);
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(client.ClosedWithin(2s));
  EXPECT_EQ(handler_.calls, 0);  // neither the outer nor the smuggled request reached it
}

const char kSmuggled[] = "GET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n";

INSTANTIATE_TEST_SUITE_P(
    Framings, SmugglingTest,
    ::testing::Values(
        std::string("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 44\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n") +
            kSmuggled,
        std::string("POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Length: 44\r\n\r\n0\r\n\r\n") +
            kSmuggled,
        std::string("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                    "hello!") +
            kSmuggled,
        std::string("POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n") + kSmuggled,
        std::string("POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, identity\r\n\r\n") + kSmuggled,
        std::string("POST / HTTP/1.0\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") + kSmuggled,
        std::string("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n") + kSmuggled,
        std::string("GET / HTTP/2.0\r\nHost: test\r\n\r\n"), std::string("GET / HTTP/1.1\r\nHost test\r\n\r\n")));

TEST_F(HttpServerTest, StreamedResponseIsReadBackExactly) {
  std::atomic<int> failures{0};
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    ResponseHeader header;
    header.result(bhttp::status::ok);
    header.set(bhttp::field::content_length, "30000");
    if (!co_await exchange.SendHeader(std::move(header))) {
      ++failures;
    }
    for (char fill : {'a', 'b', 'c'}) {
      const std::vector<uint8_t> piece(10000, static_cast<uint8_t>(fill));
      if (!co_await exchange.SendBody(piece)) {
        ++failures;
      }
    }
    if (!co_await exchange.FinishBody()) {
      ++failures;
    }
  };
  StartServer();
  RawClient client(port_);
  for (int round = 0; round < 2; ++round) {  // the second round proves the framing held
    ASSERT_TRUE(client.Send(Get("/stream")));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->Header("Content-Length"), "30000");
    EXPECT_EQ(response->body, std::string(10000, 'a') + std::string(10000, 'b') + std::string(10000, 'c'));
  }
  EXPECT_EQ(failures, 0);
}

// The header of a streamed response goes out with its first body bytes, in one write: nothing
// reaches the client between SendHeader() and the first SendBody(). A body of no bytes still gets
// its header, from FinishBody().
TEST_F(HttpServerTest, StreamedHeaderLeavesWithTheFirstBodyBytes) {
  std::atomic<int> failures{0};
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    const bool empty = exchange.request().target() == "/empty";
    ResponseHeader header;
    header.result(bhttp::status::ok);
    header.set(bhttp::field::content_length, empty ? "0" : "5");
    if (!co_await exchange.SendHeader(std::move(header))) ++failures;
    co_await Sleep(300ms);
    if (!empty) {
      const std::string body = "hello";
      if (!co_await exchange.SendBody(std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()))) {
        ++failures;
      }
    }
    if (!co_await exchange.FinishBody()) ++failures;
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/hello")));
  EXPECT_TRUE(client.SilentFor(150ms));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "hello");
  ASSERT_TRUE(client.Send(Get("/empty")));
  EXPECT_TRUE(client.SilentFor(150ms));
  response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Header("Content-Length"), "0");
  EXPECT_EQ(response->body, "");
  EXPECT_EQ(failures, 0);
}

TEST_F(HttpServerTest, StreamedResponseWithoutLengthIsChunked) {
  handler_.fn = [](Exchange& exchange) -> asio::awaitable<void> {
    ResponseHeader header;
    header.result(bhttp::status::ok);
    co_await exchange.SendHeader(std::move(header));
    const std::string parts[] = {"abc", "", "defg"};
    for (const auto& part : parts) {
      co_await exchange.SendBody(std::span(reinterpret_cast<const uint8_t*>(part.data()), part.size()));
    }
    co_await exchange.FinishBody();
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/list")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Header("Transfer-Encoding"), "chunked");
  EXPECT_EQ(response->body, "abcdefg");
  ASSERT_TRUE(client.Send(Get("/list")));
  EXPECT_TRUE(client.ReadResponse());
}

TEST_F(HttpServerTest, StreamedResponseShorterThanItsLengthClosesTheConnection) {
  std::promise<bool> finished;
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    ResponseHeader header;
    header.result(bhttp::status::ok);
    header.set(bhttp::field::content_length, "100");
    co_await exchange.SendHeader(std::move(header));
    const std::vector<uint8_t> piece(10, 'x');
    co_await exchange.SendBody(piece);
    // Over-long pieces are refused rather than corrupting the next response's framing.
    const std::vector<uint8_t> too_much(200, 'y');
    EXPECT_FALSE(co_await exchange.SendBody(too_much));
    finished.set_value(co_await exchange.FinishBody());
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/short")));
  const std::string raw = client.ReadUntilClosed();
  EXPECT_EQ(raw.substr(raw.find("\r\n\r\n") + 4), std::string(10, 'x'));
  EXPECT_FALSE(finished.get_future().get());
}

TEST_F(HttpServerTest, HeadKeepsContentLengthAndSendsNoBody) {
  handler_.fn = [](Exchange& exchange) -> asio::awaitable<void> {
    if (exchange.request().target() == "/streamed") {
      ResponseHeader header;
      header.result(bhttp::status::ok);
      header.set(bhttp::field::content_length, "12345");
      EXPECT_TRUE(co_await exchange.SendHeader(std::move(header)));
      const std::vector<uint8_t> ignored(100, 'z');
      EXPECT_TRUE(co_await exchange.SendBody(ignored));
      EXPECT_TRUE(co_await exchange.FinishBody());
    } else if (exchange.request().target() == "/whole") {
      co_await exchange.Send(TextResponse(bhttp::status::ok, "0123456789"));
    } else {
      co_await exchange.Send(TextResponse(bhttp::status::ok, "next"));
    }
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send("HEAD /streamed HTTP/1.1\r\nHost: test\r\n\r\n"));
  auto head = client.ReadResponse(/*head=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("Content-Length"), "12345");

  ASSERT_TRUE(client.Send("HEAD /whole HTTP/1.1\r\nHost: test\r\n\r\n"));
  auto whole = client.ReadResponse(/*head=*/true);
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->Header("Content-Length"), "10");

  // Any body byte sent after either header would now show up in front of this response.
  ASSERT_TRUE(client.Send(Get("/next")));
  auto next = client.ReadResponse();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
  EXPECT_EQ(next->body, "next");
}

TEST_F(HttpServerTest, NotModifiedCarriesNoBody) {
  handler_.fn = [](Exchange& exchange) -> asio::awaitable<void> {
    ResponseHeader header;
    header.result(bhttp::status::not_modified);
    header.set(bhttp::field::etag, "\"abc\"");
    EXPECT_TRUE(co_await exchange.SendHeader(std::move(header)));
    EXPECT_TRUE(co_await exchange.FinishBody());
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/a") + Get("/b")));
  for (int i = 0; i < 2; ++i) {
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 304);
    EXPECT_EQ(response->Header("ETag"), "\"abc\"");
  }
}

TEST_F(HttpServerTest, ClientClosingMidBodyIsReportedAsDisconnected) {
  std::promise<BodyError> seen;
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    auto [body, error] = co_await ReadAll(exchange);
    seen.set_value(error);
    co_await exchange.Send(TextResponse(bhttp::status::bad_request, "incomplete"));
  };
  StartServer();
  {
    RawClient client(port_);
    ASSERT_TRUE(client.Send("PUT /k HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789"));
  }
  auto future = seen.get_future();
  ASSERT_EQ(future.wait_for(3s), std::future_status::ready);
  EXPECT_EQ(future.get(), BodyError::kDisconnected);
  EXPECT_TRUE(WaitUntil([&] { return server_->open_connections() == 0; }));
}

TEST_F(HttpServerTest, SlowBodyTimesOut) {
  std::promise<BodyError> seen;
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    auto [body, error] = co_await ReadAll(exchange);
    seen.set_value(error);
    co_await exchange.Send(TextResponse(bhttp::status::bad_request, "slow"));
  };
  ServerOptions options = TestOptions();
  options.read_timeout = 1s;
  StartServer(options);
  RawClient client(port_);
  ASSERT_TRUE(client.Send("PUT /k HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123"));
  auto future = seen.get_future();
  ASSERT_EQ(future.wait_for(3s), std::future_status::ready);
  EXPECT_EQ(future.get(), BodyError::kTimeout);
  EXPECT_TRUE(client.ClosedWithin(2s));
}

TEST_F(HttpServerTest, IdleTimeoutClosesConnection) {
  EchoTarget();
  ServerOptions options = TestOptions();
  options.idle_timeout = 1s;
  StartServer(options);
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/a")));
  ASSERT_TRUE(client.ReadResponse());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.ClosedWithin(3s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 800ms);
  EXPECT_TRUE(WaitUntil([&] { return server_->open_connections() == 0; }));
}

TEST_F(HttpServerTest, HandlerThatNeverRespondsYields500AndClose) {
  handler_.fn = [](Exchange&) -> asio::awaitable<void> { co_return; };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/nothing")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_NE(response->body.find("<Code>InternalError</Code>"), std::string::npos);
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(client.ClosedWithin(2s));
}

TEST_F(HttpServerTest, HandlerThatThrowsYields500) {
  handler_.fn = [](Exchange&) -> asio::awaitable<void> {
    throw std::runtime_error("bug");
    co_return;
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/throw")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_TRUE(client.ClosedWithin(2s));
}

TEST_F(HttpServerTest, SmallUnreadBodyIsDrainedAndConnectionKept) {
  EchoTarget();
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send("PUT /a HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'q')));
  auto first = client.ReadResponse();
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->Has("Connection"));
  ASSERT_TRUE(client.Send(Get("/b")));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "hello /b");
}

TEST_F(HttpServerTest, LargeUnreadBodyClosesConnection) {
  EchoTarget();
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(
      client.Send("PUT /a HTTP/1.1\r\nHost: test\r\nContent-Length: 10000000\r\n\r\n" + std::string(1000, 'q')));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(client.ClosedWithin(3s));
}

TEST_F(HttpServerTest, Http10ClosesUnlessKeepAliveAsked) {
  EchoTarget();
  StartServer();
  {
    RawClient client(port_);
    ASSERT_TRUE(client.Send("GET /old HTTP/1.0\r\n\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->version, "HTTP/1.0");
    EXPECT_EQ(response->body, "hello /old");
    EXPECT_TRUE(client.ClosedWithin(2s));
  }
  RawClient client(port_);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(client.Send("GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->Header("Connection"), "keep-alive");
    EXPECT_EQ(response->body, "hello /ka");
  }
}

TEST_F(HttpServerTest, ConnectionCloseRequestIsHonoured) {
  EchoTarget();
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/bye", "Connection: close\r\n")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(client.ClosedWithin(2s));
}

TEST_F(HttpServerTest, StopClosesIdleKeepAliveConnectionPromptly) {
  EchoTarget();
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/a")));
  ASSERT_TRUE(client.ReadResponse());
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_TRUE(client.ClosedWithin(1s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(WaitUntil([&] { return server_->open_connections() == 0; }));
  // The listener is gone too.
  EXPECT_TRUE(WaitUntil([&] { return !RawClient(port_).connected(); }));
}

TEST_F(HttpServerTest, StopLetsInFlightRequestFinish) {
  std::promise<void> started;
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    started.set_value();
    co_await Sleep(300ms);
    co_await exchange.Send(TextResponse(bhttp::status::ok, "done"));
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/slow")));
  started.get_future().wait();
  server_->Stop();
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "done");
  EXPECT_EQ(response->Header("Connection"), "close");
  EXPECT_TRUE(client.ClosedWithin(2s));
}

TEST_F(HttpServerTest, DestroyingServerWithOpenConnectionDoesNotHang) {
  EchoTarget();
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/a")));
  ASSERT_TRUE(client.ReadResponse());
  const auto start = std::chrono::steady_clock::now();
  server_.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
  EXPECT_TRUE(client.ClosedWithin(1s));
}

// Several io threads and clients at once: each connection's strand must keep its state to one
// thread at a time (run under TSan).
TEST_F(HttpServerTest, ManyClientsOnAMultiThreadedIoContext) {
  handler_.fn = [](Exchange& exchange) -> asio::awaitable<void> {
    auto [body, error] = co_await ReadAll(exchange, 1000);
    co_await exchange.Send(TextResponse(bhttp::status::ok, body));
  };
  StartServer(TestOptions(), /*io_threads=*/4);
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      RawClient client(port_);
      for (int i = 0; i < 20; ++i) {
        const std::string body(100 * (i + 1), static_cast<char>('a' + c));
        client.Send("PUT /k HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                    body);
        auto response = client.ReadResponse();
        if (response && response->body == body) {
          ++good;
        }
      }
    });
  }
  for (auto& client : clients) {
    client.join();
  }
  EXPECT_EQ(good, 8 * 20);
  server_->Stop();
  EXPECT_TRUE(WaitUntil([&] { return server_->open_connections() == 0; }));
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitAreClosed) {
  EchoTarget();
  ServerOptions options = TestOptions();
  options.max_connections = 1;
  StartServer(options);
  RawClient first(port_);
  ASSERT_TRUE(first.Send(Get("/1")));
  ASSERT_TRUE(first.ReadResponse());  // now registered
  RawClient second(port_);
  EXPECT_TRUE(second.ClosedWithin(2s));
  ASSERT_TRUE(first.Send(Get("/2")));
  auto response = first.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "hello /2");
}

TEST_F(HttpServerTest, StartReportsAddressInUse) {
  EchoTarget();
  StartServer();
  ServerOptions options = TestOptions();
  options.listen_port = port_;
  Server other(io_, handler_, options);
  auto endpoint = other.Start();
  ASSERT_THAT(endpoint, StatusIs(StatusCode::kUnavailable, HasSubstr("bind")));
}

TEST_F(HttpServerTest, RemoteAddressIsReported) {
  std::promise<std::string> remote;
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    remote.set_value(exchange.remote_address());
    co_await exchange.Send(TextResponse(bhttp::status::ok, ""));
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/")));
  ASSERT_TRUE(client.ReadResponse());
  EXPECT_EQ(remote.get_future().get().rfind("127.0.0.1:", 0), 0u);
}

TEST_F(HttpServerTest, HandlerCanUseRunBlocking) {
  asio::thread_pool pool(2);
  handler_.fn = [&](Exchange& exchange) -> asio::awaitable<void> {
    auto value = co_await RunBlocking(pool, [] { return std::make_unique<std::string>("from pool"); });
    co_await exchange.Send(TextResponse(bhttp::status::ok, *value));
  };
  StartServer();
  RawClient client(port_);
  ASSERT_TRUE(client.Send(Get("/")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "from pool");
  server_.reset();
  pool.join();
}

// io_context::run() on one thread with nothing else to do: run() must not return while the
// result is away on the pool, and the result must be resumed on the io thread.
TEST(RunBlocking, ReturnsMoveOnlyResultOnCallersThread) {
  asio::io_context io;
  asio::thread_pool pool(2);
  std::thread::id pool_thread;
  std::thread::id resumed_on;
  auto future = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<std::unique_ptr<int>> {
        auto value = co_await RunBlocking(pool, [&] {
          pool_thread = std::this_thread::get_id();
          std::this_thread::sleep_for(50ms);
          return std::make_unique<int>(42);
        });
        resumed_on = std::this_thread::get_id();
        co_return value;
      },
      asio::use_future);
  io.run();
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  auto result = future.get();
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(*result, 42);
  EXPECT_NE(pool_thread, std::this_thread::get_id());
  EXPECT_EQ(resumed_on, std::this_thread::get_id());
  pool.join();
}

TEST(RunBlocking, VoidAndThrowingFunctions) {
  asio::io_context io;
  asio::thread_pool pool(1);
  std::atomic<bool> ran{false};
  std::string caught;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await RunBlocking(pool, [&] { ran = true; });
        try {
          co_await RunBlocking(pool, []() -> int { throw std::runtime_error("disk on fire"); });
        } catch (const std::runtime_error& e) {
          caught = e.what();
        }
      },
      asio::detached);
  io.run();
  EXPECT_TRUE(ran);
  EXPECT_EQ(caught, "disk on fire");
  pool.join();
}

// The notification comes from a thread of its own (as the audit log's writer): f() must not start
// before it, must run on the pool, and the caller must resume on the io thread with its result.
TEST(RunBlockingWhen, RunsOnThePoolOnlyAfterTheNotification) {
  asio::io_context io;
  asio::thread_pool pool(1);
  std::function<void()> notify;
  std::promise<void> subscribed;
  std::atomic<bool> notified{false};
  std::atomic<bool> ran_before_notify{false};
  std::thread::id ran_on;
  std::thread::id resumed_on;
  auto future = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<std::unique_ptr<int>> {
        auto value = co_await RunBlockingWhen(
            pool,
            [&](std::function<void()> n) {
              notify = std::move(n);
              subscribed.set_value();
            },
            [&] {
              ran_before_notify = !notified.load();
              ran_on = std::this_thread::get_id();
              return std::make_unique<int>(7);
            });
        resumed_on = std::this_thread::get_id();
        co_return value;
      },
      asio::use_future);
  std::thread::id notifier_id;
  std::thread notifier([&] {
    notifier_id = std::this_thread::get_id();
    subscribed.get_future().wait();
    std::this_thread::sleep_for(50ms);
    notified = true;
    notify();
  });
  io.run();
  notifier.join();
  auto result = future.get();
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(*result, 7);
  EXPECT_FALSE(ran_before_notify);
  EXPECT_NE(ran_on, std::this_thread::get_id());
  EXPECT_NE(ran_on, notifier_id);
  EXPECT_EQ(resumed_on, std::this_thread::get_id());
  pool.join();
}

// A notification that has already come (subscribe calls it at once), and f() throwing.
TEST(RunBlockingWhen, ImmediateNotificationAndThrowingFunction) {
  asio::io_context io;
  asio::thread_pool pool(1);
  int value = 0;
  std::string caught;
  auto now = [](std::function<void()> notify) { notify(); };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        value = co_await RunBlockingWhen(pool, now, [] { return 3; });
        try {
          co_await RunBlockingWhen(pool, now, []() -> int { throw std::runtime_error("disk on fire"); });
        } catch (const std::runtime_error& e) {
          caught = e.what();
        }
      },
      asio::detached);
  io.run();
  EXPECT_EQ(value, 3);
  EXPECT_EQ(caught, "disk on fire");
  pool.join();
}

}  // namespace
}  // namespace coffre::http
