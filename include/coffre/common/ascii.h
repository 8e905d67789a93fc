#pragma once

// ASCII case and whitespace rules for protocol text (HTTP header names and values, S3 tokens),
// which are case-insensitive in ASCII only: no locale may change how a header name compares.

#include <string>
#include <string_view>

namespace coffre {

bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string ToLower(std::string_view s);
// Without leading and trailing spaces, tabs, CR and LF.
std::string_view TrimWhitespace(std::string_view s);

}  // namespace coffre
