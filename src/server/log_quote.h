#pragma once

// Untrusted text (a bucket name, an object key) inside a daemon log line.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace coffre::server {

// JSON-quoted, non-ASCII escaped, so that a key holding a newline or a quote cannot forge a log
// line and every line stays ASCII.
inline std::string LogQuoted(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
}

}  // namespace coffre::server
