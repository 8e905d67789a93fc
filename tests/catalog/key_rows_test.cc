// Catalog support for the key lifecycle: reference counts per key version, the rewrap walk and
// its compare-and-swap, and the removal of a shredded tenant's rows.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>
#include <string>

#include "coffre/catalog/catalog.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::catalog {
namespace {

using test_support::StatusIs;

const Bytes kTenantA(16, 0xaa);
const Bytes kTenantB(16, 0xbb);

class KeyRowsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Open(dir_.str() + "/catalog.db");
    ASSERT_OK(c);
    cat_ = std::move(c).value();
    bucket_a_ = cat_->CreateBucket("a", "bucket-a")->id;
    bucket_a2_ = cat_->CreateBucket("a", "bucket-a2")->id;
    bucket_b_ = cat_->CreateBucket("b", "bucket-b")->id;
  }
  void TearDown() override { cat_.reset(); }

  ObjectRecord Object(int64_t bucket, const std::string& key, const Bytes& tenant, uint32_t version, uint8_t fill) {
    ObjectRecord rec;
    rec.bucket_id = bucket;
    rec.tenant_id = TenantOf(bucket);
    rec.key = key;
    rec.object_id = "obj-" + key + "-" + std::to_string(fill);
    rec.etag = "e";
    rec.key_info = KeyInfo{tenant, version, Bytes(60, fill)};
    rec.parts.push_back(
        ObjectPart{0, "blob-" + key + "-" + std::to_string(bucket) + "-" + std::to_string(fill), 1, "pe", {}});
    rec.size = 1;
    return rec;
  }
  UploadRecord Upload(int64_t bucket, const std::string& id, const Bytes& tenant, uint32_t version, uint8_t fill) {
    UploadRecord u;
    u.upload_id = id;
    u.bucket_id = bucket;
    u.tenant_id = TenantOf(bucket);
    u.key = "up-" + id;
    u.key_info = KeyInfo{tenant, version, Bytes(60, fill)};
    return u;
  }

  std::string TenantOf(int64_t bucket) const { return bucket == bucket_b_ ? "b" : "a"; }

  test_support::TempDir dir_{"keyrows"};
  std::unique_ptr<Catalog> cat_;
  int64_t bucket_a_ = 0;
  int64_t bucket_a2_ = 0;
  int64_t bucket_b_ = 0;
};

TEST_F(KeyRowsTest, CountsObjectsAndUploadsPerVersionOfOneTenant) {
  ASSERT_OK(cat_->PutObject(Object(bucket_a_, "x", kTenantA, 1, 1)));
  ASSERT_OK(cat_->PutObject(Object(bucket_a2_, "y", kTenantA, 1, 2)));
  ASSERT_OK(cat_->PutObject(Object(bucket_a_, "z", kTenantA, 2, 3)));
  ASSERT_OK(cat_->CreateUpload(Upload(bucket_a_, "u1", kTenantA, 1, 4)));
  ASSERT_OK(cat_->PutObject(Object(bucket_b_, "x", kTenantB, 1, 5)));
  auto counts = cat_->CountKeyVersions(kTenantA);
  ASSERT_OK(counts);
  EXPECT_EQ(*counts, (std::map<uint32_t, uint64_t>{{1, 3}, {2, 1}}));
  EXPECT_EQ(*cat_->CountKeyVersions(kTenantB), (std::map<uint32_t, uint64_t>{{1, 1}}));
  EXPECT_TRUE(cat_->CountKeyVersions(Bytes(16, 0xcc))->empty());
}

TEST_F(KeyRowsTest, WalkVisitsEveryRowOfTheVersionOnceAcrossBatches) {
  std::set<std::string> expected;
  for (int i = 0; i < 7; ++i) {
    const std::string key = "k" + std::to_string(i);
    ASSERT_OK(cat_->PutObject(Object(i % 2 ? bucket_a_ : bucket_a2_, key, kTenantA, 1, 9)));
    expected.insert("o:" + key);
  }
  ASSERT_OK(cat_->PutObject(Object(bucket_a_, "newer", kTenantA, 2, 9)));
  ASSERT_OK(cat_->PutObject(Object(bucket_b_, "other", kTenantB, 1, 9)));
  for (const char* id : {"u1", "u2", "u3"}) {
    ASSERT_OK(cat_->CreateUpload(Upload(bucket_a_, id, kTenantA, 1, 9)));
    expected.insert(std::string("u:") + id);
  }
  WrappedKeyCursor cursor;
  std::set<std::string> seen;
  int batches = 0;
  while (true) {
    auto rows = cat_->ListWrappedKeys(kTenantA, 1, &cursor, 3);
    ASSERT_OK(rows);
    if (rows->empty()) {
      break;
    }
    ++batches;
    for (const auto& r : *rows) {
      EXPECT_EQ(r.key_info.tenant_key_version, 1u);
      EXPECT_EQ(r.key_info.tenant_key_id, kTenantA);
      EXPECT_TRUE(seen.insert((r.is_upload ? "u:" + r.upload_id : "o:" + r.key)).second);
      if (r.is_upload) {
        EXPECT_EQ(r.object_id, r.upload_id);
      }
    }
    ASSERT_LT(batches, 10);
  }
  EXPECT_EQ(seen, expected);
}

TEST_F(KeyRowsTest, RewrapIsACompareAndSwapThatNeverClobbersAConcurrentWrite) {
  ASSERT_OK(cat_->PutObject(Object(bucket_a_, "kept", kTenantA, 1, 1)));
  ASSERT_OK(cat_->PutObject(Object(bucket_a_, "overwritten", kTenantA, 1, 2)));
  ASSERT_OK(cat_->PutObject(Object(bucket_a_, "deleted", kTenantA, 1, 3)));
  ASSERT_OK(cat_->CreateUpload(Upload(bucket_a_, "u1", kTenantA, 1, 4)));
  WrappedKeyCursor cursor;
  auto rows = cat_->ListWrappedKeys(kTenantA, 1, &cursor, 100);
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 4u);

  // Between the read and the swap, the application overwrites one object and deletes another.
  const ObjectRecord fresh = Object(bucket_a_, "overwritten", kTenantA, 2, 7);
  ASSERT_OK(cat_->PutObject(fresh));
  ASSERT_OK(cat_->DeleteObject(Bucket{bucket_a_, "a"}, "deleted"));

  std::vector<KeyRewrap> rewraps;
  for (const auto& r : *rows) {
    rewraps.push_back(KeyRewrap{r, 2, Bytes(60, 0xee)});
  }
  auto updated = cat_->RewrapKeys(rewraps, {});
  ASSERT_OK(updated);
  EXPECT_EQ(*updated, 2u);  // "kept" and the upload
  auto kept = cat_->GetObject(bucket_a_, "kept");
  EXPECT_EQ(kept->key_info.tenant_key_version, 2u);
  EXPECT_EQ(kept->key_info.wrapped_data_key, Bytes(60, 0xee));
  auto over = cat_->GetObject(bucket_a_, "overwritten");
  EXPECT_EQ(over->object_id, fresh.object_id);
  EXPECT_EQ(over->key_info.wrapped_data_key, fresh.key_info.wrapped_data_key);          // not clobbered
  EXPECT_THAT(cat_->GetObject(bucket_a_, "deleted"), StatusIs(StatusCode::kNotFound));  // not resurrected
  EXPECT_EQ(cat_->GetUpload("u1")->key_info.tenant_key_version, 2u);
  EXPECT_EQ(*cat_->CountKeyVersions(kTenantA), (std::map<uint32_t, uint64_t>{{2, 3}}));
}

// The service read the upload (version 1) and sealed the manifest's header copy under it; a
// rewrap then moved the upload to version 2. Completing with the stale wrapping is refused and
// names the new version, so that the caller copies the manifest's key under it first.
TEST_F(KeyRowsTest, CompletingAnUploadRewrappedMeanwhileIsRefusedWithItsNewVersion) {
  UploadRecord up = Upload(bucket_a_, "u1", kTenantA, 1, 4);
  ASSERT_OK(cat_->CreateUpload(up));
  ASSERT_OK(cat_->PutPart("u1", PartRecord{1, "part-blob", 5, "pe", 1, {}}));
  WrappedKeyCursor cursor;
  auto rows = cat_->ListWrappedKeys(kTenantA, 1, &cursor, 10);
  ASSERT_EQ(rows->size(), 1u);
  ASSERT_EQ(*cat_->RewrapKeys({KeyRewrap{(*rows)[0], 2, Bytes(60, 0xee)}}, {}), 1u);
  ObjectRecord obj;
  obj.bucket_id = bucket_a_;
  obj.tenant_id = "a";
  obj.key = up.key;
  obj.object_id = "u1";
  obj.etag = "e-1";
  obj.key_info = up.key_info;  // stale: version 1
  obj.parts.push_back(ObjectPart{1, "part-blob", 5, "pe", {}});
  uint32_t moved_to = 1;
  EXPECT_THAT(cat_->CompleteUpload("u1", obj, {}, &moved_to), StatusIs(StatusCode::kAborted));
  EXPECT_EQ(moved_to, 2u);
  EXPECT_THAT(cat_->GetObject(bucket_a_, up.key), StatusIs(StatusCode::kNotFound));
  EXPECT_OK(cat_->GetUpload("u1"));  // untouched

  obj.key_info = cat_->GetUpload("u1")->key_info;
  ASSERT_OK(cat_->CompleteUpload("u1", obj, {}, &moved_to));
  auto got = cat_->GetObject(bucket_a_, up.key);
  ASSERT_OK(got);
  EXPECT_EQ(got->key_info.tenant_key_version, 2u);
  EXPECT_EQ(got->key_info.wrapped_data_key, Bytes(60, 0xee));
}

// A part is stored only while its upload is under the version its blob's key copy is under.
TEST_F(KeyRowsTest, APartIsRefusedOnceItsUploadMovedToAnotherVersion) {
  ASSERT_OK(cat_->CreateUpload(Upload(bucket_a_, "u1", kTenantA, 1, 4)));
  uint32_t version = 1;
  ASSERT_OK(cat_->PutPart("u1", PartRecord{1, "p1", 5, "pe", 1, {}}, &version));
  WrappedKeyCursor cursor;
  auto rows = cat_->ListWrappedKeys(kTenantA, 1, &cursor, 10);
  ASSERT_EQ(*cat_->RewrapKeys({KeyRewrap{(*rows)[0], 2, Bytes(60, 0xee)}}, {}), 1u);
  EXPECT_THAT(cat_->PutPart("u1", PartRecord{2, "p2", 5, "pe", 1, {}}, &version), StatusIs(StatusCode::kAborted));
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(cat_->ListParts("u1", 0, 10)->size(), 1u);
  ASSERT_OK(cat_->PutPart("u1", PartRecord{2, "p2", 5, "pe", 1, {}}, &version));
  EXPECT_EQ(cat_->ListParts("u1", 0, 10)->size(), 2u);
}

// A part stored after a rewrap listed its upload has no key copy under the new version: the
// upload is left for the next pass, which lists the part.
TEST_F(KeyRowsTest, RewrapLeavesAnUploadThatGotAPartSinceItWasListed) {
  ASSERT_OK(cat_->CreateUpload(Upload(bucket_a_, "u1", kTenantA, 1, 4)));
  ASSERT_OK(cat_->PutPart("u1", PartRecord{1, "p1", 5, "pe", 1, {}}));
  WrappedKeyCursor cursor;
  auto rows = cat_->ListWrappedKeys(kTenantA, 1, &cursor, 10);
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].blob_ids, (std::vector<std::string>{"p1"}));
  ASSERT_OK(cat_->PutPart("u1", PartRecord{1, "p1-again", 5, "pe", 1, {}}));  // a part replaced
  EXPECT_EQ(*cat_->RewrapKeys({KeyRewrap{(*rows)[0], 2, Bytes(60, 0xee)}}, {}), 0u);
  EXPECT_EQ(cat_->GetUpload("u1")->key_info.tenant_key_version, 1u);

  cursor = {};
  rows = cat_->ListWrappedKeys(kTenantA, 1, &cursor, 10);
  ASSERT_OK(rows);
  EXPECT_EQ((*rows)[0].blob_ids, (std::vector<std::string>{"p1-again"}));
  EXPECT_EQ(*cat_->RewrapKeys({KeyRewrap{(*rows)[0], 2, Bytes(60, 0xee)}}, {}), 1u);
  EXPECT_EQ(cat_->GetUpload("u1")->key_info.tenant_key_version, 2u);
}

TEST_F(KeyRowsTest, DeleteTenantDataRemovesOnlyThatTenantInBatchesAndSendsBlobsToGarbage) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(cat_->PutObject(Object(bucket_a_, "k" + std::to_string(i), kTenantA, 1, 1)));
  }
  ASSERT_OK(cat_->PutObject(Object(bucket_a2_, "k", kTenantA, 1, 1)));
  ASSERT_OK(cat_->CreateUpload(Upload(bucket_a_, "u1", kTenantA, 1, 1)));
  ASSERT_OK(cat_->PutPart("u1", PartRecord{1, "upload-part-blob", 5, "pe", 1, {}}));
  ASSERT_OK(cat_->PutObject(Object(bucket_b_, "k", kTenantB, 1, 1)));

  uint64_t total = 0;
  int batches = 0;
  while (true) {
    auto removed = cat_->DeleteTenantData("a", 3);
    ASSERT_OK(removed);
    if (*removed == 0) {
      break;
    }
    total += *removed;
    ASSERT_LT(++batches, 10);
  }
  EXPECT_GE(batches, 3);
  EXPECT_EQ(total, 5u + 1u + 1u + 2u);  // objects, upload, two buckets
  EXPECT_TRUE(cat_->ListBuckets("a")->empty());
  EXPECT_THAT(cat_->GetBucket("bucket-a"), StatusIs(StatusCode::kNotFound));
  EXPECT_OK(cat_->GetObject(bucket_b_, "k"));
  EXPECT_EQ(cat_->ListBuckets("b")->size(), 1u);
  std::set<std::string> garbage;
  auto listed = cat_->ListGarbage(100);
  ASSERT_OK(listed);
  for (const auto& g : *listed) {
    garbage.insert(g.blob_id);
  }
  EXPECT_EQ(garbage.size(), 7u);
  EXPECT_TRUE(garbage.contains("upload-part-blob"));
  EXPECT_FALSE(garbage.contains("blob-k-" + std::to_string(bucket_b_) + "-1"));
}

}  // namespace
}  // namespace coffre::catalog
