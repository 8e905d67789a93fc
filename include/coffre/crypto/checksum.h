#pragma once

// The flexible checksums S3 clients send (x-amz-checksum-*), computed over plaintext.

#include <memory>
#include <optional>
#include <string_view>

#include "coffre/common/bytes.h"
#include "coffre/common/status.h"

namespace coffre::crypto {

enum class ChecksumAlgorithm { kCrc32, kCrc32c, kCrc64Nvme, kSha1, kSha256 };

inline constexpr ChecksumAlgorithm kAllChecksumAlgorithms[] = {ChecksumAlgorithm::kCrc32, ChecksumAlgorithm::kCrc32c,
                                                               ChecksumAlgorithm::kCrc64Nvme, ChecksumAlgorithm::kSha1,
                                                               ChecksumAlgorithm::kSha256};

// "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256" (as in x-amz-checksum-algorithm / XML).
std::string_view ChecksumAlgorithmName(ChecksumAlgorithm alg);
// "x-amz-checksum-crc32", ... (lower case).
std::string_view ChecksumHeaderName(ChecksumAlgorithm alg);
// Case-insensitive; accepts the algorithm name ("crc32c") or the header name.
std::optional<ChecksumAlgorithm> ParseChecksumAlgorithm(std::string_view name);
// Size in bytes of the raw checksum (4, 4, 8, 20, 32).
size_t ChecksumSize(ChecksumAlgorithm alg);

// Incremental checksum. Final() returns the raw value, big-endian for CRCs, as S3 encodes it
// before base64 (e.g. CRC32 of "" is 00000000, of "abc" is 352441c2).
class Checksummer {
 public:
  virtual ~Checksummer() = default;
  virtual void Update(ByteView data) = 0;
  virtual Bytes Final() = 0;
  static std::unique_ptr<Checksummer> Create(ChecksumAlgorithm alg);
};

// One-shot convenience.
Bytes ComputeChecksum(ChecksumAlgorithm alg, ByteView data);

// The two ways S3 makes a multipart object's checksum from its parts': FULL_OBJECT is the
// checksum of the whole object, which only a CRC can be combined into from its parts' values;
// COMPOSITE is the checksum of the parts' raw checksums one after the other, which S3 does not
// offer for CRC64NVME.
bool HasFullObjectChecksum(ChecksumAlgorithm alg);
bool HasCompositeChecksum(ChecksumAlgorithm alg);

// The CRC of a || b from a's and b's (raw, as Final() gives them) and b's length in bytes, without
// reading a byte of either. InvalidArgument for an algorithm that is not a CRC or values of the
// wrong size.
Result<Bytes> CombineCrc(ChecksumAlgorithm alg, ByteView crc_a, ByteView crc_b, uint64_t length_b);

}  // namespace coffre::crypto
