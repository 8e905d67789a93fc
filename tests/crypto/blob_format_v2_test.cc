// Version 2 blobs: length declared in a header written first, and a sealed description at the end.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/blob_format.h"
#include "coffre/crypto/hash.h"
#include "support/status_matchers.h"

namespace coffre::crypto {
namespace {

using test_support::StatusIs;

constexpr uint32_t kSeg = kMinSegmentSize;
constexpr std::string_view kDescription = R"({"bucket":"dossiers","key":"pret/2026/001.pdf"})";

Bytes Range(uint8_t first, size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(first + i);
  return b;
}

Bytes Pattern(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i % 251);
  return b;
}

KeyReference TestKeyRef() { return KeyReference{Range(0x10, kTenantKeyIdSize), 3, Range(0xc0, kWrappedDataKeySize)}; }
BlobIdentity TestIdentity() { return BlobIdentity{"tenant-7", "blob-0123456789abcdef"}; }
SecretBytes TestDataKey() { return SecretBytes(Range(0x00, kKeySize)); }

BlobEncryptor VectorEncryptor(BlobIdentity identity = TestIdentity()) {
  auto enc =
      BlobEncryptor::CreateForTest(TestDataKey(), TestKeyRef(), std::move(identity), kSeg, Range(0x80, kBlobSaltSize),
                                   Range(0xa0, kBlobNoncePrefixSize), kBlobFormatVersion2);
  EXPECT_OK(enc);
  return std::move(enc).value();
}

// Writes a blob front to back, as an upstream stream takes it: header, segments, description.
Bytes WriteFrontToBack(const BlobEncryptor& enc, ByteView plaintext, ByteView description) {
  Bytes blob = enc.EncodeHeader(plaintext.size());
  const uint64_t n = SegmentCount(plaintext.size(), enc.segment_size());
  for (uint64_t i = 0; i < n; ++i) {
    const size_t begin = i * enc.segment_size();
    const size_t len = std::min<size_t>(enc.segment_size(), plaintext.size() - begin);
    Bytes sealed(len + kSegmentTagSize);
    EXPECT_OK(enc.SealSegment(i, i == n - 1, plaintext.subspan(begin, len), sealed));
    blob.insert(blob.end(), sealed.begin(), sealed.end());
  }
  auto sealed = enc.SealDescription(plaintext.size(), description);
  EXPECT_OK(sealed);
  blob.insert(blob.end(), sealed->begin(), sealed->end());
  return blob;
}

Result<BlobDecryptor> OpenHeader(ByteView blob, BlobIdentity identity = TestIdentity()) {
  return BlobDecryptor::Create(TestDataKey(), std::move(identity), blob.first(kHeaderSize));
}

Result<Bytes> ReadPlaintext(const BlobDecryptor& dec, ByteView blob) {
  COFFRE_RETURN_IF_ERROR(CheckBlobFileLength(dec.header(), blob.size()));
  Bytes out;
  const uint32_t seg = dec.header().segment_size;
  for (uint64_t i = 0; i < dec.segment_count(); ++i) {
    const size_t len = std::min<uint64_t>(seg, dec.header().plaintext_length - i * seg);
    Bytes plain(len);
    COFFRE_RETURN_IF_ERROR(dec.OpenSegment(i, blob.subspan(SegmentOffset(i, seg), len + kSegmentTagSize), plain));
    out.insert(out.end(), plain.begin(), plain.end());
  }
  return out;
}

ByteView SealedDescription(const BlobDecryptor& dec, ByteView blob) {
  return blob.subspan(DescriptionOffset(dec.header()));
}

// Opens `blob` as a reader would and expects `plaintext` and kDescription back.
void ExpectReadsBack(ByteView blob, const Bytes& plaintext) {
  auto dec = OpenHeader(blob);
  ASSERT_OK(dec);
  EXPECT_EQ(dec->header().version, kBlobFormatVersion2);
  auto read = ReadPlaintext(*dec, blob);
  ASSERT_OK(read);
  EXPECT_EQ(*read, plaintext);
  auto description = dec->OpenDescription(SealedDescription(*dec, blob));
  ASSERT_OK(description);
  EXPECT_EQ(std::string(description->begin(), description->end()), kDescription);
}

TEST(BlobFormatV2Test, RoundTripsPlaintextAndDescription) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{kSeg}, size_t{kSeg + 1}, size_t{3 * kSeg}}) {
    SCOPED_TRACE(size);
    auto enc = BlobEncryptor::Create(TestDataKey(), TestKeyRef(), TestIdentity(), kSeg, kBlobFormatVersion2);
    ASSERT_OK(enc);
    const Bytes plaintext = Pattern(size);
    ExpectReadsBack(WriteFrontToBack(*enc, plaintext, AsBytes(kDescription)), plaintext);
  }
}

TEST(BlobFormatV2Test, EmptyDescriptionIsStillSealed) {
  const BlobEncryptor enc = VectorEncryptor();
  const Bytes blob = WriteFrontToBack(enc, Pattern(10), {});
  auto dec = OpenHeader(blob);
  ASSERT_OK(dec);
  EXPECT_EQ(blob.size(), DescriptionOffset(dec->header()) + kSegmentTagSize);
  auto description = dec->OpenDescription(SealedDescription(*dec, blob));
  ASSERT_OK(description);
  EXPECT_TRUE(description->empty());
}

TEST(BlobFormatV2Test, AlteredOrTruncatedDescriptionIsCorruption) {
  const Bytes blob = WriteFrontToBack(VectorEncryptor(), Pattern(5000), AsBytes(kDescription));
  auto dec = OpenHeader(blob);
  ASSERT_OK(dec);
  const size_t start = DescriptionOffset(dec->header());
  for (size_t at = start; at < blob.size(); at += 7) {
    Bytes altered = blob;
    altered[at] ^= 0x01;
    EXPECT_THAT(dec->OpenDescription(ByteView(altered).subspan(start)), StatusIs(StatusCode::kCorruption)) << at;
  }
  const ByteView sealed = SealedDescription(*dec, blob);
  EXPECT_THAT(dec->OpenDescription(sealed.first(sealed.size() - 1)), StatusIs(StatusCode::kCorruption));
  EXPECT_THAT(dec->OpenDescription(sealed.first(kSegmentTagSize - 1)), StatusIs(StatusCode::kCorruption));
}

TEST(BlobFormatV2Test, DescriptionOfAnotherBlobDoesNotOpen) {
  // Same data key and salt, another blob id: the identity binds the description.
  const Bytes mine = WriteFrontToBack(VectorEncryptor(), Pattern(100), AsBytes(kDescription));
  const BlobIdentity other_id{"tenant-7", "blob-fedcba9876543210"};
  const Bytes other = WriteFrontToBack(VectorEncryptor(other_id), Pattern(100), AsBytes("another dossier"));
  auto dec = OpenHeader(mine);
  ASSERT_OK(dec);
  auto other_dec = OpenHeader(other, other_id);
  ASSERT_OK(other_dec);
  EXPECT_THAT(dec->OpenDescription(SealedDescription(*other_dec, other)), StatusIs(StatusCode::kCorruption));
}

TEST(BlobFormatV2Test, DescriptionSealedForAnotherLengthDoesNotOpen) {
  // The description is bound to its header's MAC, which covers the declared length: a description
  // cannot be moved behind a header that claims fewer or more bytes.
  const BlobEncryptor enc = VectorEncryptor();
  const Bytes blob = WriteFrontToBack(enc, Pattern(100), AsBytes(kDescription));
  auto dec = OpenHeader(blob);
  ASSERT_OK(dec);
  auto foreign = enc.SealDescription(99, AsBytes(kDescription));
  ASSERT_OK(foreign);
  EXPECT_THAT(dec->OpenDescription(*foreign), StatusIs(StatusCode::kCorruption));
}

TEST(BlobFormatV2Test, VersionByteCannotBeRewritten) {
  // A version 2 header relabelled as version 1 (or the reverse) fails its MAC: each version has its
  // own derivation labels, so the segments would not open either.
  const Bytes v2 = WriteFrontToBack(VectorEncryptor(), Pattern(100), AsBytes(kDescription));
  Bytes relabelled = v2;
  relabelled[8] = kBlobFormatVersion1;
  EXPECT_THAT(OpenHeader(relabelled), StatusIs(StatusCode::kCorruption));

  auto v1 = BlobEncryptor::CreateForTest(TestDataKey(), TestKeyRef(), TestIdentity(), kSeg, Range(0x80, kBlobSaltSize),
                                         Range(0xa0, kBlobNoncePrefixSize), kBlobFormatVersion1);
  ASSERT_OK(v1);
  Bytes v1_header = v1->EncodeHeader(100);
  v1_header[8] = kBlobFormatVersion2;
  EXPECT_THAT(BlobDecryptor::Create(TestDataKey(), TestIdentity(), v1_header), StatusIs(StatusCode::kCorruption));
}

TEST(BlobFormatV2Test, FileLengthMustLeaveRoomForADescription) {
  const Bytes blob = WriteFrontToBack(VectorEncryptor(), Pattern(5000), AsBytes(kDescription));
  auto dec = OpenHeader(blob);
  ASSERT_OK(dec);
  const uint64_t end_of_segments = DescriptionOffset(dec->header());
  EXPECT_OK(CheckBlobFileLength(dec->header(), blob.size()));
  EXPECT_OK(CheckBlobFileLength(dec->header(), end_of_segments + kSegmentTagSize));
  EXPECT_EQ(CheckBlobFileLength(dec->header(), end_of_segments).code(), StatusCode::kCorruption);
  EXPECT_EQ(CheckBlobFileLength(dec->header(), end_of_segments + kSegmentTagSize - 1).code(), StatusCode::kCorruption);
  EXPECT_EQ(CheckBlobFileLength(dec->header(), end_of_segments + kSegmentTagSize + kMaxBlobDescriptionSize + 1).code(),
            StatusCode::kCorruption);
}

TEST(BlobFormatV2Test, DescriptionsOnlyInVersion2AndBounded) {
  auto v1 = BlobEncryptor::Create(TestDataKey(), TestKeyRef(), TestIdentity(), kSeg, kBlobFormatVersion1);
  ASSERT_OK(v1);
  EXPECT_THAT(v1->SealDescription(0, AsBytes(kDescription)), StatusIs(StatusCode::kInvalidArgument));
  const Bytes too_large(kMaxBlobDescriptionSize + 1, 'x');
  EXPECT_THAT(VectorEncryptor().SealDescription(0, too_large), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(BlobEncryptor::Create(TestDataKey(), TestKeyRef(), TestIdentity(), kSeg, 3),
              StatusIs(StatusCode::kInvalidArgument));

  // A version 1 blob has no description to open.
  Bytes header = v1->EncodeHeader(0);
  auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), header);
  ASSERT_OK(dec);
  EXPECT_THAT(dec->OpenDescription(Bytes(kSegmentTagSize)), StatusIs(StatusCode::kInvalidArgument));
}

// ------------------------------------------------------------------------------------------------
// Test vectors: keep in sync with docs/FORMAT.md, "Test vectors, version 2". Same inputs as the
// version 1 vectors, plus the description above.

struct VectorV2 {
  size_t plaintext_length;
  const char* header_hex;
  const char* sealed_description_hex;
  uint64_t blob_length;
  const char* blob_sha256;
};

const VectorV2 kVectorsV2[] = {
    {10000,
     "434f464652424c420201000010000000000000002710101112131415161718191a1b1c1d1e1f00000003c0c1c2c3c4c5c6c7c8c9cacbcc"
     "cdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafb808182838485868788"
     "898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6fd757942cbd3b2982a5dc1f43361f901a5cf9218587b2ad8e162"
     "951bcb5fb5950000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "00b3210c5cac78ae8ff40859cb265c10ef274ffc80004abfdd0f4826d70edd261f",
     "2ba04309e90cbbe13322b3133fa52c0a5c13012bb363e10cf866dad6b827285965cc84bb42736fd76eb4f8cc812f38e624301a8c3eeaf8e8"
     "868bc28b1d5be5",
     10367, "effb2eb1cfcf512bb8b03fd6e2b12252092a8b3692f18e3d6b70f1b9b92d03c8"},
    {0,
     "434f464652424c420201000010000000000000000000101112131415161718191a1b1c1d1e1f00000003c0c1c2c3c4c5c6c7c8c9cacbcc"
     "cdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafb808182838485868788"
     "898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6fd757942cbd3b2982a5dc1f43361f901a5cf9218587b2ad8e162"
     "951bcb5fb5950000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "003eb999999576c4bb89c9fc2b5104fcb107e4f1b4c2b526325c353d1e487a4a4e",
     "2ba04309e90cbbe13322b3133fa52c0a5c13012bb363e10cf866dad6b827285965cc84bb42736fd76eb4f8cc812f3825d9067bfca9629e92"
     "c12e2ce62ab816",
     335, "39a0bc4f18087ef413986b74726acf8941f0f8578a861c1eef18ea6e7130d2a3"},
};

TEST(BlobTestVectorsV2, DerivedValues) {
  const SecretBytes key = TestDataKey();
  const Bytes salt = Range(0x80, kBlobSaltSize);
  auto derive = [&](std::string_view label) { return HexEncode(HkdfSha256(key, salt, AsBytes(label), 32).Reveal()); };
  EXPECT_EQ(derive("coffre/v2/segment-key"), "0b9a6266c621df001e245523431f1cfa6c1efe425b6d9228aa1fe1ede2f86538");
  EXPECT_EQ(derive("coffre/v2/header-mac-key"), "bc52152de86844e519f5cd4e1e8607337acbdea471074a052eb28d50673e5f9b");
  EXPECT_EQ(derive("coffre/v2/commitment"), "fd757942cbd3b2982a5dc1f43361f901a5cf9218587b2ad8e162951bcb5fb595");
  EXPECT_EQ(derive("coffre/v2/description-key"), "dd757ea7a07f2689cd149575ffb5d5717f4dee99851fb367a219f52def685ac9");
}

TEST(BlobTestVectorsV2, MatchFormatDoc) {
  for (const VectorV2& v : kVectorsV2) {
    SCOPED_TRACE("plaintext length " + std::to_string(v.plaintext_length));
    const Bytes plaintext = Pattern(v.plaintext_length);
    const Bytes blob = WriteFrontToBack(VectorEncryptor(), plaintext, AsBytes(kDescription));
    EXPECT_EQ(HexEncode(ByteView(blob).first(kHeaderSize)), v.header_hex);
    EXPECT_EQ(HexEncode(ByteView(blob).last(kDescription.size() + kSegmentTagSize)), v.sealed_description_hex);
    EXPECT_EQ(blob.size(), v.blob_length);
    EXPECT_EQ(HexEncode(Sha256::Digest(blob)), v.blob_sha256);
    ExpectReadsBack(blob, plaintext);  // the documented bytes read back
  }
}

}  // namespace
}  // namespace coffre::crypto
