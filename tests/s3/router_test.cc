#include "s3/router.h"

#include <gtest/gtest.h>

#include "coffre/s3/bucket_name.h"
#include "support/status_matchers.h"

namespace coffre::s3 {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

struct Req {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers = {{"Host", "127.0.0.1:9000"}};

  HttpRequestView View() const {
    HttpRequestView v;
    v.method = method;
    v.target = target;
    for (const auto& [k, val] : headers) v.headers.emplace_back(k, val);
    return v;
  }
};

Expected<Route, Error> RouteOf(const Req& r) { return RouteRequest(r.View(), RouterOptions{"s3.example.fr"}); }

Operation OpOf(const std::string& method, const std::string& target,
               std::vector<std::pair<std::string, std::string>> extra = {}) {
  Req r{method, target};
  for (auto& h : extra) r.headers.push_back(h);
  auto route = RouteOf(r);
  EXPECT_OK(route) << method << " " << target;
  return route.ok() ? route->op : Operation::kListBuckets;
}

ErrorCode ErrorOf(const std::string& method, const std::string& target) {
  auto route = RouteOf(Req{method, target});
  EXPECT_THAT(route, Not(IsOk())) << method << " " << target;
  return route.ok() ? ErrorCode::kInternalError : route.error().code;
}

TEST(Router, BucketOperations) {
  EXPECT_EQ(OpOf("GET", "/"), Operation::kListBuckets);
  EXPECT_EQ(OpOf("PUT", "/bucket"), Operation::kCreateBucket);
  EXPECT_EQ(OpOf("HEAD", "/bucket"), Operation::kHeadBucket);
  EXPECT_EQ(OpOf("DELETE", "/bucket/"), Operation::kDeleteBucket);
  EXPECT_EQ(OpOf("GET", "/bucket?location"), Operation::kGetBucketLocation);
  EXPECT_EQ(OpOf("GET", "/bucket?acl"), Operation::kGetBucketAcl);
  EXPECT_EQ(OpOf("GET", "/bucket?versioning"), Operation::kGetBucketVersioning);
  EXPECT_EQ(OpOf("GET", "/bucket?versions&prefix=a"), Operation::kListObjectVersions);
  EXPECT_EQ(OpOf("GET", "/bucket?list-type=2&prefix=a%2F"), Operation::kListObjectsV2);
  EXPECT_EQ(OpOf("GET", "/bucket?prefix=a"), Operation::kListObjects);
  EXPECT_EQ(OpOf("GET", "/bucket?uploads"), Operation::kListMultipartUploads);
  EXPECT_EQ(OpOf("POST", "/bucket?delete"), Operation::kDeleteObjects);
}

TEST(Router, ObjectOperations) {
  EXPECT_EQ(OpOf("PUT", "/b-1/k"), Operation::kPutObject);
  EXPECT_EQ(OpOf("PUT", "/b-1/k", {{"x-amz-copy-source", "/b-1/src"}}), Operation::kCopyObject);
  EXPECT_EQ(OpOf("GET", "/b-1/k"), Operation::kGetObject);
  EXPECT_EQ(OpOf("GET", "/b-1/k?versionId=null"), Operation::kGetObject);
  // Whether a version id can be is the handler's to say.
  EXPECT_EQ(OpOf("GET", "/b-1/k?versionId=3HL4kqtJlcpXroDTDmJ"), Operation::kGetObject);
  EXPECT_EQ(OpOf("PUT", "/bucket?versioning"), Operation::kPutBucketVersioning);
  EXPECT_EQ(OpOf("DELETE", "/b-1/k?versionId=3HL4kqtJlcpXroDTDmJ"), Operation::kDeleteObject);
  EXPECT_EQ(OpOf("GET", "/b-1/k?tagging&versionId=null"), Operation::kGetObjectTagging);
  EXPECT_EQ(OpOf("GET", "/b-1/k?retention&versionId=null"), Operation::kGetObjectRetention);
  // A version's retention and legal hold change in place: PUT takes a versionId for them.
  EXPECT_EQ(OpOf("PUT", "/b-1/k?retention&versionId=null"), Operation::kPutObjectRetention);
  EXPECT_EQ(OpOf("GET", "/b-1/k?legal-hold"), Operation::kGetObjectLegalHold);
  EXPECT_EQ(OpOf("PUT", "/b-1/k?legal-hold&versionId=null"), Operation::kPutObjectLegalHold);
  EXPECT_EQ(OpOf("GET", "/bucket?object-lock"), Operation::kGetObjectLockConfiguration);
  EXPECT_EQ(OpOf("PUT", "/bucket?object-lock"), Operation::kPutObjectLockConfiguration);
  EXPECT_EQ(OpOf("GET", "/bucket?lifecycle"), Operation::kGetBucketLifecycleConfiguration);
  EXPECT_EQ(OpOf("PUT", "/bucket?lifecycle"), Operation::kPutBucketLifecycleConfiguration);
  EXPECT_EQ(OpOf("DELETE", "/bucket?lifecycle"), Operation::kDeleteBucketLifecycle);
  EXPECT_EQ(OpOf("HEAD", "/b-1/k"), Operation::kHeadObject);
  EXPECT_EQ(OpOf("DELETE", "/b-1/k"), Operation::kDeleteObject);
  EXPECT_EQ(OpOf("GET", "/b-1/k?acl"), Operation::kGetObjectAcl);
  EXPECT_EQ(OpOf("POST", "/b-1/k?uploads"), Operation::kCreateMultipartUpload);
  EXPECT_EQ(OpOf("PUT", "/b-1/k?partNumber=3&uploadId=u"), Operation::kUploadPart);
  EXPECT_EQ(OpOf("PUT", "/b-1/k?partNumber=3&uploadId=u", {{"x-amz-copy-source", "b-1/s"}}),
            Operation::kUploadPartCopy);
  EXPECT_EQ(OpOf("POST", "/b-1/k?uploadId=u"), Operation::kCompleteMultipartUpload);
  EXPECT_EQ(OpOf("DELETE", "/b-1/k?uploadId=u"), Operation::kAbortMultipartUpload);
  EXPECT_EQ(OpOf("GET", "/b-1/k?uploadId=u"), Operation::kListParts);
}

TEST(Router, KeysAreDecodedAndKeepTheirSlashes) {
  auto r = RouteOf(Req{"GET", "/bucket/dossiers/2026/a%20b%2Bc%25/%C3%A9t%C3%A9.pdf"});
  ASSERT_OK(r);
  EXPECT_EQ(r->bucket, "bucket");
  EXPECT_EQ(r->key, "dossiers/2026/a b+c%/\xC3\xA9t\xC3\xA9.pdf");
  auto slashes = RouteOf(Req{"GET", "/bucket//double//slash/"});
  ASSERT_OK(slashes);
  EXPECT_EQ(slashes->key, "/double//slash/");
}

TEST(Router, VirtualHostedStyle) {
  Req r{"GET", "/dossier/contrat.pdf", {{"Host", "my-bucket.s3.example.fr:9000"}}};
  auto route = RouteOf(r);
  ASSERT_OK(route);
  EXPECT_EQ(route->bucket, "my-bucket");
  EXPECT_EQ(route->key, "dossier/contrat.pdf");
  EXPECT_EQ(route->op, Operation::kGetObject);
  Req list{"GET", "/?list-type=2", {{"Host", "my-bucket.S3.EXAMPLE.FR"}}};
  auto l = RouteOf(list);
  ASSERT_OK(l);
  EXPECT_EQ(l->bucket, "my-bucket");
  EXPECT_EQ(l->op, Operation::kListObjectsV2);
  // The bare base domain is path style.
  Req bare{"GET", "/b-1/k", {{"Host", "s3.example.fr"}}};
  auto b = RouteOf(bare);
  ASSERT_OK(b);
  EXPECT_EQ(b->bucket, "b-1");
}

TEST(Router, PathTraversalAndBadKeysAreRefused) {
  EXPECT_EQ(ErrorOf("PUT", "/bucket/a/../../etc/passwd"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf("PUT", "/bucket/%2e%2e/x"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf("PUT", "/bucket/.."), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf("PUT", "/bucket/a%00b"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf("GET", "/bucket/bad%zzescape"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf("PUT", "/bucket/" + std::string(1025, 'k')), ErrorCode::kKeyTooLongError);
  auto ok = RouteOf(Req{"PUT", "/bucket/" + std::string(1024, 'k')});
  EXPECT_OK(ok);
  // "..." and "a..b" are ordinary names.
  EXPECT_OK(RouteOf(Req{"PUT", "/bucket/.../a..b"}));
}

TEST(Router, UnsupportedThingsAreNeverSilentSuccesses) {
  EXPECT_EQ(ErrorOf("PUT", "/bucket?website"), ErrorCode::kNotImplemented);
  EXPECT_EQ(ErrorOf("GET", "/bucket?policy"), ErrorCode::kNotImplemented);
  EXPECT_EQ(ErrorOf("PUT", "/bucket?acl"), ErrorCode::kNotImplemented);
  EXPECT_EQ(ErrorOf("HEAD", "/bucket/k?tagging"), ErrorCode::kNotImplemented);
  EXPECT_EQ(ErrorOf("POST", "/bucket/k"), ErrorCode::kNotImplemented);
  EXPECT_EQ(ErrorOf("POST", "/bucket"), ErrorCode::kNotImplemented);
  EXPECT_EQ(ErrorOf("PATCH", "/bucket/k"), ErrorCode::kMethodNotAllowed);
  EXPECT_EQ(ErrorOf("DELETE", "/"), ErrorCode::kMethodNotAllowed);
  EXPECT_EQ(ErrorOf("PUT", "/bucket/k?partNumber=1"), ErrorCode::kInvalidRequest);
}

// One case per rule of the routing table, plus the subresource combinations whose order decides.
TEST(Router, EachMethodAndSubresourceRoutes) {
  const std::vector<std::pair<std::string, std::string>> copy = {{"x-amz-copy-source", "/b-1/src"}};
  struct Case {
    std::string method;
    std::string target;
    Operation op;
    bool with_copy_source = false;
  };
  const std::vector<Case> cases = {
      {"GET", "/?prefix=a", Operation::kListBuckets},
      {"GET", "/bucket?list-type=1", Operation::kListObjects},
      {"HEAD", "/bucket?location", Operation::kGetBucketLocation},
      {"HEAD", "/bucket?acl", Operation::kGetBucketAcl},
      {"HEAD", "/bucket?versioning", Operation::kGetBucketVersioning},
      {"HEAD", "/bucket?versions", Operation::kListObjectVersions},
      {"HEAD", "/bucket?uploads", Operation::kListMultipartUploads},
      {"HEAD", "/bucket?list-type=2", Operation::kHeadBucket},
      {"PUT", "/bucket?location", Operation::kCreateBucket},
      {"DELETE", "/bucket?versioning", Operation::kDeleteBucket},
      // An implemented subresource is matched before an unsupported one beside it.
      {"GET", "/bucket?acl&policy", Operation::kGetBucketAcl},
      {"GET", "/b-1/k?uploadId=u&tagging", Operation::kListParts},
      {"GET", "/b-1/k?tagging", Operation::kGetObjectTagging},
      {"GET", "/b-1/k?attributes", Operation::kGetObjectAttributes},
      {"PUT", "/b-1/k?tagging", Operation::kPutObjectTagging},
      {"DELETE", "/b-1/k?tagging", Operation::kDeleteObjectTagging},
      {"GET", "/bucket?tagging", Operation::kGetBucketTagging},
      {"PUT", "/bucket?tagging", Operation::kPutBucketTagging},
      {"DELETE", "/bucket?tagging", Operation::kDeleteBucketTagging},
      {"GET", "/bucket?encryption", Operation::kGetBucketEncryption},
      {"PUT", "/bucket?encryption", Operation::kPutBucketEncryption},
      {"DELETE", "/bucket?encryption", Operation::kDeleteBucketEncryption},
      // A copy's x-amz-tagging is a header, not the subresource: still a copy.
      {"PUT", "/b-1/k", Operation::kCopyObject, true},
      {"PUT", "/b-1/k?uploadId=u&partNumber=1&tagging", Operation::kUploadPart},
      {"POST", "/b-1/k?uploads&uploadId=u", Operation::kCreateMultipartUpload},
      {"HEAD", "/b-1/k?versionId=null", Operation::kHeadObject},
      {"DELETE", "/b-1/k?versionId=null", Operation::kDeleteObject},
      {"GET", "/b-1/k?partNumber=2", Operation::kGetObject},
      {"GET", "/b-1/k", Operation::kGetObject, true},
      {"DELETE", "/b-1/k?uploadId=u", Operation::kAbortMultipartUpload, true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(OpOf(c.method, c.target, c.with_copy_source ? copy : decltype(copy){}), c.op)
        << c.method << " " << c.target;
  }
}

// Each refusal keeps its S3 code, status and message.
TEST(Router, RefusalsKeepTheirCodeStatusAndMessage) {
  struct Case {
    std::string method;
    std::string target;
    ErrorCode code;
    int status;
    std::string message;
  };
  const std::string bucket_sub = "This bucket subresource is not implemented";
  const std::string object_sub = "This object subresource is not implemented";
  const std::string post = "This POST request is not implemented";
  const std::string part = "UploadPart needs both uploadId and partNumber";
  const std::vector<Case> cases = {
      {"PUT", "/", ErrorCode::kMethodNotAllowed, 405, ""},
      {"HEAD", "/", ErrorCode::kMethodNotAllowed, 405, ""},
      {"GET", "/bucket?cors", ErrorCode::kNotImplemented, 501, bucket_sub},
      {"HEAD", "/bucket?website", ErrorCode::kNotImplemented, 501, bucket_sub},
      {"PUT", "/bucket?policy", ErrorCode::kNotImplemented, 501, bucket_sub},
      {"PUT", "/bucket?acl&versioning", ErrorCode::kNotImplemented, 501, bucket_sub},
      {"DELETE", "/bucket?website", ErrorCode::kNotImplemented, 501, bucket_sub},
      {"POST", "/bucket?uploads", ErrorCode::kNotImplemented, 501, post},
      {"PATCH", "/bucket", ErrorCode::kMethodNotAllowed, 405, ""},
      {"HEAD", "/b-1/k?tagging", ErrorCode::kNotImplemented, 501, object_sub},
      {"HEAD", "/bucket?tagging", ErrorCode::kNotImplemented, 501, bucket_sub},
      {"GET", "/b-1/k?versionId=null&torrent", ErrorCode::kNotImplemented, 501, object_sub},
      {"HEAD", "/b-1/k?uploadId=u", ErrorCode::kMethodNotAllowed, 405, ""},
      {"HEAD", "/b-1/k?acl", ErrorCode::kMethodNotAllowed, 405, ""},
      {"HEAD", "/b-1/k?legal-hold", ErrorCode::kNotImplemented, 501, object_sub},
      {"PUT", "/b-1/k?acl", ErrorCode::kNotImplemented, 501, object_sub},
      // PutObject takes no versionId, not even "null".
      {"PUT", "/b-1/k?versionId=null", ErrorCode::kNotImplemented, 501, object_sub},
      {"PUT", "/b-1/k?uploadId=u", ErrorCode::kInvalidRequest, 400, part},
      {"PUT", "/b-1/k?partNumber=1", ErrorCode::kInvalidRequest, 400, part},
      {"POST", "/b-1/k?select", ErrorCode::kNotImplemented, 501, post},
      {"OPTIONS", "/b-1/k", ErrorCode::kMethodNotAllowed, 405, ""},
      {"get", "/b-1/k", ErrorCode::kMethodNotAllowed, 405, ""},
      {"GET", "/b-1/k?%zz", ErrorCode::kInvalidArgument, 400, "Invalid query string encoding"},
      {"GET", "b-1/k", ErrorCode::kInvalidRequest, 400, "Invalid request target"},
      {"GET", "/b%zz/k", ErrorCode::kInvalidArgument, 400, "Invalid bucket name encoding"},
      {"GET", "/b-1/a%zz", ErrorCode::kInvalidArgument, 400, "Invalid key encoding"},
      {"GET", "/b-1/a/../b", ErrorCode::kInvalidArgument, 400, "Object key is not valid"},
      // The bucket name and the key are checked before the method.
      {"PATCH", "/Bad_Bucket/k", ErrorCode::kNoSuchBucket, 404, ""},
      {"PATCH", "/b-1/..", ErrorCode::kInvalidArgument, 400, "Object key is not valid"},
  };
  for (const Case& c : cases) {
    auto route = RouteOf(Req{c.method, c.target});
    ASSERT_THAT(route, StatusIs(c.code)) << c.method << " " << c.target;
    EXPECT_EQ(route.error().http_status(), c.status) << c.method << " " << c.target;
    EXPECT_EQ(route.error().message, c.message) << c.method << " " << c.target;
  }
}

TEST(Router, MalformedBucketNamesCannotExist) {
  EXPECT_EQ(ErrorOf("GET", "/Bad_Bucket/k"), ErrorCode::kNoSuchBucket);
  // CreateBucket reports the name itself (InvalidBucketName in the handler).
  EXPECT_EQ(OpOf("PUT", "/Bad_Bucket"), Operation::kCreateBucket);
}

TEST(Router, BucketNamingRules) {
  for (const std::string& good : {std::string("abc"), std::string("my-bucket.2026"), std::string("a1b"),
                                  std::string("0bucket9"), std::string(63, 'a')}) {
    EXPECT_TRUE(IsValidBucketName(good)) << good;
  }
  for (const char* bad : {"ab", "ABC", "a_b", "-abc", "abc-", "a..b", "a.-b", "a-.b", "192.168.1.10", "xn--abc",
                          "abc-s3alias", "abc--ol-s3", "sthree-abc", "a b"}) {
    EXPECT_FALSE(IsValidBucketName(bad)) << bad;
  }
  EXPECT_FALSE(IsValidBucketName(std::string(64, 'a')));
}

}  // namespace
}  // namespace coffre::s3
