#pragma once

// Error classification shared by the connection code and its tests. Private to the http module.

#include <boost/system/error_code.hpp>
#include <string>
#include <string_view>

#include "coffre/http/server.h"

namespace coffre::http::internal {

// Why a read of the request body failed, as the handler sees it.
BodyError ClassifyBodyError(const boost::system::error_code& ec);

// True when the bytes the client sent are not a valid HTTP/1.x request (answer 400 and close),
// as opposed to the client going away or the read timing out (close quietly).
bool IsMalformedRequest(const boost::system::error_code& ec);

// `<Error><Code>…</Code><Message>…</Message></Error>`, the shape S3 clients parse. `code` and
// `message` are constants of this module: they are not escaped.
std::string XmlErrorBody(std::string_view code, std::string_view message);

}  // namespace coffre::http::internal
