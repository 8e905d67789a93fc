#pragma once

// One S3 request in flight: the exchange, its route and identity, and the helpers every
// operation handler shares (responses, errors, body reading). Private to the s3 module.
//
// The threads a request runs on (Gateway::Handle in gateway.cc):
//  1. A network thread (the io_context of the HTTP server) reads the request header and runs
//     Handle, a coroutine that always resumes there. It routes the request (RouteRequest: pure,
//     no I/O) and answers a routing error at once, before authentication.
//  2. One trip to a worker (the gateway's pool, Blocking): SigV4 authentication (it reads the
//     keystore), the rate-limit and body admissions, then, if admitted, PrefetchOnWorker.
//  3. Back on the network thread: an authentication or admission error is answered; otherwise the
//     operation's handler runs. Its blocking steps go to a worker (Blocking), its durable commits to
//     the commit pool (Committing), and it waits for the audit log without holding a thread
//     (ReadWhenReadable). The body is read and every response byte is sent from the network thread.
//
// Why the prefetch: each trip between the network thread and a worker costs two thread wake-ups,
// a large share of a small request's time (docs/PERFORMANCE.md, "Small requests: fewer thread
// hand-offs"). So the worker that authenticates also makes the handler's first lookups: the
// route's bucket (for every operation inside a bucket), the object of a GetObject (opening it
// starts the audit record of its key's use) or a HeadObject, and the writer of a PutObject or an
// UploadPart whose headers pass the handler's checks. It leaves them in the slots below
// (route_bucket, opened_object, object_info, begun_writer); the handler takes a slot's value
// through PrefetchedOr or ResolveBucket, and fetches on a worker when the slot is empty. Clients
// cannot tell only because no handler checks anything before those lookups: a check added before
// one must be made in PrefetchOnWorker too, or the prefetch of that operation dropped.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/string_body.hpp>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "coffre/crypto/checksum.h"
#include "coffre/http/server.h"
#include "coffre/s3/error.h"
#include "coffre/s3/gateway.h"
#include "coffre/s3/sigv4.h"
#include "coffre/s3/xml.h"
#include "router.h"

namespace coffre::s3 {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

using Headers = std::vector<std::pair<std::string, std::string>>;
using service::Done;

// What a request body carries besides its bytes: checksums to compute and to check.
struct ChecksumPlan {
  std::set<crypto::ChecksumAlgorithm> compute;
  std::map<crypto::ChecksumAlgorithm, Bytes> expected;  // from x-amz-checksum-* headers
  std::optional<Bytes> content_md5;
};

class RequestContext {
 public:
  RequestContext(Gateway& gateway, http::Exchange& exchange, std::string request_id);

  Gateway& gateway;
  http::Exchange& ex;
  std::string request_id;
  HttpRequestView view;
  // The text of the headers a SigV2 presigned URL carries as query parameters, which `view`
  // lists after the received ones (sigv2.h).
  std::deque<std::string> promoted_headers;
  Route route;
  AuthResult auth;
  bool head = false;
  // Who asks, for the key-usage audit log: set once the request is authenticated.
  service::RequestInfo audit_request;
  // Looked up on the worker that authenticated the request, which saves a round trip (see the top
  // of this file): the route's bucket (ResolveBucket answers from it), and the object of a
  // GetObject or HeadObject.
  std::optional<service::SResult<catalog::Bucket>> route_bucket;
  std::optional<service::SResult<std::unique_ptr<service::ObjectReader>>> opened_object;
  std::optional<service::SResult<service::ObjectInfo>> object_info;
  // The writer of a PutObject or UploadPart whose headers passed their checks, begun there too.
  std::optional<service::SResult<std::unique_ptr<service::ObjectWriter>>> begun_writer;

  service::ObjectService& service() { return gateway.service(); }
  const GatewayOptions& options() const { return gateway.options(); }
  std::optional<std::string_view> Header(std::string_view name) const { return view.Header(name); }
  Owner owner() const { return Owner{auth.tenant_id, ""}; }

  // Runs blocking work (SQLite, disk) off the network thread.
  template <typename F>
  auto Blocking(F f) -> asio::awaitable<decltype(f())> {
    co_return co_await http::RunBlocking(gateway.pool(), std::move(f));
  }
  // Runs a durable write (a commit) on the commit pool: it mostly waits for flushes (the catalog's
  // and the audit log's shared with the commits beside it), and holds no worker meanwhile.
  template <typename F>
  auto Committing(F f) -> asio::awaitable<decltype(f())> {
    co_return co_await http::RunBlocking(gateway.commit_pool(), std::move(f));
  }
  // The value looked up on the authenticating worker when there is one, else fetch() on a worker.
  template <typename T, typename F>
  asio::awaitable<T> PrefetchedOr(std::optional<T> prefetched, F fetch) {
    // An if, not a conditional expression: GCC 12 miscompiles a co_await inside one.
    if (prefetched) co_return std::move(*prefetched);
    co_return co_await Blocking(std::move(fetch));
  }
  // Runs f once reading `reader` will not block on the audit record of its key's use, holding no
  // thread until then, so that concurrent GETs share one flush of the log (docs/AUDIT.md): on this
  // request's executor when the read only copies plaintext already in memory (NextReadInMemory),
  // else on a worker.
  template <typename F>
  auto ReadWhenReadable(service::ObjectReader& reader, F f) -> asio::awaitable<decltype(f())> {
    auto subscribe = [&reader](std::function<void()> notify) { reader.WhenReadable(std::move(notify)); };
    // An if, not a conditional expression: GCC 12 miscompiles a co_await inside one.
    if (reader.NextReadInMemory()) {
      co_await http::WaitForNotification(subscribe);
      co_return f();
    }
    co_return co_await http::RunBlockingWhen(gateway.pool(), subscribe, std::move(f));
  }

  asio::awaitable<void> SendError(Error error);
  asio::awaitable<void> SendXml(bhttp::status status, std::string body, const Headers& headers = {});
  asio::awaitable<void> SendEmpty(bhttp::status status, const Headers& headers = {});

  // Reads a whole small body (XML), decoding aws-chunked and verifying the payload hash, its
  // Content-MD5 and its x-amz-checksum-* trailer, and its x-amz-checksum-* headers unless they
  // are about something else (a Complete's are the object's).
  enum class ChecksumHeaders { kOfTheBody, kNotOfTheBody };
  asio::awaitable<Expected<std::string, Error>> ReadSmallBody(ChecksumHeaders headers = ChecksumHeaders::kOfTheBody);
  // Streams the body into `writer` (decode, verify signatures, hash) and returns what Commit
  // must check, including trailer checksums.
  asio::awaitable<Expected<service::CommitOptions, Error>> ReceiveObject(service::ObjectWriter& writer,
                                                                         const ChecksumPlan& plan);

  // Checksum headers of the request (x-amz-checksum-*, x-amz-sdk-checksum-algorithm,
  // x-amz-trailer, Content-MD5).
  Expected<ChecksumPlan, Error> PlanChecksums() const;
  // Content-MD5, raw; InvalidDigest when it is not the base64 of 16 bytes.
  Expected<std::optional<Bytes>, Error> ContentMd5() const;
  // Stored attributes from request headers (content headers, user metadata).
  Expected<catalog::Attributes, Error> AttributesFromHeaders() const;
  // The tag set of x-amz-tagging (s3/tagging.h); empty without the header.
  Expected<catalog::Tags, Error> TagsFromHeader() const;
  // The decoded payload length the client announced, for size limits.
  std::optional<uint64_t> DeclaredPayloadLength() const;

  // Bucket of the route, owned by the caller's tenant.
  asio::awaitable<Expected<catalog::Bucket, Error>> ResolveBucket(const std::string& name);
};

Error ToS3Error(const service::Error& e);
std::string QuoteETag(std::string_view etag);
// Strips surrounding quotes and a weak prefix from an ETag in a header or XML.
std::string NormalizeETag(std::string_view etag);
// Adds the stored content headers and user metadata of an object to a response.
void AddStoredHeaders(const catalog::Attributes& attributes, Headers& headers, bool with_checksums);

// Operation handlers, by family.
asio::awaitable<void> HandleBucketOperation(RequestContext& ctx);
asio::awaitable<void> HandleObjectOperation(RequestContext& ctx);
asio::awaitable<void> HandleMultipartOperation(RequestContext& ctx);

}  // namespace coffre::s3
