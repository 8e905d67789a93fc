// Fuzzes presigned-URL (query string) authentication: the input is the query string of
// "GET /test.txt?<input>" with the Host of the AWS presigned example, authenticated with a fixed
// clock and the AWS example credential; also the query and URI decoders on their own.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/http/uri.h"
#include "coffre/s3/request.h"
#include "coffre/s3/sigv4.h"

namespace {

constexpr std::string_view kAccessKey = "AKIAIOSFODNN7EXAMPLE";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const coffre::FixedClock clock(*coffre::ParseAmzDate("20130524T000000Z"));
  static const coffre::s3::CredentialLookup lookup =
      [](std::string_view akid) -> coffre::Expected<coffre::s3::Credential, coffre::s3::Error> {
    if (akid == kAccessKey) {
      return coffre::s3::Credential{"tenant-1", coffre::SecretBytes(coffre::AsBytes(kSecret))};
    }
    return coffre::s3::Error(coffre::s3::ErrorCode::kInvalidAccessKeyId);
  };
  const std::string_view query(reinterpret_cast<const char*>(data), size);
  const std::string target = "/test.txt?" + std::string(query);

  coffre::s3::HttpRequestView view;
  view.method = "GET";
  view.target = target;
  view.headers.emplace_back("Host", "examplebucket.s3.amazonaws.com");
  coffre::s3::AuthOptions options;
  options.clock = &clock;
  auto result = coffre::s3::Authenticate(view, lookup, options);
  if (result.ok() && (!result->presigned || result->tenant_id != "tenant-1")) {
    std::abort();
  }
  // The same URL used with another method must never authenticate.
  view.method = "PUT";
  if (result.ok() && coffre::s3::Authenticate(view, lookup, options).ok()) {
    std::abort();
  }

  auto params = coffre::http::ParseQuery(query);
  if (params) {
    for (const auto& [name, value] : *params) {
      // Decoding what UriEncode produced gives the original back.
      const auto round_trip = coffre::http::PercentDecode(coffre::s3::UriEncode(value, true));
      if (!round_trip || *round_trip != value) {
        std::abort();
      }
    }
  }
  (void)coffre::http::PercentDecode(query);
  return 0;
}
