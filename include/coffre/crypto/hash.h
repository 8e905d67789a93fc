#pragma once

// Hashes and MACs over buffers (OpenSSL EVP underneath; no OpenSSL header leaks out).

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "coffre/common/bytes.h"

namespace coffre::crypto {

using Sha256Digest = std::array<uint8_t, 32>;
using Md5Digest = std::array<uint8_t, 16>;
using Sha1Digest = std::array<uint8_t, 20>;

// Incremental digests. Not thread-safe; one per stream. Final() may be called once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void Update(ByteView data);
  Sha256Digest Final();
  static Sha256Digest Digest(ByteView data);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Md5 {
 public:
  Md5();
  ~Md5();
  Md5(Md5&&) noexcept;
  Md5& operator=(Md5&&) noexcept;
  void Update(ByteView data);
  Md5Digest Final();
  static Md5Digest Digest(ByteView data);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Sha1 {
 public:
  Sha1();
  ~Sha1();
  Sha1(Sha1&&) noexcept;
  Sha1& operator=(Sha1&&) noexcept;
  void Update(ByteView data);
  Sha1Digest Final();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Sha256Digest HmacSha256(ByteView key, ByteView data);
// HMAC-SHA1: only for verifying AWS Signature Version 2, which S3 clients may still send.
Sha1Digest HmacSha1(ByteView key, ByteView data);
// The MAC of the concatenation of `message`'s parts, without building it.
Sha256Digest HmacSha256OfParts(ByteView key, std::span<const ByteView> message);

}  // namespace coffre::crypto
