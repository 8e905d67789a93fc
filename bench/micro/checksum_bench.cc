// Throughput of what the PUT path computes over the plaintext: MD5 (the ETag), the flexible
// checksums (CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256) and, for reference, MD5 and encryption in
// series over the same bytes (what one core does per byte when hashing and sealing run one after
// the other).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "coffre/crypto/blob_format.h"
#include "coffre/crypto/checksum.h"
#include "coffre/crypto/hash.h"

namespace coffre::bench {
namespace {

// The service feeds hashes one network read at a time; 64 KiB is one segment.
constexpr size_t kUpdate = 64 << 10;

Bytes Filled(size_t size) {
  Bytes b(size);
  RandomFill(b);
  return b;
}

template <typename Fn>
void Chunked(ByteView data, Fn&& fn) {
  for (size_t off = 0; off < data.size(); off += kUpdate) {
    fn(data.subspan(off, std::min(kUpdate, data.size() - off)));
  }
}

void BM_Md5(benchmark::State& state) {
  const Bytes data = Filled(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    crypto::Md5 md5;
    Chunked(data, [&](ByteView piece) { md5.Update(piece); });
    benchmark::DoNotOptimize(md5.Final());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Md5)->Arg(4 << 10)->Arg(1 << 20);

void BM_Sha256(benchmark::State& state) {
  const Bytes data = Filled(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    crypto::Sha256 sha;
    Chunked(data, [&](ByteView piece) { sha.Update(piece); });
    benchmark::DoNotOptimize(sha.Final());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Sha256)->Arg(4 << 10)->Arg(1 << 20);

void BM_Checksum(benchmark::State& state, crypto::ChecksumAlgorithm alg) {
  const Bytes data = Filled(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    auto sum = crypto::Checksummer::Create(alg);
    Chunked(data, [&](ByteView piece) { sum->Update(piece); });
    benchmark::DoNotOptimize(sum->Final());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK_CAPTURE(BM_Checksum, Crc32, crypto::ChecksumAlgorithm::kCrc32)->Arg(4 << 10)->Arg(1 << 20);
BENCHMARK_CAPTURE(BM_Checksum, Crc32c, crypto::ChecksumAlgorithm::kCrc32c)->Arg(4 << 10)->Arg(1 << 20);
BENCHMARK_CAPTURE(BM_Checksum, Crc64Nvme, crypto::ChecksumAlgorithm::kCrc64Nvme)->Arg(4 << 10)->Arg(1 << 20);
BENCHMARK_CAPTURE(BM_Checksum, Sha1, crypto::ChecksumAlgorithm::kSha1)->Arg(1 << 20);
BENCHMARK_CAPTURE(BM_Checksum, Sha256, crypto::ChecksumAlgorithm::kSha256)->Arg(1 << 20);

// MD5 then segment encryption, in series on one core, per 64 KiB segment: the single-threaded
// PUT cost per byte. Compare with BM_Md5 and BM_SegmentEncrypt: if MD5 ran beside encryption
// (another core), the PUT rate would be bounded by the slower of the two instead of their sum.
void BM_Md5ThenEncryptInSeries(benchmark::State& state) {
  const Bytes data = Filled(static_cast<size_t>(state.range(0)));
  const SecretBytes key = SecretBytes::Random(32);
  crypto::KeyReference ref;
  ref.tenant_key_id = Bytes(crypto::kTenantKeyIdSize, 0x11);
  ref.tenant_key_version = 1;
  ref.wrapped_data_key = Bytes(crypto::kWrappedDataKeySize, 0x22);
  auto enc = crypto::BlobEncryptor::Create(key, ref, {"tenant", "blob"});
  if (!enc.ok()) std::abort();
  const uint64_t segments = crypto::SegmentCount(data.size(), enc->segment_size());
  Bytes out(enc->segment_size() + crypto::kSegmentTagSize);
  for (auto _ : state) {
    crypto::Md5 md5;
    uint64_t index = 0;
    Chunked(data, [&](ByteView piece) {
      md5.Update(piece);
      const bool last = index + 1 == segments;
      if (!enc->SealSegment(index, last, piece, std::span<uint8_t>(out).first(piece.size() + 16)).ok()) {
        std::abort();
      }
      ++index;
    });
    benchmark::DoNotOptimize(md5.Final());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Md5ThenEncryptInSeries)->Arg(1 << 20);

}  // namespace
}  // namespace coffre::bench
