// Multipart uploads.

#include "coffre/common/ascii.h"
#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/crypto/checksum.h"
#include "object_handlers.h"
#include "request_context.h"

namespace coffre::s3 {
namespace {

Expected<uint32_t, Error> PartNumberOf(const RequestContext& ctx) {
  auto v = ctx.route.query.Get("partNumber");
  auto n = ParseNumber(v, 0, UINT32_MAX, "partNumber");
  if (!n.ok() || *n < 1 || *n > 10000) {
    return Error(ErrorCode::kInvalidArgument, "Part number must be an integer between 1 and 10000, inclusive");
  }
  return *n;
}

// FULL_OBJECT or COMPOSITE, as x-amz-checksum-type gives it; "" for anything else.
std::string ParseChecksumType(std::string_view value) {
  value = TrimWhitespace(value);
  for (const std::string_view type : {service::kFullObjectChecksum, service::kCompositeChecksum}) {
    if (EqualsIgnoreCase(value, type)) return std::string(type);
  }
  return {};
}

// x-amz-checksum-algorithm and x-amz-checksum-type of a CreateMultipartUpload, as the upload's
// attributes: the type defaults to the composite one, or the full-object one for an algorithm that
// has no other (CRC64NVME).
std::optional<Error> ChecksumOfUpload(const RequestContext& ctx, catalog::Attributes& attributes) {
  const auto algorithm_header = ctx.Header("x-amz-checksum-algorithm");
  const auto type_header = ctx.Header("x-amz-checksum-type");
  if (!algorithm_header) {
    if (type_header) {
      return Error(ErrorCode::kInvalidRequest,
                   "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.");
    }
    return std::nullopt;
  }
  const auto algorithm = crypto::ParseChecksumAlgorithm(*algorithm_header);
  if (!algorithm) return Error(ErrorCode::kInvalidRequest, "Invalid checksum algorithm");
  std::string type;
  if (type_header) {
    type = ParseChecksumType(*type_header);
    if (type.empty()) {
      return Error(ErrorCode::kInvalidRequest, "Value for x-amz-checksum-type header is invalid.");
    }
  } else {
    type = crypto::HasCompositeChecksum(*algorithm) ? service::kCompositeChecksum : service::kFullObjectChecksum;
  }
  if ((type == service::kFullObjectChecksum && !crypto::HasFullObjectChecksum(*algorithm)) ||
      (type == service::kCompositeChecksum && !crypto::HasCompositeChecksum(*algorithm))) {
    return Error(ErrorCode::kInvalidRequest, "The " + type + " checksum type cannot be used with the " +
                                                 ToLower(crypto::ChecksumAlgorithmName(*algorithm)) +
                                                 " checksum algorithm.");
  }
  attributes[std::string(service::kChecksumAlgorithmAttribute)] = crypto::ChecksumAlgorithmName(*algorithm);
  attributes[std::string(service::kChecksumTypeAttribute)] = type;
  return std::nullopt;
}

// The value of an upload's attribute, if it has it (its checksum algorithm or type, say).
std::optional<std::string> AttributeOf(const catalog::Attributes& attributes, std::string_view name) {
  const auto it = attributes.find(std::string(name));
  if (it == attributes.end()) return std::nullopt;
  return it->second;
}

// The checksum headers of an upload's answers: its algorithm and type, when it has them.
void AddUploadChecksumHeaders(const catalog::Attributes& attributes, Headers& headers) {
  for (const std::string_view name : {service::kChecksumAlgorithmAttribute, service::kChecksumTypeAttribute}) {
    if (auto value = AttributeOf(attributes, name)) headers.emplace_back(std::string(name), std::move(*value));
  }
}

asio::awaitable<void> CreateMultipartUpload(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto attrs = ctx.AttributesFromHeaders();
  if (!attrs.ok()) co_return co_await ctx.SendError(attrs.error());
  auto tags = ctx.TagsFromHeader();
  if (!tags.ok()) co_return co_await ctx.SendError(tags.error());
  if (auto e = ChecksumOfUpload(ctx, *attrs)) co_return co_await ctx.SendError(*e);
  auto lock = ObjectLockFromHeaders(ctx);
  if (!lock.ok()) co_return co_await ctx.SendError(lock.error());
  Headers h;
  AddUploadChecksumHeaders(*attrs, h);
  auto id = co_await ctx.Blocking([&]() -> service::SResult<std::string> {
    auto named_key = ChooseObjectKey(ctx, bucket, *attrs, &h);
    if (!named_key.ok()) return named_key.error();
    return ctx.service().CreateUpload(bucket, ctx.route.key, std::move(*attrs), &ctx.audit_request, std::move(*tags),
                                      std::move(*lock), *named_key);
  });
  if (!id.ok()) co_return co_await ctx.SendError(ToS3Error(id.error()));
  co_await ctx.SendXml(bhttp::status::ok, InitiateMultipartUploadDocument(bucket.name, ctx.route.key, *id), h);
}

// What a Complete asserts about the object: x-amz-checksum-type, and its checksum in an
// x-amz-checksum-* header (a composite one with "-<part count>", which must be the parts named).
Expected<service::CompleteExpectations, Error> CompleteExpectationsOf(const RequestContext& ctx, size_t parts) {
  service::CompleteExpectations expected;
  if (const auto type = ctx.Header("x-amz-checksum-type")) {
    expected.checksum_type = ParseChecksumType(*type);
    if (expected.checksum_type.empty()) {
      return Error(ErrorCode::kInvalidRequest, "Value for x-amz-checksum-type header is invalid.");
    }
  }
  for (const crypto::ChecksumAlgorithm alg : crypto::kAllChecksumAlgorithms) {
    const auto header = ctx.Header(crypto::ChecksumHeaderName(alg));
    if (!header) continue;
    std::string_view value = TrimWhitespace(*header);
    const size_t dash = value.find('-');
    if (dash != std::string_view::npos) {
      if (value.substr(dash + 1) != std::to_string(parts)) {
        return Error(ErrorCode::kBadDigest, "The " + std::string(crypto::ChecksumAlgorithmName(alg)) +
                                                " you specified is of another number of parts than the request names.");
      }
      value = value.substr(0, dash);
    }
    auto raw = Base64Decode(value);
    if (!raw || raw->size() != crypto::ChecksumSize(alg)) {
      return Error(ErrorCode::kInvalidRequest,
                   "Value for " + std::string(crypto::ChecksumHeaderName(alg)) + " header is invalid.");
    }
    expected.checksums[alg] = std::move(*raw);
  }
  return expected;
}

}  // namespace

Expected<UploadPartRequest, Error> ParseUploadPartRequest(const RequestContext& ctx) {
  auto part = PartNumberOf(ctx);
  if (!part.ok()) return part.error();
  auto plan = ctx.PlanChecksums();
  if (!plan.ok()) return plan.error();
  if (auto e = CheckDeclaredPayloadLength(ctx)) return *e;
  return UploadPartRequest{*part, std::string(*ctx.route.query.Get("uploadId")), std::move(*plan)};
}

service::SResult<std::unique_ptr<service::ObjectWriter>> BeginPartWriter(RequestContext& ctx,
                                                                         const catalog::Bucket& bucket,
                                                                         const UploadPartRequest& req) {
  return ctx.service().BeginPart(bucket, ctx.route.key, req.upload_id, req.part_number, req.plan.compute,
                                 &ctx.audit_request, ctx.DeclaredPayloadLength());
}

namespace {

asio::awaitable<void> UploadPart(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto req = ParseUploadPartRequest(ctx);
  if (!req.ok()) co_return co_await ctx.SendError(req.error());
  auto writer =
      co_await ctx.PrefetchedOr(std::move(ctx.begun_writer), [&] { return BeginPartWriter(ctx, bucket, *req); });
  if (!writer.ok()) co_return co_await ctx.SendError(ToS3Error(writer.error()));
  auto commit = co_await ctx.ReceiveObject(**writer, req->plan);
  if (!commit.ok()) co_return co_await ctx.SendError(commit.error());
  auto result = co_await ctx.Committing([&] { return (*writer)->Commit(*commit); });
  if (!result.ok()) co_return co_await ctx.SendError(ToS3Error(result.error()));
  co_await ctx.SendEmpty(bhttp::status::ok, PutResultHeaders(ctx, *result));
}

asio::awaitable<void> UploadPartCopy(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto part = PartNumberOf(ctx);
  if (!part.ok()) co_return co_await ctx.SendError(part.error());
  const std::string upload_id = *ctx.route.query.Get("uploadId");
  auto source = co_await OpenCopySource(ctx);
  if (!source.ok()) co_return co_await ctx.SendError(source.error());
  const uint64_t size = source->reader->info().size;
  uint64_t copied = size;
  if (auto range = ctx.Header("x-amz-copy-source-range")) {
    // Unlike GET, a copy range must be exact: "bytes=first-last" within the object.
    std::string_view r = TrimWhitespace(*range);
    auto bad = [&] {
      return Error(ErrorCode::kInvalidArgument,
                   "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last "
                   "are the zero-based offsets of the first and last bytes to copy");
    };
    if (!r.starts_with("bytes=")) co_return co_await ctx.SendError(bad());
    r.remove_prefix(6);
    size_t dash = r.find('-');
    if (dash == std::string_view::npos) co_return co_await ctx.SendError(bad());
    auto a = ParseDecimal(r.substr(0, dash));
    auto b = ParseDecimal(r.substr(dash + 1));
    if (!a || !b || *a > *b) co_return co_await ctx.SendError(bad());
    if (*b >= size) {
      co_return co_await ctx.SendError(Error(ErrorCode::kInvalidRange, "The requested range is not satisfiable"));
    }
    auto set = source->reader->SetRange(*a, *b);
    if (!set.ok()) co_return co_await ctx.SendError(ToS3Error(set.error()));
    copied = *b - *a + 1;
  }
  auto result = co_await ctx.Blocking([&]() -> Expected<service::PutResult, Error> {
    return CopyAndCommit(
        *source->reader,
        ctx.service().BeginPart(bucket, ctx.route.key, upload_id, *part, {}, &ctx.audit_request, copied),
        ctx.options().io_chunk, {});
  });
  if (!result.ok()) co_return co_await ctx.SendError(result.error());
  CopyResult doc;
  doc.etag = result->etag;
  doc.last_modified = FromUnixMillis(result->last_modified);
  Headers headers;
  AddEncryptionHeaders(ctx, result->encryption, headers);
  if (const std::string& version = source->reader->info().version_id; !version.empty()) {
    headers.emplace_back("x-amz-copy-source-version-id", version);
  }
  co_await ctx.SendXml(bhttp::status::ok, CopyPartResultDocument(doc), headers);
}

asio::awaitable<void> CompleteMultipartUpload(RequestContext& ctx, const catalog::Bucket& bucket) {
  const std::string upload_id = *ctx.route.query.Get("uploadId");
  auto cond = WriteConditionFromHeaders(ctx);
  if (!cond.ok()) co_return co_await ctx.SendError(cond.error());
  auto body = co_await ctx.ReadSmallBody(RequestContext::ChecksumHeaders::kNotOfTheBody);
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto parts = ParseCompleteMultipartUpload(*body);
  if (!parts.ok()) co_return co_await ctx.SendError(parts.error());
  std::vector<service::UploadPartRef> refs;
  for (const auto& p : *parts) {
    service::UploadPartRef ref{.part_number = p.part_number, .etag = NormalizeETag(p.etag)};
    for (const auto& [element, value] : p.checksums) {
      // "ChecksumCRC32" names CRC32; an element of no known algorithm is ignored, as S3 does.
      const auto alg = crypto::ParseChecksumAlgorithm(std::string_view(element).substr(8));
      if (!alg) continue;
      auto raw = Base64Decode(value);
      if (!raw || raw->size() != crypto::ChecksumSize(*alg)) {
        co_return co_await ctx.SendError(
            Error(ErrorCode::kInvalidPart,
                  "The " + element + " of part " + std::to_string(p.part_number) + " is not a valid checksum."));
      }
      ref.checksums[*alg] = std::move(*raw);
    }
    refs.push_back(std::move(ref));
  }
  auto expected = CompleteExpectationsOf(ctx, refs.size());
  if (!expected.ok()) co_return co_await ctx.SendError(expected.error());
  auto result = co_await ctx.Committing([&] {
    return ctx.service().CompleteUpload(bucket, ctx.route.key, upload_id, refs, *cond, &ctx.audit_request, *expected);
  });
  if (!result.ok()) co_return co_await ctx.SendError(ToS3Error(result.error()));
  CompleteMultipartUploadResult doc;
  std::string host(ctx.Header("host").value_or("localhost"));
  doc.location = "http://" + host + "/" + bucket.name + "/" + UriEncode(ctx.route.key, false);
  doc.bucket = bucket.name;
  doc.key = ctx.route.key;
  doc.etag = result->etag;
  const std::string suffix =
      result->checksum_type == service::kCompositeChecksum ? "-" + std::to_string(refs.size()) : "";
  for (const auto& [alg, v] : result->checksums) {
    doc.checksums["Checksum" + std::string(crypto::ChecksumAlgorithmName(alg))] = Base64Encode(v) + suffix;
  }
  if (!doc.checksums.empty()) {
    doc.checksum_type = result->checksum_type;
  }
  Headers headers;
  AddEncryptionHeaders(ctx, result->encryption, headers);
  if (!result->version_id.empty()) headers.emplace_back("x-amz-version-id", result->version_id);
  co_await ctx.SendXml(bhttp::status::ok, CompleteMultipartUploadDocument(doc), headers);
}

asio::awaitable<void> ListParts(RequestContext& ctx, const catalog::Bucket& bucket) {
  const std::string upload_id = *ctx.route.query.Get("uploadId");
  auto marker = ParseNumber(ctx.route.query.Get("part-number-marker"), 0, 10000, "part-number-marker");
  if (!marker.ok()) co_return co_await ctx.SendError(marker.error());
  auto max_parts = ParseNumber(ctx.route.query.Get("max-parts"), 1000, 1000, "max-parts");
  if (!max_parts.ok()) co_return co_await ctx.SendError(max_parts.error());
  auto upload = co_await ctx.Blocking([&] { return ctx.service().GetUpload(bucket, ctx.route.key, upload_id); });
  if (!upload.ok()) co_return co_await ctx.SendError(ToS3Error(upload.error()));
  // One extra part tells whether the listing is truncated.
  auto parts = co_await ctx.Blocking(
      [&] { return ctx.service().ListParts(bucket, ctx.route.key, upload_id, *marker, *max_parts + 1); });
  if (!parts.ok()) co_return co_await ctx.SendError(ToS3Error(parts.error()));
  ListPartsResult r;
  r.bucket = bucket.name;
  r.key = ctx.route.key;
  r.upload_id = upload_id;
  r.initiator = ctx.owner();
  r.owner = ctx.owner();
  r.part_number_marker = *marker;
  r.max_parts = *max_parts;
  r.checksum_algorithm = AttributeOf(upload->attributes, service::kChecksumAlgorithmAttribute);
  r.checksum_type = AttributeOf(upload->attributes, service::kChecksumTypeAttribute);
  r.is_truncated = parts->size() > *max_parts;
  if (r.is_truncated) {
    parts->resize(*max_parts);
  }
  for (const auto& p : *parts) {
    r.parts.push_back(
        PartEntry{p.part_number, FromUnixMillis(p.last_modified), p.etag, p.size, ChecksumElements(p.attributes)});
  }
  r.next_part_number_marker = r.parts.empty() ? 0 : r.parts.back().part_number;
  co_await ctx.SendXml(bhttp::status::ok, ListPartsDocument(r));
}

asio::awaitable<void> ListMultipartUploads(RequestContext& ctx, const catalog::Bucket& bucket) {
  const Query& q = ctx.route.query;
  auto max = ParseNumber(q.Get("max-uploads"), 1000, 1000, "max-uploads");
  if (!max.ok()) co_return co_await ctx.SendError(max.error());
  auto enc = q.Get("encoding-type");
  if (enc && *enc != "url") {
    co_return co_await ctx.SendError(
        Error(ErrorCode::kInvalidArgument, "Invalid Encoding Method specified in Request"));
  }
  catalog::UploadListQuery query;
  query.prefix = q.Get("prefix").value_or("");
  query.delimiter = q.Get("delimiter").value_or("");
  query.key_marker = q.Get("key-marker").value_or("");
  query.upload_id_marker = q.Get("upload-id-marker").value_or("");
  query.max_uploads = *max;
  auto page = co_await ctx.Blocking([&] { return ctx.service().ListUploads(bucket, query); });
  if (!page.ok()) co_return co_await ctx.SendError(ToS3Error(page.error()));
  ListMultipartUploadsResult r;
  r.bucket = bucket.name;
  r.key_marker = query.key_marker;
  r.upload_id_marker = query.upload_id_marker;
  r.next_key_marker = page->next_key_marker;
  r.next_upload_id_marker = page->next_upload_id_marker;
  r.prefix = query.prefix;
  r.delimiter = query.delimiter;
  r.max_uploads = *max;
  r.is_truncated = page->is_truncated;
  r.url_encoding = enc.has_value();
  for (const auto& u : page->uploads) {
    UploadEntry e;
    e.key = u.key;
    e.upload_id = u.upload_id;
    e.initiator = ctx.owner();
    e.owner = ctx.owner();
    e.initiated = FromUnixMillis(u.initiated);
    e.checksum_algorithm = AttributeOf(u.attributes, service::kChecksumAlgorithmAttribute);
    e.checksum_type = AttributeOf(u.attributes, service::kChecksumTypeAttribute);
    r.uploads.push_back(std::move(e));
  }
  r.common_prefixes = page->common_prefixes;
  co_await ctx.SendXml(bhttp::status::ok, ListMultipartUploadsDocument(r));
}

}  // namespace

asio::awaitable<void> HandleMultipartOperation(RequestContext& ctx) {
  auto bucket = co_await ctx.ResolveBucket(ctx.route.bucket);
  if (!bucket.ok()) co_return co_await ctx.SendError(bucket.error());
  switch (ctx.route.op) {
    case Operation::kCreateMultipartUpload:
      co_return co_await CreateMultipartUpload(ctx, *bucket);
    case Operation::kUploadPart:
      co_return co_await UploadPart(ctx, *bucket);
    case Operation::kUploadPartCopy:
      co_return co_await UploadPartCopy(ctx, *bucket);
    case Operation::kCompleteMultipartUpload:
      co_return co_await CompleteMultipartUpload(ctx, *bucket);
    case Operation::kAbortMultipartUpload: {
      const std::string upload_id = *ctx.route.query.Get("uploadId");
      auto r = co_await ctx.Committing([&] { return ctx.service().AbortUpload(*bucket, ctx.route.key, upload_id); });
      if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
      co_return co_await ctx.SendEmpty(bhttp::status::no_content);
    }
    case Operation::kListParts:
      co_return co_await ListParts(ctx, *bucket);
    case Operation::kListMultipartUploads:
      co_return co_await ListMultipartUploads(ctx, *bucket);
    default:
      co_return co_await ctx.SendError(Error(ErrorCode::kNotImplemented));
  }
}

}  // namespace coffre::s3
