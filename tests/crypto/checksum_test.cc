#include "coffre/crypto/checksum.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace coffre::crypto {
namespace {

std::string HexChecksum(ChecksumAlgorithm alg, std::string_view data) {
  return HexEncode(ComputeChecksum(alg, AsBytes(data)));
}

TEST(Checksum, KnownAnswersEmpty) {
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kCrc32, ""), "00000000");
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kCrc32c, ""), "00000000");
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kCrc64Nvme, ""), "0000000000000000");
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kSha1, ""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kSha256, ""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// The catalogue "check" values (CRC RevEng) for the ASCII string "123456789".
TEST(Checksum, KnownAnswersCheckString) {
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kCrc32, "123456789"), "cbf43926");
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kCrc32c, "123456789"), "e3069283");
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kCrc64Nvme, "123456789"), "ae8b14860a799888");
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kSha1, "123456789"), "f7c3bc1d808e04732adf679965ccc34ca7ae3441");
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kSha256, "123456789"),
            "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225");
}

// The examples in S3's documentation and checksum.h.
TEST(Checksum, S3Encoding) {
  EXPECT_EQ(HexChecksum(ChecksumAlgorithm::kCrc32, "abc"), "352441c2");
  EXPECT_EQ(Base64Encode(ComputeChecksum(ChecksumAlgorithm::kCrc32, AsBytes("abc"))), "NSRBwg==");
}

TEST(Checksum, IncrementalEqualsOneShotOnRandomSplits) {
  std::mt19937_64 rng(20240521);
  Bytes data(100000);
  for (auto& b : data) {
    b = static_cast<uint8_t>(rng());
  }
  for (ChecksumAlgorithm alg : kAllChecksumAlgorithms) {
    const Bytes expected = ComputeChecksum(alg, data);
    ASSERT_EQ(expected.size(), ChecksumSize(alg)) << ChecksumAlgorithmName(alg);
    for (int trial = 0; trial < 20; ++trial) {
      auto c = Checksummer::Create(alg);
      size_t pos = 0;
      while (pos < data.size()) {
        // Mix tiny pieces (byte-at-a-time tails), empty updates and large runs.
        const size_t n = std::min<size_t>(data.size() - pos, rng() % 3 == 0 ? rng() % 9 : rng() % 20000);
        c->Update(ByteView(data).subspan(pos, n));
        pos += n;
      }
      EXPECT_EQ(c->Final(), expected) << ChecksumAlgorithmName(alg) << " trial " << trial;
    }
  }
}

// A multipart object's full-object CRC comes from its parts' CRCs and lengths: any split of the
// bytes, empty pieces included, folds back to the CRC of the whole.
TEST(Checksum, CombinedCrcsOfPiecesAreTheCrcOfTheWhole) {
  std::mt19937_64 rng(20261207);
  Bytes data(300000);
  for (auto& b : data) {
    b = static_cast<uint8_t>(rng());
  }
  for (ChecksumAlgorithm alg : kAllChecksumAlgorithms) {
    if (!HasFullObjectChecksum(alg)) continue;
    const Bytes expected = ComputeChecksum(alg, data);
    for (int trial = 0; trial < 20; ++trial) {
      Bytes combined = ComputeChecksum(alg, {});
      size_t pos = 0;
      while (pos < data.size()) {
        const size_t n = std::min<size_t>(data.size() - pos, rng() % 4 == 0 ? rng() % 3 : rng() % 90000);
        const ByteView piece = ByteView(data).subspan(pos, n);
        auto next = CombineCrc(alg, combined, ComputeChecksum(alg, piece), n);
        ASSERT_TRUE(next.ok()) << next.status().message();
        combined = std::move(next).value();
        pos += n;
      }
      EXPECT_EQ(HexEncode(combined), HexEncode(expected)) << ChecksumAlgorithmName(alg) << " trial " << trial;
    }
    // Lengths past 32 bits go through the same powers: the CRC of 2n zero bytes from two of n.
    const Bytes zeros(1 << 20, 0);
    const Bytes two = ComputeChecksum(alg, Bytes(2 << 20, 0));
    auto doubled = CombineCrc(alg, ComputeChecksum(alg, zeros), ComputeChecksum(alg, zeros), zeros.size());
    ASSERT_TRUE(doubled.ok());
    EXPECT_EQ(*doubled, two) << ChecksumAlgorithmName(alg);
  }
}

TEST(Checksum, OnlyCrcsCombine) {
  EXPECT_TRUE(HasFullObjectChecksum(ChecksumAlgorithm::kCrc32));
  EXPECT_TRUE(HasFullObjectChecksum(ChecksumAlgorithm::kCrc32c));
  EXPECT_TRUE(HasFullObjectChecksum(ChecksumAlgorithm::kCrc64Nvme));
  EXPECT_FALSE(HasFullObjectChecksum(ChecksumAlgorithm::kSha1));
  EXPECT_FALSE(HasFullObjectChecksum(ChecksumAlgorithm::kSha256));
  EXPECT_FALSE(HasCompositeChecksum(ChecksumAlgorithm::kCrc64Nvme));
  EXPECT_TRUE(HasCompositeChecksum(ChecksumAlgorithm::kSha256));
  const Bytes sha = ComputeChecksum(ChecksumAlgorithm::kSha256, AsBytes("a"));
  EXPECT_EQ(CombineCrc(ChecksumAlgorithm::kSha256, sha, sha, 1).status().code(), StatusCode::kInvalidArgument);
  const Bytes crc = ComputeChecksum(ChecksumAlgorithm::kCrc32, AsBytes("a"));
  EXPECT_EQ(CombineCrc(ChecksumAlgorithm::kCrc64Nvme, crc, crc, 1).status().code(), StatusCode::kInvalidArgument);
}

TEST(Checksum, UnalignedInputMatchesAligned) {
  std::mt19937_64 rng(7);
  Bytes buf(5000);
  for (auto& b : buf) {
    b = static_cast<uint8_t>(rng());
  }
  for (ChecksumAlgorithm alg : kAllChecksumAlgorithms) {
    for (size_t offset = 1; offset < 8; ++offset) {
      Bytes copy(buf.begin() + offset, buf.end());
      EXPECT_EQ(ComputeChecksum(alg, ByteView(buf).subspan(offset)), ComputeChecksum(alg, copy));
    }
  }
}

TEST(Checksum, Names) {
  EXPECT_EQ(ChecksumAlgorithmName(ChecksumAlgorithm::kCrc64Nvme), "CRC64NVME");
  EXPECT_EQ(ChecksumHeaderName(ChecksumAlgorithm::kCrc32c), "x-amz-checksum-crc32c");
  EXPECT_EQ(ParseChecksumAlgorithm("crc32c"), ChecksumAlgorithm::kCrc32c);
  EXPECT_EQ(ParseChecksumAlgorithm("CRC32"), ChecksumAlgorithm::kCrc32);
  EXPECT_EQ(ParseChecksumAlgorithm("X-Amz-Checksum-Sha256"), ChecksumAlgorithm::kSha256);
  EXPECT_EQ(ParseChecksumAlgorithm("sha1"), ChecksumAlgorithm::kSha1);
  EXPECT_FALSE(ParseChecksumAlgorithm("crc64").has_value());
  EXPECT_FALSE(ParseChecksumAlgorithm("").has_value());
  for (ChecksumAlgorithm alg : kAllChecksumAlgorithms) {
    EXPECT_EQ(ParseChecksumAlgorithm(ChecksumAlgorithmName(alg)), alg);
    EXPECT_EQ(ParseChecksumAlgorithm(ChecksumHeaderName(alg)), alg);
  }
  EXPECT_EQ(ChecksumSize(ChecksumAlgorithm::kCrc32), 4u);
  EXPECT_EQ(ChecksumSize(ChecksumAlgorithm::kCrc32c), 4u);
  EXPECT_EQ(ChecksumSize(ChecksumAlgorithm::kCrc64Nvme), 8u);
  EXPECT_EQ(ChecksumSize(ChecksumAlgorithm::kSha1), 20u);
  EXPECT_EQ(ChecksumSize(ChecksumAlgorithm::kSha256), 32u);
}

}  // namespace
}  // namespace coffre::crypto
