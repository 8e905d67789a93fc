// The lifecycle pass, driven by a clock the test sets: expiration by days (rounded up to the next
// midnight UTC, as S3 counts) and by date, noncurrent versions aged from when they stopped being
// current, the newest noncurrent versions kept, delete markers left alone, old uploads aborted,
// filters by prefix, tags and size, Object Lock respected, and a pass stopped midway resumed.

#include "coffre/service/lifecycle.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "support/service_stores.h"
#include "support/status_matchers.h"

namespace coffre::service {
namespace {

constexpr UnixMillis kDay = 24LL * 60 * 60 * 1000;
constexpr UnixMillis kMidnight = 1'893'456'000'000;  // 2030-01-01T00:00:00Z

class LifecycleTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("lifecycle"));
    ServiceOptions opts;
    opts.clock = &clock_;
    opts.min_part_size = 1;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, opts);
    runner_ = std::make_unique<LifecycleRunner>(*service_, *catalog_, clock_);
    auto t = keys_->CreateTenant("acme");
    ASSERT_OK(t);
    tenant_ = t->id;
    auto b = service_->CreateBucket(tenant_, "archive");
    ASSERT_OK(b);
    bucket_ = *b;
  }

  void At(UnixMillis ms) { clock_.Set(FromUnixMillis(ms)); }

  std::string Put(const std::string& key, size_t size = 4, catalog::Tags tags = {}, catalog::ObjectLock lock = {}) {
    auto w = service_->BeginPut(bucket_, key, {}, {}, nullptr, std::nullopt, std::move(tags), std::move(lock));
    EXPECT_OK(w);
    if (!w.ok()) return "";
    EXPECT_OK((*w)->Write(AsBytes(std::string(size, 'x'))));
    auto r = (*w)->Commit({});
    EXPECT_OK(r);
    return r.ok() ? r->version_id : "";
  }

  void Configure(std::vector<LifecycleRule> rules) {
    ASSERT_OK(service_->UpdateBucketSettings(
        bucket_, {{std::string(kLifecycleSetting), EncodeLifecycle(LifecycleConfiguration{std::move(rules)})}}));
    bucket_ = *catalog_->GetBucket("archive");
  }

  void Versioned() {
    ASSERT_OK(service_->UpdateBucketSettings(bucket_, {{std::string(kVersioningSetting), "Enabled"}}));
    bucket_ = *catalog_->GetBucket("archive");
  }

  LifecycleStats Pass(const LifecycleHooks& hooks = {}) {
    auto stats = runner_->RunPass(hooks);
    EXPECT_OK(stats);
    return stats.ok() ? *stats : LifecycleStats{};
  }

  std::set<std::string> Keys() {
    std::set<std::string> keys;
    auto page = service_->ListObjects(bucket_, {});
    if (page.ok()) {
      for (const auto& e : page->entries) {
        if (e.object) keys.insert(e.object->key);
      }
    }
    return keys;
  }

  // "key:version" of every version and marker ("M" prefix for markers), newest first per key.
  std::vector<std::string> Versions() {
    std::vector<std::string> out;
    auto page = service_->ListObjectVersions(bucket_, {});
    if (page.ok()) {
      for (const auto& e : page->entries) {
        if (e.version) out.push_back((e.version->delete_marker ? "M" : "") + e.version->key);
      }
    }
    return out;
  }

  FixedClock clock_{FromUnixMillis(kMidnight + 10 * 3600 * 1000)};  // 10:00 UTC
  std::unique_ptr<ObjectService> service_;
  std::unique_ptr<LifecycleRunner> runner_;
  std::string tenant_;
  catalog::Bucket bucket_;
};

LifecycleRule Rule(std::string id) {
  LifecycleRule r;
  r.id = std::move(id);
  return r;
}

TEST_F(LifecycleTest, DaysCountToTheNextMidnightAfterThePeriod) {
  Put("doc");  // 2030-01-01 10:00
  LifecycleRule r = Rule("one-day");
  r.expiration_days = 1;
  Configure({r});
  At(kMidnight + kDay + 23 * 3600 * 1000);  // 2030-01-02 23:00: a day has passed, midnight not yet
  EXPECT_EQ(Pass().expired, 0u);
  EXPECT_EQ(Keys(), (std::set<std::string>{"doc"}));
  At(kMidnight + 2 * kDay);  // 2030-01-03 00:00
  EXPECT_EQ(Pass().expired, 1u);
  EXPECT_TRUE(Keys().empty());
}

TEST_F(LifecycleTest, FiltersPickByPrefixTagsAndSizeAndDisabledRulesDoNothing) {
  Put("old/small", 2);
  Put("old/large", 200);
  Put("old/tagged", 50, {{"class", "temp"}, {"owner", "ops"}});
  Put("old/other-tag", 50, {{"class", "keep"}});
  Put("new/x", 2);
  LifecycleRule by_prefix = Rule("prefix-and-size");
  by_prefix.filter.prefix = "old/";
  by_prefix.filter.size_less_than = 10;
  by_prefix.expiration_date = kMidnight;
  LifecycleRule by_tag = Rule("tag");
  by_tag.filter.tags = {{"class", "temp"}};
  by_tag.expiration_date = kMidnight;
  LifecycleRule disabled = Rule("off");
  disabled.enabled = false;
  disabled.expiration_date = kMidnight;
  Configure({by_prefix, by_tag, disabled});
  auto stats = Pass();
  EXPECT_EQ(stats.expired, 2u);
  EXPECT_EQ(Keys(), (std::set<std::string>{"old/large", "old/other-tag", "new/x"}));
  // Strictly greater / less than.
  EXPECT_FALSE(LifecycleMatches(LifecycleFilter{"", {}, 10, std::nullopt}, "k", 10, {}));
  EXPECT_TRUE(LifecycleMatches(LifecycleFilter{"", {}, 10, std::nullopt}, "k", 11, {}));
}

TEST_F(LifecycleTest, InAVersionedBucketExpiryAddsAMarkerOnceAndLoneMarkersGo) {
  Versioned();
  Put("kept");
  Put("gone");
  ASSERT_OK(service_->DeleteObject(bucket_, "gone"));  // its only version is behind a marker
  LifecycleRule expire = Rule("expire");
  expire.filter.prefix = "kept";
  expire.expiration_date = kMidnight;
  Configure({expire});
  EXPECT_EQ(Pass().expired, 1u);
  EXPECT_EQ(Versions(), (std::vector<std::string>{"Mgone", "gone", "Mkept", "kept"}));
  // A second pass adds no second marker.
  EXPECT_EQ(Pass().expired, 0u);
  // Remove the old versions, then the markers left alone.
  LifecycleRule noncurrent = Rule("noncurrent");
  noncurrent.noncurrent_days = 1;
  LifecycleRule markers = Rule("markers");
  markers.expired_object_delete_marker = true;
  Configure({noncurrent, markers});
  At(kMidnight + 2 * kDay);
  auto stats = Pass();
  EXPECT_EQ(stats.noncurrent_removed, 2u);
  // The markers were not alone when the pass reached them; the next pass removes them.
  EXPECT_EQ(Pass().delete_markers_removed, 2u);
  EXPECT_TRUE(Versions().empty());
}

TEST_F(LifecycleTest, AnExpirationInDaysAlsoRemovesALoneDeleteMarkerOnceThatOld) {
  Versioned();
  ASSERT_OK(service_->DeleteObject(bucket_, "never-written"));  // a marker alone, at day 0 10:00
  LifecycleRule r = Rule("days");
  r.expiration_days = 2;
  LifecycleRule off = Rule("off");
  off.expired_object_delete_marker = false;
  off.expiration_date.reset();
  Configure({r, off});
  At(kMidnight + 2 * kDay + 3600 * 1000);  // due at day 3 00:00
  EXPECT_EQ(Pass().delete_markers_removed, 0u);
  At(kMidnight + 3 * kDay);
  EXPECT_EQ(Pass().delete_markers_removed, 1u);
  EXPECT_TRUE(Versions().empty());
}

// A lone marker that ends a page of the scan (1000 entries), whose key begins the next key: the
// probe past the page tells its own versions from the next key's.
TEST_F(LifecycleTest, ALoneMarkerAtTheEndOfAPageIsSeenAlone) {
  Versioned();
  for (int i = 0; i < 999; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "a%04d", i);
    Put(key, 1);
  }
  ASSERT_OK(service_->DeleteObject(bucket_, "m"));  // the 1000th entry, a marker alone
  Put("m2", 1);                                     // begins with "m", on the next page
  LifecycleRule r = Rule("markers");
  r.filter.prefix = "m";
  r.expired_object_delete_marker = true;
  Configure({r});
  EXPECT_EQ(Pass().delete_markers_removed, 1u);
  EXPECT_EQ(Versions().back(), "m2");
  EXPECT_EQ(Versions().size(), 1000u);
}

TEST_F(LifecycleTest, NoncurrentVersionsAgeFromTheirSuccessorAndTheNewestAreKept) {
  Versioned();
  Put("k");                  // v1 at day 0
  At(kMidnight + 3 * kDay);  // v2 at day 3: v1 noncurrent since day 3
  Put("k");
  At(kMidnight + 5 * kDay);  // v3 at day 5: v2 noncurrent since day 5
  Put("k");
  LifecycleRule r = Rule("two-days");
  r.noncurrent_days = 2;
  Configure({r});
  At(kMidnight + 5 * kDay + 3600 * 1000);  // v1 is due (day 3 + 2 = day 5), v2 not (day 7)
  EXPECT_EQ(Pass().noncurrent_removed, 1u);
  EXPECT_EQ(Versions().size(), 2u);
  // Keeping the newest noncurrent version spares v2 even when due.
  r.newer_noncurrent_versions = 1;
  Configure({r});
  At(kMidnight + 30 * kDay);
  EXPECT_EQ(Pass().noncurrent_removed, 0u);
  EXPECT_EQ(Versions().size(), 2u);
}

TEST_F(LifecycleTest, ObjectLockKeepsWhatARuleWouldRemove) {
  ASSERT_OK(service_->UpdateBucketSettings(
      bucket_, {{std::string(kVersioningSetting), "Enabled"}, {std::string(kObjectLockSetting), "Enabled"}}));
  bucket_ = *catalog_->GetBucket("archive");
  // The catalog judges retention by the real clock: a retention far ahead of both.
  const UnixMillis far = ToUnixMillis(std::chrono::system_clock::now()) + 3650 * kDay;
  Put("contract", 4, {}, catalog::ObjectLock{std::string(catalog::kComplianceMode), far, ""});
  LifecycleRule expire = Rule("expire");
  expire.expiration_date = kMidnight;
  LifecycleRule noncurrent = Rule("noncurrent");
  noncurrent.noncurrent_days = 1;
  Configure({expire, noncurrent});
  EXPECT_EQ(Pass().expired, 1u);  // a marker on top is allowed
  At(kMidnight + 10 * kDay);
  auto stats = Pass();
  EXPECT_EQ(stats.noncurrent_removed, 0u);
  EXPECT_EQ(stats.protected_kept, 1u);
  EXPECT_EQ(Versions(), (std::vector<std::string>{"Mcontract", "contract"}));
}

TEST_F(LifecycleTest, OldUploadsAreAborted) {
  auto old_upload = service_->CreateUpload(bucket_, "tmp/old", {});
  ASSERT_OK(old_upload);
  At(kMidnight + 2 * kDay);
  auto recent = service_->CreateUpload(bucket_, "tmp/recent", {});
  ASSERT_OK(recent);
  auto elsewhere = service_->CreateUpload(bucket_, "data/old", {});
  ASSERT_OK(elsewhere);
  LifecycleRule r = Rule("abort");
  r.filter.prefix = "tmp/";
  r.abort_incomplete_days = 1;
  Configure({r});
  At(kMidnight + 3 * kDay - 1);  // recent is due at day 4
  EXPECT_EQ(Pass().uploads_aborted, 1u);
  EXPECT_FALSE(service_->GetUpload(bucket_, "tmp/old", *old_upload).ok());
  EXPECT_OK(service_->GetUpload(bucket_, "tmp/recent", *recent));
  EXPECT_OK(service_->GetUpload(bucket_, "data/old", *elsewhere));
}

TEST_F(LifecycleTest, AStoppedPassResumesAfterTheLastKeyItFinished) {
  for (const char* key : {"a", "b", "c", "d"}) Put(key);
  LifecycleRule r = Rule("all");
  r.expiration_date = kMidnight;
  Configure({r});
  int allowed = 2;
  LifecycleHooks hooks;
  hooks.before_action = [&] { return allowed-- > 0; };
  auto stopped = Pass(hooks);
  EXPECT_FALSE(stopped.complete);
  EXPECT_EQ(stopped.expired, 2u);
  EXPECT_EQ(Keys(), (std::set<std::string>{"c", "d"}));
  bucket_ = *catalog_->GetBucket("archive");
  EXPECT_EQ(bucket_.settings.at(std::string(kLifecycleResumeSetting)), "b");
  auto resumed = Pass();
  EXPECT_TRUE(resumed.complete);
  EXPECT_EQ(resumed.expired, 2u);
  EXPECT_TRUE(Keys().empty());
  bucket_ = *catalog_->GetBucket("archive");
  EXPECT_EQ(bucket_.settings.count(std::string(kLifecycleResumeSetting)), 0u);
}

TEST(LifecycleEncodingTest, RoundTrips) {
  LifecycleRule r;
  r.id = "r1";
  r.enabled = false;
  r.filter = LifecycleFilter{"logs/", {{"a", "b"}}, 5, 100};
  r.expiration_days = 30;
  r.noncurrent_days = 7;
  r.newer_noncurrent_versions = 3;
  r.abort_incomplete_days = 2;
  r.filter_form = "prefix";
  LifecycleRule d;
  d.id = "r2";
  d.expiration_date = kMidnight;
  d.expired_object_delete_marker = true;
  auto decoded = DecodeLifecycle(EncodeLifecycle(LifecycleConfiguration{{r, d}}));
  ASSERT_OK(decoded);
  ASSERT_EQ(decoded->rules.size(), 2u);
  EXPECT_EQ(EncodeLifecycle(*decoded), EncodeLifecycle(LifecycleConfiguration{{r, d}}));
  EXPECT_FALSE(DecodeLifecycle("{\"rules\": [{\"id\": 1}]}").ok());
  EXPECT_FALSE(DecodeLifecycle("not json").ok());
}

}  // namespace
}  // namespace coffre::service
