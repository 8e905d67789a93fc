#include "coffre/crypto/hash.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <cstdlib>
#include <limits>

namespace coffre::crypto {
namespace {

// The digest functions cannot report errors through their signatures, and EVP only fails here on
// allocation failure or a broken OpenSSL install; continuing with a wrong digest would be worse than
// stopping, so fail closed.
[[noreturn]] void DieOnOpenSslFailure(const char* what) {
  std::fprintf(stderr, "coffre: fatal OpenSSL failure in %s\n", what);
  std::abort();
}

// One EVP digest context; the three hash classes differ only by algorithm and digest size.
class DigestContext {
 public:
  explicit DigestContext(const EVP_MD* md) : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, md, nullptr) != 1) {
      DieOnOpenSslFailure("EVP_DigestInit_ex");
    }
  }
  ~DigestContext() { EVP_MD_CTX_free(ctx_); }
  DigestContext(const DigestContext&) = delete;
  DigestContext& operator=(const DigestContext&) = delete;

  void Update(ByteView data) {
    if (data.empty()) {
      return;
    }
    if (EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1) {
      DieOnOpenSslFailure("EVP_DigestUpdate");
    }
  }

  template <size_t N>
  std::array<uint8_t, N> Final() {
    std::array<uint8_t, N> out{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_, out.data(), &len) != 1 || len != N) {
      DieOnOpenSslFailure("EVP_DigestFinal_ex");
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace

struct Sha256::Impl {
  DigestContext ctx{EVP_sha256()};
};
struct Md5::Impl {
  DigestContext ctx{EVP_md5()};
};
struct Sha1::Impl {
  DigestContext ctx{EVP_sha1()};
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;
void Sha256::Update(ByteView data) { impl_->ctx.Update(data); }
Sha256Digest Sha256::Final() { return impl_->ctx.Final<32>(); }
Sha256Digest Sha256::Digest(ByteView data) {
  Sha256 h;
  h.Update(data);
  return h.Final();
}

Md5::Md5() : impl_(std::make_unique<Impl>()) {}
Md5::~Md5() = default;
Md5::Md5(Md5&&) noexcept = default;
Md5& Md5::operator=(Md5&&) noexcept = default;
void Md5::Update(ByteView data) { impl_->ctx.Update(data); }
Md5Digest Md5::Final() { return impl_->ctx.Final<16>(); }
Md5Digest Md5::Digest(ByteView data) {
  Md5 h;
  h.Update(data);
  return h.Final();
}

Sha1::Sha1() : impl_(std::make_unique<Impl>()) {}
Sha1::~Sha1() = default;
Sha1::Sha1(Sha1&&) noexcept = default;
Sha1& Sha1::operator=(Sha1&&) noexcept = default;
void Sha1::Update(ByteView data) { impl_->ctx.Update(data); }
Sha1Digest Sha1::Final() { return impl_->ctx.Final<20>(); }

Sha256Digest HmacSha256(ByteView key, ByteView data) {
  // HMAC() takes an int key length. HMAC itself replaces a key longer than the block size by its
  // hash (RFC 2104), so doing that first for huge keys gives the same MAC.
  if (key.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    const Sha256Digest hashed_key = Sha256::Digest(key);
    return HmacSha256(hashed_key, data);
  }
  Sha256Digest out{};
  unsigned int len = 0;
  // HMAC() treats a null key pointer as "reuse the previous key" in some versions; an empty key
  // must still be a valid (empty) key, so always pass a real pointer.
  static const uint8_t kEmpty = 0;
  const uint8_t* key_ptr = key.empty() ? &kEmpty : key.data();
  const uint8_t* data_ptr = data.empty() ? &kEmpty : data.data();
  if (HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()), data_ptr, data.size(), out.data(), &len) == nullptr ||
      len != out.size()) {
    DieOnOpenSslFailure("HMAC");
  }
  return out;
}

}  // namespace coffre::crypto
