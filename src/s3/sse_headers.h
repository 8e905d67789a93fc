#pragma once

// The server-side encryption headers of a request, checked as S3 checks them, before anything is
// read or written, and the headers of the answers that report an object's encryption. Every
// object here is encrypted under one of its tenant's keys (docs/KEYS.md): AES256 (S3's SSE-S3)
// means the tenant's default key; aws:kms (SSE-KMS) one of its named keys, chosen by
// x-amz-server-side-encryption-aws-kms-key-id (a name, a key id or an ARN), or, without one, the
// default key. Dual-layer aws:kms:dsse and customer-provided keys (SSE-C) are S3's and not yet
// Coffre's: a well-formed request for them is NotImplemented where it would store an object, and,
// where it would read one, S3's answer for an object that was not stored with them; a malformed
// one gets S3's 400 in every case.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "coffre/s3/error.h"
#include "coffre/s3/request.h"
#include "router.h"

namespace coffre::s3 {

// A bucket's default encryption (Put/GetBucketEncryption), kept in its settings: the algorithm
// (AES256 or aws:kms; absent: AES256, as S3 has it), the KMSMasterKeyID as given, and whether the
// rule enables S3 Bucket Keys.
inline constexpr std::string_view kEncryptionAlgorithmSetting = "encryption.algorithm";
inline constexpr std::string_view kEncryptionKeySetting = "encryption.kms-key-id";
inline constexpr std::string_view kEncryptionBucketKeySetting = "encryption.bucket-key";

std::optional<Error> CheckEncryptionHeaders(const HttpRequestView& request, Operation op);

// NotImplemented for aws:kms:dsse, wherever it is asked for: a PUT's header or a bucket's default
// encryption.
Error DsseNotImplemented();

// What a request that stores an object (PutObject, CopyObject, CreateMultipartUpload, checked by
// CheckEncryptionHeaders) asks for: its x-amz-server-side-encryption headers, else its bucket's
// default encryption.
struct ObjectEncryption {
  bool kms = false;                    // aws:kms
  std::optional<std::string> key;      // the key named (KmsKeyName); none: the tenant's default key
  bool bucket_key = false;             // x-amz-server-side-encryption-bucket-key-enabled: true
  std::optional<std::string> context;  // x-amz-server-side-encryption-context, echoed as sent
};
ObjectEncryption ObjectEncryptionOf(const HttpRequestView& request, const catalog::Bucket& bucket);
// A key as x-amz-server-side-encryption-aws-kms-key-id or a KMSMasterKeyID names it, as a name
// or id ObjectService::ResolveEncryptionKey takes: "arn:aws:kms:REGION:ACCOUNT:key/ID" and
// "key/ID" give ID, "...:alias/NAME" and "alias/NAME" give NAME, anything else is itself.
std::string KmsKeyName(std::string_view spec);
// The ARN answers name a key by: the region's, with the tenant id in the account's place and the
// key id as a UUID.
std::string KmsKeyArn(std::string_view region, std::string_view tenant_id, std::string_view key_id);
// x-amz-server-side-encryption (aws:kms or AES256), with the key's ARN for aws:kms, and
// x-amz-server-side-encryption-bucket-key-enabled when set.
void AddEncryptionHeaders(std::vector<std::pair<std::string, std::string>>& headers, bool kms, bool bucket_key,
                          const std::string& key_arn);

}  // namespace coffre::s3
