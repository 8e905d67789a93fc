#pragma once

// Shared by the fuzz targets: turns fuzz input into an s3::HttpRequestView that owns its strings.
// Text format (what the seed corpora hold): the first line is "METHOD TARGET", each further line
// is "Name: value" (split at the first ':', one optional space after it; a line without ':' is a
// name with an empty value). Lines end with '\n'; a '\r' before it is kept in the value, so the
// fuzzer can also try CR inside fields.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/s3/request.h"

namespace coffre::fuzz {

struct OwnedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;

  s3::HttpRequestView View() const {
    s3::HttpRequestView view;
    view.method = method;
    view.target = target;
    for (const auto& [name, value] : headers) {
      view.headers.emplace_back(name, value);
    }
    return view;
  }
};

inline OwnedRequest ParseRequestText(std::string_view text) {
  OwnedRequest r;
  bool first = true;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (first) {
      first = false;
      const size_t space = line.find(' ');
      r.method = std::string(line.substr(0, space));
      r.target = space == std::string_view::npos ? std::string() : std::string(line.substr(space + 1));
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      r.headers.emplace_back(std::string(line), std::string());
      continue;
    }
    std::string_view value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
    r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return r;
}

}  // namespace coffre::fuzz
