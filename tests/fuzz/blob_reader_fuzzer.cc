// Fuzzes the encrypted blob reader (crypto::BlobDecryptor and the header parser) the way the
// object service reads a blob file: header first, then each segment at its layout offset.
//
// Two kinds of input, chosen by the first byte:
//  - even: the rest is a blob file as found on disk (header + segments), read under a fixed data
//    key and identity. Seeds are real blobs, so the fuzzer starts past the header MAC.
//  - odd: the harness encrypts a plaintext described by the input (length, segment size, salt
//    bytes), then damages the ciphertext as the input says (flip a bit, truncate, swap two
//    segments, splice in another blob's header, bind to another identity) and reads it back.
// Both versions of the format: a version 2 blob also ends with a sealed description, read after
// the segments.
// Property in both: nothing crashes, and every segment (and description) that opens yields exactly
// the bytes that were sealed there — wrong plaintext is never returned.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "coffre/crypto/blob_format.h"

namespace {

using coffre::Bytes;
using coffre::ByteView;
using coffre::SecretBytes;
namespace crypto = coffre::crypto;

constexpr uint64_t kMaxSegmentsRead = 64;

const SecretBytes& DataKey() {
  static const SecretBytes key(Bytes(32, 0x42));
  return key;
}

crypto::BlobIdentity Identity(std::string blob_id = "blob-1") { return {"tenant-1", std::move(blob_id)}; }

crypto::KeyReference KeyRef() {
  crypto::KeyReference ref;
  ref.tenant_key_id = Bytes(crypto::kTenantKeyIdSize, 0x11);
  ref.tenant_key_version = 1;
  ref.wrapped_data_key = Bytes(crypto::kWrappedDataKeySize, 0x22);
  return ref;
}

// Reads `file` as the object service does. Calls on_segment(index, plaintext) for every segment
// that authenticates, and on_description(bytes) for a version 2 description that does. Returns
// true when the whole blob was read and authenticated.
template <typename OnSegment, typename OnDescription>
bool ReadBlob(ByteView file, const crypto::BlobIdentity& identity, OnSegment on_segment, OnDescription on_description) {
  if (file.size() < crypto::kHeaderSize) {
    return false;
  }
  const ByteView header = file.first(crypto::kHeaderSize);
  (void)crypto::ParseBlobHeaderUnauthenticated(header);
  auto decryptor = crypto::BlobDecryptor::Create(DataKey(), identity, header);
  if (!decryptor.ok()) {
    return false;
  }
  const crypto::BlobHeader& h = decryptor->header();
  if (!crypto::CheckBlobFileLength(h, file.size()).ok()) {
    return false;  // the service refuses a blob whose length disagrees with its header
  }
  const uint64_t count = decryptor->segment_count();
  bool all = true;
  Bytes plain;
  for (uint64_t i = 0; i < std::min(count, kMaxSegmentsRead); ++i) {
    const uint64_t offset = crypto::SegmentOffset(i, h.segment_size);
    const uint64_t plain_len =
        i + 1 < count ? h.segment_size : h.plaintext_length - (count - 1) * static_cast<uint64_t>(h.segment_size);
    const uint64_t cipher_len = plain_len + crypto::kSegmentTagSize;
    if (offset > file.size() || cipher_len > file.size() - offset) {
      return false;
    }
    plain.assign(plain_len, 0xAA);
    const coffre::Status st = decryptor->OpenSegment(i, file.subspan(offset, cipher_len), plain);
    if (!st.ok()) {
      if (std::any_of(plain.begin(), plain.end(), [](uint8_t b) { return b != 0; })) {
        std::abort();  // a failed open must leave zeros, never partial plaintext
      }
      all = false;
      continue;
    }
    on_segment(i, ByteView(plain));
  }
  if (h.version == crypto::kBlobFormatVersion2) {
    auto description = decryptor->OpenDescription(file.subspan(crypto::DescriptionOffset(h)));
    if (description.ok()) {
      on_description(ByteView(*description));
    } else {
      all = false;
    }
  }
  return all && count <= kMaxSegmentsRead;
}

void FuzzFile(ByteView file) {
  (void)ReadBlob(
      file, Identity(), [](uint64_t, ByteView) {}, [](ByteView) {});
}

// Pops bytes from the front of the input.
struct Reader {
  ByteView in;
  uint8_t Byte() {
    if (in.empty()) {
      return 0;
    }
    const uint8_t b = in[0];
    in = in.subspan(1);
    return b;
  }
  uint32_t U16() { return static_cast<uint32_t>(Byte()) << 8 | Byte(); }
};

void FuzzTamper(ByteView input) {
  Reader r{input};
  const uint8_t shape = r.Byte();
  const uint32_t segment_size = crypto::kMinSegmentSize * (1 + shape % 2);
  const uint8_t version = (shape & 2) != 0 ? crypto::kBlobFormatVersion2 : crypto::kBlobFormatVersion1;
  const uint64_t plaintext_length = r.U16() % (segment_size * 4 + 2);
  const uint8_t action = r.Byte() % 6;
  const uint32_t where = r.U16() << 8 | r.Byte();
  const uint8_t what = r.Byte();

  Bytes salt(crypto::kBlobSaltSize), prefix(crypto::kBlobNoncePrefixSize);
  for (auto& b : salt) b = r.Byte();
  for (auto& b : prefix) b = r.Byte();
  Bytes plaintext(plaintext_length);
  uint32_t state = 0x9E3779B9u ^ what;  // no two segments alike
  for (auto& b : plaintext) {
    state = state * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(state >> 24);
  }
  Bytes description(what % 41, what);

  auto seal = [&](const crypto::BlobIdentity& identity, ByteView pt) -> Bytes {
    auto enc = crypto::BlobEncryptor::CreateForTest(DataKey(), KeyRef(), identity, segment_size, salt, prefix, version);
    if (!enc.ok()) {
      std::abort();
    }
    const uint64_t count = crypto::SegmentCount(pt.size(), segment_size);
    Bytes blob(crypto::CiphertextLength(pt.size(), segment_size));
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t begin = i * segment_size;
      const uint64_t len = std::min<uint64_t>(segment_size, pt.size() - begin);
      const uint64_t offset = crypto::SegmentOffset(i, segment_size);
      if (!enc->SealSegment(i, i + 1 == count, pt.subspan(begin, len),
                            std::span<uint8_t>(blob).subspan(offset, len + crypto::kSegmentTagSize))
               .ok()) {
        std::abort();
      }
    }
    const Bytes header = enc->EncodeHeader(pt.size());
    std::copy(header.begin(), header.end(), blob.begin());
    if (version == crypto::kBlobFormatVersion2) {
      auto sealed = enc->SealDescription(pt.size(), description);
      if (!sealed.ok()) {
        std::abort();
      }
      blob.insert(blob.end(), sealed->begin(), sealed->end());
    }
    return blob;
  };

  Bytes blob = seal(Identity(), plaintext);
  crypto::BlobIdentity read_as = Identity();
  bool must_fail = true;
  switch (action) {
    case 0: {  // flip one bit anywhere
      const size_t at = where % blob.size();
      blob[at] ^= static_cast<uint8_t>(1u << (what % 8));
      // The wrapped data key (header bytes 42..101) is informational and not MAC'd (FORMAT.md).
      must_fail = at < 42 || at >= 42 + crypto::kWrappedDataKeySize;
      break;
    }
    case 1:  // truncate
      blob.resize(where % blob.size());
      break;
    case 2: {  // swap two whole segments
      const uint64_t count = crypto::SegmentCount(plaintext_length, segment_size);
      must_fail = false;
      const uint64_t a = count >= 3 ? where % (count - 1) : 0, b = count >= 3 ? what % (count - 1) : 0;
      if (a != b) {
        must_fail = true;
        std::swap_ranges(blob.begin() + crypto::SegmentOffset(a, segment_size),
                         blob.begin() + crypto::SegmentOffset(a, segment_size) + segment_size + crypto::kSegmentTagSize,
                         blob.begin() + crypto::SegmentOffset(b, segment_size));
      }
      break;
    }
    case 3: {  // the same plaintext sealed for another blob: its segments, this header
      const Bytes other = seal(Identity("blob-2"), plaintext);
      std::copy(other.begin() + crypto::kHeaderSize, other.end(), blob.begin() + crypto::kHeaderSize);
      break;
    }
    case 4:  // read under another identity (blob moved to another object)
      read_as = Identity("blob-2");
      break;
    default:  // append garbage
      blob.push_back(what);
      break;
  }
  const bool complete = ReadBlob(
      blob, read_as,
      [&](uint64_t i, ByteView pt) {
        const uint64_t begin = i * segment_size;
        if (begin + pt.size() > plaintext.size() ||
            (!pt.empty() && std::memcmp(pt.data(), plaintext.data() + begin, pt.size()) != 0)) {
          std::abort();  // wrong plaintext returned
        }
      },
      [&](ByteView opened) {
        if (!std::equal(opened.begin(), opened.end(), description.begin(), description.end())) {
          std::abort();  // a description other than the one sealed
        }
      });
  if (complete && must_fail) {
    std::abort();  // damage that the format promises to detect went unnoticed
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const ByteView rest(data + 1, size - 1);
  if (data[0] % 2 == 0) {
    FuzzFile(rest);
  } else {
    FuzzTamper(rest);
  }
  return 0;
}
