#include "coffre/crypto/aead.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

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

struct KdfCtxDeleter {
  void operator()(EVP_KDF_CTX* ctx) const { EVP_KDF_CTX_free(ctx); }
};

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

SecretBytes HkdfSha256(const SecretBytes& ikm, ByteView salt, ByteView info, size_t length) {
  if (length == 0) {
    return SecretBytes();
  }
  if (length > kHkdfMaxOutput) {
    DieOnHkdfFailure("requested output longer than 255 * 32 bytes");
  }
  // Fetched once and shared: EVP_KDF objects are immutable; each call gets its own context.
  static EVP_KDF* const kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) {
    DieOnHkdfFailure("EVP_KDF_fetch(HKDF)");
  }
  std::unique_ptr<EVP_KDF_CTX, KdfCtxDeleter> ctx(EVP_KDF_CTX_new(kdf));
  if (ctx == nullptr) {
    DieOnHkdfFailure("EVP_KDF_CTX_new");
  }
  // OSSL_PARAM wants non-const pointers but only reads them; a zero-length octet string needs a
  // valid pointer, hence the dummy byte.
  static uint8_t empty = 0;
  auto octets = [](ByteView v) { return v.empty() ? &empty : const_cast<uint8_t*>(v.data()); };
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, octets(ikm.Reveal()), ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, octets(salt), salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, octets(info), info.size()),
      OSSL_PARAM_construct_end(),
  };
  SecretBytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.RevealMutable().data(), length, params) != 1) {
    DieOnHkdfFailure("EVP_KDF_derive");
  }
  return out;
}

}  // namespace coffre::crypto
