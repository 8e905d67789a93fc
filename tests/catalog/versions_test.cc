// Object versions in the catalog: null versions that replace each other as before versioning,
// non-null versions that are all kept, delete markers, the removal of one version, the versions
// listing, and what the key lifecycle, bucket deletion, tenant shredding and fsck see of noncurrent
// versions.

#include <gtest/gtest.h>

#include <map>
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

const Bytes kKeyId(16, 0x5a);

class VersionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Catalog::Open(dir_.str() + "/catalog.db");
    ASSERT_OK(opened);
    cat_ = std::move(opened).value();
    auto created = cat_->CreateBucket("t1", "versions");
    ASSERT_OK(created);
    bucket_ = *created;
  }
  void TearDown() override { cat_.reset(); }

  // A single-PUT object whose one part lives in blob "blob-<id>"; a non-null version unless said.
  ObjectRecord Single(const std::string& key, const std::string& id, bool null_version = false,
                      uint32_t key_version = 1) {
    ObjectRecord rec;
    rec.bucket_id = bucket_.id;
    rec.tenant_id = bucket_.tenant_id;
    rec.key = key;
    rec.object_id = id;
    rec.size = 7;
    rec.etag = "etag-" + id;
    rec.last_modified = ++clock_;
    rec.attributes = {{"content-type", "text/" + id}};
    rec.key_info = KeyInfo{kKeyId, key_version, Bytes(60, static_cast<uint8_t>(clock_))};
    rec.parts.push_back(ObjectPart{0, "blob-" + id, 7, "pe-" + id, {}});
    rec.null_version = null_version;
    return rec;
  }

  // A completed multipart upload's object: parts 1 and 2 in "blob-<id>-1", "blob-<id>-2", and its
  // manifest "manifest-<id>".
  ObjectRecord Multipart(const std::string& key, const std::string& id, bool null_version = false) {
    ObjectRecord rec = Single(key, id, null_version);
    rec.size = 30;
    rec.etag = "mp-" + id + "-2";
    rec.parts = {ObjectPart{1, "blob-" + id + "-1", 10, "pe1-" + id, {{"crc32", "one"}}},
                 ObjectPart{2, "blob-" + id + "-2", 20, "pe2-" + id, {{"crc32", "two"}}}};
    rec.manifest_blob_id = "manifest-" + id;
    return rec;
  }

  ObjectRecord Marker(const std::string& key, const std::string& id, bool null_version = false) {
    ObjectRecord rec;
    rec.bucket_id = bucket_.id;
    rec.tenant_id = bucket_.tenant_id;
    rec.key = key;
    rec.object_id = id;
    rec.last_modified = ++clock_;
    rec.null_version = null_version;
    rec.delete_marker = true;
    return rec;
  }

  std::set<std::string> Garbage() {
    auto listed = cat_->ListGarbage(10000);
    EXPECT_OK(listed);
    std::set<std::string> out;
    if (listed.ok()) {
      for (const GarbageBlob& g : *listed) out.insert(g.blob_id);
    }
    return out;
  }

  // One entry as a word: "key@version" (+"!" for a delete marker, "*" when latest), or "[prefix]".
  static std::string Describe(const VersionEntry& e) {
    if (!e.version) return "[" + e.common_prefix + "]";
    std::string out = e.version->key + "@" + e.version->version_id();
    if (e.version->delete_marker) out += "!";
    if (e.is_latest) out += "*";
    return out;
  }

  std::vector<std::string> Versions(const VersionListQuery& query = {}) {
    auto page = cat_->ListObjectVersions(bucket_.id, query);
    EXPECT_OK(page);
    std::vector<std::string> out;
    if (!page.ok()) return out;
    EXPECT_FALSE(page->is_truncated);
    for (const VersionEntry& e : page->entries) out.push_back(Describe(e));
    return out;
  }

  std::vector<std::string> BlobIds(BlobRefSource source, const std::string& after = "") {
    auto ids = cat_->ListBlobIds(source, after, 1000);
    EXPECT_OK(ids);
    return ids.ok() ? *ids : std::vector<std::string>{};
  }

  bool Referenced(const std::string& blob_id) {
    auto referenced = cat_->IsBlobReferenced(blob_id);
    EXPECT_OK(referenced);
    return referenced.ok() && *referenced;
  }

  // Every field a read returns, parts included, against the record written.
  static void ExpectSameObject(const ObjectRecord& got, const ObjectRecord& want) {
    EXPECT_EQ(got.bucket_id, want.bucket_id);
    EXPECT_EQ(got.tenant_id, want.tenant_id);
    EXPECT_EQ(got.key, want.key);
    EXPECT_EQ(got.object_id, want.object_id);
    EXPECT_EQ(got.size, want.size);
    EXPECT_EQ(got.etag, want.etag);
    EXPECT_EQ(got.last_modified, want.last_modified);
    EXPECT_EQ(got.attributes, want.attributes);
    EXPECT_EQ(got.key_info.tenant_key_id, want.key_info.tenant_key_id);
    EXPECT_EQ(got.key_info.tenant_key_version, want.key_info.tenant_key_version);
    EXPECT_EQ(got.key_info.wrapped_data_key, want.key_info.wrapped_data_key);
    EXPECT_EQ(got.manifest_blob_id, want.manifest_blob_id);
    EXPECT_EQ(got.update_blob_id, want.update_blob_id);
    EXPECT_EQ(got.null_version, want.null_version);
    EXPECT_EQ(got.delete_marker, want.delete_marker);
    ASSERT_EQ(got.parts.size(), want.parts.size());
    for (size_t i = 0; i < got.parts.size(); ++i) {
      EXPECT_EQ(got.parts[i].part_number, want.parts[i].part_number);
      EXPECT_EQ(got.parts[i].blob_id, want.parts[i].blob_id);
      EXPECT_EQ(got.parts[i].size, want.parts[i].size);
      EXPECT_EQ(got.parts[i].etag, want.parts[i].etag);
      EXPECT_EQ(got.parts[i].attributes, want.parts[i].attributes);
    }
  }

  void ExpectVersion(const std::string& key, const std::string& version_id, const ObjectRecord& want) {
    SCOPED_TRACE(key + "@" + version_id);
    auto got = cat_->GetObjectVersion(bucket_.id, key, version_id);
    ASSERT_OK(got);
    ExpectSameObject(*got, want);
  }

  void ExpectCurrent(const ObjectRecord& want) {
    SCOPED_TRACE("current of " + want.key);
    auto got = cat_->GetObject(bucket_.id, want.key);
    ASSERT_OK(got);
    ExpectSameObject(*got, want);
  }

  test_support::TempDir dir_{"versions"};
  std::unique_ptr<Catalog> cat_;
  Bucket bucket_;
  UnixMillis clock_ = 1'700'000'000'000;
};

// --- 1. null versions -------------------------------------------------------------------------

TEST_F(VersionsTest, NullVersionsReplaceEachOtherAsBeforeVersioning) {
  const ObjectRecord first = Single("k", "n1", /*null_version=*/true);
  const ObjectRecord second = Multipart("k", "n2", /*null_version=*/true);
  ASSERT_TRUE(ObjectRecord{}.null_version);  // the default
  ASSERT_OK(cat_->PutObject(first));
  EXPECT_TRUE(Garbage().empty());
  ASSERT_OK(cat_->PutObject(second));

  ExpectCurrent(second);
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-n1"}));
  EXPECT_FALSE(Referenced("blob-n1"));

  auto page = cat_->ListObjectVersions(bucket_.id, {});
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 1u);
  const VersionEntry& only = page->entries[0];
  ASSERT_TRUE(only.version.has_value());
  EXPECT_TRUE(only.is_latest);
  EXPECT_EQ(only.version->version_id(), "null");
  EXPECT_EQ(only.version->object_id, "n2");
  EXPECT_FALSE(only.version->delete_marker);
  EXPECT_TRUE(only.version->parts.empty());  // listings load no parts
  EXPECT_FALSE(page->is_truncated);

  ExpectVersion("k", "null", second);
  ExpectVersion("k", "", second);
  // A null version is named "null", never by its object id.
  EXPECT_THAT(cat_->GetObjectVersion(bucket_.id, "k", "n2"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->GetObjectVersion(bucket_.id, "k", "n1"), StatusIs(StatusCode::kNotFound));

  // DeleteObject removes it for good: nothing is left of the key.
  ASSERT_OK(cat_->DeleteObject(bucket_, "k"));
  EXPECT_THAT(cat_->GetObject(bucket_.id, "k"), StatusIs(StatusCode::kNotFound));
  EXPECT_TRUE(Versions().empty());
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-n1", "blob-n2-1", "blob-n2-2", "manifest-n2"}));
  EXPECT_OK(cat_->DeleteBucket(bucket_));
}

// --- 2. non-null versions ---------------------------------------------------------------------

TEST_F(VersionsTest, NonNullVersionsAreAllKeptWithTheirParts) {
  const ObjectRecord v1 = Multipart("k", "v1");
  const ObjectRecord v2 = Single("k", "v2");
  ObjectRecord v3 = Single("k", "v3");
  v3.update_blob_id = "update-v3";
  ASSERT_OK(cat_->PutObject(v1));
  ASSERT_OK(cat_->PutObject(v2));
  ASSERT_OK(cat_->PutObject(v3));

  ExpectCurrent(v3);
  ExpectVersion("k", "", v3);
  ExpectVersion("k", "v3", v3);
  ExpectVersion("k", "v2", v2);
  ExpectVersion("k", "v1", v1);
  EXPECT_THAT(cat_->GetObjectVersion(bucket_.id, "k", "null"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->GetObjectVersion(bucket_.id, "k", "v4"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->GetObjectVersion(bucket_.id, "other", "v1"), StatusIs(StatusCode::kNotFound));

  EXPECT_TRUE(Garbage().empty());
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v3*", "k@v2", "k@v1"}));
  // The listing of current objects and the object count see the current one only.
  auto listed = cat_->ListObjects(bucket_.id, {});
  ASSERT_OK(listed);
  ASSERT_EQ(listed->entries.size(), 1u);
  EXPECT_EQ(listed->entries[0].object->object_id, "v3");
  EXPECT_EQ(*cat_->CountObjects(bucket_.id), 1u);
}

// --- 3. a null version among non-null ones ------------------------------------------------------

TEST_F(VersionsTest, NullVersionIsKeptAsNoncurrentAndReplacedOnlyByTheNextNullVersion) {
  const ObjectRecord null1 = Multipart("k", "n1", /*null_version=*/true);  // before versioning
  const ObjectRecord v1 = Single("k", "v1");                               // versioning enabled
  const ObjectRecord v2 = Single("k", "v2");
  ASSERT_OK(cat_->PutObject(null1));
  ASSERT_OK(cat_->PutObject(v1));
  ASSERT_OK(cat_->PutObject(v2));
  EXPECT_TRUE(Garbage().empty());
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v2*", "k@v1", "k@null"}));
  ExpectVersion("k", "null", null1);
  ExpectCurrent(v2);

  // Versioning suspended: a null version replaces the noncurrent null one, and v2 becomes noncurrent.
  const ObjectRecord null2 = Single("k", "n2", /*null_version=*/true);
  ASSERT_OK(cat_->PutObject(null2));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-n1-1", "blob-n1-2", "manifest-n1"}));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@null*", "k@v2", "k@v1"}));
  ExpectCurrent(null2);
  ExpectVersion("k", "null", null2);
  ExpectVersion("k", "v2", v2);
  ExpectVersion("k", "v1", v1);

  // Another null version while the current one is null: it replaces that one alone.
  const ObjectRecord null3 = Single("k", "n3", /*null_version=*/true);
  ASSERT_OK(cat_->PutObject(null3));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-n1-1", "blob-n1-2", "manifest-n1", "blob-n2"}));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@null*", "k@v2", "k@v1"}));
  ExpectVersion("k", "null", null3);
  ExpectVersion("k", "v2", v2);
  ExpectVersion("k", "v1", v1);
}

// --- 4. delete markers --------------------------------------------------------------------------

TEST_F(VersionsTest, DeleteMarkerHidesTheCurrentObjectAndKeepsTheOlderVersions) {
  const ObjectRecord v1 = Single("k", "v1");
  const ObjectRecord v2 = Multipart("k", "v2");
  ASSERT_OK(cat_->PutObject(v1));
  ASSERT_OK(cat_->PutObject(v2));
  const ObjectRecord m1 = Marker("k", "m1");
  ASSERT_OK(cat_->PutDeleteMarker(m1));

  EXPECT_THAT(cat_->GetObject(bucket_.id, "k"), StatusIs(StatusCode::kNotFound));
  auto latest = cat_->GetObjectVersion(bucket_.id, "k", "");
  ASSERT_OK(latest);
  EXPECT_TRUE(latest->delete_marker);
  EXPECT_EQ(latest->object_id, "m1");
  EXPECT_EQ(latest->version_id(), "m1");
  EXPECT_EQ(latest->last_modified, m1.last_modified);
  EXPECT_FALSE(latest->null_version);
  EXPECT_TRUE(latest->parts.empty());
  EXPECT_EQ(latest->manifest_blob_id, "");
  ExpectVersion("k", "m1", m1);
  ExpectVersion("k", "v2", v2);
  ExpectVersion("k", "v1", v1);
  EXPECT_TRUE(Garbage().empty());
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@m1!*", "k@v2", "k@v1"}));
  EXPECT_EQ(*cat_->CountObjects(bucket_.id), 0u);
  auto listed = cat_->ListObjects(bucket_.id, {});
  ASSERT_OK(listed);
  EXPECT_TRUE(listed->entries.empty());

  // A second marker over the first.
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m2")));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@m2!*", "k@m1!", "k@v2", "k@v1"}));
  EXPECT_THAT(cat_->GetObject(bucket_.id, "k"), StatusIs(StatusCode::kNotFound));

  // A marker of a key that never held anything.
  ASSERT_OK(cat_->PutDeleteMarker(Marker("never", "m3")));
  EXPECT_EQ(Versions({.prefix = "never"}), (std::vector<std::string>{"never@m3!*"}));
}

TEST_F(VersionsTest, NullDeleteMarkerReplacesTheNullVersion) {
  // The current object is the null version: the marker replaces it.
  ASSERT_OK(cat_->PutObject(Single("cur", "n1", /*null_version=*/true)));
  ASSERT_OK(cat_->PutDeleteMarker(Marker("cur", "m1", /*null_version=*/true)));
  EXPECT_EQ(Versions({.prefix = "cur"}), (std::vector<std::string>{"cur@null!*"}));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-n1"}));
  auto got = cat_->GetObjectVersion(bucket_.id, "cur", "null");
  ASSERT_OK(got);
  EXPECT_TRUE(got->delete_marker);
  EXPECT_EQ(got->object_id, "m1");
  EXPECT_THAT(cat_->GetObject(bucket_.id, "cur"), StatusIs(StatusCode::kNotFound));

  // The null version is noncurrent: the marker replaces it, and the current object becomes noncurrent.
  const ObjectRecord v1 = Single("old", "v1");
  ASSERT_OK(cat_->PutObject(Single("old", "n2", /*null_version=*/true)));
  ASSERT_OK(cat_->PutObject(v1));
  ASSERT_OK(cat_->PutDeleteMarker(Marker("old", "m2", /*null_version=*/true)));
  EXPECT_EQ(Versions({.prefix = "old"}), (std::vector<std::string>{"old@null!*", "old@v1"}));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-n1", "blob-n2"}));
  ExpectVersion("old", "v1", v1);

  // A null marker replaces a null marker too; a later null object replaces that one.
  ASSERT_OK(cat_->PutDeleteMarker(Marker("old", "m3", /*null_version=*/true)));
  EXPECT_EQ(Versions({.prefix = "old"}), (std::vector<std::string>{"old@null!*", "old@v1"}));
  EXPECT_EQ(cat_->GetObjectVersion(bucket_.id, "old", "null")->object_id, "m3");
  const ObjectRecord n3 = Single("old", "n3", /*null_version=*/true);
  ASSERT_OK(cat_->PutObject(n3));
  EXPECT_EQ(Versions({.prefix = "old"}), (std::vector<std::string>{"old@null*", "old@v1"}));
  ExpectCurrent(n3);
}

TEST_F(VersionsTest, PutDeleteMarkerRefusesWhatIsNotAMarker) {
  ObjectRecord not_marker = Marker("k", "m1");
  not_marker.delete_marker = false;
  EXPECT_THAT(cat_->PutDeleteMarker(not_marker), StatusIs(StatusCode::kInvalidArgument));
  ObjectRecord with_blob = Marker("k", "m1");
  with_blob.parts.push_back(ObjectPart{0, "blob-x", 1, "e", {}});
  EXPECT_THAT(cat_->PutDeleteMarker(with_blob), StatusIs(StatusCode::kInvalidArgument));
  ObjectRecord with_update = Marker("k", "m1");
  with_update.update_blob_id = "update-x";
  EXPECT_THAT(cat_->PutDeleteMarker(with_update), StatusIs(StatusCode::kInvalidArgument));
  ObjectRecord other_tenant = Marker("k", "m1");
  other_tenant.tenant_id = "t2";
  EXPECT_THAT(cat_->PutDeleteMarker(other_tenant), StatusIs(StatusCode::kAborted));
  EXPECT_TRUE(Versions().empty());
}

// A delete marker described by a blob under a data key of its own: the key is counted and walked
// like an object's, and the blob is referenced until the marker goes.
TEST_F(VersionsTest, ADescribedDeleteMarkerHoldsItsKeyAndBlob) {
  ASSERT_OK(cat_->PutObject(Single("k", "v1")));
  ObjectRecord marker = Marker("k", "m1");
  marker.key_info = KeyInfo{kKeyId, 3, Bytes(60, 0x33)};
  marker.manifest_blob_id = "marker-m1";
  ASSERT_OK(cat_->PutDeleteMarker(marker));
  ExpectVersion("k", "m1", marker);
  EXPECT_EQ(*cat_->CountKeyVersions(kKeyId), (std::map<uint32_t, uint64_t>{{1, 1}, {3, 1}}));
  WrappedKeyCursor cursor;
  auto rows = cat_->ListWrappedKeys(kKeyId, 3, &cursor, 10);
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].object_id, "m1");
  EXPECT_EQ((*rows)[0].blob_ids, (std::vector<std::string>{"marker-m1"}));
  EXPECT_TRUE(Referenced("marker-m1"));
  EXPECT_EQ(BlobIds(BlobRefSource::kManifests), (std::vector<std::string>{"marker-m1"}));
  auto removed = cat_->DeleteObjectVersion(bucket_, "k", "m1");
  ASSERT_OK(removed);
  EXPECT_TRUE(removed->delete_marker);
  EXPECT_TRUE(Garbage().contains("marker-m1"));
}

// --- 5. DeleteObjectVersion -----------------------------------------------------------------------

// Each version's tags are its own: a change names the version by its object id, current or not,
// and the update blob it replaces goes to garbage.
TEST_F(VersionsTest, TagsOfANoncurrentVersionChangeAlone) {
  ASSERT_OK(cat_->PutObject(Single("k", "v1")));
  ASSERT_OK(cat_->PutObject(Single("k", "v2")));
  ASSERT_OK(cat_->UpdateObject(bucket_, "k", "v1", 1, "", {{{"a", "1"}}}, "update-1"));
  ASSERT_OK(cat_->UpdateObject(bucket_, "k", "v1", 1, "update-1", {{{"a", "2"}}}, "update-2"));
  EXPECT_EQ(cat_->GetObjectVersion(bucket_.id, "k", "v1")->tags, (Tags{{"a", "2"}}));
  EXPECT_EQ(cat_->GetObjectVersion(bucket_.id, "k", "v1")->update_blob_id, "update-2");
  EXPECT_TRUE(cat_->GetObject(bucket_.id, "k")->tags.empty());
  EXPECT_TRUE(Garbage().contains("update-1"));
  EXPECT_TRUE(Referenced("update-2"));
  // A stale read of the version's update, or of its key version, is refused.
  EXPECT_THAT(cat_->UpdateObject(bucket_, "k", "v1", 1, "update-1", {}, "update-3"),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(cat_->UpdateObject(bucket_, "k", "v1", 2, "update-2", {}, "update-3"),
              StatusIs(StatusCode::kFailedPrecondition));
  // A version that is gone, while the key has a current object: the caller reads again.
  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "k", "v1"));
  EXPECT_THAT(cat_->UpdateObject(bucket_, "k", "v1", 1, "update-2", {}, "update-3"),
              StatusIs(StatusCode::kFailedPrecondition));
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m1")));
  EXPECT_THAT(cat_->UpdateObject(bucket_, "k", "m1", 0, "", {{{"a", "1"}}}, "update-4"),
              StatusIs(StatusCode::kNotFound));
}

TEST_F(VersionsTest, DeletingANoncurrentVersionLeavesTheCurrentOne) {
  const ObjectRecord v1 = Single("k", "v1");
  const ObjectRecord v2 = Multipart("k", "v2");
  const ObjectRecord v3 = Single("k", "v3");
  for (const auto& v : {v1, v2, v3}) ASSERT_OK(cat_->PutObject(v));

  auto removed = cat_->DeleteObjectVersion(bucket_, "k", "v2");
  ASSERT_OK(removed);
  EXPECT_EQ(removed->key, "k");
  EXPECT_EQ(removed->object_id, "v2");
  EXPECT_EQ(removed->version_id(), "v2");
  EXPECT_FALSE(removed->delete_marker);
  EXPECT_FALSE(removed->null_version);
  EXPECT_EQ(removed->etag, v2.etag);
  EXPECT_EQ(removed->size, v2.size);
  EXPECT_EQ(removed->manifest_blob_id, "manifest-v2");

  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-v2-1", "blob-v2-2", "manifest-v2"}));
  EXPECT_THAT(cat_->GetObjectVersion(bucket_.id, "k", "v2"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->DeleteObjectVersion(bucket_, "k", "v2"), StatusIs(StatusCode::kNotFound));
  ExpectCurrent(v3);
  ExpectVersion("k", "v1", v1);
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v3*", "k@v1"}));
}

TEST_F(VersionsTest, DeletingTheCurrentVersionPromotesTheNewestRemaining) {
  const ObjectRecord v1 = Single("k", "v1");
  const ObjectRecord v2 = Multipart("k", "v2");
  const ObjectRecord v3 = Single("k", "v3");
  for (const auto& v : {v1, v2, v3}) ASSERT_OK(cat_->PutObject(v));

  auto removed = cat_->DeleteObjectVersion(bucket_, "k", "v3");
  ASSERT_OK(removed);
  EXPECT_EQ(removed->object_id, "v3");
  EXPECT_FALSE(removed->delete_marker);
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-v3"}));
  ExpectCurrent(v2);  // with both its parts and its manifest
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v2*", "k@v1"}));
  EXPECT_EQ(*cat_->CountObjects(bucket_.id), 1u);

  // The promoted version is the current object in every respect: a new write makes it noncurrent again.
  const ObjectRecord v4 = Single("k", "v4");
  ASSERT_OK(cat_->PutObject(v4));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v4*", "k@v2", "k@v1"}));
  ExpectVersion("k", "v2", v2);

  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "k", "v4"));
  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "k", "v2"));
  ExpectCurrent(v1);
  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "k", "v1"));
  EXPECT_THAT(cat_->GetObject(bucket_.id, "k"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->GetObjectVersion(bucket_.id, "k", ""), StatusIs(StatusCode::kNotFound));
  EXPECT_TRUE(Versions().empty());
  EXPECT_EQ(Garbage(),
            (std::set<std::string>{"blob-v1", "blob-v2-1", "blob-v2-2", "manifest-v2", "blob-v3", "blob-v4"}));
  EXPECT_OK(cat_->DeleteBucket(bucket_));
}

TEST_F(VersionsTest, DeletingTheCurrentNullVersionPromotesTheNewestRemaining) {
  const ObjectRecord v1 = Single("k", "v1");
  const ObjectRecord n1 = Single("k", "n1", /*null_version=*/true);
  ASSERT_OK(cat_->PutObject(v1));
  ASSERT_OK(cat_->PutObject(n1));
  auto removed = cat_->DeleteObjectVersion(bucket_, "k", "null");
  ASSERT_OK(removed);
  EXPECT_TRUE(removed->null_version);
  EXPECT_EQ(removed->version_id(), "null");
  EXPECT_EQ(removed->object_id, "n1");
  EXPECT_FALSE(removed->delete_marker);
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-n1"}));
  ExpectCurrent(v1);
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v1*"}));
}

TEST_F(VersionsTest, DeletingTheCurrentVersionUnderADeleteMarkerLeavesTheMarkerLatest) {
  const ObjectRecord v1 = Single("k", "v1");
  ASSERT_OK(cat_->PutObject(v1));
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m1")));
  const ObjectRecord v2 = Single("k", "v2");
  ASSERT_OK(cat_->PutObject(v2));
  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "k", "v2"));
  EXPECT_THAT(cat_->GetObject(bucket_.id, "k"), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@m1!*", "k@v1"}));
  EXPECT_TRUE(cat_->GetObjectVersion(bucket_.id, "k", "")->delete_marker);
}

TEST_F(VersionsTest, DeletingTheLatestDeleteMarkerRestoresThePreviousVersion) {
  const ObjectRecord v1 = Single("k", "v1");
  const ObjectRecord v2 = Multipart("k", "v2");
  ASSERT_OK(cat_->PutObject(v1));
  ASSERT_OK(cat_->PutObject(v2));
  const ObjectRecord m1 = Marker("k", "m1");
  ASSERT_OK(cat_->PutDeleteMarker(m1));
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m2")));

  // Under another marker, the key stays deleted.
  auto removed = cat_->DeleteObjectVersion(bucket_, "k", "m2");
  ASSERT_OK(removed);
  EXPECT_TRUE(removed->delete_marker);
  EXPECT_EQ(removed->object_id, "m2");
  EXPECT_THAT(cat_->GetObject(bucket_.id, "k"), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@m1!*", "k@v2", "k@v1"}));

  removed = cat_->DeleteObjectVersion(bucket_, "k", "m1");
  ASSERT_OK(removed);
  EXPECT_TRUE(removed->delete_marker);
  EXPECT_EQ(removed->object_id, "m1");
  EXPECT_EQ(removed->last_modified, m1.last_modified);
  ExpectCurrent(v2);
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v2*", "k@v1"}));
  EXPECT_TRUE(Garbage().empty());
  EXPECT_EQ(*cat_->CountObjects(bucket_.id), 1u);
}

TEST_F(VersionsTest, DeletingAnOlderDeleteMarkerChangesNothingElse) {
  const ObjectRecord v1 = Single("k", "v1");
  ASSERT_OK(cat_->PutObject(v1));
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m1")));
  const ObjectRecord v2 = Single("k", "v2");
  ASSERT_OK(cat_->PutObject(v2));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v2*", "k@m1!", "k@v1"}));

  auto removed = cat_->DeleteObjectVersion(bucket_, "k", "m1");
  ASSERT_OK(removed);
  EXPECT_TRUE(removed->delete_marker);
  EXPECT_EQ(removed->object_id, "m1");
  ExpectCurrent(v2);
  ExpectVersion("k", "v1", v1);
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v2*", "k@v1"}));
  EXPECT_TRUE(Garbage().empty());

  // Also with a marker as the latest: the one below it goes alone.
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m2")));
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m3")));
  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "k", "m2"));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@m3!*", "k@v2", "k@v1"}));
  EXPECT_THAT(cat_->GetObject(bucket_.id, "k"), StatusIs(StatusCode::kNotFound));
}

TEST_F(VersionsTest, DeleteObjectVersionOfAnUnknownVersionIsNotFound) {
  ASSERT_OK(cat_->PutObject(Single("k", "v1")));
  ASSERT_OK(cat_->PutObject(Single("other", "v9")));
  EXPECT_THAT(cat_->DeleteObjectVersion(bucket_, "k", "nope"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->DeleteObjectVersion(bucket_, "k", "null"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->DeleteObjectVersion(bucket_, "k", "v9"), StatusIs(StatusCode::kNotFound));  // another key's
  EXPECT_THAT(cat_->DeleteObjectVersion(bucket_, "missing", "v1"), StatusIs(StatusCode::kNotFound));
  Bucket foreign = bucket_;
  foreign.tenant_id = "t2";
  EXPECT_THAT(cat_->DeleteObjectVersion(foreign, "k", "v1"), StatusIs(StatusCode::kAborted));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v1*", "other@v9*"}));
  EXPECT_TRUE(Garbage().empty());
}

// --- 6. ListObjectVersions ----------------------------------------------------------------------

class VersionsListingTest : public VersionsTest {
 protected:
  void SetUp() override {
    VersionsTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK(cat_->PutObject(Single("f", "f-null", /*null_version=*/true)));
    ASSERT_OK(cat_->PutObject(Single("f", "f1")));
    ASSERT_OK(cat_->PutObject(Single("a", "a1")));
    ASSERT_OK(cat_->PutObject(Single("a", "a2")));
    ASSERT_OK(cat_->PutObject(Single("a", "a3")));
    ASSERT_OK(cat_->PutDeleteMarker(Marker("e", "e-m1")));
    ASSERT_OK(cat_->PutObject(Single("b", "b1")));
    ASSERT_OK(cat_->PutDeleteMarker(Marker("b", "b-m1")));
    ASSERT_OK(cat_->PutObject(Single("c", "c-null", /*null_version=*/true)));
    ASSERT_OK(cat_->PutObject(Single("d/y", "dy1")));
    ASSERT_OK(cat_->PutObject(Single("d/x", "dx1")));
    ASSERT_OK(cat_->PutObject(Single("d/y", "dy2")));
  }

  // Pages through `query` with its max_keys, following the next markers; the entries of every page.
  std::vector<std::string> AllPages(VersionListQuery query) {
    std::vector<std::string> out;
    for (int pages = 0;; ++pages) {
      if (pages > 40) {
        ADD_FAILURE() << "no end after 40 pages";
        break;
      }
      auto page = cat_->ListObjectVersions(bucket_.id, query);
      EXPECT_OK(page);
      if (!page.ok()) break;
      EXPECT_LE(page->entries.size(), query.max_keys);
      for (const VersionEntry& e : page->entries) out.push_back(Describe(e));
      if (!page->is_truncated) break;
      EXPECT_EQ(page->entries.size(), query.max_keys);
      if (page->entries.empty()) break;
      const VersionEntry& last = page->entries.back();
      EXPECT_EQ(page->next_key_marker, last.version ? last.version->key : last.common_prefix);
      EXPECT_EQ(page->next_version_id_marker, last.version ? last.version->version_id() : "");
      query.key_marker = page->next_key_marker;
      query.version_id_marker = page->next_version_id_marker;
    }
    return out;
  }

  const std::vector<std::string> kAll = {"a@a3*",    "a@a2",     "a@a1",    "b@b-m1!*", "b@b1",  "c@null*",
                                         "d/x@dx1*", "d/y@dy2*", "d/y@dy1", "e@e-m1!*", "f@f1*", "f@null"};
  const std::vector<std::string> kGrouped = {"a@a3*",   "a@a2", "a@a1",     "b@b-m1!*", "b@b1",
                                             "c@null*", "[d/]", "e@e-m1!*", "f@f1*",    "f@null"};
};

TEST_F(VersionsListingTest, KeysAscendingEachNewestFirstAndLatestOnlyOnTheFirst) {
  EXPECT_EQ(Versions(), kAll);
  auto page = cat_->ListObjectVersions(bucket_.id, {});
  ASSERT_OK(page);
  EXPECT_TRUE(page->next_key_marker.empty());
  EXPECT_TRUE(page->next_version_id_marker.empty());
  for (const VersionEntry& e : page->entries) {
    ASSERT_TRUE(e.version.has_value());
    EXPECT_TRUE(e.common_prefix.empty());
    EXPECT_TRUE(e.version->parts.empty());
    EXPECT_EQ(e.version->bucket_id, bucket_.id);
    EXPECT_EQ(e.version->tenant_id, bucket_.tenant_id);
  }
  // The entries carry the versions' fields: a1 as written, a marker with nothing but its id and time.
  const ObjectRecord& a1 = *page->entries[2].version;
  EXPECT_EQ(a1.object_id, "a1");
  EXPECT_EQ(a1.etag, "etag-a1");
  EXPECT_EQ(a1.size, 7u);
  EXPECT_EQ(a1.attributes, (Attributes{{"content-type", "text/a1"}}));
  EXPECT_EQ(a1.key_info.tenant_key_id, kKeyId);
  const ObjectRecord& marker = *page->entries[3].version;
  EXPECT_TRUE(marker.delete_marker);
  EXPECT_EQ(marker.size, 0u);
  EXPECT_EQ(marker.etag, "");
  EXPECT_GT(marker.last_modified, 0);
}

TEST_F(VersionsListingTest, PrefixAndDelimiter) {
  EXPECT_EQ(Versions({.prefix = "d/"}), (std::vector<std::string>{"d/x@dx1*", "d/y@dy2*", "d/y@dy1"}));
  EXPECT_EQ(Versions({.prefix = "b"}), (std::vector<std::string>{"b@b-m1!*", "b@b1"}));
  EXPECT_EQ(Versions({.prefix = "zzz"}), (std::vector<std::string>{}));
  EXPECT_EQ(Versions({.delimiter = "/"}), kGrouped);
  EXPECT_EQ(Versions({.prefix = "d", .delimiter = "/"}), (std::vector<std::string>{"[d/]"}));
  EXPECT_EQ(Versions({.prefix = "d/", .delimiter = "/"}),
            (std::vector<std::string>{"d/x@dx1*", "d/y@dy2*", "d/y@dy1"}));
}

TEST_F(VersionsListingTest, PagesCoverTheListingOnceWithLatestPreserved) {
  for (uint32_t max_keys = 1; max_keys <= 3; ++max_keys) {
    SCOPED_TRACE("max_keys " + std::to_string(max_keys));
    EXPECT_EQ(AllPages({.max_keys = max_keys}), kAll);
    EXPECT_EQ(AllPages({.delimiter = "/", .max_keys = max_keys}), kGrouped);
    EXPECT_EQ(AllPages({.prefix = "d/", .max_keys = max_keys}),
              (std::vector<std::string>{"d/x@dx1*", "d/y@dy2*", "d/y@dy1"}));
  }
  // The first page of two, exactly.
  auto page = cat_->ListObjectVersions(bucket_.id, {.max_keys = 2});
  ASSERT_OK(page);
  EXPECT_TRUE(page->is_truncated);
  EXPECT_EQ(page->next_key_marker, "a");
  EXPECT_EQ(page->next_version_id_marker, "a2");
  // A page that ends on a null version names it "null"; the next resumes after it.
  page = cat_->ListObjectVersions(bucket_.id, {.key_marker = "f", .version_id_marker = "f1", .max_keys = 1});
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(Describe(page->entries[0]), "f@null");
  EXPECT_FALSE(page->is_truncated);
  page = cat_->ListObjectVersions(bucket_.id, {.key_marker = "c", .version_id_marker = "null", .max_keys = 1});
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(Describe(page->entries[0]), "d/x@dx1*");
}

TEST_F(VersionsListingTest, KeyMarkerAloneSkipsEveryVersionOfThatKey) {
  EXPECT_EQ(Versions({.key_marker = "a"}), (std::vector<std::string>(kAll.begin() + 3, kAll.end())));  // from b
  EXPECT_EQ(Versions({.key_marker = "d/y"}), (std::vector<std::string>{"e@e-m1!*", "f@f1*", "f@null"}));
  EXPECT_EQ(Versions({.key_marker = "f"}), (std::vector<std::string>{}));
  // With a version marker: the marker key's versions after that one first, then the next keys.
  EXPECT_EQ(Versions({.key_marker = "a", .version_id_marker = "a3"}),
            (std::vector<std::string>(kAll.begin() + 1, kAll.end())));
  EXPECT_EQ(Versions({.key_marker = "b", .version_id_marker = "b-m1"}),
            (std::vector<std::string>(kAll.begin() + 4, kAll.end())));
  EXPECT_EQ(Versions({.key_marker = "b", .version_id_marker = "b1"}),
            (std::vector<std::string>(kAll.begin() + 5, kAll.end())));
  // A common prefix as the key marker (what a grouped page ends on) skips the whole group.
  EXPECT_EQ(Versions({.delimiter = "/", .key_marker = "d/"}),
            (std::vector<std::string>{"e@e-m1!*", "f@f1*", "f@null"}));
}

// --- 7. conditional writes ------------------------------------------------------------------------

TEST_F(VersionsTest, ConditionsApplyToTheCurrentObject) {
  const ObjectRecord v1 = Single("k", "v1");
  ASSERT_OK(cat_->PutObject(v1));
  EXPECT_THAT(cat_->PutObject(Single("k", "v2"), {.if_none_match_any = true}),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(cat_->PutObject(Single("k", "v2"), {.if_match_etag = "etag-other"}),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v1*"}));
  ASSERT_OK(cat_->PutObject(Single("k", "v2"), {.if_match_etag = "etag-v1"}));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v2*", "k@v1"}));

  // The latest is a delete marker: the key has no current object, whatever its older versions.
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m1")));
  EXPECT_THAT(cat_->PutObject(Single("k", "v3"), {.if_match_etag = "*"}), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->PutObject(Single("k", "v3"), {.if_match_etag = "etag-v2"}), StatusIs(StatusCode::kNotFound));
  const ObjectRecord v3 = Single("k", "v3");
  ASSERT_OK(cat_->PutObject(v3, {.if_none_match_any = true}));
  ExpectCurrent(v3);
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v3*", "k@m1!", "k@v2", "k@v1"}));
  EXPECT_TRUE(Garbage().empty());
}

// --- 8. key lifecycle -----------------------------------------------------------------------------

class VersionsKeyRowsTest : public VersionsTest {
 protected:
  void SetUp() override {
    VersionsTest::SetUp();
    if (HasFatalFailure()) return;
    a1_ = Multipart("a", "a1");
    a2_ = Single("a", "a2");
    a3_ = Single("a", "a3");
    for (const auto& v : {a1_, a2_, a3_}) ASSERT_OK(cat_->PutObject(v));
    b1_ = Single("b", "b1");
    ASSERT_OK(cat_->PutObject(b1_));
    ASSERT_OK(cat_->PutDeleteMarker(Marker("b", "b-m1")));
    c1_ = Single("c", "c1");
    ASSERT_OK(cat_->PutObject(c1_));
    ASSERT_OK(cat_->PutObject(Single("c", "c2", false, /*key_version=*/2)));
    d_ = Single("d", "d-null", /*null_version=*/true);
    ASSERT_OK(cat_->PutObject(d_));
    for (const char* id : {"u1", "u2"}) {
      UploadRecord u;
      u.upload_id = id;
      u.bucket_id = bucket_.id;
      u.tenant_id = bucket_.tenant_id;
      u.key = std::string("up-") + id;
      u.key_info = KeyInfo{kKeyId, 1, Bytes(60, 0x77)};
      ASSERT_OK(cat_->CreateUpload(u));
    }
  }

  static std::string Describe(const WrappedKeyRow& r) {
    if (r.is_upload) return "upload:" + r.upload_id;
    return std::string(r.noncurrent ? "noncurrent:" : "current:") + r.key + "@" + r.object_id +
           (r.noncurrent ? "#" + std::to_string(r.version_order) : "");
  }

  ObjectRecord a1_, a2_, a3_, b1_, c1_, d_;
};

TEST_F(VersionsKeyRowsTest, CountKeyVersionsCountsEveryVersion) {
  auto counts = cat_->CountKeyVersions(kKeyId);
  ASSERT_OK(counts);
  // Version 1: a1, a2, a3, b1, c1, d and the two uploads; version 2: c2. Markers hold no key.
  EXPECT_EQ(*counts, (std::map<uint32_t, uint64_t>{{1, 8}, {2, 1}}));
  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "a", "a1"));
  EXPECT_EQ(*cat_->CountKeyVersions(kKeyId), (std::map<uint32_t, uint64_t>{{1, 7}, {2, 1}}));
}

TEST_F(VersionsKeyRowsTest, WalkGoesThroughCurrentThenNoncurrentThenUploads) {
  const std::vector<std::string> expected = {"current:a@a3",      "current:d@d-null",  "noncurrent:a@a1#1",
                                             "noncurrent:a@a2#2", "noncurrent:b@b1#1", "noncurrent:c@c1#1",
                                             "upload:u1",         "upload:u2"};
  for (uint32_t limit = 1; limit <= 3; ++limit) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    WrappedKeyCursor cursor;
    std::vector<std::string> seen;
    std::vector<WrappedKeyRow> rows;
    for (int calls = 0;; ++calls) {
      ASSERT_LT(calls, 20);
      auto batch = cat_->ListWrappedKeys(kKeyId, 1, &cursor, limit);
      ASSERT_OK(batch);
      if (batch->empty()) break;
      EXPECT_LE(batch->size(), limit);
      for (const auto& r : *batch) {
        seen.push_back(Describe(r));
        rows.push_back(r);
        // The cursor is past the rows returned, in the table they came from.
        if (!r.is_upload && r.noncurrent) {
          EXPECT_TRUE(cursor.in_noncurrent || cursor.in_uploads);
        }
      }
    }
    EXPECT_EQ(seen, expected);
    EXPECT_TRUE(cursor.in_uploads);
    ASSERT_EQ(rows.size(), expected.size());

    const WrappedKeyRow& a1 = rows[2];
    EXPECT_FALSE(a1.is_upload);
    EXPECT_TRUE(a1.noncurrent);
    EXPECT_EQ(a1.bucket_id, bucket_.id);
    EXPECT_EQ(a1.key_info.tenant_key_id, kKeyId);
    EXPECT_EQ(a1.key_info.tenant_key_version, 1u);
    EXPECT_EQ(a1.key_info.wrapped_data_key, a1_.key_info.wrapped_data_key);
    EXPECT_EQ(a1.blob_ids, (std::vector<std::string>{"blob-a1-1", "blob-a1-2", "manifest-a1"}));
    EXPECT_EQ(a1.update_blob_id, "");
    const WrappedKeyRow& a2 = rows[3];
    EXPECT_EQ(a2.blob_ids, (std::vector<std::string>{"blob-a2"}));
    EXPECT_EQ(a2.key_info.wrapped_data_key, a2_.key_info.wrapped_data_key);
    const WrappedKeyRow& a3 = rows[0];
    EXPECT_FALSE(a3.noncurrent);
    EXPECT_EQ(a3.blob_ids, (std::vector<std::string>{"blob-a3"}));
    EXPECT_EQ(rows[6].object_id, "u1");
  }
  // Version 2's walk: c2 alone.
  WrappedKeyCursor cursor;
  auto v2 = cat_->ListWrappedKeys(kKeyId, 2, &cursor, 10);
  ASSERT_OK(v2);
  ASSERT_EQ(v2->size(), 1u);
  EXPECT_EQ(Describe((*v2)[0]), "current:c@c2");
}

TEST_F(VersionsKeyRowsTest, RewrapUpdatesANoncurrentVersionAndLeavesOneDeletedMeanwhile) {
  WrappedKeyCursor cursor;
  auto rows = cat_->ListWrappedKeys(kKeyId, 1, &cursor, 100);
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 8u);
  const WrappedKeyRow a3 = (*rows)[0];
  const WrappedKeyRow a1 = (*rows)[2];
  const WrappedKeyRow a2 = (*rows)[3];
  ASSERT_EQ(Describe(a1), "noncurrent:a@a1#1");
  ASSERT_EQ(Describe(a2), "noncurrent:a@a2#2");

  // Meanwhile a2 is deleted, and a new write makes a3 noncurrent.
  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "a", "a2"));
  ASSERT_OK(cat_->PutObject(Single("a", "a4")));

  auto updated = cat_->RewrapKeys(
      {KeyRewrap{a1, 2, Bytes(60, 0xee)}, KeyRewrap{a2, 2, Bytes(60, 0xef)}, KeyRewrap{a3, 2, Bytes(60, 0xf0)}}, {});
  ASSERT_OK(updated);
  EXPECT_EQ(*updated, 1u);  // a1 alone

  auto got = cat_->GetObjectVersion(bucket_.id, "a", "a1");
  ASSERT_OK(got);
  EXPECT_EQ(got->key_info.tenant_key_version, 2u);
  EXPECT_EQ(got->key_info.wrapped_data_key, Bytes(60, 0xee));
  EXPECT_EQ(got->parts.size(), 2u);
  EXPECT_EQ(got->manifest_blob_id, "manifest-a1");
  EXPECT_THAT(cat_->GetObjectVersion(bucket_.id, "a", "a2"), StatusIs(StatusCode::kNotFound));
  // a3, read as the current object, is found only where the walk read it: left for the next pass.
  got = cat_->GetObjectVersion(bucket_.id, "a", "a3");
  ASSERT_OK(got);
  EXPECT_EQ(got->key_info.tenant_key_version, 1u);
  EXPECT_EQ(got->key_info.wrapped_data_key, a3_.key_info.wrapped_data_key);

  // A second pass over version 1 finds a3 among the noncurrent versions, and a1 no more.
  WrappedKeyCursor again;
  std::vector<std::string> seen;
  for (int calls = 0;; ++calls) {
    ASSERT_LT(calls, 20);
    auto batch = cat_->ListWrappedKeys(kKeyId, 1, &again, 2);
    ASSERT_OK(batch);
    if (batch->empty()) break;
    for (const auto& r : *batch) seen.push_back(Describe(r));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"current:a@a4", "current:d@d-null", "noncurrent:a@a3#2",
                                            "noncurrent:b@b1#1", "noncurrent:c@c1#1", "upload:u1", "upload:u2"}));
  EXPECT_EQ(*cat_->CountKeyVersions(kKeyId), (std::map<uint32_t, uint64_t>{{1, 7}, {2, 2}}));
}

// --- 9. bucket deletion and tenant shredding ------------------------------------------------------

TEST_F(VersionsTest, DeleteBucketIsRefusedWhileVersionsOrMarkersRemain) {
  ASSERT_OK(cat_->PutObject(Single("k", "v1")));
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m1")));
  // No current object left, a noncurrent version and a marker.
  EXPECT_EQ(*cat_->CountObjects(bucket_.id), 0u);
  EXPECT_THAT(cat_->DeleteBucket(bucket_), StatusIs(StatusCode::kFailedPrecondition));
  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "k", "v1"));
  // The marker alone.
  EXPECT_THAT(cat_->DeleteBucket(bucket_), StatusIs(StatusCode::kFailedPrecondition));
  ASSERT_OK(cat_->GetBucket("versions"));
  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "k", "m1"));
  EXPECT_OK(cat_->DeleteBucket(bucket_));
  EXPECT_THAT(cat_->GetBucket("versions"), StatusIs(StatusCode::kNotFound));
}

TEST_F(VersionsTest, DeleteTenantDataRemovesEveryVersionAndThenTheBucket) {
  auto other = cat_->CreateBucket("t2", "other");
  ASSERT_OK(other);
  ObjectRecord kept = Single("k", "o1");
  kept.bucket_id = other->id;
  kept.tenant_id = "t2";
  ASSERT_OK(cat_->PutObject(kept));

  ASSERT_OK(cat_->PutObject(Multipart("k", "v1")));
  ASSERT_OK(cat_->PutObject(Single("k", "v2")));
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m1")));
  ASSERT_OK(cat_->PutObject(Single("k", "v3")));
  ASSERT_OK(cat_->PutObject(Single("j", "j-null", /*null_version=*/true)));
  ASSERT_OK(cat_->PutObject(Single("j", "j1")));
  ASSERT_OK(cat_->PutDeleteMarker(Marker("gone", "g-m1")));

  for (int calls = 0;; ++calls) {
    ASSERT_LT(calls, 30);
    auto removed = cat_->DeleteTenantData("t1", 2);
    ASSERT_OK(removed);
    if (*removed == 0) break;
  }
  EXPECT_THAT(cat_->GetBucket("versions"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->GetObjectVersion(bucket_.id, "k", "v1"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->GetObjectVersion(bucket_.id, "gone", ""), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-v1-1", "blob-v1-2", "manifest-v1", "blob-v2", "blob-v3",
                                              "blob-j-null", "blob-j1"}));
  // The other tenant's object stays.
  EXPECT_EQ(BlobIds(BlobRefSource::kObjectParts), (std::vector<std::string>{"blob-o1"}));
  EXPECT_TRUE(BlobIds(BlobRefSource::kManifests).empty());
  auto still = cat_->GetObject(other->id, "k");
  ASSERT_OK(still);
  EXPECT_EQ(still->object_id, "o1");
  EXPECT_EQ(*cat_->CountKeyVersions(kKeyId), (std::map<uint32_t, uint64_t>{{1, 1}}));  // o1
}

// --- 10. references of noncurrent versions' blobs ---------------------------------------------------

TEST_F(VersionsTest, NoncurrentVersionsBlobsAreReferencedUntilTheVersionIsDeleted) {
  ObjectRecord v1 = Multipart("k", "v1");
  v1.update_blob_id = "update-v1";
  ASSERT_OK(cat_->PutObject(v1));
  ASSERT_OK(cat_->PutObject(Single("k", "v2")));

  for (const char* id : {"blob-v1-1", "blob-v1-2", "manifest-v1", "update-v1", "blob-v2"}) {
    EXPECT_TRUE(Referenced(id)) << id;
  }
  EXPECT_EQ(BlobIds(BlobRefSource::kObjectParts), (std::vector<std::string>{"blob-v1-1", "blob-v1-2", "blob-v2"}));
  EXPECT_EQ(BlobIds(BlobRefSource::kObjectParts, "blob-v1-1"), (std::vector<std::string>{"blob-v1-2", "blob-v2"}));
  auto first = cat_->ListBlobIds(BlobRefSource::kObjectParts, "", 1);
  ASSERT_OK(first);
  EXPECT_EQ(*first, (std::vector<std::string>{"blob-v1-1"}));
  EXPECT_EQ(BlobIds(BlobRefSource::kManifests), (std::vector<std::string>{"manifest-v1"}));
  EXPECT_EQ(BlobIds(BlobRefSource::kObjectUpdates), (std::vector<std::string>{"update-v1"}));
  EXPECT_TRUE(Garbage().empty());

  // Under a delete marker too.
  ASSERT_OK(cat_->PutDeleteMarker(Marker("k", "m1")));
  EXPECT_TRUE(Referenced("blob-v2"));
  EXPECT_EQ(BlobIds(BlobRefSource::kObjectParts), (std::vector<std::string>{"blob-v1-1", "blob-v1-2", "blob-v2"}));

  ASSERT_OK(cat_->DeleteObjectVersion(bucket_, "k", "v1"));
  for (const char* id : {"blob-v1-1", "blob-v1-2", "manifest-v1", "update-v1"}) {
    EXPECT_FALSE(Referenced(id)) << id;
  }
  EXPECT_TRUE(Referenced("blob-v2"));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-v1-1", "blob-v1-2", "manifest-v1", "update-v1"}));
  EXPECT_EQ(BlobIds(BlobRefSource::kObjectParts), (std::vector<std::string>{"blob-v2"}));
  EXPECT_TRUE(BlobIds(BlobRefSource::kManifests).empty());
  EXPECT_TRUE(BlobIds(BlobRefSource::kObjectUpdates).empty());
  EXPECT_EQ(BlobIds(BlobRefSource::kGarbage),
            (std::vector<std::string>{"blob-v1-1", "blob-v1-2", "manifest-v1", "update-v1"}));
}

// --- CompleteUpload writes a version like PutObject -------------------------------------------------

TEST_F(VersionsTest, CompletedUploadKeepsThePreviousVersion) {
  const ObjectRecord v1 = Single("k", "v1");
  ASSERT_OK(cat_->PutObject(v1));
  UploadRecord u;
  u.upload_id = "up1";
  u.bucket_id = bucket_.id;
  u.tenant_id = bucket_.tenant_id;
  u.key = "k";
  u.key_info = KeyInfo{kKeyId, 1, Bytes(60, 0x33)};
  ASSERT_OK(cat_->CreateUpload(u));
  ASSERT_OK(cat_->PutPart("up1", PartRecord{1, "blob-up-1", 10, "pe1", 1, {}}));
  ASSERT_OK(cat_->PutPart("up1", PartRecord{2, "blob-up-2", 20, "pe2", 1, {}}));
  ASSERT_OK(cat_->PutPart("up1", PartRecord{3, "blob-up-3", 5, "pe3", 1, {}}));  // left out
  ObjectRecord done = Single("k", "v2");
  done.key_info = u.key_info;
  done.size = 30;
  done.etag = "mp-2";
  done.parts = {ObjectPart{1, "blob-up-1", 10, "pe1", {}}, ObjectPart{2, "blob-up-2", 20, "pe2", {}}};
  done.manifest_blob_id = "manifest-up";
  ASSERT_OK(cat_->CompleteUpload("up1", done));

  ExpectCurrent(done);
  ExpectVersion("k", "v1", v1);
  EXPECT_EQ(Versions(), (std::vector<std::string>{"k@v2*", "k@v1"}));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob-up-3"}));
}

// A catalog of the release before versions (user_version 7) upgrades in place: its objects are
// null versions, which the first versioned write keeps as noncurrent.
TEST(VersionsMigrationTest, ObjectsOfTheReleaseBeforeAreNullVersions) {
  test_support::TempDir dir("versions-mig");
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
ALTER TABLE objects DROP COLUMN object_lock;
ALTER TABLE uploads DROP COLUMN object_lock;
DROP TABLE version_parts;
DROP TABLE object_versions;
ALTER TABLE objects DROP COLUMN null_version;
UPDATE bucket_ids SET last = 5;
INSERT INTO buckets(id, tenant_id, name, created) VALUES(5, 'bob', 'bob-files', 1);
INSERT INTO objects(bucket_id, key, object_id, size, etag, last_modified, attributes, tenant_key_id, key_version,
  wrapped_key, tenant_id, manifest_blob_id) VALUES(5, 'old.txt', 'o-old', 3, 'e-old', 1, '{}', x'01', 1, x'02', 'bob', '');
INSERT INTO object_parts VALUES(5, 'old.txt', 0, 'blob-old', 3, 'e-old', '{}');
PRAGMA user_version = 7;
)sql"));
  }
  auto opened = Catalog::Open(path);
  ASSERT_OK(opened);
  auto& cat = *opened;
  auto old = cat->GetObject(5, "old.txt");
  ASSERT_OK(old);
  EXPECT_TRUE(old->null_version);
  EXPECT_FALSE(old->delete_marker);
  EXPECT_EQ(old->version_id(), "null");
  ASSERT_EQ(old->parts.size(), 1u);

  ObjectRecord fresh;
  fresh.bucket_id = 5;
  fresh.tenant_id = "bob";
  fresh.key = "old.txt";
  fresh.object_id = "o-new";
  fresh.etag = "e-new";
  fresh.key_info = KeyInfo{Bytes{1}, 1, Bytes{3}};
  fresh.parts.push_back(ObjectPart{0, "blob-new", 1, "e-new", {}});
  fresh.null_version = false;
  ASSERT_OK(cat->PutObject(fresh));
  auto page = cat->ListObjectVersions(5, {});
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].version->version_id(), "o-new");
  EXPECT_TRUE(page->entries[0].is_latest);
  EXPECT_EQ(page->entries[1].version->version_id(), "null");
  EXPECT_EQ(page->entries[1].version->object_id, "o-old");
  EXPECT_FALSE(page->entries[1].is_latest);
  auto kept = cat->GetObjectVersion(5, "old.txt", "null");
  ASSERT_OK(kept);
  ASSERT_EQ(kept->parts.size(), 1u);
  EXPECT_EQ(kept->parts[0].blob_id, "blob-old");
  EXPECT_TRUE(*cat->IsBlobReferenced("blob-old"));
}

}  // namespace
}  // namespace coffre::catalog
