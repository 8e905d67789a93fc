#pragma once

// AWS Signature Version 2 for S3, as S3 verifies it: the "Authorization: AWS AKID:signature"
// header and presigned URLs (AWSAccessKeyId, Expires, Signature). Authenticate (sigv4.h) calls
// these when the configuration allows SigV2; the string to sign is exposed for tests.
// Spec: https://docs.aws.amazon.com/AmazonS3/latest/API/RESTAuthentication.html

#include <optional>
#include <string>
#include <string_view>

#include "coffre/common/secret.h"
#include "coffre/http/uri.h"
#include "coffre/s3/error.h"
#include "coffre/s3/request.h"
#include "coffre/s3/sigv4.h"

namespace coffre::s3 {

// The string to sign: the method, Content-MD5, Content-Type, `date_line` (the Date header, empty
// when x-amz-date is sent; a presigned URL's Expires), the x-amz-* headers (for a presigned URL also
// its x-amz-* query parameters) and the resource: "/bucket/key" as sent (the bucket taken from Host
// when `virtual_host_bucket` is set), then the sub-resources of the query, sorted.
std::string SigV2StringToSign(const HttpRequestView& request, const http::QueryParams& query,
                              std::string_view date_line, std::string_view virtual_host_bucket, bool presigned);

// base64(HMAC-SHA1(secret, string_to_sign)).
std::string SigV2Signature(const SecretBytes& secret_access_key, std::string_view string_to_sign);

// The two ways a request is signed with SigV2. `authorization` is the header's value, "AWS ...".
Expected<AuthResult, Error> AuthenticateSigV2Header(const HttpRequestView& request, std::string_view authorization,
                                                    const http::QueryParams& query, const CredentialLookup& lookup,
                                                    const AuthOptions& options);
Expected<AuthResult, Error> AuthenticateSigV2Presigned(const HttpRequestView& request, const http::QueryParams& query,
                                                       const CredentialLookup& lookup, const AuthOptions& options);

// Shared with SigV4 (sigv4.cc).
Error SessionTokenUnsupported();
std::optional<PayloadMode> ClassifyContentSha256(std::string_view value);

}  // namespace coffre::s3
