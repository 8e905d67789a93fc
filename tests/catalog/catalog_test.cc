#include "coffre/catalog/catalog.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "catalog/listing.h"
#include "coffre/db/sqlite.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::catalog {
namespace {

using test_support::StatusIs;

using std::chrono::milliseconds;

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.str() + "/catalog.db";
    Reopen();
    auto b = cat_->CreateBucket("tenant1", "bucket");
    ASSERT_OK(b);
    bucket_ = b->id;
    bucket_row_ = *b;
  }
  void TearDown() override { cat_.reset(); }

  void Reopen() {
    cat_.reset();
    auto c = Catalog::Open(path_, clock_);
    ASSERT_OK(c);
    cat_ = std::move(c).value();
  }

  ObjectRecord MakeObject(const std::string& key, std::vector<std::string> blobs = {}, std::string etag = "e") {
    ObjectRecord rec;
    rec.bucket_id = bucket_;
    rec.tenant_id = "tenant1";
    rec.key = key;
    rec.object_id = RandomId();
    rec.etag = std::move(etag);
    rec.last_modified = 1000;
    rec.key_info.tenant_key_id = Bytes(16, 0xab);
    rec.key_info.tenant_key_version = 1;
    rec.key_info.wrapped_data_key = Bytes(60, 0x5a);
    if (blobs.empty()) {
      blobs.push_back("blob-" + RandomId(8));
    }
    for (size_t i = 0; i < blobs.size(); ++i) {
      ObjectPart p;
      p.part_number = blobs.size() == 1 ? 0 : static_cast<uint32_t>(i + 1);
      p.blob_id = blobs[i];
      p.size = 10;
      p.etag = "pe";
      rec.size += p.size;
      rec.parts.push_back(p);
    }
    return rec;
  }

  void Put(const std::string& key) {
    Status st = cat_->PutObject(MakeObject(key));
    ASSERT_OK(st);
  }

  UploadRecord MakeUpload(const std::string& key, const std::string& id, UnixMillis initiated = 1) {
    UploadRecord u;
    u.upload_id = id;
    u.bucket_id = bucket_;
    u.tenant_id = "tenant1";
    u.key = key;
    u.initiated = initiated;
    u.attributes = {{"content-type", "application/pdf"}};
    u.key_info.tenant_key_id = Bytes(16, 1);
    u.key_info.tenant_key_version = 2;
    u.key_info.wrapped_data_key = Bytes(60, 2);
    return u;
  }

  PartRecord MakePart(uint32_t n, const std::string& blob) {
    PartRecord p;
    p.part_number = n;
    p.blob_id = blob;
    p.size = 5 * 1024 * 1024;
    p.etag = "etag" + std::to_string(n);
    p.last_modified = 77;
    p.attributes = {{"checksum-crc32", "AAAAAA=="}};
    return p;
  }

  std::set<std::string> Garbage() {
    auto g = cat_->ListGarbage(100000);
    EXPECT_OK(g);
    std::set<std::string> out;
    for (const auto& b : *g) {
      out.insert(b.blob_id);
    }
    return out;
  }

  // Flattens a page into strings: keys as themselves, common prefixes with a "P:" tag.
  static std::vector<std::string> Flatten(const ListPage& page) {
    std::vector<std::string> out;
    for (const auto& e : page.entries) {
      out.push_back(e.object ? e.object->key : "P:" + e.common_prefix);
    }
    return out;
  }

  // Pages through the whole listing, checking the page contracts as it goes.
  std::vector<std::string> ListAllPaged(ListQuery q) {
    std::vector<std::string> all;
    for (int guard = 0; guard < 100000; ++guard) {
      auto page = cat_->ListObjects(bucket_, q);
      EXPECT_OK(page);
      if (!page.ok()) {
        break;
      }
      EXPECT_LE(page->entries.size(), q.max_keys);
      for (auto& s : Flatten(*page)) {
        all.push_back(std::move(s));
      }
      if (!page->is_truncated) {
        break;
      }
      EXPECT_FALSE(page->next_marker.empty());
      q.start_after = page->next_marker;
    }
    return all;
  }

  FixedClock clock_{std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
  test_support::TempDir dir_{"catalog"};
  std::string path_;
  std::unique_ptr<Catalog> cat_;
  int64_t bucket_ = 0;
  Bucket bucket_row_;  // the bucket as a request resolves it
};

// The listing as S3 defines it, computed the slow way over a sorted set of keys.
std::vector<std::string> ReferenceList(const std::set<std::string>& keys, const ListQuery& q, bool* truncated) {
  std::vector<std::string> entries;  // sorted: a common prefix stands for a range with no other entries in it
  std::string last_prefix;
  for (const auto& k : keys) {
    if (!k.starts_with(q.prefix)) {
      continue;
    }
    auto len = CommonPrefixLength(k, q.prefix, q.delimiter);
    if (len) {
      std::string cp = k.substr(0, *len);
      if (cp != last_prefix) {
        last_prefix = cp;
        entries.push_back("P:" + cp);
      }
    } else {
      entries.push_back(k);
    }
  }
  std::vector<std::string> out;
  *truncated = false;
  for (const auto& e : entries) {
    const std::string_view name = e.starts_with("P:") ? std::string_view(e).substr(2) : std::string_view(e);
    if (name <= q.start_after) {
      continue;
    }
    if (out.size() == q.max_keys) {
      *truncated = true;
      break;
    }
    out.push_back(e);
  }
  return out;
}

// --- buckets -----------------------------------------------------------------------------

TEST_F(CatalogTest, BucketCreateGetList) {
  auto b = cat_->CreateBucket("tenant1", "alpha");
  ASSERT_OK(b);
  EXPECT_EQ(b->tenant_id, "tenant1");
  EXPECT_EQ(b->created, 1'700'000'000'000);
  auto got = cat_->GetBucket("alpha");
  ASSERT_OK(got);
  EXPECT_EQ(got->id, b->id);
  EXPECT_EQ(got->name, "alpha");
  ASSERT_OK(cat_->CreateBucket("tenant2", "zeta"));
  auto list = cat_->ListBuckets("tenant1");
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "alpha");
  EXPECT_EQ((*list)[1].name, "bucket");
  EXPECT_EQ(cat_->ListBuckets("nobody")->size(), 0u);
  EXPECT_THAT(cat_->GetBucket("missing"), StatusIs(StatusCode::kNotFound));
}

TEST_F(CatalogTest, BucketNamesAreGloballyUnique) {
  EXPECT_THAT(cat_->CreateBucket("tenant1", "bucket"), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(cat_->CreateBucket("tenant2", "bucket"), StatusIs(StatusCode::kAlreadyExists));
}

TEST_F(CatalogTest, DeleteBucketRefusesNonEmptyAndAbortsUploads) {
  Put("k");
  EXPECT_THAT(cat_->DeleteBucket(bucket_row_), StatusIs(StatusCode::kFailedPrecondition));
  ASSERT_OK(cat_->DeleteObject(bucket_row_, "k"));
  ASSERT_OK(cat_->CreateUpload(MakeUpload("m", "up1")));
  ASSERT_OK(cat_->PutPart("up1", MakePart(1, "part-blob")));
  ASSERT_OK(cat_->DeleteBucket(bucket_row_));
  EXPECT_THAT(cat_->GetBucket("bucket"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->GetUpload("up1"), StatusIs(StatusCode::kNotFound));
  EXPECT_TRUE(Garbage().contains("part-blob"));
  EXPECT_THAT(cat_->DeleteBucket(bucket_row_), StatusIs(StatusCode::kNotFound));
  // The name is free again.
  EXPECT_OK(cat_->CreateBucket("tenant2", "bucket"));
}

// A bucket lookup is cached (every request makes one); these pin when the cache lets go of it.

TEST_F(CatalogTest, ABucketDeletedHereIsGoneAtOnce) {
  ASSERT_OK(cat_->GetBucket("bucket"));  // cached
  ASSERT_OK(cat_->DeleteBucket(bucket_row_));
  EXPECT_THAT(cat_->GetBucket("bucket"), StatusIs(StatusCode::kNotFound));
  // The name, made again by another tenant, names the new bucket at once.
  auto again = cat_->CreateBucket("tenant2", "bucket");
  ASSERT_OK(again);
  auto got = cat_->GetBucket("bucket");
  ASSERT_OK(got);
  EXPECT_EQ(got->id, again->id);
  EXPECT_EQ(got->tenant_id, "tenant2");
}

TEST_F(CatalogTest, ALookupThatFoundNoBucketIsNotCached) {
  EXPECT_THAT(cat_->GetBucket("later"), StatusIs(StatusCode::kNotFound));
  // Made by another process (a second catalog on the same file), with the clock standing still.
  auto other = Catalog::Open(path_, clock_);
  ASSERT_OK(other);
  auto made = (*other)->CreateBucket("tenant1", "later");
  ASSERT_OK(made);
  auto got = cat_->GetBucket("later");
  ASSERT_OK(got);
  EXPECT_EQ(got->id, made->id);
}

TEST_F(CatalogTest, BucketsRemovedWithTheirTenantAreGoneAtOnce) {
  ASSERT_OK(cat_->GetBucket("bucket"));
  auto removed = cat_->DeleteTenantData("tenant1", 100);
  ASSERT_OK(removed);
  EXPECT_THAT(cat_->GetBucket("bucket"), StatusIs(StatusCode::kNotFound));
}

TEST_F(CatalogTest, ABucketDeletedByAnotherProcessIsSeenWithinTheCacheLifetime) {
  ASSERT_OK(cat_->GetBucket("bucket"));
  auto other = Catalog::Open(path_, clock_);
  ASSERT_OK(other);
  ASSERT_OK((*other)->DeleteTenantData("tenant1", 100));
  clock_.Set(clock_.Now() + std::chrono::seconds(1));
  EXPECT_THAT(cat_->GetBucket("bucket"), StatusIs(StatusCode::kNotFound));

  // A bucket made here under a name whose deletion elsewhere is not seen yet is found at once.
  ASSERT_OK(cat_->CreateBucket("tenant1", "reused"));
  ASSERT_OK(cat_->GetBucket("reused"));
  ASSERT_OK((*other)->DeleteTenantData("tenant1", 100));
  auto reused = cat_->CreateBucket("tenant2", "reused");
  ASSERT_OK(reused);
  auto got = cat_->GetBucket("reused");
  ASSERT_OK(got);
  EXPECT_EQ(got->id, reused->id);
  EXPECT_EQ(got->tenant_id, "tenant2");

  // A clock set back does not keep an entry alive either.
  ASSERT_OK((*other)->CreateBucket("tenant1", "second"));
  ASSERT_OK(cat_->GetBucket("second"));
  ASSERT_OK((*other)->DeleteTenantData("tenant1", 100));
  clock_.Set(clock_.Now() - std::chrono::milliseconds(1));
  EXPECT_THAT(cat_->GetBucket("second"), StatusIs(StatusCode::kNotFound));
}

// Lookups that read the row just before a deletion committed must not put it back in the cache
// after the deletion dropped it: with the clock standing still, such an entry would stay. The
// bucket is made by another catalog, so that the first lookups after it miss the cache and read
// the database while the deletion comes.
TEST_F(CatalogTest, LookupsRacingADeletionNeverKeepTheDeletedBucket) {
  auto other = Catalog::Open(path_, clock_);
  ASSERT_OK(other);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> found{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        if (cat_->GetBucket("raced").ok()) {
          found.fetch_add(1);
        }
      }
    });
  }
  // Failures end the rounds rather than the test, so that the readers are always joined.
  for (int round = 0; round < 200 && !HasFailure(); ++round) {
    auto b = (*other)->CreateBucket("tenant1", "raced");
    if (!b.ok()) {
      ADD_FAILURE() << b.status().ToString();
      break;
    }
    const uint64_t before = found.load();
    while (found.load() == before) {
      std::this_thread::yield();
    }
    EXPECT_OK(cat_->DeleteBucket(*b));
    auto after = cat_->GetBucket("raced");
    EXPECT_THAT(after, StatusIs(StatusCode::kNotFound)) << "round " << round << ": the deleted bucket is still found";
  }
  stop = true;
  for (auto& t : readers) {
    t.join();
  }
}

// --- objects -----------------------------------------------------------------------------

TEST_F(CatalogTest, PutGetRoundTripsEveryField) {
  ObjectRecord rec = MakeObject("dir/file.pdf", {"b1", "b2", "b3"}, "abc-3");
  rec.attributes = {{"content-type", "application/pdf"}, {"x-amz-meta-owner", "caf\xe9"}};
  rec.parts[1].attributes = {{"checksum-sha256", "xyz"}};
  rec.last_modified = 123456789;
  ASSERT_OK(cat_->PutObject(rec));
  auto got = cat_->GetObject(bucket_, "dir/file.pdf");
  ASSERT_OK(got);
  EXPECT_EQ(got->bucket_id, bucket_);
  EXPECT_EQ(got->key, rec.key);
  EXPECT_EQ(got->object_id, rec.object_id);
  EXPECT_EQ(got->size, 30u);
  EXPECT_EQ(got->etag, "abc-3");
  EXPECT_EQ(got->last_modified, 123456789);
  EXPECT_EQ(got->attributes, rec.attributes);
  EXPECT_EQ(got->key_info.tenant_key_id, rec.key_info.tenant_key_id);
  EXPECT_EQ(got->key_info.tenant_key_version, 1u);
  EXPECT_EQ(got->key_info.wrapped_data_key, rec.key_info.wrapped_data_key);
  ASSERT_EQ(got->parts.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got->parts[i].part_number, i + 1);
    EXPECT_EQ(got->parts[i].blob_id, rec.parts[i].blob_id);
    EXPECT_EQ(got->parts[i].size, 10u);
    EXPECT_EQ(got->parts[i].etag, "pe");
    EXPECT_EQ(got->parts[i].attributes, rec.parts[i].attributes);
  }
  EXPECT_TRUE(Garbage().empty());
  EXPECT_TRUE(*cat_->IsBlobReferenced("b2"));
  EXPECT_FALSE(*cat_->IsBlobReferenced("b9"));
}

TEST_F(CatalogTest, ReplaceSendsOldBlobsToGarbage) {
  ASSERT_OK(cat_->PutObject(MakeObject("k", {"old1", "old2"})));
  ASSERT_OK(cat_->PutObject(MakeObject("k", {"new1"}, "e2")));
  auto got = cat_->GetObject(bucket_, "k");
  ASSERT_OK(got);
  EXPECT_EQ(got->etag, "e2");
  ASSERT_EQ(got->parts.size(), 1u);
  EXPECT_EQ(got->parts[0].blob_id, "new1");
  EXPECT_EQ(Garbage(), (std::set<std::string>{"old1", "old2"}));
  EXPECT_FALSE(*cat_->IsBlobReferenced("old1"));
  auto g = cat_->ListGarbage(10);
  ASSERT_OK(g);
  EXPECT_EQ((*g)[0].since, 1'700'000'000'000);
  EXPECT_EQ(*cat_->CountObjects(bucket_), 1u);
}

TEST_F(CatalogTest, ReplaceKeepingTheSameBlobDoesNotCollectIt) {
  // A metadata-only replacement (copy onto itself) keeps pointing at the same blob.
  ASSERT_OK(cat_->PutObject(MakeObject("k", {"shared"})));
  ObjectRecord again = MakeObject("k", {"shared"});
  again.attributes = {{"content-type", "text/plain"}};
  ASSERT_OK(cat_->PutObject(again));
  EXPECT_TRUE(Garbage().empty());
  EXPECT_TRUE(*cat_->IsBlobReferenced("shared"));
}

TEST_F(CatalogTest, DeleteObject) {
  ASSERT_OK(cat_->PutObject(MakeObject("k", {"b1"})));
  ASSERT_OK(cat_->DeleteObject(bucket_row_, "k"));
  EXPECT_THAT(cat_->GetObject(bucket_, "k"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->DeleteObject(bucket_row_, "k"), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"b1"}));
  EXPECT_EQ(*cat_->CountObjects(bucket_), 0u);
}

// A request resolves its bucket once and may outlive it. If the id it holds could name a bucket
// made later (by another tenant), its write would land there.
TEST_F(CatalogTest, BucketIdsAreNeverHandedOutTwice) {
  std::set<int64_t> seen{bucket_};
  auto last = cat_->CreateBucket("tenant1", "last");
  ASSERT_OK(last);
  seen.insert(last->id);
  ASSERT_OK(cat_->DeleteBucket(*last));
  auto after_delete = cat_->CreateBucket("tenant2", "after-delete");
  ASSERT_OK(after_delete);
  EXPECT_TRUE(seen.insert(after_delete->id).second) << "id " << after_delete->id << " handed out again";

  ASSERT_OK(cat_->DeleteTenantData("tenant2", 100));
  Reopen();
  auto after_shred = cat_->CreateBucket("tenant3", "after-shred");
  ASSERT_OK(after_shred);
  EXPECT_TRUE(seen.insert(after_shred->id).second) << "id " << after_shred->id << " handed out again";

  // A name already taken burns no id and leaves the counter consistent.
  EXPECT_THAT(cat_->CreateBucket("tenant3", "after-shred"), StatusIs(StatusCode::kAlreadyExists));
  auto next = cat_->CreateBucket("tenant3", "next");
  ASSERT_OK(next);
  EXPECT_TRUE(seen.insert(next->id).second);
}

TEST_F(CatalogTest, WritesIntoABucketDeletedMeanwhileAreRefused) {
  const Bucket resolved = bucket_row_;
  ASSERT_OK(cat_->DeleteBucket(resolved));
  auto theirs = cat_->CreateBucket("tenant2", "theirs");
  ASSERT_OK(theirs);
  ObjectRecord dossier = MakeObject("dossier.pdf", {"theirs-blob"});
  dossier.bucket_id = theirs->id;
  dossier.tenant_id = "tenant2";
  ASSERT_OK(cat_->PutObject(dossier));

  EXPECT_THAT(cat_->PutObject(MakeObject("dossier.pdf", {"late"})), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(cat_->PutObject(MakeObject("new.pdf", {"late2"})), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(cat_->DeleteObject(resolved, "dossier.pdf"), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(cat_->CreateUpload(MakeUpload("dossier.pdf", "late-upload")), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(cat_->DeleteBucket(resolved), StatusIs(StatusCode::kNotFound));

  auto got = cat_->GetObject(theirs->id, "dossier.pdf");
  ASSERT_OK(got);
  EXPECT_EQ(got->parts[0].blob_id, "theirs-blob");
  EXPECT_EQ(got->tenant_id, "tenant2");
  EXPECT_EQ(*cat_->CountObjects(theirs->id), 1u);
  EXPECT_THAT(cat_->GetUpload("late-upload"), StatusIs(StatusCode::kNotFound));
}

// Whatever id a caller names, a write only lands in a bucket of the caller's tenant.
TEST_F(CatalogTest, WritesNamingAnotherTenantsBucketAreRefused) {
  auto theirs = cat_->CreateBucket("tenant2", "theirs");
  ASSERT_OK(theirs);
  ObjectRecord dossier = MakeObject("dossier.pdf", {"theirs-blob"});
  dossier.bucket_id = theirs->id;
  dossier.tenant_id = "tenant2";
  ASSERT_OK(cat_->PutObject(dossier));
  ASSERT_OK(cat_->CreateUpload([&] {
    UploadRecord u = MakeUpload("big", "theirs-upload");
    u.bucket_id = theirs->id;
    u.tenant_id = "tenant2";
    return u;
  }()));

  ObjectRecord mine = MakeObject("dossier.pdf", {"mine"});
  mine.bucket_id = theirs->id;  // tenant1's record naming tenant2's bucket
  EXPECT_THAT(cat_->PutObject(mine), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(cat_->DeleteObject(Bucket{theirs->id, "tenant1"}, "dossier.pdf"), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(cat_->DeleteBucket(Bucket{theirs->id, "tenant1"}), StatusIs(StatusCode::kNotFound));
  UploadRecord up = MakeUpload("x", "mine-upload");
  up.bucket_id = theirs->id;
  EXPECT_THAT(cat_->CreateUpload(up), StatusIs(StatusCode::kAborted));
  // Completing tenant2's upload as tenant1.
  ASSERT_OK(cat_->PutPart("theirs-upload", MakePart(1, "tp1")));
  ObjectRecord completed = MakeObject("big", {"tp1"});
  completed.bucket_id = theirs->id;
  EXPECT_THAT(cat_->CompleteUpload("theirs-upload", completed), StatusIs(StatusCode::kInvalidArgument));

  auto got = cat_->GetObject(theirs->id, "dossier.pdf");
  ASSERT_OK(got);
  EXPECT_EQ(got->parts[0].blob_id, "theirs-blob");
  EXPECT_OK(cat_->GetUpload("theirs-upload"));
}

// A catalog written before rows carried their tenant: the upgrade fills the tenant of every
// object and upload from its bucket, and ids continue after the highest one in use.
TEST(CatalogMigrationTest, RowsGetTheirTenantAndIdsContinue) {
  test_support::TempDir dir("catalog-mig");
  const std::string path = dir.str() + "/catalog.db";
  {
    // The schema as the previous release left it (user_version 2), with a few rows.
    auto conn = db::Connection::Open(path, db::OpenMode::kReadWriteCreate);
    ASSERT_OK(conn);
    ASSERT_TRUE((*conn)
                    ->Exec(R"sql(
CREATE TABLE buckets(id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL UNIQUE,
  created INTEGER NOT NULL);
CREATE INDEX buckets_by_tenant ON buckets(tenant_id, name);
CREATE TABLE objects(bucket_id INTEGER NOT NULL REFERENCES buckets(id), key TEXT NOT NULL COLLATE BINARY,
  object_id TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified INTEGER NOT NULL,
  attributes TEXT NOT NULL, tenant_key_id BLOB NOT NULL, key_version INTEGER NOT NULL, wrapped_key BLOB NOT NULL,
  PRIMARY KEY(bucket_id, key)) WITHOUT ROWID;
CREATE TABLE object_parts(bucket_id INTEGER NOT NULL, key TEXT NOT NULL COLLATE BINARY,
  part_number INTEGER NOT NULL CHECK(part_number BETWEEN 0 AND 10000), blob_id TEXT NOT NULL,
  size INTEGER NOT NULL, etag TEXT NOT NULL, attributes TEXT NOT NULL, PRIMARY KEY(bucket_id, key, part_number),
  FOREIGN KEY(bucket_id, key) REFERENCES objects(bucket_id, key) ON DELETE CASCADE) WITHOUT ROWID;
CREATE INDEX object_parts_by_blob ON object_parts(blob_id);
CREATE TABLE uploads(upload_id TEXT NOT NULL PRIMARY KEY, bucket_id INTEGER NOT NULL REFERENCES buckets(id),
  key TEXT NOT NULL COLLATE BINARY, initiated INTEGER NOT NULL, attributes TEXT NOT NULL,
  tenant_key_id BLOB NOT NULL, key_version INTEGER NOT NULL, wrapped_key BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX uploads_by_key ON uploads(bucket_id, key, initiated, upload_id);
CREATE TABLE upload_parts(upload_id TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
  part_number INTEGER NOT NULL CHECK(part_number BETWEEN 1 AND 10000), blob_id TEXT NOT NULL,
  size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified INTEGER NOT NULL, attributes TEXT NOT NULL,
  PRIMARY KEY(upload_id, part_number)) WITHOUT ROWID;
CREATE INDEX upload_parts_by_blob ON upload_parts(blob_id);
CREATE TABLE garbage(blob_id TEXT NOT NULL PRIMARY KEY, since INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX garbage_by_since ON garbage(since, blob_id);
CREATE INDEX objects_by_key_version ON objects(tenant_key_id, key_version, bucket_id, key);
CREATE INDEX uploads_by_key_version ON uploads(tenant_key_id, key_version, upload_id);
INSERT INTO buckets VALUES(3, 'alice', 'alice-docs', 1), (7, 'bob', 'bob-docs', 2);
INSERT INTO objects VALUES(3, 'a.pdf', 'oa', 1, 'e', 1, '{}', x'01', 1, x'02'),
                          (7, 'b.pdf', 'ob', 1, 'e', 1, '{}', x'03', 1, x'04');
INSERT INTO object_parts VALUES(3, 'a.pdf', 0, 'blob-a', 1, 'e', '{}'), (7, 'b.pdf', 0, 'blob-b', 1, 'e', '{}');
INSERT INTO uploads VALUES('up-b', 7, 'big', 1, '{}', x'03', 1, x'05');
PRAGMA user_version = 2;
)sql")
                    .ok());
  }
  {
    auto opened = Catalog::Open(path);
    ASSERT_OK(opened);
    auto& cat = *opened;
    auto a = cat->GetObject(3, "a.pdf");
    ASSERT_OK(a);
    EXPECT_EQ(a->tenant_id, "alice");
    EXPECT_EQ(a->parts.at(0).blob_id, "blob-a");
    auto b = cat->GetObject(7, "b.pdf");
    ASSERT_OK(b);
    EXPECT_EQ(b->tenant_id, "bob");
    auto up = cat->GetUpload("up-b");
    ASSERT_OK(up);
    EXPECT_EQ(up->tenant_id, "bob");
    // Writes as each owner work; as the other tenant they are refused.
    EXPECT_OK(cat->DeleteObject(Bucket{3, "alice"}, "a.pdf"));
    EXPECT_THAT(cat->DeleteObject(Bucket{7, "alice"}, "b.pdf"), StatusIs(StatusCode::kAborted));
    ASSERT_OK(cat->DeleteBucket(Bucket{3, "alice"}));
    ASSERT_OK(cat->DeleteObject(Bucket{7, "bob"}, "b.pdf"));
    ASSERT_OK(cat->DeleteBucket(Bucket{7, "bob"}));
    auto next = cat->CreateBucket("carol", "carol-docs");
    ASSERT_OK(next);
    EXPECT_GT(next->id, 7);
  }
}

TEST_F(CatalogTest, PutRejectsBadInput) {
  ObjectRecord rec = MakeObject("k");
  rec.bucket_id = 999;
  EXPECT_THAT(cat_->PutObject(rec), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(cat_->PutObject(MakeObject("")), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(cat_->PutObject(MakeObject(std::string("a\0b", 3))), StatusIs(StatusCode::kInvalidArgument));
  ObjectRecord dup = MakeObject("k", {"x", "y"});
  dup.parts[1].part_number = dup.parts[0].part_number;
  EXPECT_THAT(cat_->PutObject(dup), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(*cat_->CountObjects(bucket_), 0u);
}

TEST_F(CatalogTest, AttributesCorruptedInTheDatabaseAreReported) {
  Put("k");
  {
    auto conn = db::Connection::Open(path_);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec("UPDATE objects SET attributes = '{\"broken'"));
  }
  EXPECT_THAT(cat_->GetObject(bucket_, "k"), StatusIs(StatusCode::kCorruption));
}

// --- conditional writes ------------------------------------------------------------------

TEST_F(CatalogTest, IfNoneMatchAny) {
  WriteCondition cond;
  cond.if_none_match_any = true;
  ASSERT_OK(cat_->PutObject(MakeObject("k", {"first"}, "e1"), cond));
  EXPECT_THAT(cat_->PutObject(MakeObject("k", {"second"}, "e2"), cond), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(cat_->GetObject(bucket_, "k")->etag, "e1");
  // The refused write left nothing behind: its blob is the caller's to discard.
  EXPECT_TRUE(Garbage().empty());
  EXPECT_FALSE(*cat_->IsBlobReferenced("second"));
}

TEST_F(CatalogTest, IfMatchEtag) {
  WriteCondition cond;
  cond.if_match_etag = "e1";
  EXPECT_THAT(cat_->PutObject(MakeObject("k", {}, "e0"), cond), StatusIs(StatusCode::kNotFound));
  ASSERT_OK(cat_->PutObject(MakeObject("k", {}, "e1")));
  ASSERT_OK(cat_->PutObject(MakeObject("k", {}, "e2"), cond));
  EXPECT_THAT(cat_->PutObject(MakeObject("k", {}, "e3"), cond), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(cat_->GetObject(bucket_, "k")->etag, "e2");
  WriteCondition any;
  any.if_match_etag = "*";
  ASSERT_OK(cat_->PutObject(MakeObject("k", {}, "e4"), any));
  EXPECT_THAT(cat_->PutObject(MakeObject("other", {}, "e4"), any), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(cat_->GetObject(bucket_, "k")->etag, "e4");
}

TEST_F(CatalogTest, CompleteUploadHonoursConditionAndKeepsUploadOnFailure) {
  Put("k");
  ASSERT_OK(cat_->CreateUpload(MakeUpload("k", "up")));
  ASSERT_OK(cat_->PutPart("up", MakePart(1, "p1")));
  WriteCondition cond;
  cond.if_none_match_any = true;
  ObjectRecord obj = MakeObject("k", {"p1"});
  obj.key_info = MakeUpload("k", "up").key_info;  // the upload's data key becomes the object's
  EXPECT_THAT(cat_->CompleteUpload("up", obj, cond), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_OK(cat_->GetUpload("up"));
  EXPECT_OK(cat_->CompleteUpload("up", obj));
}

// --- uploads -----------------------------------------------------------------------------

TEST_F(CatalogTest, UploadLifecycleWithPartReplacement) {
  UploadRecord u = MakeUpload("big.bin", "up1", 42);
  ASSERT_OK(cat_->CreateUpload(u));
  EXPECT_THAT(cat_->CreateUpload(u), StatusIs(StatusCode::kAlreadyExists));
  auto got = cat_->GetUpload("up1");
  ASSERT_OK(got);
  EXPECT_EQ(got->key, "big.bin");
  EXPECT_EQ(got->bucket_id, bucket_);
  EXPECT_EQ(got->initiated, 42);
  EXPECT_EQ(got->attributes, u.attributes);
  EXPECT_EQ(got->key_info.tenant_key_version, 2u);
  EXPECT_EQ(got->key_info.wrapped_data_key, u.key_info.wrapped_data_key);

  for (uint32_t n : {3u, 1u, 2u, 5u}) {
    ASSERT_OK(cat_->PutPart("up1", MakePart(n, "blob" + std::to_string(n))));
  }
  ASSERT_OK(cat_->PutPart("up1", MakePart(2, "blob2-again")));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"blob2"}));
  EXPECT_THAT(cat_->PutPart("up1", MakePart(0, "x")), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(cat_->PutPart("up1", MakePart(10001, "x")), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(cat_->PutPart("nope", MakePart(1, "x")), StatusIs(StatusCode::kNotFound));

  auto parts = cat_->ListParts("up1", 0, 1000);
  ASSERT_OK(parts);
  ASSERT_EQ(parts->size(), 4u);
  EXPECT_EQ((*parts)[0].part_number, 1u);
  EXPECT_EQ((*parts)[1].blob_id, "blob2-again");
  EXPECT_EQ((*parts)[1].etag, "etag2");
  EXPECT_EQ((*parts)[1].size, 5u * 1024 * 1024);
  EXPECT_EQ((*parts)[1].last_modified, 77);
  EXPECT_EQ((*parts)[1].attributes.at("checksum-crc32"), "AAAAAA==");
  parts = cat_->ListParts("up1", 2, 1);
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].part_number, 3u);
  EXPECT_TRUE(cat_->ListParts("up1", 5, 10)->empty());
  EXPECT_TRUE(cat_->ListParts("up1", 0, 0)->empty());
  EXPECT_THAT(cat_->ListParts("nope", 0, 10), StatusIs(StatusCode::kNotFound));
}

TEST_F(CatalogTest, CompleteWithSubsetOfPartsCollectsTheRest) {
  ASSERT_OK(cat_->PutObject(MakeObject("big", {"previous"})));
  ASSERT_OK(cat_->CreateUpload(MakeUpload("big", "up1")));
  for (uint32_t n = 1; n <= 4; ++n) {
    ASSERT_OK(cat_->PutPart("up1", MakePart(n, "p" + std::to_string(n))));
  }
  ObjectRecord obj = MakeObject("big", {"p1", "p3"}, "abcd-2");
  obj.parts[1].part_number = 3;
  obj.key_info = MakeUpload("big", "up1").key_info;

  ObjectRecord stranger = obj;
  stranger.parts[1].blob_id = "not-a-part";
  EXPECT_THAT(cat_->CompleteUpload("up1", stranger), StatusIs(StatusCode::kInvalidArgument));
  ObjectRecord elsewhere = obj;
  elsewhere.key = "other";
  EXPECT_THAT(cat_->CompleteUpload("up1", elsewhere), StatusIs(StatusCode::kInvalidArgument));

  ASSERT_OK(cat_->CompleteUpload("up1", obj));
  EXPECT_THAT(cat_->GetUpload("up1"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->CompleteUpload("up1", obj), StatusIs(StatusCode::kNotFound));
  auto got = cat_->GetObject(bucket_, "big");
  ASSERT_OK(got);
  ASSERT_EQ(got->parts.size(), 2u);
  EXPECT_EQ(got->parts[0].blob_id, "p1");
  EXPECT_EQ(got->parts[1].part_number, 3u);
  EXPECT_EQ(Garbage(), (std::set<std::string>{"previous", "p2", "p4"}));
  EXPECT_TRUE(*cat_->IsBlobReferenced("p3"));
}

TEST_F(CatalogTest, AbortCollectsAllParts) {
  ASSERT_OK(cat_->CreateUpload(MakeUpload("k", "up1")));
  ASSERT_OK(cat_->PutPart("up1", MakePart(1, "p1")));
  ASSERT_OK(cat_->PutPart("up1", MakePart(2, "p2")));
  EXPECT_TRUE(*cat_->IsBlobReferenced("p1"));
  ASSERT_OK(cat_->AbortUpload("up1"));
  EXPECT_THAT(cat_->AbortUpload("up1"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(cat_->GetUpload("up1"), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"p1", "p2"}));
  EXPECT_THAT(cat_->PutPart("up1", MakePart(3, "late")), StatusIs(StatusCode::kNotFound));
}

TEST_F(CatalogTest, GarbageIsForgottenAndListedOldestFirst) {
  ASSERT_OK(cat_->PutObject(MakeObject("a", {"g1"})));
  ASSERT_OK(cat_->PutObject(MakeObject("b", {"g2"})));
  ASSERT_OK(cat_->DeleteObject(bucket_row_, "b"));
  clock_.Set(clock_.Now() + milliseconds(5));
  ASSERT_OK(cat_->DeleteObject(bucket_row_, "a"));
  auto g = cat_->ListGarbage(10);
  ASSERT_OK(g);
  ASSERT_EQ(g->size(), 2u);
  EXPECT_EQ((*g)[0].blob_id, "g2");
  EXPECT_EQ((*g)[1].blob_id, "g1");
  EXPECT_EQ((*g)[1].since, (*g)[0].since + 5);
  EXPECT_EQ(cat_->ListGarbage(1)->size(), 1u);
  ASSERT_OK(cat_->ForgetGarbage({"g2", "unknown"}));
  EXPECT_EQ(Garbage(), (std::set<std::string>{"g1"}));
  ASSERT_OK(cat_->ForgetGarbage({}));
}

TEST_F(CatalogTest, ListUploadsOrderMarkersPrefixDelimiter) {
  // Same key: ordered by initiation time, then id.
  ASSERT_OK(cat_->CreateUpload(MakeUpload("b", "u-z", 10)));
  ASSERT_OK(cat_->CreateUpload(MakeUpload("b", "u-a", 20)));
  ASSERT_OK(cat_->CreateUpload(MakeUpload("b", "u-m", 20)));
  ASSERT_OK(cat_->CreateUpload(MakeUpload("a", "u-1", 99)));
  ASSERT_OK(cat_->CreateUpload(MakeUpload("dir/x", "u-2", 1)));
  ASSERT_OK(cat_->CreateUpload(MakeUpload("dir/y", "u-3", 1)));
  ASSERT_OK(cat_->CreateUpload(MakeUpload("e", "u-4", 1)));

  auto ids = [](const UploadListPage& p) {
    std::vector<std::string> out;
    for (const auto& u : p.uploads) {
      out.push_back(u.key + "/" + u.upload_id);
    }
    return out;
  };
  UploadListQuery q;
  auto page = cat_->ListUploads(bucket_, q);
  ASSERT_OK(page);
  EXPECT_EQ(ids(*page),
            (std::vector<std::string>{"a/u-1", "b/u-z", "b/u-a", "b/u-m", "dir/x/u-2", "dir/y/u-3", "e/u-4"}));
  EXPECT_FALSE(page->is_truncated);

  q.max_uploads = 2;
  page = cat_->ListUploads(bucket_, q);
  EXPECT_EQ(ids(*page), (std::vector<std::string>{"a/u-1", "b/u-z"}));
  EXPECT_TRUE(page->is_truncated);
  EXPECT_EQ(page->next_key_marker, "b");
  EXPECT_EQ(page->next_upload_id_marker, "u-z");

  // Resume inside key "b".
  q.key_marker = page->next_key_marker;
  q.upload_id_marker = page->next_upload_id_marker;
  q.max_uploads = 1000;
  page = cat_->ListUploads(bucket_, q);
  EXPECT_EQ(ids(*page), (std::vector<std::string>{"b/u-a", "b/u-m", "dir/x/u-2", "dir/y/u-3", "e/u-4"}));

  // A key marker alone skips every upload of that key.
  q.upload_id_marker.clear();
  page = cat_->ListUploads(bucket_, q);
  EXPECT_EQ(ids(*page), (std::vector<std::string>{"dir/x/u-2", "dir/y/u-3", "e/u-4"}));

  // A marker upload that has gone away: the key's uploads with greater ids follow.
  q.upload_id_marker = "u-b";
  page = cat_->ListUploads(bucket_, q);
  EXPECT_EQ(ids(*page), (std::vector<std::string>{"b/u-z", "b/u-m", "dir/x/u-2", "dir/y/u-3", "e/u-4"}));

  // Prefix and delimiter.
  UploadListQuery d;
  d.delimiter = "/";
  page = cat_->ListUploads(bucket_, d);
  EXPECT_EQ(ids(*page), (std::vector<std::string>{"a/u-1", "b/u-z", "b/u-a", "b/u-m", "e/u-4"}));
  EXPECT_EQ(page->common_prefixes, (std::vector<std::string>{"dir/"}));
  d.prefix = "dir/";
  page = cat_->ListUploads(bucket_, d);
  EXPECT_EQ(ids(*page), (std::vector<std::string>{"dir/x/u-2", "dir/y/u-3"}));
  EXPECT_TRUE(page->common_prefixes.empty());

  // A page that ends on a common prefix resumes after it.
  d.prefix.clear();
  d.max_uploads = 5;
  page = cat_->ListUploads(bucket_, d);
  EXPECT_TRUE(page->is_truncated);
  EXPECT_EQ(page->next_key_marker, "dir/");
  EXPECT_EQ(page->next_upload_id_marker, "");
  d.key_marker = page->next_key_marker;
  page = cat_->ListUploads(bucket_, d);
  EXPECT_EQ(ids(*page), (std::vector<std::string>{"e/u-4"}));
  EXPECT_TRUE(page->common_prefixes.empty());
  EXPECT_FALSE(page->is_truncated);

  d = {};
  d.max_uploads = 0;
  page = cat_->ListUploads(bucket_, d);
  EXPECT_TRUE(page->uploads.empty());
  EXPECT_TRUE(page->is_truncated);
}

TEST_F(CatalogTest, ListUploadsPagesThroughEverything) {
  std::vector<std::string> expected;
  for (int i = 0; i < 30; ++i) {
    const std::string key = "k" + std::to_string(i % 7);
    const std::string id = "u" + std::to_string(100 + i);
    ASSERT_OK(cat_->CreateUpload(MakeUpload(key, id, i % 3)));
  }
  UploadListQuery all;
  auto full = cat_->ListUploads(bucket_, all);
  ASSERT_OK(full);
  ASSERT_EQ(full->uploads.size(), 30u);
  for (const auto& u : full->uploads) {
    expected.push_back(u.upload_id);
  }
  for (uint32_t size = 1; size <= 8; ++size) {
    UploadListQuery q;
    q.max_uploads = size;
    std::vector<std::string> got;
    for (int guard = 0; guard < 100; ++guard) {
      auto page = cat_->ListUploads(bucket_, q);
      ASSERT_OK(page);
      for (const auto& u : page->uploads) {
        got.push_back(u.upload_id);
      }
      if (!page->is_truncated) {
        break;
      }
      q.key_marker = page->next_key_marker;
      q.upload_id_marker = page->next_upload_id_marker;
    }
    EXPECT_EQ(got, expected) << "page size " << size;
  }
}

// --- listing -----------------------------------------------------------------------------

TEST_F(CatalogTest, ListWithPrefix) {
  for (const char* k : {"a", "ab", "abc", "abd/x", "b", "aa"}) {
    Put(k);
  }
  ListQuery q;
  q.prefix = "ab";
  auto page = cat_->ListObjects(bucket_, q);
  ASSERT_OK(page);
  EXPECT_EQ(Flatten(*page), (std::vector<std::string>{"ab", "abc", "abd/x"}));
  EXPECT_FALSE(page->is_truncated);
  ASSERT_TRUE(page->entries[0].object.has_value());
  EXPECT_TRUE(page->entries[0].object->parts.empty());
  EXPECT_EQ(page->entries[0].object->size, 10u);
  EXPECT_EQ(page->entries[0].object->etag, "e");
  q.prefix = "zzz";
  EXPECT_TRUE(cat_->ListObjects(bucket_, q)->entries.empty());
}

TEST_F(CatalogTest, ListWithDelimiterGroupsCommonPrefixes) {
  for (const char* k : {"a/1", "a/2", "a/b/3", "b", "c/1", "c0", "d/"}) {
    Put(k);
  }
  ListQuery q;
  q.delimiter = "/";
  auto page = cat_->ListObjects(bucket_, q);
  ASSERT_OK(page);
  EXPECT_EQ(Flatten(*page), (std::vector<std::string>{"P:a/", "b", "P:c/", "c0", "P:d/"}));
  q.prefix = "a/";
  EXPECT_EQ(Flatten(*cat_->ListObjects(bucket_, q)), (std::vector<std::string>{"a/1", "a/2", "P:a/b/"}));
  q.prefix = "a";
  EXPECT_EQ(Flatten(*cat_->ListObjects(bucket_, q)), (std::vector<std::string>{"P:a/"}));
  // Multi-character delimiter.
  ListQuery m;
  m.delimiter = "/b/";
  EXPECT_EQ(Flatten(*cat_->ListObjects(bucket_, m)),
            (std::vector<std::string>{"a/1", "a/2", "P:a/b/", "b", "c/1", "c0", "d/"}));
}

TEST_F(CatalogTest, StartAfterInsideCommonPrefixDoesNotRepeatIt) {
  for (const char* k : {"a/1", "a/2", "a/3", "b/1", "c"}) {
    Put(k);
  }
  ListQuery q;
  q.delimiter = "/";
  q.max_keys = 1;
  auto page = cat_->ListObjects(bucket_, q);
  EXPECT_EQ(Flatten(*page), (std::vector<std::string>{"P:a/"}));
  EXPECT_TRUE(page->is_truncated);
  EXPECT_EQ(page->next_marker, "a/");
  q.start_after = page->next_marker;
  page = cat_->ListObjects(bucket_, q);
  EXPECT_EQ(Flatten(*page), (std::vector<std::string>{"P:b/"}));
  // A marker that is a key under a common prefix skips the prefix as well.
  q.start_after = "a/2";
  q.max_keys = 10;
  EXPECT_EQ(Flatten(*cat_->ListObjects(bucket_, q)), (std::vector<std::string>{"P:b/", "c"}));
  // Without a delimiter the same marker resumes inside.
  q.delimiter.clear();
  EXPECT_EQ(Flatten(*cat_->ListObjects(bucket_, q)), (std::vector<std::string>{"a/3", "b/1", "c"}));
  // A marker before the prefix, and one after everything.
  q.prefix = "b";
  q.start_after = "a";
  EXPECT_EQ(Flatten(*cat_->ListObjects(bucket_, q)), (std::vector<std::string>{"b/1"}));
  q.start_after = "zzz";
  EXPECT_TRUE(cat_->ListObjects(bucket_, q)->entries.empty());
}

TEST_F(CatalogTest, MaxKeysZero) {
  ListQuery q;
  q.max_keys = 0;
  auto page = cat_->ListObjects(bucket_, q);
  EXPECT_TRUE(page->entries.empty());
  EXPECT_FALSE(page->is_truncated);
  Put("x");
  page = cat_->ListObjects(bucket_, q);
  EXPECT_TRUE(page->entries.empty());
  EXPECT_TRUE(page->is_truncated);
  q.prefix = "y";
  EXPECT_FALSE(cat_->ListObjects(bucket_, q)->is_truncated);
}

TEST_F(CatalogTest, PaginationOf1500KeysEqualsFullSortedList) {
  std::vector<std::string> keys;
  std::mt19937 rng(7);
  for (int i = 0; i < 1500; ++i) {
    keys.push_back("obj/" + std::to_string(rng() % 100000) + "/" + std::to_string(i));
  }
  for (const auto& k : keys) {
    Put(k);
  }
  std::sort(keys.begin(), keys.end());
  ListQuery q;
  q.max_keys = 1000;
  auto first = cat_->ListObjects(bucket_, q);
  ASSERT_OK(first);
  EXPECT_EQ(first->entries.size(), 1000u);
  EXPECT_TRUE(first->is_truncated);
  EXPECT_EQ(first->next_marker, keys[999]);
  for (uint32_t size : {1000u, 333u, 7u}) {
    q.max_keys = size;
    EXPECT_EQ(ListAllPaged(q), keys) << "page size " << size;
  }
  EXPECT_EQ(*cat_->CountObjects(bucket_), 1500u);
}

TEST_F(CatalogTest, KeysSortInUtf8ByteOrder) {
  const std::vector<std::string> keys = {"b",
                                         "a",
                                         "\xc3\xa9",
                                         "\x7f",
                                         "a b",
                                         "a/b",
                                         "a!",
                                         "A",
                                         "a",
                                         "~",
                                         "\xf0\x9f\x98\x80",
                                         "\xe2\x82\xac",
                                         "a/",
                                         "a0",
                                         std::string("\x01", 1)};
  std::set<std::string> unique(keys.begin(), keys.end());
  for (const auto& k : unique) {
    Put(k);
  }
  std::vector<std::string> expected(unique.begin(), unique.end());  // std::string: unsigned bytes
  EXPECT_EQ(expected.front(), "\x01");
  EXPECT_EQ(expected.back(), "\xf0\x9f\x98\x80");
  ListQuery q;
  EXPECT_EQ(Flatten(*cat_->ListObjects(bucket_, q)), expected);
  q.max_keys = 2;
  EXPECT_EQ(ListAllPaged(q), expected);
}

TEST_F(CatalogTest, KeysWithControlAndFFBytes) {
  const std::vector<std::string> keys = {std::string("\x01", 1),        std::string("a\x01", 2),
                                         std::string("a\xff", 2),       std::string("a\xff/x", 4),
                                         std::string("a\xff/y", 4),     std::string("a\xff\xff", 3),
                                         std::string("a\xff\xff/z", 5), "b",
                                         std::string("\xff", 1),        std::string("\xff/1", 3),
                                         std::string("\xff\xff", 2),    std::string("\xff\xff/2", 4)};
  for (const auto& k : keys) {
    Put(k);
  }
  std::set<std::string> all(keys.begin(), keys.end());
  ListQuery q;
  q.delimiter = "/";
  EXPECT_EQ(Flatten(*cat_->ListObjects(bucket_, q)),
            (std::vector<std::string>{"\x01", "a\x01", "a\xff", "P:a\xff/", "a\xff\xff", "P:a\xff\xff/", "b", "\xff",
                                      "P:\xff/", "\xff\xff", "P:\xff\xff/"}));
  // A delimiter made of 0xFF: the common prefix "\xff" has no successor, so the walk ends there.
  q.delimiter = "\xff";
  EXPECT_EQ(Flatten(*cat_->ListObjects(bucket_, q)),
            (std::vector<std::string>{"\x01", "a\x01", "P:a\xff", "b", "P:\xff"}));
  q.prefix = "a";
  EXPECT_EQ(Flatten(*cat_->ListObjects(bucket_, q)), (std::vector<std::string>{"a\x01", "P:a\xff"}));
  for (uint32_t size : {1u, 2u, 3u}) {
    ListQuery p;
    p.delimiter = "/";
    p.max_keys = size;
    bool truncated = false;
    ListQuery ref = p;
    ref.max_keys = 1000;
    EXPECT_EQ(ListAllPaged(p), ReferenceList(all, ref, &truncated));
  }
}

TEST_F(CatalogTest, ListingMatchesReferenceOnRandomQueries) {
  // Keys over a small alphabet that includes the delimiter, 0x01, 0xFF and a UTF-8 sequence,
  // so prefixes, common prefixes and markers collide in every possible way.
  const std::vector<std::string> alphabet = {"a", "b", "/", "\x01", "\xff", "\xc3\xa9"};
  std::mt19937 rng(12345);
  auto random_string = [&](size_t max_len) {
    std::string s;
    const size_t len = rng() % (max_len + 1);
    for (size_t i = 0; i < len; ++i) {
      s += alphabet[rng() % alphabet.size()];
    }
    return s;
  };
  std::set<std::string> keys;
  while (keys.size() < 300) {
    std::string k = random_string(5);
    if (!k.empty()) {
      keys.insert(k);
    }
  }
  for (const auto& k : keys) {
    Put(k);
  }
  for (int iter = 0; iter < 400; ++iter) {
    ListQuery q;
    q.prefix = random_string(2);
    q.delimiter = rng() % 3 == 0 ? "" : (rng() % 4 == 0 ? alphabet[rng() % alphabet.size()] : "/");
    q.start_after = rng() % 2 == 0 ? "" : random_string(4);
    q.max_keys = rng() % 12;
    bool want_truncated = false;
    const auto want = ReferenceList(keys, q, &want_truncated);
    auto page = cat_->ListObjects(bucket_, q);
    ASSERT_OK(page);
    ASSERT_EQ(Flatten(*page), want) << "iteration " << iter;
    ASSERT_EQ(page->is_truncated, want_truncated) << "iteration " << iter;
    if (q.max_keys > 0) {
      ListQuery all = q;
      all.max_keys = 100000;
      bool unused = false;
      ASSERT_EQ(ListAllPaged(q), ReferenceList(keys, all, &unused)) << "iteration " << iter;
    }
  }
}

// --- persistence and concurrency ---------------------------------------------------------

TEST_F(CatalogTest, DataSurvivesReopen) {
  ASSERT_OK(cat_->PutObject(MakeObject("k", {"b1", "b2"})));
  ASSERT_OK(cat_->CreateUpload(MakeUpload("m", "up")));
  ASSERT_OK(cat_->PutPart("up", MakePart(1, "p1")));
  ASSERT_OK(cat_->DeleteObject(bucket_row_, "k"));
  Put("kept");
  Reopen();
  EXPECT_EQ(cat_->GetBucket("bucket")->id, bucket_);
  EXPECT_OK(cat_->GetObject(bucket_, "kept"));
  EXPECT_THAT(cat_->GetObject(bucket_, "k"), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(cat_->ListParts("up", 0, 10)->size(), 1u);
  EXPECT_EQ(Garbage(), (std::set<std::string>{"b1", "b2"}));
}

TEST_F(CatalogTest, ConcurrentPutsAndListings) {
  constexpr int kWriters = 4;
  constexpr int kPerWriter = 40;
  constexpr int kReaders = 6;
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        const std::string key = "w" + std::to_string(w) + "/" + std::to_string(1000 + i);
        if (!cat_->PutObject(MakeObject(key)).ok()) {
          ++failures;
        }
        if (i % 3 == 0 && !cat_->PutObject(MakeObject(key, {}, "v2")).ok()) {
          ++failures;
        }
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      size_t last_seen = 0;
      while (!done.load()) {
        ListQuery q;
        q.delimiter = r % 2 == 0 ? "/" : "";
        q.prefix = r % 2 == 0 ? "" : "w1/";
        auto page = cat_->ListObjects(bucket_, q);
        if (!page.ok()) {
          ++failures;
          continue;
        }
        if (!std::is_sorted(page->entries.begin(), page->entries.end(), [](const auto& a, const auto& b) {
              return (a.object ? a.object->key : a.common_prefix) < (b.object ? b.object->key : b.common_prefix);
            })) {
          ++failures;
        }
        if (r % 2 == 1) {
          // Committed objects never disappear from a later snapshot.
          if (page->entries.size() < last_seen) {
            ++failures;
          }
          last_seen = page->entries.size();
        }
        if (!cat_->GetBucket("bucket").ok()) {
          ++failures;
        }
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) {
    threads[w].join();
  }
  done = true;
  for (size_t i = kWriters; i < threads.size(); ++i) {
    threads[i].join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(*cat_->CountObjects(bucket_), static_cast<uint64_t>(kWriters * kPerWriter));
  ListQuery q;
  q.max_keys = 1000;
  EXPECT_EQ(ListAllPaged(q).size(), static_cast<size_t>(kWriters * kPerWriter));
  EXPECT_EQ(Garbage().size(), static_cast<size_t>(kWriters * ((kPerWriter + 2) / 3)));
}

// Writes that meet in one group commit: each one's outcome is its own. A write whose condition
// fails (or whose upload is gone) undoes only itself; every write reported OK is there after a
// reopen, and the garbage table holds exactly the blobs the successful writes replaced.
TEST_F(CatalogTest, GroupedWritesFailAlone) {
  constexpr int kThreads = 16;
  constexpr int kRounds = 30;
  // Each thread owns one key; every round it creates the key with If-None-Match: * (succeeds
  // only when the key is absent), deletes it, and tries a create on a key that always exists.
  ASSERT_OK(cat_->PutObject(MakeObject("always-there", {"blob-keeper"})));
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = "t" + std::to_string(t);
      WriteCondition create_only;
      create_only.if_none_match_any = true;
      for (int r = 0; r < kRounds; ++r) {
        if (!cat_->PutObject(MakeObject(key), create_only).ok()) {
          ++unexpected;
        }
        if (cat_->PutObject(MakeObject(key), create_only).code() != StatusCode::kFailedPrecondition) {
          ++unexpected;
        }
        if (cat_->PutObject(MakeObject("always-there"), create_only).code() != StatusCode::kFailedPrecondition) {
          ++unexpected;
        }
        if (cat_->PutPart("no-such-upload", PartRecord{1, "blob-x", 1, "e", 1, {}}).code() != StatusCode::kNotFound) {
          ++unexpected;
        }
        if (r + 1 < kRounds && !cat_->DeleteObject(bucket_row_, key).ok()) {
          ++unexpected;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(unexpected.load(), 0);
  Reopen();
  EXPECT_EQ(*cat_->CountObjects(bucket_), static_cast<uint64_t>(kThreads + 1));
  auto keeper = cat_->GetObject(bucket_, "always-there");
  ASSERT_OK(keeper);
  EXPECT_EQ(keeper->parts.at(0).blob_id, "blob-keeper");
  // Every deleted version's blob, and nothing else, waits as garbage.
  EXPECT_EQ(Garbage().size(), static_cast<size_t>(kThreads * (kRounds - 1)));
}

}  // namespace
}  // namespace coffre::catalog
