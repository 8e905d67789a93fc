#pragma once

// The pure computations of AWS Signature Version 4 for S3, shared by the side that verifies
// signatures (the s3 module) and the sides that sign (the upstream client, the load generator), so
// both build the canonical request byte for byte alike. Strings and keys in, strings and keys out:
// no request parsing, no clock, no I/O.
// Spec: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/common/secret.h"

namespace coffre::sigv4 {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kTerminal = "aws4_request";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kEmptySha256Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// SigV4 URI encoding: unreserved (A-Z a-z 0-9 - _ . ~) kept, everything else %XX upper-case;
// '/' kept when encode_slash is false.
std::string UriEncode(std::string_view in, bool encode_slash);

// The canonical query string of decoded parameters: names and values URI-encoded, sorted by name
// then value, joined with '&' ("name=" for an empty value).
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& params);

// Header fields as sent or received: names in any case, repeated names repeated.
using HeaderFields = std::vector<std::pair<std::string_view, std::string_view>>;

struct CanonicalRequestParts {
  std::string_view method;
  std::string_view canonical_uri;    // already encoded (S3: each segment once, '/' kept)
  std::string_view canonical_query;  // already canonical (CanonicalQuery)
  const HeaderFields& headers;
  // The signed header names, lower-case, in the order they are listed (sorted, for a signer).
  const std::vector<std::string>& signed_headers;
  std::string_view payload_hash;  // hex SHA-256 of the body, or UNSIGNED-PAYLOAD, ...
};

// The canonical request. Each signed header's values (of every field with that name) are trimmed,
// their inner runs of spaces collapsed, and joined with ','.
std::string CanonicalRequest(const CanonicalRequestParts& parts);

// "20130524/us-east-1/s3/aws4_request" for the date "20130524".
std::string Scope(std::string_view date, std::string_view region, std::string_view service);
std::string StringToSign(std::string_view amz_date, std::string_view scope, std::string_view canonical_request);
// kSigning, 32 bytes; `secret_access_key` holds the secret's characters.
SecretBytes DeriveSigningKey(const SecretBytes& secret_access_key, std::string_view date, std::string_view region,
                             std::string_view service);
std::string SignHex(const SecretBytes& signing_key, std::string_view string_to_sign);

// What a signer needs besides the request. The secret never leaves this struct but to derive keys.
struct SigningCredentials {
  std::string_view access_key_id;
  const SecretBytes& secret_access_key;
  std::string_view region;
  std::string_view service = "s3";
};

// Signs `parts` at `amz_date` ("20130524T000000Z") and returns the Authorization header's value;
// every name in parts.signed_headers must be among parts.headers.
std::string Authorization(const SigningCredentials& credentials, std::string_view amz_date,
                          const CanonicalRequestParts& parts);

}  // namespace coffre::sigv4
