#include "http/errors.h"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace coffre::http::internal {

namespace beast = boost::beast;

namespace {

bool IsHttpCategory(const boost::system::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category();
}

}  // namespace

BodyError ClassifyBodyError(const boost::system::error_code& ec) {
  if (!ec) {
    return BodyError::kNone;
  }
  if (ec == beast::error::timeout) {
    return BodyError::kTimeout;
  }
  if (ec == bhttp::error::body_limit) {
    return BodyError::kTooLarge;
  }
  if (IsMalformedRequest(ec)) {
    return BodyError::kMalformed;
  }
  // end_of_stream, partial_message (EOF before Content-Length bytes), reset, aborted, …
  return BodyError::kDisconnected;
}

bool IsMalformedRequest(const boost::system::error_code& ec) {
  if (!IsHttpCategory(ec)) {
    return false;
  }
  switch (static_cast<bhttp::error>(ec.value())) {
    case bhttp::error::end_of_stream:
    case bhttp::error::partial_message:
    case bhttp::error::need_more:
    case bhttp::error::need_buffer:
    case bhttp::error::end_of_chunk:
    case bhttp::error::short_read:
    case bhttp::error::stale_parser:
    case bhttp::error::body_limit:
      return false;
    default:
      return true;
  }
}

std::string XmlErrorBody(std::string_view code, std::string_view message) {
  std::string body = R"(<?xml version="1.0" encoding="UTF-8"?><Error><Code>)";
  body.append(code);
  body.append("</Code><Message>");
  body.append(message);
  body.append("</Message></Error>");
  return body;
}

}  // namespace coffre::http::internal
