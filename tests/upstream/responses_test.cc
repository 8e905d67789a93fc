#include "upstream/responses.h"

#include <gtest/gtest.h>

#include "upstream/backoff.h"

namespace coffre::upstream {
namespace {

TEST(ErrorStatus, MapsStatusesAndS3Codes) {
  struct Case {
    unsigned status;
    const char* code;
    StatusCode expected;
  };
  const Case cases[] = {
      {404, "NoSuchKey", StatusCode::kNotFound},
      {404, "NoSuchBucket", StatusCode::kNotFound},
      {403, "AccessDenied", StatusCode::kPermissionDenied},
      {403, "SignatureDoesNotMatch", StatusCode::kPermissionDenied},
      {401, "", StatusCode::kPermissionDenied},
      {503, "SlowDown", StatusCode::kUnavailable},
      {500, "InternalError", StatusCode::kUnavailable},
      {502, "", StatusCode::kUnavailable},
      {504, "", StatusCode::kUnavailable},
      {400, "RequestTimeout", StatusCode::kUnavailable},
      {501, "NotImplemented", StatusCode::kInternal},
      {400, "InvalidArgument", StatusCode::kInvalidArgument},
      {400, "EntityTooSmall", StatusCode::kInvalidArgument},
      {416, "InvalidRange", StatusCode::kOutOfRange},
      {412, "PreconditionFailed", StatusCode::kFailedPrecondition},
      {409, "BucketNotEmpty", StatusCode::kFailedPrecondition},
      {409, "OperationAborted", StatusCode::kAborted},
      {507, "", StatusCode::kNoSpace},
      {403, "QuotaExceeded", StatusCode::kNoSpace},
      {301, "PermanentRedirect", StatusCode::kFailedPrecondition},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrorStatus("GET k", c.status, {c.code, "m"}).code(), c.expected) << c.status << " " << c.code;
  }
}

TEST(ErrorStatus, MessageKeepsTheUpstreamCodeAndMessage) {
  const Status s = ErrorStatus("PUT blob", 503, {"SlowDown", "Please reduce your request rate."});
  EXPECT_EQ(s.message(), "upstream PUT blob: HTTP 503 SlowDown: Please reduce your request rate.");
  EXPECT_EQ(ErrorStatus("HEAD k", 404, {}).message(), "upstream HEAD k: HTTP 404");
}

TEST(IsRetryableAnswer, OnlyTransientOnes) {
  for (unsigned status : {500u, 502u, 503u, 504u}) EXPECT_TRUE(IsRetryableAnswer(status, ""));
  EXPECT_TRUE(IsRetryableAnswer(503, "SlowDown"));
  EXPECT_TRUE(IsRetryableAnswer(400, "RequestTimeout"));
  for (unsigned status : {400u, 403u, 404u, 409u, 501u}) EXPECT_FALSE(IsRetryableAnswer(status, "X"));
}

TEST(ParseErrorBody, ReadsCodeAndMessage) {
  const S3ErrorBody e = ParseErrorBody(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not "
      "exist.</Message><Key>a&amp;b</Key><RequestId>1</RequestId></Error>");
  EXPECT_EQ(e.code, "NoSuchKey");
  EXPECT_EQ(e.message, "The specified key does not exist.");
  EXPECT_EQ(ParseErrorBody("<html>502 Bad Gateway</html>").code, "");
  EXPECT_EQ(ParseErrorBody("").code, "");
  EXPECT_EQ(
      ParseErrorBody("<Error><Code>X</Code><Message>" + std::string(1000, 'm') + "</Message></Error>").message.size(),
      303u);
}

TEST(ParseListObjectsV2, ReadsEntriesAndTheContinuationToken) {
  auto page = ParseListObjectsV2(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
      "<NextContinuationToken>tok/1=</NextContinuationToken>"
      "<Contents><Key>a &amp; b</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>\"e\"</ETag>"
      "<Size>12</Size></Contents>"
      "<Contents><Key> spaced </Key><LastModified>2024-01-02T03:04:06.500Z</LastModified><Size>0</Size></Contents>"
      "</ListBucketResult>");
  ASSERT_TRUE(page.ok()) << page.status().message();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "a & b");
  EXPECT_EQ(page->objects[0].size, 12u);
  EXPECT_EQ(page->objects[0].last_modified, 1704164645000);
  EXPECT_EQ(page->objects[1].key, " spaced ");
  EXPECT_EQ(page->objects[1].last_modified, 1704164646500);
  EXPECT_EQ(page->next_continuation_token, "tok/1=");
}

TEST(ParseListObjectsV2, RefusesWhatIsNotAListing) {
  EXPECT_FALSE(ParseListObjectsV2("<Error/>").ok());
  EXPECT_FALSE(ParseListObjectsV2("<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>").ok());
  EXPECT_FALSE(ParseListObjectsV2("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>").ok());
  auto empty = ParseListObjectsV2("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->objects.empty());
}

TEST(Multipart, UploadIdAndCompletion) {
  EXPECT_EQ(ParseUploadId("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u-1</UploadId>"
                          "</InitiateMultipartUploadResult>")
                .value(),
            "u-1");
  EXPECT_FALSE(ParseUploadId("<InitiateMultipartUploadResult/>").ok());
  EXPECT_EQ(ParseCompleteResult("Complete k",
                                "\n  <CompleteMultipartUploadResult><ETag>\"m-2\"</ETag>"
                                "</CompleteMultipartUploadResult>")
                .value(),
            "\"m-2\"");
  // Ceph RGW 16's answer: the result with an empty ETag still says the upload completed.
  EXPECT_EQ(ParseCompleteResult("Complete k",
                                "<CompleteMultipartUploadResult><Location>l</Location><ETag></ETag>"
                                "</CompleteMultipartUploadResult>")
                .value(),
            "");
  EXPECT_EQ(ParseCompleteResult("Complete k", "<Other/>").status().code(), StatusCode::kInternal);
  EXPECT_EQ(ParseCompleteResult("Complete k", "").status().code(), StatusCode::kInternal);
  // An error sent after the 200 status line.
  const auto failed =
      ParseCompleteResult("Complete k", "      <Error><Code>InvalidPart</Code><Message>bad part</Message></Error>");
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(failed.status().message().find("InvalidPart: bad part"), std::string::npos);
  EXPECT_EQ(ParseCompleteResult("Complete k", "<Error><Code>InternalError</Code></Error>").status().code(),
            StatusCode::kUnavailable);
}

TEST(Multipart, CompletionBodyListsThePartsInOrder) {
  const std::string body = CompleteMultipartBody({{1, "\"a\""}, {2, "\"b\""}});
  EXPECT_NE(body.find("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>"
                      "<Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part></CompleteMultipartUpload>"),
            std::string::npos)
      << body;
}

TEST(BackoffDelay, FullJitterUnderADoublingCap) {
  RetryPolicy policy;
  policy.base_delay = std::chrono::milliseconds(100);
  policy.max_delay = std::chrono::milliseconds(1000);
  EXPECT_EQ(BackoffDelay(policy, 1, 0).count(), 0);
  EXPECT_EQ(BackoffDelay(policy, 1, 100).count(), 100);
  EXPECT_EQ(BackoffDelay(policy, 1, 101).count(), 0);
  EXPECT_EQ(BackoffDelay(policy, 3, 400).count(), 400);
  EXPECT_EQ(BackoffDelay(policy, 3, 401).count(), 0);
  EXPECT_EQ(BackoffDelay(policy, 60, 1000).count(), 1000);
  EXPECT_LE(BackoffDelay(policy, 1000, ~uint64_t{0}).count(), 1000);
}

}  // namespace
}  // namespace coffre::upstream
