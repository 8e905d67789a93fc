#include "coffre/s3/error.h"

namespace coffre::s3 {

const ErrorInfo& Describe(ErrorCode code) {
  static const ErrorInfo kInternal{"InternalError", 500, "We encountered an internal error. Please try again."};
  switch (code) {
#define COFFRE_S3_ERROR(name, status, msg)           \
  case ErrorCode::k##name: {                         \
    static const ErrorInfo info{#name, status, msg}; \
    return info;                                     \
  }
    COFFRE_S3_ERROR(AccessDenied, 403, "Access Denied")
    COFFRE_S3_ERROR(AuthorizationHeaderMalformed, 400, "The authorization header is malformed.")
    COFFRE_S3_ERROR(AuthorizationQueryParametersError, 400,
                    "Error parsing the X-Amz-Credential parameter; the query parameters are malformed.")
    COFFRE_S3_ERROR(BadDigest, 400, "The Content-MD5 or checksum you specified did not match what we received.")
    COFFRE_S3_ERROR(BucketAlreadyExists, 409,
                    "The requested bucket name is not available. The bucket namespace is shared by all users "
                    "of the system. Please select a different name and try again.")
    COFFRE_S3_ERROR(BucketAlreadyOwnedByYou, 409,
                    "Your previous request to create the named bucket succeeded and you already own it.")
    COFFRE_S3_ERROR(BucketNotEmpty, 409, "The bucket you tried to delete is not empty")
    COFFRE_S3_ERROR(EntityTooLarge, 400, "Your proposed upload exceeds the maximum allowed object size.")
    COFFRE_S3_ERROR(EntityTooSmall, 400, "Your proposed upload is smaller than the minimum allowed object size.")
    COFFRE_S3_ERROR(ExpiredToken, 400, "The provided token has expired.")
    COFFRE_S3_ERROR(IncompleteBody, 400,
                    "You did not provide the number of bytes specified by the Content-Length HTTP header.")
    COFFRE_S3_ERROR(InternalError, 500, "We encountered an internal error. Please try again.")
    COFFRE_S3_ERROR(InvalidAccessKeyId, 403, "The AWS Access Key Id you provided does not exist in our records.")
    COFFRE_S3_ERROR(InvalidArgument, 400, "Invalid Argument")
    COFFRE_S3_ERROR(InvalidBucketName, 400, "The specified bucket is not valid.")
    COFFRE_S3_ERROR(InvalidDigest, 400, "The Content-MD5 you specified is not valid.")
    COFFRE_S3_ERROR(InvalidPart, 400,
                    "One or more of the specified parts could not be found. The part may not have been "
                    "uploaded, or the specified entity tag may not match the part's entity tag.")
    COFFRE_S3_ERROR(InvalidPartOrder, 400,
                    "The list of parts was not in ascending order. The parts list must be specified in order "
                    "by part number.")
    COFFRE_S3_ERROR(InvalidRange, 416, "The requested range is not satisfiable")
    COFFRE_S3_ERROR(InvalidRequest, 400, "Invalid Request")
    COFFRE_S3_ERROR(InvalidStorageClass, 400, "The storage class you specified is not valid")
    COFFRE_S3_ERROR(KeyTooLongError, 400, "Your key is too long")
    COFFRE_S3_ERROR(MalformedXML, 400,
                    "The XML you provided was not well-formed or did not validate against our published schema.")
    COFFRE_S3_ERROR(MaxMessageLengthExceeded, 400, "Your request was too big.")
    COFFRE_S3_ERROR(MetadataTooLarge, 400, "Your metadata headers exceed the maximum allowed metadata size.")
    COFFRE_S3_ERROR(MethodNotAllowed, 405, "The specified method is not allowed against this resource.")
    COFFRE_S3_ERROR(MissingContentLength, 411, "You must provide the Content-Length HTTP header.")
    COFFRE_S3_ERROR(MissingSecurityHeader, 400, "Your request is missing a required header.")
    COFFRE_S3_ERROR(NoSuchBucket, 404, "The specified bucket does not exist")
    COFFRE_S3_ERROR(NoSuchKey, 404, "The specified key does not exist.")
    COFFRE_S3_ERROR(NoSuchUpload, 404,
                    "The specified multipart upload does not exist. The upload ID may be invalid, or the upload "
                    "may have been aborted or completed.")
    COFFRE_S3_ERROR(NotImplemented, 501, "A header you provided implies functionality that is not implemented.")
    COFFRE_S3_ERROR(NotModified, 304, "Not Modified")
    COFFRE_S3_ERROR(PreconditionFailed, 412, "At least one of the pre-conditions you specified did not hold")
    COFFRE_S3_ERROR(RequestHeaderSectionTooLarge, 431, "Your request header section exceeds the maximum allowed size.")
    COFFRE_S3_ERROR(RequestTimeout, 400,
                    "Your socket connection to the server was not read from or written to within the timeout period.")
    COFFRE_S3_ERROR(RequestTimeTooSkewed, 403,
                    "The difference between the request time and the current time is too large.")
    COFFRE_S3_ERROR(ServiceUnavailable, 503, "Please reduce your request rate.")
    COFFRE_S3_ERROR(SignatureDoesNotMatch, 403,
                    "The request signature we calculated does not match the signature you provided. Check your "
                    "key and signing method.")
    COFFRE_S3_ERROR(SlowDown, 503, "Please reduce your request rate.")
    COFFRE_S3_ERROR(XAmzContentSHA256Mismatch, 400,
                    "The provided 'x-amz-content-sha256' header does not match what was computed.")
    COFFRE_S3_ERROR(InvalidChunkSizeError, 403, "Only the last chunk is allowed to have a size less than 8192 bytes")
    COFFRE_S3_ERROR(ConditionalRequestConflict, 409,
                    "The conditional request cannot succeed due to a conflicting operation against this resource.")
    COFFRE_S3_ERROR(InvalidObjectState, 403, "The operation is not valid for the current state of the object.")
    COFFRE_S3_ERROR(InvalidPartNumber, 416, "The requested partnumber is not satisfiable")
    COFFRE_S3_ERROR(NoSuchVersion, 404, "The specified version does not exist.")
    COFFRE_S3_ERROR(InvalidLocationConstraint, 400, "The specified location constraint is not valid.")
    COFFRE_S3_ERROR(BadRequest, 400, "Bad Request")
    COFFRE_S3_ERROR(InvalidTag, 400, "The tag provided was not a valid tag.")
    COFFRE_S3_ERROR(NoSuchTagSet, 404, "The TagSet does not exist")
    COFFRE_S3_ERROR(InvalidEncryptionAlgorithmError, 400,
                    "The Encryption request you specified is not valid. Supported value: AES256.")
    COFFRE_S3_ERROR(InvalidBucketState, 409, "The request is not valid with the current state of the bucket.")
    COFFRE_S3_ERROR(ObjectLockConfigurationNotFoundError, 404,
                    "Object Lock configuration does not exist for this bucket")
    COFFRE_S3_ERROR(NoSuchObjectLockConfiguration, 404, "The specified object does not have a ObjectLock configuration")
    COFFRE_S3_ERROR(NoSuchLifecycleConfiguration, 404, "The lifecycle configuration does not exist")
#undef COFFRE_S3_ERROR
    // S3 passes KMS's own error codes through, dotted names that no macro argument can spell.
    case ErrorCode::kKmsNotFound: {
      static const ErrorInfo info{"KMS.NotFoundException", 400, "Invalid keyId"};
      return info;
    }
    case ErrorCode::kKmsInvalidState: {
      static const ErrorInfo info{"KMS.KMSInvalidStateException", 400, "The key is not usable: it was destroyed."};
      return info;
    }
  }
  return kInternal;
}

}  // namespace coffre::s3
