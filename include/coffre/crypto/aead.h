#pragma once

// AES-256-GCM sealing of small values: key wrapping (data keys under tenant keys,
// tenant keys and access-key secrets under the root key). Sealed form:
//   nonce (12 random bytes) || ciphertext || tag (16 bytes)
// The associated data binds the sealed value to its owner (tenant id, version, ...),
// so a sealed value copied to another row fails to open.

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre::crypto {

inline constexpr size_t kKeySize = 32;
inline constexpr size_t kGcmNonceSize = 12;
inline constexpr size_t kGcmTagSize = 16;
inline constexpr size_t kSealOverhead = kGcmNonceSize + kGcmTagSize;

// key must be kKeySize bytes (else InvalidArgument).
Result<Bytes> Seal(const SecretBytes& key, ByteView plaintext, ByteView aad);
// Corruption when the tag does not verify (wrong key, wrong aad, altered bytes).
Result<Bytes> Open(const SecretBytes& key, ByteView sealed, ByteView aad);
// As Open, for secret plaintexts (keys): the result never sits in an unwiped buffer.
Result<SecretBytes> OpenSecret(const SecretBytes& key, ByteView sealed, ByteView aad);

// HKDF-SHA256 (RFC 5869). `length` is at most 255 * 32 bytes.
SecretBytes HkdfSha256(const SecretBytes& ikm, ByteView salt, ByteView info, size_t length);
// Its two steps apart, for several keys drawn from one input key and salt: one Extract, then one
// Expand per key, gives each what HkdfSha256 would.
SecretBytes HkdfSha256Extract(const SecretBytes& ikm, ByteView salt);
SecretBytes HkdfSha256Expand(const SecretBytes& prk, ByteView info, size_t length);

}  // namespace coffre::crypto
