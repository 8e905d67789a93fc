#pragma once

// The encrypted blob format (docs/FORMAT.md is the specification; this is its code).
//
// A blob is one stream of plaintext (a whole single-PUT object, or one multipart part)
// encrypted with a data key under the STREAM construction:
//
//   [ header: kHeaderSize bytes ][ segment 0 ] ... [ segment n-1 ][ description (version 2) ]
//   segment i = AES-256-GCM(seg_key, nonce_i, plaintext_i, aad) || tag (16 bytes)
//   nonce_i   = nonce_prefix (7 bytes) || i (uint32 big-endian) || last flag (0x00 / 0x01)
//
// Every segment holds `segment_size` plaintext bytes except the last, which holds 1..segment_size
// bytes (0 only when the whole blob is empty: an empty blob is one empty last segment, so even a
// zero-length object cannot be truncated unnoticed).
//
// The header carries: magic, format version, algorithm, segment size, plaintext length, the
// tenant key id and version, the wrapped data key, the nonce prefix and salt, a key commitment
// and a header MAC. Segment and MAC keys are derived from the data key with HKDF-SHA256 and the
// header's salt; the commitment is a further HKDF output, so one ciphertext can never open under
// two different data keys. The associated data of every segment and of the header MAC binds the
// blob's identity (tenant id, blob id), so bytes moved between blobs do not decrypt.
//
// Version 1 is written header last, once the length is known. Version 2 declares the length up
// front, so a blob is written strictly front to back (an upstream store takes it as one stream),
// and ends with a sealed description: opaque bytes the caller chooses (what its catalog knows of
// the blob), bound to the identity and the header, so the store plus the keys are enough to
// rebuild a lost catalog.
//
// The wrapped data key inside the header is informational; the catalog's copy is authoritative and
// is what rewrap updates, which is why the header MAC does not cover the wrapped-key field.

#include <cstdint>
#include <string>

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre::crypto {

inline constexpr uint32_t kDefaultSegmentSize = 64 * 1024;
inline constexpr uint32_t kMinSegmentSize = 4 * 1024;
inline constexpr uint32_t kMaxSegmentSize = 16 * 1024 * 1024;
inline constexpr size_t kSegmentTagSize = 16;
inline constexpr size_t kTenantKeyIdSize = 16;
inline constexpr size_t kWrappedDataKeySize = 60;  // Seal() of a 32-byte key
inline constexpr size_t kHeaderSize = 256;         // fixed; reserved bytes are zero and MAC'd
inline constexpr uint8_t kBlobFormatVersion1 = 1;  // header written last; no description
inline constexpr uint8_t kBlobFormatVersion2 = 2;  // length declared first; sealed description at the end
inline constexpr size_t kMaxBlobDescriptionSize = 8 * 1024 * 1024;  // a manifest of 10,000 parts fits
inline constexpr uint8_t kBlobAlgorithmAes256GcmHkdfSha256 = 1;
inline constexpr size_t kBlobSaltSize = 32;
inline constexpr size_t kBlobNoncePrefixSize = 7;
inline constexpr size_t kBlobCommitmentSize = 32;

// What the blob is bound to. Both strings are opaque identifiers, never S3 key names.
struct BlobIdentity {
  std::string tenant_id;
  std::string blob_id;
};

// Which tenant key wraps the data key.
struct KeyReference {
  Bytes tenant_key_id;  // kTenantKeyIdSize bytes
  uint32_t tenant_key_version = 0;
  Bytes wrapped_data_key;  // kWrappedDataKeySize bytes
};

// The fields of a parsed header (authenticated only after BlobDecryptor::Create succeeds).
struct BlobHeader {
  uint8_t version = 1;
  uint32_t segment_size = kDefaultSegmentSize;
  uint64_t plaintext_length = 0;
  KeyReference key;
};

// Parses the header fields without authenticating them (for tools such as scrub and fsck that
// must find the key before they can verify). InvalidArgument / Corruption on malformed input.
Result<BlobHeader> ParseBlobHeaderUnauthenticated(ByteView header);

// Layout arithmetic, shared by writers and readers.
// Where a version 2 blob's sealed description starts: the end of its last segment.
uint64_t DescriptionOffset(const BlobHeader& header);
uint64_t SegmentCount(uint64_t plaintext_length, uint32_t segment_size);      // >= 1
uint64_t CiphertextLength(uint64_t plaintext_length, uint32_t segment_size);  // incl. header
uint64_t SegmentOffset(uint64_t index, uint32_t segment_size);                // file offset of segment index

// A version 1 header fixes the exact file length (CiphertextLength; docs/FORMAT.md, "Segments"):
// Corruption when `file_length` differs, since bytes appended after the last segment would
// otherwise go unnoticed. A version 2 blob must have room for a sealed description after its
// segments (at least its tag, at most kMaxBlobDescriptionSize + tag); the description's own tag
// covers the rest. Call with an authenticated header.
Status CheckBlobFileLength(const BlobHeader& header, uint64_t file_length);

class BlobEncryptor {
 public:
  // data_key: 32 bytes. Generates a random salt and nonce prefix.
  static Result<BlobEncryptor> Create(const SecretBytes& data_key, KeyReference key, BlobIdentity identity,
                                      uint32_t segment_size = kDefaultSegmentSize,
                                      uint8_t version = kBlobFormatVersion1);

  // FOR TEST VECTORS ONLY (docs/FORMAT.md): as Create, with a caller-chosen salt
  // (kBlobSaltSize bytes) and nonce prefix (kBlobNoncePrefixSize bytes). Reusing a salt and
  // prefix with the same data key reuses GCM nonces and destroys confidentiality and integrity;
  // production code must call Create.
  static Result<BlobEncryptor> CreateForTest(const SecretBytes& data_key, KeyReference key, BlobIdentity identity,
                                             uint32_t segment_size, ByteView salt, ByteView nonce_prefix,
                                             uint8_t version = kBlobFormatVersion1);

  uint32_t segment_size() const { return segment_size_; }
  uint8_t version() const { return version_; }

  // Seals segment `index`. plaintext.size() must equal segment_size() unless `last`; out.size()
  // must be plaintext.size() + kSegmentTagSize. Thread-compatible: distinct segments may be
  // sealed concurrently from distinct threads.
  Status SealSegment(uint64_t index, bool last, ByteView plaintext, std::span<uint8_t> out) const;

  // The header for a blob of `plaintext_length` bytes, at offset 0: written last in version 1,
  // first in version 2 (whose writer must then deliver exactly that many bytes).
  Bytes EncodeHeader(uint64_t plaintext_length) const;

  // Version 2 only: the sealed description that ends a blob of `plaintext_length` bytes
  // (description.size() + kSegmentTagSize bytes). At most kMaxBlobDescriptionSize bytes.
  Result<Bytes> SealDescription(uint64_t plaintext_length, ByteView description) const;

 private:
  BlobEncryptor() = default;
  SecretBytes segment_key_;
  SecretBytes mac_key_;
  Bytes commitment_;
  Bytes salt_;
  Bytes nonce_prefix_;
  KeyReference key_;
  BlobIdentity identity_;
  Bytes identity_aad_;           // encoded once; the AAD of every segment and of the header MAC
  SecretBytes description_key_;  // version 2
  uint32_t segment_size_ = kDefaultSegmentSize;
  uint8_t version_ = kBlobFormatVersion1;
};

class BlobDecryptor {
 public:
  // Verifies the header (magic, version, MAC, key commitment) for this data key and identity.
  // Corruption if any check fails: wrong key, moved blob, altered header.
  static Result<BlobDecryptor> Create(const SecretBytes& data_key, BlobIdentity identity, ByteView header);

  // Authenticated, except key.wrapped_data_key, which the MAC deliberately leaves out (see above).
  const BlobHeader& header() const { return header_; }
  uint64_t segment_count() const { return SegmentCount(header_.plaintext_length, header_.segment_size); }

  // Opens segment `index` (whose last flag is derived from the header's length). ciphertext must
  // be exactly that segment's ciphertext; out.size() must be ciphertext.size() - kSegmentTagSize.
  // Corruption on any authentication failure; `out` is then zeroed, never partial plaintext.
  Status OpenSegment(uint64_t index, ByteView ciphertext, std::span<uint8_t> out) const;

  // Version 2 only: opens the sealed description (every byte from DescriptionOffset() to the end
  // of the blob). Corruption if it was altered, truncated, or belongs to another blob or header.
  Result<Bytes> OpenDescription(ByteView sealed) const;

 private:
  BlobDecryptor() = default;
  SecretBytes segment_key_;
  SecretBytes description_key_;  // version 2
  Bytes header_mac_;
  Bytes nonce_prefix_;
  BlobIdentity identity_;
  Bytes identity_aad_;
  BlobHeader header_;
};

}  // namespace coffre::crypto
