#include "coffre/crypto/aead.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "coffre/crypto/hash.h"
#include "crypto/gcm.h"

namespace coffre::crypto {
namespace {

// RFC 5869: at most 255 blocks of the hash output.
constexpr size_t kHkdfMaxOutput = 255 * 32;

Status CheckKey(const SecretBytes& key) {
  if (key.size() != kKeySize) {
    return Status::InvalidArgument("AEAD key must be 32 bytes");
  }
  return Status::Ok();
}

// Validates the sealed framing and opens it into `out` (sized by the caller).
Status OpenInto(const SecretBytes& key, ByteView sealed, ByteView aad, std::span<uint8_t> out) {
  return internal::GcmOpen(key.Reveal(), sealed.first(kGcmNonceSize), aad, sealed.subspan(kGcmNonceSize), out);
}

Status CheckSealed(const SecretBytes& key, ByteView sealed) {
  COFFRE_RETURN_IF_ERROR(CheckKey(key));
  if (sealed.size() < kSealOverhead) {
    return Status::Corruption("sealed value is shorter than nonce + tag");
  }
  return Status::Ok();
}

[[noreturn]] void DieOnHkdfFailure(const char* what) {
  // HkdfSha256 has no error channel; a short or absent key must never be used silently.
  std::fprintf(stderr, "coffre: fatal HKDF failure: %s\n", what);
  std::abort();
}

}  // namespace

Result<Bytes> Seal(const SecretBytes& key, ByteView plaintext, ByteView aad) {
  COFFRE_RETURN_IF_ERROR(CheckKey(key));
  Bytes sealed(kSealOverhead + plaintext.size());
  const std::span<uint8_t> nonce = std::span<uint8_t>(sealed).first(kGcmNonceSize);
  // Random 96-bit nonces: each key wraps few values (one per object or key version), far below
  // the ~2^32 messages where random GCM nonces start to risk collision.
  RandomFill(nonce);
  COFFRE_RETURN_IF_ERROR(
      internal::GcmSeal(key.Reveal(), nonce, aad, plaintext, std::span<uint8_t>(sealed).subspan(kGcmNonceSize)));
  return sealed;
}

Result<Bytes> Open(const SecretBytes& key, ByteView sealed, ByteView aad) {
  COFFRE_RETURN_IF_ERROR(CheckSealed(key, sealed));
  Bytes plaintext(sealed.size() - kSealOverhead);
  COFFRE_RETURN_IF_ERROR(OpenInto(key, sealed, aad, plaintext));
  return plaintext;
}

Result<SecretBytes> OpenSecret(const SecretBytes& key, ByteView sealed, ByteView aad) {
  COFFRE_RETURN_IF_ERROR(CheckSealed(key, sealed));
  // Decrypt straight into the wiping container: no intermediate Bytes ever holds the secret.
  SecretBytes plaintext(sealed.size() - kSealOverhead);
  COFFRE_RETURN_IF_ERROR(OpenInto(key, sealed, aad, plaintext.RevealMutable()));
  return plaintext;
}

// HKDF over HmacSha256, whose context is made once per thread: EVP_KDF looks HMAC and SHA-256 up
// by name on every derivation, which doubled the cost of deriving a blob's keys.
SecretBytes HkdfSha256Extract(const SecretBytes& ikm, ByteView salt) {
  // An empty salt stands for RFC 5869's 32 zero bytes: HMAC pads its key with zeros anyway.
  Sha256Digest prk = HmacSha256(salt, ikm.Reveal());
  SecretBytes out{ByteView(prk)};
  OPENSSL_cleanse(prk.data(), prk.size());
  return out;
}

SecretBytes HkdfSha256Expand(const SecretBytes& prk, ByteView info, size_t length) {
  if (length == 0) {
    return SecretBytes();
  }
  if (length > kHkdfMaxOutput) {
    DieOnHkdfFailure("requested output longer than 255 * 32 bytes");
  }
  // T(i) = HMAC(PRK, T(i-1) || info || i), with T(0) empty; the output is T(1) || T(2) || ...
  SecretBytes out(length);
  const std::span<uint8_t> dest = out.RevealMutable();
  Sha256Digest t{};
  for (size_t done = 0, block = 1; done < length; ++block) {
    const uint8_t counter = static_cast<uint8_t>(block);
    const ByteView parts[] = {ByteView(t).first(block == 1 ? 0 : t.size()), info, ByteView(&counter, 1)};
    t = HmacSha256OfParts(prk.Reveal(), parts);
    const size_t n = std::min(t.size(), length - done);
    std::copy_n(t.begin(), n, dest.begin() + static_cast<std::ptrdiff_t>(done));
    done += n;
  }
  OPENSSL_cleanse(t.data(), t.size());
  return out;
}

SecretBytes HkdfSha256(const SecretBytes& ikm, ByteView salt, ByteView info, size_t length) {
  return HkdfSha256Expand(HkdfSha256Extract(ikm, salt), info, length);
}

}  // namespace coffre::crypto
