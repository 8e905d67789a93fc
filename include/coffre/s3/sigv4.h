#pragma once

// AWS Signature Version 4 for S3, exactly as S3 verifies it: the Authorization header,
// presigned URLs (query auth), and the signatures of aws-chunked payload chunks.
// Spec: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"
#include "coffre/s3/error.h"
#include "coffre/s3/request.h"
#include "coffre/sigv4/sigv4.h"

namespace coffre::s3 {

enum class PayloadMode {
  kSignedHash,                // x-amz-content-sha256 is the hex SHA-256 of the body: verify it
  kUnsigned,                  // UNSIGNED-PAYLOAD (also every presigned URL)
  kStreamingSigned,           // STREAMING-AWS4-HMAC-SHA256-PAYLOAD
  kStreamingSignedTrailer,    // STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER
  kStreamingUnsignedTrailer,  // STREAMING-UNSIGNED-PAYLOAD-TRAILER
};

bool IsStreaming(PayloadMode mode);

// What the caller knows about an access key.
struct Credential {
  std::string tenant_id;
  SecretBytes secret_access_key;  // the secret's characters
};

// Returns the credential, or Error kInvalidAccessKeyId (unknown) / kAccessDenied (disabled).
using CredentialLookup = std::function<Expected<Credential, Error>(std::string_view access_key_id)>;

struct AuthOptions {
  const Clock* clock = &Clock::System();
  std::chrono::seconds max_skew{15 * 60};  // RequestTimeTooSkewed beyond this
  std::chrono::seconds max_presign_expiry{7 * 24 * 3600};
  std::string region;  // empty: accept the region the client signed for
  // Signature Version 2 (header and presigned URLs) accepted; refused as AWS's SigV4-only regions
  // refuse it otherwise.
  bool sigv2 = true;
  // Virtual-hosted-style addressing (<bucket>.<base_domain>): SigV2 signs the bucket named in Host.
  std::string base_domain = "localhost";
};

// The verified identity and what the body still has to prove.
struct AuthResult {
  std::string access_key_id;
  std::string tenant_id;
  bool presigned = false;
  PayloadMode payload_mode = PayloadMode::kUnsigned;
  std::string payload_sha256_hex;  // kSignedHash: the declared hash of the body (lower-case hex)
  // For streaming-signed modes: the inputs of each chunk's string-to-sign.
  std::string amz_date;        // "20130524T000000Z"
  std::string scope;           // "20130524/us-east-1/s3/aws4_request"
  std::string seed_signature;  // hex signature of the request itself
  SecretBytes signing_key;     // derived kSigning (32 bytes); never logged
};

// Authenticates a request signed with the Authorization header or by presigned query parameters,
// SigV4 or, when options.sigv2, SigV2 (s3/sigv2.h).
// Errors: kAccessDenied (anonymous / expired presigned URL / unsigned x-amz-* header / no valid
// date), kAuthorizationHeaderMalformed, kAuthorizationQueryParametersError, kInvalidAccessKeyId
// (also for X-Amz-Security-Token: no temporary credentials exist here), kSignatureDoesNotMatch,
// kRequestTimeTooSkewed, kInvalidRequest (unsupported scheme such as SigV2 when it is off, or no
// x-amz-content-sha256 on a header-signed request, as S3 answers), kInvalidArgument (bad
// x-amz-content-sha256 value, or both header and query auth).
Expected<AuthResult, Error> Authenticate(const HttpRequestView& request, const CredentialLookup& lookup,
                                         const AuthOptions& options);

// Building blocks, exposed for tests and for the chunk decoder.
std::string CanonicalRequest(const HttpRequestView& request, const std::vector<std::string>& signed_headers,
                             std::string_view payload_hash, bool presigned);
using sigv4::DeriveSigningKey;
using sigv4::SignHex;
using sigv4::StringToSign;

// Signature of one aws-chunked chunk ("AWS4-HMAC-SHA256-PAYLOAD" string-to-sign).
std::string ChunkSignature(const AuthResult& auth, std::string_view previous_signature,
                           std::string_view chunk_sha256_hex);
// Signature of the trailer chunk ("AWS4-HMAC-SHA256-TRAILER").
std::string TrailerSignature(const AuthResult& auth, std::string_view previous_signature,
                             std::string_view trailer_sha256_hex);

}  // namespace coffre::s3
