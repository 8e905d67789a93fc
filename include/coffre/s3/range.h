#pragma once

// The HTTP Range header of GetObject/HeadObject, interpreted exactly as S3 does: one byte range
// per request, a syntactically invalid header is ignored (200 with the whole object), and only a
// well-formed range that starts at or past the end of the object is a 416 InvalidRange.

#include <cstdint>
#include <string>
#include <string_view>

namespace coffre::s3 {

// An inclusive byte range inside an object: first <= last < object size.
struct ByteRange {
  uint64_t first;
  uint64_t last;  // inclusive

  uint64_t length() const { return last - first + 1; }
};

enum class RangeParse {
  kNone,           // no usable range: answer 200 with the whole object (Range is ignored)
  kSatisfiable,    // answer 206 with `range` and Content-Range: ContentRangeHeader(range, size)
  kUnsatisfiable,  // answer 416 InvalidRange with Content-Range: UnsatisfiedContentRange(size)
};

struct RangeResult {
  RangeParse kind = RangeParse::kNone;
  ByteRange range{0, 0};  // meaningful only when kind == kSatisfiable
};

// Interprets a Range header value against an object of `object_size` bytes:
//   "bytes=a-b"  a..min(b, size-1); a > b is invalid (ignored); a >= size is unsatisfiable.
//   "bytes=a-"   a..size-1; a >= size is unsatisfiable (so is every such range on an empty object).
//   "bytes=-n"   the last min(n, size) bytes; n == 0 is unsatisfiable; on an empty object S3
//                ignores it (200, empty body), so it is kNone.
// kNone for anything else: another unit, several ranges ("bytes=0-1,3-4": S3 does not support
// them and returns the whole object), signs, spaces inside the spec, a missing number.
// The unit is matched case-insensitively (RFC 9110); numbers too large for 64 bits saturate, so
// they still compare as "beyond the end" rather than being rejected as malformed.
RangeResult ParseRange(std::string_view header, uint64_t object_size);

// "bytes 0-99/1000", the Content-Range of a 206.
std::string ContentRangeHeader(const ByteRange& range, uint64_t object_size);
// "bytes */1000", the Content-Range of a 416.
std::string UnsatisfiedContentRange(uint64_t object_size);

}  // namespace coffre::s3
