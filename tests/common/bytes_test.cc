#include "coffre/common/bytes.h"

#include <gtest/gtest.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include <atomic>
#include <thread>
#include <vector>

#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"
#include "support/status_matchers.h"

namespace coffre {
namespace {

using test_support::StatusIs;

TEST(Bytes, HexRoundTrip) {
  Bytes b = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(HexEncode(b), "0001abff");
  EXPECT_EQ(HexDecode("0001ABff").value(), b);
  EXPECT_FALSE(HexDecode("abc").has_value());
  EXPECT_FALSE(HexDecode("zz").has_value());
}

TEST(Bytes, HexIntoCallerMemory) {
  const Bytes b = {0x00, 0x7f, 0xab, 0xff};
  Bytes text(2 * b.size());
  HexEncodeInto(b, text);
  EXPECT_EQ(AsChars(text), "007fabff");

  Bytes out(b.size());
  EXPECT_TRUE(HexDecodeInto("007FabFF", out));
  EXPECT_EQ(out, b);
  EXPECT_FALSE(HexDecodeInto("007fab", out));      // too short for out
  EXPECT_FALSE(HexDecodeInto("007fabff00", out));  // too long for out
  EXPECT_FALSE(HexDecodeInto("007fabfg", out));
  Bytes none;
  EXPECT_TRUE(HexDecodeInto("", none));
}

TEST(Bytes, IsHex) {
  EXPECT_TRUE(IsHex(""));
  EXPECT_TRUE(IsHex("0123456789abcdefABCDEF"));
  EXPECT_FALSE(IsHex("12 3"));
  EXPECT_FALSE(IsHex("g"));
  EXPECT_FALSE(IsHex(std::string_view("\0", 1)));
}

TEST(Bytes, ParseDecimalRejectsOrSaturatesOverflow) {
  EXPECT_EQ(ParseDecimal("0"), 0u);
  EXPECT_EQ(ParseDecimal("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(ParseDecimal("18446744073709551616").has_value());
  EXPECT_FALSE(ParseDecimal("").has_value());
  EXPECT_FALSE(ParseDecimal("+1").has_value());
  EXPECT_FALSE(ParseDecimal(" 1").has_value());

  EXPECT_EQ(ParseDecimalSaturating("42"), 42u);
  EXPECT_EQ(ParseDecimalSaturating("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(ParseDecimalSaturating("99999999999999999999999"), UINT64_MAX);
  EXPECT_FALSE(ParseDecimalSaturating("").has_value());
  EXPECT_FALSE(ParseDecimalSaturating("-1").has_value());
  EXPECT_FALSE(ParseDecimalSaturating("1x").has_value());
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

// Small secrets share locked arena slots: a reused slot starts zeroed, sizes on both sides of
// the slot size keep their bytes, and many live secrets never overlap.
TEST(Secret, ArenaSlotsAreZeroedIndependentAndReused) {
  for (size_t size : {1u, 16u, 32u, 63u, 64u, 65u, 200u}) {
    {
      SecretBytes dirty(size);
      for (auto& b : dirty.RevealMutable()) {
        b = 0xA5;
      }
    }
    SecretBytes fresh(size);  // likely the slot just released
    for (uint8_t b : fresh.Reveal()) {
      ASSERT_EQ(b, 0) << "size " << size;
    }
  }
  std::vector<SecretBytes> live;
  for (int i = 0; i < 3000; ++i) {  // more than one 64 KiB chunk of 64-byte slots
    SecretBytes s(static_cast<size_t>(1 + i % 64));
    for (auto& b : s.RevealMutable()) {
      b = static_cast<uint8_t>(i);
    }
    live.push_back(std::move(s));
  }
  for (size_t i = 0; i < live.size(); ++i) {
    ASSERT_EQ(live[i].size(), 1 + i % 64);
    for (uint8_t b : live[i].Reveal()) {
      ASSERT_EQ(b, static_cast<uint8_t>(i)) << "secret " << i << " was overwritten";
    }
  }
}

#if defined(__SANITIZE_ADDRESS__)
// The arena keeps ASan's eyes open: the unused tail of a slot and a released slot are poisoned.
// `make asan` sends every report to a file (log_path) and fails on any; the expected reports of
// these death-test children go back to stderr, where EXPECT_DEATH matches them.
TEST(SecretDeathTest, ArenaOverflowAndUseAfterReleaseAreCaughtByAsan) {
  EXPECT_DEATH(
      {
        __sanitizer_set_report_path("stderr");
        SecretBytes s(32);
        volatile const uint8_t* p = s.Reveal().data();
        (void)p[40];
      },
      "use-after-poison");
  EXPECT_DEATH(
      {
        __sanitizer_set_report_path("stderr");
        const uint8_t* p = nullptr;
        {
          SecretBytes s(32);
          p = s.Reveal().data();
        }
        volatile const uint8_t* q = p;
        (void)q[0];
      },
      "use-after-poison");
}
#endif

TEST(Secret, ConcurrentCopiesFromManyThreads) {
  const SecretBytes key = SecretBytes::Random(32);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        SecretBytes copy(key);
        SecretBytes other = SecretBytes::Random(16);
        if (!ConstantTimeEquals(copy.Reveal(), key.Reveal())) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Status, CodesAndMessages) {
  Status ok;
  EXPECT_OK(ok);
  Status nf = Status::NotFound("bucket x");
  EXPECT_THAT(nf, StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(nf.ToString(), "NotFound: bucket x");
  EXPECT_THAT(Status::FromErrno(ENOSPC, "write"), StatusIs(StatusCode::kNoSpace));
  Result<int> r = 5;
  EXPECT_OK(r);
  Result<int> e = Status::Internal("boom");
  EXPECT_THAT(e, StatusIs(StatusCode::kInternal));
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
