#include "tagging.h"

#include <optional>

#include "coffre/common/ascii.h"
#include "coffre/http/uri.h"

namespace coffre::s3 {
namespace {

constexpr size_t kMaxKeyCharacters = 128;
constexpr size_t kMaxValueCharacters = 256;

// The code points of a UTF-8 string; nullopt when it is not valid UTF-8 (overlong forms,
// surrogates and values past U+10FFFF included).
std::optional<std::vector<char32_t>> CodePoints(std::string_view s) {
  std::vector<char32_t> out;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    char32_t cp = 0;
    if (b < 0x80) {
      n = 1;
      cp = b;
    } else if ((b & 0xE0) == 0xC0) {
      n = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      n = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      n = 4;
      cp = b & 0x07;
    } else {
      return std::nullopt;
    }
    if (i + n > s.size()) return std::nullopt;
    for (size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return std::nullopt;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kSmallest[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
    out.push_back(cp);
    i += n;
  }
  return out;
}

// S3's pattern for tag keys and values: letters, separators (spaces) and numbers of any script,
// and `_ . : / = + - @`. Without Unicode's category tables, every code point beyond ASCII counts as
// a letter except the C1 controls and the noncharacters U+FFFE and U+FFFF; within ASCII the rule
// is exact.
bool AllowedCharacter(char32_t c) {
  if (c < 0x80) {
    const auto a = static_cast<char>(c);
    return (a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z') || (a >= '0' && a <= '9') || a == ' ' || a == '_' ||
           a == '.' || a == ':' || a == '/' || a == '=' || a == '+' || a == '-' || a == '@';
  }
  return !(c <= 0x9F || c == 0xFFFE || c == 0xFFFF);
}

std::optional<Error> CheckTag(const std::string& key, const std::string& value) {
  auto key_points = CodePoints(key);
  if (!key_points || key_points->empty()) {
    return Error(ErrorCode::kInvalidTag, "The TagKey you have provided is invalid");
  }
  if (key_points->size() > kMaxKeyCharacters) {
    return Error(ErrorCode::kInvalidTag, "The TagKey you have provided is too long, max 128");
  }
  for (char32_t c : *key_points) {
    if (!AllowedCharacter(c)) return Error(ErrorCode::kInvalidTag, "The TagKey you have provided is invalid");
  }
  if (key.size() >= 4 && EqualsIgnoreCase(std::string_view(key).substr(0, 4), "aws:")) {
    return Error(ErrorCode::kInvalidTag, "Your TagKey cannot be prefixed with aws:");
  }
  auto value_points = CodePoints(value);
  if (!value_points) return Error(ErrorCode::kInvalidTag, "The TagValue you have provided is invalid");
  if (value_points->size() > kMaxValueCharacters) {
    return Error(ErrorCode::kInvalidTag, "The TagValue you have provided is too long, max 256");
  }
  for (char32_t c : *value_points) {
    if (!AllowedCharacter(c)) return Error(ErrorCode::kInvalidTag, "The TagValue you have provided is invalid");
  }
  return std::nullopt;
}

Error TooMany(size_t max_tags) {
  if (max_tags == kMaxObjectTags) return Error(ErrorCode::kBadRequest, "Object tags cannot be greater than 10");
  return Error(ErrorCode::kInvalidTag, "Bucket tag count cannot be greater than " + std::to_string(max_tags));
}

}  // namespace

Expected<catalog::Tags, Error> CheckTagSet(const std::vector<std::pair<std::string, std::string>>& tags,
                                           size_t max_tags) {
  if (tags.size() > max_tags) return TooMany(max_tags);
  catalog::Tags out;
  for (const auto& [key, value] : tags) {
    if (auto e = CheckTag(key, value)) return *e;
    if (!out.emplace(key, value).second) {
      return Error(ErrorCode::kInvalidTag, "Cannot provide multiple Tags with the same key");
    }
  }
  return out;
}

Expected<catalog::Tags, Error> ParseTaggingHeader(std::string_view header) {
  const Error malformed(ErrorCode::kInvalidArgument,
                        "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters "
                        "without tag name duplicates.");
  auto params = http::ParseQuery(header, http::PlusSign::kSpace);
  if (!params) return malformed;
  catalog::Tags seen;
  for (const auto& [key, value] : *params) {
    if (!seen.emplace(key, value).second) return malformed;
  }
  return CheckTagSet(*params, kMaxObjectTags);
}

}  // namespace coffre::s3
