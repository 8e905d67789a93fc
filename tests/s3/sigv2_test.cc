#include "s3/sigv2.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/http/uri.h"
#include "coffre/s3/sigv4.h"
#include "s3/router.h"
#include "support/status_matchers.h"

namespace coffre::s3 {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// The example credentials of AWS's Signature Version 2 documentation (RESTAuthentication), whose
// examples address the bucket awsexamplebucket1 at the us-west-1 endpoint.
constexpr std::string_view kAccessKey = "AKIAIOSFODNN7EXAMPLE";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kBaseDomain = "s3.us-west-1.amazonaws.com";
constexpr std::string_view kVirtualHost = "awsexamplebucket1.s3.us-west-1.amazonaws.com";

struct TestRequest {
  std::string method = "GET";
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> headers;

  HttpRequestView View() const {
    HttpRequestView view;
    view.method = method;
    view.target = target;
    for (const auto& [name, value] : headers) {
      view.headers.emplace_back(name, value);
    }
    return view;
  }
};

SecretBytes Secret(std::string_view s) { return SecretBytes(AsBytes(s)); }

http::QueryParams QueryOf(const TestRequest& r) { return http::ParseQuery(http::SplitTarget(r.target).query).value(); }

CredentialLookup ExampleLookup() {
  return [](std::string_view akid) -> Expected<Credential, Error> {
    if (akid == kAccessKey) {
      return Credential{"tenant-1", Secret(kSecret)};
    }
    return Error(ErrorCode::kInvalidAccessKeyId);
  };
}

std::chrono::system_clock::time_point At(std::string_view http_date) { return ParseHttpDate(http_date).value(); }

class SigV2Test : public ::testing::Test {
 protected:
  SigV2Test() : clock_(At("Tue, 27 Mar 2007 19:36:42 GMT")) {
    options_.clock = &clock_;
    options_.base_domain = std::string(kBaseDomain);
  }

  Expected<AuthResult, Error> Auth(const TestRequest& r) { return Authenticate(r.View(), ExampleLookup(), options_); }

  std::string StringToSign(const TestRequest& r, std::string_view date_line, std::string_view bucket = "",
                           bool presigned = false) {
    return SigV2StringToSign(r.View(), QueryOf(r), date_line, bucket, presigned);
  }

  FixedClock clock_;
  AuthOptions options_;
};

// AWS's documented examples: each request's string to sign and the signature AWS gives for it.
TEST_F(SigV2Test, DocumentedObjectGet) {
  TestRequest r{
      "GET", "/photos/puppy.jpg", {{"Host", std::string(kVirtualHost)}, {"Date", "Tue, 27 Mar 2007 19:36:42 +0000"}}};
  const std::string sts = StringToSign(r, "Tue, 27 Mar 2007 19:36:42 +0000", "awsexamplebucket1");
  EXPECT_EQ(sts, "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg");
  EXPECT_EQ(SigV2Signature(Secret(kSecret), sts), "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");

  r.headers.emplace_back("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");
  auto auth = Auth(r);
  ASSERT_OK(auth);
  EXPECT_EQ(auth->access_key_id, kAccessKey);
  EXPECT_EQ(auth->tenant_id, "tenant-1");
  EXPECT_FALSE(auth->presigned);
  EXPECT_EQ(auth->payload_mode, PayloadMode::kUnsigned);
}

TEST_F(SigV2Test, DocumentedObjectPut) {
  clock_.Set(At("Tue, 27 Mar 2007 21:15:45 GMT"));
  TestRequest r{"PUT",
                "/photos/puppy.jpg",
                {{"Content-Type", "image/jpeg"},
                 {"Content-Length", "94328"},
                 {"Host", std::string(kVirtualHost)},
                 {"Date", "Tue, 27 Mar 2007 21:15:45 +0000"},
                 {"Authorization", "AWS AKIAIOSFODNN7EXAMPLE:iqRzw+ileNPu1fhspnRs8nOjjIA="}}};
  EXPECT_EQ(StringToSign(r, "Tue, 27 Mar 2007 21:15:45 +0000", "awsexamplebucket1"),
            "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/awsexamplebucket1/photos/puppy.jpg");
  EXPECT_OK(Auth(r));
}

// Query parameters that are not sub-resources are not signed; a bucket request signs "/bucket/".
TEST_F(SigV2Test, DocumentedListAndAcl) {
  clock_.Set(At("Tue, 27 Mar 2007 19:42:41 GMT"));
  TestRequest list{"GET",
                   "/?prefix=photos&max-keys=50&marker=puppy",
                   {{"User-Agent", "Mozilla/5.0"},
                    {"Host", std::string(kVirtualHost)},
                    {"Date", "Tue, 27 Mar 2007 19:42:41 +0000"},
                    {"Authorization", "AWS AKIAIOSFODNN7EXAMPLE:m0WP8eCtspQl5Ahe6L1SozdX9YA="}}};
  EXPECT_EQ(StringToSign(list, "Tue, 27 Mar 2007 19:42:41 +0000", "awsexamplebucket1"),
            "GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/awsexamplebucket1/");
  EXPECT_OK(Auth(list));

  clock_.Set(At("Tue, 27 Mar 2007 19:44:46 GMT"));
  TestRequest acl{"GET",
                  "/?acl",
                  {{"Host", std::string(kVirtualHost)},
                   {"Date", "Tue, 27 Mar 2007 19:44:46 +0000"},
                   {"Authorization", "AWS AKIAIOSFODNN7EXAMPLE:82ZHiFIjc+WbcwFKGUVEQspPn+0="}}};
  EXPECT_EQ(StringToSign(acl, "Tue, 27 Mar 2007 19:44:46 +0000", "awsexamplebucket1"),
            "GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/awsexamplebucket1/?acl");
  EXPECT_OK(Auth(acl));
}

// With x-amz-date the Date line is empty and x-amz-date is signed among the x-amz-* headers; the
// request's time is x-amz-date's. Path style: the resource is the path as sent. (The example of the
// documentation's first edition, bucket johnsmith, with its published signature.)
TEST_F(SigV2Test, DocumentedDeleteWithXAmzDate) {
  clock_.Set(At("Tue, 27 Mar 2007 21:20:26 GMT"));
  TestRequest r{"DELETE",
                "/johnsmith/photos/puppy.jpg",
                {{"User-Agent", "dotnet"},
                 {"Host", "s3.amazonaws.com"},
                 {"Date", "Tue, 27 Mar 2007 21:20:27 +0000"},
                 {"x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"},
                 {"Authorization", "AWS AKIAIOSFODNN7EXAMPLE:R4dJ53KECjStyBO5iTBJZ4XVOaI="}}};
  EXPECT_EQ(StringToSign(r, ""),
            "DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n/johnsmith/photos/puppy.jpg");
  EXPECT_OK(Auth(r));
}

// Content-MD5 and Content-Type are positional; x-amz-* names are lower-cased and sorted, repeated
// ones joined with commas, values trimmed.
TEST_F(SigV2Test, DocumentedUploadWithAmzHeaders) {
  clock_.Set(At("Tue, 27 Mar 2007 21:06:08 GMT"));
  TestRequest r{"PUT",
                "/static.example.com/db-backup.dat.gz",
                {{"User-Agent", "curl/7.15.5"},
                 {"Host", "s3.amazonaws.com"},
                 {"Date", "Tue, 27 Mar 2007 21:06:08 +0000"},
                 {"x-amz-acl", "public-read"},
                 {"content-type", "application/x-download"},
                 {"Content-MD5", "4gJE4saaMU4BqNR0kLY+lw=="},
                 {"X-Amz-Meta-ReviewedBy", "joe@example.com"},
                 {"X-Amz-Meta-ReviewedBy", "jane@example.com"},
                 {"X-Amz-Meta-FileChecksum", "0x02661779"},
                 {"X-Amz-Meta-ChecksumAlgorithm", "  crc32 "},
                 {"Content-Disposition", "attachment; filename=database.dat"},
                 {"Content-Encoding", "gzip"},
                 {"Content-Length", "5913339"},
                 {"Authorization", "AWS AKIAIOSFODNN7EXAMPLE:jtBQa0Aq+DkULFI8qrpwIjGEx0E="}}};
  EXPECT_EQ(StringToSign(r, "Tue, 27 Mar 2007 21:06:08 +0000"),
            "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\nTue, 27 Mar 2007 21:06:08 +0000\n"
            "x-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\n"
            "x-amz-meta-reviewedby:joe@example.com,jane@example.com\n/static.example.com/db-backup.dat.gz");
  EXPECT_OK(Auth(r));
}

TEST_F(SigV2Test, DocumentedListAllBucketsAndEncodedKey) {
  clock_.Set(At("Wed, 28 Mar 2007 01:29:59 GMT"));
  TestRequest all{"GET",
                  "/",
                  {{"Host", "s3.us-west-1.amazonaws.com"},
                   {"Date", "Wed, 28 Mar 2007 01:29:59 +0000"},
                   {"Authorization", "AWS AKIAIOSFODNN7EXAMPLE:qGdzdERIC03wnaRNKh6OqZehG9s="}}};
  EXPECT_OK(Auth(all));

  // The resource is the path exactly as sent, its escapes not normalised.
  clock_.Set(At("Wed, 28 Mar 2007 01:49:49 GMT"));
  TestRequest key{"GET",
                  "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
                  {{"Host", "s3.us-west-1.amazonaws.com"},
                   {"Date", "Wed, 28 Mar 2007 01:49:49 +0000"},
                   {"Authorization", "AWS AKIAIOSFODNN7EXAMPLE:DNEZGsoieTZ92F3bUfSPQcbGmlM="}}};
  EXPECT_EQ(StringToSign(key, "Wed, 28 Mar 2007 01:49:49 +0000"),
            "GET\n\n\nWed, 28 Mar 2007 01:49:49 +0000\n/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re");
  EXPECT_OK(Auth(key));
}

// Path style, a bucket alone: "/bucket" as sent, or "/bucket/" as botocore signs it; never another path.
TEST_F(SigV2Test, BucketAloneSignedWithOrWithoutTrailingSlash) {
  const std::string date = "Tue, 27 Mar 2007 19:36:42 +0000";
  for (const char* resource : {"/bucket", "/bucket/"}) {
    TestRequest r{"PUT", "/bucket", {{"Host", "s3.amazonaws.com"}, {"Date", date}}};
    r.headers.emplace_back("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:" +
                                                SigV2Signature(Secret(kSecret), "PUT\n\n\n" + date + "\n" + resource));
    EXPECT_OK(Auth(r)) << resource;
  }
  TestRequest other{"PUT", "/bucket/key", {{"Host", "s3.amazonaws.com"}, {"Date", date}}};
  other.headers.emplace_back("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:" +
                                                  SigV2Signature(Secret(kSecret), "PUT\n\n\n" + date + "\n/bucket/"));
  EXPECT_THAT(Auth(other), StatusIs(ErrorCode::kSignatureDoesNotMatch));
}

// Sub-resources sorted by name with their decoded values; other parameters left out.
TEST_F(SigV2Test, SubResourcesSortedWithValues) {
  TestRequest r{"PUT", "/b/k?uploadId=a%2Fb&partNumber=2&x-id=UploadPart", {{"Host", "s3.amazonaws.com"}}};
  EXPECT_EQ(StringToSign(r, "D"), "PUT\n\n\nD\n/b/k?partNumber=2&uploadId=a/b");
  TestRequest overrides{"GET", "/b/k?response-content-type=text%2Fplain&versionId=null&delete", {}};
  EXPECT_EQ(StringToSign(overrides, "D"), "GET\n\n\nD\n/b/k?delete&response-content-type=text/plain&versionId=null");
}

// Presigned: the Expires value on the Date line; x-amz-* query parameters signed as headers, and
// Content-Type taken from the query when the request has none (as botocore presigns).
TEST_F(SigV2Test, PresignedUrl) {
  clock_.Set(std::chrono::system_clock::time_point(std::chrono::seconds(1141889000)));
  TestRequest r{"GET",
                "/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120",
                {{"Host", std::string(kVirtualHost)}}};
  const std::string sts = StringToSign(r, "1141889120", "awsexamplebucket1", true);
  EXPECT_EQ(sts, "GET\n\n\n1141889120\n/awsexamplebucket1/photos/puppy.jpg");
  // Computed with Python's hmac from the documented inputs.
  EXPECT_EQ(SigV2Signature(Secret(kSecret), sts), "mi+pm7K7iCx46UlaDc8X8pxyzFc=");
  r.target += "&Signature=mi%2Bpm7K7iCx46UlaDc8X8pxyzFc%3D";
  auto auth = Auth(r);
  ASSERT_OK(auth);
  EXPECT_TRUE(auth->presigned);
  EXPECT_EQ(auth->access_key_id, kAccessKey);

  // One second after Expires.
  clock_.Set(std::chrono::system_clock::time_point(std::chrono::seconds(1141889121)));
  EXPECT_THAT(Auth(r), StatusIs(ErrorCode::kAccessDenied, HasSubstr("Request has expired")));
  // An Expires far in the future is not taken for one in the past (no overflow): it is beyond the
  // longest lifetime.
  TestRequest far{"GET", "/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=991141889120&Signature=x", {}};
  EXPECT_THAT(Auth(far), StatusIs(ErrorCode::kAccessDenied, HasSubstr("seconds from now")));

  TestRequest with_query{"PUT", "/b/k?content-type=text%2Fplain&x-amz-meta-a=1", {}};
  EXPECT_EQ(StringToSign(with_query, "5", "", true), "PUT\n\ntext/plain\n5\nx-amz-meta-a:1\n/b/k");
}

TEST_F(SigV2Test, RefusedRequests) {
  const auto base = [] {
    return TestRequest{
        "GET", "/photos/puppy.jpg", {{"Host", std::string(kVirtualHost)}, {"Date", "Tue, 27 Mar 2007 19:36:42 +0000"}}};
  };
  // A signature that does not match: AWS's error with the string to sign.
  TestRequest tampered = base();
  tampered.headers.emplace_back("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1h=");
  auto mismatch = Auth(tampered);
  ASSERT_THAT(mismatch, StatusIs(ErrorCode::kSignatureDoesNotMatch));
  EXPECT_EQ(mismatch.error().string_to_sign,
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg");
  EXPECT_EQ(mismatch.error().signature_provided, "qgk2+6Sv9/oM7G3qLEjTH1a1l1h=");
  EXPECT_EQ(mismatch.error().access_key_id, kAccessKey);

  TestRequest unknown = base();
  unknown.headers.emplace_back("Authorization", "AWS AKIDUNKNOWN:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");
  EXPECT_THAT(Auth(unknown), StatusIs(ErrorCode::kInvalidAccessKeyId));

  TestRequest malformed = base();
  malformed.headers.emplace_back("Authorization", "AWS AKIAIOSFODNN7EXAMPLE");
  EXPECT_THAT(Auth(malformed), StatusIs(ErrorCode::kInvalidArgument));

  // 15 minutes of skew are accepted, one second more is not.
  TestRequest skewed = base();
  skewed.headers.emplace_back("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");
  clock_.Set(At("Tue, 27 Mar 2007 19:51:42 GMT"));
  EXPECT_OK(Auth(skewed));
  clock_.Set(At("Tue, 27 Mar 2007 19:51:43 GMT"));
  EXPECT_THAT(Auth(skewed), StatusIs(ErrorCode::kRequestTimeTooSkewed));

  TestRequest undated{"GET", "/photos/puppy.jpg", {{"Host", std::string(kVirtualHost)}}};
  undated.headers.emplace_back("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");
  EXPECT_THAT(Auth(undated), StatusIs(ErrorCode::kAccessDenied, HasSubstr("valid Date or x-amz-date")));

  TestRequest incomplete{"GET", "/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x", {}};
  EXPECT_THAT(Auth(incomplete), StatusIs(ErrorCode::kAccessDenied, HasSubstr("Expires")));
}

// Switched off, SigV2 gets what AWS's SigV4-only regions answer, before any signature is checked.
TEST_F(SigV2Test, SwitchedOff) {
  options_.sigv2 = false;
  TestRequest header{"GET",
                     "/photos/puppy.jpg",
                     {{"Host", std::string(kVirtualHost)},
                      {"Date", "Tue, 27 Mar 2007 19:36:42 +0000"},
                      {"Authorization", "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g="}}};
  EXPECT_THAT(Auth(header), StatusIs(ErrorCode::kInvalidRequest, HasSubstr("Please use AWS4-HMAC-SHA256")));
  TestRequest presigned{"GET", "/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=x", {}};
  EXPECT_THAT(Auth(presigned), StatusIs(ErrorCode::kInvalidRequest, HasSubstr("Please use AWS4-HMAC-SHA256")));
}

// Signs `r` as a SigV2 presigned URL expiring at `expires` (path style), as botocore presigns.
void PresignV2(TestRequest& r, int64_t expires) {
  r.target += std::string(r.target.find('?') == std::string::npos ? "?" : "&") +
              "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=" + std::to_string(expires);
  const std::string sts = SigV2StringToSign(r.View(), QueryOf(r), std::to_string(expires), "", true);
  r.target += "&Signature=" + UriEncode(SigV2Signature(Secret(kSecret), sts), true);
}

class SigV2AttackTest : public SigV2Test {
 protected:
  SigV2AttackTest() {
    clock_.Set(std::chrono::system_clock::time_point(std::chrono::seconds(kNow)));
    options_.base_domain = "localhost";
  }
  static constexpr int64_t kNow = 1700000000;
};

// A repeated header that may appear once is named, whatever the scheme: SigV2 signs the first
// Content-Type, and a handler must not get to store another.
TEST_F(SigV2AttackTest, RepeatedSingleHeaders) {
  for (const char* name : {"Content-Type", "content-md5", "Content-Length", "Date", "X-Amz-Date", "Host",
                           "Authorization", "x-amz-content-sha256", "x-amz-copy-source", "x-amz-copy-source-range"}) {
    TestRequest r{"PUT", "/b/k", {{name, "a"}, {"x-amz-meta-a", "1"}, {name, "b"}}};
    EXPECT_EQ(RepeatedSingleHeader(r.View()), ToLower(name)) << name;
  }
  // Lists may repeat.
  TestRequest lists{"PUT",
                    "/b/k",
                    {{"Content-Type", "image/png"},
                     {"Content-Encoding", "gzip"},
                     {"Content-Encoding", "aws-chunked"},
                     {"x-amz-meta-a", "1"},
                     {"x-amz-meta-a", "2"}}};
  EXPECT_EQ(RepeatedSingleHeader(lists.View()), std::nullopt);
}

// ?x-amz-copy-source=... signed in a presigned PUT: promoted to the header it stands for, the
// request routes as the CopyObject that was signed, not as a PutObject of any body.
TEST_F(SigV2AttackTest, PresignedQueryHeadersArePromotedBeforeRouting) {
  TestRequest r{"PUT", "/bkt/dst?x-amz-copy-source=%2Fbkt%2Fsrc&x-amz-meta-a=1&Content-Type=image%2Fpng", {}};
  PresignV2(r, kNow + 60);
  HttpRequestView view = r.View();
  const http::QueryParams query = QueryOf(r);
  ASSERT_TRUE(IsSigV2PresignedQuery(view, query));
  std::deque<std::string> storage;
  ASSERT_EQ(PromotePresignedQueryHeaders(view, query, true, storage), std::nullopt);
  EXPECT_EQ(view.Header("x-amz-copy-source"), "/bkt/src");
  EXPECT_EQ(view.Header("x-amz-meta-a"), "1");
  EXPECT_EQ(view.Header("content-type"), "image/png");
  auto route = RouteRequest(view, RouterOptions{"localhost"});
  ASSERT_OK(route);
  EXPECT_EQ(route->op, Operation::kCopyObject);
  // The promoted values are the signed ones: the signature still matches, each signed once.
  EXPECT_OK(Authenticate(view, ExampleLookup(), options_));
  EXPECT_OK(Auth(r));

  // A header sent with the same value as the parameter adds nothing; another value is refused.
  TestRequest same = r;
  same.headers.emplace_back("x-amz-meta-a", "1");
  view = same.View();
  storage.clear();
  ASSERT_EQ(PromotePresignedQueryHeaders(view, query, true, storage), std::nullopt);
  EXPECT_EQ(std::count_if(view.headers.begin(), view.headers.end(),
                          [](const auto& h) { return EqualsIgnoreCase(h.first, "x-amz-meta-a"); }),
            1);
  EXPECT_OK(Authenticate(view, ExampleLookup(), options_));
  TestRequest other = r;
  other.headers.emplace_back("Content-Type", "text/html");
  view = other.View();
  std::optional<Error> conflict = PromotePresignedQueryHeaders(view, query, true, storage);
  ASSERT_TRUE(conflict.has_value());
  EXPECT_EQ(conflict->code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(Auth(other), StatusIs(ErrorCode::kInvalidArgument, HasSubstr("different values")));

  // A line break SigV2 would sign unfolded into a space cannot become a header value.
  TestRequest folded{"PUT", "/bkt/dst?x-amz-meta-a=1%0A2", {}};
  PresignV2(folded, kNow + 60);
  view = folded.View();
  conflict = PromotePresignedQueryHeaders(view, QueryOf(folded), true, storage);
  ASSERT_TRUE(conflict.has_value());
  EXPECT_EQ(conflict->code, ErrorCode::kInvalidArgument);

  // A header-signed request or a SigV4 presigned URL is not a SigV2 presigned one.
  TestRequest v4{"PUT", "/bkt/dst?X-Amz-Algorithm=AWS4-HMAC-SHA256&Signature=x&x-amz-meta-a=1", {}};
  EXPECT_FALSE(IsSigV2PresignedQuery(v4.View(), QueryOf(v4)));
  TestRequest with_header = r;
  with_header.headers.emplace_back("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:x");
  EXPECT_FALSE(IsSigV2PresignedQuery(with_header.View(), QueryOf(with_header)));
}

// The signed x-amz-content-sha256 and Content-MD5 parameters become the headers the body is
// checked against.
TEST_F(SigV2AttackTest, PresignedPayloadChecksAreKept) {
  const std::string sha(64, 'a');
  TestRequest r{"PUT", "/bkt/k?x-amz-content-sha256=" + sha + "&content-md5=1B2M2Y8AsgTpgAmY7PhCfg%3D%3D", {}};
  PresignV2(r, kNow + 60);
  HttpRequestView view = r.View();
  std::deque<std::string> storage;
  ASSERT_EQ(PromotePresignedQueryHeaders(view, QueryOf(r), true, storage), std::nullopt);
  EXPECT_EQ(view.Header("content-md5"), "1B2M2Y8AsgTpgAmY7PhCfg==");
  auto auth = Authenticate(view, ExampleLookup(), options_);
  ASSERT_OK(auth);
  EXPECT_EQ(auth->payload_mode, PayloadMode::kSignedHash);
  EXPECT_EQ(auth->payload_sha256_hex, sha);
}

// No SigV2 URL lives longer than the SigV4 limit.
TEST_F(SigV2AttackTest, PresignedLifetimeIsBounded) {
  const int64_t week = options_.max_presign_expiry.count();
  TestRequest longest{"GET", "/bkt/k", {}};
  PresignV2(longest, kNow + week);
  EXPECT_OK(Auth(longest));
  TestRequest longer{"GET", "/bkt/k", {}};
  PresignV2(longer, kNow + week + 1);
  EXPECT_THAT(Auth(longer), StatusIs(ErrorCode::kAccessDenied, HasSubstr("seconds from now")));
  options_.max_presign_expiry = std::chrono::seconds(3600);
  EXPECT_THAT(Auth(longest), StatusIs(ErrorCode::kAccessDenied));
}

// "a%26uploadId%3DU1" decodes to a value that signs like a second sub-resource: refused in both
// forms.
TEST_F(SigV2AttackTest, AmpersandInSubResourceValueRefused) {
  TestRequest ambiguous{"GET", "/bkt/k?response-content-disposition=a%26uploadId%3DU1", {}};
  TestRequest plain{"GET", "/bkt/k?response-content-disposition=a&uploadId=U1", {}};
  EXPECT_EQ(SigV2StringToSign(ambiguous.View(), QueryOf(ambiguous), "1", "", true),
            SigV2StringToSign(plain.View(), QueryOf(plain), "1", "", true));
  PresignV2(ambiguous, kNow + 60);
  EXPECT_THAT(Auth(ambiguous), StatusIs(ErrorCode::kInvalidArgument, HasSubstr("'&'")));
  PresignV2(plain, kNow + 60);
  EXPECT_OK(Auth(plain));

  const std::string date = "Tue, 14 Nov 2023 22:13:20 GMT";  // kNow
  TestRequest header{"GET", "/bkt/k?response-content-disposition=a%26uploadId%3DU1", {{"Date", date}}};
  const std::string sts = SigV2StringToSign(header.View(), QueryOf(header), date, "", false);
  header.headers.emplace_back("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:" + SigV2Signature(Secret(kSecret), sts));
  EXPECT_THAT(Auth(header), StatusIs(ErrorCode::kInvalidArgument, HasSubstr("'&'")));
  // A non-signed parameter may hold one.
  TestRequest listing{"GET", "/bkt?prefix=a%26b", {{"Date", date}}};
  const std::string listing_sts = SigV2StringToSign(listing.View(), QueryOf(listing), date, "", false);
  listing.headers.emplace_back("Authorization",
                               "AWS AKIAIOSFODNN7EXAMPLE:" + SigV2Signature(Secret(kSecret), listing_sts));
  EXPECT_OK(Auth(listing));
}

// Every query name the router dispatches on is signed, so none turns a signed request into another
// operation.
TEST_F(SigV2Test, RoutedQueryNamesAreSigned) {
  for (const char* name : {"accelerate",     "acl",
                           "analytics",      "attributes",
                           "cors",           "delete",
                           "encryption",     "intelligent-tiering",
                           "inventory",      "legal-hold",
                           "lifecycle",      "location",
                           "logging",        "metadataTable",
                           "metrics",        "notification",
                           "object-lock",    "ownershipControls",
                           "partNumber",     "policy",
                           "policyStatus",   "publicAccessBlock",
                           "renameObject",   "replication",
                           "requestPayment", "restore",
                           "retention",      "select",
                           "session",        "tagging",
                           "torrent",        "uploadId",
                           "uploads",        "versionId",
                           "versioning",     "versions",
                           "website"}) {
    TestRequest r{"GET", std::string("/b/k?") + name, {}};
    EXPECT_EQ(StringToSign(r, "D"), std::string("GET\n\n\nD\n/b/k?") + name) << name;
  }
}

}  // namespace
}  // namespace coffre::s3
