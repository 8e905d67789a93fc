// PutObject, GetObject, HeadObject, DeleteObject, CopyObject, GetObjectAcl, GetObjectAttributes and
// the object tagging operations.

#include "object_handlers.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <utility>
#include <vector>

#include "coffre/common/clock.h"
#include "coffre/http/uri.h"
#include "coffre/s3/range.h"
#include "request_context.h"
#include "sse_headers.h"
#include "tagging.h"

namespace coffre::s3 {
namespace {

// The items of a comma-separated header value, trimmed, the empty ones left out.
std::vector<std::string_view> CommaSeparatedItems(std::string_view value) {
  std::vector<std::string_view> items;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (const std::string_view item = TrimWhitespace(value.substr(0, comma)); !item.empty()) {
      items.push_back(item);
    }
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
  }
  return items;
}

// True if `etag` matches one of the comma-separated entity tags of an If-Match style header.
bool ETagListMatches(std::string_view header, std::string_view etag) {
  for (const std::string_view item : CommaSeparatedItems(header)) {
    const std::string candidate = NormalizeETag(item);
    if (candidate == "*" || candidate == etag) {
      return true;
    }
  }
  return false;
}

std::chrono::system_clock::time_point SecondsOf(UnixMillis ms) {
  // HTTP dates have one-second resolution: compare at that resolution.
  return std::chrono::system_clock::time_point(std::chrono::seconds(ms / 1000));
}

// As S3, the parts count only answers a request that named a part (partNumber).
void AddObjectHeaders(const RequestContext& ctx, const service::ObjectInfo& info, Headers& headers, bool with_checksums,
                      bool part_requested) {
  headers.emplace_back("etag", QuoteETag(info.etag));
  headers.emplace_back("last-modified", FormatHttpDate(FromUnixMillis(info.last_modified)));
  headers.emplace_back("accept-ranges", "bytes");
  AddEncryptionHeaders(ctx, info.encryption, headers);
  AddStoredHeaders(info.attributes, headers, with_checksums);
  if (with_checksums && std::ranges::any_of(info.attributes, [](const auto& attribute) {
        return crypto::ParseChecksumAlgorithm(attribute.first).has_value();
      })) {
    headers.emplace_back("x-amz-checksum-type", ChecksumTypeOf(info));
  }
  if (info.multipart && part_requested) {
    headers.emplace_back("x-amz-mp-parts-count", std::to_string(info.part_sizes.size()));
  }
  if (!info.tags.empty()) {
    headers.emplace_back("x-amz-tagging-count", std::to_string(info.tags.size()));
  }
  AddObjectLockHeaders(info.lock, headers);
  if (!info.version_id.empty()) {
    headers.emplace_back("x-amz-version-id", info.version_id);
  }
}

// response-* query parameters override stored headers on GET (S3 allows them on signed requests).
// Their values come from the query string, so nothing upstream has checked that they can be a
// header field value: CR or LF would split the response (tests/integration/test_attacks.py).
std::optional<Error> ApplyResponseOverrides(const Query& q, Headers& headers) {
  static constexpr std::pair<std::string_view, std::string_view> kOverrides[] = {
      {"response-content-type", "content-type"},
      {"response-content-language", "content-language"},
      {"response-expires", "expires"},
      {"response-cache-control", "cache-control"},
      {"response-content-disposition", "content-disposition"},
      {"response-content-encoding", "content-encoding"}};
  for (const auto& [param, header] : kOverrides) {
    if (auto v = q.Get(param)) {
      // RFC 9110 field-value: visible characters, space, tab and obs-text; no other control.
      for (const char c : *v) {
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && u != '\t') || u == 0x7f) {
          return Error(ErrorCode::kInvalidArgument,
                       "The value of " + std::string(param) + " contains characters a header cannot carry.");
        }
      }
      std::erase_if(headers, [name = header](const auto& h) { return h.first == name; });
      headers.emplace_back(std::string(header), *v);
    }
  }
  return std::nullopt;
}

http::ResponseHeader ObjectResponseHeader(const RequestContext& ctx, bhttp::status status, const Headers& headers,
                                          uint64_t content_length) {
  http::ResponseHeader res;
  res.version(ctx.ex.request().version());
  res.result(status);
  res.set("x-amz-request-id", ctx.request_id);
  for (const auto& [k, v] : headers) {
    res.set(k, v);
  }
  res.set(bhttp::field::content_length, std::to_string(content_length));
  return res;
}

// A GET or HEAD whose conditions failed: 304 with the ETag, or the 412 error.
asio::awaitable<void> SendConditionFailure(RequestContext& ctx, const service::ObjectInfo& info, const Error& e) {
  if (e.code == ErrorCode::kNotModified) {
    Headers h;
    h.emplace_back("etag", QuoteETag(info.etag));
    co_return co_await ctx.SendEmpty(bhttp::status::not_modified, h);
  }
  co_await ctx.SendError(e);
}

bool ChecksumModeEnabled(const RequestContext& ctx) {
  auto mode = ctx.Header("x-amz-checksum-mode");
  return mode && EqualsIgnoreCase(*mode, "ENABLED");
}

}  // namespace

Expected<uint32_t, Error> ParseNumber(const std::optional<std::string>& v, uint32_t fallback, uint32_t max,
                                      std::string_view what) {
  if (!v) {
    return fallback;
  }
  auto n = ParseDecimal(*v);
  if (!n) {
    return Error(ErrorCode::kInvalidArgument, std::string(what) + " is not a valid integer");
  }
  return static_cast<uint32_t>(std::min<uint64_t>(*n, max));
}

std::map<std::string, std::string> ChecksumElements(const catalog::Attributes& attributes) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : attributes) {
    if (!name.starts_with("x-amz-checksum-")) {
      continue;
    }
    if (auto alg = crypto::ParseChecksumAlgorithm(name)) {
      out["Checksum" + std::string(crypto::ChecksumAlgorithmName(*alg))] = value;
    }
  }
  return out;
}

std::optional<Error> EvaluateReadConditions(const RequestContext& ctx, const service::ObjectInfo& info,
                                            std::string_view prefix) {
  const std::string p(prefix);
  const auto if_match = ctx.Header(p + "if-match");
  const auto if_none_match = ctx.Header(p + "if-none-match");
  const auto modified = SecondsOf(info.last_modified);
  // RFC 7232 section 6 order; S3 follows it (If-Match true wins over If-Unmodified-Since false).
  if (if_match) {
    if (!ETagListMatches(*if_match, info.etag)) {
      return Error(ErrorCode::kPreconditionFailed);
    }
  } else if (auto ius = ctx.Header(p + "if-unmodified-since")) {
    if (auto t = ParseHttpDate(*ius); t && modified > *t) {
      return Error(ErrorCode::kPreconditionFailed);
    }
  }
  const bool copy = !prefix.empty();
  if (if_none_match) {
    if (ETagListMatches(*if_none_match, info.etag)) {
      return Error(copy ? ErrorCode::kPreconditionFailed : ErrorCode::kNotModified);
    }
  } else if (auto ims = ctx.Header(p + "if-modified-since")) {
    if (auto t = ParseHttpDate(*ims); t && modified <= *t) {
      return Error(copy ? ErrorCode::kPreconditionFailed : ErrorCode::kNotModified);
    }
  }
  return std::nullopt;
}

Expected<catalog::WriteCondition, Error> WriteConditionFromHeaders(const RequestContext& ctx) {
  catalog::WriteCondition cond;
  if (auto inm = ctx.Header("if-none-match")) {
    if (TrimWhitespace(*inm) != "*") {
      return Error(ErrorCode::kNotImplemented, "If-None-Match on writes supports only '*'");
    }
    cond.if_none_match_any = true;
  }
  if (auto im = ctx.Header("if-match")) {
    cond.if_match_etag = NormalizeETag(*im);
  }
  return cond;
}

std::string ChecksumTypeOf(const service::ObjectInfo& info) {
  if (const auto it = info.attributes.find(std::string(service::kChecksumTypeAttribute)); it != info.attributes.end()) {
    return it->second;
  }
  // A multipart object completed before types were kept has composite checksums.
  return std::string(info.multipart ? service::kCompositeChecksum : service::kFullObjectChecksum);
}

void AddEncryptionHeaders(const RequestContext& ctx, const service::EncryptionReport& report, Headers& headers) {
  const std::string region = ctx.options().region.empty() ? "us-east-1" : ctx.options().region;
  AddEncryptionHeaders(headers, report.kms, report.bucket_key,
                       report.kms ? KmsKeyArn(region, ctx.auth.tenant_id, report.key_id) : std::string());
}

service::SResult<std::string> ChooseObjectKey(RequestContext& ctx, const catalog::Bucket& bucket,
                                              catalog::Attributes& attributes, Headers* reported) {
  const ObjectEncryption asked = ObjectEncryptionOf(ctx.view, bucket);
  std::string named_key_id;
  if (asked.key) {
    auto resolved = ctx.service().ResolveEncryptionKey(bucket, *asked.key);
    if (!resolved.ok()) return resolved.error();
    named_key_id = std::move(resolved).value();
  }
  if (asked.kms) attributes[std::string(service::kEncryptionAttribute)] = "aws:kms";
  if (asked.bucket_key) attributes[std::string(service::kBucketKeyAttribute)] = "true";
  if (reported != nullptr) {
    const service::EncryptionReport report{named_key_id.empty() ? ctx.auth.tenant_id : named_key_id, asked.kms,
                                           asked.bucket_key};
    AddEncryptionHeaders(ctx, report, *reported);
    if (asked.context) reported->emplace_back("x-amz-server-side-encryption-context", *asked.context);
  }
  return named_key_id;
}

void AddEncryptionContextHeader(const RequestContext& ctx, const service::PutResult& result, Headers& headers) {
  if (!result.encryption.kms) return;
  if (const auto context = ctx.Header("x-amz-server-side-encryption-context")) {
    headers.emplace_back("x-amz-server-side-encryption-context", std::string(TrimWhitespace(*context)));
  }
}

Headers PutResultHeaders(const RequestContext& ctx, const service::PutResult& result) {
  Headers headers;
  headers.emplace_back("etag", QuoteETag(result.etag));
  AddEncryptionHeaders(ctx, result.encryption, headers);
  for (const auto& [alg, value] : result.checksums) {
    headers.emplace_back(std::string(crypto::ChecksumHeaderName(alg)), Base64Encode(value));
  }
  if (!result.version_id.empty()) {
    headers.emplace_back("x-amz-version-id", result.version_id);
  }
  return headers;
}

std::optional<Error> CheckDeclaredPayloadLength(const RequestContext& ctx) {
  // S3 needs the payload length up front: Content-Length, or x-amz-decoded-content-length for
  // aws-chunked bodies sent with Transfer-Encoding: chunked (boto3 over HTTPS).
  auto len = ctx.DeclaredPayloadLength();
  if (!len) return Error(ErrorCode::kMissingContentLength);
  if (*len > ctx.options().max_single_put) return Error(ErrorCode::kEntityTooLarge);
  return std::nullopt;
}

Expected<PutRequest, Error> ParsePutRequest(const RequestContext& ctx) {
  auto attrs = ctx.AttributesFromHeaders();
  if (!attrs.ok()) return attrs.error();
  auto tags = ctx.TagsFromHeader();
  if (!tags.ok()) return tags.error();
  auto plan = ctx.PlanChecksums();
  if (!plan.ok()) return plan.error();
  auto cond = WriteConditionFromHeaders(ctx);
  if (!cond.ok()) return cond.error();
  auto lock = ObjectLockFromHeaders(ctx);
  if (!lock.ok()) return lock.error();
  if (auto e = CheckDeclaredPayloadLength(ctx)) return *e;
  return PutRequest{std::move(*attrs), std::move(*tags), std::move(*plan), std::move(*cond), std::move(*lock)};
}

service::SResult<std::unique_ptr<service::ObjectWriter>> BeginPutWriter(RequestContext& ctx,
                                                                        const catalog::Bucket& bucket,
                                                                        PutRequest& req) {
  auto named_key = ChooseObjectKey(ctx, bucket, req.attributes);
  if (!named_key.ok()) return named_key.error();
  return ctx.service().BeginPut(bucket, ctx.route.key, std::move(req.attributes), req.plan.compute, &ctx.audit_request,
                                ctx.DeclaredPayloadLength(), std::move(req.tags), std::move(req.lock), *named_key);
}

namespace {

asio::awaitable<void> PutObject(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto req = ParsePutRequest(ctx);
  if (!req.ok()) co_return co_await ctx.SendError(req.error());
  auto writer =
      co_await ctx.PrefetchedOr(std::move(ctx.begun_writer), [&] { return BeginPutWriter(ctx, bucket, *req); });
  if (!writer.ok()) co_return co_await ctx.SendError(ToS3Error(writer.error()));
  auto commit = co_await ctx.ReceiveObject(**writer, req->plan);
  if (!commit.ok()) co_return co_await ctx.SendError(commit.error());
  commit->condition = req->condition;
  auto result = co_await ctx.Committing([&] { return (*writer)->Commit(*commit); });
  if (!result.ok()) co_return co_await ctx.SendError(ToS3Error(result.error()));
  Headers headers = PutResultHeaders(ctx, *result);
  AddEncryptionContextHeader(ctx, *result, headers);
  if (!result->checksums.empty()) headers.emplace_back("x-amz-checksum-type", service::kFullObjectChecksum);
  co_await ctx.SendEmpty(bhttp::status::ok, headers);
}

// The response of a GET whose reader is set to its range: `length` plaintext bytes after the
// header, read and decrypted on workers while the previous piece is sent.
asio::awaitable<void> SendObject(RequestContext& ctx, service::ObjectReader& reader, bhttp::status status,
                                 const Headers& headers, uint64_t length) {
  // Decrypt the first piece before committing to a 200/206, so that a damaged object answers
  // with an error instead of a truncated body.
  const uint64_t large_step =
      std::max<uint64_t>(ctx.options().io_chunk, std::min<uint64_t>(length / 4, ctx.options().get_chunk));
  const SlotLease large_send(ctx.gateway.large_sends(), large_step > ctx.options().io_chunk);
  const uint64_t step = large_send.held() ? large_step : ctx.options().io_chunk;
  // Not Bytes: a vector would zero up to 2 MiB per GET that decryption overwrites anyway.
  const size_t buf_size = std::min<uint64_t>(step, std::max<uint64_t>(length, 1));
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(buf_size);
  // A small object was decrypted when it was opened: it is copied out on the network thread, which
  // saves a trip to a worker once the audit record is durable.
  auto first =
      co_await ctx.ReadWhenReadable(reader, [&] { return reader.Read(std::span<uint8_t>(buf.get(), buf_size)); });
  if (!first.ok()) co_return co_await ctx.SendError(ToS3Error(first.error()));

  if (!co_await ctx.ex.SendHeader(ObjectResponseHeader(ctx, status, headers, length))) co_return;
  // Two buffers: the next piece is read and decrypted on a worker while this one is being sent.
  // The read is the first operand: `&&` starts its operands in order, and a send's first write runs
  // inline, copying up to a socket buffer's worth before the second operand would be posted.
  using boost::asio::experimental::awaitable_operators::operator&&;
  auto spare = reader.remaining() > 0 ? std::make_unique_for_overwrite<uint8_t[]>(buf_size) : nullptr;
  size_t n = *first;
  while (n > 0) {
    if (reader.remaining() == 0) {
      if (!co_await ctx.ex.SendBody(ByteView(buf.get(), n))) co_return;
      break;
    }
    auto [next, sent] = co_await (ctx.Blocking([&] {
      return reader.Read(std::span<uint8_t>(spare.get(), buf_size));
    }) && ctx.ex.SendBody(ByteView(buf.get(), n)));
    if (!sent) co_return;
    if (!next.ok()) {
      // Headers are gone: all we can do is cut the connection so the client sees a short body.
      spdlog::error("[{}] GetObject aborted mid-stream: {}", ctx.request_id, next.error().message);
      co_return;
    }
    std::swap(buf, spare);
    n = *next;
  }
  co_await ctx.ex.FinishBody();
}

asio::awaitable<void> GetObject(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return co_await ctx.SendError(version.error());
  auto reader = co_await ctx.PrefetchedOr(std::move(ctx.opened_object), [&] {
    return ctx.service().OpenObject(bucket, ctx.route.key, &ctx.audit_request, *version);
  });
  if (!reader.ok()) co_return co_await ctx.SendError(ToS3Error(reader.error()));
  const service::ObjectInfo& info = (*reader)->info();
  if (auto e = EvaluateReadConditions(ctx, info, "")) co_return co_await SendConditionFailure(ctx, info, *e);

  Headers headers;
  auto status = bhttp::status::ok;
  std::optional<ByteRange> range;
  bool whole = true;
  if (auto pn = ctx.route.query.Get("partNumber")) {
    auto sel = SelectPart(info, *pn);
    if (!sel.ok()) co_return co_await ctx.SendError(sel.error());
    range = *sel;
    whole = !info.multipart;
    if (info.multipart) {
      status = bhttp::status::partial_content;
    }
    if (!info.multipart && info.size == 0) {
      range.reset();
    }
  } else if (auto rh = ctx.Header("range")) {
    RangeResult rr = ParseRange(*rh, info.size);
    if (rr.kind == RangeParse::kUnsatisfiable) {
      Headers h;
      h.emplace_back("content-range", UnsatisfiedContentRange(info.size));
      co_return co_await ctx.SendXml(bhttp::status::range_not_satisfiable,
                                     ErrorDocument(Error(ErrorCode::kInvalidRange, ""), ctx.request_id, ctx.request_id),
                                     h);
    }
    if (rr.kind == RangeParse::kSatisfiable) {
      range = rr.range;
      status = bhttp::status::partial_content;
      whole = false;
    }
  }
  AddObjectHeaders(ctx, info, headers, whole && ChecksumModeEnabled(ctx),
                   ctx.route.query.Get("partNumber").has_value());
  uint64_t length = info.size;
  if (range) {
    length = range->length();
    if (status == bhttp::status::partial_content) {
      headers.emplace_back("content-range", ContentRangeHeader(*range, info.size));
    }
    auto r = (*reader)->SetRange(range->first, range->last);
    if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  }
  if (auto e = ApplyResponseOverrides(ctx.route.query, headers)) co_return co_await ctx.SendError(*e);
  co_await SendObject(ctx, **reader, status, headers, length);
}

asio::awaitable<void> HeadObject(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return co_await ctx.SendError(version.error());
  auto info = co_await ctx.PrefetchedOr(std::move(ctx.object_info),
                                        [&] { return ctx.service().HeadObject(bucket, ctx.route.key, *version); });
  if (!info.ok()) co_return co_await ctx.SendError(ToS3Error(info.error()));
  if (auto e = EvaluateReadConditions(ctx, *info, "")) co_return co_await SendConditionFailure(ctx, *info, *e);
  Headers headers;
  auto status = bhttp::status::ok;
  uint64_t length = info->size;
  bool whole = true;
  if (auto pn = ctx.route.query.Get("partNumber")) {
    auto sel = SelectPart(*info, *pn);
    if (!sel.ok()) co_return co_await ctx.SendError(sel.error());
    if (info->multipart) {
      status = bhttp::status::partial_content;
      length = sel->length();
      headers.emplace_back("content-range", ContentRangeHeader(*sel, info->size));
      whole = false;
    }
  } else if (auto rh = ctx.Header("range")) {
    RangeResult rr = ParseRange(*rh, info->size);
    if (rr.kind == RangeParse::kUnsatisfiable) {
      Headers h;
      h.emplace_back("content-range", UnsatisfiedContentRange(info->size));
      co_return co_await ctx.SendEmpty(bhttp::status::range_not_satisfiable, h);
    }
    if (rr.kind == RangeParse::kSatisfiable) {
      status = bhttp::status::partial_content;
      length = rr.range.length();
      headers.emplace_back("content-range", ContentRangeHeader(rr.range, info->size));
      whole = false;
    }
  }
  AddObjectHeaders(ctx, *info, headers, whole && ChecksumModeEnabled(ctx),
                   ctx.route.query.Get("partNumber").has_value());
  if (auto e = ApplyResponseOverrides(ctx.route.query, headers)) co_return co_await ctx.SendError(*e);
  if (co_await ctx.ex.SendHeader(ObjectResponseHeader(ctx, status, headers, length))) co_await ctx.ex.FinishBody();
}

asio::awaitable<void> DeleteObject(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return co_await ctx.SendError(version.error());
  const bool bypass = BypassesGovernance(ctx);
  auto r = co_await ctx.Committing(
      [&] { return ctx.service().DeleteObject(bucket, ctx.route.key, *version, &ctx.audit_request, bypass); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  Headers headers;
  if (r->delete_marker) headers.emplace_back("x-amz-delete-marker", "true");
  if (!r->version_id.empty()) headers.emplace_back("x-amz-version-id", r->version_id);
  co_await ctx.SendEmpty(bhttp::status::no_content, headers);
}

asio::awaitable<void> GetObjectTagging(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return co_await ctx.SendError(version.error());
  auto info = co_await ctx.Blocking([&] { return ctx.service().HeadObject(bucket, ctx.route.key, *version); });
  if (!info.ok()) co_return co_await ctx.SendError(ToS3Error(info.error()));
  Headers headers;
  if (!info->version_id.empty()) headers.emplace_back("x-amz-version-id", info->version_id);
  co_await ctx.SendXml(
      bhttp::status::ok,
      TaggingDocument(std::vector<std::pair<std::string, std::string>>(info->tags.begin(), info->tags.end())), headers);
}

// The whole body is read and checked before anything is written: a rejected request changes
// nothing.
asio::awaitable<void> PutObjectTagging(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return co_await ctx.SendError(version.error());
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto parsed = ParseTagging(*body);
  if (!parsed.ok()) co_return co_await ctx.SendError(parsed.error());
  auto tags = CheckTagSet(*parsed, kMaxObjectTags);
  if (!tags.ok()) co_return co_await ctx.SendError(tags.error());
  auto r = co_await ctx.Committing(
      [&] { return ctx.service().SetObjectTags(bucket, ctx.route.key, *tags, &ctx.audit_request, *version); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  Headers headers;
  if (!r->empty()) headers.emplace_back("x-amz-version-id", *r);
  co_await ctx.SendEmpty(bhttp::status::ok, headers);
}

asio::awaitable<void> DeleteObjectTagging(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return co_await ctx.SendError(version.error());
  auto r = co_await ctx.Committing(
      [&] { return ctx.service().SetObjectTags(bucket, ctx.route.key, {}, &ctx.audit_request, *version); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  Headers headers;
  if (!r->empty()) headers.emplace_back("x-amz-version-id", *r);
  co_await ctx.SendEmpty(bhttp::status::no_content, headers);
}

// The names x-amz-object-attributes may list, comma-separated.
constexpr std::array<std::string_view, 5> kObjectAttributeNames = {"ETag", "Checksum", "ObjectParts", "StorageClass",
                                                                   "ObjectSize"};

Expected<std::set<std::string_view>, Error> ParseObjectAttributeNames(std::optional<std::string_view> header) {
  std::set<std::string_view> names;
  for (const std::string_view name : CommaSeparatedItems(header.value_or(""))) {
    auto known = std::find(kObjectAttributeNames.begin(), kObjectAttributeNames.end(), name);
    if (known == kObjectAttributeNames.end()) {
      return Error(ErrorCode::kInvalidArgument, "Invalid attribute name specified.");
    }
    names.insert(*known);
  }
  if (names.empty()) {
    return Error(ErrorCode::kInvalidArgument, "x-amz-object-attributes must name at least one attribute.");
  }
  return names;
}

// What x-amz-object-attributes asks for, from the catalog alone: no blob is read and no data key
// unwrapped, so nothing is decrypted and no key-use record is written.
asio::awaitable<void> GetObjectAttributes(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return co_await ctx.SendError(version.error());
  auto names = ParseObjectAttributeNames(ctx.Header("x-amz-object-attributes"));
  if (!names.ok()) co_return co_await ctx.SendError(names.error());
  const auto header = [&ctx](std::string_view name) -> std::optional<std::string> {
    const auto value = ctx.Header(name);
    return value ? std::optional<std::string>(*value) : std::nullopt;
  };
  auto max_parts = ParseNumber(header("x-amz-max-parts"), 1000, 1000, "x-amz-max-parts");
  if (!max_parts.ok()) co_return co_await ctx.SendError(max_parts.error());
  auto marker = ParseNumber(header("x-amz-part-number-marker"), 0, 10000, "x-amz-part-number-marker");
  if (!marker.ok()) co_return co_await ctx.SendError(marker.error());
  auto info = co_await ctx.Blocking([&] { return ctx.service().HeadObject(bucket, ctx.route.key, *version); });
  if (!info.ok()) co_return co_await ctx.SendError(ToS3Error(info.error()));

  ObjectAttributesResult doc;
  if (names->contains("ETag")) doc.etag = info->etag;
  if (names->contains("Checksum")) {
    doc.checksums = ChecksumElements(info->attributes);
    const std::string checksum_type = ChecksumTypeOf(*info);
    if (info->multipart && checksum_type == service::kCompositeChecksum) {
      // HEAD gives a composite checksum with its "-<part count>"; this answer gives it bare.
      for (auto& [name, value] : doc.checksums) {
        if (const size_t dash = value.rfind('-'); dash != std::string::npos) value.resize(dash);
      }
    }
    if (!doc.checksums.empty()) doc.checksum_type = checksum_type;
  }
  if (names->contains("ObjectParts") && info->multipart) {
    ObjectAttributesResult::PartsSection parts;
    parts.parts_count = static_cast<uint32_t>(info->part_sizes.size());
    parts.part_number_marker = *marker;
    parts.max_parts = *max_parts;
    // As on AWS, the parts themselves are listed only for an object whose parts carry checksums;
    // otherwise the count alone. Parts are numbered in order from 1, as GetObject's partNumber.
    const bool with_checksums = std::any_of(info->part_checksums.begin(), info->part_checksums.end(),
                                            [](const catalog::Attributes& c) { return !c.empty(); });
    if (with_checksums) {
      for (uint32_t number = *marker + 1; number <= parts.parts_count; ++number) {
        if (parts.parts.size() == parts.max_parts) {
          parts.is_truncated = true;
          break;
        }
        parts.parts.push_back({.part_number = number,
                               .size = info->part_sizes[number - 1],
                               .checksums = ChecksumElements(info->part_checksums[number - 1])});
      }
      parts.next_part_number_marker = parts.parts.empty() ? *marker : parts.parts.back().part_number;
    }
    doc.object_parts = std::move(parts);
  }
  if (names->contains("StorageClass")) doc.storage_class = "STANDARD";
  if (names->contains("ObjectSize")) doc.object_size = info->size;
  Headers headers;
  headers.emplace_back("last-modified", FormatHttpDate(FromUnixMillis(info->last_modified)));
  if (!info->version_id.empty()) headers.emplace_back("x-amz-version-id", info->version_id);
  co_await ctx.SendXml(bhttp::status::ok, ObjectAttributesDocument(doc), headers);
}

asio::awaitable<void> GetObjectAcl(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return co_await ctx.SendError(version.error());
  auto info = co_await ctx.Blocking([&] { return ctx.service().HeadObject(bucket, ctx.route.key, *version); });
  if (!info.ok()) co_return co_await ctx.SendError(ToS3Error(info.error()));
  co_await ctx.SendXml(bhttp::status::ok, AccessControlPolicyDocument(ctx.owner()));
}

asio::awaitable<void> CopyObject(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto source = co_await OpenCopySource(ctx);
  if (!source.ok()) co_return co_await ctx.SendError(source.error());
  auto& reader = source->reader;
  const service::ObjectInfo& src = reader->info();
  const std::string directive(ctx.Header("x-amz-metadata-directive").value_or("COPY"));
  if (directive != "COPY" && directive != "REPLACE") {
    co_return co_await ctx.SendError(Error(ErrorCode::kInvalidArgument, "Unknown metadata directive."));
  }
  // Copying a version named by its id over its key restores it (a new current version): that is
  // no copy onto itself.
  const bool same_object = source->bucket.id == bucket.id && source->key == ctx.route.key && !source->version_named;
  if (same_object && directive == "COPY") {
    co_return co_await ctx.SendError(
        Error(ErrorCode::kInvalidRequest,
              "This copy request is illegal because it is trying to copy an object to itself without changing the "
              "object's metadata, storage class, website redirect location or encryption attributes."));
  }
  const std::string tagging_directive(ctx.Header("x-amz-tagging-directive").value_or("COPY"));
  if (tagging_directive != "COPY" && tagging_directive != "REPLACE") {
    co_return co_await ctx.SendError(Error(ErrorCode::kInvalidArgument, "Unknown tagging directive."));
  }
  catalog::Tags tags = src.tags;
  if (tagging_directive == "REPLACE") {
    auto t = ctx.TagsFromHeader();
    if (!t.ok()) co_return co_await ctx.SendError(t.error());
    tags = std::move(*t);
  }
  catalog::Attributes attrs;
  if (directive == "REPLACE") {
    auto a = ctx.AttributesFromHeaders();
    if (!a.ok()) co_return co_await ctx.SendError(a.error());
    attrs = std::move(*a);
  } else {
    for (const auto& [k, v] : src.attributes) {
      if (!k.starts_with("x-amz-checksum-")) {
        attrs[k] = v;
      }
    }
  }
  // The copy keeps the source's checksum algorithms (recomputed over the plaintext).
  std::set<crypto::ChecksumAlgorithm> algs;
  for (const auto& [k, v] : src.attributes) {
    if (auto alg = crypto::ParseChecksumAlgorithm(k); alg && k.starts_with("x-amz-checksum-")) {
      algs.insert(*alg);
    }
  }
  if (auto a = ctx.Header("x-amz-checksum-algorithm")) {
    auto alg = crypto::ParseChecksumAlgorithm(*a);
    if (!alg) co_return co_await ctx.SendError(Error(ErrorCode::kInvalidRequest, "Invalid checksum algorithm"));
    algs = {*alg};
  }
  auto cond = WriteConditionFromHeaders(ctx);
  if (!cond.ok()) co_return co_await ctx.SendError(cond.error());
  // The copy is a new version: its retention and legal hold are the request's (or the bucket's
  // default), never the source's.
  auto lock = ObjectLockFromHeaders(ctx);
  if (!lock.ok()) co_return co_await ctx.SendError(lock.error());
  // As on S3, the copy is encrypted as its request (or its bucket's default) says, never as its
  // source was.
  attrs.erase(std::string(service::kEncryptionAttribute));
  attrs.erase(std::string(service::kBucketKeyAttribute));
  auto result = co_await ctx.Blocking([&]() -> Expected<service::PutResult, Error> {
    auto named_key = ChooseObjectKey(ctx, bucket, attrs);
    if (!named_key.ok()) return ToS3Error(named_key.error());
    service::CommitOptions opts;
    opts.condition = *cond;
    return CopyAndCommit(*reader,
                         ctx.service().BeginPut(bucket, ctx.route.key, std::move(attrs), algs, &ctx.audit_request,
                                                src.size, tags, *lock, *named_key),
                         ctx.options().io_chunk, opts);
  });
  if (!result.ok()) co_return co_await ctx.SendError(result.error());
  CopyResult doc;
  doc.etag = result->etag;
  doc.last_modified = FromUnixMillis(result->last_modified);
  for (const auto& [alg, v] : result->checksums) {
    std::string name = "Checksum" + std::string(crypto::ChecksumAlgorithmName(alg));
    doc.checksums[name] = Base64Encode(v);
  }
  Headers headers;
  AddEncryptionHeaders(ctx, result->encryption, headers);
  AddEncryptionContextHeader(ctx, *result, headers);
  if (!src.version_id.empty()) headers.emplace_back("x-amz-copy-source-version-id", src.version_id);
  if (!result->version_id.empty()) headers.emplace_back("x-amz-version-id", result->version_id);
  co_await ctx.SendXml(bhttp::status::ok, CopyObjectResultDocument(doc), headers);
}

}  // namespace

Expected<std::string, Error> RequestedVersion(const Query& query) {
  auto version = query.Get("versionId");
  if (!version) return std::string();
  if (version->empty()) return Error(ErrorCode::kInvalidArgument, "Version id cannot be the empty string");
  if (auto e = CheckVersionId(*version)) return *e;
  return std::move(*version);
}

std::optional<Error> CheckVersionId(std::string_view id) {
  if (service::IsVersionId(id)) return std::nullopt;
  return Error(ErrorCode::kInvalidArgument, "Invalid version id specified");
}

Expected<ByteRange, Error> SelectPart(const service::ObjectInfo& info, std::string_view part_number) {
  auto parsed = ParseDecimal(part_number);
  if (!parsed || *parsed < 1 || *parsed > 10000) {
    return Error(ErrorCode::kInvalidArgument, "Part number must be an integer between 1 and 10000, inclusive");
  }
  const uint64_t n = *parsed;
  if (!info.multipart) {
    if (n != 1) {
      return Error(ErrorCode::kInvalidPartNumber);
    }
    return ByteRange{0, info.size == 0 ? 0 : info.size - 1};
  }
  if (n > info.part_sizes.size()) {
    return Error(ErrorCode::kInvalidPartNumber);
  }
  uint64_t start = 0;
  for (size_t i = 0; i + 1 < n; ++i) {
    start += info.part_sizes[i];
  }
  const uint64_t size = info.part_sizes[n - 1];
  if (size == 0) {
    return Error(ErrorCode::kInvalidPartNumber);
  }
  return ByteRange{start, start + size - 1};
}

Expected<service::PutResult, Error> CopyAndCommit(service::ObjectReader& reader,
                                                  service::SResult<std::unique_ptr<service::ObjectWriter>> writer,
                                                  size_t chunk, const service::CommitOptions& options) {
  if (!writer.ok()) {
    return ToS3Error(writer.error());
  }
  Bytes buf(chunk);
  for (;;) {
    auto n = reader.Read(buf);
    if (!n.ok()) {
      return ToS3Error(n.error());
    }
    if (*n == 0) {
      break;
    }
    auto w = (*writer)->Write(ByteView(buf.data(), *n));
    if (!w.ok()) {
      return ToS3Error(w.error());
    }
  }
  auto r = (*writer)->Commit(options);
  if (!r.ok()) {
    return ToS3Error(r.error());
  }
  return std::move(r).value();
}

asio::awaitable<Expected<CopySource, Error>> OpenCopySource(RequestContext& ctx) {
  std::string_view raw = *ctx.Header("x-amz-copy-source");
  std::string_view path = raw;
  std::string version;
  if (auto q = path.find('?'); q != std::string_view::npos) {
    std::string_view query = path.substr(q + 1);
    path = path.substr(0, q);
    if (!query.starts_with("versionId=") || query.find('&') != std::string_view::npos) {
      co_return Error(ErrorCode::kInvalidArgument, "Invalid copy source: only a versionId may follow the key");
    }
    auto decoded = http::PercentDecode(query.substr(std::string_view("versionId=").size()));
    if (auto e = CheckVersionId(decoded.value_or(""))) co_return *e;  // undecodable: no version id either
    version = std::move(*decoded);
  }
  const bool version_named = !version.empty();
  auto decoded = http::PercentDecode(path);
  if (!decoded) {
    co_return Error(ErrorCode::kInvalidArgument, "Invalid copy source encoding");
  }
  std::string_view src = *decoded;
  if (src.starts_with('/')) {
    src.remove_prefix(1);
  }
  size_t slash = src.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == src.size()) {
    co_return Error(ErrorCode::kInvalidArgument,
                    "Copy Source must mention the source bucket and key: sourcebucket/sourcekey");
  }
  CopySource out;
  std::string bucket_name(src.substr(0, slash));
  out.key = std::string(src.substr(slash + 1));
  auto bucket = co_await ctx.ResolveBucket(bucket_name);
  if (!bucket.ok()) {
    co_return bucket.error();
  }
  out.bucket = *bucket;
  auto reader =
      co_await ctx.Blocking([&] { return ctx.service().OpenObject(out.bucket, out.key, &ctx.audit_request, version); });
  if (!reader.ok()) {
    if (reader.error().code == service::Errc::kMethodNotAllowed) {
      co_return Error(ErrorCode::kInvalidRequest,
                      "The source of a copy request may not specifically refer to a delete marker by version id.");
    }
    Error e = ToS3Error(reader.error());
    e.resource = "/" + bucket_name + "/" + out.key;
    co_return e;
  }
  out.reader = std::move(reader).value();
  out.version_named = version_named;
  if (auto e = EvaluateReadConditions(ctx, out.reader->info(), "x-amz-copy-source-")) {
    co_return *e;
  }
  co_return out;
}

asio::awaitable<void> HandleObjectOperation(RequestContext& ctx) {
  auto bucket = co_await ctx.ResolveBucket(ctx.route.bucket);
  if (!bucket.ok()) co_return co_await ctx.SendError(bucket.error());
  switch (ctx.route.op) {
    case Operation::kPutObject:
      co_return co_await PutObject(ctx, *bucket);
    case Operation::kCopyObject:
      co_return co_await CopyObject(ctx, *bucket);
    case Operation::kGetObject:
      co_return co_await GetObject(ctx, *bucket);
    case Operation::kHeadObject:
      co_return co_await HeadObject(ctx, *bucket);
    case Operation::kDeleteObject:
      co_return co_await DeleteObject(ctx, *bucket);
    case Operation::kGetObjectAcl:
      co_return co_await GetObjectAcl(ctx, *bucket);
    case Operation::kGetObjectTagging:
      co_return co_await GetObjectTagging(ctx, *bucket);
    case Operation::kGetObjectAttributes:
      co_return co_await GetObjectAttributes(ctx, *bucket);
    case Operation::kPutObjectTagging:
      co_return co_await PutObjectTagging(ctx, *bucket);
    case Operation::kDeleteObjectTagging:
      co_return co_await DeleteObjectTagging(ctx, *bucket);
    case Operation::kGetObjectRetention:
    case Operation::kPutObjectRetention:
    case Operation::kGetObjectLegalHold:
    case Operation::kPutObjectLegalHold:
      co_return co_await HandleObjectLockOperation(ctx, *bucket);
    default:
      co_return co_await ctx.SendError(Error(ErrorCode::kNotImplemented));
  }
}

}  // namespace coffre::s3
