#include "catalog/listing.h"

namespace coffre::catalog {

std::optional<std::string> PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<unsigned char>(s.back()) == 0xff) {
    s.pop_back();
  }
  if (s.empty()) {
    return std::nullopt;
  }
  s.back() = static_cast<char>(static_cast<unsigned char>(s.back()) + 1);
  return s;
}

std::optional<size_t> CommonPrefixLength(std::string_view key, std::string_view prefix, std::string_view delimiter) {
  if (delimiter.empty() || key.size() < prefix.size()) {
    return std::nullopt;
  }
  const size_t pos = key.find(delimiter, prefix.size());
  if (pos == std::string_view::npos) {
    return std::nullopt;
  }
  return pos + delimiter.size();
}

std::optional<SeekBound> StartBound(std::string_view prefix, std::string_view delimiter, std::string_view marker) {
  if (marker < prefix) {
    // Every key under the prefix is greater than the marker (this includes an empty marker).
    return SeekBound{std::string(prefix), /*inclusive=*/true};
  }
  if (marker.starts_with(prefix)) {
    if (auto len = CommonPrefixLength(marker, prefix, delimiter)) {
      auto next = PrefixSuccessor(marker.substr(0, *len));
      if (!next) {
        return std::nullopt;
      }
      return SeekBound{std::move(*next), /*inclusive=*/true};
    }
  }
  return SeekBound{std::string(marker), /*inclusive=*/false};
}

}  // namespace coffre::catalog
