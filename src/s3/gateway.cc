#include "coffre/s3/gateway.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <chrono>
#include <tuple>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/crypto/hash.h"
#include "coffre/http/uri.h"
#include "coffre/s3/chunked.h"
#include "object_handlers.h"
#include "request_context.h"
#include "sigv2.h"
#include "sse_headers.h"
#include "tagging.h"

namespace coffre::s3 {
namespace {

std::string NewRequestId() {
  std::string id = RandomId(8);
  std::transform(id.begin(), id.end(), id.begin(), [](char c) { return static_cast<char>(std::toupper(c)); });
  return id;
}

// Passes every call through to the connection's exchange, noting the response status and the
// body bytes each way for the request observer.
class MeteredExchange final : public http::Exchange {
 public:
  explicit MeteredExchange(http::Exchange& inner) : inner_(inner) {}

  const http::RequestHeader& request() const override { return inner_.request(); }
  const std::string& remote_address() const override { return inner_.remote_address(); }
  std::optional<uint64_t> content_length() const override { return inner_.content_length(); }
  asio::awaitable<std::pair<size_t, http::BodyError>> ReadBody(std::span<uint8_t> out) override {
    auto result = co_await inner_.ReadBody(out);
    bytes_received_ += result.first;
    co_return result;
  }
  bool body_complete() const override { return inner_.body_complete(); }
  asio::awaitable<bool> Send(bhttp::response<bhttp::string_body> response) override {
    const int status = response.result_int();
    const uint64_t size = request().method() == bhttp::verb::head ? 0 : response.body().size();
    const bool sent = co_await inner_.Send(std::move(response));
    if (sent) {
      status_ = status;
      bytes_sent_ += size;
    }
    co_return sent;
  }
  asio::awaitable<bool> SendHeader(http::ResponseHeader header) override {
    const int status = header.result_int();
    const bool sent = co_await inner_.SendHeader(std::move(header));
    if (sent) {
      status_ = status;
    }
    co_return sent;
  }
  asio::awaitable<bool> SendBody(std::span<const uint8_t> data) override {
    const bool sent = co_await inner_.SendBody(data);
    if (sent && request().method() != bhttp::verb::head) {
      bytes_sent_ += data.size();
    }
    co_return sent;
  }
  asio::awaitable<bool> FinishBody() override { co_return co_await inner_.FinishBody(); }
  bool response_started() const override { return inner_.response_started(); }

  int status() const { return status_; }
  uint64_t bytes_received() const { return bytes_received_; }
  uint64_t bytes_sent() const { return bytes_sent_; }

 private:
  http::Exchange& inner_;
  int status_ = 0;
  uint64_t bytes_received_ = 0;
  uint64_t bytes_sent_ = 0;
};

// Reports the request to the observer when Handle() ends, whichever way it ends.
struct RequestReport {
  const RequestObserver& observer;
  const MeteredExchange& exchange;
  const RequestContext& ctx;
  std::chrono::steady_clock::time_point started;
  bool routed = false;

  ~RequestReport() {
    if (!observer) {
      return;
    }
    RequestRecord record;
    record.request_id = ctx.request_id;
    record.method = ctx.view.method;
    record.operation = routed ? OperationName(ctx.route.op) : std::string_view("Unrouted");
    record.bucket = ctx.route.bucket;
    record.key = ctx.route.key;
    record.tenant_id = ctx.auth.tenant_id;
    record.status = exchange.status();
    record.bytes_received = exchange.bytes_received();
    record.bytes_sent = exchange.bytes_sent();
    record.duration = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    observer(record);
  }
};

// The first lookups of the request's operation, on the worker that has just authenticated it (why:
// the top of request_context.h). Nothing the handler checks comes before them: every operation in a
// bucket starts by resolving it, GetObject by opening the object (the audit record of its key's use
// starts there) and HeadObject by looking it up.
void PrefetchOnWorker(RequestContext& ctx) {
  const Route& route = ctx.route;
  if (route.bucket.empty() || route.op == Operation::kCreateBucket || route.op == Operation::kDeleteBucket) return;
  ctx.route_bucket = ctx.service().GetBucket(ctx.auth.tenant_id, route.bucket);
  if (!ctx.route_bucket->ok()) return;
  const catalog::Bucket& bucket = ctx.route_bucket->value();
  if (route.op == Operation::kGetObject || route.op == Operation::kHeadObject) {
    // A versionId that cannot be is the handler's to answer.
    auto version = RequestedVersion(route.query);
    if (!version.ok()) return;
    if (route.op == Operation::kGetObject) {
      ctx.opened_object = ctx.service().OpenObject(bucket, route.key, &ctx.audit_request, *version);
    } else {
      ctx.object_info = ctx.service().HeadObject(bucket, route.key, *version);
    }
  } else if (route.op == Operation::kPutObject) {
    // Only when the handler will get as far: a request its headers fail wraps no data key.
    if (auto req = ParsePutRequest(ctx); req.ok()) ctx.begun_writer = BeginPutWriter(ctx, bucket, *req);
  } else if (route.op == Operation::kUploadPart) {
    if (auto req = ParseUploadPartRequest(ctx); req.ok()) ctx.begun_writer = BeginPartWriter(ctx, bucket, *req);
  }
}

bool IsContentAttribute(std::string_view name) {
  return name == "content-type" || name == "content-encoding" || name == "content-disposition" ||
         name == "content-language" || name == "cache-control" || name == "expires";
}

}  // namespace

Gateway::Gateway(service::ObjectService& service, CredentialLookup lookup, boost::asio::thread_pool& pool,
                 GatewayOptions options)
    : service_(service),
      lookup_(std::move(lookup)),
      pool_(pool),
      options_(std::move(options)),
      large_receives_(options_.large_receive_slots),
      large_sends_(options_.large_send_slots) {
  options_.auth.region = options_.region;
  options_.auth.base_domain = options_.base_domain;
}

RequestContext::RequestContext(Gateway& g, http::Exchange& exchange, std::string id)
    : gateway(g), ex(exchange), request_id(std::move(id)) {
  const auto& req = ex.request();
  view.method = req.method_string();
  view.target = req.target();
  for (const auto& field : req) view.headers.emplace_back(field.name_string(), field.value());
  head = req.method() == bhttp::verb::head;
}

namespace {

Error WithCause(Error error, std::string cause) {
  error.cause = std::move(cause);
  return error;
}

Error WithDeleteMarker(Error error, const std::optional<service::DeleteMarkerRef>& marker) {
  if (marker) {
    error.delete_marker_version_id = marker->version_id;
    error.delete_marker_last_modified = FromUnixMillis(marker->last_modified);
  }
  return error;
}

}  // namespace

Error ToS3Error(const service::Error& e) {
  using service::Errc;
  switch (e.code) {
    case Errc::kNoSuchBucket:
      return Error(ErrorCode::kNoSuchBucket);
    case Errc::kNoSuchKey:
      return WithDeleteMarker(Error(ErrorCode::kNoSuchKey), e.delete_marker);
    case Errc::kNoSuchUpload:
      return Error(ErrorCode::kNoSuchUpload);
    case Errc::kNoSuchVersion:
      return Error(ErrorCode::kNoSuchVersion);
    case Errc::kMethodNotAllowed:
      return WithDeleteMarker(Error(ErrorCode::kMethodNotAllowed), e.delete_marker);
    case Errc::kAccessDenied:
      return Error(ErrorCode::kAccessDenied);
    case Errc::kBucketAlreadyExists:
      return Error(ErrorCode::kBucketAlreadyExists);
    case Errc::kBucketAlreadyOwnedByYou:
      return Error(ErrorCode::kBucketAlreadyOwnedByYou);
    case Errc::kBucketNotEmpty:
      return Error(ErrorCode::kBucketNotEmpty);
    case Errc::kInvalidBucketState:
      return Error(ErrorCode::kInvalidBucketState, e.message);
    case Errc::kNoSuchEncryptionKey:
      return Error(ErrorCode::kKmsNotFound, e.message);
    case Errc::kEncryptionKeyDestroyed:
      return Error(ErrorCode::kKmsInvalidState, e.message);
    case Errc::kPreconditionFailed:
      return Error(ErrorCode::kPreconditionFailed);
    case Errc::kInvalidPart:
      return Error(ErrorCode::kInvalidPart);
    case Errc::kInvalidPartOrder:
      return Error(ErrorCode::kInvalidPartOrder);
    case Errc::kEntityTooSmall:
      return Error(ErrorCode::kEntityTooSmall);
    case Errc::kEntityTooLarge:
      return Error(ErrorCode::kEntityTooLarge);
    case Errc::kBadDigest:
      return Error(ErrorCode::kBadDigest, e.message);
    case Errc::kInvalidArgument:
      return Error(ErrorCode::kInvalidArgument, e.message);
    case Errc::kInvalidRequest:
      return Error(ErrorCode::kInvalidRequest, e.message);
    case Errc::kInvalidRange:
      return Error(ErrorCode::kInvalidRange);
    case Errc::kNoSpace:
      return WithCause(Error(ErrorCode::kServiceUnavailable, "The storage is full; no data was written. Retry later."),
                       e.message);
    case Errc::kUnavailable:
      return WithCause(Error(ErrorCode::kServiceUnavailable, "The service is busy. Retry later."), e.message);
    case Errc::kCorruption:
    case Errc::kInternal:
      return WithCause(Error(ErrorCode::kInternalError), e.message);
  }
  return Error(ErrorCode::kInternalError);
}

std::string QuoteETag(std::string_view etag) { return "\"" + std::string(etag) + "\""; }

std::string NormalizeETag(std::string_view etag) {
  etag = TrimWhitespace(etag);
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  return std::string(etag);
}

void AddStoredHeaders(const catalog::Attributes& attributes, Headers& headers, bool with_checksums) {
  for (const auto& [name, value] : attributes) {
    if (IsContentAttribute(name) || name.starts_with("x-amz-meta-")) {
      headers.emplace_back(name, value);
    } else if (with_checksums && crypto::ParseChecksumAlgorithm(name)) {
      headers.emplace_back(name, value);
    }
  }
  if (attributes.find("content-type") == attributes.end()) {
    headers.emplace_back("content-type", "binary/octet-stream");
  }
}

asio::awaitable<void> RequestContext::SendXml(bhttp::status status, std::string body, const Headers& headers) {
  bhttp::response<bhttp::string_body> res{status, ex.request().version()};
  res.set("x-amz-request-id", request_id);
  for (const auto& [k, v] : headers) res.set(k, v);
  if (!head) {
    res.set(bhttp::field::content_type, "application/xml");
    res.body() = std::move(body);
  }
  co_await ex.Send(std::move(res));
}

asio::awaitable<void> RequestContext::SendEmpty(bhttp::status status, const Headers& headers) {
  bhttp::response<bhttp::string_body> res{status, ex.request().version()};
  res.set("x-amz-request-id", request_id);
  for (const auto& [k, v] : headers) res.set(k, v);
  co_await ex.Send(std::move(res));
}

asio::awaitable<void> RequestContext::SendError(Error error) {
  if (error.resource.empty()) error.resource = route.resource.empty() ? std::string(view.target) : route.resource;
  const int status = error.http_status();
  // A refused flood must not flood the log too: rate-limit refusals are counted in a metric.
  if (status >= 500 && error.code != ErrorCode::kSlowDown) {
    spdlog::error("[{}] {} {} failed: {} ({}){}{}", request_id, view.method, OperationName(route.op), error.code_name(),
                  error.effective_message(), error.cause.empty() ? "" : ": ", error.cause);
  } else {
    spdlog::debug("[{}] {} answered {} {}", request_id, view.method, status, error.code_name());
  }
  Headers headers;
  if (error.code == ErrorCode::kServiceUnavailable || error.code == ErrorCode::kSlowDown) {
    headers.emplace_back("retry-after", "1");
  }
  if (!error.delete_marker_version_id.empty()) {
    headers.emplace_back("x-amz-delete-marker", "true");
    headers.emplace_back("x-amz-version-id", error.delete_marker_version_id);
    headers.emplace_back("last-modified", FormatHttpDate(error.delete_marker_last_modified));
  }
  if (status == 304) {
    co_await SendEmpty(bhttp::status::not_modified, headers);
    co_return;
  }
  // HEAD answers carry no body; S3 gives only the status.
  co_await SendXml(static_cast<bhttp::status>(status), ErrorDocument(error, request_id, request_id), headers);
}

std::optional<uint64_t> RequestContext::DeclaredPayloadLength() const {
  if (IsStreaming(auth.payload_mode)) {
    auto v = Header("x-amz-decoded-content-length");
    if (!v) return std::nullopt;
    return ParseDecimal(*v);
  }
  return ex.content_length();
}

Expected<std::optional<Bytes>, Error> RequestContext::ContentMd5() const {
  const auto md5 = Header("content-md5");
  if (!md5) return std::optional<Bytes>();
  auto raw = Base64Decode(TrimWhitespace(*md5));
  if (!raw || raw->size() != 16) return Error(ErrorCode::kInvalidDigest);
  return std::optional<Bytes>(std::move(*raw));
}

Expected<ChecksumPlan, Error> RequestContext::PlanChecksums() const {
  ChecksumPlan plan;
  auto md5 = ContentMd5();
  if (!md5.ok()) return md5.error();
  plan.content_md5 = std::move(*md5);
  for (auto alg : crypto::kAllChecksumAlgorithms) {
    if (auto v = Header(crypto::ChecksumHeaderName(alg))) {
      auto raw = Base64Decode(TrimWhitespace(*v));
      if (!raw || raw->size() != crypto::ChecksumSize(alg)) {
        return Error(ErrorCode::kInvalidRequest,
                     "Value for " + std::string(crypto::ChecksumHeaderName(alg)) + " header is invalid.");
      }
      plan.compute.insert(alg);
      plan.expected[alg] = std::move(*raw);
    }
  }
  if (plan.expected.size() > 1) {
    return Error(ErrorCode::kInvalidRequest,
                 "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.");
  }
  for (auto name : {"x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"}) {
    if (auto v = Header(name)) {
      auto alg = crypto::ParseChecksumAlgorithm(*v);
      if (!alg) return Error(ErrorCode::kInvalidRequest, "Invalid checksum algorithm: " + std::string(*v));
      plan.compute.insert(*alg);
    }
  }
  if (auto trailer = Header("x-amz-trailer")) {
    auto alg = crypto::ParseChecksumAlgorithm(TrimWhitespace(*trailer));
    if (!alg) return Error(ErrorCode::kInvalidRequest, "Unsupported x-amz-trailer: " + std::string(*trailer));
    plan.compute.insert(*alg);
  }
  return plan;
}

Expected<catalog::Attributes, Error> RequestContext::AttributesFromHeaders() const {
  catalog::Attributes attrs;
  size_t meta_bytes = 0;
  for (const auto& [raw_name, value] : view.headers) {
    std::string name = ToLower(raw_name);
    if (name == "content-encoding") {
      // aws-chunked describes this request's framing, not the object: S3 drops it.
      std::string kept;
      std::string_view rest = value;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view token = TrimWhitespace(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        if (token.empty() || EqualsIgnoreCase(token, "aws-chunked")) continue;
        if (!kept.empty()) kept += ",";
        kept += token;
      }
      // Repeated, its codings add up (HTTP lists), as they do for the signature.
      if (!kept.empty()) {
        auto& slot = attrs[name];
        slot = slot.empty() ? kept : slot + "," + kept;
      }
    } else if (IsContentAttribute(name)) {
      // The first value, the one Header() reads and SigV2 signs (Content-Type cannot be repeated:
      // Handle refuses it, but the others may be).
      attrs.try_emplace(name, value);
    } else if (name.starts_with("x-amz-meta-")) {
      meta_bytes += name.size() - 11 + value.size();
      auto& slot = attrs[name];
      slot = slot.empty() ? std::string(value) : slot + "," + std::string(value);
    } else if (name == "x-amz-tagging") {
      // Tags are no attribute: the handlers read them with TagsFromHeader.
    } else if (name.starts_with("x-amz-object-lock-")) {
      // No attribute either: the handlers read them with ObjectLockFromHeaders.
    } else if (name == "x-amz-website-redirect-location") {
      return Error(ErrorCode::kNotImplemented, "Header " + name + " is not implemented");
    } else if (name == "x-amz-storage-class") {
      static const std::set<std::string, std::less<>> kClasses = {
          "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",     "INTELLIGENT_TIERING",
          "GLACIER",  "DEEP_ARCHIVE",       "GLACIER_IR",  "EXPRESS_ONEZONE"};
      if (kClasses.count(value) == 0) return Error(ErrorCode::kInvalidStorageClass);
    } else if (name == "x-amz-acl") {
      if (value != "private" && value != "bucket-owner-full-control") {
        return Error(ErrorCode::kNotImplemented, "Only the private canned ACL is implemented");
      }
    } else if (name.starts_with("x-amz-grant-")) {
      return Error(ErrorCode::kNotImplemented, "ACL grants are not implemented");
    }
  }
  if (meta_bytes > options().max_user_metadata) return Error(ErrorCode::kMetadataTooLarge);
  return attrs;
}

Expected<catalog::Tags, Error> RequestContext::TagsFromHeader() const {
  auto header = Header("x-amz-tagging");
  if (!header) return catalog::Tags{};
  return ParseTaggingHeader(*header);
}

asio::awaitable<Expected<catalog::Bucket, Error>> RequestContext::ResolveBucket(const std::string& name) {
  // Not a conditional expression in the co_await: GCC 12 miscompiles one there.
  std::optional<service::SResult<catalog::Bucket>> prefetched;
  if (name == route.bucket) prefetched = route_bucket;
  auto r = co_await PrefetchedOr(std::move(prefetched), [&] { return service().GetBucket(auth.tenant_id, name); });
  if (!r.ok()) {
    Error e = ToS3Error(r.error());
    e.resource = "/" + name;
    co_return e;
  }
  co_return std::move(r).value();
}

namespace {

// A body's read buffer, no larger than the body: a 4 KiB PUT must not pay for zeroing (and
// faulting in) a 256 KiB buffer.
size_t BodyBufferSize(std::optional<uint64_t> content_length, size_t limit) {
  if (!content_length) return limit;  // chunked transfer encoding
  return static_cast<size_t>(std::clamp<uint64_t>(*content_length, 1, limit));
}

// A body piece at most this large may be decoded on the network thread (ReceiveObject): hashing
// it for its signature takes a few microseconds, less than a trip to a worker and back.
constexpr size_t kInlineStoreBytes = 16 * 1024;

// One of the gateway's large receive slots, taken if `wanted` and one is free, held while a
// body is read.
// Decodes and verifies a body as it streams in: aws-chunked framing and signatures, or the
// signed payload hash; hands plaintext payload bytes to `sink`.
class PayloadDecoder {
 public:
  PayloadDecoder(const AuthResult& auth, const std::vector<std::string>& trailers, std::optional<uint64_t> decoded)
      : auth_(auth) {
    if (IsStreaming(auth.payload_mode)) chunked_.emplace(auth, trailers, decoded);
  }

  // The payload bytes in `in`: `in` itself unless the body is aws-chunked, whose framing is
  // stripped in place (the payload then starts at `in`'s start and is shorter).
  Expected<ByteView, Error> Feed(std::span<uint8_t> in) {
    if (chunked_) {
      size_t payload = 0;
      if (auto e = chunked_->FeedInPlace(in, payload)) return *e;
      return ByteView(in.data(), payload);
    }
    if (auth_.payload_mode == PayloadMode::kSignedHash) sha_.Update(in);
    return ByteView(in);
  }

  std::optional<Error> Finish() {
    if (chunked_) return chunked_->Finish();
    if (auth_.payload_mode == PayloadMode::kSignedHash) {
      if (HexEncode(sha_.Final()) != auth_.payload_sha256_hex) return Error(ErrorCode::kXAmzContentSHA256Mismatch);
    }
    return std::nullopt;
  }

  std::vector<std::pair<std::string, std::string>> trailers() const {
    return chunked_ ? chunked_->trailers() : std::vector<std::pair<std::string, std::string>>{};
  }

 private:
  const AuthResult& auth_;
  std::optional<ChunkedDecoder> chunked_;
  crypto::Sha256 sha_;
};

std::vector<std::string> DeclaredTrailers(const RequestContext& ctx) {
  std::vector<std::string> names;
  if (auto t = ctx.Header("x-amz-trailer")) {
    std::string_view rest = *t;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      names.push_back(ToLower(TrimWhitespace(rest.substr(0, comma))));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  return names;
}

Error BodyReadError(http::BodyError e) {
  switch (e) {
    case http::BodyError::kTimeout:
      return Error(ErrorCode::kRequestTimeout);
    case http::BodyError::kTooLarge:
      return Error(ErrorCode::kEntityTooLarge);
    case http::BodyError::kMalformed:
      return Error(ErrorCode::kBadRequest, "Malformed request body framing");
    default:
      return Error(ErrorCode::kIncompleteBody);
  }
}

}  // namespace

asio::awaitable<Expected<std::string, Error>> RequestContext::ReadSmallBody(ChecksumHeaders headers) {
  PayloadDecoder decoder(auth, DeclaredTrailers(*this), DeclaredPayloadLength());
  Bytes raw(BodyBufferSize(ex.content_length(), 64 * 1024));
  std::string body;
  for (;;) {
    auto [n, err] = co_await ex.ReadBody(raw);
    if (err != http::BodyError::kNone) co_return BodyReadError(err);
    if (n == 0) break;
    auto payload = decoder.Feed(std::span(raw.data(), n));
    if (!payload.ok()) co_return payload.error();
    body.append(reinterpret_cast<const char*>(payload->data()), payload->size());
    if (body.size() > options().max_xml_body) co_return Error(ErrorCode::kMaxMessageLengthExceeded);
  }
  if (auto e = decoder.Finish()) co_return *e;
  // Content-MD5 and x-amz-checksum-* (header or trailer) protect XML bodies too: a DeleteObjects
  // whose body was altered in transit must delete nothing.
  std::optional<Bytes> content_md5;
  std::map<crypto::ChecksumAlgorithm, Bytes> expected;
  if (headers == ChecksumHeaders::kOfTheBody) {
    auto plan = PlanChecksums();
    if (!plan.ok()) co_return plan.error();
    content_md5 = std::move(plan->content_md5);
    expected = std::move(plan->expected);
  } else {
    auto md5 = ContentMd5();
    if (!md5.ok()) co_return md5.error();
    content_md5 = std::move(*md5);
  }
  if (content_md5 && !ConstantTimeEquals(*content_md5, crypto::Md5::Digest(AsBytes(body)))) {
    co_return Error(ErrorCode::kBadDigest);
  }
  for (const auto& [name, value] : decoder.trailers()) {
    auto alg = crypto::ParseChecksumAlgorithm(name);
    auto decoded_value = Base64Decode(TrimWhitespace(value));
    if (!alg || !decoded_value) {
      co_return Error(ErrorCode::kInvalidRequest, "Value for " + name + " trailing header is invalid.");
    }
    expected[*alg] = std::move(*decoded_value);
  }
  for (const auto& [alg, value] : expected) {
    if (crypto::ComputeChecksum(alg, AsBytes(body)) != value) {
      co_return Error(ErrorCode::kBadDigest, "The " + std::string(crypto::ChecksumAlgorithmName(alg)) +
                                                 " you specified did not match the calculated checksum.");
    }
  }
  co_return body;
}

asio::awaitable<Expected<service::CommitOptions, Error>> RequestContext::ReceiveObject(service::ObjectWriter& writer,
                                                                                       const ChecksumPlan& plan) {
  PayloadDecoder decoder(auth, DeclaredTrailers(*this), DeclaredPayloadLength());
  // A body of one step is read whole; a larger one in small steps, unless a large slot is free.
  const bool large = !ex.content_length() || *ex.content_length() > options().io_chunk;
  const SlotLease large_receive(gateway.large_receives(), large);
  const size_t buffer_size = BodyBufferSize(
      ex.content_length(), large && !large_receive.held() ? options().receive_chunk : options().io_chunk);
  writer.SetWriteSize(buffer_size);
  Bytes raw(buffer_size);
  Bytes next;  // the other buffer, for a body that does not come in one piece
  // Decoding, hashing, encryption and the disk write of one piece run together on a worker.
  auto store = [&](size_t got) -> Expected<Done, Error> {
    auto payload = decoder.Feed(std::span(raw.data(), got));
    if (!payload.ok()) return payload.error();
    if (writer.bytes_written() + payload->size() > options().max_single_put) return Error(ErrorCode::kEntityTooLarge);
    auto w = writer.Write(*payload);
    if (!w.ok()) return ToS3Error(w.error());
    return Done{};
  };
  auto [n, err] = co_await ex.ReadBody(raw);
  while (err == http::BodyError::kNone && n > 0) {
    const size_t got = n;  // clang 14 cannot capture structured bindings in a lambda
    if (ex.body_complete()) {
      // A small last piece that the writer only copies is stored here: decoding it costs less
      // than the trip to a worker and back (two thread wake-ups).
      if (got <= kInlineStoreBytes && writer.WriteStaysInMemory(got)) {
        auto step = store(got);
        if (!step.ok()) co_return step.error();
        break;
      }
      auto step = co_await Blocking([&] { return store(got); });
      if (!step.ok()) co_return step.error();
      break;
    }
    // The next piece is received while this one is stored. The store is the first operand: `&&`
    // starts its operands in order, and the read runs inline until the socket has nothing more.
    if (next.empty()) next.resize(buffer_size);
    using boost::asio::experimental::awaitable_operators::operator&&;
    auto [step, received] = co_await (Blocking([&] { return store(got); }) && ex.ReadBody(next));
    if (!step.ok()) co_return step.error();
    std::swap(raw, next);
    std::tie(n, err) = received;
  }
  if (err != http::BodyError::kNone) co_return BodyReadError(err);
  if (auto e = decoder.Finish()) co_return *e;
  service::CommitOptions commit;
  commit.content_md5 = plan.content_md5;
  commit.expected_checksums = plan.expected;
  for (const auto& [name, value] : decoder.trailers()) {
    auto alg = crypto::ParseChecksumAlgorithm(name);
    if (!alg) continue;
    auto raw_value = Base64Decode(TrimWhitespace(value));
    if (!raw_value || raw_value->size() != crypto::ChecksumSize(*alg)) {
      co_return Error(ErrorCode::kInvalidRequest, "Value for " + name + " trailing header is invalid.");
    }
    commit.expected_checksums[*alg] = std::move(*raw_value);
  }
  co_return commit;
}

asio::awaitable<void> Gateway::Handle(http::Exchange& exchange) {
  const auto started = std::chrono::steady_clock::now();
  MeteredExchange metered(exchange);
  RequestContext ctx(*this, metered, NewRequestId());
  RequestReport report{options_.observer, metered, ctx, started};

  // What the signature covers is what the request does: headers a presigned URL signs as query
  // parameters become headers before the route is chosen from them, and a header that may
  // appear once but is repeated is refused (a signature covers one of its values, a handler might
  // read another). Both depend on the request alone, so they are answered before authentication.
  if (const std::optional<http::QueryParams> query = http::ParseQuery(http::SplitTarget(ctx.view.target).query)) {
    if (std::optional<Error> e =
            PromotePresignedQueryHeaders(ctx.view, *query, options_.auth.sigv2, ctx.promoted_headers)) {
      co_await ctx.SendError(*e);
      co_return;
    }
  }
  if (std::optional<std::string_view> repeated = RepeatedSingleHeader(ctx.view)) {
    co_await ctx.SendError(Error(ErrorCode::kInvalidArgument,
                                 "The header " + std::string(*repeated) + " may be sent only once in a request."));
    co_return;
  }
  auto route = RouteRequest(ctx.view, RouterOptions{options_.base_domain});
  if (!route.ok()) {
    // Answered before authentication, so unsigned requests get these errors too. They tell nothing
    // stored: they depend only on the request's method, target and headers (a malformed bucket
    // name is NoSuchBucket because no bucket can have it).
    co_await ctx.SendError(route.error());
    co_return;
  }
  ctx.route = std::move(route).value();
  report.routed = true;

  // The rate limit is checked on the worker thread that authenticated: it may read the keystore.
  // The operation's first lookup runs there too, which saves a round trip to the workers.
  bool admitted = true;
  // Held until this request is over.
  std::shared_ptr<void> body_slot;
  std::optional<Error> encryption_refused;
  const bool has_body = ctx.ex.content_length().value_or(0) > 0 ||
                        ctx.ex.request().count(boost::beast::http::field::transfer_encoding) != 0;
  auto auth = co_await ctx.Blocking([&] {
    auto result = Authenticate(ctx.view, lookup_, options_.auth);
    if (!result.ok()) return result;
    ctx.auth = *result;
    if (options_.admit) admitted = options_.admit(result->tenant_id);
    if (admitted && has_body && options_.admit_body) {
      body_slot = options_.admit_body(result->tenant_id);
      admitted = body_slot != nullptr;
    }
    if (admitted) {
      ctx.audit_request = service::RequestInfo{ctx.request_id, ctx.auth.access_key_id, ctx.ex.remote_address(),
                                               std::string(OperationName(ctx.route.op))};
      // Checked first: a request refused for them opens no object and wraps no data key.
      encryption_refused = CheckEncryptionHeaders(ctx.view, ctx.route.op);
      if (!encryption_refused) PrefetchOnWorker(ctx);
    }
    return result;
  });
  if (!auth.ok()) {
    co_await ctx.SendError(auth.error());
    co_return;
  }
  if (!admitted) {
    co_await ctx.SendError(Error(ErrorCode::kSlowDown));
    co_return;
  }
  if (encryption_refused) {
    co_await ctx.SendError(*encryption_refused);
    co_return;
  }

  switch (ctx.route.op) {
    case Operation::kListBuckets:
    case Operation::kCreateBucket:
    case Operation::kHeadBucket:
    case Operation::kDeleteBucket:
    case Operation::kGetBucketLocation:
    case Operation::kGetBucketAcl:
    case Operation::kGetBucketVersioning:
    case Operation::kPutBucketVersioning:
    case Operation::kListObjectVersions:
    case Operation::kListObjectsV2:
    case Operation::kListObjects:
    case Operation::kDeleteObjects:
    case Operation::kGetBucketTagging:
    case Operation::kPutBucketTagging:
    case Operation::kDeleteBucketTagging:
    case Operation::kGetBucketEncryption:
    case Operation::kPutBucketEncryption:
    case Operation::kDeleteBucketEncryption:
    case Operation::kGetObjectLockConfiguration:
    case Operation::kPutObjectLockConfiguration:
    case Operation::kGetBucketLifecycleConfiguration:
    case Operation::kPutBucketLifecycleConfiguration:
    case Operation::kDeleteBucketLifecycle:
      co_await HandleBucketOperation(ctx);
      break;
    case Operation::kCreateMultipartUpload:
    case Operation::kUploadPart:
    case Operation::kUploadPartCopy:
    case Operation::kCompleteMultipartUpload:
    case Operation::kAbortMultipartUpload:
    case Operation::kListParts:
    case Operation::kListMultipartUploads:
      co_await HandleMultipartOperation(ctx);
      break;
    default:
      co_await HandleObjectOperation(ctx);
      break;
  }
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
  spdlog::debug("[{}] {} {} tenant={} {}us", ctx.request_id, OperationName(ctx.route.op), ctx.route.resource,
                ctx.auth.tenant_id, elapsed);
}

}  // namespace coffre::s3
