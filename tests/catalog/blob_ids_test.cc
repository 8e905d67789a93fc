// Catalog::ListBlobIds, the walk `coffre fsck` compares with the blob files.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::catalog {
namespace {

class BlobIdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Open(dir_.str() + "/catalog.db");
    ASSERT_OK(c);
    cat_ = std::move(c).value();
    auto b = cat_->CreateBucket("tenant1", "bucket");
    ASSERT_OK(b);
    bucket_ = b->id;
    bucket_row_ = *b;
  }
  void TearDown() override { cat_.reset(); }

  void PutObject(const std::string& key, const std::string& blob, const std::string& manifest = "") {
    ObjectRecord rec;
    rec.manifest_blob_id = manifest;
    rec.bucket_id = bucket_;
    rec.tenant_id = "tenant1";
    rec.key = key;
    rec.object_id = RandomId();
    rec.etag = "e";
    rec.key_info.tenant_key_id = Bytes(16, 1);
    rec.key_info.tenant_key_version = 1;
    rec.key_info.wrapped_data_key = Bytes(60, 2);
    ObjectPart p;
    p.blob_id = blob;
    p.size = 1;
    p.etag = "pe";
    rec.size = 1;
    rec.parts.push_back(p);
    ASSERT_OK(cat_->PutObject(rec));
  }

  // An upload in progress of `key` under key version 1, with part 1 in blob `blob`.
  void UploadWithPart(const std::string& upload_id, const std::string& key, const std::string& blob) {
    UploadRecord u;
    u.upload_id = upload_id;
    u.bucket_id = bucket_;
    u.tenant_id = "tenant1";
    u.key = key;
    u.key_info.tenant_key_id = Bytes(16, 1);
    u.key_info.tenant_key_version = 1;
    u.key_info.wrapped_data_key = Bytes(60, 2);
    ASSERT_OK(cat_->CreateUpload(u));
    PartRecord part;
    part.part_number = 1;
    part.blob_id = blob;
    part.size = 1;
    part.etag = "x";
    ASSERT_OK(cat_->PutPart(upload_id, part));
  }

  std::vector<std::string> All(BlobRefSource source, uint32_t page) {
    std::vector<std::string> out;
    std::string after;
    for (;;) {
      auto ids = cat_->ListBlobIds(source, after, page);
      EXPECT_OK(ids);
      if (!ids.ok() || ids->empty()) {
        return out;
      }
      EXPECT_LE(ids->size(), page);
      after = ids->back();
      out.insert(out.end(), ids->begin(), ids->end());
    }
  }

  test_support::TempDir dir_{"blobids"};
  std::unique_ptr<Catalog> cat_;
  int64_t bucket_ = 0;
  Bucket bucket_row_;
};

TEST_F(BlobIdsTest, EachSourceInIdOrderAcrossPages) {
  PutObject("k1", "b3");
  PutObject("k2", "b1");
  PutObject("k3", "b2");
  UploadWithPart("up1", "k4", "p1");

  EXPECT_EQ(All(BlobRefSource::kObjectParts, 2), (std::vector<std::string>{"b1", "b2", "b3"}));
  EXPECT_EQ(All(BlobRefSource::kObjectParts, 1000), (std::vector<std::string>{"b1", "b2", "b3"}));
  EXPECT_EQ(All(BlobRefSource::kUploadParts, 1), (std::vector<std::string>{"p1"}));
  EXPECT_TRUE(All(BlobRefSource::kGarbage, 10).empty());

  ASSERT_OK(cat_->DeleteObject(bucket_row_, "k1"));  // b3 becomes garbage
  EXPECT_EQ(All(BlobRefSource::kObjectParts, 10), (std::vector<std::string>{"b1", "b2"}));
  EXPECT_EQ(All(BlobRefSource::kGarbage, 10), (std::vector<std::string>{"b3"}));
}

TEST_F(BlobIdsTest, AManifestIsNamedByItsObjectAndGoesToGarbageWithIt) {
  PutObject("k1", "b1", "m2");
  PutObject("k2", "b2", "m1");
  PutObject("k3", "b3");
  EXPECT_EQ(All(BlobRefSource::kManifests, 1), (std::vector<std::string>{"m1", "m2"}));
  auto row = cat_->GetObject(bucket_, "k1");
  ASSERT_OK(row);
  EXPECT_EQ(row->manifest_blob_id, "m2");
  auto referenced = cat_->IsBlobReferenced("m2");
  ASSERT_OK(referenced);
  EXPECT_TRUE(*referenced);

  PutObject("k1", "b4");  // overwritten: its blob and its manifest become garbage
  ASSERT_OK(cat_->DeleteObject(bucket_row_, "k2"));
  EXPECT_TRUE(All(BlobRefSource::kManifests, 10).empty());
  EXPECT_EQ(All(BlobRefSource::kGarbage, 10), (std::vector<std::string>{"b1", "b2", "m1", "m2"}));
  referenced = cat_->IsBlobReferenced("m2");
  ASSERT_OK(referenced);
  EXPECT_FALSE(*referenced);
}

TEST_F(BlobIdsTest, KeyCopiesAreKeptUntilTheirVersionOrTheirTenantGoes) {
  PutObject("k1", "b1");
  ASSERT_OK(cat_->AddKeyCopyBlobs({{"c1", "tenant1", 2}, {"c2", "tenant1", 3}, {"c3", "tenant2", 2}}));
  EXPECT_EQ(All(BlobRefSource::kKeyCopies, 2), (std::vector<std::string>{"c1", "c2", "c3"}));
  auto referenced = cat_->IsBlobReferenced("c2");
  ASSERT_OK(referenced);
  EXPECT_TRUE(*referenced);

  auto dropped = cat_->DropKeyCopyBlobs("tenant1", 2);  // version 2 of tenant1 destroyed
  ASSERT_OK(dropped);
  EXPECT_EQ(*dropped, 1u);
  EXPECT_EQ(All(BlobRefSource::kKeyCopies, 10), (std::vector<std::string>{"c2", "c3"}));
  EXPECT_EQ(All(BlobRefSource::kGarbage, 10), (std::vector<std::string>{"c1"}));

  // A shredded tenant's data goes first, then its key copies.
  for (;;) {
    auto removed = cat_->DeleteTenantData("tenant1", 100);
    ASSERT_OK(removed);
    if (*removed == 0) break;
  }
  EXPECT_EQ(All(BlobRefSource::kKeyCopies, 10), (std::vector<std::string>{"c3"}));
  EXPECT_EQ(All(BlobRefSource::kGarbage, 10), (std::vector<std::string>{"b1", "c1", "c2"}));
}

TEST_F(BlobIdsTest, RewrapListsTheBlobsOfEachRowAndRecordsItsKeyCopies) {
  PutObject("k1", "b1", "m1");
  UploadWithPart("up1", "k2", "p1");

  WrappedKeyCursor cursor;
  auto rows = cat_->ListWrappedKeys(Bytes(16, 1), 1, &cursor, 10);
  ASSERT_OK(rows);
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].blob_ids, (std::vector<std::string>{"b1", "m1"}));  // the parts, then the manifest
  EXPECT_EQ((*rows)[1].blob_ids, (std::vector<std::string>{"p1"}));
  std::vector<KeyRewrap> rewraps;
  for (const WrappedKeyRow& row : *rows) rewraps.push_back({row, 2, Bytes(60, 3)});
  auto updated = cat_->RewrapKeys(rewraps, {{"c1", "tenant1", 2}});
  ASSERT_OK(updated);
  EXPECT_EQ(*updated, 2u);
  EXPECT_EQ(All(BlobRefSource::kKeyCopies, 10), (std::vector<std::string>{"c1"}));
}

}  // namespace
}  // namespace coffre::catalog
