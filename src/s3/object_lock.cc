// Object Lock at the protocol edge: the x-amz-object-lock-* headers of writes and reads, the
// bypass header, and the bucket's configuration, a version's retention and its legal hold.

#include "coffre/common/ascii.h"
#include "coffre/common/clock.h"
#include "object_handlers.h"
#include "request_context.h"

namespace coffre::s3 {

Expected<catalog::ObjectLock, Error> ObjectLockFromHeaders(const RequestContext& ctx) {
  const auto mode = ctx.Header("x-amz-object-lock-mode");
  const auto date = ctx.Header("x-amz-object-lock-retain-until-date");
  const auto hold = ctx.Header("x-amz-object-lock-legal-hold");
  catalog::ObjectLock lock;
  if (mode.has_value() != date.has_value()) {
    return Error(ErrorCode::kInvalidArgument,
                 "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied");
  }
  if (mode) {
    if (*mode != catalog::kGovernanceMode && *mode != catalog::kComplianceMode) {
      return Error(ErrorCode::kInvalidArgument, "Unknown wormMode directive.");
    }
    const std::optional<UnixMillis> until = ParseIso8601(*date);
    if (!until) {
      return Error(ErrorCode::kInvalidArgument, "The retain until date must be an ISO 8601 date and time");
    }
    lock.mode = std::string(*mode);
    lock.retain_until = *until;
  }
  if (hold) {
    if (*hold != catalog::kLegalHoldOn && *hold != catalog::kLegalHoldOff) {
      return Error(ErrorCode::kInvalidArgument, "Legal Hold must be either of 'ON' or 'OFF'");
    }
    lock.legal_hold = std::string(*hold);
  }
  return lock;
}

bool BypassesGovernance(const RequestContext& ctx) {
  const auto bypass = ctx.Header("x-amz-bypass-governance-retention");
  return bypass && EqualsIgnoreCase(TrimWhitespace(*bypass), "true");
}

void AddObjectLockHeaders(const catalog::ObjectLock& lock, Headers& headers) {
  if (!lock.mode.empty()) {
    headers.emplace_back("x-amz-object-lock-mode", lock.mode);
    headers.emplace_back("x-amz-object-lock-retain-until-date", FormatIso8601(FromUnixMillis(lock.retain_until)));
  }
  if (!lock.legal_hold.empty()) headers.emplace_back("x-amz-object-lock-legal-hold", lock.legal_hold);
}

namespace {

asio::awaitable<void> GetObjectLockConfiguration(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto current = co_await ctx.Blocking([&] { return ctx.service().RefreshBucket(bucket); });
  if (!current.ok()) co_return co_await ctx.SendError(ToS3Error(current.error()));
  const service::ObjectLockConfiguration config = service::ObjectLockOf(*current);
  if (!config.enabled) co_return co_await ctx.SendError(Error(ErrorCode::kObjectLockConfigurationNotFoundError));
  // Built before the co_await: GCC 12 mishandles temporaries in a co_await's full-expression.
  const ObjectLockRule rule{config.default_mode, config.default_days, config.default_years};
  std::string document = ObjectLockConfigurationDocument(rule);
  co_await ctx.SendXml(bhttp::status::ok, std::move(document));
}

asio::awaitable<void> PutObjectLockConfiguration(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto rule = ParseObjectLockConfiguration(*body);
  if (!rule.ok()) co_return co_await ctx.SendError(rule.error());
  service::ObjectLockConfiguration config;
  config.enabled = true;
  config.default_mode = rule->mode;
  config.default_days = rule->days;
  config.default_years = rule->years;
  auto r = co_await ctx.Blocking([&] { return ctx.service().SetObjectLockConfiguration(bucket, config); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  co_await ctx.SendEmpty(bhttp::status::ok);
}

// The version a retention or legal-hold request names, read: its lock, and the headers that
// report the version.
asio::awaitable<Expected<service::ObjectInfo, Error>> LockedVersion(RequestContext& ctx,
                                                                    const catalog::Bucket& bucket) {
  if (!service::ObjectLockOf(bucket).enabled) {
    co_return Error(ErrorCode::kInvalidRequest, "Bucket is missing Object Lock Configuration");
  }
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return version.error();
  auto info = co_await ctx.Blocking([&] { return ctx.service().HeadObject(bucket, ctx.route.key, *version); });
  if (!info.ok()) co_return ToS3Error(info.error());
  co_return std::move(info).value();
}

asio::awaitable<void> GetObjectRetention(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto info = co_await LockedVersion(ctx, bucket);
  if (!info.ok()) co_return co_await ctx.SendError(info.error());
  if (info->lock.mode.empty()) co_return co_await ctx.SendError(Error(ErrorCode::kNoSuchObjectLockConfiguration));
  std::string document = RetentionDocument(info->lock.mode, info->lock.retain_until);
  co_await ctx.SendXml(bhttp::status::ok, std::move(document));
}

asio::awaitable<void> GetObjectLegalHold(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto info = co_await LockedVersion(ctx, bucket);
  if (!info.ok()) co_return co_await ctx.SendError(info.error());
  if (info->lock.legal_hold.empty()) {
    co_return co_await ctx.SendError(Error(ErrorCode::kNoSuchObjectLockConfiguration));
  }
  std::string document = LegalHoldDocument(info->lock.legal_hold);
  co_await ctx.SendXml(bhttp::status::ok, std::move(document));
}

// The whole body is read and checked before anything is written: a rejected request changes
// nothing.
asio::awaitable<void> PutObjectRetention(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return co_await ctx.SendError(version.error());
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto retention = ParseRetention(*body);
  if (!retention.ok()) co_return co_await ctx.SendError(retention.error());
  const bool bypass = BypassesGovernance(ctx);
  auto r = co_await ctx.Committing([&] {
    return ctx.service().SetObjectRetention(bucket, ctx.route.key, *version, retention->mode, retention->retain_until,
                                            bypass, &ctx.audit_request);
  });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  Headers headers;
  if (!r->empty()) headers.emplace_back("x-amz-version-id", *r);
  co_await ctx.SendEmpty(bhttp::status::ok, headers);
}

asio::awaitable<void> PutObjectLegalHold(RequestContext& ctx, const catalog::Bucket& bucket) {
  auto version = RequestedVersion(ctx.route.query);
  if (!version.ok()) co_return co_await ctx.SendError(version.error());
  auto body = co_await ctx.ReadSmallBody();
  if (!body.ok()) co_return co_await ctx.SendError(body.error());
  auto status = ParseLegalHold(*body);
  if (!status.ok()) co_return co_await ctx.SendError(status.error());
  const bool on = *status == catalog::kLegalHoldOn;
  auto r = co_await ctx.Committing(
      [&] { return ctx.service().SetObjectLegalHold(bucket, ctx.route.key, *version, on, &ctx.audit_request); });
  if (!r.ok()) co_return co_await ctx.SendError(ToS3Error(r.error()));
  Headers headers;
  if (!r->empty()) headers.emplace_back("x-amz-version-id", *r);
  co_await ctx.SendEmpty(bhttp::status::ok, headers);
}

}  // namespace

asio::awaitable<void> HandleObjectLockOperation(RequestContext& ctx, const catalog::Bucket& bucket) {
  switch (ctx.route.op) {
    case Operation::kGetObjectLockConfiguration:
      co_return co_await GetObjectLockConfiguration(ctx, bucket);
    case Operation::kPutObjectLockConfiguration:
      co_return co_await PutObjectLockConfiguration(ctx, bucket);
    case Operation::kGetObjectRetention:
      co_return co_await GetObjectRetention(ctx, bucket);
    case Operation::kPutObjectRetention:
      co_return co_await PutObjectRetention(ctx, bucket);
    case Operation::kGetObjectLegalHold:
      co_return co_await GetObjectLegalHold(ctx, bucket);
    case Operation::kPutObjectLegalHold:
      co_return co_await PutObjectLegalHold(ctx, bucket);
    default:
      co_return co_await ctx.SendError(Error(ErrorCode::kNotImplemented));
  }
}

}  // namespace coffre::s3
