#include "coffre/service/lifecycle.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

namespace coffre::service {
namespace {

using nlohmann::json;

constexpr UnixMillis kDayMillis = 24LL * 60 * 60 * 1000;
constexpr uint32_t kPageSize = 1000;

// When something `days` days after `since` is due, as S3 counts: that moment rounded up to the
// next midnight UTC.
UnixMillis DueAfterDays(UnixMillis since, uint32_t days) {
  const UnixMillis at = since + static_cast<UnixMillis>(days) * kDayMillis;
  const UnixMillis midnight = at - (at % kDayMillis + kDayMillis) % kDayMillis;
  return midnight == at ? at : midnight + kDayMillis;
}

template <typename T>
void PutOptional(json& j, const char* name, const std::optional<T>& v) {
  if (v) j[name] = *v;
}

template <typename T>
bool GetOptional(const json& j, const char* name, std::optional<T>& out) {
  auto it = j.find(name);
  if (it == j.end()) return true;
  if (!it->is_number_integer()) return false;
  out = it->get<T>();
  return true;
}

// The rule's tags, when its filter has any: the version's, read from the catalog (listings do not
// carry them).
Result<catalog::Tags> TagsOf(ObjectService& service, const catalog::Bucket& bucket, const catalog::ObjectRecord& rec) {
  auto info = service.HeadObject(bucket, rec.key, rec.version_id());
  if (!info.ok()) return Status::NotFound(info.error().message);
  return info->tags;
}

}  // namespace

std::string EncodeLifecycle(const LifecycleConfiguration& config) {
  json rules = json::array();
  for (const LifecycleRule& r : config.rules) {
    json filter = {{"prefix", r.filter.prefix}};
    if (!r.filter.tags.empty()) filter["tags"] = r.filter.tags;
    PutOptional(filter, "size_greater_than", r.filter.size_greater_than);
    PutOptional(filter, "size_less_than", r.filter.size_less_than);
    json j = {{"id", r.id}, {"enabled", r.enabled}, {"filter", std::move(filter)}, {"filter_form", r.filter_form}};
    PutOptional(j, "expiration_days", r.expiration_days);
    PutOptional(j, "expiration_date", r.expiration_date);
    PutOptional(j, "expired_object_delete_marker", r.expired_object_delete_marker);
    PutOptional(j, "noncurrent_days", r.noncurrent_days);
    PutOptional(j, "newer_noncurrent_versions", r.newer_noncurrent_versions);
    PutOptional(j, "abort_incomplete_days", r.abort_incomplete_days);
    rules.push_back(std::move(j));
  }
  return json{{"rules", std::move(rules)}}.dump();
}

Result<LifecycleConfiguration> DecodeLifecycle(std::string_view text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  const auto corrupt = [] { return Status::Corruption("lifecycle configuration is not readable"); };
  if (j.is_discarded() || !j.is_object() || !j.contains("rules") || !j["rules"].is_array()) return corrupt();
  LifecycleConfiguration config;
  for (const json& r : j["rules"]) {
    if (!r.is_object() || !r.contains("id") || !r["id"].is_string() || !r.contains("enabled") ||
        !r["enabled"].is_boolean() || !r.contains("filter") || !r["filter"].is_object()) {
      return corrupt();
    }
    LifecycleRule rule;
    rule.id = r["id"].get<std::string>();
    rule.enabled = r["enabled"].get<bool>();
    if (r.contains("filter_form") && r["filter_form"].is_string()) rule.filter_form = r["filter_form"];
    const json& f = r["filter"];
    if (!f.contains("prefix") || !f["prefix"].is_string()) return corrupt();
    rule.filter.prefix = f["prefix"].get<std::string>();
    if (f.contains("tags")) {
      if (!f["tags"].is_object()) return corrupt();
      for (const auto& [k, v] : f["tags"].items()) {
        if (!v.is_string()) return corrupt();
        rule.filter.tags.emplace(k, v.get<std::string>());
      }
    }
    if (!GetOptional(f, "size_greater_than", rule.filter.size_greater_than) ||
        !GetOptional(f, "size_less_than", rule.filter.size_less_than) ||
        !GetOptional(r, "expiration_days", rule.expiration_days) ||
        !GetOptional(r, "expiration_date", rule.expiration_date) ||
        !GetOptional(r, "noncurrent_days", rule.noncurrent_days) ||
        !GetOptional(r, "newer_noncurrent_versions", rule.newer_noncurrent_versions) ||
        !GetOptional(r, "abort_incomplete_days", rule.abort_incomplete_days)) {
      return corrupt();
    }
    if (auto it = r.find("expired_object_delete_marker"); it != r.end()) {
      if (!it->is_boolean()) return corrupt();
      rule.expired_object_delete_marker = it->get<bool>();
    }
    config.rules.push_back(std::move(rule));
  }
  return config;
}

bool LifecycleMatches(const LifecycleFilter& filter, const std::string& key, uint64_t size, const catalog::Tags& tags) {
  if (!key.starts_with(filter.prefix)) return false;
  if (filter.size_greater_than && !(size > *filter.size_greater_than)) return false;
  if (filter.size_less_than && !(size < *filter.size_less_than)) return false;
  for (const auto& [k, v] : filter.tags) {
    auto it = tags.find(k);
    if (it == tags.end() || it->second != v) return false;
  }
  return true;
}

SResult<LifecycleStats> LifecycleRunner::RunPass(const LifecycleHooks& hooks) {
  LifecycleStats stats;
  auto buckets = catalog_.ListEveryBucket();
  if (!buckets.ok()) return FromStatus(buckets.status());
  for (const catalog::Bucket& bucket : *buckets) {
    auto setting = bucket.settings.find(std::string(kLifecycleSetting));
    if (setting == bucket.settings.end()) continue;
    auto config = DecodeLifecycle(setting->second);
    if (!config.ok()) {
      ++stats.failed;
      if (hooks.on_error) hooks.on_error(bucket.name, "", config.status().message());
      continue;
    }
    ++stats.buckets;
    if (!RunBucket(bucket, *config, hooks, stats) || !AbortUploads(bucket, *config, hooks, stats)) {
      stats.complete = false;
      break;
    }
  }
  return stats;
}

bool LifecycleRunner::RunBucket(const catalog::Bucket& bucket, const LifecycleConfiguration& config,
                                const LifecycleHooks& hooks, LifecycleStats& stats) {
  const UnixMillis now = ToUnixMillis(clock_.Now());
  std::vector<const LifecycleRule*> expiring;
  std::vector<const LifecycleRule*> noncurrent;
  std::vector<const LifecycleRule*> markers;
  for (const LifecycleRule& r : config.rules) {
    if (!r.enabled) continue;
    if (r.expiration_days || r.expiration_date) expiring.push_back(&r);
    if (r.noncurrent_days) noncurrent.push_back(&r);
    // As S3 does, an expiration in days also removes a delete marker left alone once it is that old.
    if (r.expired_object_delete_marker.value_or(false) || r.expiration_days) markers.push_back(&r);
  }
  if (expiring.empty() && noncurrent.empty() && markers.empty()) return true;

  catalog::VersionListQuery query;
  query.max_keys = kPageSize;
  if (auto resume = bucket.settings.find(std::string(kLifecycleResumeSetting)); resume != bucket.settings.end()) {
    query.key_marker = resume->second;
  }
  // Where the scan stands, across pages: the version just newer than the one at hand (its
  // Last-Modified is when that one stopped being current) and how many noncurrent versions of the
  // key came before.
  std::string key;
  UnixMillis newer_modified = 0;
  uint32_t noncurrent_index = 0;
  std::string last_done_key;  // every version of keys up to this one was seen

  // Runs one action, named `what` for errors; false when the pass must stop.
  auto act = [&](const catalog::ObjectRecord& rec, const LifecycleRule& rule, const std::string& version_id,
                 uint64_t& counter, const char* what) -> bool {
    if (hooks.before_action && !hooks.before_action()) {
      // Resume after the last key seen whole: the versions of this one are seen again, which is
      // harmless.
      (void)service_.UpdateBucketSettings(bucket, {{std::string(kLifecycleResumeSetting), last_done_key}});
      return false;
    }
    RequestInfo request;
    request.action = "lifecycle rule " + rule.id;
    auto r = service_.DeleteObject(bucket, rec.key, version_id, &request);
    if (r.ok()) {
      ++counter;
    } else if (r.error().code == Errc::kAccessDenied) {
      ++stats.protected_kept;
    } else {
      ++stats.failed;
      if (hooks.on_error) hooks.on_error(bucket.name, rec.key, std::string(what) + ": " + r.error().message);
    }
    return true;
  };
  auto matches = [&](const LifecycleRule& rule, const catalog::ObjectRecord& rec) {
    if (rule.filter.tags.empty()) return LifecycleMatches(rule.filter, rec.key, rec.size, {});
    if (rec.delete_marker) return false;
    if (!LifecycleMatches(rule.filter, rec.key, rec.size, rule.filter.tags)) return false;  // all but the tags
    auto tags = TagsOf(service_, bucket, rec);
    return tags.ok() && LifecycleMatches(rule.filter, rec.key, rec.size, *tags);
  };

  while (true) {
    auto page = service_.ListObjectVersions(bucket, query);
    if (!page.ok()) {
      ++stats.failed;
      if (hooks.on_error) hooks.on_error(bucket.name, "", page.error().message);
      return true;
    }
    for (size_t i = 0; i < page->entries.size(); ++i) {
      const catalog::VersionEntry& entry = page->entries[i];
      if (!entry.version) continue;
      const catalog::ObjectRecord& rec = *entry.version;
      if (rec.key != key) {
        if (!key.empty()) last_done_key = key;
        key = rec.key;
        noncurrent_index = 0;
      }
      if (entry.is_latest && !rec.delete_marker) {
        for (const LifecycleRule* rule : expiring) {
          const bool due = rule->expiration_date ? now >= *rule->expiration_date
                                                 : now >= DueAfterDays(rec.last_modified, *rule->expiration_days);
          if (due && matches(*rule, rec)) {
            if (!act(rec, *rule, "", stats.expired, "expire")) return false;
            break;
          }
        }
      } else if (entry.is_latest) {
        // A delete marker left alone: no older version follows it, on this page or the next.
        bool alone = i + 1 < page->entries.size()
                         ? page->entries[i + 1].version && page->entries[i + 1].version->key != rec.key
                         : !page->is_truncated;
        if (i + 1 == page->entries.size() && page->is_truncated) {
          // The key's versions come first among those of the keys it begins: the marker, then
          // either an older version of it or another key.
          catalog::VersionListQuery probe;
          probe.prefix = rec.key;
          probe.max_keys = 2;
          auto versions = service_.ListObjectVersions(bucket, probe);
          alone = versions.ok() && (versions->entries.size() < 2 || !versions->entries[1].version ||
                                    versions->entries[1].version->key != rec.key);
        }
        for (const LifecycleRule* rule : markers) {
          const bool due = rule->expired_object_delete_marker.value_or(false) ||
                           now >= DueAfterDays(rec.last_modified, *rule->expiration_days);
          if (alone && due && matches(*rule, rec)) {
            if (!act(rec, *rule, rec.version_id(), stats.delete_markers_removed, "expired delete marker")) return false;
            break;
          }
        }
      } else {
        ++noncurrent_index;
        for (const LifecycleRule* rule : noncurrent) {
          if (rule->newer_noncurrent_versions && noncurrent_index <= *rule->newer_noncurrent_versions) continue;
          if (now >= DueAfterDays(newer_modified, *rule->noncurrent_days) && matches(*rule, rec)) {
            if (!act(rec, *rule, rec.version_id(), stats.noncurrent_removed, "noncurrent version")) return false;
            break;
          }
        }
      }
      newer_modified = rec.last_modified;
    }
    if (!page->is_truncated) break;
    query.key_marker = page->next_key_marker;
    query.version_id_marker = page->next_version_id_marker;
  }
  if (bucket.settings.count(std::string(kLifecycleResumeSetting)) != 0) {
    (void)service_.UpdateBucketSettings(bucket, {{std::string(kLifecycleResumeSetting), std::nullopt}});
  }
  return true;
}

bool LifecycleRunner::AbortUploads(const catalog::Bucket& bucket, const LifecycleConfiguration& config,
                                   const LifecycleHooks& hooks, LifecycleStats& stats) {
  const UnixMillis now = ToUnixMillis(clock_.Now());
  std::vector<const LifecycleRule*> rules;
  for (const LifecycleRule& r : config.rules) {
    if (r.enabled && r.abort_incomplete_days) rules.push_back(&r);
  }
  if (rules.empty()) return true;
  catalog::UploadListQuery query;
  query.max_uploads = kPageSize;
  while (true) {
    auto page = service_.ListUploads(bucket, query);
    if (!page.ok()) {
      ++stats.failed;
      if (hooks.on_error) hooks.on_error(bucket.name, "", page.error().message);
      return true;
    }
    for (const catalog::UploadRecord& up : page->uploads) {
      for (const LifecycleRule* rule : rules) {
        if (now < DueAfterDays(up.initiated, *rule->abort_incomplete_days) ||
            !up.key.starts_with(rule->filter.prefix)) {
          continue;
        }
        if (hooks.before_action && !hooks.before_action()) return false;
        auto r = service_.AbortUpload(bucket, up.key, up.upload_id);
        if (r.ok()) {
          ++stats.uploads_aborted;
        } else if (r.error().code != Errc::kNoSuchUpload) {  // completed or aborted meanwhile
          ++stats.failed;
          if (hooks.on_error) hooks.on_error(bucket.name, up.key, "abort upload: " + r.error().message);
        }
        break;
      }
    }
    if (!page->is_truncated) break;
    query.key_marker = page->next_key_marker;
    query.upload_id_marker = page->next_upload_id_marker;
  }
  return true;
}

}  // namespace coffre::service
