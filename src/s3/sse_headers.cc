#include "sse_headers.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "coffre/common/bytes.h"
#include "coffre/crypto/hash.h"
#include "coffre/keystore/tenant_key_store.h"
#include "coffre/service/object_service.h"

namespace coffre::s3 {
namespace {

constexpr std::string_view kMethod = "x-amz-server-side-encryption";
constexpr std::string_view kKmsKeyId = "x-amz-server-side-encryption-aws-kms-key-id";
constexpr std::string_view kKmsContext = "x-amz-server-side-encryption-context";
constexpr std::string_view kBucketKey = "x-amz-server-side-encryption-bucket-key-enabled";
constexpr std::string_view kKms = "aws:kms";

// An encryption context is base64 of a JSON object whose values are strings, as KMS takes it.
bool IsEncryptionContext(std::string_view header) {
  const auto raw = Base64Decode(TrimWhitespace(header));
  if (!raw) return false;
  const auto json = nlohmann::json::parse(raw->begin(), raw->end(), nullptr, false);
  if (json.is_discarded() || !json.is_object()) return false;
  return std::ranges::all_of(json.items(), [](const auto& item) { return item.value().is_string(); });
}

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
    if (const auto key_id = request.Header(kKmsKeyId); key_id && TrimWhitespace(*key_id).empty()) {
      return Error(ErrorCode::kInvalidArgument, "KMS key id must not be empty");
    }
    if (const auto context = request.Header(kKmsContext); context && !IsEncryptionContext(*context)) {
      return Error(ErrorCode::kInvalidArgument,
                   "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding "
                   "JSON which represents a string-string map");
    }
    if (const auto bucket_key = request.Header(kBucketKey);
        bucket_key && *bucket_key != "true" && *bucket_key != "false") {
      return Error(ErrorCode::kInvalidArgument,
                   "x-amz-server-side-encryption-bucket-key-enabled must be true or false");
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
  if (StoresAnObject(op) && method && *method == "aws:kms:dsse") {
    return DsseNotImplemented();
  }
  return std::nullopt;
}

Error DsseNotImplemented() {
  return Error(ErrorCode::kNotImplemented,
               "aws:kms:dsse (dual-layer encryption) is not implemented; aws:kms selects one of the tenant's named "
               "keys and AES256 its default key.");
}

std::string KmsKeyName(std::string_view spec) {
  spec = TrimWhitespace(spec);
  if (spec.starts_with("arn:")) {
    // arn:PARTITION:kms:REGION:ACCOUNT:key/ID or ...:alias/NAME: the resource follows the fifth colon.
    size_t pos = 0;
    for (int colons = 0; pos < spec.size() && colons < 5; ++pos) {
      if (spec[pos] == ':') ++colons;
    }
    spec.remove_prefix(pos);
  }
  if (spec.starts_with("key/")) spec.remove_prefix(4);
  if (spec.starts_with("alias/")) spec.remove_prefix(6);
  return std::string(spec);
}

std::string KmsKeyArn(std::string_view region, std::string_view tenant_id, std::string_view key_id) {
  return "arn:aws:kms:" + std::string(region) + ":" + std::string(tenant_id) + ":key/" + keystore::KeyIdAsUuid(key_id);
}

ObjectEncryption ObjectEncryptionOf(const HttpRequestView& request, const catalog::Bucket& bucket) {
  ObjectEncryption out;
  const auto method = request.Header(kMethod);
  if (method) {
    out.kms = *method == kKms;
    if (out.kms) {
      if (const auto key_id = request.Header(kKmsKeyId)) out.key = KmsKeyName(*key_id);
    }
    if (const auto context = request.Header(kKmsContext)) out.context = std::string(TrimWhitespace(*context));
    if (const auto bucket_key = request.Header(kBucketKey)) out.bucket_key = *bucket_key == "true";
    return out;
  }
  // No header: the bucket's default encryption, as S3 applies it.
  if (service::BucketSetting(bucket, kEncryptionAlgorithmSetting) == kKms) {
    out.kms = true;
    if (const std::string_view key = service::BucketSetting(bucket, kEncryptionKeySetting); !key.empty()) {
      out.key = KmsKeyName(key);
    }
    out.bucket_key = service::BucketSetting(bucket, kEncryptionBucketKeySetting) == "true";
  }
  return out;
}

void AddEncryptionHeaders(std::vector<std::pair<std::string, std::string>>& headers, bool kms, bool bucket_key,
                          const std::string& key_arn) {
  headers.emplace_back(std::string(kMethod), kms ? std::string(kKms) : std::string("AES256"));
  if (kms) headers.emplace_back(std::string(kKmsKeyId), key_arn);
  if (bucket_key) headers.emplace_back(std::string(kBucketKey), "true");
}

}  // namespace coffre::s3
