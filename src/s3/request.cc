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

}  // namespace coffre::s3
