#include "coffre/common/bytes.h"

#include <gtest/gtest.h>

#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre {
namespace {

TEST(Bytes, HexRoundTrip) {
  Bytes b = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(HexEncode(b), "0001abff");
  EXPECT_EQ(HexDecode("0001ABff").value(), b);
  EXPECT_FALSE(HexDecode("abc").has_value());
  EXPECT_FALSE(HexDecode("zz").has_value());
}

TEST(Bytes, Base64MatchesRfc4648) {
  EXPECT_EQ(Base64Encode(AsBytes("")), "");
  EXPECT_EQ(Base64Encode(AsBytes("f")), "Zg==");
  EXPECT_EQ(Base64Encode(AsBytes("foob")), "Zm9vYg==");
  EXPECT_EQ(Base64Encode(AsBytes("foobar")), "Zm9vYmFy");
  EXPECT_EQ(AsChars(Base64Decode("Zm9vYmE=").value()), "fooba");
  EXPECT_FALSE(Base64Decode("Zm9v!").has_value());
  EXPECT_FALSE(Base64Decode("Zm9vY").has_value());
}

TEST(Bytes, BigEndianRoundTrip) {
  uint8_t buf[8];
  PutBigEndian64(buf, 0x0102030405060708ULL);
  EXPECT_EQ(buf[0], 1);
  EXPECT_EQ(buf[7], 8);
  EXPECT_EQ(GetBigEndian64(buf), 0x0102030405060708ULL);
  PutBigEndian32(buf, 0xdeadbeef);
  EXPECT_EQ(GetBigEndian32(buf), 0xdeadbeefU);
}

TEST(Bytes, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals(AsBytes("abc"), AsBytes("abc")));
  EXPECT_FALSE(ConstantTimeEquals(AsBytes("abc"), AsBytes("abd")));
  EXPECT_FALSE(ConstantTimeEquals(AsBytes("abc"), AsBytes("ab")));
}

TEST(Secret, CopyMoveAndRandom) {
  SecretBytes a = SecretBytes::Random(32);
  SecretBytes b = a;
  EXPECT_TRUE(ConstantTimeEquals(a.Reveal(), b.Reveal()));
  SecretBytes c = std::move(a);
  EXPECT_EQ(c.size(), 32u);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_FALSE(ConstantTimeEquals(c.Reveal(), SecretBytes::Random(32).Reveal()));
}

TEST(Status, CodesAndMessages) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  Status nf = Status::NotFound("bucket x");
  EXPECT_EQ(nf.code(), StatusCode::kNotFound);
  EXPECT_EQ(nf.ToString(), "NotFound: bucket x");
  EXPECT_EQ(Status::FromErrno(ENOSPC, "write").code(), StatusCode::kNoSpace);
  Result<int> r = 5;
  EXPECT_TRUE(r.ok());
  Result<int> e = Status::Internal("boom");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInternal);
}

TEST(Clock, AmzDateAndHttpDate) {
  auto t = ParseAmzDate("20130524T000000Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(FormatAmzDate(*t), "20130524T000000Z");
  EXPECT_EQ(FormatHttpDate(*t), "Fri, 24 May 2013 00:00:00 GMT");
  EXPECT_EQ(FormatIso8601(*t), "2013-05-24T00:00:00.000Z");
  EXPECT_EQ(ParseHttpDate("Fri, 24 May 2013 00:00:00 GMT"), t);
  EXPECT_FALSE(ParseAmzDate("2013-05-24T00:00:00Z").has_value());
  EXPECT_FALSE(ParseAmzDate("20131324T000000Z").has_value());
  EXPECT_FALSE(ParseHttpDate("yesterday").has_value());
}

}  // namespace
}  // namespace coffre
