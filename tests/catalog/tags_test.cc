// Tags in the catalog: an object's (given at write time, replaced later with an attributes-update
// blob the row names), an upload's (until Complete), a bucket's; the migration that added them.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <set>
#include <string>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "coffre/db/sqlite.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::catalog {
namespace {

using test_support::StatusIs;

class TagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Open(dir_.str() + "/catalog.db");
    ASSERT_OK(c);
    cat_ = std::move(c).value();
    auto b = cat_->CreateBucket("tenant1", "bucket");
    ASSERT_OK(b);
    bucket_ = *b;
  }
  void TearDown() override { cat_.reset(); }

  ObjectRecord Object(const std::string& key, const std::string& blob, Tags tags = {}) {
    ObjectRecord rec;
    rec.bucket_id = bucket_.id;
    rec.tenant_id = "tenant1";
    rec.key = key;
    rec.object_id = "obj-" + blob;
    rec.etag = "e";
    rec.key_info = KeyInfo{Bytes(16, 1), 1, Bytes(60, 2)};
    rec.parts.push_back(ObjectPart{0, blob, 1, "pe", {}});
    rec.size = 1;
    rec.tags = std::move(tags);
    return rec;
  }

  std::set<std::string> Garbage() {
    auto g = cat_->ListGarbage(1000);
    EXPECT_OK(g);
    std::set<std::string> out;
    for (const auto& b : *g) out.insert(b.blob_id);
    return out;
  }

  std::vector<std::string> Updates() {
    auto ids = cat_->ListBlobIds(BlobRefSource::kObjectUpdates, "", 1000);
    EXPECT_OK(ids);
    return *ids;
  }

  test_support::TempDir dir_{"tags"};
  std::unique_ptr<Catalog> cat_;
  Bucket bucket_;
};

TEST_F(TagsTest, TagsGivenAtWriteTimeAreStoredAndLoaded) {
  ASSERT_OK(cat_->PutObject(Object("k", "b1", {{"project", "alpha"}, {"class", "secret"}})));
  auto got = cat_->GetObject(bucket_.id, "k");
  ASSERT_OK(got);
  EXPECT_EQ(got->tags, (Tags{{"project", "alpha"}, {"class", "secret"}}));
  EXPECT_EQ(got->update_blob_id, "");
  // Listings do not load tags.
  auto page = cat_->ListObjects(bucket_.id, {});
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_TRUE(page->entries[0].object->tags.empty());
}

TEST_F(TagsTest, ReplacingTagsNamesTheUpdateBlobAndCollectsThePreviousOne) {
  ASSERT_OK(cat_->PutObject(Object("k", "b1", {{"a", "1"}})));
  ASSERT_OK(cat_->UpdateObject(bucket_, "k", "obj-b1", 1, "", {{{"b", "2"}}}, "upd1"));
  auto got = cat_->GetObject(bucket_.id, "k");
  ASSERT_OK(got);
  EXPECT_EQ(got->tags, (Tags{{"b", "2"}}));
  EXPECT_EQ(got->update_blob_id, "upd1");
  EXPECT_TRUE(*cat_->IsBlobReferenced("upd1"));
  EXPECT_EQ(Updates(), std::vector<std::string>{"upd1"});
  EXPECT_TRUE(Garbage().empty());

  // The next update makes the previous one garbage; removing the tags is an update too.
  ASSERT_OK(cat_->UpdateObject(bucket_, "k", "obj-b1", 1, "upd1", {}, "upd2"));
  got = cat_->GetObject(bucket_.id, "k");
  ASSERT_OK(got);
  EXPECT_TRUE(got->tags.empty());
  EXPECT_EQ(got->update_blob_id, "upd2");
  EXPECT_EQ(Garbage(), (std::set<std::string>{"upd1"}));
  EXPECT_FALSE(*cat_->IsBlobReferenced("upd1"));
  EXPECT_EQ(Updates(), std::vector<std::string>{"upd2"});
}

TEST_F(TagsTest, DeletingOrOverwritingTheObjectCollectsItsUpdateBlob) {
  ASSERT_OK(cat_->PutObject(Object("k", "b1")));
  ASSERT_OK(cat_->UpdateObject(bucket_, "k", "obj-b1", 1, "", {{{"a", "1"}}}, "upd1"));
  ASSERT_OK(cat_->PutObject(Object("k", "b2")));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"b1", "upd1"}));
  auto got = cat_->GetObject(bucket_.id, "k");
  ASSERT_OK(got);
  EXPECT_TRUE(got->tags.empty());
  EXPECT_EQ(got->update_blob_id, "");

  ASSERT_OK(cat_->UpdateObject(bucket_, "k", "obj-b2", 1, "", {{{"a", "2"}}}, "upd2"));
  ASSERT_OK(cat_->DeleteObject(bucket_, "k"));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"b1", "upd1", "b2", "upd2"}));
  EXPECT_TRUE(Updates().empty());
}

TEST_F(TagsTest, AnUpdateForAnotherObjectOrKeyVersionChangesNothing) {
  ASSERT_OK(cat_->PutObject(Object("k", "b1", {{"a", "1"}})));
  EXPECT_THAT(cat_->UpdateObject(bucket_, "missing", "obj-b1", 1, "", {{{"x", "y"}}}, "u0"),
              StatusIs(StatusCode::kNotFound));
  // The key was overwritten after the caller read it.
  EXPECT_THAT(cat_->UpdateObject(bucket_, "k", "obj-older", 1, "", {{{"x", "y"}}}, "u1"),
              StatusIs(StatusCode::kFailedPrecondition));
  // A rewrap moved the data key after the caller sealed the update under the old version.
  EXPECT_THAT(cat_->UpdateObject(bucket_, "k", "obj-b1", 2, "", {{{"x", "y"}}}, "u2"),
              StatusIs(StatusCode::kFailedPrecondition));
  Bucket gone = bucket_;
  gone.tenant_id = "someone-else";
  EXPECT_THAT(cat_->UpdateObject(gone, "k", "obj-b1", 1, "", {{{"x", "y"}}}, "u3"), StatusIs(StatusCode::kAborted));
  auto got = cat_->GetObject(bucket_.id, "k");
  ASSERT_OK(got);
  EXPECT_EQ(got->tags, (Tags{{"a", "1"}}));
  EXPECT_EQ(got->update_blob_id, "");
  EXPECT_TRUE(Garbage().empty());
}

TEST_F(TagsTest, OfTwoRacingChangesTheOneThatReadTheOlderStateIsRefused) {
  ASSERT_OK(cat_->PutObject(Object("k", "b1")));
  // Both read the object without an update blob; the second to commit must not replace the first
  // one's update, whose sequence number may be the higher one a rebuild would prefer.
  ASSERT_OK(cat_->UpdateObject(bucket_, "k", "obj-b1", 1, "", {{{"a", "1"}}}, "upd-a"));
  EXPECT_THAT(cat_->UpdateObject(bucket_, "k", "obj-b1", 1, "", {{{"b", "2"}}}, "upd-b"),
              StatusIs(StatusCode::kFailedPrecondition));
  auto got = cat_->GetObject(bucket_.id, "k");
  ASSERT_OK(got);
  EXPECT_EQ(got->tags, (Tags{{"a", "1"}}));
  EXPECT_EQ(got->update_blob_id, "upd-a");
  EXPECT_TRUE(Garbage().empty());
  // Read again, it goes through and the first update becomes garbage.
  ASSERT_OK(cat_->UpdateObject(bucket_, "k", "obj-b1", 1, "upd-a", {{{"b", "2"}}}, "upd-b"));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"upd-a"}));
}

TEST_F(TagsTest, ARewrapOfARowWhoseUpdateBlobChangedMeanwhileLeavesIt) {
  ASSERT_OK(cat_->PutObject(Object("k", "b1")));
  WrappedKeyCursor cursor;
  auto rows = cat_->ListWrappedKeys(Bytes(16, 1), 1, &cursor, 10);
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);
  // Tags changed after the walk read the row: its key copies do not cover the new update blob.
  ASSERT_OK(cat_->UpdateObject(bucket_, "k", "obj-b1", 1, "", {{{"a", "1"}}}, "upd1"));
  auto updated = cat_->RewrapKeys({KeyRewrap{(*rows)[0], 2, Bytes(60, 9)}}, {});
  ASSERT_OK(updated);
  EXPECT_EQ(*updated, 0u);
  // The next walk lists the update blob with the row's blobs, and the rewrap goes through.
  cursor = {};
  rows = cat_->ListWrappedKeys(Bytes(16, 1), 1, &cursor, 10);
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].blob_ids, (std::vector<std::string>{"b1", "upd1"}));
  updated = cat_->RewrapKeys({KeyRewrap{(*rows)[0], 2, Bytes(60, 9)}}, {});
  ASSERT_OK(updated);
  EXPECT_EQ(*updated, 1u);
}

TEST_F(TagsTest, AnUploadKeepsItsTagsForTheCompletedObject) {
  UploadRecord u;
  u.upload_id = "up1";
  u.bucket_id = bucket_.id;
  u.tenant_id = "tenant1";
  u.key = "big";
  u.key_info = KeyInfo{Bytes(16, 1), 1, Bytes(60, 2)};
  u.tags = {{"stage", "draft"}};
  ASSERT_OK(cat_->CreateUpload(u));
  auto got = cat_->GetUpload("up1");
  ASSERT_OK(got);
  EXPECT_EQ(got->tags, u.tags);
}

TEST_F(TagsTest, BucketTagsAreStoredReplacedAndRemoved) {
  auto none = cat_->GetBucketTags(bucket_);
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  ASSERT_OK(cat_->SetBucketTags(bucket_, {{"cost-center", "42"}, {"owner", "ops"}}));
  auto got = cat_->GetBucketTags(bucket_);
  ASSERT_OK(got);
  EXPECT_EQ(*got, (Tags{{"cost-center", "42"}, {"owner", "ops"}}));
  ASSERT_OK(cat_->SetBucketTags(bucket_, {{"owner", "dev"}}));
  EXPECT_EQ(*cat_->GetBucketTags(bucket_), (Tags{{"owner", "dev"}}));
  ASSERT_OK(cat_->SetBucketTags(bucket_, {}));
  EXPECT_TRUE(cat_->GetBucketTags(bucket_)->empty());

  Bucket other = bucket_;
  other.tenant_id = "tenant2";
  EXPECT_THAT(cat_->GetBucketTags(other), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->SetBucketTags(other, {{"a", "b"}}), StatusIs(StatusCode::kNotFound));
  ASSERT_OK(cat_->DeleteBucket(bucket_));
  EXPECT_THAT(cat_->SetBucketTags(bucket_, {{"a", "b"}}), StatusIs(StatusCode::kNotFound));
}

// A catalog of the release before tags (user_version 5) upgrades in place: its rows have no tags.
TEST(TagsMigrationTest, RowsOfTheReleaseBeforeHaveNoTags) {
  test_support::TempDir dir("tags-mig");
  const std::string path = dir.str() + "/catalog.db";
  {
    auto opened = Catalog::Open(path);
    ASSERT_OK(opened);
  }
  {
    // Undo the migrations since tags by hand: what the release before them left behind.
    auto conn = db::Connection::Open(path, db::OpenMode::kReadWriteCreate);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec(R"sql(
DROP INDEX objects_locked;
ALTER TABLE objects DROP COLUMN object_lock;
ALTER TABLE uploads DROP COLUMN object_lock;
DROP TABLE version_parts;
DROP TABLE object_versions;
ALTER TABLE objects DROP COLUMN null_version;
ALTER TABLE buckets DROP COLUMN settings;
DROP INDEX objects_by_update;
ALTER TABLE objects DROP COLUMN tags;
ALTER TABLE objects DROP COLUMN update_blob_id;
ALTER TABLE uploads DROP COLUMN tags;
ALTER TABLE buckets DROP COLUMN tags;
INSERT INTO bucket_ids(last) SELECT 0 WHERE NOT EXISTS(SELECT 1 FROM bucket_ids);
UPDATE bucket_ids SET last = 3;
INSERT INTO buckets(id, tenant_id, name, created) VALUES(3, 'alice', 'alice-docs', 1);
INSERT INTO objects(bucket_id, key, object_id, size, etag, last_modified, attributes, tenant_key_id, key_version,
  wrapped_key, tenant_id, manifest_blob_id) VALUES(3, 'a.pdf', 'oa', 1, 'e', 1, '{}', x'01', 1, x'02', 'alice', '');
INSERT INTO object_parts VALUES(3, 'a.pdf', 0, 'blob-a', 1, 'e', '{}');
INSERT INTO uploads(upload_id, bucket_id, key, initiated, attributes, tenant_key_id, key_version, wrapped_key,
  tenant_id) VALUES('up-a', 3, 'big', 1, '{}', x'01', 1, x'05', 'alice');
PRAGMA user_version = 5;
)sql"));
  }
  auto opened = Catalog::Open(path);
  ASSERT_OK(opened);
  auto& cat = *opened;
  auto a = cat->GetObject(3, "a.pdf");
  ASSERT_OK(a);
  EXPECT_TRUE(a->tags.empty());
  EXPECT_EQ(a->update_blob_id, "");
  EXPECT_TRUE(cat->GetUpload("up-a")->tags.empty());
  const Bucket alice{3, "alice"};
  EXPECT_TRUE(cat->GetBucketTags(alice)->empty());
  ASSERT_OK(cat->UpdateObject(alice, "a.pdf", "oa", 1, "", {{{"k", "v"}}}, "upd"));
  EXPECT_EQ(cat->GetObject(3, "a.pdf")->tags, (Tags{{"k", "v"}}));
  EXPECT_TRUE(*cat->IsBlobReferenced("upd"));
}

}  // namespace
}  // namespace coffre::catalog
