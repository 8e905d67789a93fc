#include "s3/sse_headers.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/crypto/hash.h"

namespace coffre::s3 {
namespace {

// The error code of a check, or "" when the request passes.
std::string Check(std::vector<std::pair<std::string, std::string>> headers, Operation op) {
  HttpRequestView view;
  for (const auto& [name, value] : headers) view.headers.emplace_back(name, value);
  const std::optional<Error> e = CheckEncryptionHeaders(view, op);
  return e ? std::string(Describe(e->code).code) : "";
}

std::vector<std::pair<std::string, std::string>> CustomerKey(const std::string& prefix = "x-amz-") {
  const Bytes key(32, 7);
  const crypto::Md5Digest md5 = crypto::Md5::Digest(key);
  return {{prefix + "server-side-encryption-customer-algorithm", "AES256"},
          {prefix + "server-side-encryption-customer-key", Base64Encode(key)},
          {prefix + "server-side-encryption-customer-key-MD5", Base64Encode(Bytes(md5.begin(), md5.end()))}};
}

TEST(SseHeaders, TheMethodWhereObjectsAreStored) {
  for (const Operation op : {Operation::kPutObject, Operation::kCopyObject, Operation::kCreateMultipartUpload}) {
    EXPECT_EQ(Check({}, op), "");
    EXPECT_EQ(Check({{"x-amz-server-side-encryption", "AES256"}}, op), "");
    EXPECT_EQ(Check({{"x-amz-server-side-encryption", "aws:kms"}}, op), "");
    EXPECT_EQ(
        Check({{"x-amz-server-side-encryption", "aws:kms"}, {"x-amz-server-side-encryption-aws-kms-key-id", "k"}}, op),
        "");
    EXPECT_EQ(Check({{"x-amz-server-side-encryption", "aws:kms:dsse"}}, op), "NotImplemented");
    // The context is base64 of a JSON object of strings; the bucket-key flag true or false.
    EXPECT_EQ(Check({{"x-amz-server-side-encryption", "aws:kms"},
                     {"x-amz-server-side-encryption-context", Base64Encode(AsBytes(R"({"dossier":"42"})"))}},
                    op),
              "");
    for (const std::string& bad : {std::string("not base64!"), Base64Encode(AsBytes("[1]")),
                                   Base64Encode(AsBytes(R"({"a":1})")), Base64Encode(AsBytes("{"))}) {
      EXPECT_EQ(Check({{"x-amz-server-side-encryption", "aws:kms"}, {"x-amz-server-side-encryption-context", bad}}, op),
                "InvalidArgument")
          << bad;
    }
    EXPECT_EQ(
        Check({{"x-amz-server-side-encryption", "aws:kms"}, {"x-amz-server-side-encryption-bucket-key-enabled", "yes"}},
              op),
        "InvalidArgument");
    EXPECT_EQ(
        Check({{"x-amz-server-side-encryption", "aws:kms"}, {"x-amz-server-side-encryption-aws-kms-key-id", " "}}, op),
        "InvalidArgument");
    EXPECT_EQ(Check({{"x-amz-server-side-encryption", "AES128"}}, op), "InvalidArgument");
    EXPECT_EQ(Check({{"x-amz-server-side-encryption-aws-kms-key-id", "k"}}, op), "InvalidArgument");
    EXPECT_EQ(Check({{"x-amz-server-side-encryption", "AES256"}, {"x-amz-server-side-encryption-context", "e30="}}, op),
              "InvalidArgument");
    EXPECT_EQ(Check(CustomerKey(), op), "NotImplemented");
    auto both = CustomerKey();
    both.emplace_back("x-amz-server-side-encryption", "AES256");
    EXPECT_EQ(Check(both, op), "InvalidArgument");
  }
}

TEST(SseHeaders, TheMethodIsRefusedWhereS3DoesNotTakeIt) {
  for (const Operation op :
       {Operation::kGetObject, Operation::kHeadObject, Operation::kUploadPart, Operation::kUploadPartCopy,
        Operation::kCompleteMultipartUpload, Operation::kListObjectsV2}) {
    EXPECT_EQ(Check({{"x-amz-server-side-encryption", "AES256"}}, op), "InvalidArgument");
    EXPECT_EQ(Check({{"x-amz-server-side-encryption-aws-kms-key-id", "k"}}, op), "InvalidArgument");
  }
}

TEST(SseHeaders, ACustomerKeyWhereObjectsAreRead) {
  for (const Operation op :
       {Operation::kGetObject, Operation::kHeadObject, Operation::kUploadPart, Operation::kCompleteMultipartUpload}) {
    EXPECT_EQ(Check(CustomerKey(), op), "InvalidRequest");  // no object here has one
  }
  EXPECT_EQ(Check(CustomerKey("x-amz-copy-source-"), Operation::kCopyObject), "InvalidRequest");
  EXPECT_EQ(Check(CustomerKey("x-amz-copy-source-"), Operation::kUploadPartCopy), "InvalidRequest");
  // Ignored by operations that take none.
  EXPECT_EQ(Check(CustomerKey(), Operation::kDeleteObject), "");
  EXPECT_EQ(Check(CustomerKey("x-amz-copy-source-"), Operation::kGetObject), "");
}

TEST(SseHeaders, MalformedCustomerKeys) {
  const auto with = [](size_t index, const std::string& value) {
    auto headers = CustomerKey();
    headers[index].second = value;
    return headers;
  };
  const auto without = [](size_t index) {
    auto headers = CustomerKey();
    headers.erase(headers.begin() + static_cast<std::ptrdiff_t>(index));
    return headers;
  };
  for (const Operation op : {Operation::kPutObject, Operation::kGetObject}) {
    EXPECT_EQ(Check(without(0), op), "InvalidArgument");
    EXPECT_EQ(Check(with(0, "AES128"), op), "InvalidEncryptionAlgorithmError");
    EXPECT_EQ(Check(without(1), op), "InvalidArgument");
    EXPECT_EQ(Check(with(1, Base64Encode(Bytes(16, 7))), op), "InvalidArgument");
    EXPECT_EQ(Check(with(1, "not base64!"), op), "InvalidArgument");
    EXPECT_EQ(Check(without(2), op), "InvalidArgument");
    EXPECT_EQ(Check(with(2, Base64Encode(Bytes(16, 0))), op), "InvalidArgument");
  }
  auto source = CustomerKey("x-amz-copy-source-");
  source[0].second = "AES128";
  EXPECT_EQ(Check(source, Operation::kCopyObject), "InvalidEncryptionAlgorithmError");
}

TEST(SseHeaders, KeyNamesAsClientsSendThem) {
  EXPECT_EQ(KmsKeyName("customer-42"), "customer-42");
  EXPECT_EQ(KmsKeyName("alias/customer-42"), "customer-42");
  EXPECT_EQ(KmsKeyName("arn:aws:kms:eu-west-3:123456789012:alias/customer-42"), "customer-42");
  EXPECT_EQ(KmsKeyName("arn:aws:kms:eu-west-3:123456789012:key/169f295f-281b-fc00-0156-b7472454556e"),
            "169f295f-281b-fc00-0156-b7472454556e");
  EXPECT_EQ(KmsKeyName("key/169f295f-281b-fc00-0156-b7472454556e"), "169f295f-281b-fc00-0156-b7472454556e");
  EXPECT_EQ(KmsKeyName(" dossiers/2026 "), "dossiers/2026");
  EXPECT_EQ(KmsKeyArn("eu-west-3", "ab", "169f295f281bfc000156b7472454556e"),
            "arn:aws:kms:eu-west-3:ab:key/169f295f-281b-fc00-0156-b7472454556e");
}

}  // namespace
}  // namespace coffre::s3
