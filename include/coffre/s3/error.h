#pragma once

// Every S3 error Coffre can answer, with its code, HTTP status and default message: the one
// table (as MinIO's api-errors.go) through which internal errors become S3 errors at the edge.

#include <chrono>
#include <string>
#include <string_view>

namespace coffre::s3 {

enum class ErrorCode {
  kAccessDenied,
  kAuthorizationHeaderMalformed,
  kAuthorizationQueryParametersError,
  kBadDigest,
  kBucketAlreadyExists,
  kBucketAlreadyOwnedByYou,
  kBucketNotEmpty,
  kEntityTooLarge,
  kEntityTooSmall,
  kExpiredToken,
  kIncompleteBody,
  kInternalError,
  kInvalidAccessKeyId,
  kInvalidArgument,
  kInvalidBucketName,
  kInvalidDigest,
  kInvalidPart,
  kInvalidPartOrder,
  kInvalidRange,
  kInvalidRequest,
  kInvalidStorageClass,
  kKeyTooLongError,
  kMalformedXML,
  kMaxMessageLengthExceeded,
  kMetadataTooLarge,
  kMethodNotAllowed,
  kMissingContentLength,
  kMissingSecurityHeader,
  kNoSuchBucket,
  kNoSuchKey,
  kNoSuchUpload,
  kNotImplemented,
  kNotModified,
  kPreconditionFailed,
  kRequestHeaderSectionTooLarge,
  kRequestTimeout,
  kRequestTimeTooSkewed,
  kServiceUnavailable,
  kSignatureDoesNotMatch,
  kSlowDown,
  kXAmzContentSHA256Mismatch,
  kInvalidChunkSizeError,
  kConditionalRequestConflict,
  kInvalidObjectState,
  kInvalidPartNumber,
  kNoSuchVersion,
  kInvalidLocationConstraint,
  kBadRequest,
  kInvalidTag,
  kNoSuchTagSet,
  kInvalidEncryptionAlgorithmError,
  kInvalidBucketState,
  kObjectLockConfigurationNotFoundError,
  kNoSuchObjectLockConfiguration,
  kNoSuchLifecycleConfiguration,
  kKmsNotFound,      // "KMS.NotFoundException": the key an SSE-KMS request names does not exist
  kKmsInvalidState,  // "KMS.KMSInvalidStateException": that key cannot be used (destroyed)
};

struct ErrorInfo {
  std::string_view code;  // as in the XML <Code>
  int http_status;
  std::string_view message;  // S3's default message
};

const ErrorInfo& Describe(ErrorCode code);

// An S3 error value: the code plus, optionally, a more specific message and the resource.
struct Error {
  ErrorCode code = ErrorCode::kInternalError;
  std::string message;   // empty: the default message from the table
  std::string resource;  // filled in by the router when empty
  // For the log only, never sent: what went wrong inside, when the client is told no more than
  // "InternalError" or "ServiceUnavailable".
  std::string cause;
  // A request signed for another region: the one to sign for, sent as <Region> (as AWS does, so
  // that clients which guessed the region, such as s3cmd's "US", sign again for the right one).
  std::string region;
  // SignatureDoesNotMatch: what AWS sends back so that a client can find its signing mistake: the
  // access key, the string the server signed, the signature received and, for SigV4, the canonical
  // request. None is secret; they go to the error document only, never to a log line.
  std::string access_key_id;
  std::string string_to_sign;
  std::string signature_provided;
  std::string canonical_request;
  // NoSuchKey or MethodNotAllowed because of a delete marker: its version id and Last-Modified,
  // sent with x-amz-delete-marker: true.
  std::string delete_marker_version_id;
  std::chrono::system_clock::time_point delete_marker_last_modified{};

  Error() = default;
  Error(ErrorCode c, std::string msg = {}) : code(c), message(std::move(msg)) {}  // NOLINT
  int http_status() const { return Describe(code).http_status; }
  std::string_view code_name() const { return Describe(code).code; }
  std::string_view effective_message() const {
    return message.empty() ? Describe(code).message : std::string_view(message);
  }
};

}  // namespace coffre::s3
