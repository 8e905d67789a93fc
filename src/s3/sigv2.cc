#include "s3/sigv2.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/crypto/hash.h"
#include "s3/router.h"

namespace coffre::s3 {
namespace {

constexpr std::string_view kInvalidDate = "AWS authentication requires a valid Date or x-amz-date header";
constexpr std::string_view kQueryParamsRequired =
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters";
constexpr std::string_view kHeaderInvalid = "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature";

// The query parameters S3 signs as part of the resource (the sub-resources AWS lists, and the
// response-* overrides), plus the ones AWS's SDKs sign for the operations they added since: a
// client that signs one of those gets its answer (often NotImplemented) rather than a mismatch.
// Every query name the router dispatches on is among them, so that no signed request can be
// turned into another operation by a parameter its signature does not cover.
constexpr std::array<std::string_view, 45> kSubResources = {
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "partNumber",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "renameObject",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "select",
    "select-type",
    "session",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
};

bool IsSubResource(std::string_view name) {
  return std::find(kSubResources.begin(), kSubResources.end(), name) != kSubResources.end();
}

bool IsAmzName(std::string_view name) { return name.size() >= 6 && EqualsIgnoreCase(name.substr(0, 6), "x-amz-"); }

// The query parameters a SigV2 presigned URL signs as if they were headers.
bool IsHeaderLikeParam(std::string_view name) {
  return IsAmzName(name) || EqualsIgnoreCase(name, "content-md5") || EqualsIgnoreCase(name, "content-type");
}

// The values of one name, trimmed and joined by ',' in the order received (how SigV2 signs them).
std::string JoinedHeader(const HttpRequestView& request, std::string_view name) {
  std::string out;
  bool first = true;
  for (const auto& [field, value] : request.headers) {
    if (EqualsIgnoreCase(field, name)) {
      if (!first) out += ',';
      first = false;
      out += TrimWhitespace(value);
    }
  }
  return out;
}

std::string JoinedParam(const http::QueryParams& query, std::string_view name) {
  std::string out;
  bool first = true;
  for (const auto& [param, value] : query) {
    if (EqualsIgnoreCase(param, name)) {
      if (!first) out += ',';
      first = false;
      out += TrimWhitespace(value);
    }
  }
  return out;
}

// A header-like query parameter also sent as a header with another value: which one the request
// means is ambiguous (the signature covers one, the handler would read the other).
std::optional<Error> HeaderParamConflict(const HttpRequestView& request, const http::QueryParams& query) {
  for (const auto& [name, value] : query) {
    if (!IsHeaderLikeParam(name) || !request.Header(name)) continue;
    if (JoinedHeader(request, name) != JoinedParam(query, name)) {
      return Error(ErrorCode::kInvalidArgument,
                   "The query parameter " + name + " and the header of the same name have different values.");
    }
  }
  return std::nullopt;
}

// A header value as SigV2 signs it: trimmed, and a line folded onto the next (obsolete HTTP line
// folding) unfolded into a single space.
std::string UnfoldValue(std::string_view value) {
  value = TrimWhitespace(value);
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\r' || c == '\n') {
      while (i + 1 < value.size() &&
             (value[i + 1] == '\r' || value[i + 1] == '\n' || value[i + 1] == ' ' || value[i + 1] == '\t')) {
        ++i;
      }
      while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) {
        out.pop_back();
      }
      out.push_back(' ');
      continue;
    }
    out.push_back(c);
  }
  return out;
}

// Header fields and, for a presigned URL, x-amz-* query parameters (which AWS's SDKs put there
// instead of headers when they presign), each name lower-cased, values of one name joined by ','
// in the order received, sorted by name.
std::string CanonicalAmzHeaders(const HttpRequestView& request, const http::QueryParams& query, bool presigned) {
  std::vector<std::pair<std::string, std::string>> fields;
  const auto add = [&](std::string_view name, std::string_view value) {
    std::string lower = ToLower(name);
    std::string unfolded = UnfoldValue(value);
    for (auto& field : fields) {
      if (field.first == lower) {
        field.second += ',';
        field.second += unfolded;
        return;
      }
    }
    fields.emplace_back(std::move(lower), std::move(unfolded));
  };
  for (const auto& field : request.headers) {
    if (IsAmzName(field.first)) {
      add(field.first, field.second);
    }
  }
  if (presigned) {
    for (const auto& param : query) {
      // A header of the same name carries the same value (the gateway promotes these parameters to
      // headers, and a different value is refused): signed once, as S3 signs it.
      if (IsAmzName(param.first) && !request.Header(param.first)) {
        add(param.first, param.second);
      }
    }
  }
  std::sort(fields.begin(), fields.end());
  std::string out;
  for (const auto& field : fields) {
    out += field.first;
    out += ':';
    out += field.second;
    out += '\n';
  }
  return out;
}

// "/bucket/key" exactly as the client sent it (not decoded), then "?name[=value]&..." for the
// sub-resources, sorted by name, their values decoded.
std::string CanonicalResource(std::string_view path, const http::QueryParams& query,
                              std::string_view virtual_host_bucket) {
  std::string out;
  if (!virtual_host_bucket.empty()) {
    out += '/';
    out += virtual_host_bucket;
  }
  out += path.empty() ? std::string_view("/") : path;
  std::vector<const std::pair<std::string, std::string>*> subresources;
  for (const auto& param : query) {
    if (IsSubResource(param.first)) {
      subresources.push_back(&param);
    }
  }
  std::stable_sort(subresources.begin(), subresources.end(),
                   [](const auto* a, const auto* b) { return a->first < b->first; });
  char separator = '?';
  for (const auto* param : subresources) {
    out += separator;
    separator = '&';
    out += param->first;
    if (!param->second.empty()) {
      out += '=';
      out += param->second;
    }
  }
  return out;
}

// A signed sub-resource's value is signed decoded, after '&' and '=' delimiters: with an '&' inside
// it ("a%26uploadId%3DU1"), the resource it signs reads the same as another request's
// ("...=a&uploadId=U1"), so such a request is refused rather than signed ambiguously.
std::optional<Error> AmbiguousSubResource(const http::QueryParams& query) {
  for (const auto& [name, value] : query) {
    if (IsSubResource(name) && value.find('&') != std::string::npos) {
      return Error(ErrorCode::kInvalidArgument, "The value of the query parameter " + name +
                                                    " contains '&', which AWS Signature Version 2 " +
                                                    "cannot sign unambiguously.");
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> QueryValue(const http::QueryParams& query, std::string_view name) {
  for (const auto& param : query) {
    if (EqualsIgnoreCase(param.first, name)) {
      return param.second;
    }
  }
  return std::nullopt;
}

// The Date or x-amz-date of a SigV2 request: RFC 1123 with GMT, UTC or a numeric zone (clients
// send "+0000"), or the other forms ParseHttpDate knows, or ISO 8601 basic.
std::optional<std::chrono::system_clock::time_point> ParseSigV2Date(std::string_view text) {
  text = TrimWhitespace(text);
  if (std::optional<std::chrono::system_clock::time_point> t = ParseHttpDate(text)) {
    return t;
  }
  if (std::optional<std::chrono::system_clock::time_point> t = ParseAmzDate(text)) {
    return t;
  }
  const size_t space = text.rfind(' ');
  if (space == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view zone = text.substr(space + 1);
  std::chrono::minutes offset{0};
  if (zone == "UTC" || zone == "Z") {
    offset = std::chrono::minutes(0);
  } else if (zone.size() == 5 && (zone[0] == '+' || zone[0] == '-') &&
             std::all_of(zone.begin() + 1, zone.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    const int hours = (zone[1] - '0') * 10 + (zone[2] - '0');
    const int minutes = (zone[3] - '0') * 10 + (zone[4] - '0');
    if (hours > 23 || minutes > 59) {
      return std::nullopt;
    }
    offset = std::chrono::minutes(hours * 60 + minutes);
    if (zone[0] == '-') {
      offset = -offset;
    }
  } else {
    return std::nullopt;
  }
  std::optional<std::chrono::system_clock::time_point> local =
      ParseHttpDate(std::string(text.substr(0, space)) + " GMT");
  if (!local) {
    return std::nullopt;
  }
  return *local - offset;  // the local time minus its offset from UTC
}

std::chrono::system_clock::time_point NowOf(const AuthOptions& options) {
  return (options.clock != nullptr ? options.clock : &Clock::System())->Now();
}

std::string VirtualHostBucketOf(const HttpRequestView& request, const AuthOptions& options) {
  return VirtualHostedBucket(request, options.base_domain).value_or(std::string());
}

// Looks the key up and compares the signature in constant time. A mismatch carries what AWS
// returns with it: the access key, the string to sign and the signature received.
Expected<AuthResult, Error> Verify(const HttpRequestView& request, std::string_view access_key_id,
                                   std::string_view signature, std::vector<std::string> strings_to_sign, bool presigned,
                                   const CredentialLookup& lookup) {
  Expected<Credential, Error> credential = lookup(access_key_id);
  if (!credential.ok()) {
    return std::move(credential).error();
  }
  bool match = false;
  for (const std::string& string_to_sign : strings_to_sign) {
    const std::string expected = SigV2Signature(credential->secret_access_key, string_to_sign);
    match = match || ConstantTimeEquals(AsBytes(expected), AsBytes(signature));
  }
  if (!match) {
    Error mismatch(ErrorCode::kSignatureDoesNotMatch);
    mismatch.access_key_id = std::string(access_key_id);
    mismatch.string_to_sign = std::move(strings_to_sign.front());
    mismatch.signature_provided = std::string(signature);
    return mismatch;
  }
  // SigV2 signs no payload hash. A client that still sends x-amz-content-sha256 (signed, as every
  // x-amz-* header is) gets its body checked against it; aws-chunked bodies signed chunk by chunk
  // need a SigV4 signing key, which SigV2 has not.
  PayloadMode mode = PayloadMode::kUnsigned;
  std::string payload_hash;
  if (std::optional<std::string_view> content_sha256 = request.Header("x-amz-content-sha256")) {
    const std::string_view value = TrimWhitespace(*content_sha256);
    std::optional<PayloadMode> declared = ClassifyContentSha256(value);
    if (!declared || *declared == PayloadMode::kStreamingSigned || *declared == PayloadMode::kStreamingSignedTrailer) {
      return Error(ErrorCode::kInvalidArgument,
                   "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid "
                   "sha256 value with AWS signature version 2.");
    }
    mode = *declared;
    if (mode == PayloadMode::kSignedHash) {
      payload_hash = ToLower(value);
    }
  }
  AuthResult result;
  result.access_key_id = std::string(access_key_id);
  result.tenant_id = credential->tenant_id;
  result.presigned = presigned;
  result.payload_mode = mode;
  result.payload_sha256_hex = std::move(payload_hash);
  return result;
}

std::string BuildStringToSign(const HttpRequestView& request, const http::QueryParams& query,
                              std::string_view date_line, std::string_view virtual_host_bucket, bool presigned,
                              std::string_view path) {
  const auto positional = [&](std::string_view name) {
    if (std::optional<std::string_view> value = request.Header(name)) {
      return std::string(TrimWhitespace(*value));
    }
    // A presigned URL may carry them as query parameters (AWS's SDKs put them there).
    if (presigned) {
      if (std::optional<std::string_view> value = QueryValue(query, name)) {
        return std::string(TrimWhitespace(*value));
      }
    }
    return std::string();
  };
  std::string out;
  out.reserve(256);
  out += request.method;
  out += '\n';
  out += positional("content-md5");
  out += '\n';
  out += positional("content-type");
  out += '\n';
  out += date_line;
  out += '\n';
  out += CanonicalAmzHeaders(request, query, presigned);
  out += CanonicalResource(path, query, virtual_host_bucket);
  return out;
}

// The strings to sign a client may have signed: the first is the resource as sent. A path-style
// request naming a bucket alone ("/bucket") is also accepted signed as "/bucket/", what botocore
// signs (and what S3 therefore accepts): both name the same bucket, so neither widens what the
// signature allows.
std::vector<std::string> StringsToSign(const HttpRequestView& request, const http::QueryParams& query,
                                       std::string_view date_line, std::string_view virtual_host_bucket,
                                       bool presigned) {
  const std::string_view path = http::SplitTarget(request.target).path;
  std::vector<std::string> out;
  out.push_back(BuildStringToSign(request, query, date_line, virtual_host_bucket, presigned, path));
  if (virtual_host_bucket.empty() && path.size() > 1 && path.find('/', 1) == std::string_view::npos) {
    out.push_back(
        BuildStringToSign(request, query, date_line, virtual_host_bucket, presigned, std::string(path) + "/"));
  }
  return out;
}

}  // namespace

std::string SigV2StringToSign(const HttpRequestView& request, const http::QueryParams& query,
                              std::string_view date_line, std::string_view virtual_host_bucket, bool presigned) {
  return BuildStringToSign(request, query, date_line, virtual_host_bucket, presigned,
                           http::SplitTarget(request.target).path);
}

std::string SigV2Signature(const SecretBytes& secret_access_key, std::string_view string_to_sign) {
  return Base64Encode(crypto::HmacSha1(secret_access_key.Reveal(), AsBytes(string_to_sign)));
}

Expected<AuthResult, Error> AuthenticateSigV2Header(const HttpRequestView& request, std::string_view authorization,
                                                    const http::QueryParams& query, const CredentialLookup& lookup,
                                                    const AuthOptions& options) {
  // "AWS AKID:signature"
  std::string_view rest = TrimWhitespace(authorization);
  rest.remove_prefix(std::min<size_t>(rest.size(), 3));
  rest = TrimWhitespace(rest);
  const size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size()) {
    return Error(ErrorCode::kInvalidArgument, std::string(kHeaderInvalid));
  }
  const std::string_view access_key_id = rest.substr(0, colon);
  const std::string_view signature = rest.substr(colon + 1);

  // x-amz-date, when sent, is the request's time and the Date line is left empty.
  std::string date_line;
  std::optional<std::chrono::system_clock::time_point> time;
  if (std::optional<std::string_view> x_amz_date = request.Header("x-amz-date")) {
    time = ParseSigV2Date(*x_amz_date);
  } else if (std::optional<std::string_view> date = request.Header("date")) {
    date_line = std::string(TrimWhitespace(*date));
    time = ParseSigV2Date(date_line);
  }
  if (!time) {
    return Error(ErrorCode::kAccessDenied, std::string(kInvalidDate));
  }
  const auto now = NowOf(options);
  const auto skew = now > *time ? now - *time : *time - now;
  if (skew > options.max_skew) {
    return Error(ErrorCode::kRequestTimeTooSkewed);
  }
  if (request.Header("x-amz-security-token")) {
    return SessionTokenUnsupported();
  }
  if (std::optional<Error> ambiguous = AmbiguousSubResource(query)) {
    return *ambiguous;
  }
  return Verify(request, access_key_id, signature,
                StringsToSign(request, query, date_line, VirtualHostBucketOf(request, options), false),
                /*presigned=*/false, lookup);
}

Expected<AuthResult, Error> AuthenticateSigV2Presigned(const HttpRequestView& request, const http::QueryParams& query,
                                                       const CredentialLookup& lookup, const AuthOptions& options) {
  std::optional<std::string_view> access_key_id;
  std::optional<std::string_view> expires;
  std::optional<std::string_view> signature;
  for (const auto& [name, value] : query) {
    std::optional<std::string_view>* slot = nullptr;
    if (name == "AWSAccessKeyId") {
      slot = &access_key_id;
    } else if (name == "Expires") {
      slot = &expires;
    } else if (name == "Signature") {
      slot = &signature;
    } else {
      continue;
    }
    if (slot->has_value()) {
      return Error(ErrorCode::kInvalidArgument, "The query parameter " + name + " appears twice.");
    }
    *slot = value;
  }
  if (!access_key_id || !expires || !signature || access_key_id->empty() || signature->empty()) {
    return Error(ErrorCode::kAccessDenied, std::string(kQueryParamsRequired));
  }
  int64_t expiry = 0;
  const bool numeric = !expires->empty() && expires->size() <= 12 &&
                       std::all_of(expires->begin(), expires->end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!numeric) {
    return Error(ErrorCode::kAccessDenied, "Invalid date (should be seconds since epoch): " + std::string(*expires));
  }
  for (char c : *expires) {
    expiry = expiry * 10 + (c - '0');
  }
  // Compared in seconds: a far Expires would overflow the clock's finer time_point.
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(NowOf(options).time_since_epoch()).count();
  if (now > expiry) {
    return Error(ErrorCode::kAccessDenied, "Request has expired");
  }
  // S3 sets SigV2 URLs no limit; a URL that never expires is a credential that cannot be revoked
  // short of the key, so the SigV4 limit applies here too.
  if (expiry - now > options.max_presign_expiry.count()) {
    return Error(ErrorCode::kAccessDenied, "Expires is more than " +
                                               std::to_string(options.max_presign_expiry.count()) +
                                               " seconds from now, the longest a presigned URL may be valid here");
  }
  if (request.Header("x-amz-security-token") || QueryValue(query, "x-amz-security-token")) {
    return SessionTokenUnsupported();
  }
  if (std::optional<Error> conflict = HeaderParamConflict(request, query)) {
    return *conflict;
  }
  if (std::optional<Error> ambiguous = AmbiguousSubResource(query)) {
    return *ambiguous;
  }
  return Verify(request, *access_key_id, *signature,
                StringsToSign(request, query, *expires, VirtualHostBucketOf(request, options), true),
                /*presigned=*/true, lookup);
}

bool IsSigV2PresignedQuery(const HttpRequestView& request, const http::QueryParams& query) {
  const auto has = [&](std::string_view name) {
    return std::any_of(query.begin(), query.end(), [&](const auto& p) { return p.first == name; });
  };
  return !has("X-Amz-Algorithm") && (has("Signature") || has("AWSAccessKeyId")) && !request.Header("authorization");
}

bool CoveredByQuery(const HttpRequestView& request, const http::QueryParams& query, std::string_view name) {
  const bool in_query =
      std::any_of(query.begin(), query.end(), [&](const auto& p) { return EqualsIgnoreCase(p.first, name); });
  return in_query && JoinedHeader(request, name) == JoinedParam(query, name);
}

std::optional<Error> PromotePresignedQueryHeaders(HttpRequestView& request, const http::QueryParams& query, bool sigv2,
                                                  std::deque<std::string>& storage) {
  const bool sigv4 =
      std::any_of(query.begin(), query.end(), [](const auto& p) { return p.first == "X-Amz-Algorithm"; });
  if (request.Header("authorization") || (!sigv4 && !(sigv2 && IsSigV2PresignedQuery(request, query)))) {
    return std::nullopt;
  }
  // SigV4 signs these parameters as query parameters (AWS's SDKs hoist x-amz-* headers there), its
  // own X-Amz-* parameters excepted; SigV2 signs x-amz-*, Content-MD5 and Content-Type as headers.
  const auto promoted_name = [&](std::string_view name) {
    if (!sigv4) return IsHeaderLikeParam(name);
    static constexpr std::string_view kAuthParams[] = {"x-amz-algorithm",      "x-amz-credential",    "x-amz-date",
                                                       "x-amz-expires",        "x-amz-signedheaders", "x-amz-signature",
                                                       "x-amz-security-token", "x-amz-content-sha256"};
    return IsAmzName(name) && std::none_of(std::begin(kAuthParams), std::end(kAuthParams),
                                           [&](std::string_view a) { return EqualsIgnoreCase(a, name); });
  };
  for (const auto& [name, value] : query) {
    // No header value can hold a control character; SigV2 would sign a line break unfolded into a
    // space, which is not the value a handler would then read.
    if (promoted_name(name) && std::any_of(value.begin(), value.end(), [](char c) {
          return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
        })) {
      return Error(ErrorCode::kInvalidArgument, "The query parameter " + name + " contains a control character.");
    }
    if (promoted_name(name) && request.Header(name) && !CoveredByQuery(request, query, name)) {
      return Error(ErrorCode::kInvalidArgument,
                   "The query parameter " + name + " and the header of the same name have different values.");
    }
  }
  std::vector<std::pair<std::string_view, std::string_view>> promoted;
  for (const auto& [name, value] : query) {
    if (!promoted_name(name) || request.Header(name)) continue;  // an equal header is already there
    promoted.emplace_back(storage.emplace_back(name), storage.emplace_back(TrimWhitespace(value)));
  }
  request.headers.insert(request.headers.end(), promoted.begin(), promoted.end());
  return std::nullopt;
}

}  // namespace coffre::s3
