#include "coffre/s3/sigv4.h"

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/crypto/hash.h"
#include "s3/router.h"
#include "s3/sigv2.h"
#include "support/status_matchers.h"

namespace coffre::s3 {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

// The example credentials and time of the AWS S3 SigV4 documentation.
constexpr std::string_view kAccessKey = "AKIAIOSFODNN7EXAMPLE";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kAmzDate = "20130524T000000Z";
constexpr std::string_view kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr std::string_view kHost = "examplebucket.s3.amazonaws.com";

// Owns the strings an HttpRequestView points into.
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
  void Set(const std::string& name, const std::string& value) {
    for (auto& [n, v] : headers) {
      if (EqualsIgnoreCase(n, name)) {
        v = value;
        return;
      }
    }
    headers.emplace_back(name, value);
  }
  void Remove(const std::string& name) {
    std::erase_if(headers, [&](const auto& h) { return EqualsIgnoreCase(h.first, name); });
  }
};

SecretBytes Secret(std::string_view s) { return SecretBytes(AsBytes(s)); }

CredentialLookup ExampleLookup() {
  return [](std::string_view akid) -> Expected<Credential, Error> {
    if (akid == kAccessKey) {
      return Credential{"tenant-1", Secret(kSecret)};
    }
    if (akid == "AKIDDISABLED") {
      return Error(ErrorCode::kAccessDenied, "key disabled");
    }
    return Error(ErrorCode::kInvalidAccessKeyId);
  };
}

std::chrono::system_clock::time_point ExampleTime() { return ParseAmzDate(kAmzDate).value(); }

class SigV4Test : public ::testing::Test {
 protected:
  SigV4Test() : clock_(ExampleTime()) { options_.clock = &clock_; }

  Expected<AuthResult, Error> Auth(const TestRequest& r) { return Authenticate(r.View(), ExampleLookup(), options_); }

  ErrorCode AuthError(const TestRequest& r) {
    auto result = Auth(r);
    EXPECT_THAT(result, Not(IsOk()));
    return result.ok() ? ErrorCode::kInternalError : result.error().code;
  }

  std::string AuthMessage(const TestRequest& r) {
    auto result = Auth(r);
    EXPECT_THAT(result, Not(IsOk()));
    return result.ok() ? std::string() : std::string(result.error().effective_message());
  }

  FixedClock clock_;
  AuthOptions options_;
};

// Signs `r` as an SDK would (Authorization header) over `signed_headers`.
void SignHeader(TestRequest& r, const std::vector<std::string>& signed_headers, std::string_view secret = kSecret,
                std::string_view amz_date = kAmzDate, std::string_view region = "us-east-1",
                std::string_view akid = kAccessKey) {
  const std::string date(amz_date.substr(0, 8));
  const std::string scope = date + "/" + std::string(region) + "/s3/aws4_request";
  std::string payload_hash(r.View().Header("x-amz-content-sha256").value_or("UNSIGNED-PAYLOAD"));
  r.Remove("authorization");
  const std::string canonical = CanonicalRequest(r.View(), signed_headers, payload_hash, false);
  const std::string signature =
      SignHex(DeriveSigningKey(Secret(secret), date, region, "s3"), StringToSign(amz_date, scope, canonical));
  std::string list;
  for (const auto& h : signed_headers) {
    list += (list.empty() ? "" : ";") + h;
  }
  r.headers.emplace_back("Authorization", "AWS4-HMAC-SHA256 Credential=" + std::string(akid) + "/" + scope +
                                              ", SignedHeaders=" + list + ", Signature=" + signature);
}

// A GET with the standard SDK headers, signed.
TestRequest SignedGet(std::string target = "/test.txt") {
  TestRequest r;
  r.target = std::move(target);
  r.headers = {{"Host", std::string(kHost)},
               {"x-amz-date", std::string(kAmzDate)},
               {"x-amz-content-sha256", std::string(kEmptySha)}};
  SignHeader(r, {"host", "x-amz-content-sha256", "x-amz-date"});
  return r;
}

// Builds a presigned URL target for `path` (already encoded) with the given extra parameters.
std::string Presign(std::string_view path, std::string_view expires = "86400", std::string_view amz_date = kAmzDate,
                    std::string_view secret = kSecret, std::string_view extra_query = "") {
  const std::string date(amz_date.substr(0, 8));
  const std::string scope = date + "/us-east-1/s3/aws4_request";
  std::string target = std::string(path) + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" +
                       UriEncode(std::string(kAccessKey) + "/" + scope, true) + "&X-Amz-Date=" + std::string(amz_date) +
                       "&X-Amz-Expires=" + std::string(expires) + "&X-Amz-SignedHeaders=host" +
                       std::string(extra_query);
  TestRequest r;
  r.target = target;
  r.headers = {{"Host", std::string(kHost)}};
  const std::string canonical = CanonicalRequest(r.View(), {"host"}, "UNSIGNED-PAYLOAD", true);
  const std::string signature =
      SignHex(DeriveSigningKey(Secret(secret), date, "us-east-1", "s3"), StringToSign(amz_date, scope, canonical));
  return target + "&X-Amz-Signature=" + signature;
}

TestRequest PresignedGet(std::string target) {
  TestRequest r;
  r.target = std::move(target);
  r.headers = {{"Host", std::string(kHost)}};
  return r;
}

// --- The published AWS examples -----------------------------------------------------------------

TEST_F(SigV4Test, AwsExampleGetObjectWithRange) {
  TestRequest r;
  r.target = "/test.txt";
  r.headers = {
      {"Host", "examplebucket.s3.amazonaws.com"},
      {"Authorization",
       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
       "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
       "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
      {"Range", "bytes=0-9"},
      {"x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"x-amz-date", "20130524T000000Z"},
  };
  const std::string canonical =
      CanonicalRequest(r.View(), {"host", "range", "x-amz-content-sha256", "x-amz-date"}, kEmptySha, false);
  EXPECT_EQ(canonical,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(StringToSign(kAmzDate, "20130524/us-east-1/s3/aws4_request", canonical),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");

  auto result = Auth(r);
  ASSERT_OK(result);
  EXPECT_EQ(result->access_key_id, kAccessKey);
  EXPECT_EQ(result->tenant_id, "tenant-1");
  EXPECT_FALSE(result->presigned);
  EXPECT_EQ(result->payload_mode, PayloadMode::kSignedHash);
  EXPECT_EQ(result->payload_sha256_hex, kEmptySha);
  EXPECT_EQ(result->amz_date, kAmzDate);
  EXPECT_EQ(result->scope, "20130524/us-east-1/s3/aws4_request");
  EXPECT_EQ(result->seed_signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(result->signing_key.size(), 32u);
}

TEST_F(SigV4Test, AwsExamplePutObject) {
  TestRequest r;
  r.method = "PUT";
  r.target = "/test$file.text";
  r.headers = {
      {"Host", "examplebucket.s3.amazonaws.com"},
      {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
      {"Authorization",
       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
       "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
       "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"},
      {"x-amz-date", "20130524T000000Z"},
      {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
      {"x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"},
  };
  EXPECT_EQ(CanonicalRequest(r.View(), {"date", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-storage-class"},
                             "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072", false)
                .substr(0, 22),
            "PUT\n/test%24file.text\n");
  auto result = Auth(r);
  ASSERT_OK(result);
  EXPECT_EQ(result->payload_mode, PayloadMode::kSignedHash);
  EXPECT_EQ(result->payload_sha256_hex, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
}

TEST_F(SigV4Test, AwsExampleGetBucketLifecycle) {
  TestRequest r;
  r.target = "/?lifecycle";
  r.headers = {
      {"Host", "examplebucket.s3.amazonaws.com"},
      {"Authorization",
       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
       "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
       "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"},
      {"x-amz-date", "20130524T000000Z"},
      {"x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
  };
  EXPECT_EQ(CanonicalRequest(r.View(), {"host"}, kEmptySha, false).substr(0, 17), "GET\n/\nlifecycle=\n");
  auto result = Auth(r);
  ASSERT_OK(result);
}

TEST_F(SigV4Test, AwsExampleListObjects) {
  TestRequest r;
  r.target = "/?max-keys=2&prefix=J";
  r.headers = {
      {"Host", "examplebucket.s3.amazonaws.com"},
      {"Authorization",
       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
       "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
       "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"},
      {"x-amz-date", "20130524T000000Z"},
      {"x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
  };
  auto result = Auth(r);
  ASSERT_OK(result);
}

constexpr std::string_view kAwsPresignedTarget =
    "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

TEST_F(SigV4Test, AwsExamplePresignedUrl) {
  TestRequest r = PresignedGet(std::string(kAwsPresignedTarget));
  EXPECT_EQ(CanonicalRequest(r.View(), {"host"}, "UNSIGNED-PAYLOAD", true),
            "GET\n/test.txt\n"
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F"
            "aws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n"
            "host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD");
  auto result = Auth(r);
  ASSERT_OK(result);
  EXPECT_TRUE(result->presigned);
  EXPECT_EQ(result->payload_mode, PayloadMode::kUnsigned);
  EXPECT_EQ(result->tenant_id, "tenant-1");
  EXPECT_EQ(result->seed_signature, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST_F(SigV4Test, AwsExampleStreamingSeedSignature) {
  TestRequest r;
  r.method = "PUT";
  r.target = "/examplebucket/chunkObject.txt";
  r.headers = {
      {"Host", "s3.amazonaws.com"},
      {"x-amz-date", "20130524T000000Z"},
      {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
      {"Authorization",
       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
       "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
       "x-amz-decoded-content-length;x-amz-storage-class,"
       "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"},
      {"x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
      {"Content-Encoding", "aws-chunked"},
      {"x-amz-decoded-content-length", "66560"},
      {"Content-Length", "66824"},
  };
  auto result = Auth(r);
  ASSERT_OK(result);
  EXPECT_EQ(result->payload_mode, PayloadMode::kStreamingSigned);
  EXPECT_TRUE(IsStreaming(result->payload_mode));
  EXPECT_EQ(result->seed_signature, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
  const std::string a64k_sha = HexEncode(crypto::Sha256::Digest(Bytes(65536, 'a')));
  EXPECT_EQ(ChunkSignature(*result, result->seed_signature, a64k_sha),
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
}

TEST_F(SigV4Test, AwsExampleStreamingWithTrailerSeedSignature) {
  TestRequest r;
  r.method = "PUT";
  r.target = "/examplebucket/chunkObject.txt";
  r.headers = {
      {"Host", "s3.amazonaws.com"},
      {"x-amz-date", "20130524T000000Z"},
      {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
      {"Authorization",
       "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
       "SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
       "x-amz-storage-class;x-amz-trailer,"
       "Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"},
      {"x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"},
      {"Content-Encoding", "aws-chunked"},
      {"x-amz-decoded-content-length", "66560"},
      {"x-amz-trailer", "x-amz-checksum-crc32c"},
  };
  auto result = Auth(r);
  ASSERT_OK(result);
  EXPECT_EQ(result->payload_mode, PayloadMode::kStreamingSignedTrailer);
  EXPECT_EQ(result->seed_signature, "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
}

TEST(SigV4Primitives, ChunkAndTrailerSignaturesOfTheAwsExamples) {
  AuthResult auth;
  auth.amz_date = std::string(kAmzDate);
  auth.scope = "20130524/us-east-1/s3/aws4_request";
  auth.signing_key = DeriveSigningKey(Secret(kSecret), "20130524", "us-east-1", "s3");
  const std::string a64k = HexEncode(crypto::Sha256::Digest(Bytes(65536, 'a')));
  const std::string a1k = HexEncode(crypto::Sha256::Digest(Bytes(1024, 'a')));
  const std::string empty(kEmptySha);

  std::string prev = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
  prev = ChunkSignature(auth, prev, a64k);
  EXPECT_EQ(prev, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
  prev = ChunkSignature(auth, prev, a1k);
  EXPECT_EQ(prev, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497");
  prev = ChunkSignature(auth, prev, empty);
  EXPECT_EQ(prev, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9");

  prev = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
  prev = ChunkSignature(auth, prev, a64k);
  EXPECT_EQ(prev, "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2");
  prev = ChunkSignature(auth, prev, a1k);
  EXPECT_EQ(prev, "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7");
  prev = ChunkSignature(auth, prev, empty);
  EXPECT_EQ(prev, "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992");
  const std::string trailer_sha = HexEncode(crypto::Sha256::Digest(AsBytes("x-amz-checksum-crc32c:sOO8/Q==\n")));
  EXPECT_EQ(TrailerSignature(auth, prev, trailer_sha),
            "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435");
}

// --- Canonicalisation ---------------------------------------------------------------------------

TEST(CanonicalRequest, PathIsNotNormalisedButReencoded) {
  TestRequest r;
  r.target = "/bucket//a/./b/../c%2Fd/e%20f/g+h/%7e~/$";
  EXPECT_EQ(CanonicalRequest(r.View(), {}, "UNSIGNED-PAYLOAD", false),
            "GET\n/bucket//a/./b/../c%2Fd/e%20f/g%2Bh/~~/%24\n\n\n\nUNSIGNED-PAYLOAD");
}

TEST(CanonicalRequest, EmptyPathIsSlash) {
  TestRequest r;
  r.target = "?acl";
  EXPECT_EQ(CanonicalRequest(r.View(), {}, "X", false), "GET\n/\nacl=\n\n\nX");
}

TEST(CanonicalRequest, QuerySortedByNameThenValueAndReencoded) {
  TestRequest r;
  r.target = "/b?prefix=a%20b&a=2&a=1&delimiter=/&empty&star=*&tilde=%7E&plus=a+b";
  EXPECT_EQ(CanonicalRequest(r.View(), {}, "X", false),
            "GET\n/b\na=1&a=2&delimiter=%2F&empty=&plus=a%2Bb&prefix=a%20b&star=%2A&tilde=~\n\n\nX");
}

TEST(CanonicalRequest, PresignedExcludesOnlyTheSignature) {
  TestRequest r;
  r.target = "/b?X-Amz-Signature=abc&X-Amz-Date=1";
  EXPECT_EQ(CanonicalRequest(r.View(), {}, "X", true), "GET\n/b\nX-Amz-Date=1\n\n\nX");
  EXPECT_EQ(CanonicalRequest(r.View(), {}, "X", false), "GET\n/b\nX-Amz-Date=1&X-Amz-Signature=abc\n\n\nX");
}

TEST(CanonicalRequest, HeaderValuesTrimmedCollapsedAndJoined) {
  TestRequest r;
  r.headers = {{"Host", " example.com "},
               {"X-Amz-Meta-A", "  one   two\t three "},
               {"x-amz-meta-a", "four"},
               {"X-Amz-Meta-Empty", ""}};
  EXPECT_EQ(CanonicalRequest(r.View(), {"host", "x-amz-meta-a", "x-amz-meta-empty"}, "X", false),
            "GET\n/\n\nhost:example.com\nx-amz-meta-a:one two three,four\nx-amz-meta-empty:\n\n"
            "host;x-amz-meta-a;x-amz-meta-empty\nX");
}

TEST(SigV4Primitives, StreamingModesAreStreaming) {
  EXPECT_FALSE(IsStreaming(PayloadMode::kSignedHash));
  EXPECT_FALSE(IsStreaming(PayloadMode::kUnsigned));
  EXPECT_TRUE(IsStreaming(PayloadMode::kStreamingSigned));
  EXPECT_TRUE(IsStreaming(PayloadMode::kStreamingSignedTrailer));
  EXPECT_TRUE(IsStreaming(PayloadMode::kStreamingUnsignedTrailer));
}

// --- Header auth: what clients send ------------------------------------------------------------

TEST_F(SigV4Test, SignedRequestAuthenticates) {
  auto result = Auth(SignedGet());
  ASSERT_OK(result);
  EXPECT_EQ(result->payload_mode, PayloadMode::kSignedHash);
}

TEST_F(SigV4Test, AuthorizationSpacingVariantsAreTolerated) {
  TestRequest r = SignedGet();
  const std::string header(r.View().Header("authorization").value());
  const std::string params = header.substr(std::string("AWS4-HMAC-SHA256 ").size());
  std::string compact = params;
  for (size_t pos; (pos = compact.find(", ")) != std::string::npos;) {
    compact.erase(pos + 1, 1);
  }
  std::string spaced = compact;
  for (size_t pos = 0; (pos = spaced.find(',', pos)) != std::string::npos; pos += 4) {
    spaced.replace(pos, 1, " ,  ");
  }
  for (const std::string& variant : {"AWS4-HMAC-SHA256 " + compact, "AWS4-HMAC-SHA256   " + spaced + " ",
                                     "  AWS4-HMAC-SHA256\t" + params, "AWS4-HMAC-SHA256 " + params + ","}) {
    r.Set("Authorization", variant);
    auto result = Auth(r);
    EXPECT_OK(result) << variant;
  }
}

TEST_F(SigV4Test, ComponentsInAnyOrder) {
  TestRequest r = SignedGet();
  const std::string header(r.View().Header("authorization").value());
  const size_t cred = header.find("Credential=");
  const size_t sh = header.find("SignedHeaders=");
  const size_t sig = header.find("Signature=");
  const std::string credential = header.substr(cred, sh - cred - 2);
  const std::string signed_headers = header.substr(sh, sig - sh - 2);
  const std::string signature = header.substr(sig);
  r.Set("Authorization", "AWS4-HMAC-SHA256 " + signature + ", " + credential + ", " + signed_headers);
  EXPECT_OK(Auth(r));
}

TEST_F(SigV4Test, UppercaseSignatureHexAccepted) {
  TestRequest r = SignedGet();
  std::string header(r.View().Header("authorization").value());
  const size_t sig = header.find("Signature=") + 10;
  for (size_t i = sig; i < header.size(); ++i) {
    header[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(header[i])));
  }
  r.Set("Authorization", header);
  EXPECT_OK(Auth(r));
}

TEST_F(SigV4Test, DateHeaderFallbackWhenNoXAmzDate) {
  TestRequest r;
  r.target = "/test.txt";
  r.headers = {{"Host", std::string(kHost)},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-content-sha256", "UNSIGNED-PAYLOAD"}};
  SignHeader(r, {"date", "host", "x-amz-content-sha256"});
  auto result = Auth(r);
  ASSERT_OK(result);
  EXPECT_EQ(result->amz_date, kAmzDate);
  EXPECT_EQ(result->payload_mode, PayloadMode::kUnsigned);
}

TEST_F(SigV4Test, PayloadModesFromContentSha256) {
  const std::pair<std::string, PayloadMode> cases[] = {
      {"UNSIGNED-PAYLOAD", PayloadMode::kUnsigned},
      {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", PayloadMode::kStreamingSigned},
      {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", PayloadMode::kStreamingSignedTrailer},
      {"STREAMING-UNSIGNED-PAYLOAD-TRAILER", PayloadMode::kStreamingUnsignedTrailer},
      {"44CE7DD67C959E0D3524FFAC1771DFBBA87D2B6B4B4E99E42034A8B803F8B072", PayloadMode::kSignedHash},
  };
  for (const auto& [value, mode] : cases) {
    TestRequest r;
    r.method = "PUT";
    r.target = "/b/k";
    r.headers = {{"Host", std::string(kHost)}, {"x-amz-date", std::string(kAmzDate)}, {"x-amz-content-sha256", value}};
    SignHeader(r, {"host", "x-amz-content-sha256", "x-amz-date"});
    auto result = Auth(r);
    ASSERT_OK(result) << value;
    EXPECT_EQ(result->payload_mode, mode) << value;
    if (mode == PayloadMode::kSignedHash) {
      EXPECT_EQ(result->payload_sha256_hex, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    } else {
      EXPECT_TRUE(result->payload_sha256_hex.empty());
    }
  }
}

TEST_F(SigV4Test, ClientThatLeftPathCharactersUnencodedIsAccepted) {
  // A client that signs its path exactly as sent, with '!' and '$' unencoded.
  TestRequest r;
  r.target = "/bucket/a!b$c";
  r.headers = {{"Host", std::string(kHost)},
               {"x-amz-date", std::string(kAmzDate)},
               {"x-amz-content-sha256", std::string(kEmptySha)}};
  const std::string canonical =
      "GET\n/bucket/a!b$c\n\nhost:" + std::string(kHost) + "\nx-amz-content-sha256:" + std::string(kEmptySha) +
      "\nx-amz-date:" + std::string(kAmzDate) + "\n\nhost;x-amz-content-sha256;x-amz-date\n" + std::string(kEmptySha);
  const std::string signature = SignHex(DeriveSigningKey(Secret(kSecret), "20130524", "us-east-1", "s3"),
                                        StringToSign(kAmzDate, "20130524/us-east-1/s3/aws4_request", canonical));
  r.headers.emplace_back("Authorization",
                         "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" +
                             signature);
  EXPECT_OK(Auth(r));
  // And the same request encoded the SigV4 way also passes (normalised canonical URI).
  TestRequest encoded = SignedGet("/bucket/a%21b%24c");
  EXPECT_OK(Auth(encoded));
  encoded.target = "/bucket/a!b$c";  // sent unencoded, signed encoded: S3 normalises too
  EXPECT_OK(Auth(encoded));
}

TEST_F(SigV4Test, RegionCheckedWhenConfigured) {
  options_.region = "us-east-1";
  EXPECT_OK(Auth(SignedGet()));
  options_.region = "eu-west-3";
  EXPECT_EQ(AuthError(SignedGet()), ErrorCode::kAuthorizationHeaderMalformed);
  EXPECT_NE(AuthMessage(SignedGet()).find("the region 'us-east-1' is wrong; expecting 'eu-west-3'"), std::string::npos);
  // The answer names the region to sign for (<Region>), as AWS's does.
  auto wrong = Auth(SignedGet());
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().region, "eu-west-3");
}

TEST_F(SigV4Test, AnyRegionAcceptedWhenNotConfigured) {
  TestRequest r;
  r.target = "/test.txt";
  r.headers = {{"Host", std::string(kHost)},
               {"x-amz-date", std::string(kAmzDate)},
               {"x-amz-content-sha256", std::string(kEmptySha)}};
  SignHeader(r, {"host", "x-amz-content-sha256", "x-amz-date"}, kSecret, kAmzDate, "fr-par");
  auto result = Auth(r);
  ASSERT_OK(result);
  EXPECT_EQ(result->scope, "20130524/fr-par/s3/aws4_request");
}

TEST_F(SigV4Test, SkewWithinLimitAccepted) {
  clock_.Set(ExampleTime() + std::chrono::minutes(14));
  EXPECT_OK(Auth(SignedGet()));
  clock_.Set(ExampleTime() - std::chrono::minutes(14));
  EXPECT_OK(Auth(SignedGet()));
  clock_.Set(ExampleTime() + std::chrono::minutes(15));
  EXPECT_OK(Auth(SignedGet()));
}

// --- Header auth: attacks and malformed requests -------------------------------------------------

TEST_F(SigV4Test, WrongSecretIsSignatureDoesNotMatch) {
  TestRequest r = SignedGet();
  SignHeader(r, {"host", "x-amz-content-sha256", "x-amz-date"}, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ");
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
  // As AWS, the error carries what the server signed (for the client to compare), not a secret.
  auto mismatch = Auth(r);
  ASSERT_THAT(mismatch, Not(IsOk()));
  EXPECT_EQ(mismatch.error().access_key_id, kAccessKey);
  EXPECT_TRUE(mismatch.error().string_to_sign.starts_with("AWS4-HMAC-SHA256\n20130524T000000Z\n"));
  EXPECT_TRUE(mismatch.error().canonical_request.starts_with("GET\n"));
  EXPECT_EQ(mismatch.error().signature_provided.size(), 64U);
}

// Signing keys are kept per thread between requests: a secret changed under the same access key
// must be used at once, and the old one refused.
TEST_F(SigV4Test, ChangedSecretIsUsedAtOnceDespiteTheKeptSigningKey) {
  std::string current_secret(kSecret);
  const CredentialLookup lookup = [&](std::string_view) -> Expected<Credential, Error> {
    return Credential{"tenant-1", Secret(current_secret)};
  };
  const std::string new_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYNEWSECRET";
  TestRequest with_old = SignedGet();
  TestRequest with_new = SignedGet();
  SignHeader(with_new, {"host", "x-amz-content-sha256", "x-amz-date"}, new_secret);

  ASSERT_OK(Authenticate(with_old.View(), lookup, options_));
  ASSERT_OK(Authenticate(with_old.View(), lookup, options_));  // from the kept key
  current_secret = new_secret;
  auto old_refused = Authenticate(with_old.View(), lookup, options_);
  ASSERT_THAT(old_refused, StatusIs(ErrorCode::kSignatureDoesNotMatch));
  EXPECT_OK(Authenticate(with_new.View(), lookup, options_));
  current_secret = kSecret;
  EXPECT_OK(Authenticate(with_old.View(), lookup, options_));
  EXPECT_THAT(Authenticate(with_new.View(), lookup, options_), Not(IsOk()));
}

// Requests of other days and regions under one key each get their own signing key.
TEST_F(SigV4Test, EachDayAndRegionHasItsOwnSigningKey) {
  for (int round = 0; round < 2; ++round) {
    for (std::string_view region : {"us-east-1", "eu-west-3"}) {
      for (std::string_view amz_date : {"20130524T000000Z", "20130525T000000Z"}) {
        clock_.Set(ParseAmzDate(amz_date).value());
        TestRequest r = SignedGet();
        r.Set("x-amz-date", std::string(amz_date));
        SignHeader(r, {"host", "x-amz-content-sha256", "x-amz-date"}, kSecret, amz_date, region);
        AuthOptions options = options_;
        options.region = std::string(region);
        auto result = Authenticate(r.View(), ExampleLookup(), options);
        EXPECT_OK(result) << region << " " << amz_date;
        // The same request under the other region's signing key would not match.
        TestRequest other = r;
        SignHeader(other, {"host", "x-amz-content-sha256", "x-amz-date"}, kSecret, amz_date,
                   region == "us-east-1" ? "eu-west-3" : "us-east-1");
        EXPECT_THAT(Authenticate(other.View(), ExampleLookup(), options), Not(IsOk()));
      }
    }
  }
}

TEST_F(SigV4Test, TamperedSignedHeaderIsRejected) {
  TestRequest r;
  r.target = "/test.txt";
  r.headers = {{"Host", std::string(kHost)},
               {"Range", "bytes=0-9"},
               {"x-amz-date", std::string(kAmzDate)},
               {"x-amz-content-sha256", std::string(kEmptySha)}};
  SignHeader(r, {"host", "range", "x-amz-content-sha256", "x-amz-date"});
  ASSERT_OK(Auth(r));
  r.Set("Range", "bytes=0-99");
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
  r.Set("Range", "bytes=0-9");
  r.Set("Host", "otherbucket.s3.amazonaws.com");
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
}

TEST_F(SigV4Test, TamperedPathIsRejected) {
  TestRequest r = SignedGet("/bucket/key");
  r.target = "/bucket/key2";
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
  r.target = "/bucket/Key";
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
  r.target = "/bucket%2Fkey";
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
}

TEST_F(SigV4Test, TamperedQueryIsRejected) {
  TestRequest r = SignedGet("/bucket?list-type=2&max-keys=2&prefix=J");
  ASSERT_OK(Auth(r));
  r.target = "/bucket?list-type=2&max-keys=1000&prefix=J";
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
  r.target = "/bucket?list-type=2&max-keys=2&prefix=J&delete";
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
  r.target = "/bucket?list-type=2&max-keys=2";
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
}

TEST_F(SigV4Test, TamperedMethodIsRejected) {
  TestRequest r = SignedGet();
  r.method = "DELETE";
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
}

TEST_F(SigV4Test, TamperedContentSha256IsRejected) {
  TestRequest r = SignedGet();
  r.Set("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
}

TEST_F(SigV4Test, RemovedSignedHeaderIsRejected) {
  TestRequest r;
  r.target = "/test.txt";
  r.headers = {{"Host", std::string(kHost)},
               {"Range", "bytes=0-9"},
               {"x-amz-date", std::string(kAmzDate)},
               {"x-amz-content-sha256", std::string(kEmptySha)}};
  SignHeader(r, {"host", "range", "x-amz-content-sha256", "x-amz-date"});
  r.Remove("Range");
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
}

TEST_F(SigV4Test, AddedDuplicateOfSignedHeaderIsRejected) {
  TestRequest r = SignedGet();
  r.headers.emplace_back("Host", "evil.example");
  EXPECT_EQ(AuthError(r), ErrorCode::kSignatureDoesNotMatch);
}

TEST_F(SigV4Test, HostMustBeSigned) {
  TestRequest r;
  r.target = "/test.txt";
  r.headers = {{"Host", std::string(kHost)},
               {"x-amz-date", std::string(kAmzDate)},
               {"x-amz-content-sha256", std::string(kEmptySha)}};
  SignHeader(r, {"x-amz-content-sha256", "x-amz-date"});
  EXPECT_EQ(AuthError(r), ErrorCode::kAuthorizationHeaderMalformed);
}

TEST_F(SigV4Test, UnsignedAmzHeaderIsRejected) {
  TestRequest r = SignedGet("/bucket/key");
  r.headers.emplace_back("x-amz-copy-source", "/otherbucket/secret");
  EXPECT_EQ(AuthError(r), ErrorCode::kAccessDenied);
  EXPECT_NE(AuthMessage(r).find("not signed: x-amz-copy-source"), std::string::npos);
}

TEST_F(SigV4Test, UnknownAccessKey) {
  TestRequest r = SignedGet();
  SignHeader(r, {"host", "x-amz-content-sha256", "x-amz-date"}, kSecret, kAmzDate, "us-east-1", "AKIDUNKNOWN");
  EXPECT_EQ(AuthError(r), ErrorCode::kInvalidAccessKeyId);
}

TEST_F(SigV4Test, DisabledAccessKeyPropagatesLookupError) {
  TestRequest r = SignedGet();
  SignHeader(r, {"host", "x-amz-content-sha256", "x-amz-date"}, kSecret, kAmzDate, "us-east-1", "AKIDDISABLED");
  EXPECT_EQ(AuthError(r), ErrorCode::kAccessDenied);
  EXPECT_EQ(AuthMessage(r), "key disabled");
}

TEST_F(SigV4Test, SkewBeyondFifteenMinutes) {
  clock_.Set(ExampleTime() + std::chrono::minutes(15) + std::chrono::seconds(1));
  EXPECT_EQ(AuthError(SignedGet()), ErrorCode::kRequestTimeTooSkewed);
  clock_.Set(ExampleTime() - std::chrono::minutes(16));
  EXPECT_EQ(AuthError(SignedGet()), ErrorCode::kRequestTimeTooSkewed);
}

TEST_F(SigV4Test, MaxSkewIsConfigurable) {
  options_.max_skew = std::chrono::seconds(60);
  clock_.Set(ExampleTime() + std::chrono::seconds(61));
  EXPECT_EQ(AuthError(SignedGet()), ErrorCode::kRequestTimeTooSkewed);
}

TEST_F(SigV4Test, MissingOrInvalidDate) {
  TestRequest r = SignedGet();
  r.Remove("x-amz-date");
  EXPECT_EQ(AuthError(r), ErrorCode::kAccessDenied);
  r.Set("x-amz-date", "2013-05-24T00:00:00Z");
  EXPECT_EQ(AuthError(r), ErrorCode::kAccessDenied);
  r.Set("x-amz-date", "20131324T000000Z");
  EXPECT_EQ(AuthError(r), ErrorCode::kAccessDenied);
}

TEST_F(SigV4Test, CredentialDateMustMatchRequestDate) {
  TestRequest r;
  r.target = "/test.txt";
  r.headers = {{"Host", std::string(kHost)},
               {"x-amz-date", "20130524T235959Z"},
               {"x-amz-content-sha256", std::string(kEmptySha)}};
  clock_.Set(ParseAmzDate("20130524T235959Z").value());
  SignHeader(r, {"host", "x-amz-content-sha256", "x-amz-date"}, kSecret, "20130524T235959Z");
  ASSERT_OK(Auth(r));
  std::string header(r.View().Header("authorization").value());
  header.replace(header.find("/20130524/"), 10, "/20130525/");
  r.Set("Authorization", header);
  EXPECT_EQ(AuthError(r), ErrorCode::kAuthorizationHeaderMalformed);
  EXPECT_NE(AuthMessage(r).find("Date is not the same as X-Amz-Date"), std::string::npos);
}

TEST_F(SigV4Test, MissingContentSha256) {
  TestRequest r;
  r.target = "/test.txt";
  r.headers = {{"Host", std::string(kHost)}, {"x-amz-date", std::string(kAmzDate)}};
  SignHeader(r, {"host", "x-amz-date"});
  EXPECT_EQ(AuthError(r), ErrorCode::kInvalidRequest);
  EXPECT_EQ(AuthMessage(r), "Missing required header for this request: x-amz-content-sha256");
}

TEST_F(SigV4Test, InvalidContentSha256) {
  for (const char* value : {"abc", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "unsigned-payload",
                            "zzce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072", ""}) {
    TestRequest r;
    r.target = "/test.txt";
    r.headers = {{"Host", std::string(kHost)}, {"x-amz-date", std::string(kAmzDate)}, {"x-amz-content-sha256", value}};
    SignHeader(r, {"host", "x-amz-content-sha256", "x-amz-date"});
    EXPECT_EQ(AuthError(r), ErrorCode::kInvalidArgument) << value;
  }
}

TEST_F(SigV4Test, AnonymousRequestDenied) {
  TestRequest r;
  r.target = "/bucket/key";
  r.headers = {{"Host", std::string(kHost)}};
  EXPECT_EQ(AuthError(r), ErrorCode::kAccessDenied);
}

// With SigV2 switched off (s3/sigv2.h; sigv2_test.cc checks it when on).
TEST_F(SigV4Test, SignatureV2RefusedWhenOff) {
  options_.sigv2 = false;
  TestRequest r;
  r.target = "/bucket/key";
  r.headers = {{"Host", std::string(kHost)},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"Authorization", "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg="}};
  EXPECT_EQ(AuthError(r), ErrorCode::kInvalidRequest);
  EXPECT_NE(AuthMessage(r).find("Please use AWS4-HMAC-SHA256"), std::string::npos);

  TestRequest presigned_v2;
  presigned_v2.target = "/bucket/key?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1369353600&Signature=abc%3D";
  presigned_v2.headers = {{"Host", std::string(kHost)}};
  EXPECT_EQ(AuthError(presigned_v2), ErrorCode::kInvalidRequest);
}

// AWS's SDKs hoist x-amz-* headers into a presigned URL's query, where SigV4 signs them as query
// parameters and S3 acts on them as headers: promoted before routing, ?x-amz-copy-source makes the
// URL the CopyObject it signs, not a PutObject of any body; the promoted header counts as signed.
TEST_F(SigV4Test, PresignedHoistedHeadersArePromoted) {
  const std::string scope = "20130524/us-east-1/s3/aws4_request";
  TestRequest r;
  r.method = "PUT";
  r.target = "/dst?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" +
             UriEncode(std::string(kAccessKey) + "/" + scope, true) + "&X-Amz-Date=" + std::string(kAmzDate) +
             "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&x-amz-copy-source=%2Fexamplebucket%2Fsrc&x-amz-meta-a=1";
  r.headers = {{"Host", std::string(kHost)}};
  const std::string canonical = CanonicalRequest(r.View(), {"host"}, "UNSIGNED-PAYLOAD", true);
  r.target += "&X-Amz-Signature=" + SignHex(DeriveSigningKey(Secret(kSecret), "20130524", "us-east-1", "s3"),
                                            StringToSign(kAmzDate, scope, canonical));
  const http::QueryParams query = http::ParseQuery(http::SplitTarget(r.target).query).value();
  HttpRequestView view = r.View();
  std::deque<std::string> storage;
  ASSERT_EQ(PromotePresignedQueryHeaders(view, query, /*sigv2=*/false, storage), std::nullopt);
  EXPECT_EQ(view.Header("x-amz-copy-source"), "/examplebucket/src");
  EXPECT_EQ(view.Header("x-amz-meta-a"), "1");
  EXPECT_EQ(view.Header("x-amz-date"), std::nullopt);  // its own parameters stay parameters
  auto route = RouteRequest(view, RouterOptions{"s3.amazonaws.com"});
  ASSERT_OK(route);
  EXPECT_EQ(route->op, Operation::kCopyObject);
  EXPECT_OK(Authenticate(view, ExampleLookup(), options_));
  EXPECT_OK(Auth(r));

  // A header naming another source is refused, promoted or not; an unsigned one still is.
  TestRequest other = r;
  other.headers.emplace_back("x-amz-copy-source", "/examplebucket/secret");
  view = other.View();
  std::optional<Error> conflict = PromotePresignedQueryHeaders(view, query, false, storage);
  ASSERT_TRUE(conflict.has_value());
  EXPECT_EQ(conflict->code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(AuthError(other), ErrorCode::kAccessDenied);
  // A header-signed request's x-amz-* parameters are not headers.
  TestRequest header_signed = SignedGet("/test.txt?x-amz-meta-a=1");
  view = header_signed.View();
  ASSERT_EQ(PromotePresignedQueryHeaders(view, http::ParseQuery("x-amz-meta-a=1").value(), false, storage),
            std::nullopt);
  EXPECT_EQ(view.Header("x-amz-meta-a"), std::nullopt);
}

// Off, SigV2's query parameter names are ordinary parameters of a header-signed SigV4 request
// (covered by its signature), not a second authentication mechanism.
TEST_F(SigV4Test, SignatureV2QueryNamesAreOrdinaryParametersWhenOff) {
  options_.sigv2 = false;
  EXPECT_OK(Auth(SignedGet("/test.txt?Signature=x&AWSAccessKeyId=y")));
  options_.sigv2 = true;
  EXPECT_EQ(AuthError(SignedGet("/test.txt?Signature=x&AWSAccessKeyId=y")), ErrorCode::kInvalidArgument);
}

TEST_F(SigV4Test, OtherSchemesRefused) {
  for (const char* value : {"Bearer abc", "AWS4-ECDSA-P256-SHA256 Credential=x", "", "Basic dXNlcjpwYXNz"}) {
    TestRequest r = SignedGet();
    r.Set("Authorization", value);
    EXPECT_EQ(AuthError(r), ErrorCode::kInvalidRequest) << value;
  }
}

TEST_F(SigV4Test, MalformedAuthorizationVariants) {
  const std::string cred = "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request";
  const std::string sh = "SignedHeaders=host;x-amz-content-sha256;x-amz-date";
  const std::string sig = "Signature=" + std::string(64, 'a');
  const std::string malformed[] = {
      "AWS4-HMAC-SHA256",
      "AWS4-HMAC-SHA256 ",
      "AWS4-HMAC-SHA256Credential=x",
      "AWS4-HMAC-SHA256 " + cred + ", " + sh,                             // no Signature
      "AWS4-HMAC-SHA256 " + cred + ", " + sig,                            // no SignedHeaders
      "AWS4-HMAC-SHA256 " + sh + ", " + sig,                              // no Credential
      "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig + ", " + sig,   // duplicate
      "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig + ", Extra=1",  // unknown component
      "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature",             // no '='
      "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=abc",         // short signature
      "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + std::string(64, 'g'),
      "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=, " + sig,
      "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;;x-amz-date, " + sig,
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3, " + sh + ", " + sig,
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request/x, " + sh + ", " + sig,
      "AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/s3/aws4_request, " + sh + ", " + sig,
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/2013052/us-east-1/s3/aws4_request, " + sh + ", " + sig,
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/2013O524/us-east-1/s3/aws4_request, " + sh + ", " + sig,
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524//s3/aws4_request, " + sh + ", " + sig,
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/ec2/aws4_request, " + sh + ", " + sig,
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws5_request, " + sh + ", " + sig,
      "AWS4-HMAC-SHA256 credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " + sh + ", " + sig,
  };
  for (const std::string& value : malformed) {
    TestRequest r = SignedGet();
    r.Set("Authorization", value);
    EXPECT_EQ(AuthError(r), ErrorCode::kAuthorizationHeaderMalformed) << value;
  }
}

TEST_F(SigV4Test, ServiceAndTerminalMessagesFollowS3) {
  TestRequest r = SignedGet();
  std::string header(r.View().Header("authorization").value());
  header.replace(header.find("/s3/"), 4, "/s4/");
  r.Set("Authorization", header);
  EXPECT_NE(AuthMessage(r).find("incorrect service \"s4\""), std::string::npos);
}

TEST_F(SigV4Test, SessionTokenRefused) {
  TestRequest r;
  r.target = "/test.txt";
  r.headers = {{"Host", std::string(kHost)},
               {"x-amz-date", std::string(kAmzDate)},
               {"x-amz-content-sha256", std::string(kEmptySha)},
               {"x-amz-security-token", "FQoGZXIvYXdzE"}};
  SignHeader(r, {"host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"});
  EXPECT_EQ(AuthError(r), ErrorCode::kInvalidAccessKeyId);
}

TEST_F(SigV4Test, HeaderAndQueryAuthTogetherRefused) {
  TestRequest r = SignedGet(Presign("/test.txt"));
  EXPECT_EQ(AuthError(r), ErrorCode::kInvalidArgument);
}

TEST_F(SigV4Test, MalformedUriRefused) {
  TestRequest r = SignedGet("/bucket/a%zz");
  EXPECT_EQ(AuthError(r), ErrorCode::kInvalidRequest);
  r = SignedGet("/bucket?prefix=%g1");
  EXPECT_EQ(AuthError(r), ErrorCode::kInvalidRequest);
}

// --- Presigned URLs -------------------------------------------------------------------------------

TEST_F(SigV4Test, PresignedGeneratedUrlAuthenticates) {
  auto result = Auth(PresignedGet(Presign("/bucket/a%20b")));
  ASSERT_OK(result);
  EXPECT_TRUE(result->presigned);
  EXPECT_EQ(result->payload_mode, PayloadMode::kUnsigned);
}

TEST_F(SigV4Test, PresignedValidUntilExpiry) {
  clock_.Set(ExampleTime() + std::chrono::seconds(86400));
  EXPECT_OK(Auth(PresignedGet(std::string(kAwsPresignedTarget))));
}

TEST_F(SigV4Test, PresignedExpired) {
  clock_.Set(ExampleTime() + std::chrono::seconds(86401));
  TestRequest r = PresignedGet(std::string(kAwsPresignedTarget));
  EXPECT_EQ(AuthError(r), ErrorCode::kAccessDenied);
  EXPECT_EQ(AuthMessage(r), "Request has expired");
}

TEST_F(SigV4Test, PresignedFromTheFutureBeyondSkew) {
  clock_.Set(ExampleTime() - std::chrono::minutes(16));
  EXPECT_EQ(AuthError(PresignedGet(std::string(kAwsPresignedTarget))), ErrorCode::kRequestTimeTooSkewed);
  clock_.Set(ExampleTime() - std::chrono::minutes(14));
  EXPECT_OK(Auth(PresignedGet(std::string(kAwsPresignedTarget))));
}

TEST_F(SigV4Test, PresignedExpiresBounds) {
  EXPECT_OK(Auth(PresignedGet(Presign("/k", "604800"))));
  EXPECT_OK(Auth(PresignedGet(Presign("/k", "1"))));
  for (const char* expires : {"604801", "0", "-1", "abc", "", "99999999999999999999999"}) {
    EXPECT_EQ(AuthError(PresignedGet(Presign("/k", expires))), ErrorCode::kAuthorizationQueryParametersError)
        << expires;
  }
}

TEST_F(SigV4Test, PresignedMissingParameters) {
  const std::string full(kAwsPresignedTarget);
  for (const char* param :
       {"X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"}) {
    std::string target = full;
    const size_t start = target.find(std::string("&") + param);
    ASSERT_NE(start, std::string::npos);
    const size_t end = target.find('&', start + 1);
    target.erase(start, end == std::string::npos ? std::string::npos : end - start);
    EXPECT_EQ(AuthError(PresignedGet(target)), ErrorCode::kAuthorizationQueryParametersError) << param;
  }
}

TEST_F(SigV4Test, PresignedWrongAlgorithm) {
  std::string target(kAwsPresignedTarget);
  target.replace(target.find("AWS4-HMAC-SHA256"), 16, "AWS4-HMAC-SHA512");
  EXPECT_EQ(AuthError(PresignedGet(target)), ErrorCode::kAuthorizationQueryParametersError);
}

TEST_F(SigV4Test, PresignedBadDateOrCredential) {
  std::string target(kAwsPresignedTarget);
  target.replace(target.find("X-Amz-Date=20130524T000000Z"), 27, "X-Amz-Date=20130524");
  EXPECT_EQ(AuthError(PresignedGet(target)), ErrorCode::kAuthorizationQueryParametersError);
  target = std::string(kAwsPresignedTarget);
  target.replace(target.find("%2Fs3%2F"), 8, "%2Fs4%2F");
  EXPECT_EQ(AuthError(PresignedGet(target)), ErrorCode::kAuthorizationQueryParametersError);
  target = std::string(kAwsPresignedTarget);
  target.replace(target.find("X-Amz-Date=20130524T000000Z"), 27, "X-Amz-Date=20130525T000000Z");
  clock_.Set(ExampleTime() + std::chrono::hours(24));
  EXPECT_EQ(AuthError(PresignedGet(target)), ErrorCode::kAuthorizationQueryParametersError);
}

TEST_F(SigV4Test, PresignedRegionChecked) {
  options_.region = "eu-west-3";
  TestRequest r = PresignedGet(std::string(kAwsPresignedTarget));
  EXPECT_EQ(AuthError(r), ErrorCode::kAuthorizationQueryParametersError);
  EXPECT_NE(AuthMessage(r).find("the region 'us-east-1' is wrong; expecting 'eu-west-3'"), std::string::npos);
}

TEST_F(SigV4Test, PresignedTampered) {
  std::string target(kAwsPresignedTarget);
  target.replace(target.find("/test.txt"), 9, "/test.txu");
  EXPECT_EQ(AuthError(PresignedGet(target)), ErrorCode::kSignatureDoesNotMatch);

  target = std::string(kAwsPresignedTarget);
  target.replace(target.find("X-Amz-Expires=86400"), 19, "X-Amz-Expires=86399");
  EXPECT_EQ(AuthError(PresignedGet(target)), ErrorCode::kSignatureDoesNotMatch);

  target = std::string(kAwsPresignedTarget) + "&response-content-type=text%2Fhtml";
  EXPECT_EQ(AuthError(PresignedGet(target)), ErrorCode::kSignatureDoesNotMatch);

  TestRequest other_host = PresignedGet(std::string(kAwsPresignedTarget));
  other_host.Set("Host", "otherbucket.s3.amazonaws.com");
  EXPECT_EQ(AuthError(other_host), ErrorCode::kSignatureDoesNotMatch);

  TestRequest other_method = PresignedGet(std::string(kAwsPresignedTarget));
  other_method.method = "PUT";
  EXPECT_EQ(AuthError(other_method), ErrorCode::kSignatureDoesNotMatch);
}

TEST_F(SigV4Test, PresignedWrongSecret) {
  EXPECT_EQ(AuthError(PresignedGet(Presign("/k", "3600", kAmzDate, "not-the-secret"))),
            ErrorCode::kSignatureDoesNotMatch);
}

TEST_F(SigV4Test, PresignedUnsignedAmzHeaderRejected) {
  TestRequest r = PresignedGet(Presign("/bucket/key"));
  r.headers.emplace_back("x-amz-copy-source", "/other/key");
  EXPECT_EQ(AuthError(r), ErrorCode::kAccessDenied);
}

TEST_F(SigV4Test, PresignedSessionTokenRefused) {
  EXPECT_EQ(AuthError(PresignedGet(Presign("/k", "3600", kAmzDate, kSecret, "&X-Amz-Security-Token=abc"))),
            ErrorCode::kInvalidAccessKeyId);
}

TEST_F(SigV4Test, PresignedExtraQueryParametersAreSigned) {
  auto result = Auth(PresignedGet(Presign("/k", "3600", kAmzDate, kSecret, "&response-content-type=text%2Fplain")));
  EXPECT_OK(result);
}

TEST_F(SigV4Test, PresignedDuplicateAuthParameterRefused) {
  EXPECT_EQ(AuthError(PresignedGet(std::string(kAwsPresignedTarget) + "&X-Amz-Expires=1")),
            ErrorCode::kAuthorizationQueryParametersError);
}

TEST_F(SigV4Test, PresignedUnknownKey) {
  std::string target(kAwsPresignedTarget);
  target.replace(target.find("AKIAIOSFODNN7EXAMPLE"), 20, "AKIAIOSFODNN7EXAMPLF");
  EXPECT_EQ(AuthError(PresignedGet(target)), ErrorCode::kInvalidAccessKeyId);
}

TEST(SigV4Primitives, DeriveSigningKeyMatchesAwsGeneralExample) {
  // From the AWS General Reference "Examples of how to derive a signing key for Signature Version 4".
  const SecretBytes key =
      DeriveSigningKey(Secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "20120215", "us-east-1", "iam");
  EXPECT_EQ(HexEncode(key.Reveal()), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

}  // namespace
}  // namespace coffre::s3
