#pragma once

// A protocol-level view of an HTTP request: what the s3 layer needs, without Beast types, so that
// routing and authentication are pure functions testable on strings.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// SigV4 URI encoding: unreserved (A-Z a-z 0-9 - _ . ~) kept, everything else %XX upper-case;
// '/' kept when encode_slash is false. Decoding, and query parsing, are coffre/http/uri.h's.
std::string UriEncode(std::string_view in, bool encode_slash);

bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string ToLower(std::string_view s);
std::string_view TrimWhitespace(std::string_view s);

}  // namespace coffre::s3
