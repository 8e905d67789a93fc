#pragma once

// AES-256-GCM over caller-provided buffers, shared by the key wrap (aead.cc) and the blob
// segments (blob_format.cc). Private to the crypto module.

#include <cstdint>
#include <span>

#include "coffre/common/bytes.h"
#include "coffre/common/status.h"

namespace coffre::crypto::internal {

// Encrypts `plaintext` into out[0, plaintext.size()) and writes the 16-byte tag right after it.
// key: 32 bytes; nonce: 12 bytes; out.size() == plaintext.size() + 16. A fresh cipher context per
// call, so concurrent calls never share mutable state.
Status GcmSeal(ByteView key, ByteView nonce, ByteView aad, ByteView plaintext, std::span<uint8_t> out);

// Decrypts `ciphertext_and_tag` (ciphertext || 16-byte tag) into `out`
// (out.size() == ciphertext_and_tag.size() - 16). On any failure `out` is wiped, so callers never
// see unauthenticated plaintext; a tag mismatch is Corruption.
Status GcmOpen(ByteView key, ByteView nonce, ByteView aad, ByteView ciphertext_and_tag, std::span<uint8_t> out);

}  // namespace coffre::crypto::internal
