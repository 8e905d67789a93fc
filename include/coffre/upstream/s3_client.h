#pragma once

// A synchronous S3 client for one bucket of one upstream endpoint (Ceph RGW, a provider, another
// Coffre), for the storage backend that keeps blobs upstream. Thread-safe: any number of worker
// threads may call it at once; each call borrows a connection from a small pool (keep-alive) and
// blocks until done. Errors are values: an upstream S3 error becomes a Status whose code says what
// the caller can do (NotFound, PermissionDenied, Unavailable: retry later, ...) and whose message
// keeps the upstream's S3 code and message, never a secret.
//
// Requests are signed with SigV4 (the same code the s3 module verifies with). An in-memory body is
// signed with its SHA-256 whatever the transport, so the upstream rejects a body altered on the
// way (a proxy, a TLS-terminating balancer) as well as over plain http; only a streamed body is
// sent UNSIGNED-PAYLOAD, over TLS only, as it cannot be hashed before it is sent.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/status.h"
#include "coffre/upstream/counters.h"
#include "coffre/upstream/options.h"

namespace coffre::upstream {

struct ObjectInfo {
  uint64_t size = 0;  // the whole object's size (also for a ranged GET)
  std::string etag;   // as the upstream sent it, quotes included
};

struct ListedObject {
  std::string key;
  uint64_t size = 0;
  UnixMillis last_modified = 0;
};

struct ListPage {
  std::vector<ListedObject> objects;
  std::string next_continuation_token;  // empty on the last page
};

struct ListRequest {
  std::string prefix;
  std::string continuation_token;
  int max_keys = 1000;
};

// Inclusive byte range; `last` absent: to the end of the object.
struct ByteRange {
  uint64_t first = 0;
  std::optional<uint64_t> last;
};

// Produces the next piece of a streamed body into `out` and returns how many bytes it wrote (0
// only once the declared length is reached), or an error that aborts the request.
using BodySource = std::function<Result<size_t>(std::span<uint8_t> out)>;
// Receives the next piece of a response body; an error aborts the transfer.
using BodySink = std::function<Status(ByteView piece)>;

struct CompletedPart {
  int part_number = 0;
  std::string etag;  // as UploadPart returned it
};

class S3Client {
 public:
  // InvalidArgument when the options cannot work (see ResolveEndpoint, an unreadable CA file).
  static Result<std::unique_ptr<S3Client>> Create(S3ClientOptions options, const Clock& clock = Clock::System());
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  Status HeadBucket();
  // Creates the bucket with no location constraint; one that exists already is the upstream's
  // 409, FailedPrecondition. For setting up a deployment or a test, not for the data path.
  Status CreateBucket();

  // Returns the ETag. Retried as a whole on transient errors.
  Result<std::string> PutObject(std::string_view key, ByteView body);
  // Streams `length` bytes from `source`. Over TLS only (UNSIGNED-PAYLOAD); retried only while no
  // byte of the request was sent, since the source cannot be rewound.
  Result<std::string> PutObject(std::string_view key, uint64_t length, const BodySource& source);

  // Streams the object (or `range` of it) into `sink`. Retried only until the first byte reached
  // the sink. OutOfRange when the range starts past the end.
  Result<ObjectInfo> GetObject(std::string_view key, const BodySink& sink, std::optional<ByteRange> range = {});
  Result<ObjectInfo> HeadObject(std::string_view key);
  // OK also when there was no such object (S3 answers 204 alike).
  Status DeleteObject(std::string_view key);
  Result<ListPage> ListObjectsV2(const ListRequest& request);

  // Returns the upload id.
  Result<std::string> CreateMultipartUpload(std::string_view key);
  // Returns the part's ETag.
  Result<std::string> UploadPart(std::string_view key, std::string_view upload_id, int part_number, ByteView body);
  // Returns the object's ETag. Not retried once sent: a repeat would answer NoSuchUpload.
  Result<std::string> CompleteMultipartUpload(std::string_view key, std::string_view upload_id,
                                              const std::vector<CompletedPart>& parts);
  Status AbortMultipartUpload(std::string_view key, std::string_view upload_id);

  const Endpoint& endpoint() const;
  // Read by ops' metrics later; updated with relaxed atomics.
  const ClientCounters& counters() const;

 private:
  class Impl;
  explicit S3Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coffre::upstream
