// A bucket's settings in the catalog: opaque name -> value pairs, changed one by one in a
// transaction, so that changes of different settings never undo each other.

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "coffre/db/sqlite.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::catalog {
namespace {

using test_support::StatusIs;

class BucketSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Open(dir_.str() + "/catalog.db");
    ASSERT_OK(c);
    cat_ = std::move(c).value();
    auto b = cat_->CreateBucket("tenant1", "bucket");
    ASSERT_OK(b);
    bucket_ = *b;
  }

  test_support::TempDir dir_{"bucket-settings"};
  std::unique_ptr<Catalog> cat_;
  Bucket bucket_;
};

TEST_F(BucketSettingsTest, SettingsAreSetChangedAndRemovedOneByOne) {
  auto none = cat_->GetBucketSettings(bucket_);
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  ASSERT_OK(cat_->UpdateBucketSettings(bucket_, {{"encryption", "AES256"}, {"encryption-bucket-key", "true"}}));
  ASSERT_OK(cat_->UpdateBucketSettings(bucket_, {{"other", "a=b;c\nd"}}));
  EXPECT_EQ(*cat_->GetBucketSettings(bucket_),
            (Attributes{{"encryption", "AES256"}, {"encryption-bucket-key", "true"}, {"other", "a=b;c\nd"}}));
  ASSERT_OK(cat_->UpdateBucketSettings(bucket_, {{"encryption-bucket-key", std::nullopt}, {"absent", std::nullopt}}));
  EXPECT_EQ(*cat_->GetBucketSettings(bucket_), (Attributes{{"encryption", "AES256"}, {"other", "a=b;c\nd"}}));
  // Settings and tags are apart.
  ASSERT_OK(cat_->SetBucketTags(bucket_, {{"owner", "ops"}}));
  EXPECT_EQ(cat_->GetBucketSettings(bucket_)->size(), 2u);
  EXPECT_EQ(cat_->GetBucketTags(bucket_)->size(), 1u);
  // They survive a reopen.
  cat_.reset();
  auto reopened = Catalog::Open(dir_.str() + "/catalog.db");
  ASSERT_OK(reopened);
  EXPECT_EQ(*(*reopened)->GetBucketSettings(bucket_), (Attributes{{"encryption", "AES256"}, {"other", "a=b;c\nd"}}));
}

TEST_F(BucketSettingsTest, ConcurrentChangesOfDifferentSettingsAreAllKept) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 25; ++i) {
        EXPECT_OK(cat_->UpdateBucketSettings(bucket_, {{"setting-" + std::to_string(t), std::to_string(i)}}));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(*cat_->GetBucketSettings(bucket_),
            (Attributes{{"setting-0", "24"}, {"setting-1", "24"}, {"setting-2", "24"}, {"setting-3", "24"}}));
}

TEST_F(BucketSettingsTest, ABucketOfAnotherTenantOrDeletedHasNone) {
  Bucket other = bucket_;
  other.tenant_id = "tenant2";
  EXPECT_THAT(cat_->GetBucketSettings(other), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->UpdateBucketSettings(other, {{"a", "b"}}), StatusIs(StatusCode::kNotFound));
  ASSERT_OK(cat_->DeleteBucket(bucket_));
  EXPECT_THAT(cat_->UpdateBucketSettings(bucket_, {{"a", "b"}}), StatusIs(StatusCode::kNotFound));
  // A bucket created again under that name starts without settings.
  auto again = cat_->CreateBucket("tenant1", "bucket");
  ASSERT_OK(again);
  EXPECT_TRUE(cat_->GetBucketSettings(*again)->empty());
}

// A catalog of the release before settings (user_version 6) upgrades in place: its buckets have
// none, and get them.
TEST(BucketSettingsMigrationTest, BucketsOfTheReleaseBeforeHaveNone) {
  test_support::TempDir dir("settings-mig");
  const std::string path = dir.str() + "/catalog.db";
  int64_t bucket_id = 0;
  {
    auto opened = Catalog::Open(path);
    ASSERT_OK(opened);
    auto bucket = (*opened)->CreateBucket("alice", "alice-docs");
    ASSERT_OK(bucket);
    bucket_id = bucket->id;
    ASSERT_OK((*opened)->SetBucketTags(*bucket, {{"owner", "ops"}}));
  }
  {
    auto conn = db::Connection::Open(path, db::OpenMode::kReadWriteCreate);
    ASSERT_OK(conn);
    ASSERT_OK(
        (*conn)->Exec("DROP INDEX objects_locked; ALTER TABLE objects DROP COLUMN object_lock; "
                      "ALTER TABLE uploads DROP COLUMN object_lock; "
                      "DROP TABLE version_parts; DROP TABLE object_versions; "
                      "ALTER TABLE objects DROP COLUMN null_version; "
                      "ALTER TABLE buckets DROP COLUMN settings; PRAGMA user_version = 6;"));
  }
  auto opened = Catalog::Open(path);
  ASSERT_OK(opened);
  const Bucket alice{bucket_id, "alice"};
  auto settings = (*opened)->GetBucketSettings(alice);
  ASSERT_OK(settings);
  EXPECT_TRUE(settings->empty());
  EXPECT_EQ(*(*opened)->GetBucketTags(alice), (Tags{{"owner", "ops"}}));
  ASSERT_OK((*opened)->UpdateBucketSettings(alice, {{"encryption.algorithm", "AES256"}}));
  EXPECT_EQ(*(*opened)->GetBucketSettings(alice), (Attributes{{"encryption.algorithm", "AES256"}}));
}

}  // namespace
}  // namespace coffre::catalog
