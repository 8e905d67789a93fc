#include "coffre/s3/sigv4.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/http/uri.h"
#include "s3/sigv2.h"

namespace coffre::s3 {
namespace {

using sigv4::kAlgorithm;
using sigv4::kEmptySha256Hex;
using sigv4::kTerminal;
using sigv4::kUnsignedPayload;
constexpr std::string_view kService = "s3";
constexpr std::string_view kStreamingSignedPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
constexpr std::string_view kStreamingSignedPayloadTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
constexpr std::string_view kStreamingUnsignedPayloadTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

constexpr std::string_view kUnsupportedMechanism =
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.";
constexpr std::string_view kHeaderMalformedPrefix = "The authorization header is malformed; ";
constexpr std::string_view kCredentialParamPrefix = "Error parsing the X-Amz-Credential parameter; ";
constexpr std::string_view kQueryParamsRequired =
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, "
    "X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.";
constexpr std::string_view kInvalidDate = "AWS authentication requires a valid Date or x-amz-date header";

// The scope and signature an Authorization header or the presigned query parameters carry.
struct SignatureParams {
  std::string access_key_id;
  std::string date;  // YYYYMMDD
  std::string region;
  std::string service;
  std::vector<std::string> signed_headers;  // lower-case, in the order given
  std::string signature;                    // lower-case hex
};

bool IsHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); });
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsSha256Hex(std::string_view s) { return s.size() == 64 && IsHex(s); }

// The S3 canonical URI: each segment decoded then re-encoded (S3 neither removes '.' / '..' segments
// nor merges double slashes). A segment with a malformed escape is kept as received; Authenticate
// rejects such requests before signing anyway.
std::string CanonicalUri(std::string_view path) {
  if (path.empty()) {
    return "/";
  }
  std::string out;
  out.reserve(path.size() + 16);
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    const std::string_view segment =
        path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (std::optional<std::string> decoded = http::PercentDecode(segment)) {
      out += UriEncode(*decoded, /*encode_slash=*/true);
    } else {
      out += segment;
    }
    if (slash == std::string_view::npos) {
      break;
    }
    out.push_back('/');
    start = slash + 1;
  }
  return out;
}

std::string CanonicalQuery(std::string_view query, bool presigned) {
  std::optional<http::QueryParams> params = http::ParseQuery(query);
  if (!params) {
    return {};
  }
  if (presigned) {
    std::erase_if(*params, [](const auto& param) { return param.first == "X-Amz-Signature"; });
  }
  return sigv4::CanonicalQuery(*params);
}

std::string BuildCanonicalRequest(const HttpRequestView& request, std::string_view canonical_uri,
                                  std::string_view query, const std::vector<std::string>& signed_headers,
                                  std::string_view payload_hash, bool presigned) {
  const std::string canonical_query = CanonicalQuery(query, presigned);
  return sigv4::CanonicalRequest({.method = request.method,
                                  .canonical_uri = canonical_uri,
                                  .canonical_query = canonical_query,
                                  .headers = request.headers,
                                  .signed_headers = signed_headers,
                                  .payload_hash = payload_hash});
}

Error Malformed(bool presigned, std::string_view detail) {
  if (presigned) {
    return Error(ErrorCode::kAuthorizationQueryParametersError,
                 std::string(kCredentialParamPrefix) + std::string(detail));
  }
  return Error(ErrorCode::kAuthorizationHeaderMalformed, std::string(kHeaderMalformedPrefix) + std::string(detail));
}

// Parses "AKID/YYYYMMDD/region/service/aws4_request" and checks the parts that do not depend on
// the request's date.
std::optional<Error> ParseCredential(std::string_view credential, bool presigned, const AuthOptions& options,
                                     SignatureParams& out) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t slash = credential.find('/', start);
    parts.push_back(credential.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) {
      break;
    }
    start = slash + 1;
  }
  if (parts.size() != 5 || parts[0].empty() || parts[1].size() != 8 || !IsDigits(parts[1]) || parts[2].empty()) {
    return Malformed(presigned,
                     "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".");
  }
  if (parts[4] != kTerminal) {
    return Malformed(presigned, "incorrect terminal \"" + std::string(parts[4]) + "\". This endpoint uses \"" +
                                    std::string(kTerminal) + "\".");
  }
  if (parts[3] != kService) {
    return Malformed(presigned, "incorrect service \"" + std::string(parts[3]) + "\". This endpoint belongs to \"" +
                                    std::string(kService) + "\".");
  }
  if (!options.region.empty() && parts[2] != options.region) {
    Error wrong =
        Malformed(presigned, "the region '" + std::string(parts[2]) + "' is wrong; expecting '" + options.region + "'");
    wrong.region = options.region;
    return wrong;
  }
  out.access_key_id = std::string(parts[0]);
  out.date = std::string(parts[1]);
  out.region = std::string(parts[2]);
  out.service = std::string(parts[3]);
  return std::nullopt;
}

std::optional<std::vector<std::string>> ParseSignedHeaders(std::string_view list) {
  std::vector<std::string> names;
  size_t start = 0;
  while (true) {
    const size_t semi = list.find(';', start);
    const std::string_view name =
        list.substr(start, semi == std::string_view::npos ? std::string_view::npos : semi - start);
    if (name.empty() || name.find_first_of(" \t:") != std::string_view::npos) {
      return std::nullopt;
    }
    names.push_back(ToLower(name));
    if (semi == std::string_view::npos) {
      break;
    }
    start = semi + 1;
  }
  return names;
}

// Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...
// Components may be separated by commas and/or whitespace in any amount, as clients differ.
Expected<SignatureParams, Error> ParseAuthorizationHeader(std::string_view value, const AuthOptions& options) {
  value = TrimWhitespace(value);
  const size_t sp = value.find_first_of(" \t");
  const std::string_view scheme = value.substr(0, sp);
  if (scheme != kAlgorithm) {
    if (value.starts_with(kAlgorithm)) {
      return Malformed(false, "a space must separate the algorithm from its components.");
    }
    return Error(ErrorCode::kInvalidRequest, std::string(kUnsupportedMechanism));
  }
  std::string_view rest = sp == std::string_view::npos ? std::string_view() : value.substr(sp);
  std::optional<std::string_view> credential;
  std::optional<std::string_view> signed_headers;
  std::optional<std::string_view> signature;
  const std::string_view kRequiresThree =
      "the authorization header requires three components: Credential, SignedHeaders, and Signature.";
  while (true) {
    const size_t begin = rest.find_first_not_of(", \t");
    if (begin == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(begin);
    const size_t end = rest.find_first_of(", \t");
    const std::string_view token = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    const size_t eq = token.find('=');
    if (eq == std::string_view::npos) {
      return Malformed(false, kRequiresThree);
    }
    const std::string_view key = token.substr(0, eq);
    const std::string_view val = token.substr(eq + 1);
    std::optional<std::string_view>* slot = nullptr;
    if (key == "Credential") {
      slot = &credential;
    } else if (key == "SignedHeaders") {
      slot = &signed_headers;
    } else if (key == "Signature") {
      slot = &signature;
    } else {
      return Malformed(false, "unknown authorization component \"" + std::string(key) + "\".");
    }
    if (slot->has_value()) {
      return Malformed(false, "the authorization component \"" + std::string(key) + "\" appears twice.");
    }
    *slot = val;
  }
  if (!credential || !signed_headers || !signature) {
    return Malformed(false, kRequiresThree);
  }
  SignatureParams params;
  if (std::optional<Error> error = ParseCredential(*credential, false, options, params)) {
    return *std::move(error);
  }
  std::optional<std::vector<std::string>> names = ParseSignedHeaders(*signed_headers);
  if (!names) {
    return Malformed(false, "the SignedHeaders component is mal-formed.");
  }
  params.signed_headers = std::move(*names);
  if (!IsSha256Hex(*signature)) {
    return Malformed(false, "the Signature component must be 64 hexadecimal characters.");
  }
  params.signature = ToLower(*signature);
  return params;
}

// Checks shared by both forms: host is signed, every x-amz-* header present is signed.
std::optional<Error> CheckSignedHeaderSet(const HttpRequestView& request, const SignatureParams& params,
                                          const http::QueryParams* presigned_query) {
  const bool presigned = presigned_query != nullptr;
  const auto is_signed = [&](std::string_view name) {
    return std::any_of(params.signed_headers.begin(), params.signed_headers.end(),
                       [&](const std::string& s) { return EqualsIgnoreCase(s, name); });
  };
  if (!is_signed("host")) {
    if (presigned) {
      return Error(ErrorCode::kAuthorizationQueryParametersError, "X-Amz-SignedHeaders must include host.");
    }
    return Malformed(false, "SignedHeaders must include host.");
  }
  // As S3: an x-amz-* header that is not signed could change what the request does (x-amz-copy-source
  // on a presigned PUT, say), so it is refused rather than ignored.
  for (const auto& [field, value] : request.headers) {
    // A presigned URL's x-amz-* query parameter, promoted to a header (sigv2.h), is signed there.
    if (field.size() >= 6 && EqualsIgnoreCase(field.substr(0, 6), "x-amz-") && !is_signed(field) &&
        !(presigned && !EqualsIgnoreCase(field, "x-amz-signature") &&
          CoveredByQuery(request, *presigned_query, field))) {
      return Error(ErrorCode::kAccessDenied,
                   "There were headers present in the request which were not signed: " + ToLower(field));
    }
  }
  return std::nullopt;
}

std::chrono::system_clock::time_point Now(const AuthOptions& options) {
  return (options.clock != nullptr ? options.clock : &Clock::System())->Now();
}

// The signing key depends only on the secret and the credential scope (date, region, service), so
// one client's requests of one day share it. Each thread keeps the last few it derived (four HMACs
// each), with the secret each came from: a secret changed since is a miss, never a stale key.
SecretBytes SigningKeyFor(const SecretBytes& secret, const SignatureParams& params, std::string_view scope) {
  struct Entry {
    std::string access_key_id;
    std::string scope;
    SecretBytes secret;
    SecretBytes signing_key;
  };
  thread_local std::array<Entry, 4> cache;
  thread_local size_t next_slot = 0;
  for (const Entry& e : cache) {
    if (e.access_key_id == params.access_key_id && e.scope == scope &&
        ConstantTimeEquals(e.secret.Reveal(), secret.Reveal())) {
      return e.signing_key;
    }
  }
  SecretBytes key = DeriveSigningKey(secret, params.date, params.region, params.service);
  Entry& slot = cache[next_slot++ % cache.size()];
  slot.access_key_id = params.access_key_id;
  slot.scope = scope;
  slot.secret = secret;
  slot.signing_key = key;
  return key;
}

// Looks the key up, derives the signing key and compares signatures; fills AuthResult, the payload
// hash included when the request signed one.
Expected<AuthResult, Error> VerifySignature(const HttpRequestView& request, const SignatureParams& params,
                                            std::string amz_date, std::string_view canonical_payload_hash,
                                            PayloadMode mode, bool presigned, const CredentialLookup& lookup) {
  Expected<Credential, Error> credential = lookup(params.access_key_id);
  if (!credential.ok()) {
    return std::move(credential).error();
  }
  AuthResult result;
  result.access_key_id = params.access_key_id;
  result.tenant_id = credential->tenant_id;
  result.presigned = presigned;
  result.amz_date = std::move(amz_date);
  result.scope = params.date + "/" + params.region + "/" + params.service + "/" + std::string(kTerminal);
  result.signing_key = SigningKeyFor(credential->secret_access_key, params, result.scope);

  const http::RequestTarget target = http::SplitTarget(request.target);
  const std::string canonical_uri = CanonicalUri(target.path);
  std::string expected =
      SignHex(result.signing_key,
              StringToSign(result.amz_date, result.scope,
                           BuildCanonicalRequest(request, canonical_uri, target.query, params.signed_headers,
                                                 canonical_payload_hash, presigned)));
  bool match = ConstantTimeEquals(AsBytes(expected), AsBytes(params.signature));
  // A client that left some characters of the path unencoded (or encoded them differently) signed the
  // path exactly as it sent it. That path is what routing decodes, so accepting it is equally safe.
  if (!match && !target.path.empty() && target.path != canonical_uri) {
    expected = SignHex(result.signing_key,
                       StringToSign(result.amz_date, result.scope,
                                    BuildCanonicalRequest(request, target.path, target.query, params.signed_headers,
                                                          canonical_payload_hash, presigned)));
    match = ConstantTimeEquals(AsBytes(expected), AsBytes(params.signature));
  }
  if (!match) {
    // What AWS sends back so that a client can find its signing mistake; none of it is secret.
    Error mismatch(ErrorCode::kSignatureDoesNotMatch);
    mismatch.access_key_id = params.access_key_id;
    mismatch.canonical_request = BuildCanonicalRequest(request, canonical_uri, target.query, params.signed_headers,
                                                       canonical_payload_hash, presigned);
    mismatch.string_to_sign = StringToSign(result.amz_date, result.scope, mismatch.canonical_request);
    mismatch.signature_provided = params.signature;
    return mismatch;
  }
  result.seed_signature = std::move(expected);
  result.payload_mode = mode;
  if (mode == PayloadMode::kSignedHash) {
    result.payload_sha256_hex = ToLower(canonical_payload_hash);
  }
  return result;
}

Expected<AuthResult, Error> AuthenticateHeader(const HttpRequestView& request, std::string_view authorization,
                                               const CredentialLookup& lookup, const AuthOptions& options) {
  Expected<SignatureParams, Error> parsed = ParseAuthorizationHeader(authorization, options);
  if (!parsed.ok()) {
    return std::move(parsed).error();
  }
  const SignatureParams& params = *parsed;

  std::string amz_date;
  std::optional<std::chrono::system_clock::time_point> time;
  if (std::optional<std::string_view> x_amz_date = request.Header("x-amz-date")) {
    amz_date = std::string(TrimWhitespace(*x_amz_date));
    time = ParseAmzDate(amz_date);
  } else if (std::optional<std::string_view> date = request.Header("date")) {
    time = ParseHttpDate(TrimWhitespace(*date));
    if (time) {
      amz_date = FormatAmzDate(*time);
    }
  }
  if (!time) {
    return Error(ErrorCode::kAccessDenied, std::string(kInvalidDate));
  }
  if (amz_date.compare(0, 8, params.date) != 0) {
    return Malformed(false, "Invalid credential date. Date is not the same as X-Amz-Date.");
  }
  const auto now = Now(options);
  const auto skew = now > *time ? now - *time : *time - now;
  if (skew > options.max_skew) {
    return Error(ErrorCode::kRequestTimeTooSkewed);
  }
  if (request.Header("x-amz-security-token")) {
    return SessionTokenUnsupported();
  }

  std::optional<std::string_view> content_sha256 = request.Header("x-amz-content-sha256");
  if (!content_sha256) {
    return Error(ErrorCode::kInvalidRequest, "Missing required header for this request: x-amz-content-sha256");
  }
  const std::string_view payload_hash = TrimWhitespace(*content_sha256);
  std::optional<PayloadMode> mode = ClassifyContentSha256(payload_hash);
  if (!mode) {
    return Error(ErrorCode::kInvalidArgument,
                 "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
                 "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid "
                 "sha256 value.");
  }
  if (std::optional<Error> error = CheckSignedHeaderSet(request, params, nullptr)) {
    return *std::move(error);
  }

  return VerifySignature(request, params, std::move(amz_date), payload_hash, *mode, /*presigned=*/false, lookup);
}

// The X-Amz-* parameters of a presigned URL, views into its query.
struct PresignedParams {
  std::optional<std::string_view> algorithm, credential, date, expires, signed_headers, signature, content_sha256;
  bool security_token = false;
};

// Picks the X-Amz-* parameters out of a presigned URL's query; each may appear only once.
Expected<PresignedParams, Error> CollectPresignedParams(const std::vector<std::pair<std::string, std::string>>& query) {
  PresignedParams found;
  for (const auto& [name, value] : query) {
    std::optional<std::string_view>* slot = nullptr;
    if (name == "X-Amz-Algorithm") {
      slot = &found.algorithm;
    } else if (name == "X-Amz-Credential") {
      slot = &found.credential;
    } else if (name == "X-Amz-Date") {
      slot = &found.date;
    } else if (name == "X-Amz-Expires") {
      slot = &found.expires;
    } else if (name == "X-Amz-SignedHeaders") {
      slot = &found.signed_headers;
    } else if (name == "X-Amz-Signature") {
      slot = &found.signature;
    } else if (name == "X-Amz-Content-Sha256") {
      slot = &found.content_sha256;
    } else if (name == "X-Amz-Security-Token") {
      found.security_token = true;
      continue;
    } else {
      continue;
    }
    if (slot->has_value()) {
      return Error(ErrorCode::kAuthorizationQueryParametersError, "The query parameter " + name + " appears twice.");
    }
    *slot = value;
  }
  return found;
}

// X-Amz-Expires in seconds: a decimal from 1 to the configured maximum, refused with S3's
// message for each way it can be wrong.
Expected<int64_t, Error> ParsePresignedExpiry(std::string_view expires_text, const AuthOptions& options) {
  if (expires_text.starts_with('-') && IsDigits(expires_text.substr(1))) {
    return Error(ErrorCode::kAuthorizationQueryParametersError, "X-Amz-Expires must be non-negative");
  }
  if (!IsDigits(expires_text)) {
    return Error(ErrorCode::kAuthorizationQueryParametersError, "X-Amz-Expires should be a number");
  }
  const int64_t max_expiry = options.max_presign_expiry.count();
  int64_t expiry = 0;
  for (char c : expires_text) {
    expiry = expiry * 10 + (c - '0');
    if (expiry > max_expiry) {
      return Error(ErrorCode::kAuthorizationQueryParametersError,
                   "X-Amz-Expires must be less than a week (in seconds) that is " + std::to_string(max_expiry));
    }
  }
  if (expiry < 1) {
    return Error(ErrorCode::kAuthorizationQueryParametersError, "X-Amz-Expires must be at least 1 second");
  }
  return expiry;
}

Expected<AuthResult, Error> AuthenticatePresigned(const HttpRequestView& request,
                                                  const std::vector<std::pair<std::string, std::string>>& query,
                                                  const CredentialLookup& lookup, const AuthOptions& options) {
  Expected<PresignedParams, Error> collected = CollectPresignedParams(query);
  if (!collected.ok()) {
    return std::move(collected).error();
  }
  const PresignedParams& presigned = *collected;
  if (!presigned.algorithm || *presigned.algorithm != kAlgorithm) {
    return Error(ErrorCode::kAuthorizationQueryParametersError, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
  }
  if (!presigned.credential || !presigned.date || !presigned.expires || !presigned.signed_headers ||
      !presigned.signature) {
    return Error(ErrorCode::kAuthorizationQueryParametersError, std::string(kQueryParamsRequired));
  }
  SignatureParams params;
  if (std::optional<Error> error = ParseCredential(*presigned.credential, true, options, params)) {
    return *std::move(error);
  }
  std::optional<std::vector<std::string>> names = ParseSignedHeaders(*presigned.signed_headers);
  if (!names) {
    return Error(ErrorCode::kAuthorizationQueryParametersError, "X-Amz-SignedHeaders is mal-formed.");
  }
  params.signed_headers = std::move(*names);
  if (!IsSha256Hex(*presigned.signature)) {
    return Error(ErrorCode::kAuthorizationQueryParametersError, "X-Amz-Signature must be 64 hexadecimal characters.");
  }
  params.signature = ToLower(*presigned.signature);

  const std::optional<std::chrono::system_clock::time_point> time = ParseAmzDate(*presigned.date);
  if (!time) {
    return Error(ErrorCode::kAuthorizationQueryParametersError,
                 "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
  }
  if (presigned.date->compare(0, 8, params.date) != 0) {
    return Error(ErrorCode::kAuthorizationQueryParametersError, "Invalid credential date \"" + params.date +
                                                                    "\". This date is not the same as X-Amz-Date: \"" +
                                                                    std::string(presigned.date->substr(0, 8)) + "\".");
  }
  Expected<int64_t, Error> expiry = ParsePresignedExpiry(*presigned.expires, options);
  if (!expiry.ok()) {
    return std::move(expiry).error();
  }
  const auto now = Now(options);
  if (*time - now > options.max_skew) {
    return Error(ErrorCode::kRequestTimeTooSkewed);
  }
  if (now > *time + std::chrono::seconds(*expiry)) {
    return Error(ErrorCode::kAccessDenied, "Request has expired");
  }
  if (presigned.security_token || request.Header("x-amz-security-token")) {
    return SessionTokenUnsupported();
  }
  // Presigned URLs sign UNSIGNED-PAYLOAD, unless the signer put a payload hash into the (signed) query.
  std::string_view payload_hash = kUnsignedPayload;
  PayloadMode mode = PayloadMode::kUnsigned;
  if (presigned.content_sha256) {
    payload_hash = *presigned.content_sha256;
    if (IsSha256Hex(payload_hash)) {
      mode = PayloadMode::kSignedHash;
    } else if (payload_hash != kUnsignedPayload) {
      return Error(ErrorCode::kInvalidArgument,
                   "X-Amz-Content-Sha256 must be UNSIGNED-PAYLOAD or a valid sha256 value.");
    }
  }
  if (std::optional<Error> error = CheckSignedHeaderSet(request, params, &query)) {
    return *std::move(error);
  }

  return VerifySignature(request, params, std::string(*presigned.date), payload_hash, mode, /*presigned=*/true, lookup);
}

// The string to sign for one piece of a streaming upload (a chunk or the trailer): its algorithm, the
// request's date and scope, the signature before it, then the piece's hashes, one a line.
std::string SignStreamingPiece(const AuthResult& auth, std::string_view algorithm, std::string_view previous_signature,
                               std::initializer_list<std::string_view> hashes) {
  std::string sts;
  sts.reserve(256);
  sts += algorithm;
  sts.push_back('\n');
  sts += auth.amz_date;
  sts.push_back('\n');
  sts += auth.scope;
  sts.push_back('\n');
  sts += previous_signature;
  for (std::string_view hash : hashes) {
    sts.push_back('\n');
    sts += hash;
  }
  return SignHex(auth.signing_key, sts);
}

}  // namespace

std::optional<PayloadMode> ClassifyContentSha256(std::string_view value) {
  if (IsSha256Hex(value)) {
    return PayloadMode::kSignedHash;
  }
  if (value == kUnsignedPayload) {
    return PayloadMode::kUnsigned;
  }
  if (value == kStreamingSignedPayload) {
    return PayloadMode::kStreamingSigned;
  }
  if (value == kStreamingSignedPayloadTrailer) {
    return PayloadMode::kStreamingSignedTrailer;
  }
  if (value == kStreamingUnsignedPayloadTrailer) {
    return PayloadMode::kStreamingUnsignedTrailer;
  }
  return std::nullopt;
}

// Session tokens belong to temporary credentials issued by STS; Coffre issues none, so a request
// carrying one was signed with a key we cannot know. We answer InvalidAccessKeyId (403, not retried by
// SDKs) with an explicit message rather than silently ignoring the token: ignoring it would let a
// request authenticate under weaker assumptions than its sender made.
Error SessionTokenUnsupported() {
  return Error(ErrorCode::kInvalidAccessKeyId,
               "Temporary security credentials (X-Amz-Security-Token) are not supported by this endpoint.");
}

bool IsStreaming(PayloadMode mode) {
  return mode == PayloadMode::kStreamingSigned || mode == PayloadMode::kStreamingSignedTrailer ||
         mode == PayloadMode::kStreamingUnsignedTrailer;
}

Expected<AuthResult, Error> Authenticate(const HttpRequestView& request, const CredentialLookup& lookup,
                                         const AuthOptions& options) {
  const http::RequestTarget target = http::SplitTarget(request.target);
  if (!http::PercentDecode(target.path)) {
    return Error(ErrorCode::kInvalidRequest, "Couldn't parse the specified URI.");
  }
  std::optional<http::QueryParams> query = http::ParseQuery(target.query);
  if (!query) {
    return Error(ErrorCode::kInvalidRequest, "Couldn't parse the specified URI.");
  }
  const auto has_param = [&](std::string_view name) {
    return std::any_of(query->begin(), query->end(), [&](const auto& p) { return p.first == name; });
  };
  const std::optional<std::string_view> authorization = request.Header("authorization");
  const bool query_auth = has_param("X-Amz-Algorithm");
  // A Signature Version 2 presigned URL.
  const bool query_auth_v2 = !query_auth && (has_param("Signature") || has_param("AWSAccessKeyId"));
  // With SigV2 off, Signature and AWSAccessKeyId are ordinary query parameters to a header-signed
  // request (its signature covers them), not a second mechanism.
  if (authorization && (query_auth || (query_auth_v2 && options.sigv2))) {
    return Error(ErrorCode::kInvalidArgument,
                 "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
                 "string parameter or the Authorization header should be specified");
  }
  if (authorization) {
    const std::string_view value = TrimWhitespace(*authorization);
    if (value.starts_with("AWS ") || value.starts_with("AWS\t")) {  // Signature Version 2
      if (!options.sigv2) {
        return Error(ErrorCode::kInvalidRequest, std::string(kUnsupportedMechanism));
      }
      return AuthenticateSigV2Header(request, value, *query, lookup, options);
    }
    return AuthenticateHeader(request, *authorization, lookup, options);
  }
  if (query_auth) {
    return AuthenticatePresigned(request, *query, lookup, options);
  }
  if (query_auth_v2) {
    if (!options.sigv2) {
      return Error(ErrorCode::kInvalidRequest, std::string(kUnsupportedMechanism));
    }
    return AuthenticateSigV2Presigned(request, *query, lookup, options);
  }
  return Error(ErrorCode::kAccessDenied,
               "Anonymous requests are not allowed; sign requests with AWS Signature Version 4.");
}

std::string CanonicalRequest(const HttpRequestView& request, const std::vector<std::string>& signed_headers,
                             std::string_view payload_hash, bool presigned) {
  const http::RequestTarget target = http::SplitTarget(request.target);
  return BuildCanonicalRequest(request, CanonicalUri(target.path), target.query, signed_headers, payload_hash,
                               presigned);
}

std::string ChunkSignature(const AuthResult& auth, std::string_view previous_signature,
                           std::string_view chunk_sha256_hex) {
  return SignStreamingPiece(auth, "AWS4-HMAC-SHA256-PAYLOAD", previous_signature, {kEmptySha256Hex, chunk_sha256_hex});
}

std::string TrailerSignature(const AuthResult& auth, std::string_view previous_signature,
                             std::string_view trailer_sha256_hex) {
  return SignStreamingPiece(auth, "AWS4-HMAC-SHA256-TRAILER", previous_signature, {trailer_sha256_hex});
}

}  // namespace coffre::s3
