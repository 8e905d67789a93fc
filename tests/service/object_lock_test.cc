// Object Lock in the object service: which retention changes are allowed, the retention and legal
// hold of new versions (asked for, or the bucket's default by the service's clock), the bucket's
// configuration, and a protected version that no delete removes.

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "coffre/service/object_service.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"

namespace coffre::service {
namespace {

constexpr UnixMillis kDay = 24LL * 60 * 60 * 1000;
const std::string kGov(catalog::kGovernanceMode);
const std::string kComp(catalog::kComplianceMode);

std::optional<Errc> CodeOf(const std::optional<Error>& e) { return e ? std::optional<Errc>(e->code) : std::nullopt; }

TEST(RetentionChangeTest, ComplianceOnlyExtendsGovernanceYieldsToTheBypassAndLapsedRetentionToAnything) {
  const UnixMillis now = 1'000'000;
  const catalog::ObjectLock comp{kComp, now + 10, ""};
  const catalog::ObjectLock gov{kGov, now + 10, ""};
  for (bool bypass : {false, true}) {
    SCOPED_TRACE(bypass);
    EXPECT_EQ(CodeOf(CheckRetentionChange(comp, kComp, now + 10, now, bypass)), std::nullopt);
    EXPECT_EQ(CodeOf(CheckRetentionChange(comp, kComp, now + 20, now, bypass)), std::nullopt);
    EXPECT_EQ(CodeOf(CheckRetentionChange(comp, kComp, now + 5, now, bypass)), Errc::kAccessDenied);
    EXPECT_EQ(CodeOf(CheckRetentionChange(comp, kGov, now + 20, now, bypass)), Errc::kAccessDenied);
    EXPECT_EQ(CodeOf(CheckRetentionChange(comp, "", 0, now, bypass)), Errc::kAccessDenied);
    EXPECT_EQ(CodeOf(CheckRetentionChange(gov, kGov, now + 20, now, bypass)), std::nullopt);
    // A date not in the future is no retention, whatever the bypass.
    EXPECT_EQ(CodeOf(CheckRetentionChange(gov, kGov, now, now, bypass)), Errc::kInvalidArgument);
  }
  EXPECT_EQ(CodeOf(CheckRetentionChange(gov, kGov, now + 5, now, false)), Errc::kAccessDenied);
  EXPECT_EQ(CodeOf(CheckRetentionChange(gov, kComp, now + 20, now, false)), Errc::kAccessDenied);
  EXPECT_EQ(CodeOf(CheckRetentionChange(gov, "", 0, now, false)), Errc::kAccessDenied);
  EXPECT_EQ(CodeOf(CheckRetentionChange(gov, kGov, now + 5, now, true)), std::nullopt);
  EXPECT_EQ(CodeOf(CheckRetentionChange(gov, kComp, now + 20, now, true)), std::nullopt);
  EXPECT_EQ(CodeOf(CheckRetentionChange(gov, "", 0, now, true)), std::nullopt);
  // Once lapsed, a COMPLIANCE retention no longer binds.
  EXPECT_EQ(CodeOf(CheckRetentionChange(comp, "", 0, now + 10, false)), std::nullopt);
  EXPECT_EQ(CodeOf(CheckRetentionChange(comp, kGov, now + 11, now + 10, false)), std::nullopt);
}

class ObjectLockServiceTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("service-lock"));
    ServiceOptions opts;
    opts.clock = &clock_;
    opts.min_part_size = 1;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, opts);
    auto t = keys_->CreateTenant("acme");
    ASSERT_OK(t);
    tenant_ = t->id;
    auto b = service_->CreateBucket(tenant_, "worm", /*object_lock=*/true);
    ASSERT_OK(b);
    bucket_ = *b;
  }

  SResult<PutResult> Put(const std::string& key, catalog::ObjectLock lock = {}) {
    auto w = service_->BeginPut(bucket_, key, {}, {}, nullptr, std::nullopt, {}, std::move(lock));
    if (!w.ok()) return w.error();
    if (auto r = (*w)->Write(AsBytes(std::string("dossier"))); !r.ok()) return r.error();
    return (*w)->Commit({});
  }

  void Reload() { bucket_ = *catalog_->GetBucket("worm"); }
  UnixMillis Now() const { return ToUnixMillis(clock_.Now()); }

  FixedClock clock_{std::chrono::system_clock::now()};
  std::unique_ptr<ObjectService> service_;
  std::string tenant_;
  catalog::Bucket bucket_;
};

TEST_F(ObjectLockServiceTest, ALockedBucketIsVersionedAndItsDefaultRetentionAppliesByTheServiceClock) {
  EXPECT_TRUE(ObjectLockOf(bucket_).enabled);
  EXPECT_EQ(bucket_.settings.at(std::string(kVersioningSetting)), kVersioningEnabled);
  auto none = Put("plain");
  ASSERT_OK(none);
  EXPECT_TRUE(service_->HeadObject(bucket_, "plain")->lock.empty());

  ObjectLockConfiguration config{true, kComp, 0, 2};
  ASSERT_OK(service_->SetObjectLockConfiguration(bucket_, config));
  Reload();
  clock_.Set(FromUnixMillis(1'800'000'000'000));
  ASSERT_OK(Put("defaulted"));
  auto info = service_->HeadObject(bucket_, "defaulted");
  ASSERT_OK(info);
  EXPECT_EQ(info->lock.mode, kComp);
  EXPECT_EQ(info->lock.retain_until, 1'800'000'000'000 + 2 * 365 * kDay);
  // A mode asked for wins over the default; a legal hold alone does not.
  ASSERT_OK(Put("asked", catalog::ObjectLock{kGov, Now() + kDay, ""}));
  EXPECT_EQ(service_->HeadObject(bucket_, "asked")->lock, (catalog::ObjectLock{kGov, Now() + kDay, ""}));
  ASSERT_OK(Put("held", catalog::ObjectLock{"", 0, "ON"}));
  EXPECT_EQ(service_->HeadObject(bucket_, "held")->lock, (catalog::ObjectLock{kComp, Now() + 2 * 365 * kDay, "ON"}));
  // Removing the default leaves Object Lock enabled.
  ASSERT_OK(service_->SetObjectLockConfiguration(bucket_, ObjectLockConfiguration{true, "", 0, 0}));
  Reload();
  EXPECT_EQ(ObjectLockOf(bucket_).default_mode, "");
  EXPECT_TRUE(ObjectLockOf(bucket_).enabled);
}

TEST_F(ObjectLockServiceTest, ALockIsRefusedWhereTheBucketHasNoneOrItsDateIsPast) {
  auto plain = service_->CreateBucket(tenant_, "plain");
  ASSERT_OK(plain);
  auto w = service_->BeginPut(*plain, "k", {}, {}, nullptr, std::nullopt, {}, catalog::ObjectLock{"", 0, "OFF"});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, Errc::kInvalidRequest);
  auto up = service_->CreateUpload(*plain, "k", {}, nullptr, {}, catalog::ObjectLock{kGov, Now() + kDay, ""});
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.error().code, Errc::kInvalidRequest);
  auto past = Put("k", catalog::ObjectLock{kGov, Now(), ""});
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.error().code, Errc::kInvalidArgument);
  EXPECT_FALSE(service_->HeadObject(bucket_, "k").ok());
  // Object Lock needs versioning Enabled first.
  auto enable = service_->SetObjectLockConfiguration(*plain, ObjectLockConfiguration{true, "", 0, 0});
  ASSERT_FALSE(enable.ok());
  EXPECT_EQ(enable.error().code, Errc::kInvalidBucketState);
  ASSERT_OK(service_->UpdateBucketSettings(*plain, {{std::string(kVersioningSetting), std::string("Enabled")}}));
  EXPECT_OK(service_->SetObjectLockConfiguration(*plain, ObjectLockConfiguration{true, "", 0, 0}));
}

TEST_F(ObjectLockServiceTest, AProtectedVersionSurvivesEveryDeleteAndItsRetentionOnlyGrows) {
  auto put = Put("contract", catalog::ObjectLock{kComp, Now() + kDay, ""});
  ASSERT_OK(put);
  const std::string v1 = put->version_id;
  // The delete without a version adds a marker; the version stays.
  auto marker = service_->DeleteObject(bucket_, "contract");
  ASSERT_OK(marker);
  EXPECT_TRUE(marker->delete_marker);
  for (bool bypass : {false, true}) {
    auto denied = service_->DeleteObject(bucket_, "contract", v1, nullptr, bypass);
    ASSERT_FALSE(denied.ok());
    EXPECT_EQ(denied.error().code, Errc::kAccessDenied);
  }
  EXPECT_OK(service_->HeadObject(bucket_, "contract", v1));
  auto shorter = service_->SetObjectRetention(bucket_, "contract", v1, kComp, Now() + 1000, true);
  ASSERT_FALSE(shorter.ok());
  EXPECT_EQ(shorter.error().code, Errc::kAccessDenied);
  ASSERT_OK(service_->SetObjectRetention(bucket_, "contract", v1, kComp, Now() + 2 * kDay, false));
  EXPECT_EQ(service_->HeadObject(bucket_, "contract", v1)->lock.retain_until, Now() + 2 * kDay);
  // A delete marker has no lock, and goes.
  EXPECT_OK(service_->DeleteObject(bucket_, "contract", marker->version_id));
}

TEST_F(ObjectLockServiceTest, GovernanceAndLegalHoldChangeAsS3Says) {
  auto put = Put("memo", catalog::ObjectLock{kGov, Now() + kDay, ""});
  ASSERT_OK(put);
  const std::string v = put->version_id;
  ASSERT_OK(service_->SetObjectLegalHold(bucket_, "memo", v, true));
  EXPECT_EQ(service_->HeadObject(bucket_, "memo")->lock, (catalog::ObjectLock{kGov, Now() + kDay, "ON"}));
  // The hold stops even the bypass; lifted, the bypass removes the version.
  auto held = service_->DeleteObject(bucket_, "memo", v, nullptr, true);
  ASSERT_FALSE(held.ok());
  EXPECT_EQ(held.error().code, Errc::kAccessDenied);
  ASSERT_OK(service_->SetObjectLegalHold(bucket_, "memo", v, false));
  auto denied = service_->DeleteObject(bucket_, "memo", v);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code, Errc::kAccessDenied);
  // Tags change without touching the lock.
  ASSERT_OK(service_->SetObjectTags(bucket_, "memo", {{"a", "b"}}, nullptr, v));
  EXPECT_EQ(service_->HeadObject(bucket_, "memo")->lock, (catalog::ObjectLock{kGov, Now() + kDay, "OFF"}));
  auto removed = service_->SetObjectRetention(bucket_, "memo", v, "", 0, false);
  ASSERT_FALSE(removed.ok());
  EXPECT_EQ(removed.error().code, Errc::kAccessDenied);
  ASSERT_OK(service_->SetObjectRetention(bucket_, "memo", v, "", 0, true));
  EXPECT_EQ(service_->HeadObject(bucket_, "memo")->lock, (catalog::ObjectLock{"", 0, "OFF"}));
  EXPECT_OK(service_->DeleteObject(bucket_, "memo", v));
  // Without Object Lock on the bucket, neither can be set.
  auto plain = service_->CreateBucket(tenant_, "plain");
  ASSERT_OK(plain);
  auto hold = service_->SetObjectLegalHold(*plain, "memo", "", true);
  ASSERT_FALSE(hold.ok());
  EXPECT_EQ(hold.error().code, Errc::kInvalidRequest);
}

TEST_F(ObjectLockServiceTest, ACompletedUploadGetsTheLockAskedAtCreationOrTheDefaultAtCompletion) {
  auto asked = service_->CreateUpload(bucket_, "big", {}, nullptr, {}, catalog::ObjectLock{"", 0, "ON"});
  ASSERT_OK(asked);
  ASSERT_OK(service_->SetObjectLockConfiguration(bucket_, ObjectLockConfiguration{true, kGov, 3, 0}));
  Reload();
  auto w = service_->BeginPart(bucket_, "big", *asked, 1, {});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Write(AsBytes(std::string("part one"))));
  auto part = (*w)->Commit({});
  ASSERT_OK(part);
  clock_.Set(clock_.Now() + std::chrono::hours(1));
  auto done = service_->CompleteUpload(bucket_, "big", *asked, {UploadPartRef{1, part->etag, {}}}, {});
  ASSERT_OK(done);
  EXPECT_EQ(service_->HeadObject(bucket_, "big")->lock, (catalog::ObjectLock{kGov, Now() + 3 * kDay, "ON"}));
}

}  // namespace
}  // namespace coffre::service
