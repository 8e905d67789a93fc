// Fuzzes the Range header (s3::ParseRange) against object sizes around the interesting edges,
// and checks the contract of its result: a satisfiable range lies inside the object.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

#include "coffre/s3/range.h"

namespace {

void Check(std::string_view header, uint64_t size) {
  const coffre::s3::RangeResult r = coffre::s3::ParseRange(header, size);
  if (r.kind == coffre::s3::RangeParse::kSatisfiable) {
    if (size == 0 || r.range.first > r.range.last || r.range.last >= size) {
      std::abort();
    }
    const std::string content_range = coffre::s3::ContentRangeHeader(r.range, size);
    if (content_range.rfind("bytes ", 0) != 0) {
      std::abort();
    }
  } else if (r.kind == coffre::s3::RangeParse::kUnsatisfiable) {
    (void)coffre::s3::UnsatisfiedContentRange(size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  for (const uint64_t object_size :
       {uint64_t{0}, uint64_t{1}, uint64_t{10}, uint64_t{65536}, uint64_t{1} << 40, kMax - 1, kMax}) {
    Check(header, object_size);
  }
  return 0;
}
