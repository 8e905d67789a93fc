#pragma once

// What both backends take for a blob id: lower-case hex, 16 to 64 digits (the ids they make are
// 32 or 48 digits; the longer bound leaves room for ids a caller names through Create).

#include <string_view>

namespace coffre::storage {

inline bool IsValidBlobId(std::string_view id) {
  if (id.size() < 16 || id.size() > 64) {
    return false;
  }
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace coffre::storage
