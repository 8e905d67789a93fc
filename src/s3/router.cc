#include "router.h"

#include <array>

#include "coffre/http/uri.h"
#include "coffre/s3/bucket_name.h"

namespace coffre::s3 {
namespace {

constexpr size_t kMaxKeyBytes = 1024;

// Subresources S3 has and Coffre does not implement yet: answered with NotImplemented,
// never silently treated as a plain object or bucket request.
constexpr std::array<std::string_view, 28> kUnsupportedSubresources = {
    "accelerate",        "analytics",     "cors",         "intelligent-tiering", "inventory",
    "lifecycle",         "logging",       "metrics",      "notification",        "object-lock",
    "ownershipControls", "policy",        "policyStatus", "publicAccessBlock",   "replication",
    "requestPayment",    "tagging",       "website",      "legal-hold",          "retention",
    "torrent",           "restore",       "select",       "attributes",          "renameObject",
    "session",           "metadataTable", "acl"};

Error KeyError(std::string_view key) {
  if (key.size() > kMaxKeyBytes) {
    return Error(ErrorCode::kKeyTooLongError);
  }
  return Error(ErrorCode::kInvalidArgument, "Object key is not valid");
}

bool IsValidKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    return false;
  }
  if (key.find('\0') != std::string_view::npos) {
    return false;
  }
  // A ".." segment would be harmless here (keys never become paths) but it breaks every client
  // that maps keys to files, so it is refused as bad input.
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) {
      end = key.size();
    }
    if (key.substr(start, end - start) == "..") {
      return false;
    }
    start = end + 1;
  }
  return true;
}

// What a request addresses: the service (no bucket), a bucket (no key) or an object.
enum class Target { kService, kBucket, kObject };

// When a routing rule applies, judged on the query string alone.
struct Condition {
  enum class Kind {
    kAlways,       // every request
    kHas,          // the query names `param`, and `also` when it is set
    kEquals,       // the query's first `param` has the value `value`
    kUnsupported,  // the query names one of kUnsupportedSubresources
  };
  Kind kind = Kind::kAlways;
  std::string_view param;
  std::string_view also;
  std::string_view value;
};

constexpr Condition Always() { return {}; }
constexpr Condition Has(std::string_view param, std::string_view also = {}) {
  return {Condition::Kind::kHas, param, also};
}
constexpr Condition Equals(std::string_view param, std::string_view value) {
  return {Condition::Kind::kEquals, param, {}, value};
}
constexpr Condition Unsupported() { return {Condition::Kind::kUnsupported}; }

// What a matching rule decides: an operation (its copying twin when the request names an
// x-amz-copy-source), or an S3 error.
struct Outcome {
  Operation op = Operation::kListBuckets;
  Operation op_with_copy_source = Operation::kListBuckets;
  bool refused = false;
  ErrorCode error = ErrorCode::kInternalError;
  std::string_view message;  // empty: the error's default message
};

constexpr Outcome To(Operation op) { return {op, op}; }
constexpr Outcome ToOrCopy(Operation op, Operation copy) { return {op, copy}; }
constexpr Outcome Refuse(ErrorCode error, std::string_view message = {}) {
  return {Operation::kListBuckets, Operation::kListBuckets, true, error, message};
}

constexpr Outcome kBucketSubresourceNotImplemented =
    Refuse(ErrorCode::kNotImplemented, "This bucket subresource is not implemented");
constexpr Outcome kObjectSubresourceNotImplemented =
    Refuse(ErrorCode::kNotImplemented, "This object subresource is not implemented");
constexpr Outcome kPostNotImplemented = Refuse(ErrorCode::kNotImplemented, "This POST request is not implemented");
constexpr Outcome kPartNeedsBoth = Refuse(ErrorCode::kInvalidRequest, "UploadPart needs both uploadId and partNumber");

struct Rule {
  std::string_view method;
  Target target;
  Condition when;
  Outcome outcome;
};

// The routing table. The first rule that matches the request's method, target and query decides;
// a request that no rule matches is MethodNotAllowed. Within one method and target the rules go
// from the implemented subresources, through the unsupported ones, to the plain request, so that
// a subresource Coffre does not implement is never served as the plain request.
// clang-format off
constexpr Rule kRules[] = {
    {"GET",    Target::kService, Always(),                       To(Operation::kListBuckets)},

    {"GET",    Target::kBucket,  Has("location"),                To(Operation::kGetBucketLocation)},
    {"GET",    Target::kBucket,  Has("acl"),                     To(Operation::kGetBucketAcl)},
    {"GET",    Target::kBucket,  Has("versioning"),              To(Operation::kGetBucketVersioning)},
    {"GET",    Target::kBucket,  Has("versions"),                To(Operation::kListObjectVersions)},
    {"GET",    Target::kBucket,  Has("uploads"),                 To(Operation::kListMultipartUploads)},
    {"GET",    Target::kBucket,  Has("tagging"),                 To(Operation::kGetBucketTagging)},
    {"GET",    Target::kBucket,  Has("encryption"),              To(Operation::kGetBucketEncryption)},
    {"GET",    Target::kBucket,  Has("object-lock"),             To(Operation::kGetObjectLockConfiguration)},
    {"GET",    Target::kBucket,  Has("lifecycle"),               To(Operation::kGetBucketLifecycleConfiguration)},
    {"GET",    Target::kBucket,  Unsupported(),                  kBucketSubresourceNotImplemented},
    {"GET",    Target::kBucket,  Equals("list-type", "2"),       To(Operation::kListObjectsV2)},
    {"GET",    Target::kBucket,  Always(),                       To(Operation::kListObjects)},
    // A HEAD of a bucket subresource is its GET, answered without a body.
    {"HEAD",   Target::kBucket,  Has("location"),                To(Operation::kGetBucketLocation)},
    {"HEAD",   Target::kBucket,  Has("acl"),                     To(Operation::kGetBucketAcl)},
    {"HEAD",   Target::kBucket,  Has("versioning"),              To(Operation::kGetBucketVersioning)},
    {"HEAD",   Target::kBucket,  Has("versions"),                To(Operation::kListObjectVersions)},
    {"HEAD",   Target::kBucket,  Has("uploads"),                 To(Operation::kListMultipartUploads)},
    {"HEAD",   Target::kBucket,  Unsupported(),                  kBucketSubresourceNotImplemented},
    {"HEAD",   Target::kBucket,  Always(),                       To(Operation::kHeadBucket)},
    {"PUT",    Target::kBucket,  Has("tagging"),                 To(Operation::kPutBucketTagging)},
    {"PUT",    Target::kBucket,  Has("encryption"),              To(Operation::kPutBucketEncryption)},
    {"PUT",    Target::kBucket,  Has("object-lock"),             To(Operation::kPutObjectLockConfiguration)},
    {"PUT",    Target::kBucket,  Has("lifecycle"),               To(Operation::kPutBucketLifecycleConfiguration)},
    {"PUT",    Target::kBucket,  Unsupported(),                  kBucketSubresourceNotImplemented},
    {"PUT",    Target::kBucket,  Has("versioning"),              To(Operation::kPutBucketVersioning)},
    {"PUT",    Target::kBucket,  Always(),                       To(Operation::kCreateBucket)},
    {"DELETE", Target::kBucket,  Has("tagging"),                 To(Operation::kDeleteBucketTagging)},
    {"DELETE", Target::kBucket,  Has("encryption"),              To(Operation::kDeleteBucketEncryption)},
    {"DELETE", Target::kBucket,  Has("lifecycle"),               To(Operation::kDeleteBucketLifecycle)},
    {"DELETE", Target::kBucket,  Unsupported(),                  kBucketSubresourceNotImplemented},
    {"DELETE", Target::kBucket,  Always(),                       To(Operation::kDeleteBucket)},
    {"POST",   Target::kBucket,  Has("delete"),                  To(Operation::kDeleteObjects)},
    {"POST",   Target::kBucket,  Always(),                       kPostNotImplemented},

    {"GET",    Target::kObject,  Has("uploadId"),                To(Operation::kListParts)},
    {"GET",    Target::kObject,  Has("acl"),                     To(Operation::kGetObjectAcl)},
    {"GET",    Target::kObject,  Has("tagging"),                 To(Operation::kGetObjectTagging)},
    {"GET",    Target::kObject,  Has("attributes"),              To(Operation::kGetObjectAttributes)},
    {"GET",    Target::kObject,  Has("retention"),               To(Operation::kGetObjectRetention)},
    {"GET",    Target::kObject,  Has("legal-hold"),              To(Operation::kGetObjectLegalHold)},
    {"GET",    Target::kObject,  Unsupported(),                  kObjectSubresourceNotImplemented},
    {"GET",    Target::kObject,  Always(),                       To(Operation::kGetObject)},
    {"HEAD",   Target::kObject,  Has("uploadId"),                Refuse(ErrorCode::kMethodNotAllowed)},
    {"HEAD",   Target::kObject,  Has("acl"),                     Refuse(ErrorCode::kMethodNotAllowed)},
    {"HEAD",   Target::kObject,  Unsupported(),                  kObjectSubresourceNotImplemented},
    {"HEAD",   Target::kObject,  Always(),                       To(Operation::kHeadObject)},
    {"PUT",    Target::kObject,  Has("uploadId", "partNumber"),  ToOrCopy(Operation::kUploadPart,
                                                                          Operation::kUploadPartCopy)},
    {"PUT",    Target::kObject,  Has("uploadId"),                kPartNeedsBoth},
    {"PUT",    Target::kObject,  Has("partNumber"),              kPartNeedsBoth},
    {"PUT",    Target::kObject,  Has("tagging"),                 To(Operation::kPutObjectTagging)},
    {"PUT",    Target::kObject,  Has("retention"),               To(Operation::kPutObjectRetention)},
    {"PUT",    Target::kObject,  Has("legal-hold"),              To(Operation::kPutObjectLegalHold)},
    // PutObject and CopyObject take no versionId: a version is never written in place.
    {"PUT",    Target::kObject,  Has("versionId"),               kObjectSubresourceNotImplemented},
    {"PUT",    Target::kObject,  Unsupported(),                  kObjectSubresourceNotImplemented},
    {"PUT",    Target::kObject,  Always(),                       ToOrCopy(Operation::kPutObject,
                                                                          Operation::kCopyObject)},
    {"POST",   Target::kObject,  Has("uploads"),                 To(Operation::kCreateMultipartUpload)},
    {"POST",   Target::kObject,  Has("uploadId"),                To(Operation::kCompleteMultipartUpload)},
    {"POST",   Target::kObject,  Always(),                       kPostNotImplemented},
    {"DELETE", Target::kObject,  Has("uploadId"),                To(Operation::kAbortMultipartUpload)},
    {"DELETE", Target::kObject,  Has("tagging"),                 To(Operation::kDeleteObjectTagging)},
    {"DELETE", Target::kObject,  Unsupported(),                  kObjectSubresourceNotImplemented},
    {"DELETE", Target::kObject,  Always(),                       To(Operation::kDeleteObject)},
};
// clang-format on

bool NamesUnsupportedSubresource(const Query& query) {
  for (auto sub : kUnsupportedSubresources) {
    if (query.Has(sub)) {
      return true;
    }
  }
  return false;
}

bool Holds(const Condition& condition, const Query& query) {
  switch (condition.kind) {
    case Condition::Kind::kAlways:
      return true;
    case Condition::Kind::kHas:
      return query.Has(condition.param) && (condition.also.empty() || query.Has(condition.also));
    case Condition::Kind::kEquals:
      return query.Get(condition.param) == condition.value;
    case Condition::Kind::kUnsupported:
      return NamesUnsupportedSubresource(query);
  }
  return false;
}

const Rule* FindRule(std::string_view method, Target target, const Query& query) {
  for (const Rule& rule : kRules) {
    if (rule.method == method && rule.target == target && Holds(rule.when, query)) {
      return &rule;
    }
  }
  return nullptr;
}

// The bucket, key and query that a request names, path style (/bucket/key) or virtual-hosted
// style (Host: bucket.base_domain, path /key); its operation is left to the routing table.
Expected<Route, Error> ParseBucketAndKey(const HttpRequestView& request, const RouterOptions& options) {
  const auto [path, raw_query] = http::SplitTarget(request.target);
  if (path.empty() || path.front() != '/') {
    return Error(ErrorCode::kInvalidRequest, "Invalid request target");
  }
  auto params = http::ParseQuery(raw_query);
  if (!params) {
    return Error(ErrorCode::kInvalidArgument, "Invalid query string encoding");
  }

  Route route;
  route.query = Query(std::move(*params));

  std::string_view rest = path.substr(1);
  if (std::optional<std::string> bucket = VirtualHostedBucket(request, options.base_domain)) {
    route.bucket = std::move(*bucket);
  } else {
    size_t slash = rest.find('/');
    auto decoded = http::PercentDecode(rest.substr(0, slash));
    if (!decoded) {
      return Error(ErrorCode::kInvalidArgument, "Invalid bucket name encoding");
    }
    route.bucket = std::move(*decoded);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  if (!rest.empty()) {
    auto key = http::PercentDecode(rest);
    if (!key) {
      return Error(ErrorCode::kInvalidArgument, "Invalid key encoding");
    }
    route.key = std::move(*key);
  }
  route.resource = "/" + route.bucket + (route.key.empty() ? "" : "/" + route.key);
  return route;
}

Target TargetOf(const Route& route) {
  if (route.bucket.empty()) {
    return Target::kService;
  }
  return route.key.empty() ? Target::kBucket : Target::kObject;
}

}  // namespace

std::optional<std::string> VirtualHostedBucket(const HttpRequestView& request, std::string_view base_domain) {
  // The bucket is the Host's first labels before the base domain.
  std::string host(request.Header("host").value_or(""));
  if (auto colon = host.rfind(':'); colon != std::string::npos && host.find(']') == std::string::npos) {
    host.resize(colon);
  }
  host = ToLower(host);
  const std::string suffix = "." + std::string(base_domain);
  if (!base_domain.empty() && host.size() > suffix.size() && host.ends_with(suffix)) {
    return host.substr(0, host.size() - suffix.size());
  }
  return std::nullopt;
}

std::string_view OperationName(Operation op) {
  switch (op) {
    case Operation::kListBuckets:
      return "ListBuckets";
    case Operation::kCreateBucket:
      return "CreateBucket";
    case Operation::kHeadBucket:
      return "HeadBucket";
    case Operation::kDeleteBucket:
      return "DeleteBucket";
    case Operation::kGetBucketLocation:
      return "GetBucketLocation";
    case Operation::kGetBucketAcl:
      return "GetBucketAcl";
    case Operation::kGetBucketVersioning:
      return "GetBucketVersioning";
    case Operation::kGetObjectLockConfiguration:
      return "GetObjectLockConfiguration";
    case Operation::kPutObjectLockConfiguration:
      return "PutObjectLockConfiguration";
    case Operation::kGetObjectRetention:
      return "GetObjectRetention";
    case Operation::kPutObjectRetention:
      return "PutObjectRetention";
    case Operation::kGetObjectLegalHold:
      return "GetObjectLegalHold";
    case Operation::kPutObjectLegalHold:
      return "PutObjectLegalHold";
    case Operation::kGetBucketLifecycleConfiguration:
      return "GetBucketLifecycleConfiguration";
    case Operation::kPutBucketLifecycleConfiguration:
      return "PutBucketLifecycleConfiguration";
    case Operation::kDeleteBucketLifecycle:
      return "DeleteBucketLifecycle";
    case Operation::kPutBucketVersioning:
      return "PutBucketVersioning";
    case Operation::kListObjectVersions:
      return "ListObjectVersions";
    case Operation::kListObjectsV2:
      return "ListObjectsV2";
    case Operation::kListObjects:
      return "ListObjects";
    case Operation::kListMultipartUploads:
      return "ListMultipartUploads";
    case Operation::kDeleteObjects:
      return "DeleteObjects";
    case Operation::kPutObject:
      return "PutObject";
    case Operation::kCopyObject:
      return "CopyObject";
    case Operation::kGetObject:
      return "GetObject";
    case Operation::kHeadObject:
      return "HeadObject";
    case Operation::kDeleteObject:
      return "DeleteObject";
    case Operation::kGetObjectAcl:
      return "GetObjectAcl";
    case Operation::kGetObjectTagging:
      return "GetObjectTagging";
    case Operation::kGetObjectAttributes:
      return "GetObjectAttributes";
    case Operation::kPutObjectTagging:
      return "PutObjectTagging";
    case Operation::kDeleteObjectTagging:
      return "DeleteObjectTagging";
    case Operation::kGetBucketTagging:
      return "GetBucketTagging";
    case Operation::kPutBucketTagging:
      return "PutBucketTagging";
    case Operation::kDeleteBucketTagging:
      return "DeleteBucketTagging";
    case Operation::kGetBucketEncryption:
      return "GetBucketEncryption";
    case Operation::kPutBucketEncryption:
      return "PutBucketEncryption";
    case Operation::kDeleteBucketEncryption:
      return "DeleteBucketEncryption";
    case Operation::kCreateMultipartUpload:
      return "CreateMultipartUpload";
    case Operation::kUploadPart:
      return "UploadPart";
    case Operation::kUploadPartCopy:
      return "UploadPartCopy";
    case Operation::kCompleteMultipartUpload:
      return "CompleteMultipartUpload";
    case Operation::kAbortMultipartUpload:
      return "AbortMultipartUpload";
    case Operation::kListParts:
      return "ListParts";
  }
  return "Unknown";
}

bool Query::Has(std::string_view name) const {
  for (const auto& [k, v] : params_) {
    if (k == name) {
      return true;
    }
  }
  return false;
}

std::optional<std::string> Query::Get(std::string_view name) const {
  for (const auto& [k, v] : params_) {
    if (k == name) {
      return v;
    }
  }
  return std::nullopt;
}

Expected<Route, Error> RouteRequest(const HttpRequestView& request, const RouterOptions& options) {
  Expected<Route, Error> parsed = ParseBucketAndKey(request, options);
  if (!parsed.ok()) {
    return parsed;
  }
  Route route = std::move(parsed).value();
  const std::string_view method = request.method;
  const Target target = TargetOf(route);
  // CreateBucket reports InvalidBucketName itself; anything else on a malformed name is a bucket
  // that cannot exist.
  if (target != Target::kService && !IsValidBucketName(route.bucket) &&
      !(method == "PUT" && target == Target::kBucket)) {
    return Error(ErrorCode::kNoSuchBucket);
  }
  if (target == Target::kObject && !IsValidKey(route.key)) {
    return KeyError(route.key);
  }
  const Rule* rule = FindRule(method, target, route.query);
  if (rule == nullptr) {
    return Error(ErrorCode::kMethodNotAllowed);
  }
  const Outcome& outcome = rule->outcome;
  if (outcome.refused) {
    return Error(outcome.error, std::string(outcome.message));
  }
  route.op = request.Header("x-amz-copy-source").has_value() ? outcome.op_with_copy_source : outcome.op;
  return route;
}

}  // namespace coffre::s3
