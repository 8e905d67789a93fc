#include "coffre/crypto/checksum.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "coffre/crypto/hash.h"

namespace coffre::crypto {
namespace {

// CRC-64/NVME (the polynomial S3 calls CRC64NVME): reflected, poly 0xAD93D23594C93659, init and
// xorout all ones. ISA-L 2.30 predates it, so it is computed here with slicing-by-8 tables
// (eight bytes per step, no per-bit loop), built at compile time.
constexpr uint64_t kCrc64NvmeReflectedPoly = 0x9A6C9329AC4BC9B5ULL;

using Crc64Tables = std::array<std::array<uint64_t, 256>, 8>;

constexpr Crc64Tables MakeCrc64NvmeTables() {
  Crc64Tables t{};
  for (uint64_t n = 0; n < 256; ++n) {
    uint64_t crc = n;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1) != 0 ? (crc >> 1) ^ kCrc64NvmeReflectedPoly : crc >> 1;
    }
    t[0][n] = crc;
  }
  // t[k][n] is the CRC contribution of byte n followed by k zero bytes.
  for (size_t k = 1; k < 8; ++k) {
    for (size_t n = 0; n < 256; ++n) {
      t[k][n] = (t[k - 1][n] >> 8) ^ t[0][t[k - 1][n] & 0xff];
    }
  }
  return t;
}

constexpr Crc64Tables kCrc64NvmeTables = MakeCrc64NvmeTables();

// `crc` is the running register (pre-inversion), so calls chain across Update()s.
uint64_t Crc64NvmeUpdate(uint64_t crc, const uint8_t* p, size_t n) {
  const auto& t = kCrc64NvmeTables;
  while (n >= 8) {
    uint64_t word = 0;
    for (int i = 0; i < 8; ++i) {  // little-endian load, independent of host byte order
      word |= static_cast<uint64_t>(p[i]) << (8 * i);
    }
    word ^= crc;
    crc = t[7][word & 0xff] ^ t[6][(word >> 8) & 0xff] ^ t[5][(word >> 16) & 0xff] ^ t[4][(word >> 24) & 0xff] ^
          t[3][(word >> 32) & 0xff] ^ t[2][(word >> 40) & 0xff] ^ t[1][(word >> 48) & 0xff] ^ t[0][word >> 56];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    crc = t[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
    ++p;
    --n;
  }
  return crc;
}

class Crc32Checksummer final : public Checksummer {
 public:
  void Update(ByteView data) override {
    // crc32_gzip_refl applies the standard pre- and post-inversion itself, so its output feeds
    // straight back in as the next init value (and 0 starts a fresh CRC).
    if (!data.empty()) {
      crc_ = crc32_gzip_refl(crc_, data.data(), data.size());
    }
  }
  Bytes Final() override {
    Bytes out(4);
    PutBigEndian32(out.data(), crc_);
    return out;
  }

 private:
  uint32_t crc_ = 0;
};

class Crc32cChecksummer final : public Checksummer {
 public:
  void Update(ByteView data) override {
    // crc32_iscsi neither pre- nor post-inverts: the register starts at ~0 and is inverted once in
    // Final(). Its length is an int, so feed large buffers in pieces.
    const uint8_t* p = data.data();
    size_t n = data.size();
    while (n > 0) {
      const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
      // ISA-L's prototype lacks const but does not write to the buffer.
      reg_ = crc32_iscsi(const_cast<uint8_t*>(p), static_cast<int>(chunk), reg_);
      p += chunk;
      n -= chunk;
    }
  }
  Bytes Final() override {
    Bytes out(4);
    PutBigEndian32(out.data(), ~reg_);
    return out;
  }

 private:
  uint32_t reg_ = 0xFFFFFFFFu;
};

class Crc64NvmeChecksummer final : public Checksummer {
 public:
  void Update(ByteView data) override { reg_ = Crc64NvmeUpdate(reg_, data.data(), data.size()); }
  Bytes Final() override {
    Bytes out(8);
    PutBigEndian64(out.data(), ~reg_);
    return out;
  }

 private:
  uint64_t reg_ = ~uint64_t{0};
};

class Sha1Checksummer final : public Checksummer {
 public:
  void Update(ByteView data) override { h_.Update(data); }
  Bytes Final() override {
    const Sha1Digest d = h_.Final();
    return Bytes(d.begin(), d.end());
  }

 private:
  Sha1 h_;
};

class Sha256Checksummer final : public Checksummer {
 public:
  void Update(ByteView data) override { h_.Update(data); }
  Bytes Final() override {
    const Sha256Digest d = h_.Final();
    return Bytes(d.begin(), d.end());
  }

 private:
  Sha256 h_;
};

// A reflected CRC of `bits` bits: its polynomial with the x^0 coefficient in the top bit. The three
// CRCs S3 uses start from all ones and invert at the end, so their final values combine directly.
struct ReflectedCrc {
  int bits;
  uint64_t poly;
};

// a(x) * b(x) mod P(x), both reflected (x^0 is the top bit).
uint64_t MultiplyModP(uint64_t a, uint64_t b, const ReflectedCrc& crc) {
  uint64_t m = uint64_t{1} << (crc.bits - 1);
  uint64_t product = 0;
  while (a != 0) {
    if ((a & m) != 0) {
      product ^= b;
      a ^= m;
    }
    m >>= 1;
    b = (b & 1) != 0 ? (b >> 1) ^ crc.poly : b >> 1;
  }
  return product;
}

// crc(a || b) = crc(a) * x^(8 * len(b)) + crc(b) mod P: the power by squaring, over len(b)'s bits.
uint64_t Combine(uint64_t crc_a, uint64_t crc_b, uint64_t length_b, const ReflectedCrc& crc) {
  const uint64_t one = uint64_t{1} << (crc.bits - 1);
  uint64_t square = one >> 1;                                              // x
  for (int i = 0; i < 3; ++i) square = MultiplyModP(square, square, crc);  // x^8: one byte of zeros
  uint64_t power = one;
  for (uint64_t n = length_b; n != 0; n >>= 1) {
    if ((n & 1) != 0) power = MultiplyModP(power, square, crc);
    square = MultiplyModP(square, square, crc);
  }
  return MultiplyModP(power, crc_a, crc) ^ crc_b;
}

uint64_t ReadBigEndian(ByteView value) {
  uint64_t v = 0;
  for (const uint8_t byte : value) v = (v << 8) | byte;
  return v;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view ChecksumAlgorithmName(ChecksumAlgorithm alg) {
  switch (alg) {
    case ChecksumAlgorithm::kCrc32:
      return "CRC32";
    case ChecksumAlgorithm::kCrc32c:
      return "CRC32C";
    case ChecksumAlgorithm::kCrc64Nvme:
      return "CRC64NVME";
    case ChecksumAlgorithm::kSha1:
      return "SHA1";
    case ChecksumAlgorithm::kSha256:
      return "SHA256";
  }
  return "";
}

std::string_view ChecksumHeaderName(ChecksumAlgorithm alg) {
  switch (alg) {
    case ChecksumAlgorithm::kCrc32:
      return "x-amz-checksum-crc32";
    case ChecksumAlgorithm::kCrc32c:
      return "x-amz-checksum-crc32c";
    case ChecksumAlgorithm::kCrc64Nvme:
      return "x-amz-checksum-crc64nvme";
    case ChecksumAlgorithm::kSha1:
      return "x-amz-checksum-sha1";
    case ChecksumAlgorithm::kSha256:
      return "x-amz-checksum-sha256";
  }
  return "";
}

std::optional<ChecksumAlgorithm> ParseChecksumAlgorithm(std::string_view name) {
  for (ChecksumAlgorithm alg : kAllChecksumAlgorithms) {
    if (EqualsIgnoreCase(name, ChecksumAlgorithmName(alg)) || EqualsIgnoreCase(name, ChecksumHeaderName(alg))) {
      return alg;
    }
  }
  return std::nullopt;
}

size_t ChecksumSize(ChecksumAlgorithm alg) {
  switch (alg) {
    case ChecksumAlgorithm::kCrc32:
    case ChecksumAlgorithm::kCrc32c:
      return 4;
    case ChecksumAlgorithm::kCrc64Nvme:
      return 8;
    case ChecksumAlgorithm::kSha1:
      return 20;
    case ChecksumAlgorithm::kSha256:
      return 32;
  }
  return 0;
}

std::unique_ptr<Checksummer> Checksummer::Create(ChecksumAlgorithm alg) {
  switch (alg) {
    case ChecksumAlgorithm::kCrc32:
      return std::make_unique<Crc32Checksummer>();
    case ChecksumAlgorithm::kCrc32c:
      return std::make_unique<Crc32cChecksummer>();
    case ChecksumAlgorithm::kCrc64Nvme:
      return std::make_unique<Crc64NvmeChecksummer>();
    case ChecksumAlgorithm::kSha1:
      return std::make_unique<Sha1Checksummer>();
    case ChecksumAlgorithm::kSha256:
      return std::make_unique<Sha256Checksummer>();
  }
  return nullptr;
}

Bytes ComputeChecksum(ChecksumAlgorithm alg, ByteView data) {
  auto c = Checksummer::Create(alg);
  c->Update(data);
  return c->Final();
}

bool HasFullObjectChecksum(ChecksumAlgorithm alg) {
  return alg == ChecksumAlgorithm::kCrc32 || alg == ChecksumAlgorithm::kCrc32c || alg == ChecksumAlgorithm::kCrc64Nvme;
}

bool HasCompositeChecksum(ChecksumAlgorithm alg) { return alg != ChecksumAlgorithm::kCrc64Nvme; }

Result<Bytes> CombineCrc(ChecksumAlgorithm alg, ByteView crc_a, ByteView crc_b, uint64_t length_b) {
  ReflectedCrc crc{};
  switch (alg) {
    case ChecksumAlgorithm::kCrc32:
      crc = {.bits = 32, .poly = 0xEDB88320};
      break;
    case ChecksumAlgorithm::kCrc32c:
      crc = {.bits = 32, .poly = 0x82F63B78};
      break;
    case ChecksumAlgorithm::kCrc64Nvme:
      crc = {.bits = 64, .poly = kCrc64NvmeReflectedPoly};
      break;
    case ChecksumAlgorithm::kSha1:
    case ChecksumAlgorithm::kSha256:
      return Status::InvalidArgument(std::string(ChecksumAlgorithmName(alg)) + " is not a CRC: it does not combine");
  }
  const size_t size = ChecksumSize(alg);
  if (crc_a.size() != size || crc_b.size() != size) {
    return Status::InvalidArgument("a " + std::string(ChecksumAlgorithmName(alg)) + " value has " +
                                   std::to_string(size) + " bytes");
  }
  const uint64_t combined = Combine(ReadBigEndian(crc_a), ReadBigEndian(crc_b), length_b, crc);
  Bytes out(size);
  if (size == 8) {
    PutBigEndian64(out.data(), combined);
  } else {
    PutBigEndian32(out.data(), static_cast<uint32_t>(combined));
  }
  return out;
}

}  // namespace coffre::crypto
