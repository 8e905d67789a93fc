#include "coffre/common/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>

namespace coffre {
namespace {

// Found by tests/fuzz/sigv4_fuzzer: a date past 2262 overflowed system_clock's nanosecond count
// (signed overflow, undefined behaviour) instead of being rejected.
TEST(Clock, DatesBeyondTheClockRangeAreRejectedNotOverflowed) {
  EXPECT_FALSE(ParseAmzDate("28130524T000000Z").has_value());
  EXPECT_FALSE(ParseAmzDate("99991231T235959Z").has_value());
  EXPECT_FALSE(ParseHttpDate("Fri, 24 May 2813 00:00:00 GMT").has_value());
  // The last representable years still parse.
  ASSERT_TRUE(ParseAmzDate("22620101T000000Z").has_value());
  EXPECT_EQ(FormatAmzDate(*ParseAmzDate("22620101T000000Z")), "22620101T000000Z");
  EXPECT_EQ(FormatAmzDate(*ParseAmzDate("20130524T000000Z")), "20130524T000000Z");
}

// Found by the ASan+UBSan suite: FromUnixMillis(INT64_MAX / 2), an "all time" bound, overflowed
// the conversion to nanoseconds.
TEST(Clock, FromUnixMillisSaturatesInsteadOfOverflowing) {
  EXPECT_EQ(FromUnixMillis(INT64_MAX / 2),
            std::chrono::system_clock::time_point::max() -
                std::chrono::system_clock::time_point::max().time_since_epoch() % std::chrono::milliseconds(1));
  EXPECT_EQ(FromUnixMillis(INT64_MAX), FromUnixMillis(INT64_MAX / 2));
  EXPECT_LT(FromUnixMillis(INT64_MIN), FromUnixMillis(0));
  EXPECT_EQ(ToUnixMillis(FromUnixMillis(1369353600000)), 1369353600000);
  EXPECT_EQ(FormatIso8601(FromUnixMillis(1369353600000)), "2013-05-24T00:00:00.000Z");
}

// The time bounds of `coffre audit export/archive` and the admin API's audit export.
TEST(Clock, ParseUtcTimeAcceptsTheCliForms) {
  EXPECT_EQ(ParseUtcTime("1970-01-02"), 86'400'000);
  EXPECT_EQ(ParseUtcTime("1970-01-01T00:00:01Z"), 1'000);
  EXPECT_EQ(ParseUtcTime("1970-01-01T00:00:01.250Z"), 1'250);
  EXPECT_FALSE(ParseUtcTime("1970-01-01T00:00:01"));
  EXPECT_FALSE(ParseUtcTime("1970-13-01"));
  EXPECT_FALSE(ParseUtcTime(""));
}

// Object Lock dates as clients send them: boto3 writes microseconds, others an offset.
TEST(Clock, ParseIso8601TakesFractionsAndOffsets) {
  EXPECT_EQ(ParseIso8601("2013-05-24T00:00:00Z"), 1369353600000);
  EXPECT_EQ(ParseIso8601("2013-05-24T00:00:00.5Z"), 1369353600500);
  EXPECT_EQ(ParseIso8601("2013-05-24T00:00:00.123456Z"), 1369353600123);
  EXPECT_EQ(ParseIso8601("2013-05-24T02:00:00+02:00"), 1369353600000);
  EXPECT_EQ(ParseIso8601("2013-05-23T23:30:00.000-00:30"), 1369353600000);
  for (const char* bad :
       {"", "2013-05-24", "2013-05-24T00:00:00", "2013-05-24T00:00:00.Z", "2013-05-24 00:00:00Z",
        "2013-05-24T00:00:00+2:00", "2013-05-24T00:00:00+24:00", "2013-05-24T00:00:00Zjunk", "2013-13-24T00:00:00Z"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(ParseIso8601(bad));
  }
}

}  // namespace
}  // namespace coffre
