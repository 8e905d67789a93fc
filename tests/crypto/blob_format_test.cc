#include "coffre/crypto/blob_format.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/hash.h"
#include "support/status_matchers.h"

namespace coffre::crypto {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint32_t kSeg = kMinSegmentSize;

Bytes Range(uint8_t first, size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) {
    b[i] = static_cast<uint8_t>(first + i);
  }
  return b;
}

Bytes Pattern(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) {
    b[i] = static_cast<uint8_t>(i % 251);
  }
  return b;
}

KeyReference TestKeyRef() { return KeyReference{Range(0x10, kTenantKeyIdSize), 3, Range(0xc0, kWrappedDataKeySize)}; }
BlobIdentity TestIdentity() { return BlobIdentity{"tenant-7", "blob-0123456789abcdef"}; }
SecretBytes TestDataKey() { return SecretBytes(Range(0x00, kKeySize)); }

// Writes a whole blob the way the service will: segments first, header last.
Bytes EncryptAll(const BlobEncryptor& enc, ByteView plaintext) {
  const uint32_t seg = enc.segment_size();
  const uint64_t n = SegmentCount(plaintext.size(), seg);
  Bytes blob(CiphertextLength(plaintext.size(), seg));
  for (uint64_t i = 0; i < n; ++i) {
    const size_t begin = i * seg;
    const size_t len = std::min<size_t>(seg, plaintext.size() - begin);
    const Status st = enc.SealSegment(i, i == n - 1, plaintext.subspan(begin, len),
                                      std::span<uint8_t>(blob).subspan(SegmentOffset(i, seg), len + kSegmentTagSize));
    EXPECT_OK(st);
  }
  const Bytes header = enc.EncodeHeader(plaintext.size());
  std::copy(header.begin(), header.end(), blob.begin());
  return blob;
}

Bytes Encrypt(ByteView plaintext, uint32_t seg = kSeg, BlobIdentity identity = TestIdentity(),
              const SecretBytes& key = TestDataKey()) {
  auto enc = BlobEncryptor::Create(key, TestKeyRef(), std::move(identity), seg);
  EXPECT_OK(enc);
  return EncryptAll(*enc, plaintext);
}

// Reads a blob as a reader would: header, then each segment at the offset its index implies,
// taking whatever bytes the file has there (a short file yields a short segment).
Result<Bytes> DecryptAll(ByteView blob, BlobIdentity identity = TestIdentity(),
                         const SecretBytes& key = TestDataKey()) {
  COFFRE_ASSIGN_OR_RETURN(BlobDecryptor dec, BlobDecryptor::Create(key, std::move(identity),
                                                                   blob.first(std::min(blob.size(), kHeaderSize))));
  const uint32_t seg = dec.header().segment_size;
  Bytes plaintext;
  for (uint64_t i = 0; i < dec.segment_count(); ++i) {
    const uint64_t begin = SegmentOffset(i, seg);
    if (begin > blob.size()) {
      return Status::Corruption("segment " + std::to_string(i) + " missing");
    }
    const size_t len = std::min<uint64_t>(uint64_t{seg} + kSegmentTagSize, blob.size() - begin);
    const ByteView ct = blob.subspan(begin, len);
    Bytes out(len >= kSegmentTagSize ? len - kSegmentTagSize : 0);
    COFFRE_RETURN_IF_ERROR(dec.OpenSegment(i, ct, out));
    plaintext.insert(plaintext.end(), out.begin(), out.end());
  }
  return plaintext;
}

void ExpectCorruption(const Result<Bytes>& r, const std::string& why) {
  ASSERT_THAT(r, StatusIs(StatusCode::kCorruption)) << why;
}

// The header MAC recomputed from docs/FORMAT.md (not from blob_format.cc), so the test pins the spec.
Bytes SpecIdentityAad(std::string_view tenant, std::string_view blob) {
  Bytes aad;
  for (std::string_view s : {std::string_view("coffre/v1"), tenant, blob}) {
    uint8_t len[4];
    PutBigEndian32(len, static_cast<uint32_t>(s.size()));
    aad.insert(aad.end(), len, len + 4);
    aad.insert(aad.end(), s.begin(), s.end());
  }
  return aad;
}

void ResignHeader(Bytes& header, const SecretBytes& data_key, const BlobIdentity& id) {
  const ByteView salt = ByteView(header).subspan(102, 32);
  const SecretBytes mac_key = HkdfSha256(data_key, salt, AsBytes("coffre/v1/header-mac-key"), 32);
  Bytes input(header.begin(), header.begin() + 42);
  input.insert(input.end(), header.begin() + 102, header.begin() + 224);
  const Bytes aad = SpecIdentityAad(id.tenant_id, id.blob_id);
  input.insert(input.end(), aad.begin(), aad.end());
  const Sha256Digest mac = HmacSha256(mac_key.Reveal(), input);
  std::copy(mac.begin(), mac.end(), header.begin() + 224);
}

// ------------------------------------------------------------------------------------------------
// Layout

TEST(BlobLayout, Arithmetic) {
  EXPECT_EQ(SegmentCount(0, kSeg), 1u);
  EXPECT_EQ(SegmentCount(1, kSeg), 1u);
  EXPECT_EQ(SegmentCount(kSeg, kSeg), 1u);
  EXPECT_EQ(SegmentCount(kSeg + 1, kSeg), 2u);
  EXPECT_EQ(SegmentCount(UINT64_MAX, kSeg), UINT64_MAX / kSeg + 1);
  EXPECT_EQ(CiphertextLength(0, kSeg), kHeaderSize + kSegmentTagSize);
  EXPECT_EQ(CiphertextLength(10000, kSeg), kHeaderSize + 10000 + 3 * kSegmentTagSize);
  EXPECT_EQ(CiphertextLength(UINT64_MAX, kSeg), UINT64_MAX);  // saturates, never wraps
  EXPECT_EQ(SegmentOffset(0, kSeg), kHeaderSize);
  EXPECT_EQ(SegmentOffset(2, kSeg), kHeaderSize + 2 * (kSeg + kSegmentTagSize));
}

// ------------------------------------------------------------------------------------------------
// Round trips

class BlobRoundTrip : public ::testing::TestWithParam<size_t> {};

TEST_P(BlobRoundTrip, DecryptsToPlaintext) {
  const Bytes plaintext = Pattern(GetParam());
  const Bytes blob = Encrypt(plaintext);
  EXPECT_EQ(blob.size(), CiphertextLength(plaintext.size(), kSeg));
  auto decrypted = DecryptAll(blob);
  ASSERT_OK(decrypted);
  EXPECT_EQ(*decrypted, plaintext);
}

INSTANTIATE_TEST_SUITE_P(Sizes, BlobRoundTrip,
                         ::testing::Values(size_t{0}, size_t{1}, size_t{kSeg - 1}, size_t{kSeg}, size_t{kSeg + 1},
                                           size_t{3 * kSeg + 7}));

TEST(Blob, DefaultSegmentSizeRoundTrip) {
  const Bytes plaintext = Pattern(kDefaultSegmentSize + 1);
  auto decrypted = DecryptAll(Encrypt(plaintext, kDefaultSegmentSize));
  ASSERT_OK(decrypted);
  EXPECT_EQ(*decrypted, plaintext);
}

TEST(Blob, HeaderFieldsParse) {
  const Bytes blob = Encrypt(Pattern(10000));
  auto h = ParseBlobHeaderUnauthenticated(ByteView(blob).first(kHeaderSize));
  ASSERT_OK(h);
  EXPECT_EQ(h->version, 1);
  EXPECT_EQ(h->segment_size, kSeg);
  EXPECT_EQ(h->plaintext_length, 10000u);
  EXPECT_EQ(h->key.tenant_key_id, TestKeyRef().tenant_key_id);
  EXPECT_EQ(h->key.tenant_key_version, 3u);
  EXPECT_EQ(h->key.wrapped_data_key, TestKeyRef().wrapped_data_key);
  auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), ByteView(blob).first(kHeaderSize));
  ASSERT_OK(dec);
  EXPECT_EQ(dec->segment_count(), 3u);
  EXPECT_EQ(dec->header().plaintext_length, 10000u);
}

TEST(Blob, FreshSaltAndPrefixPerBlob) {
  const Bytes a = Encrypt(Pattern(100));
  const Bytes b = Encrypt(Pattern(100));
  EXPECT_FALSE(std::equal(a.begin() + 102, a.begin() + 141, b.begin() + 102));
  EXPECT_NE(Bytes(a.begin() + kHeaderSize, a.end()), Bytes(b.begin() + kHeaderSize, b.end()));
}

TEST(Blob, ConcurrentSegmentsOfOneEncryptorAndDecryptor) {
  auto enc = BlobEncryptor::Create(TestDataKey(), TestKeyRef(), TestIdentity(), kSeg);
  ASSERT_OK(enc);
  constexpr size_t kSegments = 16;
  const Bytes plaintext = Pattern(kSegments * kSeg);
  Bytes blob(CiphertextLength(plaintext.size(), kSeg));
  std::vector<std::thread> threads;
  std::vector<int> ok(kSegments, 0);  // not vector<bool>: its bits share words across threads
  for (size_t i = 0; i < kSegments; ++i) {
    threads.emplace_back([&, i] {
      ok[i] = enc->SealSegment(i, i == kSegments - 1, ByteView(plaintext).subspan(i * kSeg, kSeg),
                               std::span<uint8_t>(blob).subspan(SegmentOffset(i, kSeg), kSeg + kSegmentTagSize))
                  .ok();
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  const Bytes header = enc->EncodeHeader(plaintext.size());
  std::copy(header.begin(), header.end(), blob.begin());
  auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), header);
  ASSERT_OK(dec);
  threads.clear();
  std::vector<Bytes> out(kSegments, Bytes(kSeg));
  for (size_t i = 0; i < kSegments; ++i) {
    threads.emplace_back([&, i] {
      ok[i] = ok[i] &&
              dec->OpenSegment(i, ByteView(blob).subspan(SegmentOffset(i, kSeg), kSeg + kSegmentTagSize), out[i]).ok();
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (size_t i = 0; i < kSegments; ++i) {
    EXPECT_TRUE(ok[i]) << i;
    EXPECT_TRUE(std::equal(out[i].begin(), out[i].end(), plaintext.begin() + i * kSeg)) << i;
  }
}

// A range GET opens only the segments that cover the range (docs/FORMAT.md, "Ranges").
TEST(Blob, RangeReadOpensOnlyCoveringSegments) {
  const Bytes plaintext = Pattern(3 * kSeg + 7);
  const Bytes blob = Encrypt(plaintext);
  auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), ByteView(blob).first(kHeaderSize));
  ASSERT_OK(dec);
  const uint64_t first = kSeg + 100;
  const uint64_t last = 2 * kSeg + 5;  // inclusive
  Bytes got;
  for (uint64_t i = first / kSeg; i <= last / kSeg; ++i) {
    Bytes out(kSeg);
    ASSERT_OK(dec->OpenSegment(i, ByteView(blob).subspan(SegmentOffset(i, kSeg), kSeg + kSegmentTagSize), out));
    const uint64_t seg_begin = i * kSeg;
    const uint64_t from = std::max(first, seg_begin) - seg_begin;
    const uint64_t to = std::min(last + 1, seg_begin + kSeg) - seg_begin;
    got.insert(got.end(), out.begin() + from, out.begin() + to);
  }
  EXPECT_EQ(got, Bytes(plaintext.begin() + first, plaintext.begin() + last + 1));
}

// ------------------------------------------------------------------------------------------------
// Argument checks

TEST(Blob, CreateRejectsBadArguments) {
  EXPECT_THAT(BlobEncryptor::Create(SecretBytes(Bytes(16, 1)), TestKeyRef(), TestIdentity()).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(BlobEncryptor::Create(TestDataKey(), TestKeyRef(), TestIdentity(), kMinSegmentSize - 1).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(BlobEncryptor::Create(TestDataKey(), TestKeyRef(), TestIdentity(), kMaxSegmentSize + 1).status(),
              StatusIs(StatusCode::kInvalidArgument));
  KeyReference short_id = TestKeyRef();
  short_id.tenant_key_id.pop_back();
  EXPECT_THAT(BlobEncryptor::Create(TestDataKey(), short_id, TestIdentity()), Not(IsOk()));
  KeyReference short_wrap = TestKeyRef();
  short_wrap.wrapped_data_key.pop_back();
  EXPECT_THAT(BlobEncryptor::Create(TestDataKey(), short_wrap, TestIdentity()), Not(IsOk()));
  EXPECT_THAT(BlobEncryptor::Create(TestDataKey(), TestKeyRef(), BlobIdentity{"", "b"}), Not(IsOk()));
  EXPECT_THAT(BlobEncryptor::Create(TestDataKey(), TestKeyRef(), BlobIdentity{"t", ""}), Not(IsOk()));
  EXPECT_THAT(BlobEncryptor::CreateForTest(TestDataKey(), TestKeyRef(), TestIdentity(), kSeg, Bytes(31), Bytes(7)),
              Not(IsOk()));
  EXPECT_THAT(BlobEncryptor::CreateForTest(TestDataKey(), TestKeyRef(), TestIdentity(), kSeg, Bytes(32), Bytes(8)),
              Not(IsOk()));
}

TEST(Blob, SealSegmentRejectsBadGeometry) {
  auto enc = BlobEncryptor::Create(TestDataKey(), TestKeyRef(), TestIdentity(), kSeg);
  ASSERT_OK(enc);
  const Bytes full(kSeg, 1);
  Bytes out(kSeg + kSegmentTagSize);
  EXPECT_OK(enc->SealSegment(0, false, full, out));
  EXPECT_THAT(enc->SealSegment(0, false, ByteView(full).first(kSeg - 1), std::span<uint8_t>(out).first(kSeg - 1 + 16)),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(enc->SealSegment(0, false, full, std::span<uint8_t>(out).first(kSeg)),
              StatusIs(StatusCode::kInvalidArgument));
  // The nonce holds a 32-bit index.
  EXPECT_OK(enc->SealSegment(0xFFFFFFFFull, false, full, out));
  EXPECT_THAT(enc->SealSegment(0x100000000ull, false, full, out), StatusIs(StatusCode::kInvalidArgument));
  // An empty last segment is only the encoding of an empty blob.
  Bytes tag_only(kSegmentTagSize);
  EXPECT_OK(enc->SealSegment(0, true, {}, tag_only));
  EXPECT_THAT(enc->SealSegment(1, true, {}, tag_only), StatusIs(StatusCode::kInvalidArgument));
  Bytes big_out(kSeg + 1 + kSegmentTagSize);
  EXPECT_THAT(enc->SealSegment(0, true, Bytes(kSeg + 1), big_out), StatusIs(StatusCode::kInvalidArgument));
}

TEST(Blob, OpenSegmentRejectsIndexBeyondEnd) {
  const Bytes blob = Encrypt(Pattern(kSeg + 1));
  auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), ByteView(blob).first(kHeaderSize));
  ASSERT_OK(dec);
  Bytes out(kSeg, 0xAA);
  EXPECT_THAT(dec->OpenSegment(2, ByteView(blob).subspan(SegmentOffset(0, kSeg), kSeg + 16), out),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; }));
}

TEST(Blob, HeaderClaimingMoreThan2Pow32SegmentsRejected) {
  auto enc = BlobEncryptor::Create(TestDataKey(), TestKeyRef(), TestIdentity(), kSeg);
  ASSERT_OK(enc);
  const Bytes ok_header = enc->EncodeHeader((uint64_t{1} << 32) * kSeg);
  EXPECT_OK(BlobDecryptor::Create(TestDataKey(), TestIdentity(), ok_header));
  const Bytes header = enc->EncodeHeader((uint64_t{1} << 32) * kSeg + 1);
  auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), header);
  ASSERT_THAT(dec, StatusIs(StatusCode::kCorruption));
}

// ------------------------------------------------------------------------------------------------
// Attacks: each must fail with Corruption, never yield wrong plaintext.

TEST(BlobAttack, TruncatedLastSegment) {
  const Bytes plaintext = Pattern(3 * kSeg + 7);
  const Bytes blob = Encrypt(plaintext);
  for (size_t cut : {size_t{1}, size_t{7}, kSegmentTagSize, kSegmentTagSize + 3, kSegmentTagSize + 7}) {
    ExpectCorruption(DecryptAll(ByteView(blob).first(blob.size() - cut)), "cut " + std::to_string(cut));
  }
  // Truncated inside a full, non-last segment too.
  ExpectCorruption(DecryptAll(ByteView(blob).first(SegmentOffset(1, kSeg) + 100)), "cut inside segment 1");
}

TEST(BlobAttack, TruncatedEmptyBlob) {
  const Bytes blob = Encrypt({});
  ASSERT_EQ(blob.size(), kHeaderSize + kSegmentTagSize);
  ExpectCorruption(DecryptAll(ByteView(blob).first(kHeaderSize)), "tag of empty blob removed");
}

TEST(BlobAttack, DroppedLastSegment) {
  auto enc = BlobEncryptor::Create(TestDataKey(), TestKeyRef(), TestIdentity(), kSeg);
  ASSERT_OK(enc);
  const Bytes plaintext = Pattern(3 * kSeg);
  const Bytes blob = EncryptAll(*enc, plaintext);
  // The original header still says three segments: the third is missing.
  ExpectCorruption(DecryptAll(ByteView(blob).first(SegmentOffset(2, kSeg))), "original header");
  // Even with an authentic header for the shorter length, segment 1 was sealed as "not last",
  // so reading it as the last segment fails: STREAM's last flag, independent of the header.
  Bytes shorter = enc->EncodeHeader(2 * kSeg);
  shorter.insert(shorter.end(), blob.begin() + kHeaderSize, blob.begin() + SegmentOffset(2, kSeg));
  auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), ByteView(shorter).first(kHeaderSize));
  ASSERT_OK(dec);
  Bytes out(kSeg);
  EXPECT_OK(dec->OpenSegment(0, ByteView(shorter).subspan(SegmentOffset(0, kSeg), kSeg + 16), out));
  const Status st = dec->OpenSegment(1, ByteView(shorter).subspan(SegmentOffset(1, kSeg), kSeg + 16), out);
  EXPECT_THAT(st, StatusIs(StatusCode::kCorruption));
  ExpectCorruption(DecryptAll(shorter), "segment n-2 read as last");
}

TEST(BlobAttack, AppendedSegment) {
  const Bytes blob = Encrypt(Pattern(2 * kSeg));
  Bytes longer = blob;
  // A header for a longer blob cannot be made without the MAC key; the MAC fails.
  PutBigEndian64(longer.data() + 14, 3 * kSeg);
  longer.insert(longer.end(), blob.begin() + SegmentOffset(1, kSeg), blob.end());
  ExpectCorruption(DecryptAll(longer), "length extended");
}

// Every segment opens, so only the file length betrays the extra bytes: the header fixes it.
TEST(BlobAttack, BytesAppendedAfterLastSegment) {
  for (const size_t size : {size_t{0}, size_t{kSeg}, size_t{2 * kSeg + 5}}) {
    const Bytes blob = Encrypt(Pattern(size));
    auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), ByteView(blob).first(kHeaderSize));
    ASSERT_OK(dec);
    EXPECT_OK(CheckBlobFileLength(dec->header(), blob.size())) << size;
    for (const uint64_t extra : {uint64_t{1}, uint64_t{kSegmentTagSize}, uint64_t{kSeg} + kSegmentTagSize}) {
      Bytes longer = blob;
      longer.resize(blob.size() + extra, 0x5a);
      ASSERT_OK(DecryptAll(ByteView(longer).first(blob.size())));  // what a reader sees
      const Status st = CheckBlobFileLength(dec->header(), longer.size());
      EXPECT_THAT(st, StatusIs(StatusCode::kCorruption)) << size << " + " << extra;
      EXPECT_NE(st.message().find("appended"), std::string::npos) << st.message();
    }
    EXPECT_THAT(CheckBlobFileLength(dec->header(), blob.size() - 1), StatusIs(StatusCode::kCorruption));
  }
}

TEST(BlobAttack, ReorderedSegments) {
  const Bytes blob = Encrypt(Pattern(3 * kSeg + 7));
  Bytes swapped = blob;
  const size_t n = kSeg + kSegmentTagSize;
  std::copy_n(blob.begin() + SegmentOffset(0, kSeg), n, swapped.begin() + SegmentOffset(1, kSeg));
  std::copy_n(blob.begin() + SegmentOffset(1, kSeg), n, swapped.begin() + SegmentOffset(0, kSeg));
  ExpectCorruption(DecryptAll(swapped), "segments 0 and 1 swapped");
  auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), ByteView(swapped).first(kHeaderSize));
  ASSERT_OK(dec);
  Bytes out(kSeg, 0xAA);
  EXPECT_THAT(dec->OpenSegment(1, ByteView(swapped).subspan(SegmentOffset(1, kSeg), n), out),
              StatusIs(StatusCode::kCorruption));
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; })) << "out not wiped";
}

TEST(BlobAttack, SegmentSwappedBetweenBlobs) {
  const Bytes plaintext_a = Pattern(3 * kSeg);
  const Bytes plaintext_b(3 * kSeg, 0x42);
  // Same tenant and data key (as the parts of one multipart upload), different blob ids.
  const BlobIdentity id_a{"tenant-7", "blob-a"};
  const BlobIdentity id_b{"tenant-7", "blob-b"};
  const Bytes blob_a = Encrypt(plaintext_a, kSeg, id_a);
  const Bytes blob_b = Encrypt(plaintext_b, kSeg, id_b);
  Bytes mixed = blob_a;
  std::copy_n(blob_b.begin() + SegmentOffset(1, kSeg), kSeg + kSegmentTagSize, mixed.begin() + SegmentOffset(1, kSeg));
  ExpectCorruption(DecryptAll(mixed, id_a), "segment from blob b");

  // Even if salt and prefix collided, the identity in the AAD still tells the blobs apart.
  const Bytes salt(kBlobSaltSize, 9);
  const Bytes prefix(kBlobNoncePrefixSize, 9);
  auto enc_a = BlobEncryptor::CreateForTest(TestDataKey(), TestKeyRef(), id_a, kSeg, salt, prefix);
  auto enc_b = BlobEncryptor::CreateForTest(TestDataKey(), TestKeyRef(), id_b, kSeg, salt, prefix);
  ASSERT_OK(enc_a);
  ASSERT_OK(enc_b);
  const Bytes same_a = EncryptAll(*enc_a, plaintext_a);
  const Bytes same_b = EncryptAll(*enc_b, plaintext_b);
  Bytes mixed2 = same_a;
  std::copy_n(same_b.begin() + SegmentOffset(1, kSeg), kSeg + kSegmentTagSize, mixed2.begin() + SegmentOffset(1, kSeg));
  ExpectCorruption(DecryptAll(mixed2, id_a), "segment from blob b, same salt and prefix");
}

TEST(BlobAttack, HeaderFieldTampered) {
  const Bytes blob = Encrypt(Pattern(kSeg + 1));
  const ByteView header = ByteView(blob).first(kHeaderSize);
  struct Field {
    const char* name;
    size_t offset;
    size_t size;
  };
  const Field fields[] = {
      {"magic", 0, 8},
      {"version", 8, 1},
      {"algorithm", 9, 1},
      {"segment size", 10, 4},
      {"plaintext length", 14, 8},
      {"tenant key id", 22, 16},
      {"tenant key version", 38, 4},
      {"salt", 102, 32},
      {"nonce prefix", 134, 7},
      {"commitment", 141, 32},
      {"reserved", 173, 51},
      {"mac", 224, 32},
  };
  size_t covered = 60;  // the wrapped data key, checked separately below
  for (const Field& f : fields) {
    covered += f.size;
    for (size_t i = f.offset; i < f.offset + f.size; ++i) {
      for (uint8_t bit : {uint8_t{0x01}, uint8_t{0x80}}) {
        Bytes tampered(header.begin(), header.end());
        tampered[i] ^= bit;
        auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), tampered);
        ASSERT_THAT(dec, StatusIs(StatusCode::kCorruption)) << f.name << " byte " << i;
      }
    }
  }
  EXPECT_EQ(covered, kHeaderSize);

  // The wrapped data key is outside the MAC by design (rewrap rewrites it in the catalog and may
  // rewrite it here); changing it neither breaks nor alters decryption.
  Bytes rewrapped = blob;
  for (size_t i = 42; i < 102; ++i) {
    rewrapped[i] ^= 0xFF;
  }
  auto decrypted = DecryptAll(rewrapped);
  ASSERT_OK(decrypted);
  EXPECT_EQ(*decrypted, Pattern(kSeg + 1));
}

TEST(BlobAttack, SegmentByteTampered) {
  const Bytes blob = Encrypt(Pattern(kSeg + 1));
  for (size_t i = kHeaderSize; i < blob.size(); i += 97) {
    Bytes tampered = blob;
    tampered[i] ^= 0x04;
    ExpectCorruption(DecryptAll(tampered), "byte " + std::to_string(i));
  }
}

TEST(BlobAttack, WrongDataKey) {
  const Bytes blob = Encrypt(Pattern(100));
  const SecretBytes other = SecretBytes::Random(kKeySize);
  auto r = DecryptAll(blob, TestIdentity(), other);
  ExpectCorruption(r, "other key");
  EXPECT_NE(r.status().message().find("commitment"), std::string::npos) << r.status().message();
}

TEST(BlobAttack, WrongIdentity) {
  const Bytes blob = Encrypt(Pattern(100));
  ExpectCorruption(DecryptAll(blob, BlobIdentity{"tenant-7", "blob-other"}), "moved to another blob id");
  ExpectCorruption(DecryptAll(blob, BlobIdentity{"tenant-8", "blob-0123456789abcdef"}), "moved to another tenant");
  // Shifting bytes between the two fields is not the same identity.
  ExpectCorruption(DecryptAll(blob, BlobIdentity{"tenant-7b", "lob-0123456789abcdef"}), "field boundary shifted");
  auto ok = DecryptAll(blob);
  ASSERT_OK(ok);
}

TEST(BlobAttack, CommitmentMismatch) {
  const SecretBytes key = TestDataKey();
  const Bytes blob = Encrypt(Pattern(100), kSeg, TestIdentity(), key);
  Bytes header(blob.begin(), blob.begin() + kHeaderSize);

  // The MAC recomputed from the spec matches what the encryptor wrote.
  Bytes resigned = header;
  ResignHeader(resigned, key, TestIdentity());
  EXPECT_EQ(resigned, header);

  // A header whose MAC is valid but whose commitment is not must still be refused: the
  // commitment is checked on its own, not just as MAC'd bytes.
  header[141] ^= 0x01;
  ResignHeader(header, key, TestIdentity());
  auto dec = BlobDecryptor::Create(key, TestIdentity(), header);
  ASSERT_THAT(dec, StatusIs(StatusCode::kCorruption, HasSubstr("commitment")));
}

TEST(BlobAttack, TruncatedHeader) {
  const Bytes blob = Encrypt(Pattern(100));
  for (size_t n = 0; n < kHeaderSize; n += 17) {
    auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), ByteView(blob).first(n));
    ASSERT_THAT(dec, StatusIs(StatusCode::kCorruption)) << n;
    EXPECT_THAT(ParseBlobHeaderUnauthenticated(ByteView(blob).first(n)), StatusIs(StatusCode::kCorruption));
  }
  auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), ByteView(blob).first(kHeaderSize - 1));
  ASSERT_THAT(dec, StatusIs(StatusCode::kCorruption));
}

TEST(BlobAttack, SegmentLengthNotMatchingHeader) {
  const Bytes blob = Encrypt(Pattern(kSeg + 10));
  auto dec = BlobDecryptor::Create(TestDataKey(), TestIdentity(), ByteView(blob).first(kHeaderSize));
  ASSERT_OK(dec);
  // A full-size ciphertext handed in for the 10-byte last segment (e.g. trailing garbage).
  Bytes padded(blob.begin() + SegmentOffset(1, kSeg), blob.end());
  padded.resize(kSeg + kSegmentTagSize, 0);
  Bytes out(kSeg, 0xAA);
  EXPECT_THAT(dec->OpenSegment(1, padded, out), StatusIs(StatusCode::kCorruption));
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; }));
  // The right ciphertext with a wrongly sized output buffer is a caller error.
  Bytes small(9, 0xAA);
  EXPECT_THAT(dec->OpenSegment(1, ByteView(blob).subspan(SegmentOffset(1, kSeg)), small),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_TRUE(std::all_of(small.begin(), small.end(), [](uint8_t b) { return b == 0; }));
}

// ------------------------------------------------------------------------------------------------
// Test vectors: keep in sync with docs/FORMAT.md, "Test vectors".

struct Vector {
  size_t plaintext_length;
  const char* header_hex;
  std::vector<const char*> tags_hex;
  uint64_t ciphertext_length;
  const char* ciphertext_sha256;
};

constexpr const char* kVectorSegmentKey = "8385cb4be793b0c8a6bf9d93f9bb19ca8a0c8b239299d91aacf1311307b3fa5a";
constexpr const char* kVectorMacKey = "7c297a0f4d09de5c294a2cc8b1fcdfb36574fc20a58d06d812af4a5026617b0e";
constexpr const char* kVectorCommitment = "858eaaca5a992491739036356ffb267c563a161540b36ece9c0d54ca0beb1b5e";
constexpr const char* kVectorIdentityAad =
    "00000009636f666672652f76310000000874656e616e742d3700000015626c6f622d30313233343536373839616263646566";

const Vector kVectors[] = {
    {10000,
     "434f464652424c420101000010000000000000002710101112131415161718191a1b1c1d1e1f00000003c0c1c2c3c4c5c6c7c8c9cacbcc"
     "cdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafb808182838485868788"
     "898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6858eaaca5a992491739036356ffb267c563a161540b36ece9c0d"
     "54ca0beb1b5e0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "001e3ecb94dbf308cf9d0e8093201a6a4ecbcb1b5f9e86b656123cfc8f25b77050",
     {"cc50c2ecace4c55308b013678d4d50c6", "59183e289898bcfe417445d5e1600c84", "545653601dde46c90f889332fedb3026"},
     10304,
     "910619641b247257b0879b985551e0ea455b6561a3f223ee5e24f2bd177a1723"},
    {0,
     "434f464652424c420101000010000000000000000000101112131415161718191a1b1c1d1e1f00000003c0c1c2c3c4c5c6c7c8c9cacbcc"
     "cdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafb808182838485868788"
     "898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6858eaaca5a992491739036356ffb267c563a161540b36ece9c0d"
     "54ca0beb1b5e0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "00ba2b41323e88f866a57ae3faba8cf5dca48d5d67f4da11f2cb6a94f11296dfe5",
     {"0d6ceff65affe93ae09aef27bc0e06e0"},
     272,
     "6a4a0fd88b699a1ccae44a66a309f661ab20db9663f76da8a893840023c9ada5"},
};

TEST(BlobTestVectors, DerivedValues) {
  const SecretBytes key = TestDataKey();
  const Bytes salt = Range(0x80, kBlobSaltSize);
  EXPECT_EQ(HexEncode(HkdfSha256(key, salt, AsBytes("coffre/v1/segment-key"), 32).Reveal()), kVectorSegmentKey);
  EXPECT_EQ(HexEncode(HkdfSha256(key, salt, AsBytes("coffre/v1/header-mac-key"), 32).Reveal()), kVectorMacKey);
  EXPECT_EQ(HexEncode(HkdfSha256(key, salt, AsBytes("coffre/v1/commitment"), 32).Reveal()), kVectorCommitment);
  EXPECT_EQ(HexEncode(SpecIdentityAad("tenant-7", "blob-0123456789abcdef")), kVectorIdentityAad);
}

TEST(BlobTestVectors, MatchFormatDoc) {
  for (const Vector& v : kVectors) {
    SCOPED_TRACE("plaintext length " + std::to_string(v.plaintext_length));
    auto enc = BlobEncryptor::CreateForTest(TestDataKey(), TestKeyRef(), TestIdentity(), kMinSegmentSize,
                                            Range(0x80, kBlobSaltSize), Range(0xa0, kBlobNoncePrefixSize));
    ASSERT_OK(enc);
    const Bytes plaintext = Pattern(v.plaintext_length);
    const Bytes blob = EncryptAll(*enc, plaintext);
    EXPECT_EQ(HexEncode(ByteView(blob).first(kHeaderSize)), v.header_hex);
    ASSERT_EQ(SegmentCount(v.plaintext_length, kMinSegmentSize), v.tags_hex.size());
    for (size_t i = 0; i < v.tags_hex.size(); ++i) {
      const size_t seg_len = std::min<size_t>(kMinSegmentSize, v.plaintext_length - i * kMinSegmentSize);
      EXPECT_EQ(HexEncode(ByteView(blob).subspan(SegmentOffset(i, kMinSegmentSize) + seg_len, kSegmentTagSize)),
                v.tags_hex[i])
          << "segment " << i;
    }
    EXPECT_EQ(blob.size(), v.ciphertext_length);
    EXPECT_EQ(HexEncode(Sha256::Digest(blob)), v.ciphertext_sha256);

    // And the documented bytes decrypt back.
    auto decrypted = DecryptAll(blob);
    ASSERT_OK(decrypted);
    EXPECT_EQ(*decrypted, plaintext);
  }
}

}  // namespace
}  // namespace coffre::crypto
