// Bucket operations and listings.

#include "coffre/common/clock.h"
#include "coffre/s3/bucket_name.h"
#include "coffre/service/lifecycle.h"
#include "object_handlers.h"
#include "request_context.h"
#include "sse_headers.h"
#include "tagging.h"

namespace coffre::s3 {
namespace {

constexpr uint32_t kMaxListKeys = 1000;

Expected<uint32_t, Error> ParseMaxKeys(const Query& q, std::string_view name) {
  auto v = q.Get(name);
  if (!v) {
    return kMaxListKeys;
  }
  auto n = ParseDecimal(*v);
  if (!n) {
    return Error(ErrorCode::kInvalidArgument,
                 "Provided " + std::string(name) + " not an integer or within integer range");
  }
  return static_cast<uint32_t>(std::min<uint64_t>(*n, kMaxListKeys));
}

Expected<bool, Error> ParseEncodingType(const Query& q) {
  auto v = q.Get("encoding-type");
  if (!v) {
    return false;
  }
  if (*v == "url") {
    return true;
  }
  return Error(ErrorCode::kInvalidArgument, "Invalid Encoding Method specified in Request");
}

std::optional<std::string> ChecksumAlgorithmOf(const catalog::Attributes& attrs) {
  for (const auto& [k, v] : attrs) {
    if (k.starts_with("x-amz-checksum-")) {
      if (auto alg = crypto::ParseChecksumAlgorithm(k)) {
        return std::string(crypto::ChecksumAlgorithmName(*alg));
      }
    }
  }
  return std::nullopt;
}

ObjectEntry ToEntry(const catalog::ObjectRecord& o, std::optional<Owner> owner) {
  ObjectEntry e;
  e.key = o.key;
  e.last_modified = FromUnixMillis(o.last_modified);
  e.etag = o.etag;
  e.size = o.size;
  e.checksum_algorithm = ChecksumAlgorithmOf(o.attributes);
  e.owner = std::move(owner);
  return e;
}

struct Listing {
  std::vector<catalog::ListEntry> entries;
  bool truncated = false;
  std::string next_marker;
};

asio::awaitable<Expected<Listing, Error>> List(RequestContext& ctx, const catalog::Bucket& bucket,
                                               std::string start_after, uint32_t max_keys) {
  catalog::ListQuery q;
  q.prefix = ctx.route.query.Get("prefix").value_or("");
  q.delimiter = ctx.route.query.Get("delimiter").value_or("");
  q.start_after = std::move(start_after);
  q.max_keys = max_keys;
  auto page = co_await ctx.Blocking([&] { return ctx.service().ListObjects(bucket, q); });
  if (!page.ok()) {
    co_return ToS3Error(page.error());
  }
  co_return Listing{std::move(page->entries), page->is_truncated, std::move(page->next_marker)};
}

asio::awaitable<void> ListObjectsV2(RequestContext& ctx, const catalog::Bucket& bucket) {
  const Query& q = ctx.route.query;
  auto max_keys = ParseMaxKeys(q, "max-keys");
  if (!max_keys.ok()) co_return co_await ctx.SendError(max_keys.error());
  auto url = ParseEncodingType(q);
  if (!url.ok()) co_return co_await ctx.SendError(url.error());
  std::string start = q.Get("start-after").value_or("");
  auto token = q.Get("continuation-token");
  if (token) {
    auto raw = Base64Decode(*token);
    if (!raw || token->empty()) {
      co_return co_await ctx.SendError(
          Error(ErrorCode::kInvalidArgument, "The continuation token provided is incorrect"));
    }
    start.assign(raw->begin(), raw->end());
  }
  auto listing = co_await List(ctx, bucket, start, *max_keys);
  if (!listing.ok()) co_return co_await ctx.SendError(listing.error());
  const bool fetch_owner = q.Get("fetch-owner") == "true";
  ListObjectsV2Result r;
  r.bucket = bucket.name;
  r.prefix = q.Get("prefix").value_or("");
  r.delimiter = q.Get("delimiter").value_or("");
  r.max_keys = *max_keys;
  r.is_truncated = listing->truncated;
  r.continuation_token = token;
  r.start_after = q.Get("start-after");
  r.url_encoding = *url;
  if (listing->truncated) {
    r.next_continuation_token = Base64Encode(AsBytes(listing->next_marker));
  }
  for (auto& e : listing->entries) {
    if (e.object) {
      r.contents.push_back(ToEntry(*e.object, fetch_owner ? std::optional<Owner>(ctx.owner()) : std::nullopt));
    } else {
      r.common_prefixes.push_back(std::move(e.common_prefix));
    }
  }
  co_await ctx.SendXml(bhttp::status::ok, ListObjectsV2Document(r));
}

asio::awaitable<void> ListObjectsV1(RequestContext& ctx, const catalog::Bucket& bucket) {
  const Query& q = ctx.route.query;
  auto max_keys = ParseMaxKeys(q, "max-keys");
  if (!max_keys.ok()) co_return co_await ctx.SendError(max_keys.error());
  auto url = ParseEncodingType(q);
  if (!url.ok()) co_return co_await ctx.SendError(url.error());
  std::string marker = q.Get("marker").value_or("");
  auto listing = co_await List(ctx, bucket, marker, *max_keys);
  if (!listing.ok()) co_return co_await ctx.SendError(listing.error());
  ListObjectsV1Result r;
  r.bucket = bucket.name;
  r.prefix = q.Get("prefix").value_or("");
  r.marker = marker;
  r.delimiter = q.Get("delimiter").value_or("");
  r.max_keys = *max_keys;
  r.is_truncated = listing->truncated;
  r.url_encoding = *url;
  if (listing->truncated && !r.delimiter.empty()) {
    r.next_marker = listing->next_marker;
  }
  for (auto& e : listing->entries) {
    if (e.object) {
      r.contents.push_back(ToEntry(*e.object, ctx.owner()));
    } else {
      r.common_prefixes.push_back(std::move(e.common_prefix));
    }
  }
  co_await ctx.SendXml(bhttp::status::ok, ListObjectsV1Document(r));
}

asio::awaitable<void> ListObjectVersions(RequestContext& ctx, const catalog::Bucket& bucket) {
  const Query& q = ctx.route.query;
  auto max_keys = ParseMaxKeys(q, "max-keys");
  if (!max_keys.ok()) co_return co_await ctx.SendError(max_keys.error());
  auto url = ParseEncodingType(q);
  if (!url.ok()) co_return co_await ctx.SendError(url.error());
  catalog::VersionListQuery query;
  query.prefix = q.Get("prefix").value_or("");
  query.delimiter = q.Get("delimiter").value_or("");
  query.key_marker = q.Get("key-marker").value_or("");
  query.version_id_marker = q.Get("version-id-marker").value_or("");
  query.max_keys = *max_keys;
  if (!query.version_id_marker.empty()) {
    if (query.key_marker.empty()) {
      co_return co_await ctx.SendError(
          Error(ErrorCode::kInvalidArgument, "A version-id marker cannot be specified without a key marker."));
    }
    if (auto e = CheckVersionId(query.version_id_marker)) co_return co_await ctx.SendError(*e);
  }
  auto page = co_await ctx.Blocking([&] { return ctx.service().ListObjectVersions(bucket, query); });
  if (!page.ok()) co_return co_await ctx.SendError(ToS3Error(page.error()));
  ListVersionsResult r;
  r.bucket = bucket.name;
  r.prefix = query.prefix;
  r.key_marker = query.key_marker;
  r.version_id_marker = query.version_id_marker;
  r.delimiter = query.delimiter;
  r.max_keys = *max_keys;
  r.is_truncated = page->is_truncated;
  r.url_encoding = *url;
  if (page->is_truncated) {
    r.next_key_marker = page->next_key_marker;
    // A page that ends on a common prefix resumes after the whole prefix.
    if (!page->next_version_id_marker.empty()) r.next_version_id_marker = page->next_version_id_marker;
  }
  for (auto& e : page->entries) {
    if (!e.version) {
      r.common_prefixes.push_back(std::move(e.common_prefix));
      continue;
    }
    const catalog::ObjectRecord& o = *e.version;
    VersionEntry v;
    v.delete_marker = o.delete_marker;
    v.key = o.key;
    v.version_id = o.version_id();
    v.is_latest = e.is_latest;
    v.last_modified = FromUnixMillis(o.last_modified);
    v.etag = o.etag;
    v.size = o.size;
    v.checksum_algorithm = ChecksumAlgorithmOf(o.attributes);
    v.owner = ctx.owner();
    r.versions.push_back(std::move(v));
  }
  co_await ctx.SendXml(bhttp::status::ok, ListVersionsDocument(r));
}

asio::awaitable<void> GetBucketVersioning(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto settings = co_await ctx.Blocking([&] { return ctx.service().GetBucketSettings(bucket); });
  if (!settings.ok()) co_return co_await ctx.SendError(ToS3Error(settings.error()));
  std::string status;
  if (const auto it = settings->find(std::string(service::kVersioningSetting)); it != settings->end()) {
    status = it->second;
  }
  co_await ctx.SendXml(bhttp::status::ok, VersioningConfigurationDocument(status));
}

// Versioning, once enabled, can be suspended but never turned off again, as on S3.
asio::awaitable<void> PutBucketVersioning(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto parsed = ParseVersioningConfiguration(*body);
  if (!parsed.ok()) co_return co_await ctx.SendError(parsed.error());
  if (parsed->mfa_delete) {
    co_return co_await ctx.SendError(Error(ErrorCode::kNotImplemented, "MFA Delete is not implemented"));
  }
  if (parsed->status != service::kVersioningEnabled) {
    // Read fresh: Object Lock may have been enabled since the bucket was resolved.
    auto current = co_await ctx.Blocking([&] { return ctx.service().RefreshBucket(bucket); });
    if (!current.ok()) co_return co_await ctx.SendError(ToS3Error(current.error()));
    if (service::ObjectLockOf(*current).enabled) {
      co_return co_await ctx.SendError(
          Error(ErrorCode::kInvalidBucketState,
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."));
    }
  }
  const catalog::SettingChanges changes = {{std::string(service::kVersioningSetting), parsed->status}};
  auto r = co_await ctx.Blocking([&] { return ctx.service().UpdateBucketSettings(bucket, changes); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  co_await ctx.SendEmpty(bhttp::status::ok);
}

asio::awaitable<void> GetBucketLifecycleConfiguration(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto settings = co_await ctx.Blocking([&] { return ctx.service().GetBucketSettings(bucket); });
  if (!settings.ok()) co_return co_await ctx.SendError(ToS3Error(settings.error()));
  const auto it = settings->find(std::string(service::kLifecycleSetting));
  if (it == settings->end()) co_return co_await ctx.SendError(Error(ErrorCode::kNoSuchLifecycleConfiguration));
  auto config = service::DecodeLifecycle(it->second);
  if (!config.ok()) {
    Error unreadable(ErrorCode::kInternalError);
    unreadable.cause = config.status().message();
    co_return co_await ctx.SendError(unreadable);
  }
  std::string document = LifecycleConfigurationDocument(*config);
  co_await ctx.SendXml(bhttp::status::ok, std::move(document));
}

// The whole configuration is replaced, in one setting; a rejected one changes nothing.
asio::awaitable<void> PutBucketLifecycleConfiguration(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto config = ParseLifecycleConfiguration(*body);
  if (!config.ok()) co_return co_await ctx.SendError(config.error());
  const catalog::SettingChanges changes = {{std::string(service::kLifecycleSetting), service::EncodeLifecycle(*config)},
                                           {std::string(service::kLifecycleResumeSetting), std::nullopt}};
  auto r = co_await ctx.Blocking([&] { return ctx.service().UpdateBucketSettings(bucket, changes); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  co_await ctx.SendEmpty(bhttp::status::ok);
}

asio::awaitable<void> DeleteBucketLifecycle(RequestContext& ctx, const catalog::Bucket& bucket) {
  const catalog::SettingChanges changes = {{std::string(service::kLifecycleSetting), std::nullopt},
                                           {std::string(service::kLifecycleResumeSetting), std::nullopt}};
  auto r = co_await ctx.Blocking([&] { return ctx.service().UpdateBucketSettings(bucket, changes); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  co_await ctx.SendEmpty(bhttp::status::no_content);
}

asio::awaitable<void> CreateBucket(RequestContext& ctx) {
  if (!IsValidBucketName(ctx.route.bucket)) co_return co_await ctx.SendError(Error(ErrorCode::kInvalidBucketName));
  bool object_lock = false;
  if (auto lock = ctx.Header("x-amz-bucket-object-lock-enabled")) {
    const std::string_view value = TrimWhitespace(*lock);
    if (!EqualsIgnoreCase(value, "true") && !EqualsIgnoreCase(value, "false")) {
      co_return co_await ctx.SendError(
          Error(ErrorCode::kInvalidArgument, "x-amz-bucket-object-lock-enabled must be true or false"));
    }
    object_lock = EqualsIgnoreCase(value, "true");
  }
  if (auto acl = ctx.Header("x-amz-acl"); acl && *acl != "private") {
    co_return co_await ctx.SendError(Error(ErrorCode::kNotImplemented, "Only the private canned ACL is implemented"));
  }
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  if (!TrimWhitespace(*body).empty()) {
    auto location = ParseCreateBucketConfiguration(*body);
    if (!location.ok()) co_return co_await ctx.SendError(location.error());
    const std::string& region = ctx.options().region;
    const bool matches = *location == region || (location->empty() && region == "us-east-1");
    if (!matches && !region.empty()) {
      co_return co_await ctx.SendError(Error(ErrorCode::kInvalidLocationConstraint,
                                             "The specified location-constraint is not valid for this endpoint"));
    }
  }
  auto r = co_await ctx.Blocking(
      [&] { return ctx.service().CreateBucket(ctx.auth.tenant_id, ctx.route.bucket, object_lock); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  Headers h;
  h.emplace_back("location", "/" + ctx.route.bucket);
  co_await ctx.SendEmpty(bhttp::status::ok, h);
}

asio::awaitable<void> DeleteObjects(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto req = ParseDeleteObjects(*body);
  if (!req.ok()) co_return co_await ctx.SendError(req.error());
  DeleteResult result;
  result.quiet = req->quiet;
  // The bucket may go while the body was on its way; then no key of this request is deleted
  // after that point (the bucket the name now names is someone else's), and the answer is the
  // bucket's absence, as for a request that came after it.
  std::optional<Error> bucket_gone;
  const bool bypass = BypassesGovernance(ctx);
  co_await ctx.Committing([&] {
    for (auto& [key, version] : req->objects) {
      DeleteOutcome out;
      out.key = key;
      out.version_id = version;
      if (version && !service::IsVersionId(*version)) {
        out.error = Error(ErrorCode::kNoSuchVersion);
      } else if (key.empty() || key.size() > 1024) {
        out.error = Error(key.empty() ? ErrorCode::kInvalidArgument : ErrorCode::kKeyTooLongError);
      } else if (auto r = ctx.service().DeleteObject(bucket, key, version.value_or(""), &ctx.audit_request, bypass);
                 !r.ok()) {
        if (r.error().code == service::Errc::kNoSuchBucket) {
          bucket_gone = ToS3Error(r.error());
          break;
        }
        out.error = ToS3Error(r.error());
      } else if (r->delete_marker) {
        out.delete_marker_version_id = r->version_id;
      }
      result.outcomes.push_back(std::move(out));
    }
    return Done{};
  });
  if (bucket_gone) co_return co_await ctx.SendError(*bucket_gone);
  co_await ctx.SendXml(bhttp::status::ok, DeleteResultDocument(result));
}

asio::awaitable<void> GetBucketTagging(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto tags = co_await ctx.Blocking([&] { return ctx.service().GetBucketTags(bucket); });
  if (!tags.ok()) co_return co_await ctx.SendError(ToS3Error(tags.error()));
  if (tags->empty()) co_return co_await ctx.SendError(Error(ErrorCode::kNoSuchTagSet));
  co_await ctx.SendXml(bhttp::status::ok,
                       TaggingDocument(std::vector<std::pair<std::string, std::string>>(tags->begin(), tags->end())));
}

// The whole body is read and checked before anything is written: a rejected request changes
// nothing. An empty TagSet leaves the bucket without tags, as DeleteBucketTagging does.
asio::awaitable<void> PutBucketTagging(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto parsed = ParseTagging(*body);
  if (!parsed.ok()) co_return co_await ctx.SendError(parsed.error());
  auto tags = CheckTagSet(*parsed, kMaxBucketTags);
  if (!tags.ok()) co_return co_await ctx.SendError(tags.error());
  auto r = co_await ctx.Blocking([&] { return ctx.service().SetBucketTags(bucket, *tags); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  co_await ctx.SendEmpty(bhttp::status::no_content);
}

asio::awaitable<void> DeleteBucketTagging(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto r = co_await ctx.Blocking([&] { return ctx.service().SetBucketTags(bucket, {}); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  co_await ctx.SendEmpty(bhttp::status::no_content);
}

// A bucket's default encryption: AES256 (the tenant's default key, which every object has unless
// asked otherwise: a bucket has it until configured, as on S3) or aws:kms with one of the tenant's
// named keys (none: the default key, reported as aws:kms).
asio::awaitable<void> GetBucketEncryption(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto settings = co_await ctx.Blocking([&] { return ctx.service().GetBucketSettings(bucket); });
  if (!settings.ok()) co_return co_await ctx.SendError(ToS3Error(settings.error()));
  BucketEncryption encryption;
  if (const auto it = settings->find(std::string(kEncryptionAlgorithmSetting)); it != settings->end()) {
    encryption.algorithm = it->second;
  }
  if (const auto it = settings->find(std::string(kEncryptionKeySetting)); it != settings->end()) {
    encryption.kms_key_id = it->second;
  }
  if (const auto it = settings->find(std::string(kEncryptionBucketKeySetting)); it != settings->end()) {
    encryption.bucket_key_enabled = it->second == "true";
  }
  co_await ctx.SendXml(bhttp::status::ok, ServerSideEncryptionConfigurationDocument(encryption));
}

asio::awaitable<void> PutBucketEncryption(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto parsed = ParseServerSideEncryptionConfiguration(*body);
  if (!parsed.ok()) co_return co_await ctx.SendError(parsed.error());
  if (parsed->algorithm == "aws:kms:dsse") co_return co_await ctx.SendError(DsseNotImplemented());
  if (parsed->kms_key_id && parsed->algorithm != "aws:kms") {
    co_return co_await ctx.SendError(
        Error(ErrorCode::kInvalidArgument,
              "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse"));
  }
  if (parsed->kms_key_id) {
    // Checked now rather than at every later upload, which a mistyped key would all fail.
    const std::string name = KmsKeyName(*parsed->kms_key_id);
    auto key = co_await ctx.Blocking([&] { return ctx.service().ResolveEncryptionKey(bucket, name); });
    if (!key.ok()) co_return co_await ctx.SendError(ToS3Error(key.error()));
  }
  const catalog::SettingChanges changes = {
      {std::string(kEncryptionAlgorithmSetting), parsed->algorithm},
      {std::string(kEncryptionKeySetting), parsed->kms_key_id},
      {std::string(kEncryptionBucketKeySetting), parsed->bucket_key_enabled ? "true" : "false"}};
  auto r = co_await ctx.Blocking([&] { return ctx.service().UpdateBucketSettings(bucket, changes); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  co_await ctx.SendEmpty(bhttp::status::ok);
}

// Back to what a bucket has until configured: AES256, as on S3.
asio::awaitable<void> DeleteBucketEncryption(RequestContext& ctx, const catalog::Bucket& bucket) {
  const catalog::SettingChanges changes = {{std::string(kEncryptionAlgorithmSetting), std::nullopt},
                                           {std::string(kEncryptionKeySetting), std::nullopt},
                                           {std::string(kEncryptionBucketKeySetting), std::nullopt}};
  auto r = co_await ctx.Blocking([&] { return ctx.service().UpdateBucketSettings(bucket, changes); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  co_await ctx.SendEmpty(bhttp::status::no_content);
}

}  // namespace

asio::awaitable<void> HandleBucketOperation(RequestContext& ctx) {
  if (ctx.route.op == Operation::kListBuckets) {
    auto buckets = co_await ctx.Blocking([&] { return ctx.service().ListBuckets(ctx.auth.tenant_id); });
    if (!buckets.ok()) co_return co_await ctx.SendError(ToS3Error(buckets.error()));
    ListAllMyBucketsResult r;
    r.owner = ctx.owner();
    for (const auto& b : *buckets) {
      r.buckets.push_back(BucketEntry{b.name, FromUnixMillis(b.created)});
    }
    co_return co_await ctx.SendXml(bhttp::status::ok, ListAllMyBucketsDocument(r));
  }
  if (ctx.route.op == Operation::kCreateBucket) co_return co_await CreateBucket(ctx);
  if (ctx.route.op == Operation::kDeleteBucket) {
    auto r = co_await ctx.Blocking([&] { return ctx.service().DeleteBucket(ctx.auth.tenant_id, ctx.route.bucket); });
    if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
    co_return co_await ctx.SendEmpty(bhttp::status::no_content);
  }

  auto bucket = co_await ctx.ResolveBucket(ctx.route.bucket);
  if (!bucket.ok()) co_return co_await ctx.SendError(bucket.error());
  const std::string region = ctx.options().region.empty() ? "us-east-1" : ctx.options().region;
  switch (ctx.route.op) {
    case Operation::kHeadBucket: {
      Headers h;
      h.emplace_back("x-amz-bucket-region", region);
      co_return co_await ctx.SendEmpty(bhttp::status::ok, h);
    }
    case Operation::kGetBucketLocation:
      co_return co_await ctx.SendXml(bhttp::status::ok, LocationConstraintDocument(region));
    case Operation::kGetBucketAcl:
      co_return co_await ctx.SendXml(bhttp::status::ok, AccessControlPolicyDocument(ctx.owner()));
    case Operation::kGetBucketVersioning:
      co_return co_await GetBucketVersioning(ctx, *bucket);
    case Operation::kPutBucketVersioning:
      co_return co_await PutBucketVersioning(ctx, *bucket);
    case Operation::kListObjectVersions:
      co_return co_await ListObjectVersions(ctx, *bucket);
    case Operation::kListObjectsV2:
      co_return co_await ListObjectsV2(ctx, *bucket);
    case Operation::kListObjects:
      co_return co_await ListObjectsV1(ctx, *bucket);
    case Operation::kDeleteObjects:
      co_return co_await DeleteObjects(ctx, *bucket);
    case Operation::kGetBucketTagging:
      co_return co_await GetBucketTagging(ctx, *bucket);
    case Operation::kPutBucketTagging:
      co_return co_await PutBucketTagging(ctx, *bucket);
    case Operation::kDeleteBucketTagging:
      co_return co_await DeleteBucketTagging(ctx, *bucket);
    case Operation::kGetBucketEncryption:
      co_return co_await GetBucketEncryption(ctx, *bucket);
    case Operation::kPutBucketEncryption:
      co_return co_await PutBucketEncryption(ctx, *bucket);
    case Operation::kDeleteBucketEncryption:
      co_return co_await DeleteBucketEncryption(ctx, *bucket);
    case Operation::kGetObjectLockConfiguration:
    case Operation::kPutObjectLockConfiguration:
      co_return co_await HandleObjectLockOperation(ctx, *bucket);
    case Operation::kGetBucketLifecycleConfiguration:
      co_return co_await GetBucketLifecycleConfiguration(ctx, *bucket);
    case Operation::kPutBucketLifecycleConfiguration:
      co_return co_await PutBucketLifecycleConfiguration(ctx, *bucket);
    case Operation::kDeleteBucketLifecycle:
      co_return co_await DeleteBucketLifecycle(ctx, *bucket);
    default:
      co_return co_await ctx.SendError(Error(ErrorCode::kNotImplemented));
  }
}

}  // namespace coffre::s3
