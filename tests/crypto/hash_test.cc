#include "coffre/crypto/hash.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace coffre::crypto {
namespace {

template <size_t N>
std::string Hex(const std::array<uint8_t, N>& d) {
  return HexEncode(ByteView(d));
}

TEST(Sha256, KnownAnswers) {
  EXPECT_EQ(Hex(Sha256::Digest(AsBytes(""))), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256::Digest(AsBytes("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  Sha256 h;
  h.Update(AsBytes("a"));
  h.Update(AsBytes(""));
  h.Update(AsBytes("bc"));
  EXPECT_EQ(Hex(h.Final()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, MovedObjectKeepsState) {
  Sha256 a;
  a.Update(AsBytes("ab"));
  Sha256 b(std::move(a));
  b.Update(AsBytes("c"));
  EXPECT_EQ(Hex(b.Final()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Md5, KnownAnswers) {
  EXPECT_EQ(Hex(Md5::Digest(AsBytes(""))), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Hex(Md5::Digest(AsBytes("abc"))), "900150983cd24fb0d6963f7d28e17f72");
  Md5 h;
  h.Update(AsBytes("ab"));
  h.Update(AsBytes("c"));
  EXPECT_EQ(Hex(h.Final()), "900150983cd24fb0d6963f7d28e17f72");
}

TEST(Sha1, KnownAnswers) {
  Sha1 empty;
  EXPECT_EQ(Hex(empty.Final()), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  Sha1 abc;
  abc.Update(AsBytes("a"));
  abc.Update(AsBytes("bc"));
  EXPECT_EQ(Hex(abc.Final()), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

// RFC 4231, test case 2.
TEST(HmacSha256, Rfc4231Case2) {
  EXPECT_EQ(Hex(HmacSha256(AsBytes("Jefe"), AsBytes("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// RFC 4231, test case 6: a key longer than the block size.
TEST(HmacSha256, Rfc4231Case6LongKey) {
  const Bytes key(131, 0xaa);
  EXPECT_EQ(Hex(HmacSha256(key, AsBytes("Test Using Larger Than Block-Size Key - Hash Key First"))),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

// RFC 2202, test cases 2 and 6 (HMAC-SHA1, which SigV2 signs with).
TEST(HmacSha1, Rfc2202) {
  EXPECT_EQ(Hex(HmacSha1(AsBytes("Jefe"), AsBytes("what do ya want for nothing?"))),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
  const Bytes key(80, 0xaa);
  EXPECT_EQ(Hex(HmacSha1(key, AsBytes("Test Using Larger Than Block-Size Key - Hash Key First"))),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112");
  EXPECT_EQ(Hex(HmacSha1({}, {})), "fbdb1d1b18aa6c08324b7d64b71fb76370690e1d");
}

TEST(HmacSha256, EmptyKeyAndMessage) {
  // HMAC-SHA256 with an empty key over an empty message (a well-known constant).
  EXPECT_EQ(Hex(HmacSha256({}, {})), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(HmacSha256, MessageInPartsEqualsTheWhole) {
  const ByteView parts[] = {AsBytes("what do ya"), {}, AsBytes(" want for nothing?")};
  EXPECT_EQ(Hex(HmacSha256OfParts(AsBytes("Jefe"), parts)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// Each thread reuses one context: every call must key it afresh, an empty key included (OpenSSL
// reads a null key as "keep the previous one").
TEST(HmacSha256, EachCallUsesOnlyItsOwnKey) {
  const std::string jefe = Hex(HmacSha256(AsBytes("Jefe"), AsBytes("what do ya want for nothing?")));
  const std::string empty = Hex(HmacSha256({}, {}));
  EXPECT_EQ(empty, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  EXPECT_EQ(Hex(HmacSha256(AsBytes("Jefe"), AsBytes("what do ya want for nothing?"))), jefe);
}

TEST(HmacSha256, ThreadsComputingAtOnceEachGetTheirOwnMac) {
  constexpr int kThreads = 4;
  std::vector<std::array<uint8_t, 32>> expected;
  for (int t = 0; t < kThreads; ++t) {
    expected.push_back(HmacSha256(Bytes(32, static_cast<uint8_t>(t)), AsBytes("message")));
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const Bytes key(32, static_cast<uint8_t>(t));
      for (int i = 0; i < 2000; ++i) {
        mismatches[t] += HmacSha256(key, AsBytes("message")) != expected[t] ? 1 : 0;
      }
    });
  }
  for (std::thread& th : threads) {
    th.join();
  }
  EXPECT_EQ(mismatches, std::vector<int>(kThreads, 0));
}

}  // namespace
}  // namespace coffre::crypto
