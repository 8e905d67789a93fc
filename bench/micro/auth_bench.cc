// SigV4 verification of a typical SDK request, and data-key wrap/unwrap (per object, on every
// PUT and GET): through the keystore, and the raw AEAD underneath.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/crypto/aead.h"
#include "coffre/keystore/keystore.h"
#include "coffre/s3/sigv4.h"
#include "temp_dir.h"

namespace coffre::bench {
namespace {

constexpr std::string_view kAccessKey = "COEXAMPLEACCESSKEY01";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kAmzDate = "20261128T120000Z";

// A 1 MiB PUT as an SDK sends it, header-signed over seven headers. UNSIGNED-PAYLOAD: checking a
// signed body hash is the service's work (SHA-256 of the body), not Authenticate's.
struct OwnedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;

  s3::HttpRequestView View() const {
    s3::HttpRequestView v;
    v.method = method;
    v.target = target;
    for (const auto& [name, value] : headers) v.headers.emplace_back(name, value);
    return v;
  }
};

OwnedRequest TypicalSignedPut() {
  OwnedRequest r;
  r.method = "PUT";
  r.target = "/dossiers/2026/D0123456/contrat%20sign%C3%A9.pdf";
  r.headers = {{"Host", "127.0.0.1:9000"},
               {"User-Agent", "aws-cli/2.13.0 Python/3.11.2 Linux/6.1.0 botocore/2.4.5"},
               {"Content-Type", "application/pdf"},
               {"Content-Length", "1048576"},
               {"Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="},
               {"x-amz-content-sha256", "UNSIGNED-PAYLOAD"},
               {"x-amz-date", std::string(kAmzDate)},
               {"x-amz-meta-dossier", "D0123456"}};
  const std::vector<std::string> signed_headers = {"content-length",       "content-md5", "content-type",      "host",
                                                   "x-amz-content-sha256", "x-amz-date",  "x-amz-meta-dossier"};
  const std::string date(kAmzDate.substr(0, 8));
  const std::string scope = date + "/us-east-1/s3/aws4_request";
  const std::string canonical = s3::CanonicalRequest(r.View(), signed_headers, "UNSIGNED-PAYLOAD", false);
  const std::string signature =
      s3::SignHex(s3::DeriveSigningKey(SecretBytes(AsBytes(kSecret)), date, "us-east-1", "s3"),
                  s3::StringToSign(kAmzDate, scope, canonical));
  std::string list;
  for (const auto& h : signed_headers) list += (list.empty() ? "" : ";") + h;
  r.headers.emplace_back("Authorization", "AWS4-HMAC-SHA256 Credential=" + std::string(kAccessKey) + "/" + scope +
                                              ", SignedHeaders=" + list + ", Signature=" + signature);
  return r;
}

void BM_SigV4Authenticate(benchmark::State& state) {
  const OwnedRequest request = TypicalSignedPut();
  const s3::HttpRequestView view = request.View();
  const FixedClock clock(*ParseAmzDate(kAmzDate));
  s3::AuthOptions options;
  options.clock = &clock;
  options.region = "us-east-1";
  // As the daemon's lookup answers from the keystore's cache: a copy of the cached secret.
  const SecretBytes secret(AsBytes(kSecret));
  const s3::CredentialLookup lookup = [&](std::string_view akid) -> Expected<s3::Credential, s3::Error> {
    if (akid != kAccessKey) return s3::Error(s3::ErrorCode::kInvalidAccessKeyId);
    return s3::Credential{"tenant", secret};
  };
  for (auto _ : state) {
    auto result = s3::Authenticate(view, lookup, options);
    if (!result.ok()) {
      state.SkipWithError("Authenticate rejected the request");
      break;
    }
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK(BM_SigV4Authenticate);

// The keystore of the data-key benchmarks, opened once, with one tenant.
struct KeystoreFixture {
  KeystoreFixture() {
    auto ks = keystore::Keystore::Open(BenchTempDir() + "/keystore.db", SecretBytes::Random(32));
    if (!ks.ok()) std::abort();
    keys = std::move(ks).value();
    auto tenant = keys->CreateTenant("bench");
    if (!tenant.ok()) std::abort();
    tenant_id = tenant->id;
  }
  std::unique_ptr<keystore::Keystore> keys;
  std::string tenant_id;
};

KeystoreFixture& Keys() {
  static KeystoreFixture fixture;
  return fixture;
}

constexpr std::string_view kObjectAad = "object:0123456789abcdef0123456789abcdef";

void BM_KeystoreNewDataKey(benchmark::State& state) {
  KeystoreFixture& f = Keys();
  for (auto _ : state) {
    auto key = f.keys->NewDataKey(f.tenant_id, AsBytes(kObjectAad));
    if (!key.ok()) {
      state.SkipWithError("NewDataKey failed");
      break;
    }
    benchmark::DoNotOptimize(key);
  }
}
BENCHMARK(BM_KeystoreNewDataKey);

void BM_KeystoreUnwrapDataKey(benchmark::State& state) {
  KeystoreFixture& f = Keys();
  auto key = f.keys->NewDataKey(f.tenant_id, AsBytes(kObjectAad));
  if (!key.ok()) {
    state.SkipWithError("NewDataKey failed");
    return;
  }
  for (auto _ : state) {
    auto plain = f.keys->UnwrapDataKey(f.tenant_id, key->tenant_key_version, key->wrapped, AsBytes(kObjectAad));
    if (!plain.ok()) {
      state.SkipWithError("UnwrapDataKey failed");
      break;
    }
    benchmark::DoNotOptimize(plain);
  }
}
BENCHMARK(BM_KeystoreUnwrapDataKey);

// The AEAD underneath the keystore's wrap, without its lookups and caches.
void BM_AeadWrapDataKey(benchmark::State& state) {
  const SecretBytes kek = SecretBytes::Random(32);
  const SecretBytes data_key = SecretBytes::Random(32);
  for (auto _ : state) {
    auto sealed = crypto::Seal(kek, data_key.Reveal(), AsBytes(kObjectAad));
    benchmark::DoNotOptimize(sealed);
  }
}
BENCHMARK(BM_AeadWrapDataKey);

void BM_AeadUnwrapDataKey(benchmark::State& state) {
  const SecretBytes kek = SecretBytes::Random(32);
  const SecretBytes data_key = SecretBytes::Random(32);
  auto sealed = crypto::Seal(kek, data_key.Reveal(), AsBytes(kObjectAad));
  if (!sealed.ok()) std::abort();
  for (auto _ : state) {
    auto opened = crypto::OpenSecret(kek, *sealed, AsBytes(kObjectAad));
    if (!opened.ok()) {
      state.SkipWithError("OpenSecret failed");
      break;
    }
    benchmark::DoNotOptimize(opened);
  }
}
BENCHMARK(BM_AeadUnwrapDataKey);

}  // namespace
}  // namespace coffre::bench
