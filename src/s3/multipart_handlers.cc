// Multipart uploads.

#include "coffre/common/clock.h"
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

asio::awaitable<void> CreateMultipartUpload(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto attrs = ctx.AttributesFromHeaders();
  if (!attrs.ok()) co_return co_await ctx.SendError(attrs.error());
  auto tags = ctx.TagsFromHeader();
  if (!tags.ok()) co_return co_await ctx.SendError(tags.error());
  if (auto alg = ctx.Header("x-amz-checksum-algorithm")) {
    auto parsed = crypto::ParseChecksumAlgorithm(*alg);
    if (!parsed) co_return co_await ctx.SendError(Error(ErrorCode::kInvalidRequest, "Invalid checksum algorithm"));
    (*attrs)["x-amz-checksum-algorithm"] = std::string(crypto::ChecksumAlgorithmName(*parsed));
  }
  auto id = co_await ctx.Blocking([&] {
    return ctx.service().CreateUpload(bucket, ctx.route.key, std::move(*attrs), &ctx.audit_request, std::move(*tags));
  });
  if (!id.ok()) co_return co_await ctx.SendError(ToS3Error(id.error()));
  Headers h = EncryptionHeaders();
  if (auto alg = ctx.Header("x-amz-checksum-algorithm")) {
    h.emplace_back("x-amz-checksum-algorithm", std::string(*alg));
  }
  co_await ctx.SendXml(bhttp::status::ok, InitiateMultipartUploadDocument(bucket.name, ctx.route.key, *id), h);
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
  co_await ctx.SendEmpty(bhttp::status::ok, PutResultHeaders(*result));
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
  co_await ctx.SendXml(bhttp::status::ok, CopyPartResultDocument(doc), EncryptionHeaders());
}

asio::awaitable<void> CompleteMultipartUpload(RequestContext& ctx, const catalog::Bucket& bucket) {
  const std::string upload_id = *ctx.route.query.Get("uploadId");
  auto cond = WriteConditionFromHeaders(ctx);
  if (!cond.ok()) co_return co_await ctx.SendError(cond.error());
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto parts = ParseCompleteMultipartUpload(*body);
  if (!parts.ok()) co_return co_await ctx.SendError(parts.error());
  std::vector<service::UploadPartRef> refs;
  for (const auto& p : *parts) {
    refs.push_back(service::UploadPartRef{p.part_number, NormalizeETag(p.etag)});
  }
  auto result = co_await ctx.Committing(
      [&] { return ctx.service().CompleteUpload(bucket, ctx.route.key, upload_id, refs, *cond, &ctx.audit_request); });
  if (!result.ok()) co_return co_await ctx.SendError(ToS3Error(result.error()));
  CompleteMultipartUploadResult doc;
  std::string host(ctx.Header("host").value_or("localhost"));
  doc.location = "http://" + host + "/" + bucket.name + "/" + UriEncode(ctx.route.key, false);
  doc.bucket = bucket.name;
  doc.key = ctx.route.key;
  doc.etag = result->etag;
  const std::string suffix = "-" + std::to_string(refs.size());
  for (const auto& [alg, v] : result->checksums) {
    doc.checksums["Checksum" + std::string(crypto::ChecksumAlgorithmName(alg))] = Base64Encode(v) + suffix;
  }
  if (!doc.checksums.empty()) {
    doc.checksum_type = "COMPOSITE";
  }
  co_await ctx.SendXml(bhttp::status::ok, CompleteMultipartUploadDocument(doc), EncryptionHeaders());
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
  if (auto it = upload->attributes.find("x-amz-checksum-algorithm"); it != upload->attributes.end()) {
    r.checksum_algorithm = it->second;
  }
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
    if (auto it = u.attributes.find("x-amz-checksum-algorithm"); it != u.attributes.end()) {
      e.checksum_algorithm = it->second;
    }
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
