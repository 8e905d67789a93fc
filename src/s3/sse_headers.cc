#include "sse_headers.h"

#include <algorithm>
#include <string>
#include <string_view>

#include "coffre/common/bytes.h"
#include "coffre/crypto/hash.h"

namespace coffre::s3 {
namespace {

constexpr std::string_view kMethod = "x-amz-server-side-encryption";
constexpr std::string_view kKmsKeyId = "x-amz-server-side-encryption-aws-kms-key-id";
constexpr std::string_view kKmsContext = "x-amz-server-side-encryption-context";

// The three headers of a customer-provided key: with the prefix "x-amz-", for the object written
// or read; with "x-amz-copy-source-", for the source of a copy.
struct CustomerKeyHeaders {
  std::string algorithm;
  std::string key;
  std::string key_md5;
};

CustomerKeyHeaders CustomerKeyHeadersOf(std::string_view prefix) {
  const std::string base = std::string(prefix) + "server-side-encryption-customer-";
  return {base + "algorithm", base + "key", base + "key-md5"};
}

// Whether the request names a customer-provided key; an error when it names one badly.
Expected<bool, Error> CheckCustomerKey(const HttpRequestView& request, const CustomerKeyHeaders& names) {
  const auto algorithm = request.Header(names.algorithm);
  const auto key = request.Header(names.key);
  const auto key_md5 = request.Header(names.key_md5);
  if (!algorithm && !key && !key_md5) return false;
  if (!algorithm) {
    return Error(ErrorCode::kInvalidArgument,
                 "Requests specifying Server Side Encryption with Customer provided keys must provide a valid "
                 "encryption algorithm.");
  }
  if (*algorithm != "AES256") return Error(ErrorCode::kInvalidEncryptionAlgorithmError);
  if (!key) {
    return Error(ErrorCode::kInvalidArgument,
                 "Requests specifying Server Side Encryption with Customer provided keys must provide an "
                 "appropriate secret key.");
  }
  const auto raw_key = Base64Decode(TrimWhitespace(*key));
  if (!raw_key || raw_key->size() != 32) {
    return Error(ErrorCode::kInvalidArgument, "The secret key was invalid for the specified algorithm.");
  }
  if (!key_md5) {
    return Error(ErrorCode::kInvalidArgument,
                 "Requests specifying Server Side Encryption with Customer provided keys must provide the client "
                 "calculated MD5 of the secret key.");
  }
  const auto raw_md5 = Base64Decode(TrimWhitespace(*key_md5));
  const crypto::Md5Digest digest = crypto::Md5::Digest(*raw_key);
  if (!raw_md5 || !std::equal(raw_md5->begin(), raw_md5->end(), digest.begin(), digest.end())) {
    return Error(ErrorCode::kInvalidArgument,
                 "The calculated MD5 hash of the key did not match the hash that was provided.");
  }
  return true;
}

bool StoresAnObject(Operation op) {
  return op == Operation::kPutObject || op == Operation::kCopyObject || op == Operation::kCreateMultipartUpload;
}

bool CopiesFromASource(Operation op) { return op == Operation::kCopyObject || op == Operation::kUploadPartCopy; }

bool TakesACustomerKey(Operation op) {
  return StoresAnObject(op) || op == Operation::kGetObject || op == Operation::kHeadObject ||
         op == Operation::kUploadPart || op == Operation::kUploadPartCopy || op == Operation::kCompleteMultipartUpload;
}

Error NotApplicable() {
  return Error(ErrorCode::kInvalidRequest, "The encryption parameters are not applicable to this object.");
}

}  // namespace

std::optional<Error> CheckEncryptionHeaders(const HttpRequestView& request, Operation op) {
  const auto method = request.Header(kMethod);
  const bool kms_details = request.Header(kKmsKeyId).has_value() || request.Header(kKmsContext).has_value();
  if (!StoresAnObject(op)) {
    if (method) {
      return Error(ErrorCode::kInvalidArgument,
                   "x-amz-server-side-encryption header is not supported for this "
                   "operation.");
    }
    if (kms_details) {
      return Error(ErrorCode::kInvalidArgument,
                   "Server Side Encryption with AWS KMS managed key headers are not "
                   "supported for this operation.");
    }
  } else {
    if (method && *method != "AES256" && *method != "aws:kms" && *method != "aws:kms:dsse") {
      return Error(ErrorCode::kInvalidArgument, "The encryption method specified is not supported");
    }
    const bool kms = method && *method != "AES256";
    if (kms_details && !kms) {
      return Error(ErrorCode::kInvalidArgument,
                   "Server Side Encryption with AWS KMS managed key requires HTTP header "
                   "x-amz-server-side-encryption : aws:kms");
    }
  }
  if (CopiesFromASource(op)) {
    auto source_key = CheckCustomerKey(request, CustomerKeyHeadersOf("x-amz-copy-source-"));
    if (!source_key.ok()) return source_key.error();
    // No object here was stored under a customer-provided key.
    if (*source_key) return NotApplicable();
  }
  // Operations that take no customer key (a delete, a listing) ignore its headers.
  auto customer_key =
      TakesACustomerKey(op) ? CheckCustomerKey(request, CustomerKeyHeadersOf("x-amz-")) : Expected<bool, Error>(false);
  if (!customer_key.ok()) return customer_key.error();
  if (*customer_key) {
    if (StoresAnObject(op)) {
      if (method) {
        return Error(ErrorCode::kInvalidArgument,
                     "Server Side Encryption with Customer provided key is incompatible with the encryption method "
                     "specified");
      }
      return Error(ErrorCode::kNotImplemented,
                   "Server-side encryption with customer-provided keys (SSE-C) is not "
                   "implemented; every object is encrypted under its tenant's keys.");
    }
    return NotApplicable();
  }
  if (StoresAnObject(op) && method && *method != "AES256") {
    return KmsNotImplemented(*method);
  }
  return std::nullopt;
}

Error KmsNotImplemented(std::string_view method) {
  return Error(ErrorCode::kNotImplemented,
               std::string(method) +
                   " selects a named tenant key, which this gateway does not have yet; AES256 (every object under its "
                   "tenant's keys) is available.");
}

}  // namespace coffre::s3
