#include "http/connection.h"

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

#include "coffre/common/clock.h"
#include "http/errors.h"

namespace coffre::http::internal {

namespace beast = boost::beast;
using boost::system::error_code;

namespace {

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

// The first read of a request only has to show that the client is talking; the parser reads on.
constexpr size_t kFirstReadBytes = 8 * 1024;
// A response may keep the connection alive with this much request body still unread: reading
// and discarding it is cheaper than making the client open a new connection.
constexpr uint64_t kMaxDrainBytes = 64 * 1024;
// Bounds on the lingering close after an error response.
constexpr std::chrono::seconds kMaxLinger{1};
constexpr size_t kMaxLingerBytes = 256 * 1024;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// A request body read into the handler's buffer, as with buffer_body, except that bytes read from
// the socket straight into that buffer (ExchangeImpl::ReadInto) are already where the parser would
// copy them: they are counted, not copied. The parser still sees every byte, so Content-Length and
// keep-alive stay its business.
struct InPlaceBody {
  using value_type = bhttp::buffer_body::value_type;

  class reader {
   public:
    template <bool isRequest, class Fields>
    explicit reader(bhttp::header<isRequest, Fields>& /*header*/, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>& /*length*/, error_code& ec) { ec = {}; }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, error_code& ec) {
      if (body_.data == nullptr) {
        ec = bhttp::error::need_buffer;
        return 0;
      }
      std::size_t taken = 0;
      for (const auto& b : beast::buffers_range_ref(buffers)) {
        const std::size_t n = std::min(b.size(), body_.size);
        auto* dst = static_cast<uint8_t*>(body_.data);
        if (n > 0 && b.data() != dst) {
          std::memcpy(dst, b.data(), n);
        }
        body_.data = dst + n;
        body_.size -= n;
        taken += n;
        if (n < b.size()) {
          ec = bhttp::error::need_buffer;
          return taken;
        }
      }
      ec = {};
      return taken;
    }

    void finish(error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

using RequestParser = bhttp::request_parser<InPlaceBody>;

// RFC 9110 6.4.1: these responses never carry content, whatever their headers say.
bool StatusHasNoBody(unsigned status) { return status / 100 == 1 || status == 204 || status == 304; }

std::optional<uint64_t> ParseLength(std::string_view text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) {
    return std::nullopt;
  }
  return value;
}

std::string FormatEndpoint(const asio::ip::tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  std::string out = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  out += ':';
  out += std::to_string(endpoint.port());
  return out;
}

void SetCommonHeaders(ResponseHeader& header, const ServerOptions& options) {
  if (header.find(bhttp::field::server) == header.end() && !options.server_header.empty()) {
    header.set(bhttp::field::server, options.server_header);
  }
  if (header.find(bhttp::field::date) == header.end()) {
    header.set(bhttp::field::date, FormatHttpDate(std::chrono::system_clock::now()));
  }
}

}  // namespace

// The Exchange of one request; lives in Connection::Run()'s frame while the handler runs.
class ExchangeImpl final : public Exchange {
 public:
  enum class After { kKeepAlive, kClose, kCloseLinger };

  ExchangeImpl(Connection& conn, RequestParser& parser) : conn_(conn), parser_(parser) {
    const auto& req = parser_.get();
    is_head_ = req.method() == bhttp::verb::head;
    // RFC 9110 10.1.1: a 1.0 client cannot understand an interim response.
    expect_continue_ = req.version() >= 11 && beast::iequals(req[bhttp::field::expect], "100-continue");
  }

  const RequestHeader& request() const override { return parser_.get().base(); }
  const std::string& remote_address() const override { return conn_.remote_; }

  std::optional<uint64_t> content_length() const override {
    auto length = parser_.content_length();
    if (!length) {
      return std::nullopt;
    }
    return *length;
  }

  asio::awaitable<std::pair<size_t, BodyError>> ReadBody(std::span<uint8_t> out) override {
    if (body_error_ != BodyError::kNone) {
      co_return std::pair{size_t{0}, body_error_};
    }
    if (parser_.is_done() || out.empty()) {
      co_return std::pair{size_t{0}, BodyError::kNone};
    }
    // Once a final response is out, a 100 would be a protocol error; the client decides alone.
    if (expect_continue_ && !continue_sent_ && !response_started_) {
      continue_sent_ = true;
      conn_.stream_.expires_after(conn_.options_->write_timeout);
      auto [ec, n] = co_await asio::async_write(conn_.stream_, asio::buffer(kContinue), kAsTuple);
      if (ec) {
        failed_ = true;
        must_close_ = true;
        body_error_ = BodyError::kDisconnected;
        co_return std::pair{size_t{0}, body_error_};
      }
    }
    co_return co_await ReadInto(out);
  }

  bool body_complete() const override { return parser_.is_done(); }

  asio::awaitable<bool> Send(bhttp::response<bhttp::string_body> response) override {
    if (response_started_ || failed_) {
      co_return false;
    }
    if (!co_await SendOwedContinue()) {
      co_return false;
    }
    response_started_ = true;
    response.version(request().version());
    const bool keep_alive = KeepAliveAfter(response.base());
    Decorate(response.base(), keep_alive);
    error_code ec;
    conn_.stream_.expires_after(conn_.options_->write_timeout);
    if (is_head_ || StatusHasNoBody(response.result_int())) {
      // prepare_payload() would zero the Content-Length a HEAD response must keep (and throws
      // for a 304 with a body), so the header goes out as the handler built it.
      if (!StatusHasNoBody(response.result_int()) && response.find(bhttp::field::content_length) == response.end()) {
        response.content_length(response.body().size());
      }
      bhttp::response<bhttp::empty_body> header_only{std::move(response.base())};
      std::tie(ec, std::ignore) = co_await bhttp::async_write(conn_.stream_, header_only, kAsTuple);
    } else {
      response.prepare_payload();
      std::tie(ec, std::ignore) = co_await bhttp::async_write(conn_.stream_, response, kAsTuple);
    }
    co_return Wrote(ec);
  }

  asio::awaitable<bool> SendHeader(ResponseHeader header) override {
    if (response_started_ || failed_) {
      co_return false;
    }
    if (!co_await SendOwedContinue()) {
      co_return false;
    }
    response_started_ = true;
    streaming_ = true;
    header.version(request().version());
    bool keep_alive = KeepAliveAfter(header);
    const bool no_body = is_head_ || StatusHasNoBody(header.result_int());
    if (!no_body) {
      if (auto it = header.find(bhttp::field::content_length); it != header.end()) {
        declared_length_ = ParseLength(it->value());
        if (!declared_length_) {
          header.erase(bhttp::field::content_length);
        }
      }
      if (!declared_length_ && header.find(bhttp::field::transfer_encoding) == header.end()) {
        if (header.version() >= 11) {
          header.set(bhttp::field::transfer_encoding, "chunked");
        } else {
          keep_alive = false;  // an HTTP/1.0 body without a length ends at the close
        }
      }
    }
    Decorate(header, keep_alive);
    error_code ec;
    conn_.stream_.expires_after(conn_.options_->write_timeout);
    if (no_body) {
      discard_body_ = true;
      stream_finished_ = true;
      bhttp::response<bhttp::empty_body> header_only{std::move(header)};
      std::tie(ec, std::ignore) = co_await bhttp::async_write(conn_.stream_, header_only, kAsTuple);
      co_return Wrote(ec);
    }
    // Not written yet: the serializer sends the header with the first body bytes (SendBody) or
    // the body's end (FinishBody), in one write. A small GET then costs one sendmsg, not two, and
    // its client one wake-up.
    streamed_ = std::make_unique<bhttp::response<bhttp::buffer_body>>(std::move(header));
    streamed_->body().data = nullptr;
    streamed_->body().more = true;
    serializer_ = std::make_unique<bhttp::response_serializer<bhttp::buffer_body>>(*streamed_);
    co_return true;
  }

  asio::awaitable<bool> SendBody(std::span<const uint8_t> data) override {
    if (discard_body_) {
      co_return !failed_;  // HEAD/304: the caller may share its GET path; nothing goes out
    }
    if (!serializer_ || stream_finished_ || failed_) {
      co_return false;
    }
    if (data.empty()) {
      co_return true;  // an empty chunk would end a chunked body early
    }
    // Bytes beyond the declared length would be read by the client as the next response.
    if (declared_length_ && data.size() > *declared_length_ - sent_) {
      must_close_ = true;
      co_return false;
    }
    auto& body = streamed_->body();
    body.data = const_cast<uint8_t*>(data.data());  // the serializer only reads it
    body.size = data.size();
    body.more = true;
    conn_.stream_.expires_after(conn_.options_->write_timeout);
    auto [ec, n] = co_await bhttp::async_write(conn_.stream_, *serializer_, kAsTuple);
    body.data = nullptr;
    body.size = 0;
    if (ec == bhttp::error::need_buffer) {
      ec = {};
    }
    if (!Wrote(ec)) {
      co_return false;
    }
    sent_ += data.size();
    co_return true;
  }

  asio::awaitable<bool> FinishBody() override {
    if (discard_body_) {
      co_return !failed_;
    }
    if (!serializer_ || stream_finished_ || failed_) {
      co_return false;
    }
    stream_finished_ = true;
    auto& body = streamed_->body();
    body.data = nullptr;
    body.size = 0;
    body.more = false;
    conn_.stream_.expires_after(conn_.options_->write_timeout);
    auto [ec, n] = co_await bhttp::async_write(conn_.stream_, *serializer_, kAsTuple);
    if (!Wrote(ec)) {
      co_return false;
    }
    // A short body can only be reported to the client by closing the connection.
    if (declared_length_ && sent_ != *declared_length_) {
      must_close_ = true;
      co_return false;
    }
    co_return true;
  }

  bool response_started() const override { return response_started_; }

  // Called once the handler has returned: completes the exchange and says what the connection
  // does next.
  asio::awaitable<After> Finish() {
    if (!response_started_) {
      must_close_ = true;
      if (!failed_) {
        bhttp::response<bhttp::string_body> response{bhttp::status::internal_server_error, 11};
        response.set(bhttp::field::content_type, "application/xml");
        response.body() = XmlErrorBody("InternalError", "We encountered an internal error. Please try again.");
        co_await Send(std::move(response));
      }
      co_return Leftover();
    }
    if (failed_ || must_close_ || (streaming_ && !stream_finished_)) {
      co_return Leftover();
    }
    if (!parser_.is_done() && !co_await Drain()) {
      co_return After::kClose;
    }
    co_return After::kKeepAlive;
  }

 private:
  After Leftover() const { return failed_ || parser_.is_done() ? After::kClose : After::kCloseLinger; }

  // Fills `out` unless the body ends first; the read timeout applies to each socket read, so a
  // client that keeps sending is never cut off, one that stalls is.
  asio::awaitable<std::pair<size_t, BodyError>> ReadInto(std::span<uint8_t> out) {
    auto& body = parser_.get().body();
    size_t total = 0;
    while (total < out.size() && !parser_.is_done()) {
      body.data = out.data() + total;
      body.size = out.size() - total;
      conn_.stream_.expires_after(conn_.options_->read_timeout);
      error_code ec;
      if (const size_t direct = DirectReadSize(body.size); direct > 0) {
        // Straight from the socket into `out`, never past this body's end (a pipelined request
        // stays in the socket), then shown to the parser in place.
        size_t n = 0;
        std::tie(ec, n) = co_await conn_.stream_.async_read_some(asio::buffer(body.data, direct), kAsTuple);
        if (n > 0) {
          error_code parse_ec;
          const size_t parsed = parser_.put(asio::const_buffer(body.data, n), parse_ec);
          if (parsed != n && !ec) {
            ec = parse_ec ? parse_ec : bhttp::error::bad_content_length;
          }
        }
      } else {
        std::tie(ec, std::ignore) = co_await bhttp::async_read_some(conn_.stream_, conn_.buffer_, parser_, kAsTuple);
      }
      total = out.size() - body.size;
      if (ec && ec != bhttp::error::need_buffer) {
        body.data = nullptr;
        body.size = 0;
        body_error_ = ClassifyBodyError(ec);
        must_close_ = true;
        co_return std::pair{total, body_error_};
      }
    }
    body.data = nullptr;
    body.size = 0;
    co_return std::pair{total, BodyError::kNone};
  }

  // How much of a Content-Length body ReadInto may read from the socket straight into a buffer
  // with `room` bytes free: none while bytes already received wait in the connection's buffer, or
  // for a chunked body, whose framing the parser must see.
  size_t DirectReadSize(size_t room) const {
    if (conn_.buffer_.size() > 0 || parser_.chunked()) {
      return 0;
    }
    const auto remaining = parser_.content_length_remaining();
    if (!remaining) {
      return 0;
    }
    return static_cast<size_t>(std::min<uint64_t>(*remaining, room));
  }

  // Reads and discards the rest of a small request body so the connection can serve another
  // request (KeepAliveAfter() promised keep-alive only when the rest is small and will come).
  asio::awaitable<bool> Drain() {
    std::array<uint8_t, 8 * 1024> scratch;
    uint64_t drained = 0;
    while (!parser_.is_done()) {
      auto [n, error] = co_await ReadInto(scratch);
      drained += n;
      if (error != BodyError::kNone || drained > kMaxDrainBytes) {
        co_return false;
      }
    }
    co_return true;
  }

  // A request with Expect: 100-continue whose body is already complete (Content-Length: 0, or
  // sent without waiting) still gets its "100 Continue" before the final response, as RFC 9110
  // 10.1.1 allows. botocore (1.43) remembers the status of a final response that answered such a
  // request without a 100 and, when a later Expect request on the same connection meets a closed
  // socket (daemon killed, network cut), reports that remembered status with no headers: a PUT
  // that never reached the catalog would look acknowledged (found by tests/crash). With the 100
  // always sent, a kept-alive connection never leaves botocore with a remembered status.
  asio::awaitable<bool> SendOwedContinue() {
    if (!expect_continue_ || continue_sent_ || !parser_.is_done()) {
      co_return true;
    }
    continue_sent_ = true;
    conn_.stream_.expires_after(conn_.options_->write_timeout);
    auto [ec, n] = co_await asio::async_write(conn_.stream_, asio::buffer(kContinue), kAsTuple);
    if (ec) {
      failed_ = true;
      must_close_ = true;
      co_return false;
    }
    co_return true;
  }

  bool KeepAliveAfter(const ResponseHeader& header) const {
    if (must_close_ || failed_ || conn_.stop_requested_ || !parser_.keep_alive()) {
      return false;
    }
    if (bhttp::token_list{header[bhttp::field::connection]}.exists("close")) {
      return false;
    }
    if (parser_.is_done()) {
      return true;
    }
    // The client may or may not send a body it was never told to send: the framing of the
    // next request would be a guess.
    if (expect_continue_ && !continue_sent_) {
      return false;
    }
    const auto remaining = parser_.content_length_remaining();
    return remaining && *remaining <= kMaxDrainBytes;
  }

  void Decorate(ResponseHeader& header, bool keep_alive) {
    SetCommonHeaders(header, *conn_.options_);
    if (!keep_alive) {
      // Explicit for 1.0 too: clearer in traces, and harmless.
      header.set(bhttp::field::connection, "close");
      must_close_ = true;
    } else if (header.version() < 11) {
      header.set(bhttp::field::connection, "keep-alive");  // 1.0 defaults to close
    }
  }

  bool Wrote(const error_code& ec) {
    if (ec) {
      failed_ = true;
      must_close_ = true;
      return false;
    }
    return true;
  }

  Connection& conn_;
  RequestParser& parser_;
  bool is_head_ = false;
  bool expect_continue_ = false;
  bool continue_sent_ = false;
  BodyError body_error_ = BodyError::kNone;
  bool response_started_ = false;
  bool streaming_ = false;
  bool stream_finished_ = false;
  bool discard_body_ = false;
  bool must_close_ = false;  // the response said (or will say) Connection: close
  bool failed_ = false;      // a write failed: the connection is unusable
  std::optional<uint64_t> declared_length_;
  uint64_t sent_ = 0;
  std::unique_ptr<bhttp::response<bhttp::buffer_body>> streamed_;
  std::unique_ptr<bhttp::response_serializer<bhttp::buffer_body>> serializer_;
};

Connection::Connection(asio::ip::tcp::socket socket, Handler& handler, std::shared_ptr<const ServerOptions> options)
    : executor_(socket.get_executor()),
      stream_(std::move(socket), options->tls),
      handler_(handler),
      options_(std::move(options)) {
  error_code ec;
  const auto endpoint = stream_.socket().remote_endpoint(ec);
  remote_ = ec ? std::string("unknown") : FormatEndpoint(endpoint);
}

void Connection::RequestStop() {
  stop_requested_ = true;
  if (idle_) {
    stream_.cancel();
  }
}

asio::awaitable<void> Connection::Run() {
  bool linger = false;
  if (stream_.is_tls()) {
    // A client that never completes the handshake is cut at the read timeout; one that offers
    // only an old protocol version, or speaks plain HTTP to the TLS port, fails here and is closed.
    stream_.expires_after(options_->read_timeout);
    auto [ec] = co_await stream_.async_handshake(kAsTuple);
    if (ec) {
      co_await Close(false);
      co_return;
    }
  }
  while (!stop_requested_) {
    if (!co_await WaitForRequest()) {
      break;
    }
    RequestParser parser;
    parser.header_limit(
        static_cast<uint32_t>(std::min<size_t>(options_->max_header_bytes, std::numeric_limits<uint32_t>::max())));
    parser.body_limit(boost::none);  // the handler decides how much body it accepts
    stream_.expires_after(options_->read_timeout);
    auto [ec, n] = co_await bhttp::async_read_header(stream_, buffer_, parser, kAsTuple);
    if (ec == bhttp::error::header_limit) {
      co_await Reject(431, "RequestHeaderSectionTooLarge",
                      "Your request header section exceeds the maximum allowed size.");
      linger = true;
      break;
    }
    if (ec) {
      // Includes Content-Length together with Transfer-Encoding and conflicting lengths: Beast
      // refuses those, and answering anything but a close would invite request smuggling.
      if (IsMalformedRequest(ec)) {
        co_await Reject(400, "BadRequest", "The HTTP request is malformed.");
        linger = true;
      }
      break;
    }
    // Beast reads a request whose Transfer-Encoding does not end in chunked as having no body,
    // so that body would be parsed as the next request; RFC 9112 6.1 and 6.3 make such a
    // request, and any Transfer-Encoding in HTTP/1.0, a framing error.
    const auto& request = parser.get();
    if (request.find(bhttp::field::transfer_encoding) != request.end() &&
        (!parser.chunked() || request.version() < 11)) {
      co_await Reject(400, "BadRequest", "Unsupported Transfer-Encoding.");
      linger = true;
      break;
    }

    ExchangeImpl exchange(*this, parser);
    try {
      co_await handler_.Handle(exchange);
    } catch (...) {
      // A handler that throws is a bug; Finish() still answers the client with a 500.
    }
    const auto after = co_await exchange.Finish();
    if (after != ExchangeImpl::After::kKeepAlive) {
      linger = after == ExchangeImpl::After::kCloseLinger;
      break;
    }
  }
  co_await Close(linger);
}

asio::awaitable<bool> Connection::WaitForRequest() {
  if (buffer_.size() > 0) {
    co_return true;  // a pipelined request is already here
  }
  idle_ = true;
  stream_.expires_after(options_->idle_timeout);
  auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(kFirstReadBytes), kAsTuple);
  idle_ = false;
  if (ec) {
    co_return false;  // closed by the client, idle timeout, or stopped while idle
  }
  buffer_.commit(n);
  co_return true;
}

asio::awaitable<void> Connection::Reject(unsigned status, const char* code, const char* message) {
  bhttp::response<bhttp::string_body> response{static_cast<bhttp::status>(status), 11};
  SetCommonHeaders(response.base(), *options_);
  response.set(bhttp::field::content_type, "application/xml");
  response.keep_alive(false);
  response.body() = XmlErrorBody(code, message);
  response.prepare_payload();
  stream_.expires_after(options_->write_timeout);
  // Closing follows either way, so a failed write needs no handling.
  co_await bhttp::async_write(stream_, response, kAsTuple);
}

asio::awaitable<void> Connection::Close(bool linger) {
  error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (linger && !ec) {
    std::array<char, 4096> scratch;
    size_t discarded = 0;
    stream_.expires_after(std::min<std::chrono::seconds>(options_->read_timeout, kMaxLinger));
    while (discarded < kMaxLingerBytes) {
      auto [read_ec, n] = co_await stream_.async_read_some(asio::buffer(scratch), kAsTuple);
      if (read_ec) {
        break;
      }
      discarded += n;
    }
  }
  stream_.close();
}

}  // namespace coffre::http::internal
