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
// way (a proxy, a TLS-terminating balancer) as well as over plain http. Only a streamed body is
// sent UNSIGNED-PAYLOAD, as it cannot be hashed before it is sent: over TLS, which protects it
// instead, or to a loopback host (127.0.0.0/8, ::1), where no party sits on the path: the bytes
// never leave this host's kernel, and whoever could alter them there could read far more. Over
// plain http to any other host a stream is refused (FailedPrecondition), and the caller sends the
// body in signed in-memory pieces instead.

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

class S3Client;

// A request whose body the caller pushes piece by piece (S3Client::BeginPutObject,
// BeginUploadPart), so that a large body is never held whole. The request's head, with the
// declared length, is sent when the stream begins; each Write sends its piece at once. The stream
// holds one connection of the client's pool until Finish returns it. Each step must make progress
// within the options' request_timeout, but the stream as a whole is not bounded by the retry
// deadline: the caller sets its pace. Nothing is retried once the head was sent, since the body
// cannot be sent again. Movable, not copyable; one thread at a time.
class UploadStream {
 public:
  UploadStream(UploadStream&& other) noexcept;
  UploadStream& operator=(UploadStream&& other) noexcept;
  // An unfinished stream closes its connection (never returned to the pool): the upstream sees a
  // body cut short and stores nothing.
  ~UploadStream();

  // Sends the piece. InvalidArgument if it would exceed the declared length; that error, or a
  // transport one, ends the stream (its connection is closed and Finish returns the error). When
  // the upstream refused the request before its body was through (a bad signature, say) and its
  // answer can be read, the error is that answer's (PermissionDenied, ...), not the closed
  // connection's Unavailable.
  Status Write(ByteView piece);
  // Reads the upstream's answer and returns the ETag. InvalidArgument (and the connection closed,
  // so nothing is stored) if fewer bytes than declared were written. Once only.
  Result<std::string> Finish();
  // Bytes still to write before Finish.
  uint64_t remaining() const;

 private:
  friend class S3Client;
  struct State;
  explicit UploadStream(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
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
  // Streams `length` bytes from `source` through an UploadStream (BeginPutObject); InvalidArgument
  // when the source ends early or gives too much.
  Result<std::string> PutObject(std::string_view key, uint64_t length, const BodySource& source);
  // Begins a streamed PUT of exactly `length` bytes (see UploadStream). FailedPrecondition over
  // plain http to a host that is not a loopback address (see the top of this file). Beginning is
  // retried on transient errors, as no byte of the body has been sent yet.
  Result<UploadStream> BeginPutObject(std::string_view key, uint64_t length);

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
  // Begins a streamed UploadPart of exactly `length` bytes, as BeginPutObject.
  Result<UploadStream> BeginUploadPart(std::string_view key, std::string_view upload_id, int part_number,
                                       uint64_t length);
  // Returns the object's ETag (empty from Ceph RGW 16, which leaves it out). Not retried once
  // sent: a repeat would answer NoSuchUpload.
  Result<std::string> CompleteMultipartUpload(std::string_view key, std::string_view upload_id,
                                              const std::vector<CompletedPart>& parts);
  Status AbortMultipartUpload(std::string_view key, std::string_view upload_id);

  const Endpoint& endpoint() const;
  const std::string& bucket() const;
  // Whether a body may be streamed (UNSIGNED-PAYLOAD): over TLS, or to a loopback host.
  bool CanStream() const;
  // Read by ops' metrics later; updated with relaxed atomics.
  const ClientCounters& counters() const;

 private:
  friend struct UploadStream::State;
  class Impl;
  explicit S3Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coffre::upstream
