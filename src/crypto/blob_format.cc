#include "coffre/crypto/blob_format.h"

#include <algorithm>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/hash.h"
#include "crypto/gcm.h"

namespace coffre::crypto {
namespace {

// Header layout (docs/FORMAT.md, "Header"). All integers big-endian.
constexpr uint8_t kMagic[8] = {'C', 'O', 'F', 'F', 'R', 'B', 'L', 'B'};
constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 8;
constexpr size_t kOffAlgorithm = 9;
constexpr size_t kOffSegmentSize = 10;
constexpr size_t kOffPlaintextLength = 14;
constexpr size_t kOffTenantKeyId = 22;
constexpr size_t kOffTenantKeyVersion = kOffTenantKeyId + kTenantKeyIdSize;  // 38
constexpr size_t kOffWrappedDataKey = kOffTenantKeyVersion + 4;              // 42
constexpr size_t kOffSalt = kOffWrappedDataKey + kWrappedDataKeySize;        // 102
constexpr size_t kOffNoncePrefix = kOffSalt + kBlobSaltSize;                 // 134
constexpr size_t kOffCommitment = kOffNoncePrefix + kBlobNoncePrefixSize;    // 141
constexpr size_t kOffReserved = kOffCommitment + kBlobCommitmentSize;        // 173
constexpr size_t kMacSize = 32;
constexpr size_t kOffMac = kHeaderSize - kMacSize;  // 224
// docs/FORMAT.md publishes these offsets; a change here is a new format version.
static_assert(kOffSalt == 102 && kOffCommitment == 141 && kOffReserved == 173 && kOffMac == 224,
              "header layout differs from docs/FORMAT.md");
static_assert(kBlobNoncePrefixSize + 4 + 1 == kGcmNonceSize, "nonce = prefix || u32 index || flag");

// Each version derives its keys and binds its identity under labels of its own, so no bytes of a
// blob of one version can pass for bytes of another.
struct Labels {
  std::string_view identity;
  std::string_view segment_key;
  std::string_view header_mac_key;
  std::string_view commitment;
  std::string_view description_key;  // version 2
};
constexpr Labels kLabelsV1{"coffre/v1", "coffre/v1/segment-key", "coffre/v1/header-mac-key", "coffre/v1/commitment",
                           ""};
constexpr Labels kLabelsV2{"coffre/v2", "coffre/v2/segment-key", "coffre/v2/header-mac-key", "coffre/v2/commitment",
                           "coffre/v2/description-key"};

const Labels& LabelsFor(uint8_t version) { return version == kBlobFormatVersion2 ? kLabelsV2 : kLabelsV1; }

// The description's nonce: the segment nonces' prefix with a flag no segment uses (and under a key
// of its own besides).
constexpr uint8_t kDescriptionNonceFlag = 0x02;

// Segment indexes are 32 bits in the nonce, so a blob has at most 2^32 segments.
constexpr uint64_t kMaxSegments = uint64_t{1} << 32;

void AppendLengthPrefixed(Bytes& out, std::string_view s) {
  uint8_t len[4];
  PutBigEndian32(len, static_cast<uint32_t>(s.size()));
  out.insert(out.end(), len, len + 4);
  out.insert(out.end(), s.begin(), s.end());
}

// u32be(len) || bytes for each of the label, tenant id and blob id: unambiguous, so no choice of
// strings can make ("ab", "c") encode like ("a", "bc").
Result<Bytes> EncodeIdentityAad(std::string_view label, const BlobIdentity& identity) {
  if (identity.tenant_id.empty() || identity.blob_id.empty()) {
    return Status::InvalidArgument("blob identity needs a tenant id and a blob id");
  }
  if (identity.tenant_id.size() > std::numeric_limits<uint32_t>::max() ||
      identity.blob_id.size() > std::numeric_limits<uint32_t>::max()) {
    return Status::InvalidArgument("blob identity field too long");
  }
  Bytes aad;
  aad.reserve(12 + label.size() + identity.tenant_id.size() + identity.blob_id.size());
  AppendLengthPrefixed(aad, label);
  AppendLengthPrefixed(aad, identity.tenant_id);
  AppendLengthPrefixed(aad, identity.blob_id);
  return aad;
}

Status CheckDataKey(const SecretBytes& data_key) {
  if (data_key.size() != kKeySize) {
    return Status::InvalidArgument("blob data key must be 32 bytes");
  }
  return Status::Ok();
}

Status CheckSegmentSize(uint32_t segment_size) {
  if (segment_size < kMinSegmentSize || segment_size > kMaxSegmentSize) {
    return Status::InvalidArgument("blob segment size " + std::to_string(segment_size) + " outside [" +
                                   std::to_string(kMinSegmentSize) + ", " + std::to_string(kMaxSegmentSize) + "]");
  }
  return Status::Ok();
}

// Every key of a blob is HKDF(data key, salt, its own info); `prk` is their shared Extract step.
SecretBytes Derive(const SecretBytes& prk, std::string_view info) {
  return HkdfSha256Expand(prk, AsBytes(info), kKeySize);
}

Status CheckVersion(uint8_t version) {
  if (version != kBlobFormatVersion1 && version != kBlobFormatVersion2) {
    return Status::InvalidArgument("unknown blob format version " + std::to_string(version));
  }
  return Status::Ok();
}

Bytes DeriveCommitment(const SecretBytes& prk, const Labels& labels) {
  const SecretBytes c = HkdfSha256Expand(prk, AsBytes(labels.commitment), kBlobCommitmentSize);
  return Bytes(c.Reveal().begin(), c.Reveal().end());
}

// HMAC-SHA256 over header[0, 42) || header[102, 224) || identity AAD: everything but the wrapped
// data key (rewrap changes it without touching the blob) and the MAC itself.
Sha256Digest ComputeHeaderMac(const SecretBytes& mac_key, ByteView header, ByteView identity_aad) {
  Bytes input;
  input.reserve(kOffMac - kBlobSaltSize + identity_aad.size());
  input.insert(input.end(), header.begin(), header.begin() + kOffWrappedDataKey);
  input.insert(input.end(), header.begin() + kOffSalt, header.begin() + kOffMac);
  input.insert(input.end(), identity_aad.begin(), identity_aad.end());
  return HmacSha256(mac_key.Reveal(), input);
}

void MakeNonce(ByteView prefix, uint32_t index, uint8_t flag, uint8_t (&nonce)[kGcmNonceSize]) {
  std::copy(prefix.begin(), prefix.end(), nonce);
  PutBigEndian32(nonce + kBlobNoncePrefixSize, index);
  nonce[kGcmNonceSize - 1] = flag;
}

uint8_t LastFlag(bool last) { return last ? 0x01 : 0x00; }

// The description's associated data: the blob's identity and its header's MAC, which covers the
// length, salt and version, so a description opens only after the header it was sealed with.
Bytes DescriptionAad(ByteView identity_aad, ByteView header_mac) {
  Bytes aad(identity_aad.begin(), identity_aad.end());
  aad.insert(aad.end(), header_mac.begin(), header_mac.end());
  return aad;
}

void Wipe(std::span<uint8_t> out) { std::fill(out.begin(), out.end(), uint8_t{0}); }

}  // namespace

Result<BlobHeader> ParseBlobHeaderUnauthenticated(ByteView header) {
  if (header.size() < kHeaderSize) {
    return Status::Corruption("blob header truncated: " + std::to_string(header.size()) + " of " +
                              std::to_string(kHeaderSize) + " bytes");
  }
  if (header.size() > kHeaderSize) {
    return Status::InvalidArgument("blob header must be exactly " + std::to_string(kHeaderSize) + " bytes");
  }
  if (!std::equal(std::begin(kMagic), std::end(kMagic), header.begin() + kOffMagic)) {
    return Status::Corruption("not a Coffre blob (bad magic)");
  }
  if (header[kOffVersion] != kBlobFormatVersion1 && header[kOffVersion] != kBlobFormatVersion2) {
    return Status::Corruption("unsupported blob format version " + std::to_string(header[kOffVersion]));
  }
  if (header[kOffAlgorithm] != kBlobAlgorithmAes256GcmHkdfSha256) {
    return Status::Corruption("unsupported blob algorithm " + std::to_string(header[kOffAlgorithm]));
  }
  BlobHeader h;
  h.version = header[kOffVersion];
  h.segment_size = GetBigEndian32(header.data() + kOffSegmentSize);
  if (!CheckSegmentSize(h.segment_size).ok()) {
    return Status::Corruption("blob header segment size " + std::to_string(h.segment_size) + " out of range");
  }
  h.plaintext_length = GetBigEndian64(header.data() + kOffPlaintextLength);
  if (SegmentCount(h.plaintext_length, h.segment_size) > kMaxSegments) {
    return Status::Corruption("blob header plaintext length needs more than 2^32 segments");
  }
  if (!std::all_of(header.begin() + kOffReserved, header.begin() + kOffMac, [](uint8_t b) { return b == 0; })) {
    return Status::Corruption("blob header reserved bytes are not zero");
  }
  h.key.tenant_key_id.assign(header.begin() + kOffTenantKeyId, header.begin() + kOffTenantKeyVersion);
  h.key.tenant_key_version = GetBigEndian32(header.data() + kOffTenantKeyVersion);
  h.key.wrapped_data_key.assign(header.begin() + kOffWrappedDataKey, header.begin() + kOffSalt);
  return h;
}

uint64_t SegmentCount(uint64_t plaintext_length, uint32_t segment_size) {
  if (segment_size == 0) {
    return 0;  // invalid geometry; callers validate the segment size first
  }
  // Written to avoid overflowing on lengths near 2^64; an empty blob is one empty segment.
  return plaintext_length == 0 ? 1 : (plaintext_length - 1) / segment_size + 1;
}

uint64_t CiphertextLength(uint64_t plaintext_length, uint32_t segment_size) {
  uint64_t tags = 0;
  uint64_t total = 0;
  if (__builtin_mul_overflow(SegmentCount(plaintext_length, segment_size), uint64_t{kSegmentTagSize}, &tags) ||
      __builtin_add_overflow(plaintext_length, tags, &total) ||
      __builtin_add_overflow(total, uint64_t{kHeaderSize}, &total)) {
    return std::numeric_limits<uint64_t>::max();  // no real blob is this large; never wraps to small
  }
  return total;
}

uint64_t SegmentOffset(uint64_t index, uint32_t segment_size) {
  return kHeaderSize + index * (uint64_t{segment_size} + kSegmentTagSize);
}

uint64_t DescriptionOffset(const BlobHeader& header) {
  return CiphertextLength(header.plaintext_length, header.segment_size);
}

Status CheckBlobFileLength(const BlobHeader& header, uint64_t file_length) {
  const uint64_t expected = CiphertextLength(header.plaintext_length, header.segment_size);
  if (header.version == kBlobFormatVersion2) {
    const uint64_t least = expected + kSegmentTagSize;
    const uint64_t most = least + kMaxBlobDescriptionSize;
    if (file_length >= least && file_length <= most) {
      return Status::Ok();
    }
    return Status::Corruption("blob file is " + std::to_string(file_length) + " bytes; its header leaves " +
                              (file_length < least ? "no room for its description (truncated)"
                                                   : "more than the largest description after its segments"));
  }
  if (file_length == expected) {
    return Status::Ok();
  }
  return Status::Corruption("blob file is " + std::to_string(file_length) + " bytes; header implies " +
                            std::to_string(expected) +
                            (file_length > expected ? " (bytes appended after the last segment)" : " (truncated)"));
}

// ---------------------------------------------------------------------------------------------
// BlobEncryptor

Result<BlobEncryptor> BlobEncryptor::Create(const SecretBytes& data_key, KeyReference key, BlobIdentity identity,
                                            uint32_t segment_size, uint8_t version) {
  uint8_t salt[kBlobSaltSize];
  uint8_t prefix[kBlobNoncePrefixSize];
  // A fresh salt gives every blob its own segment key even when blobs share a data key (the parts
  // of one multipart upload), so segment nonces never repeat under one key; the random prefix is
  // a second, independent guard.
  RandomFill(salt);
  RandomFill(prefix);
  return CreateForTest(data_key, std::move(key), std::move(identity), segment_size, salt, prefix, version);
}

Result<BlobEncryptor> BlobEncryptor::CreateForTest(const SecretBytes& data_key, KeyReference key, BlobIdentity identity,
                                                   uint32_t segment_size, ByteView salt, ByteView nonce_prefix,
                                                   uint8_t version) {
  COFFRE_RETURN_IF_ERROR(CheckDataKey(data_key));
  COFFRE_RETURN_IF_ERROR(CheckVersion(version));
  COFFRE_RETURN_IF_ERROR(CheckSegmentSize(segment_size));
  if (key.tenant_key_id.size() != kTenantKeyIdSize) {
    return Status::InvalidArgument("tenant key id must be 16 bytes");
  }
  if (key.wrapped_data_key.size() != kWrappedDataKeySize) {
    return Status::InvalidArgument("wrapped data key must be 60 bytes");
  }
  if (salt.size() != kBlobSaltSize || nonce_prefix.size() != kBlobNoncePrefixSize) {
    return Status::InvalidArgument("blob salt must be 32 bytes and nonce prefix 7 bytes");
  }
  const Labels& labels = LabelsFor(version);
  COFFRE_ASSIGN_OR_RETURN(Bytes identity_aad, EncodeIdentityAad(labels.identity, identity));

  BlobEncryptor e;
  const SecretBytes prk = HkdfSha256Extract(data_key, salt);
  e.segment_key_ = Derive(prk, labels.segment_key);
  e.mac_key_ = Derive(prk, labels.header_mac_key);
  e.commitment_ = DeriveCommitment(prk, labels);
  if (version == kBlobFormatVersion2) e.description_key_ = Derive(prk, labels.description_key);
  e.version_ = version;
  e.salt_.assign(salt.begin(), salt.end());
  e.nonce_prefix_.assign(nonce_prefix.begin(), nonce_prefix.end());
  e.key_ = std::move(key);
  e.identity_ = std::move(identity);
  e.identity_aad_ = std::move(identity_aad);
  e.segment_size_ = segment_size;
  return e;
}

Status BlobEncryptor::SealSegment(uint64_t index, bool last, ByteView plaintext, std::span<uint8_t> out) const {
  if (index >= kMaxSegments) {
    return Status::InvalidArgument("blob segment index exceeds 2^32 - 1");
  }
  if (last ? plaintext.size() > segment_size_ : plaintext.size() != segment_size_) {
    return Status::InvalidArgument("blob segment " + std::to_string(index) + " has " +
                                   std::to_string(plaintext.size()) + " bytes; segment size is " +
                                   std::to_string(segment_size_));
  }
  // Only an empty blob may end with an empty segment; anywhere else it would let two encodings
  // describe one plaintext.
  if (last && plaintext.empty() && index != 0) {
    return Status::InvalidArgument("only segment 0 of an empty blob may be empty");
  }
  if (out.size() != plaintext.size() + kSegmentTagSize) {
    return Status::InvalidArgument("blob segment output must be plaintext size + 16");
  }
  uint8_t nonce[kGcmNonceSize];
  MakeNonce(nonce_prefix_, static_cast<uint32_t>(index), LastFlag(last), nonce);
  return internal::GcmSeal(segment_key_.Reveal(), nonce, identity_aad_, plaintext, out);
}

Bytes BlobEncryptor::EncodeHeader(uint64_t plaintext_length) const {
  Bytes h(kHeaderSize, 0);
  std::copy(std::begin(kMagic), std::end(kMagic), h.begin() + kOffMagic);
  h[kOffVersion] = version_;
  h[kOffAlgorithm] = kBlobAlgorithmAes256GcmHkdfSha256;
  PutBigEndian32(h.data() + kOffSegmentSize, segment_size_);
  PutBigEndian64(h.data() + kOffPlaintextLength, plaintext_length);
  std::copy(key_.tenant_key_id.begin(), key_.tenant_key_id.end(), h.begin() + kOffTenantKeyId);
  PutBigEndian32(h.data() + kOffTenantKeyVersion, key_.tenant_key_version);
  std::copy(key_.wrapped_data_key.begin(), key_.wrapped_data_key.end(), h.begin() + kOffWrappedDataKey);
  std::copy(salt_.begin(), salt_.end(), h.begin() + kOffSalt);
  std::copy(nonce_prefix_.begin(), nonce_prefix_.end(), h.begin() + kOffNoncePrefix);
  std::copy(commitment_.begin(), commitment_.end(), h.begin() + kOffCommitment);
  const Sha256Digest mac = ComputeHeaderMac(mac_key_, h, identity_aad_);
  std::copy(mac.begin(), mac.end(), h.begin() + kOffMac);
  return h;
}

Result<Bytes> BlobEncryptor::SealDescription(uint64_t plaintext_length, ByteView description) const {
  if (version_ != kBlobFormatVersion2) {
    return Status::InvalidArgument("only version 2 blobs carry a description");
  }
  if (description.size() > kMaxBlobDescriptionSize) {
    return Status::InvalidArgument("blob description is " + std::to_string(description.size()) + " bytes; at most " +
                                   std::to_string(kMaxBlobDescriptionSize));
  }
  const Bytes header = EncodeHeader(plaintext_length);
  const Bytes aad = DescriptionAad(identity_aad_, ByteView(header).subspan(kOffMac, kMacSize));
  uint8_t nonce[kGcmNonceSize];
  MakeNonce(nonce_prefix_, 0, kDescriptionNonceFlag, nonce);
  Bytes sealed(description.size() + kSegmentTagSize);
  COFFRE_RETURN_IF_ERROR(internal::GcmSeal(description_key_.Reveal(), nonce, aad, description, sealed));
  return sealed;
}

// ---------------------------------------------------------------------------------------------
// BlobDecryptor

Result<BlobDecryptor> BlobDecryptor::Create(const SecretBytes& data_key, BlobIdentity identity, ByteView header) {
  COFFRE_RETURN_IF_ERROR(CheckDataKey(data_key));
  COFFRE_ASSIGN_OR_RETURN(BlobHeader parsed, ParseBlobHeaderUnauthenticated(header));
  const Labels& labels = LabelsFor(parsed.version);
  COFFRE_ASSIGN_OR_RETURN(Bytes identity_aad, EncodeIdentityAad(labels.identity, identity));

  const ByteView salt = header.subspan(kOffSalt, kBlobSaltSize);
  // The commitment first: it tells "wrong data key" apart from "altered header or moved blob".
  const SecretBytes prk = HkdfSha256Extract(data_key, salt);
  const Bytes commitment = DeriveCommitment(prk, labels);
  if (!ConstantTimeEquals(commitment, header.subspan(kOffCommitment, kBlobCommitmentSize))) {
    return Status::Corruption("blob key commitment mismatch: wrong data key or altered header");
  }
  const SecretBytes mac_key = Derive(prk, labels.header_mac_key);
  const Sha256Digest mac = ComputeHeaderMac(mac_key, header, identity_aad);
  if (!ConstantTimeEquals(mac, header.subspan(kOffMac, kMacSize))) {
    return Status::Corruption("blob header MAC mismatch: altered header or blob identity mismatch");
  }

  BlobDecryptor d;
  d.segment_key_ = Derive(prk, labels.segment_key);
  if (parsed.version == kBlobFormatVersion2) d.description_key_ = Derive(prk, labels.description_key);
  d.header_mac_.assign(mac.begin(), mac.end());
  const ByteView prefix = header.subspan(kOffNoncePrefix, kBlobNoncePrefixSize);
  d.nonce_prefix_.assign(prefix.begin(), prefix.end());
  d.identity_ = std::move(identity);
  d.identity_aad_ = std::move(identity_aad);
  d.header_ = std::move(parsed);
  return d;
}

Status BlobDecryptor::OpenSegment(uint64_t index, ByteView ciphertext, std::span<uint8_t> out) const {
  const uint64_t count = segment_count();
  Status st;
  uint64_t expected = 0;
  if (index >= count) {
    st = Status::InvalidArgument("blob segment index " + std::to_string(index) + " beyond last segment " +
                                 std::to_string(count - 1));
  } else {
    const bool is_last = index == count - 1;
    expected = is_last ? header_.plaintext_length - index * header_.segment_size : header_.segment_size;
    if (ciphertext.size() != expected + kSegmentTagSize) {
      st = Status::Corruption("blob segment " + std::to_string(index) + " is " + std::to_string(ciphertext.size()) +
                              " bytes; header implies " + std::to_string(expected + kSegmentTagSize));
    } else if (out.size() != expected) {
      st = Status::InvalidArgument("blob segment output must be ciphertext size - 16");
    } else {
      // The last flag comes from the authenticated length, never from the caller: a reader cannot be
      // talked into accepting an inner segment as the end of the blob.
      uint8_t nonce[kGcmNonceSize];
      MakeNonce(nonce_prefix_, static_cast<uint32_t>(index), LastFlag(is_last), nonce);
      st = internal::GcmOpen(segment_key_.Reveal(), nonce, identity_aad_, ciphertext, out);
      if (st.code() == StatusCode::kCorruption) {
        st = Status::Corruption("blob segment " + std::to_string(index) + " failed authentication");
      }
    }
  }
  if (!st.ok()) {
    Wipe(out);
  }
  return st;
}

Result<Bytes> BlobDecryptor::OpenDescription(ByteView sealed) const {
  if (header_.version != kBlobFormatVersion2) {
    return Status::InvalidArgument("only version 2 blobs carry a description");
  }
  if (sealed.size() < kSegmentTagSize || sealed.size() > kMaxBlobDescriptionSize + kSegmentTagSize) {
    return Status::Corruption("blob description is " + std::to_string(sealed.size()) + " bytes: truncated or too long");
  }
  const Bytes aad = DescriptionAad(identity_aad_, header_mac_);
  uint8_t nonce[kGcmNonceSize];
  MakeNonce(nonce_prefix_, 0, kDescriptionNonceFlag, nonce);
  Bytes out(sealed.size() - kSegmentTagSize);
  if (Status st = internal::GcmOpen(description_key_.Reveal(), nonce, aad, sealed, out); !st.ok()) {
    Wipe(out);
    if (st.code() == StatusCode::kCorruption) return Status::Corruption("blob description failed authentication");
    return st;
  }
  return out;
}

}  // namespace coffre::crypto
