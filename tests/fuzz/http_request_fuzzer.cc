// Fuzzes the HTTP/1.1 request head and body framing as the server reads them: Beast's
// request_parser with the server's limits (16 KiB header section, no body limit in the parser),
// fed in fuzzer-chosen pieces as they come off a socket, then the server's own framing checks
// (Transfer-Encoding without final chunked), then what the gateway does with a head: the
// protocol view, the S3 router and the Range header.
// Property: every bucket name the router hands on (but CreateBucket's) is a valid one.
//
// Input: byte 0 picks the piece size; the rest is the byte stream a client sends.

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "coffre/s3/bucket_name.h"
#include "coffre/s3/range.h"
#include "coffre/s3/request.h"
#include "http/errors.h"
#include "s3/router.h"

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using RequestParser = bhttp::request_parser<bhttp::buffer_body>;

constexpr size_t kMaxHeaderBytes = 16 * 1024;  // ServerOptions::max_header_bytes default

void OnHead(const RequestParser& parser) {
  const auto& req = parser.get();
  // connection.cc: a Transfer-Encoding that does not end in chunked (or any in HTTP/1.0) is
  // refused; so is everything Beast refuses (CL+TE, conflicting lengths).
  if (req.find(bhttp::field::transfer_encoding) != req.end() && (!parser.chunked() || req.version() < 11)) {
    return;
  }
  coffre::s3::HttpRequestView view;
  view.method = std::string_view(req.method_string().data(), req.method_string().size());
  view.target = std::string_view(req.target().data(), req.target().size());
  for (const auto& field : req) {
    view.headers.emplace_back(std::string_view(field.name_string().data(), field.name_string().size()),
                              std::string_view(field.value().data(), field.value().size()));
  }
  auto route = coffre::s3::RouteRequest(view, coffre::s3::RouterOptions{});
  if (route.ok() && !route->bucket.empty() && route->op != coffre::s3::Operation::kCreateBucket &&
      !coffre::s3::IsValidBucketName(route->bucket)) {
    std::abort();  // the router hands only valid bucket names onward (CreateBucket checks its own)
  }
  if (auto range = view.Header("range")) {
    (void)coffre::s3::ParseRange(*range, 1000);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const size_t piece = 1 + data[0] % 128;
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);

  RequestParser parser;
  parser.header_limit(static_cast<uint32_t>(kMaxHeaderBytes));
  parser.body_limit(boost::none);
  beast::flat_buffer buffer;
  size_t fed = 0;
  bool head_seen = false;
  char body[512];
  while (!parser.is_done()) {
    if (fed < stream.size()) {
      const size_t n = std::min(piece, stream.size() - fed);
      auto dest = buffer.prepare(n);
      std::memcpy(dest.data(), stream.data() + fed, n);
      buffer.commit(n);
      fed += n;
    } else if (buffer.size() == 0) {
      break;  // the client stopped sending
    }
    if (parser.is_header_done()) {
      parser.get().body().data = body;
      parser.get().body().size = sizeof body;
    }
    beast::error_code ec;
    const size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == bhttp::error::need_buffer) {
      continue;  // body buffer full: the handler reads it, then parsing goes on
    }
    if (ec == bhttp::error::need_more) {
      if (fed >= stream.size()) {
        (void)coffre::http::internal::IsMalformedRequest(ec);
        break;
      }
      continue;
    }
    if (ec) {
      (void)coffre::http::internal::IsMalformedRequest(ec);
      break;
    }
    if (!head_seen && parser.is_header_done()) {
      head_seen = true;
      OnHead(parser);
    }
  }
  return 0;
}
