#include "coffre/s3/range.h"

#include <algorithm>
#include <optional>

#include "coffre/common/bytes.h"

namespace coffre::s3 {
namespace {

bool IsBytesUnit(std::string_view unit) {
  static constexpr std::string_view kBytes = "bytes";
  if (unit.size() != kBytes.size()) {
    return false;
  }
  for (size_t i = 0; i < unit.size(); ++i) {
    char c = unit[i];
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c != kBytes[i]) {
      return false;
    }
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

RangeResult None() { return {RangeParse::kNone, {0, 0}}; }
RangeResult Unsatisfiable() { return {RangeParse::kUnsatisfiable, {0, 0}}; }
RangeResult Satisfiable(uint64_t first, uint64_t last) { return {RangeParse::kSatisfiable, {first, last}}; }

}  // namespace

RangeResult ParseRange(std::string_view header, uint64_t object_size) {
  header = TrimOws(header);
  const size_t eq = header.find('=');
  if (eq == std::string_view::npos || !IsBytesUnit(header.substr(0, eq))) {
    return None();
  }
  const std::string_view spec = header.substr(eq + 1);
  if (spec.find(',') != std::string_view::npos) {
    return None();
  }
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) {
    return None();
  }
  const std::string_view first_text = spec.substr(0, dash);
  const std::string_view last_text = spec.substr(dash + 1);

  if (first_text.empty()) {  // suffix range "-n"
    const std::optional<uint64_t> n = ParseDecimalSaturating(last_text);
    if (!n) {
      return None();
    }
    if (*n == 0) {
      return Unsatisfiable();
    }
    if (object_size == 0) {
      return None();
    }
    const uint64_t count = std::min(*n, object_size);
    return Satisfiable(object_size - count, object_size - 1);
  }

  // Saturating: a huge first-byte-pos is well-formed and must still be answered 416, not ignored.
  const std::optional<uint64_t> first = ParseDecimalSaturating(first_text);
  if (!first) {
    return None();
  }
  if (last_text.empty()) {  // open-ended "a-"
    if (*first >= object_size) {
      return Unsatisfiable();
    }
    return Satisfiable(*first, object_size - 1);
  }
  const std::optional<uint64_t> last = ParseDecimalSaturating(last_text);
  if (!last || *first > *last) {
    return None();
  }
  if (*first >= object_size) {
    return Unsatisfiable();
  }
  return Satisfiable(*first, std::min(*last, object_size - 1));
}

std::string ContentRangeHeader(const ByteRange& range, uint64_t object_size) {
  return "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) + "/" + std::to_string(object_size);
}

std::string UnsatisfiedContentRange(uint64_t object_size) { return "bytes */" + std::to_string(object_size); }

}  // namespace coffre::s3
