#pragma once

// AWS Signature Version 2 for S3, as S3 verifies it: the "Authorization: AWS AKID:signature"
// header and presigned URLs (AWSAccessKeyId, Expires, Signature). Authenticate (sigv4.h) calls
// these when the configuration allows SigV2; the string to sign is exposed for tests.
// Spec: https://docs.aws.amazon.com/AmazonS3/latest/API/RESTAuthentication.html

#include <deque>
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

// Whether the request is authenticated as a SigV2 presigned URL (AWSAccessKeyId or Signature in
// its query, neither X-Amz-Algorithm nor an Authorization header).
bool IsSigV2PresignedQuery(const HttpRequestView& request, const http::QueryParams& query);

// A presigned URL signs header-like query parameters, which S3 acts on as the headers they stand
// for (AWS's SDKs move headers there when they presign): for SigV2 the x-amz-*, Content-MD5 and
// Content-Type ones (signed as headers), for SigV4 the x-amz-* ones but its own X-Amz-* parameters
// (signed as query parameters). Appends each to `request.headers` (their text kept in `storage`)
// unless a header of that name is sent with the same value; a different value is InvalidArgument.
// Nothing for a header-signed request, nor for SigV2 when `sigv2` is off. Called before routing, so
// that the request does what its signature covers.
std::optional<Error> PromotePresignedQueryHeaders(HttpRequestView& request, const http::QueryParams& query, bool sigv2,
                                                  std::deque<std::string>& storage);

// Whether the query carries `name` with the values (joined by ',') the request's headers of that
// name have: such a header of a presigned URL is covered by the signed query.
bool CoveredByQuery(const HttpRequestView& request, const http::QueryParams& query, std::string_view name);

// Shared with SigV4 (sigv4.cc).
Error SessionTokenUnsupported();
std::optional<PayloadMode> ClassifyContentSha256(std::string_view value);

}  // namespace coffre::s3
