#include "router.h"

#include <array>

#include "coffre/http/uri.h"

namespace coffre::s3 {
namespace {

constexpr size_t kMaxKeyBytes = 1024;

// Subresources S3 has and Coffre does not implement yet: answered with NotImplemented,
// never silently treated as a plain object or bucket request.
constexpr std::array<std::string_view, 30> kUnsupportedSubresources = {
    "accelerate",   "analytics",         "cors",          "encryption",   "intelligent-tiering",
    "inventory",    "lifecycle",         "logging",       "metrics",      "notification",
    "object-lock",  "ownershipControls", "policy",        "policyStatus", "publicAccessBlock",
    "replication",  "requestPayment",    "tagging",       "website",      "legal-hold",
    "retention",    "torrent",           "restore",       "select",       "attributes",
    "renameObject", "session",           "metadataTable", "versionId",    "acl"};

bool IsIpv4(std::string_view s) {
  int dots = 0;
  int digits = 0;
  for (char c : s) {
    if (c == '.') {
      if (digits == 0) {
        return false;
      }
      ++dots;
      digits = 0;
    } else if (c >= '0' && c <= '9') {
      if (++digits > 3) {
        return false;
      }
    } else {
      return false;
    }
  }
  return dots == 3 && digits > 0;
}

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

}  // namespace

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

bool IsValidBucketName(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) {
    return false;
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) {
    return false;
  }
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '-') {
      return false;
    }
  }
  if (name.find("..") != std::string_view::npos || name.find(".-") != std::string_view::npos ||
      name.find("-.") != std::string_view::npos) {
    return false;
  }
  if (IsIpv4(name)) {
    return false;
  }
  if (name.starts_with("xn--") || name.starts_with("sthree-") || name.ends_with("-s3alias") ||
      name.ends_with("--ol-s3")) {
    return false;
  }
  return true;
}

Expected<Route, Error> RouteRequest(const HttpRequestView& request, const RouterOptions& options) {
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

  // Virtual-hosted style: the bucket is the Host's first labels before the base domain.
  std::string host(request.Header("host").value_or(""));
  if (auto colon = host.rfind(':'); colon != std::string::npos && host.find(']') == std::string::npos) {
    host.resize(colon);
  }
  host = ToLower(host);
  std::string_view rest = path.substr(1);
  const std::string suffix = "." + options.base_domain;
  if (!options.base_domain.empty() && host.size() > suffix.size() && host.ends_with(suffix)) {
    route.bucket = host.substr(0, host.size() - suffix.size());
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

  const std::string_view m = request.method;
  const Query& q = route.query;
  const bool has_copy_source = request.Header("x-amz-copy-source").has_value();

  if (route.bucket.empty()) {
    if (m == "GET") {
      route.op = Operation::kListBuckets;
      return route;
    }
    return Error(ErrorCode::kMethodNotAllowed);
  }
  if (!IsValidBucketName(route.bucket) && !(m == "PUT" && route.key.empty())) {
    // CreateBucket reports InvalidBucketName itself; anything else on a malformed name is a
    // bucket that cannot exist.
    return Error(ErrorCode::kNoSuchBucket);
  }

  if (route.key.empty()) {
    if (m == "GET" || m == "HEAD") {
      if (q.Has("location")) {
        route.op = Operation::kGetBucketLocation;
      } else if (q.Has("acl")) {
        route.op = Operation::kGetBucketAcl;
      } else if (q.Has("versioning")) {
        route.op = Operation::kGetBucketVersioning;
      } else if (q.Has("versions")) {
        route.op = Operation::kListObjectVersions;
      } else if (q.Has("uploads")) {
        route.op = Operation::kListMultipartUploads;
      } else {
        for (auto sub : kUnsupportedSubresources) {
          if (q.Has(sub)) {
            return Error(ErrorCode::kNotImplemented, "This bucket subresource is not implemented");
          }
        }
        if (m == "HEAD") {
          route.op = Operation::kHeadBucket;
        } else if (q.Get("list-type") == "2") {
          route.op = Operation::kListObjectsV2;
        } else {
          route.op = Operation::kListObjects;
        }
      }
      return route;
    }
    if (m == "PUT") {
      for (auto sub : kUnsupportedSubresources) {
        if (q.Has(sub)) {
          return Error(ErrorCode::kNotImplemented, "This bucket subresource is not implemented");
        }
      }
      if (q.Has("versioning")) {
        return Error(ErrorCode::kNotImplemented, "Versioning is not implemented");
      }
      route.op = Operation::kCreateBucket;
      return route;
    }
    if (m == "DELETE") {
      for (auto sub : kUnsupportedSubresources) {
        if (q.Has(sub)) {
          return Error(ErrorCode::kNotImplemented, "This bucket subresource is not implemented");
        }
      }
      route.op = Operation::kDeleteBucket;
      return route;
    }
    if (m == "POST") {
      if (q.Has("delete")) {
        route.op = Operation::kDeleteObjects;
        return route;
      }
      return Error(ErrorCode::kNotImplemented, "This POST request is not implemented");
    }
    return Error(ErrorCode::kMethodNotAllowed);
  }

  if (!IsValidKey(route.key)) {
    return KeyError(route.key);
  }

  if (m == "GET" || m == "HEAD") {
    if (q.Has("uploadId")) {
      if (m == "HEAD") {
        return Error(ErrorCode::kMethodNotAllowed);
      }
      route.op = Operation::kListParts;
      return route;
    }
    if (q.Has("acl")) {
      if (m == "HEAD") {
        return Error(ErrorCode::kMethodNotAllowed);
      }
      route.op = Operation::kGetObjectAcl;
      return route;
    }
    for (auto sub : kUnsupportedSubresources) {
      // versionId=null names the only version of an object in an unversioned bucket.
      if (sub == "versionId" && q.Get("versionId") == "null") {
        continue;
      }
      if (q.Has(sub)) {
        return Error(ErrorCode::kNotImplemented, "This object subresource is not implemented");
      }
    }
    route.op = m == "GET" ? Operation::kGetObject : Operation::kHeadObject;
    return route;
  }
  if (m == "PUT") {
    if (q.Has("uploadId") || q.Has("partNumber")) {
      if (!q.Has("uploadId") || !q.Has("partNumber")) {
        return Error(ErrorCode::kInvalidRequest, "UploadPart needs both uploadId and partNumber");
      }
      route.op = has_copy_source ? Operation::kUploadPartCopy : Operation::kUploadPart;
      return route;
    }
    for (auto sub : kUnsupportedSubresources) {
      if (q.Has(sub)) {
        return Error(ErrorCode::kNotImplemented, "This object subresource is not implemented");
      }
    }
    route.op = has_copy_source ? Operation::kCopyObject : Operation::kPutObject;
    return route;
  }
  if (m == "POST") {
    if (q.Has("uploads")) {
      route.op = Operation::kCreateMultipartUpload;
      return route;
    }
    if (q.Has("uploadId")) {
      route.op = Operation::kCompleteMultipartUpload;
      return route;
    }
    return Error(ErrorCode::kNotImplemented, "This POST request is not implemented");
  }
  if (m == "DELETE") {
    if (q.Has("uploadId")) {
      route.op = Operation::kAbortMultipartUpload;
      return route;
    }
    for (auto sub : kUnsupportedSubresources) {
      if (sub == "versionId" && q.Get("versionId") == "null") {
        continue;
      }
      if (q.Has(sub)) {
        return Error(ErrorCode::kNotImplemented, "This object subresource is not implemented");
      }
    }
    route.op = Operation::kDeleteObject;
    return route;
  }
  return Error(ErrorCode::kMethodNotAllowed);
}

}  // namespace coffre::s3
