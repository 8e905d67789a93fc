// Fuzzes header-signed SigV4 authentication: the Authorization header, the canonical request
// (method, target, query, headers) and x-amz-* checks, through s3::Authenticate with a fixed clock
// (the AWS examples' 2013-05-24) and the AWS example credential. Input: fuzz_request.h's text.
//
// Property: an input accepted as authentic names the example key and its tenant; the streaming
// chunk signatures derived from it are computable.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/s3/sigv4.h"
#include "fuzz_request.h"

namespace {

constexpr std::string_view kAccessKey = "AKIAIOSFODNN7EXAMPLE";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

coffre::s3::CredentialLookup Lookup() {
  return [](std::string_view akid) -> coffre::Expected<coffre::s3::Credential, coffre::s3::Error> {
    if (akid == kAccessKey) {
      return coffre::s3::Credential{"tenant-1", coffre::SecretBytes(coffre::AsBytes(kSecret))};
    }
    if (akid == "AKIDDISABLED") {
      return coffre::s3::Error(coffre::s3::ErrorCode::kAccessDenied, "key disabled");
    }
    return coffre::s3::Error(coffre::s3::ErrorCode::kInvalidAccessKeyId);
  };
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const coffre::FixedClock clock(*coffre::ParseAmzDate("20130524T000000Z"));
  static const coffre::s3::CredentialLookup lookup = Lookup();
  const coffre::fuzz::OwnedRequest request =
      coffre::fuzz::ParseRequestText(std::string_view(reinterpret_cast<const char*>(data), size));
  const coffre::s3::HttpRequestView view = request.View();

  coffre::s3::AuthOptions options;
  options.clock = &clock;
  auto result = coffre::s3::Authenticate(view, lookup, options);
  if (result.ok()) {
    if (result->access_key_id != kAccessKey || result->tenant_id != "tenant-1") {
      std::abort();
    }
    if (coffre::s3::IsStreaming(result->payload_mode)) {
      (void)coffre::s3::ChunkSignature(*result, result->seed_signature, "");
    }
  }
  // With a region pinned, as a configured daemon runs.
  options.region = "us-east-1";
  (void)coffre::s3::Authenticate(view, lookup, options);

  // The canonical request over every header name the input carries, as signed headers.
  std::vector<std::string> signed_headers;
  for (const auto& [name, value] : request.headers) {
    signed_headers.push_back(coffre::s3::ToLower(name));
  }
  const std::string canonical = coffre::s3::CanonicalRequest(view, signed_headers, "UNSIGNED-PAYLOAD", false);
  (void)coffre::s3::StringToSign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", canonical);
  (void)coffre::s3::CanonicalRequest(view, signed_headers, "UNSIGNED-PAYLOAD", true);
  return 0;
}
