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
    EXPECT_EQ(Check({{"x-amz-server-side-encryption", "aws:kms"}}, op), "NotImplemented");
    EXPECT_EQ(Check({{"x-amz-server-side-encryption", "aws:kms:dsse"}}, op), "NotImplemented");
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

}  // namespace
}  // namespace coffre::s3
