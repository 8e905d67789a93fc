#pragma once

// Turns method, target, Host and query into one operation value (as Garage's router does):
// everything after this works on a Route, never on raw strings.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/common/status.h"
#include "coffre/s3/error.h"
#include "coffre/s3/request.h"

namespace coffre::s3 {

enum class Operation {
  kListBuckets,
  kCreateBucket,
  kHeadBucket,
  kDeleteBucket,
  kGetBucketLocation,
  kGetBucketAcl,
  kGetBucketVersioning,
  kPutBucketVersioning,
  kListObjectVersions,
  kListObjectsV2,
  kListObjects,
  kListMultipartUploads,
  kDeleteObjects,
  kPutObject,
  kCopyObject,
  kGetObject,
  kHeadObject,
  kDeleteObject,
  kGetObjectAcl,
  kGetObjectTagging,
  kGetObjectAttributes,
  kPutObjectTagging,
  kDeleteObjectTagging,
  kGetBucketTagging,
  kPutBucketTagging,
  kDeleteBucketTagging,
  kGetBucketEncryption,
  kPutBucketEncryption,
  kDeleteBucketEncryption,
  kGetObjectLockConfiguration,
  kPutObjectLockConfiguration,
  kGetObjectRetention,
  kPutObjectRetention,
  kGetObjectLegalHold,
  kPutObjectLegalHold,
  kGetBucketLifecycleConfiguration,
  kPutBucketLifecycleConfiguration,
  kDeleteBucketLifecycle,
  kCreateMultipartUpload,
  kUploadPart,
  kUploadPartCopy,
  kCompleteMultipartUpload,
  kAbortMultipartUpload,
  kListParts,
};

std::string_view OperationName(Operation op);

class Query {
 public:
  Query() = default;
  explicit Query(std::vector<std::pair<std::string, std::string>> params) : params_(std::move(params)) {}
  bool Has(std::string_view name) const;
  std::optional<std::string> Get(std::string_view name) const;

 private:
  std::vector<std::pair<std::string, std::string>> params_;
};

struct Route {
  Operation op = Operation::kListBuckets;
  std::string bucket;  // empty for ListBuckets
  std::string key;     // decoded; empty for bucket operations
  Query query;
  std::string resource;  // "/bucket/key" for error documents
};

struct RouterOptions {
  std::string base_domain = "localhost";  // virtual-hosted style: <bucket>.<base_domain>
};

// Errors, none of which depends on what is stored:
//   InvalidRequest    the target is not a path; an UploadPart names uploadId or partNumber alone
//   InvalidArgument   a malformed %-escape in the query, bucket or key; a key with NUL or ".."
//   KeyTooLongError   a key over 1024 bytes
//   NoSuchBucket      a malformed bucket name, except on CreateBucket (its handler says why)
//   MethodNotAllowed  a method with no operation on that target (HEAD of ?uploadId or ?acl too)
//   NotImplemented    a subresource, or a POST, that Coffre does not implement
Expected<Route, Error> RouteRequest(const HttpRequestView& request, const RouterOptions& options);

// The bucket a virtual-hosted-style request names in its Host (<bucket>.<base_domain>), if any:
// the router and SigV2's canonical resource read it alike.
std::optional<std::string> VirtualHostedBucket(const HttpRequestView& request, std::string_view base_domain);

}  // namespace coffre::s3
