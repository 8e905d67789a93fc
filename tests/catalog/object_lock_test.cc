// Object Lock in the catalog: a version's retention and legal hold are stored with it, follow it
// when it becomes noncurrent or current again, change only through UpdateObject, and stop every
// removal of it (a delete of the version, a null version written over it) until they lapse, by the
// catalog's clock; the list of protected versions a shred checks; a bucket created with settings.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "coffre/db/sqlite.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::catalog {
namespace {

using test_support::StatusIs;

const Bytes kKeyId(16, 0x6b);
constexpr UnixMillis kNow = 1'900'000'000'000;  // 2030
constexpr UnixMillis kDay = 24LL * 60 * 60 * 1000;

class ObjectLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Catalog::Open(dir_.str() + "/catalog.db", clock_);
    ASSERT_OK(opened);
    cat_ = std::move(opened).value();
    auto created = cat_->CreateBucket("t1", "locked", {{"versioning", "Enabled"}, {"object_lock", "Enabled"}});
    ASSERT_OK(created);
    bucket_ = *created;
  }
  void TearDown() override { cat_.reset(); }

  ObjectRecord Version(const std::string& key, const std::string& id, ObjectLock lock, bool null_version = false) {
    ObjectRecord rec;
    rec.bucket_id = bucket_.id;
    rec.tenant_id = bucket_.tenant_id;
    rec.key = key;
    rec.object_id = id;
    rec.size = 3;
    rec.etag = "etag-" + id;
    rec.last_modified = kNow;
    rec.key_info = KeyInfo{kKeyId, 1, Bytes(60, 7)};
    rec.parts.push_back(ObjectPart{0, "blob-" + id, 3, "pe-" + id, {}});
    rec.null_version = null_version;
    rec.lock = std::move(lock);
    return rec;
  }

  void SetNow(UnixMillis ms) { clock_.Set(FromUnixMillis(ms)); }

  test_support::TempDir dir_{"catalog-lock"};
  FixedClock clock_{FromUnixMillis(kNow)};
  std::unique_ptr<Catalog> cat_;
  Bucket bucket_;
};

const ObjectLock kCompliance{std::string(kComplianceMode), kNow + kDay, ""};
const ObjectLock kGovernance{std::string(kGovernanceMode), kNow + kDay, ""};
const ObjectLock kHold{"", 0, std::string(kLegalHoldOn)};

TEST_F(ObjectLockTest, TheLockIsStoredWithTheVersionAndFollowsItAmongTheNoncurrent) {
  ObjectLock both = kCompliance;
  both.legal_hold = kLegalHoldOff;
  ASSERT_OK(cat_->PutObject(Version("k", "v1", both)));
  auto current = cat_->GetObject(bucket_.id, "k");
  ASSERT_OK(current);
  EXPECT_EQ(current->lock, both);
  ASSERT_OK(cat_->PutObject(Version("k", "v2", {})));
  auto older = cat_->GetObjectVersion(bucket_.id, "k", "v1");
  ASSERT_OK(older);
  EXPECT_EQ(older->lock, both);
  auto newer = cat_->GetObjectVersion(bucket_.id, "k", "v2");
  ASSERT_OK(newer);
  EXPECT_TRUE(newer->lock.empty());
  // Removing v2 (unprotected) makes v1 current again, its lock with it.
  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "k", "v2"));
  current = cat_->GetObject(bucket_.id, "k");
  ASSERT_OK(current);
  EXPECT_EQ(current->object_id, "v1");
  EXPECT_EQ(current->lock, both);
}

TEST_F(ObjectLockTest, AProtectedVersionIsNotRemovedUntilItsProtectionLapses) {
  ASSERT_OK(cat_->PutObject(Version("c", "c1", kCompliance)));
  ASSERT_OK(cat_->PutObject(Version("c", "c2", {})));  // c1 noncurrent
  ASSERT_OK(cat_->PutObject(Version("g", "g1", kGovernance)));
  ASSERT_OK(cat_->PutObject(Version("h", "h1", kHold)));

  EXPECT_THAT(cat_->DeleteObjectVersion(bucket_, "c", "c1"), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(cat_->DeleteObjectVersion(bucket_, "c", "c1", /*bypass_governance=*/true),
              StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(cat_->DeleteObjectVersion(bucket_, "g", "g1"), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(cat_->DeleteObjectVersion(bucket_, "h", "h1", true), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_OK(cat_->GetObjectVersion(bucket_.id, "c", "c1"));
  EXPECT_OK(cat_->GetObject(bucket_.id, "g"));
  EXPECT_OK(cat_->GetObject(bucket_.id, "h"));

  // GOVERNANCE yields to the bypass; the others do not.
  EXPECT_OK(cat_->DeleteObjectVersion(bucket_, "g", "g1", true));
  EXPECT_THAT(cat_->GetObject(bucket_.id, "g"), StatusIs(StatusCode::kNotFound));

  // Once the date is reached, retention no longer protects; a legal hold has no date.
  SetNow(kNow + kDay);
  EXPECT_OK(cat_->DeleteObjectVersion(bucket_, "c", "c1"));
  EXPECT_THAT(cat_->DeleteObjectVersion(bucket_, "h", "h1"), StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(ObjectLockTest, ANullVersionUnderLockIsNeitherOverwrittenNorDeleted) {
  // A bucket that had null versions before it was versioned, then locked.
  auto plain = cat_->CreateBucket("t1", "plain");
  ASSERT_OK(plain);
  ObjectRecord null_rec = Version("n", "n1", kCompliance, /*null_version=*/true);
  null_rec.bucket_id = plain->id;
  ASSERT_OK(cat_->PutObject(null_rec));
  ObjectRecord over = Version("n", "n2", {}, true);
  over.bucket_id = plain->id;
  EXPECT_THAT(cat_->PutObject(over), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(cat_->DeleteObject(*plain, "n"), StatusIs(StatusCode::kPermissionDenied));
  auto kept = cat_->GetObject(plain->id, "n");
  ASSERT_OK(kept);
  EXPECT_EQ(kept->object_id, "n1");

  // Noncurrent (a versioned write on top), it still stops a null version written later.
  ObjectRecord versioned = Version("n", "n3", {});
  versioned.bucket_id = plain->id;
  ASSERT_OK(cat_->PutObject(versioned));
  ObjectRecord marker;
  marker.bucket_id = plain->id;
  marker.tenant_id = "t1";
  marker.key = "n";
  marker.object_id = "m1";
  marker.last_modified = kNow;
  marker.null_version = true;
  marker.delete_marker = true;
  EXPECT_THAT(cat_->PutDeleteMarker(marker), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_OK(cat_->GetObjectVersion(plain->id, "n", "null"));
  // A marker that is not a null version adds without replacing anything.
  marker.null_version = false;
  EXPECT_OK(cat_->PutDeleteMarker(marker));
}

TEST_F(ObjectLockTest, UpdateObjectChangesTheLockWithTheTagsAndRequiresTheStateItRead) {
  ASSERT_OK(cat_->PutObject(Version("k", "v1", kGovernance)));
  ObjectUpdate update{{{"t", "1"}}, kCompliance};
  ASSERT_OK(cat_->UpdateObject(bucket_, "k", "v1", 1, "", update, "upd-1"));
  auto rec = cat_->GetObject(bucket_.id, "k");
  ASSERT_OK(rec);
  EXPECT_EQ(rec->lock, kCompliance);
  EXPECT_EQ(rec->tags, (Tags{{"t", "1"}}));
  EXPECT_EQ(rec->update_blob_id, "upd-1");
  // A change decided on the state before upd-1 is refused.
  EXPECT_THAT(cat_->UpdateObject(bucket_, "k", "v1", 1, "", ObjectUpdate{}, "upd-2"),
              StatusIs(StatusCode::kFailedPrecondition));
  rec = cat_->GetObject(bucket_.id, "k");
  ASSERT_OK(rec);
  EXPECT_EQ(rec->lock, kCompliance);
}

TEST_F(ObjectLockTest, UploadsKeepTheLockAskedForAtCreation) {
  UploadRecord up;
  up.upload_id = "up-1";
  up.bucket_id = bucket_.id;
  up.tenant_id = "t1";
  up.key = "mp";
  up.initiated = kNow;
  up.key_info = KeyInfo{kKeyId, 1, Bytes(60, 9)};
  up.lock = kHold;
  ASSERT_OK(cat_->CreateUpload(up));
  auto read = cat_->GetUpload("up-1");
  ASSERT_OK(read);
  EXPECT_EQ(read->lock, kHold);
}

TEST_F(ObjectLockTest, ProtectedVersionsAreListedPerTenantWithOrWithoutTheGovernanceBypass) {
  ASSERT_OK(cat_->PutObject(Version("a", "a1", kCompliance)));
  ASSERT_OK(cat_->PutObject(Version("a", "a2", kGovernance)));
  ASSERT_OK(cat_->PutObject(Version("b", "b1", kHold)));
  ObjectLock lapsed = kCompliance;
  lapsed.retain_until = kNow - 1;
  ASSERT_OK(cat_->PutObject(Version("c", "c1", lapsed)));
  ObjectLock lifted;
  lifted.legal_hold = kLegalHoldOff;
  ASSERT_OK(cat_->PutObject(Version("d", "d1", lifted)));
  auto other = cat_->CreateBucket("t2", "theirs");
  ASSERT_OK(other);
  ObjectRecord theirs = Version("z", "z1", kCompliance);
  theirs.bucket_id = other->id;
  theirs.tenant_id = "t2";
  ASSERT_OK(cat_->PutObject(theirs));

  uint64_t total = 0;
  auto all = cat_->ListProtectedVersions("t1", kNow, false, 10, &total);
  ASSERT_OK(all);
  EXPECT_EQ(total, 3u);
  std::vector<std::string> ids;
  for (const auto& v : *all) {
    EXPECT_EQ(v.bucket, "locked");
    ids.push_back(v.key + "/" + v.version_id);
  }
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre("a/a1", "a/a2", "b/b1"));

  auto strict = cat_->ListProtectedVersions("t1", kNow, true, 10, &total);
  ASSERT_OK(strict);
  EXPECT_EQ(total, 2u);
  // The limit bounds the list, not the count.
  auto one = cat_->ListProtectedVersions("t1", kNow, false, 1, &total);
  ASSERT_OK(one);
  EXPECT_EQ(one->size(), 1u);
  EXPECT_EQ(total, 3u);
  // Later, only the legal hold is left.
  auto later = cat_->ListProtectedVersions("t1", kNow + kDay, false, 10, &total);
  ASSERT_OK(later);
  ASSERT_EQ(later->size(), 1u);
  EXPECT_EQ(later->front().key, "b");
}

TEST_F(ObjectLockTest, ABucketIsCreatedWithItsSettings) {
  auto read = cat_->GetBucketSettings(bucket_);
  ASSERT_OK(read);
  EXPECT_EQ(*read, (Attributes{{"versioning", "Enabled"}, {"object_lock", "Enabled"}}));
  EXPECT_EQ(bucket_.settings, *read);
}

TEST(ObjectLockMigrationTest, RowsOfTheReleaseBeforeHaveNoLock) {
  test_support::TempDir dir("lock-mig");
  const std::string path = dir.str() + "/catalog.db";
  {
    auto opened = Catalog::Open(path);
    ASSERT_OK(opened);
  }
  {
    auto conn = db::Connection::Open(path, db::OpenMode::kReadWriteCreate);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec(R"sql(
DROP INDEX objects_locked;
DROP INDEX object_versions_locked;
ALTER TABLE objects DROP COLUMN object_lock;
ALTER TABLE object_versions DROP COLUMN object_lock;
ALTER TABLE uploads DROP COLUMN object_lock;
UPDATE bucket_ids SET last = 3;
INSERT INTO buckets(id, tenant_id, name, created) VALUES(3, 'al', 'al-files', 1);
INSERT INTO objects(bucket_id, key, object_id, size, etag, last_modified, attributes, tenant_key_id, key_version,
  wrapped_key, tenant_id, manifest_blob_id) VALUES(3, 'old', 'o-old', 3, 'e', 1, '{}', x'01', 1, x'02', 'al', '');
INSERT INTO object_parts VALUES(3, 'old', 0, 'blob-old', 3, 'e', '{}');
PRAGMA user_version = 8;
)sql"));
  }
  auto opened = Catalog::Open(path);
  ASSERT_OK(opened);
  auto old = (*opened)->GetObject(3, "old");
  ASSERT_OK(old);
  EXPECT_TRUE(old->lock.empty());
  auto bucket = (*opened)->GetBucket("al-files");
  ASSERT_OK(bucket);
  EXPECT_OK((*opened)->DeleteObject(*bucket, "old"));
}

}  // namespace
}  // namespace coffre::catalog
