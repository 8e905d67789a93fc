#pragma once

// A protocol-level view of an HTTP request: what the s3 layer needs, without Beast types, so that
// routing and authentication are pure functions testable on strings.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/common/ascii.h"
#include "coffre/sigv4/sigv4.h"

namespace coffre::s3 {

struct HttpRequestView {
  std::string_view method;
  // The raw request-target exactly as received, e.g. "/bucket/a%20b?list-type=2&prefix=x".
  std::string_view target;
  // Header fields as received (names in any case; repeated names appear repeatedly).
  std::vector<std::pair<std::string_view, std::string_view>> headers;

  // First value of the header (case-insensitive name), if present.
  std::optional<std::string_view> Header(std::string_view name) const;
};

// The first header, among those a request may carry once, that it carries more than once. Such a
// request is refused: the signature covers one value (SigV2 signs the first Content-Type, say) and
// nothing guarantees a handler reads that one. Content-Encoding is not among them: it is a list,
// and AWS's SDKs send it twice (the object's coding, then aws-chunked).
std::optional<std::string_view> RepeatedSingleHeader(const HttpRequestView& request);

// The text helpers the s3 layer reads requests with. They live below it (common, sigv4) so that
// the upstream client encodes and compares exactly as the verifier does. Decoding, and query
// parsing, are coffre/http/uri.h's.
using coffre::EqualsIgnoreCase;
using coffre::ToLower;
using coffre::TrimWhitespace;
using sigv4::UriEncode;

}  // namespace coffre::s3
