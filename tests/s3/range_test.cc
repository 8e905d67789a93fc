#include "coffre/s3/range.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace coffre::s3 {
namespace {

void ExpectRange(std::string_view header, uint64_t size, uint64_t first, uint64_t last) {
  SCOPED_TRACE(std::string(header) + " on size " + std::to_string(size));
  const RangeResult r = ParseRange(header, size);
  ASSERT_EQ(r.kind, RangeParse::kSatisfiable);
  EXPECT_EQ(r.range.first, first);
  EXPECT_EQ(r.range.last, last);
  EXPECT_EQ(r.range.length(), last - first + 1);
}

void ExpectKind(std::string_view header, uint64_t size, RangeParse kind) {
  SCOPED_TRACE(std::string(header) + " on size " + std::to_string(size));
  EXPECT_EQ(ParseRange(header, size).kind, kind);
}

void ExpectIgnored(std::string_view header, uint64_t size) { ExpectKind(header, size, RangeParse::kNone); }
void ExpectUnsatisfiable(std::string_view header, uint64_t size) {
  ExpectKind(header, size, RangeParse::kUnsatisfiable);
}

TEST(Range, ClosedRange) {
  ExpectRange("bytes=0-0", 10, 0, 0);
  ExpectRange("bytes=0-9", 10, 0, 9);
  ExpectRange("bytes=3-5", 10, 3, 5);
  ExpectRange("bytes=9-9", 10, 9, 9);
}

TEST(Range, ClosedRangeBeyondEndIsClamped) {
  ExpectRange("bytes=0-10", 10, 0, 9);
  ExpectRange("bytes=5-1000000", 10, 5, 9);
  ExpectRange("bytes=9-18446744073709551615", 10, 9, 9);
}

TEST(Range, OpenEndedRange) {
  ExpectRange("bytes=0-", 10, 0, 9);
  ExpectRange("bytes=7-", 10, 7, 9);
  ExpectRange("bytes=9-", 10, 9, 9);
}

TEST(Range, SuffixRange) {
  ExpectRange("bytes=-1", 10, 9, 9);
  ExpectRange("bytes=-3", 10, 7, 9);
  ExpectRange("bytes=-10", 10, 0, 9);
}

TEST(Range, SuffixLongerThanObjectIsWholeObject) {
  ExpectRange("bytes=-11", 10, 0, 9);
  ExpectRange("bytes=-99999999999999999999999", 10, 0, 9);
}

TEST(Range, StartAtOrPastEndIsUnsatisfiable) {
  ExpectUnsatisfiable("bytes=10-", 10);
  ExpectUnsatisfiable("bytes=10-20", 10);
  ExpectUnsatisfiable("bytes=11-11", 10);
  ExpectUnsatisfiable("bytes=18446744073709551615-", 10);
}

TEST(Range, HugeFirstPositionSaturatesAndIsUnsatisfiable) {
  ExpectUnsatisfiable("bytes=99999999999999999999999-", 10);
  ExpectUnsatisfiable("bytes=99999999999999999999999-99999999999999999999999", 10);
}

TEST(Range, ZeroSuffixIsUnsatisfiable) {
  ExpectUnsatisfiable("bytes=-0", 10);
  ExpectUnsatisfiable("bytes=-0", 0);
  ExpectUnsatisfiable("bytes=-000", 10);
}

TEST(Range, EmptyObject) {
  ExpectUnsatisfiable("bytes=0-0", 0);
  ExpectUnsatisfiable("bytes=0-", 0);
  ExpectUnsatisfiable("bytes=0-100", 0);
  ExpectUnsatisfiable("bytes=5-", 0);
  // S3 answers 200 with an empty body to a non-zero suffix range on an empty object.
  ExpectIgnored("bytes=-1", 0);
  ExpectIgnored("bytes=-100", 0);
  // Still ignored when malformed.
  ExpectIgnored("bytes=5-1", 0);
  ExpectIgnored("items=0-0", 0);
}

TEST(Range, FirstAfterLastIsIgnored) {
  ExpectIgnored("bytes=5-4", 10);
  ExpectIgnored("bytes=20-15", 10);  // ignored, not 416, even though it starts past the end
}

TEST(Range, MultipleRangesAreIgnored) {
  ExpectIgnored("bytes=0-1,3-4", 10);
  ExpectIgnored("bytes=0-1, 3-4", 10);
  ExpectIgnored("bytes=-1,0-0", 10);
  ExpectIgnored("bytes=0-1,", 10);
  ExpectIgnored("bytes=,0-1", 10);
}

TEST(Range, MalformedHeadersAreIgnored) {
  for (std::string_view header :
       {"",           "bytes",      "bytes=",     "bytes=-",       "bytes=--1",   "bytes=a-b",  "bytes=1-a",
        "bytes=a-",   "bytes=-a",   "bytes=1",    "bytes=1-2-3",   "bytes=+1-2",  "bytes=1-+2", "bytes= 1-2",
        "bytes=1 -2", "bytes=1- 2", "bytes =1-2", "bytes=0x10-20", "bytes=1.5-2", "=0-1",       "0-1",
        "bytes:0-1",  "bytes=-1-"}) {
    ExpectIgnored(header, 100);
  }
}

TEST(Range, OtherUnitsAreIgnored) {
  ExpectIgnored("items=0-1", 10);
  ExpectIgnored("byte=0-1", 10);
  ExpectIgnored("bytesx=0-1", 10);
  ExpectIgnored("none", 10);
}

TEST(Range, UnitIsCaseInsensitiveAndOuterWhitespaceTolerated) {
  ExpectRange("Bytes=0-1", 10, 0, 1);
  ExpectRange("BYTES=0-1", 10, 0, 1);
  ExpectRange("  bytes=0-1\t", 10, 0, 1);
}

TEST(Range, LeadingZeros) {
  ExpectRange("bytes=007-008", 10, 7, 8);
  ExpectRange("bytes=-005", 10, 5, 9);
}

TEST(Range, SegmentBoundaries) {
  // Coffre's segments are 64 KiB: the cases either side of one segment must be exact.
  ExpectRange("bytes=0-65535", 65536, 0, 65535);
  ExpectRange("bytes=0-65536", 65536, 0, 65535);
  ExpectRange("bytes=65535-", 65536, 65535, 65535);
  ExpectUnsatisfiable("bytes=65536-", 65536);
  ExpectUnsatisfiable("bytes=65536-65536", 65536);

  ExpectRange("bytes=65535-65536", 65537, 65535, 65536);
  ExpectRange("bytes=65536-", 65537, 65536, 65536);
  ExpectRange("bytes=-1", 65537, 65536, 65536);
  ExpectRange("bytes=-65536", 65537, 1, 65536);
  ExpectRange("bytes=-65537", 65537, 0, 65536);
  ExpectUnsatisfiable("bytes=65537-", 65537);

  ExpectRange("bytes=0-", 65535, 0, 65534);
  ExpectRange("bytes=65534-70000", 65535, 65534, 65534);
  ExpectUnsatisfiable("bytes=65535-", 65535);
  ExpectRange("bytes=-65536", 65535, 0, 65534);
}

TEST(Range, LargestObject) {
  constexpr uint64_t kMax = 18446744073709551615ULL;
  ExpectRange("bytes=0-", kMax, 0, kMax - 1);
  ExpectRange("bytes=-1", kMax, kMax - 1, kMax - 1);
  ExpectRange("bytes=18446744073709551614-18446744073709551615", kMax, kMax - 1, kMax - 1);
  ExpectUnsatisfiable("bytes=18446744073709551615-", kMax);
}

TEST(Range, ContentRangeHeaders) {
  EXPECT_EQ(ContentRangeHeader({0, 99}, 1000), "bytes 0-99/1000");
  EXPECT_EQ(ContentRangeHeader({65536, 65536}, 65537), "bytes 65536-65536/65537");
  EXPECT_EQ(UnsatisfiedContentRange(1000), "bytes */1000");
  EXPECT_EQ(UnsatisfiedContentRange(0), "bytes */0");
}

TEST(Range, ContentRangeOfParsedRange) {
  const RangeResult r = ParseRange("bytes=-5", 65537);
  ASSERT_EQ(r.kind, RangeParse::kSatisfiable);
  EXPECT_EQ(ContentRangeHeader(r.range, 65537), "bytes 65532-65536/65537");
}

}  // namespace
}  // namespace coffre::s3
