#include "coffre/sigv4/sigv4.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coffre/common/bytes.h"

namespace coffre::sigv4 {
namespace {

// The example credentials, bucket and time of the AWS S3 SigV4 documentation
// (sig-v4-header-based-auth.html); the s3 module's tests check the verifier against the same.
constexpr std::string_view kAccessKey = "AKIAIOSFODNN7EXAMPLE";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kAmzDate = "20130524T000000Z";
constexpr std::string_view kHost = "examplebucket.s3.amazonaws.com";

TEST(UriEncode, KeepsOnlyUnreserved) {
  EXPECT_EQ(UriEncode("AZaz09-_.~", true), "AZaz09-_.~");
  EXPECT_EQ(UriEncode("a b+c*d!e'(f)", true), "a%20b%2Bc%2Ad%21e%27%28f%29");
  EXPECT_EQ(UriEncode("$=&;:@,?#%", true), "%24%3D%26%3B%3A%40%2C%3F%23%25");
  EXPECT_EQ(UriEncode("\xe2\x82\xac", true), "%E2%82%AC");
  EXPECT_EQ(UriEncode(std::string(1, '\0'), true), "%00");
  EXPECT_EQ(UriEncode("", true), "");
}

TEST(UriEncode, SlashDependsOnFlag) {
  EXPECT_EQ(UriEncode("a/b c", false), "a/b%20c");
  EXPECT_EQ(UriEncode("a/b c", true), "a%2Fb%20c");
}

TEST(CanonicalQuery, EncodesThenSortsByNameThenValue) {
  EXPECT_EQ(CanonicalQuery({{"prefix", "a b"}, {"list-type", "2"}, {"b", "2"}, {"b", "1"}, {"uploads", ""}}),
            "b=1&b=2&list-type=2&prefix=a%20b&uploads=");
  EXPECT_EQ(CanonicalQuery({}), "");
}

TEST(Scope, JoinsItsParts) { EXPECT_EQ(Scope("20130524", "us-east-1", "s3"), "20130524/us-east-1/s3/aws4_request"); }

TEST(Authorization, SignsTheAwsGetObjectExample) {
  const SecretBytes secret{AsBytes(kSecret)};
  const HeaderFields headers = {
      {"Host", kHost}, {"Range", "bytes=0-9"}, {"x-amz-content-sha256", kEmptySha256Hex}, {"x-amz-date", kAmzDate}};
  const std::vector<std::string> signed_headers = {"host", "range", "x-amz-content-sha256", "x-amz-date"};
  EXPECT_EQ(Authorization({.access_key_id = kAccessKey, .secret_access_key = secret, .region = "us-east-1"}, kAmzDate,
                          {.method = "GET",
                           .canonical_uri = "/test.txt",
                           .canonical_query = "",
                           .headers = headers,
                           .signed_headers = signed_headers,
                           .payload_hash = kEmptySha256Hex}),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(CanonicalRequest, RepeatedHeadersJoinedAndTrimmed) {
  const HeaderFields headers = {{"X-Amz-Meta-A", "  one   two "}, {"host", "h"}, {"x-amz-meta-a", "three"}};
  const std::vector<std::string> signed_headers = {"host", "x-amz-meta-a"};
  EXPECT_EQ(CanonicalRequest({.method = "PUT",
                              .canonical_uri = "/k",
                              .canonical_query = "",
                              .headers = headers,
                              .signed_headers = signed_headers,
                              .payload_hash = kUnsignedPayload}),
            "PUT\n/k\n\nhost:h\nx-amz-meta-a:one two,three\n\nhost;x-amz-meta-a\nUNSIGNED-PAYLOAD");
}

}  // namespace
}  // namespace coffre::sigv4
