#include "crypto/gcm.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <memory>

namespace coffre::crypto::internal {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
// EVP lengths are ints; larger inputs are fed in pieces of this size.
constexpr size_t kMaxUpdate = size_t{1} << 30;

// Fetched once: an explicit fetch avoids OpenSSL 3's implicit provider lookup on every init.
// Function-local static initialisation is thread-safe; the cipher is immutable afterwards.
const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* const cipher = [] {
    const EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    return fetched != nullptr ? fetched : EVP_aes_256_gcm();
  }();
  return cipher;
}

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

Status CheckSizes(ByteView key, ByteView nonce) {
  if (key.size() != kKeyBytes) {
    return Status::InvalidArgument("AES-256-GCM: key must be 32 bytes");
  }
  if (nonce.size() != kNonceBytes) {
    return Status::InvalidArgument("AES-256-GCM: nonce must be 12 bytes");
  }
  return Status::Ok();
}

// Feeds `in` through EVP_{En,De}cryptUpdate; `out` == nullptr means `in` is associated data.
template <typename UpdateFn>
bool UpdateAll(UpdateFn update, EVP_CIPHER_CTX* ctx, ByteView in, uint8_t* out) {
  size_t done = 0;
  while (done < in.size()) {
    const size_t chunk = std::min(in.size() - done, kMaxUpdate);
    int written = 0;
    if (update(ctx, out == nullptr ? nullptr : out + done, &written, in.data() + done, static_cast<int>(chunk)) != 1) {
      return false;
    }
    // GCM is a stream mode: each update writes exactly what it consumes (0 for AAD).
    if (out != nullptr && static_cast<size_t>(written) != chunk) {
      return false;
    }
    done += chunk;
  }
  return true;
}

void Wipe(std::span<uint8_t> out) {
  if (!out.empty()) {
    OPENSSL_cleanse(out.data(), out.size());
  }
}

}  // namespace

Status GcmSeal(ByteView key, ByteView nonce, ByteView aad, ByteView plaintext, std::span<uint8_t> out) {
  COFFRE_RETURN_IF_ERROR(CheckSizes(key, nonce));
  if (out.size() != plaintext.size() + kTagBytes) {
    return Status::InvalidArgument("AES-256-GCM: output must be plaintext size + 16");
  }
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr || EVP_EncryptInit_ex(ctx.get(), Aes256Gcm(), nullptr, key.data(), nonce.data()) != 1 ||
      !UpdateAll(EVP_EncryptUpdate, ctx.get(), aad, nullptr) ||
      !UpdateAll(EVP_EncryptUpdate, ctx.get(), plaintext, out.data())) {
    Wipe(out);
    return Status::Internal("AES-256-GCM: encryption failed");
  }
  int final_len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + plaintext.size(), &final_len) != 1 || final_len != 0 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                          out.data() + plaintext.size()) != 1) {
    Wipe(out);
    return Status::Internal("AES-256-GCM: encryption failed");
  }
  return Status::Ok();
}

Status GcmOpen(ByteView key, ByteView nonce, ByteView aad, ByteView ciphertext_and_tag, std::span<uint8_t> out) {
  Status st = CheckSizes(key, nonce);
  if (st.ok() && (ciphertext_and_tag.size() < kTagBytes || out.size() != ciphertext_and_tag.size() - kTagBytes)) {
    st = Status::InvalidArgument("AES-256-GCM: output must be ciphertext size - 16");
  }
  if (!st.ok()) {
    Wipe(out);
    return st;
  }
  const ByteView ciphertext = ciphertext_and_tag.first(ciphertext_and_tag.size() - kTagBytes);
  // EVP_CTRL_GCM_SET_TAG takes a non-const pointer but only reads it; copy rather than cast.
  uint8_t tag[kTagBytes];
  std::copy_n(ciphertext_and_tag.data() + ciphertext.size(), kTagBytes, tag);

  CtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr || EVP_DecryptInit_ex(ctx.get(), Aes256Gcm(), nullptr, key.data(), nonce.data()) != 1 ||
      !UpdateAll(EVP_DecryptUpdate, ctx.get(), aad, nullptr) ||
      !UpdateAll(EVP_DecryptUpdate, ctx.get(), ciphertext, out.data()) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), tag) != 1) {
    Wipe(out);
    return Status::Internal("AES-256-GCM: decryption failed");
  }
  // GCM's final step writes no bytes; the scratch buffer keeps the pointer valid even when out is empty.
  uint8_t scratch[kTagBytes];
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), scratch, &final_len) != 1 || final_len != 0) {
    Wipe(out);
    return Status::Corruption("AES-256-GCM: authentication failed");
  }
  return Status::Ok();
}

}  // namespace coffre::crypto::internal
