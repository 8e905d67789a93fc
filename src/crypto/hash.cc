#include "coffre/crypto/hash.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdio>
#include <cstdlib>

namespace coffre::crypto {
namespace {

// The digest functions cannot report errors through their signatures, and EVP only fails here on
// allocation failure or a broken OpenSSL install; continuing with a wrong digest would be worse than
// stopping, so fail closed.
[[noreturn]] void DieOnOpenSslFailure(const char* what) {
  std::fprintf(stderr, "coffre: fatal OpenSSL failure in %s\n", what);
  std::abort();
}

// OpenSSL 3 resolves EVP_sha256() and the one-shot HMAC() to a provider's implementation by name on
// every use: a fetch under a global lock that costs more than hashing a SigV4 string-to-sign. Fetched
// once, an algorithm object is immutable and shared by every thread.
const EVP_MD* FetchDigest(const char* name) {
  const EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
  if (md == nullptr) {
    DieOnOpenSslFailure("EVP_MD_fetch");
  }
  return md;
}

const EVP_MD* Sha256Algorithm() {
  static const EVP_MD* const md = FetchDigest("SHA256");
  return md;
}

const EVP_MD* Md5Algorithm() {
  static const EVP_MD* const md = FetchDigest("MD5");
  return md;
}

const EVP_MD* Sha1Algorithm() {
  static const EVP_MD* const md = FetchDigest("SHA1");
  return md;
}

// One HMAC-SHA256 context per thread with its digest set once: keying it again costs a third of
// what making one does. Between uses it holds an empty key, so no caller's key outlives its call.
class ThreadHmacSha256 {
 public:
  ThreadHmacSha256() {
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac == nullptr || (ctx_ = EVP_MAC_CTX_new(mac)) == nullptr) {
      DieOnOpenSslFailure("EVP_MAC_CTX_new");
    }
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(ctx_, params) != 1) {
      DieOnOpenSslFailure("EVP_MAC_CTX_set_params");
    }
  }
  ~ThreadHmacSha256() { EVP_MAC_CTX_free(ctx_); }
  ThreadHmacSha256(const ThreadHmacSha256&) = delete;
  ThreadHmacSha256& operator=(const ThreadHmacSha256&) = delete;

  Sha256Digest Mac(ByteView key, std::span<const ByteView> message) {
    // A null key would mean "keep the previous key"; an empty key must be the empty key.
    static const uint8_t kEmpty = 0;
    Key(key.empty() ? &kEmpty : key.data(), key.size());
    for (ByteView part : message) {
      if (!part.empty() && EVP_MAC_update(ctx_, part.data(), part.size()) != 1) {
        DieOnOpenSslFailure("EVP_MAC_update");
      }
    }
    Sha256Digest out{};
    size_t len = 0;
    if (EVP_MAC_final(ctx_, out.data(), &len, out.size()) != 1 || len != out.size()) {
      DieOnOpenSslFailure("EVP_MAC_final");
    }
    Key(&kEmpty, 0);
    return out;
  }

 private:
  void Key(const uint8_t* key, size_t size) {
    if (EVP_MAC_init(ctx_, key, size, nullptr) != 1) {
      DieOnOpenSslFailure("EVP_MAC_init");
    }
  }

  EVP_MAC_CTX* ctx_ = nullptr;
};

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
  DigestContext ctx{Sha256Algorithm()};
};
struct Md5::Impl {
  DigestContext ctx{Md5Algorithm()};
};
struct Sha1::Impl {
  DigestContext ctx{Sha1Algorithm()};
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
  return HmacSha256OfParts(key, std::span<const ByteView>(&data, 1));
}

Sha256Digest HmacSha256OfParts(ByteView key, std::span<const ByteView> message) {
  thread_local ThreadHmacSha256 hmac;
  return hmac.Mac(key, message);
}

Sha1Digest HmacSha1(ByteView key, ByteView data) {
  // A null key pointer is refused; an empty key must be the empty key.
  static const uint8_t kEmpty = 0;
  Sha1Digest out{};
  size_t len = 0;
  char digest[] = "SHA1";
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, digest, nullptr, key.empty() ? &kEmpty : key.data(), key.size(),
                data.empty() ? &kEmpty : data.data(), data.size(), out.data(), out.size(), &len) == nullptr ||
      len != out.size()) {
    DieOnOpenSslFailure("EVP_Q_mac");
  }
  return out;
}

}  // namespace coffre::crypto
