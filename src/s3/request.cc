#include "coffre/s3/request.h"

namespace coffre::s3 {

std::optional<std::string_view> HttpRequestView::Header(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (EqualsIgnoreCase(field, name)) {
      return value;
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> RepeatedSingleHeader(const HttpRequestView& request) {
  static constexpr std::string_view kSingle[] = {
      "authorization", "content-length", "content-md5",          "content-type",      "date",
      "host",          "x-amz-date",     "x-amz-content-sha256", "x-amz-copy-source", "x-amz-copy-source-range",
  };
  for (std::string_view name : kSingle) {
    size_t count = 0;
    for (const auto& field : request.headers) {
      if (EqualsIgnoreCase(field.first, name) && ++count > 1) {
        return name;
      }
    }
  }
  return std::nullopt;
}

}  // namespace coffre::s3
