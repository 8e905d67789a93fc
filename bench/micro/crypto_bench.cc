// Segment encryption and decryption (crypto/blob_format.h) against the raw OpenSSL EVP
// AES-256-GCM call on the same buffer: the ratio of the two is the blob format's overhead
// (per-segment nonce, context set-up, HKDF-derived keys, bounds checks). Run with
// --benchmark_enable_random_interleaving so that format and raw runs alternate (shared machine).

#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <utility>

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "coffre/crypto/blob_format.h"

namespace coffre::bench {
namespace {

constexpr uint8_t kAad[] = {'t', 'e', 'n', 'a', 'n', 't', '/', 'b', 'l', 'o', 'b'};

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};

Bytes Filled(size_t size) {
  Bytes b(size);
  RandomFill(b);
  return b;
}

crypto::KeyReference TestKeyReference() {
  crypto::KeyReference ref;
  ref.tenant_key_id = Bytes(crypto::kTenantKeyIdSize, 0x11);
  ref.tenant_key_version = 1;
  ref.wrapped_data_key = Bytes(crypto::kWrappedDataKeySize, 0x22);
  return ref;
}

crypto::BlobEncryptor MakeEncryptor(const SecretBytes& key) {
  auto enc = crypto::BlobEncryptor::Create(key, TestKeyReference(), {"tenant", "blob"});
  if (!enc.ok()) std::abort();
  return std::move(enc).value();
}

// The ceiling: one EVP AES-256-GCM encryption of the whole buffer (one init, one update, tag).
void BM_RawEvpAes256GcmEncrypt(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const Bytes key = Filled(32);
  const Bytes nonce = Filled(12);
  const Bytes plaintext = Filled(size);
  Bytes out(size + 16);
  std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter> ctx(EVP_CIPHER_CTX_new());
  for (auto _ : state) {
    int len = 0;
    if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &len, kAad, sizeof(kAad)) != 1 ||
        EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(), static_cast<int>(size)) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, out.data() + size) != 1) {
      state.SkipWithError("EVP encryption failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}
BENCHMARK(BM_RawEvpAes256GcmEncrypt)->Arg(64 << 10)->Arg(1 << 20);

void BM_RawEvpAes256GcmDecrypt(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const Bytes key = Filled(32);
  const Bytes nonce = Filled(12);
  const Bytes ciphertext = Filled(size + 16);
  Bytes out(size);
  std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter> ctx(EVP_CIPHER_CTX_new());
  for (auto _ : state) {
    int len = 0;
    // The tag is random, so Final fails: what is measured is the decryption and the GHASH,
    // as in an authentic open; the tag comparison itself is 16 bytes.
    if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()) != 1 ||
        EVP_DecryptUpdate(ctx.get(), nullptr, &len, kAad, sizeof(kAad)) != 1 ||
        EVP_DecryptUpdate(ctx.get(), out.data(), &len, ciphertext.data(), static_cast<int>(size)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, const_cast<uint8_t*>(ciphertext.data() + size)) != 1) {
      state.SkipWithError("EVP decryption failed");
      break;
    }
    benchmark::DoNotOptimize(EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &len));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}
BENCHMARK(BM_RawEvpAes256GcmDecrypt)->Arg(64 << 10)->Arg(1 << 20);

// A buffer of `size` bytes sealed as the PUT path seals it: 64 KiB segments (the default).
void BM_SegmentEncrypt(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const SecretBytes key = SecretBytes::Random(32);
  const crypto::BlobEncryptor enc = MakeEncryptor(key);
  const size_t seg = enc.segment_size();
  const Bytes plaintext = Filled(size);
  Bytes out(seg + crypto::kSegmentTagSize);
  const uint64_t segments = crypto::SegmentCount(size, enc.segment_size());
  for (auto _ : state) {
    for (uint64_t i = 0; i < segments; ++i) {
      const size_t off = i * seg;
      const size_t n = std::min(seg, size - off);
      const bool last = i + 1 == segments;
      if (!enc.SealSegment(i, last, ByteView(plaintext).subspan(off, n),
                           std::span<uint8_t>(out).first(n + crypto::kSegmentTagSize))
               .ok()) {
        state.SkipWithError("SealSegment failed");
        return;
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}
BENCHMARK(BM_SegmentEncrypt)->Arg(64 << 10)->Arg(1 << 20);

void BM_SegmentDecrypt(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const SecretBytes key = SecretBytes::Random(32);
  const crypto::BlobEncryptor enc = MakeEncryptor(key);
  const size_t seg = enc.segment_size();
  const Bytes plaintext = Filled(size);
  const uint64_t segments = crypto::SegmentCount(size, enc.segment_size());
  // The whole blob, as it lies on disk.
  Bytes blob = enc.EncodeHeader(size);
  blob.resize(crypto::CiphertextLength(size, enc.segment_size()));
  for (uint64_t i = 0; i < segments; ++i) {
    const size_t off = i * seg;
    const size_t n = std::min(seg, size - off);
    const size_t at = crypto::SegmentOffset(i, enc.segment_size());
    if (!enc.SealSegment(i, i + 1 == segments, ByteView(plaintext).subspan(off, n),
                         std::span<uint8_t>(blob).subspan(at, n + crypto::kSegmentTagSize))
             .ok()) {
      state.SkipWithError("SealSegment failed");
      return;
    }
  }
  auto dec = crypto::BlobDecryptor::Create(key, {"tenant", "blob"}, ByteView(blob).first(crypto::kHeaderSize));
  if (!dec.ok()) {
    state.SkipWithError("BlobDecryptor::Create failed");
    return;
  }
  Bytes out(seg);
  for (auto _ : state) {
    for (uint64_t i = 0; i < segments; ++i) {
      const size_t n = std::min(seg, size - i * seg);
      const size_t at = crypto::SegmentOffset(i, enc.segment_size());
      if (!dec->OpenSegment(i, ByteView(blob).subspan(at, n + crypto::kSegmentTagSize),
                            std::span<uint8_t>(out).first(n))
               .ok()) {
        state.SkipWithError("OpenSegment failed");
        return;
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
}
BENCHMARK(BM_SegmentDecrypt)->Arg(64 << 10)->Arg(1 << 20);

// Per-object set-up on the PUT and GET paths: HKDF of the segment and MAC keys, commitment,
// header MAC.
void BM_BlobEncryptorCreate(benchmark::State& state) {
  const SecretBytes key = SecretBytes::Random(32);
  for (auto _ : state) {
    auto enc = crypto::BlobEncryptor::Create(key, TestKeyReference(), {"tenant", "blob"});
    benchmark::DoNotOptimize(enc.ok());
    benchmark::DoNotOptimize(enc->EncodeHeader(4096));
  }
}
BENCHMARK(BM_BlobEncryptorCreate);

// A copy of a 32-byte key as the request paths make them (signing keys, data keys), against a
// plain heap copy of the same bytes: the ratio is what keeping key material locked and wiped
// costs per copy.
void BM_SecretBytesCopy(benchmark::State& state) {
  const SecretBytes key = SecretBytes::Random(32);
  for (auto _ : state) {
    SecretBytes copy(key);
    benchmark::DoNotOptimize(copy.Reveal().data());
  }
}
BENCHMARK(BM_SecretBytesCopy);

void BM_HeapBytesCopy(benchmark::State& state) {
  const Bytes key = Filled(32);
  for (auto _ : state) {
    Bytes copy(key);
    benchmark::DoNotOptimize(copy.data());
  }
}
BENCHMARK(BM_HeapBytesCopy);

}  // namespace
}  // namespace coffre::bench
