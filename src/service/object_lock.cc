// Object Lock (S3's write-once-read-many): a bucket's configuration, the retention and legal hold
// of new versions, and their changes. The catalog refuses to remove a protected version
// (catalog.h, ObjectLock); what is decided here is which changes of protection are allowed.

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

#include "coffre/service/object_service.h"

namespace coffre::service {
namespace {

constexpr int64_t kMillisPerDay = 24LL * 60 * 60 * 1000;
constexpr int64_t kDaysPerYear = 365;

Error Err(Errc code, std::string message) { return Error{code, std::move(message), {}}; }

uint32_t NumberOf(std::string_view text) {
  uint32_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  return ec == std::errc() && end == text.data() + text.size() ? n : 0;
}

Error MissingConfiguration() { return Err(Errc::kInvalidRequest, "Bucket is missing Object Lock Configuration"); }

}  // namespace

ObjectLockConfiguration ObjectLockOf(const catalog::Bucket& bucket) {
  ObjectLockConfiguration config;
  config.enabled = BucketSetting(bucket, kObjectLockSetting) == kObjectLockEnabled;
  config.default_mode = std::string(BucketSetting(bucket, kObjectLockModeSetting));
  config.default_days = NumberOf(BucketSetting(bucket, kObjectLockDaysSetting));
  config.default_years = NumberOf(BucketSetting(bucket, kObjectLockYearsSetting));
  return config;
}

std::optional<Error> CheckRetentionChange(const catalog::ObjectLock& current, std::string_view mode,
                                          UnixMillis retain_until, UnixMillis now, bool bypass_governance) {
  if (!mode.empty() && retain_until <= now) {
    return Err(Errc::kInvalidArgument, "The retain until date must be in the future!");
  }
  if (!current.RetainedAt(now)) return std::nullopt;
  const bool extends = mode == current.mode && retain_until >= current.retain_until;
  if (extends) return std::nullopt;
  if (current.mode == catalog::kGovernanceMode && bypass_governance) return std::nullopt;
  return Err(Errc::kAccessDenied, current.mode == catalog::kComplianceMode
                                      ? "a COMPLIANCE retention can only be extended"
                                      : "changing a GOVERNANCE retention needs x-amz-bypass-governance-retention");
}

SResult<catalog::ObjectLock> ObjectService::LockForNewVersion(const catalog::Bucket& bucket,
                                                              catalog::ObjectLock requested, bool check_date) const {
  const ObjectLockConfiguration config = ObjectLockOf(bucket);
  if (!config.enabled) {
    if (!requested.empty()) return MissingConfiguration();
    return requested;
  }
  const UnixMillis now = NowMillis();
  if (!requested.mode.empty()) {
    if (check_date && requested.retain_until <= now) {
      return Err(Errc::kInvalidArgument, "The retain until date must be in the future!");
    }
  } else if (!config.default_mode.empty()) {
    const int64_t days = config.default_days != 0 ? config.default_days : config.default_years * kDaysPerYear;
    requested.mode = config.default_mode;
    requested.retain_until = now + days * kMillisPerDay;
  }
  return requested;
}

SResult<Done> ObjectService::SetObjectLockConfiguration(const catalog::Bucket& bucket,
                                                        const ObjectLockConfiguration& config) {
  // Read fresh: the versioning this depends on may have changed since the bucket was resolved.
  auto current = RefreshBucket(bucket);
  if (!current.ok()) return current.error();
  if (!ObjectLockOf(*current).enabled) {
    if (BucketSetting(*current, kVersioningSetting) != kVersioningEnabled) {
      return Err(Errc::kInvalidBucketState,
                 "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration");
    }
  }
  catalog::SettingChanges changes;
  changes[std::string(kObjectLockSetting)] = std::string(kObjectLockEnabled);
  auto set_or_clear = [&](std::string_view name, bool set, std::string value) {
    changes[std::string(name)] = set ? std::optional<std::string>(std::move(value)) : std::nullopt;
  };
  const bool has_default = !config.default_mode.empty();
  set_or_clear(kObjectLockModeSetting, has_default, config.default_mode);
  set_or_clear(kObjectLockDaysSetting, has_default && config.default_days != 0, std::to_string(config.default_days));
  set_or_clear(kObjectLockYearsSetting, has_default && config.default_years != 0, std::to_string(config.default_years));
  return UpdateBucketSettings(bucket, changes);
}

SResult<std::string> ObjectService::SetObjectRetention(const catalog::Bucket& bucket, const std::string& key,
                                                       const std::string& version_id, const std::string& mode,
                                                       UnixMillis retain_until, bool bypass_governance,
                                                       const RequestInfo* request) {
  if (!ObjectLockOf(bucket).enabled) return MissingConfiguration();
  return UpdateObject(
      bucket, key, version_id, request,
      [&](const catalog::ObjectRecord& rec) -> SResult<std::optional<catalog::ObjectUpdate>> {
        if (auto refused = CheckRetentionChange(rec.lock, mode, retain_until, NowMillis(), bypass_governance)) {
          return *refused;
        }
        catalog::ObjectUpdate update{rec.tags, rec.lock};
        update.lock.mode = mode;
        update.lock.retain_until = mode.empty() ? 0 : retain_until;
        if (update.lock == rec.lock) return std::optional<catalog::ObjectUpdate>();
        return std::optional<catalog::ObjectUpdate>(std::move(update));
      });
}

SResult<std::string> ObjectService::SetObjectLegalHold(const catalog::Bucket& bucket, const std::string& key,
                                                       const std::string& version_id, bool on,
                                                       const RequestInfo* request) {
  if (!ObjectLockOf(bucket).enabled) return MissingConfiguration();
  return UpdateObject(bucket, key, version_id, request,
                      [&](const catalog::ObjectRecord& rec) -> SResult<std::optional<catalog::ObjectUpdate>> {
                        catalog::ObjectUpdate update{rec.tags, rec.lock};
                        update.lock.legal_hold = on ? catalog::kLegalHoldOn : catalog::kLegalHoldOff;
                        if (update.lock == rec.lock) return std::optional<catalog::ObjectUpdate>();
                        return std::optional<catalog::ObjectUpdate>(std::move(update));
                      });
}

SResult<Done> ObjectService::RefuseWhileProtected(const std::string& tenant_id, ByteView key_id, bool governance_yields,
                                                  std::string_view subject, std::string_view approval_operation) {
  constexpr uint32_t kShown = 10;
  const UnixMillis now = NowMillis();
  // Holds and COMPLIANCE first: no approval opens them, so they are the answer when both exist.
  for (const bool bypass_governance : {true, false}) {
    if (!bypass_governance && governance_yields) break;
    uint64_t total = 0;
    auto found = catalog_.ListProtectedVersions(tenant_id, now, bypass_governance, kShown, &total, key_id);
    if (!found.ok()) return FromStatus(found.status());
    if (total == 0) continue;
    std::string message = std::string(subject) + " has " + std::to_string(total) +
                          " object version(s) under Object Lock" +
                          (bypass_governance ? " (a legal hold or COMPLIANCE retention)" : " (GOVERNANCE retention)") +
                          "; shredding would destroy them:\n";
    for (const catalog::ProtectedVersion& v : *found) {
      message += "  " + v.bucket + "/" + v.key + " version " + v.version_id + ":";
      if (v.lock.legal_hold_on()) message += " legal hold";
      if (v.lock.RetainedAt(now)) {
        message += " " + v.lock.mode + " retention until " + FormatIso8601(FromUnixMillis(v.lock.retain_until));
      }
      message += "\n";
    }
    if (total > found->size()) message += "  ... and " + std::to_string(total - found->size()) + " more\n";
    message += bypass_governance ? "refused: nobody can shred these before the holds are lifted and the retentions "
                                   "expire"
                                 : "refused: GOVERNANCE retention yields only to dual control (coffre approval "
                                   "request " +
                                       std::string(approval_operation) + ", then --approval)";
    return Err(Errc::kPreconditionFailed, std::move(message));
  }
  return Done{};
}

}  // namespace coffre::service
