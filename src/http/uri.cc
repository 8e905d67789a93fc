#include "coffre/http/uri.h"

#include "coffre/common/bytes.h"

namespace coffre::http {
namespace {

// "{name}" for a capturing template segment, else nullopt.
std::optional<std::string_view> CaptureName(std::string_view segment) {
  if (segment.size() < 2 || segment.front() != '{' || segment.back() != '}') {
    return std::nullopt;
  }
  return segment.substr(1, segment.size() - 2);
}

}  // namespace

RequestTarget SplitTarget(std::string_view target) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) {
    return {target, {}};
  }
  return {target.substr(0, q), target.substr(q + 1)};
}

std::optional<std::string> PercentDecode(std::string_view in, PlusSign plus) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+' && plus == PlusSign::kSpace) {
      out.push_back(' ');
      continue;
    }
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) {
      return std::nullopt;
    }
    const int hi = HexDigitValue(in[i + 1]);
    const int lo = HexDigitValue(in[i + 2]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out.push_back(static_cast<char>((hi << 4) | lo));
    i += 2;
  }
  return out;
}

std::optional<QueryParams> ParseQuery(std::string_view query, PlusSign plus) {
  QueryParams params;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) {
      continue;
    }
    const size_t eq = piece.find('=');
    const std::string_view raw_value = eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1);
    std::optional<std::string> name = PercentDecode(piece.substr(0, eq), plus);
    std::optional<std::string> value = PercentDecode(raw_value, plus);
    if (!name || !value) {
      return std::nullopt;
    }
    params.emplace_back(std::move(*name), std::move(*value));
  }
  return params;
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> segments;
  if (path.empty() || path.front() != '/') {
    return segments;
  }
  path.remove_prefix(1);
  while (true) {
    const size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) {
      return segments;
    }
    path.remove_prefix(slash + 1);
  }
}

std::optional<PathParams> MatchPathTemplate(std::string_view path_template, std::string_view path) {
  const std::vector<std::string_view> pattern = SplitPath(path_template);
  const std::vector<std::string_view> segments = SplitPath(path);
  if (segments.size() != pattern.size()) {
    return std::nullopt;
  }
  PathParams params;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].empty()) {
      return std::nullopt;
    }
    if (std::optional<std::string_view> name = CaptureName(pattern[i])) {
      params.emplace(*name, segments[i]);
    } else if (segments[i] != pattern[i]) {
      return std::nullopt;
    }
  }
  return params;
}

}  // namespace coffre::http
