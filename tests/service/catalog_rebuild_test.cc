#include "coffre/service/catalog_rebuild.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>

#include "coffre/service/object_service.h"
#include "support/fake_recorder.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"
#include "support/test_data.h"

namespace coffre::service {
namespace {

using test_support::FakeRecorder;
using test_support::Pattern;

// Records like FakeRecorder, and first runs a hook on the first event it matches: a point inside a
// service call (between its record and its catalog commit) where a test makes another
// operation happen.
class HookRecorder final : public audit::Recorder {
 public:
  void RunOnce(std::function<bool(const audit::Event&)> matches, std::function<void()> hook) {
    std::lock_guard lock(mu_);
    matches_ = std::move(matches);
    hook_ = std::move(hook);
  }
  bool ran() {
    std::lock_guard lock(mu_);
    return ran_;
  }
  Status Record(const audit::Event& event) override {
    std::function<void()> hook;
    {
      std::lock_guard lock(mu_);
      if (hook_ && matches_(event)) {
        hook = std::move(hook_);
        hook_ = nullptr;
        ran_ = true;
      }
    }
    if (hook) hook();  // outside the lock: the hook records events of its own
    return recorded_.Record(event);
  }

 private:
  std::mutex mu_;
  std::function<bool(const audit::Event&)> matches_;
  std::function<void()> hook_;
  bool ran_ = false;
  FakeRecorder recorded_;
};

// Objects written through the service; the catalog then lost and rebuilt from the blob store and
// the keystore into a fresh one; the objects read back through a service over the new catalog.
class CatalogRebuildTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("rebuild"));
    options_.segment_size = 4096;
    options_.clock = &clock_;
    options_.min_part_size = 5000;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, options_);
    auto t = keys_->CreateTenant("acme");
    ASSERT_OK(t);
    tenant_ = t->id;
    auto b = service_->CreateBucket(tenant_, "dossiers");
    ASSERT_OK(b);
    bucket_ = *b;
  }

  // A PUT as S3 makes it: the length declared up front (a version 2 blob), or not (version 1).
  void Put(const std::string& key, const Bytes& data, bool declared = true, catalog::Attributes attributes = {},
           bool same_millisecond = false) {
    // Each write a second after the last, unless asked otherwise.
    if (!same_millisecond) clock_.Set(clock_.Now() + std::chrono::seconds(1));
    auto w = service_->BeginPut(bucket_, key, std::move(attributes), {crypto::ChecksumAlgorithm::kSha256}, nullptr,
                                declared ? std::optional<uint64_t>(data.size()) : std::nullopt);
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(data));
    ASSERT_OK((*w)->Commit({}));
  }

  std::string UploadPart(const std::string& key, const std::string& upload, uint32_t n, const Bytes& data) {
    auto w = service_->BeginPart(bucket_, key, upload, n, {}, nullptr, data.size());
    EXPECT_OK(w);
    if (!w.ok()) return "";
    EXPECT_OK((*w)->Write(data));
    auto r = (*w)->Commit({});
    EXPECT_OK(r);
    return r.ok() ? r->etag : "";
  }

  // The catalog is lost: a new, empty one is rebuilt.
  Result<RebuildReport> LoseAndRebuild() {
    service_.reset();
    COFFRE_ASSIGN_OR_RETURN(fresh_, catalog::Catalog::Open(dir_ + "/rebuilt.db"));
    audit::RequestInfo request;
    request.action = "test:rebuild";
    return RebuildCatalog(*keys_, *blobs_, *fresh_, dir_ + "/rebuild-scratch.db", &recorder_, request);
  }

  Bytes GetFrom(ObjectService& service, const catalog::Bucket& bucket, const std::string& key) {
    auto r = service.OpenObject(bucket, key);
    EXPECT_OK(r);
    if (!r.ok()) return {};
    Bytes out;
    Bytes buf(3000);
    for (;;) {
      auto n = (*r)->Read(buf);
      EXPECT_OK(n);
      if (!n.ok() || *n == 0) break;
      out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    }
    return out;
  }

  FixedClock clock_{std::chrono::system_clock::now()};
  ServiceOptions options_;
  std::unique_ptr<ObjectService> service_;
  std::unique_ptr<catalog::Catalog> fresh_;
  FakeRecorder recorder_;
  std::string tenant_;
  catalog::Bucket bucket_;
};

TEST_F(CatalogRebuildTest, EveryObjectComesBackWithItsRowAndItsBytes) {
  Put("prêts/2026/bilan.pdf", Pattern(9000, 1), true, {{"content-type", "application/pdf"}, {"x-amz-meta-a", "b"}});
  Put("empty", {});
  Put("doc", Pattern(100, 2));
  Put("doc", Pattern(200, 3));  // the first version stays until it is collected: superseded
  auto upload = service_->CreateUpload(bucket_, "big", {{"x-amz-meta-n", "2"}});
  ASSERT_OK(upload);
  std::vector<UploadPartRef> refs = {{1, UploadPart("big", *upload, 1, Pattern(6000, 4))},
                                     {2, UploadPart("big", *upload, 2, Pattern(123, 5))}};
  ASSERT_OK(service_->CompleteUpload(bucket_, "big", *upload, refs, {}));
  auto unfinished = service_->CreateUpload(bucket_, "unfinished", {});
  ASSERT_OK(unfinished);
  UploadPart("unfinished", *unfinished, 1, Pattern(10, 6));
  std::map<std::string, catalog::ObjectRecord> before;
  for (const std::string key : {"prêts/2026/bilan.pdf", "empty", "doc", "big"}) {
    auto row = catalog_->GetObject(bucket_.id, key);
    ASSERT_OK(row);
    before[key] = *row;
  }

  // A scratch file a rebuild cut short left behind is started afresh, and removed at the end.
  std::filesystem::create_directories(dir_);
  { std::ofstream(dir_ + "/rebuild-scratch.db") << "left by an interrupted rebuild"; }
  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/rebuild-scratch.db"));
  EXPECT_EQ(report->blobs, 8u);
  EXPECT_EQ(report->buckets, 1u);
  EXPECT_EQ(report->objects, 4u);
  EXPECT_EQ(report->multipart_objects, 1u);
  EXPECT_EQ(report->superseded, 1u);
  EXPECT_EQ(report->unfinished_parts, 1u);
  EXPECT_TRUE(report->unreadable.empty());
  EXPECT_TRUE(report->incomplete.empty());

  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  EXPECT_EQ(bucket->tenant_id, tenant_);
  ObjectService rebuilt(*fresh_, *keys_, *blobs_, options_);
  for (const auto& [key, old] : before) {
    SCOPED_TRACE(key);
    auto row = fresh_->GetObject(bucket->id, key);
    ASSERT_OK(row);
    EXPECT_EQ(row->object_id, old.object_id);
    EXPECT_EQ(row->size, old.size);
    EXPECT_EQ(row->etag, old.etag);
    EXPECT_EQ(row->last_modified, old.last_modified);
    EXPECT_EQ(row->attributes, old.attributes);
    EXPECT_EQ(row->manifest_blob_id, old.manifest_blob_id);
    ASSERT_EQ(row->parts.size(), old.parts.size());
    for (size_t i = 0; i < old.parts.size(); ++i) EXPECT_EQ(row->parts[i].blob_id, old.parts[i].blob_id);
    // A new wrap of the same key, under the row's binding: the object reads through the new row.
    EXPECT_EQ(row->key_info.tenant_key_version, old.key_info.tenant_key_version);
  }
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "prêts/2026/bilan.pdf"), Pattern(9000, 1));
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "empty"), Bytes());
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "doc"), Pattern(200, 3));
  Bytes big = Pattern(6000, 4);
  const Bytes tail = Pattern(123, 5);
  big.insert(big.end(), tail.begin(), tail.end());
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "big"), big);

  // Each blob's key was opened only after its record, and each row's key wrapped after one.
  size_t unwraps = 0, rewraps = 0;
  for (const auto& e : recorder_.events()) {
    EXPECT_EQ(e.request.action, "test:rebuild");
    if (e.operation == audit::Operation::kDataKeyUnwrap) ++unwraps;
    if (e.operation == audit::Operation::kDataKeyRewrap) ++rewraps;
  }
  EXPECT_EQ(unwraps, 8u);
  EXPECT_EQ(rewraps, 4u);
}

// A blob header names its key by id alone; for a named key the keystore knows whose it is, and the
// object comes back under that key. One whose named key was destroyed is reported, never read.
TEST_F(CatalogRebuildTest, ObjectsUnderNamedKeysComeBackUnderTheirKeys) {
  auto key = keys_->CreateNamedKey(tenant_, "customer-1");
  auto doomed = keys_->CreateNamedKey(tenant_, "customer-2");
  ASSERT_OK(key);
  ASSERT_OK(doomed);
  for (const auto& [name, named] : {std::pair{"kept", key->key_id}, std::pair{"erased", doomed->key_id}}) {
    auto w = service_->BeginPut(bucket_, name, {}, {}, nullptr, 5, {}, {}, named);
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(Pattern(5, 7)));
    ASSERT_OK((*w)->Commit({}));
  }
  ASSERT_OK(keys_->DestroyNamedKey(doomed->ref()));
  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_EQ(report->objects, 1u);
  // No version of its key exists any more, and no key copy opens it.
  EXPECT_EQ(report->without_key.size(), 1u);
  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  auto row = fresh_->GetObject(bucket->id, "kept");
  ASSERT_OK(row);
  EXPECT_EQ(HexEncode(row->key_info.tenant_key_id), key->key_id);
  ObjectService rebuilt(*fresh_, *keys_, *blobs_, options_);
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "kept"), Pattern(5, 7));
}

// The clock does not move: every write has the same Last-Modified, and the write sequence sealed
// in each description decides which is the newest.
TEST_F(CatalogRebuildTest, WritesOfAKeyWithinOneMillisecondKeepTheirOrder) {
  for (int i = 0; i < 20; ++i) Put("same", Pattern(100 + static_cast<size_t>(i), 7), true, {}, i > 0);
  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_EQ(report->objects, 1u);
  EXPECT_EQ(report->superseded, 19u);
  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  ObjectService rebuilt(*fresh_, *keys_, *blobs_, options_);
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "same"), Pattern(119, 7));
}

// A versioned bucket's versions and delete markers come back in their order, the null version
// written before versioning among them; a null version overwritten while versioning was suspended
// does not.
TEST_F(CatalogRebuildTest, EveryVersionOfAVersionedBucketComesBack) {
  Put("dossier", Pattern(100, 1));  // the null version, overwritten later while suspended
  ASSERT_OK(service_->UpdateBucketSettings(bucket_, {{std::string(kVersioningSetting), std::string("Enabled")}}));
  bucket_ = *catalog_->GetBucket("dossiers");
  Put("dossier", Pattern(200, 2));
  Put("dossier", Pattern(300, 3));
  ASSERT_OK(service_->UpdateBucketSettings(bucket_, {{std::string(kVersioningSetting), std::string("Suspended")}}));
  bucket_ = *catalog_->GetBucket("dossiers");
  Put("dossier", Pattern(400, 4));  // replaces the first null version
  ASSERT_OK(service_->UpdateBucketSettings(bucket_, {{std::string(kVersioningSetting), std::string("Enabled")}}));
  bucket_ = *catalog_->GetBucket("dossiers");
  Put("dossier", Pattern(500, 5));
  // A deleted key: its delete marker comes back and keeps it deleted.
  Put("closed", Pattern(600, 6));
  ASSERT_OK(service_->DeleteObject(bucket_, "closed"));
  auto before = catalog_->ListObjectVersions(bucket_.id, {});
  ASSERT_OK(before);
  ASSERT_EQ(before->entries.size(), 6u);
  ASSERT_TRUE(before->entries[0].version->delete_marker);
  // A noncurrent version's tags, changed after it was written, come back with it.
  const std::string tagged = before->entries[4].version->version_id();
  ASSERT_OK(service_->SetObjectTags(bucket_, "dossier", {{"state", "archived"}}, nullptr, tagged));

  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_EQ(report->objects, 5u);
  EXPECT_EQ(report->delete_markers, 1u);
  EXPECT_EQ(report->superseded, 1u);
  EXPECT_EQ(report->versioned_buckets, 1u);
  EXPECT_EQ(report->locked_buckets, 0u);
  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  EXPECT_EQ(bucket->settings,
            (catalog::Attributes{{std::string(kVersioningSetting), std::string(kVersioningEnabled)}}));
  auto after = fresh_->ListObjectVersions(bucket->id, {});
  ASSERT_OK(after);
  ASSERT_EQ(after->entries.size(), before->entries.size());
  for (size_t i = 0; i < before->entries.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(after->entries[i].version->version_id(), before->entries[i].version->version_id());
    EXPECT_EQ(after->entries[i].version->etag, before->entries[i].version->etag);
    EXPECT_EQ(after->entries[i].version->delete_marker, before->entries[i].version->delete_marker);
    EXPECT_EQ(after->entries[i].is_latest, before->entries[i].is_latest);
  }
  EXPECT_THAT(fresh_->GetObject(bucket->id, "closed").status(), test_support::StatusIs(StatusCode::kNotFound));
  ObjectService rebuilt(*fresh_, *keys_, *blobs_, options_);
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "dossier"), Pattern(500, 5));
  auto null_version = rebuilt.OpenObject(*bucket, "dossier", nullptr, std::string(catalog::kNullVersionId));
  ASSERT_OK(null_version);
  EXPECT_EQ((*null_version)->info().size, 400u);
  auto archived = rebuilt.HeadObject(*bucket, "dossier", tagged);
  ASSERT_OK(archived);
  EXPECT_EQ(archived->tags, (catalog::Tags{{"state", "archived"}}));
  EXPECT_TRUE(rebuilt.HeadObject(*bucket, "dossier")->tags.empty());
}

TEST_F(CatalogRebuildTest, WhatCannotComeBackIsReported) {
  Put("v1", Pattern(100, 1), /*declared=*/false);  // a version 1 blob: no description
  Put("kept", Pattern(100, 2));
  auto upload = service_->CreateUpload(bucket_, "big", {});
  ASSERT_OK(upload);
  std::vector<UploadPartRef> refs = {{1, UploadPart("big", *upload, 1, Pattern(6000, 3))},
                                     {2, UploadPart("big", *upload, 2, Pattern(10, 4))}};
  ASSERT_OK(service_->CompleteUpload(bucket_, "big", *upload, refs, {}));
  auto big = catalog_->GetObject(bucket_.id, "big");
  ASSERT_OK(big);
  ASSERT_OK(blobs_->Remove(big->parts[1].blob_id));  // a part lost upstream
  auto v1 = catalog_->GetObject(bucket_.id, "v1");
  ASSERT_OK(v1);

  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_EQ(report->objects, 1u);
  ASSERT_EQ(report->unreadable.size(), 1u);
  EXPECT_EQ(report->unreadable[0].rfind(v1->parts[0].blob_id + ": format version 1", 0), 0u) << report->unreadable[0];
  ASSERT_EQ(report->incomplete.size(), 1u);
  EXPECT_NE(report->incomplete[0].find("dossiers/big: part 2"), std::string::npos) << report->incomplete[0];
  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  EXPECT_OK(fresh_->GetObject(bucket->id, "kept"));
  EXPECT_THAT(fresh_->GetObject(bucket->id, "big").status(), test_support::StatusIs(StatusCode::kNotFound));
}

// Rotate, rewrap, destroy the old version: every blob's header copy is under a version that is
// gone, and the rebuild opens them with the copies the rewrap wrote.
TEST_F(CatalogRebuildTest, ObjectsMovedOffADestroyedVersionComeBackThroughKeyCopies) {
  options_.destroy_fence_ms = 0;
  options_.garbage_grace_ms = 0;
  service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, options_);
  Put("single", Pattern(9000, 1));
  auto upload = service_->CreateUpload(bucket_, "big", {});
  ASSERT_OK(upload);
  std::vector<UploadPartRef> refs = {{1, UploadPart("big", *upload, 1, Pattern(6000, 2))},
                                     {2, UploadPart("big", *upload, 2, Pattern(50, 3))}};
  ASSERT_OK(service_->CompleteUpload(bucket_, "big", *upload, refs, {}));
  // An upload in progress across the rotation: one part before, one after.
  auto open_upload = service_->CreateUpload(bucket_, "late", {});
  ASSERT_OK(open_upload);
  std::vector<UploadPartRef> late_refs = {{1, UploadPart("late", *open_upload, 1, Pattern(7000, 4))}};

  auto rewrap_and_destroy = [&](uint32_t from) {
    ASSERT_OK(keys_->RotateTenantKey(tenant_));
    catalog::WrappedKeyCursor cursor;
    for (;;) {
      auto r = service_->RewrapBatch(tenant_, from, &cursor, 2);
      ASSERT_OK(r);
      EXPECT_EQ(r->failed, 0u);
      if (r->examined == 0) break;
    }
    ASSERT_OK(service_->DestroyKeyVersion(tenant_, from));
  };
  rewrap_and_destroy(1);
  late_refs.push_back({2, UploadPart("late", *open_upload, 2, Pattern(30, 5))});
  ASSERT_OK(service_->CompleteUpload(bucket_, "late", *open_upload, late_refs, {}));
  Put("after", Pattern(100, 6));
  // Once more: the copies under version 2 go with it, those under 3 replace them.
  auto copies_before = catalog_->ListBlobIds(catalog::BlobRefSource::kKeyCopies, "", 100);
  ASSERT_OK(copies_before);
  EXPECT_FALSE(copies_before->empty());
  rewrap_and_destroy(2);
  auto copies_after = catalog_->ListBlobIds(catalog::BlobRefSource::kKeyCopies, "", 100);
  ASSERT_OK(copies_after);
  EXPECT_FALSE(copies_after->empty());
  for (const std::string& id : *copies_before) {
    EXPECT_EQ(std::count(copies_after->begin(), copies_after->end(), id), 0) << id;
  }
  ASSERT_OK(service_->CollectGarbage());  // the version 2 copies are gone from the store too

  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_TRUE(report->unreadable.empty()) << report->unreadable[0];
  EXPECT_TRUE(report->incomplete.empty());
  EXPECT_EQ(report->objects, 4u);
  // single; big's two parts and manifest; late's first part (before the first rotation), its
  // second part and manifest (version 2) and after (version 2).
  EXPECT_EQ(report->opened_by_key_copy, 8u);
  EXPECT_EQ(report->key_copy_blobs, copies_after->size());
  auto rebuilt_copies = fresh_->ListBlobIds(catalog::BlobRefSource::kKeyCopies, "", 100);
  ASSERT_OK(rebuilt_copies);
  EXPECT_EQ(*rebuilt_copies, *copies_after);

  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  ObjectService rebuilt(*fresh_, *keys_, *blobs_, options_);
  for (const std::string key : {"single", "big", "late", "after"}) {
    auto row = fresh_->GetObject(bucket->id, key);
    ASSERT_OK(row);
    EXPECT_EQ(row->key_info.tenant_key_version, 3u) << key;
  }
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "single"), Pattern(9000, 1));
  Bytes big = Pattern(6000, 2);
  const Bytes big_tail = Pattern(50, 3);
  big.insert(big.end(), big_tail.begin(), big_tail.end());
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "big"), big);
  Bytes late = Pattern(7000, 4);
  const Bytes late_tail = Pattern(30, 5);
  late.insert(late.end(), late_tail.begin(), late_tail.end());
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "late"), late);
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "after"), Pattern(100, 6));
}

// Rotates the tenant's key and moves every data key off version `from`, as coffre key rewrap does.
void RewrapAll(ObjectService& service, const std::string& tenant, uint32_t from) {
  catalog::WrappedKeyCursor cursor;
  for (;;) {
    auto r = service.RewrapBatch(tenant, from, &cursor, 2);
    ASSERT_OK(r);
    EXPECT_EQ(r->failed, 0u);
    if (r->examined == 0) break;
  }
}

// A part begun while its upload was under version 1 (its blob's header copy is under 1) and
// committed after a rewrap moved the upload to version 2, listing the upload's parts before that
// one existed. The part's commit finds the upload moved and copies the part's key under version
// 2, so destroying version 1 leaves the part open to a rebuild.
TEST_F(CatalogRebuildTest, APartCommittedAfterARewrapOfItsUploadOpensOnceTheOldVersionIsDestroyed) {
  options_.destroy_fence_ms = 0;
  options_.garbage_grace_ms = 0;
  service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, options_);
  auto upload = service_->CreateUpload(bucket_, "late", {});
  ASSERT_OK(upload);
  std::vector<UploadPartRef> refs = {{1, UploadPart("late", *upload, 1, Pattern(7000, 1))}};
  const Bytes second = Pattern(6000, 2);
  auto part = service_->BeginPart(bucket_, "late", *upload, 2, {}, nullptr, second.size());
  ASSERT_OK(part);
  ASSERT_OK((*part)->Write(second));

  ASSERT_OK(keys_->RotateTenantKey(tenant_));
  RewrapAll(*service_, tenant_, 1);
  ASSERT_EQ(catalog_->GetUpload(*upload)->key_info.tenant_key_version, 2u);
  auto committed = (*part)->Commit({});
  ASSERT_OK(committed);
  refs.push_back({2, committed->etag});
  ASSERT_OK(service_->CompleteUpload(bucket_, "late", *upload, refs, {}));
  EXPECT_EQ(*service_->CountKeyReferences(tenant_), (std::map<uint32_t, uint64_t>{{2, 1}}));
  ASSERT_OK(service_->DestroyKeyVersion(tenant_, 1));

  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_TRUE(report->unreadable.empty()) << report->unreadable[0];
  EXPECT_TRUE(report->incomplete.empty()) << report->incomplete[0];
  EXPECT_EQ(report->objects, 1u);
  EXPECT_EQ(report->opened_by_key_copy, 2u);  // both parts; the manifest is under version 2
  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  ObjectService rebuilt(*fresh_, *keys_, *blobs_, options_);
  Bytes late = Pattern(7000, 1);
  late.insert(late.end(), second.begin(), second.end());
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "late"), late);
}

// A completion that read its upload under version 1 and sealed the manifest (header copy under
// 1); a rewrap then moves the upload to version 2 before the completion's catalog commit. The
// commit is refused, the manifest gets a key copy under version 2 and the completion is stored
// under version 2: destroying version 1 leaves every blob of the object open to a rebuild.
TEST_F(CatalogRebuildTest, AManifestSealedBeforeARewrapOfItsUploadOpensOnceTheOldVersionIsDestroyed) {
  options_.destroy_fence_ms = 0;
  options_.garbage_grace_ms = 0;
  service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, options_);
  HookRecorder recorder;
  service_->set_audit(&recorder);
  auto upload = service_->CreateUpload(bucket_, "big", {});
  ASSERT_OK(upload);
  std::vector<UploadPartRef> refs = {{1, UploadPart("big", *upload, 1, Pattern(6000, 1))},
                                     {2, UploadPart("big", *upload, 2, Pattern(50, 2))}};
  ASSERT_OK(keys_->RotateTenantKey(tenant_));
  // The completion records the upload's data key becoming the object's just before its commit.
  recorder.RunOnce(
      [&](const audit::Event& e) { return e.operation == audit::Operation::kDataKeyWrap && e.object_id == *upload; },
      [&] { RewrapAll(*service_, tenant_, 1); });
  auto done = service_->CompleteUpload(bucket_, "big", *upload, refs, {});
  ASSERT_OK(done);
  ASSERT_TRUE(recorder.ran());
  auto row = catalog_->GetObject(bucket_.id, "big");
  ASSERT_OK(row);
  EXPECT_EQ(row->key_info.tenant_key_version, 2u);
  ASSERT_OK(service_->DestroyKeyVersion(tenant_, 1));
  ASSERT_OK(service_->CollectGarbage());

  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_TRUE(report->unreadable.empty()) << report->unreadable[0];
  EXPECT_TRUE(report->incomplete.empty()) << report->incomplete[0];
  EXPECT_EQ(report->objects, 1u);
  EXPECT_EQ(report->opened_by_key_copy, 3u);  // two parts and the manifest
  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  ObjectService rebuilt(*fresh_, *keys_, *blobs_, options_);
  Bytes big = Pattern(6000, 1);
  const Bytes tail = Pattern(50, 2);
  big.insert(big.end(), tail.begin(), tail.end());
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "big"), big);
}

// A PUT whose data key was wrapped under version 1 and that commits after a rewrap's walk: its
// row is under version 1 once rewrap is done (the command's last count may precede it). Nothing
// is lost: destroy refuses while the row is there, and the next rewrap moves it with a key copy.
TEST_F(CatalogRebuildTest, AnObjectCommittedAfterARewrapKeepsVersion1UntilTheNextRewrap) {
  options_.destroy_fence_ms = 0;
  options_.garbage_grace_ms = 0;
  service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, options_);
  const Bytes data = Pattern(9000, 1);
  auto put = service_->BeginPut(bucket_, "slow", {}, {}, nullptr, data.size());
  ASSERT_OK(put);
  ASSERT_OK((*put)->Write(data));
  ASSERT_OK(keys_->RotateTenantKey(tenant_));
  RewrapAll(*service_, tenant_, 1);
  ASSERT_OK((*put)->Commit({}));
  EXPECT_EQ(*service_->CountKeyReferences(tenant_), (std::map<uint32_t, uint64_t>{{1, 1}}));
  EXPECT_THAT(service_->DestroyKeyVersion(tenant_, 1), test_support::StatusIs(Errc::kPreconditionFailed));
  RewrapAll(*service_, tenant_, 1);
  ASSERT_OK(service_->DestroyKeyVersion(tenant_, 1));

  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_TRUE(report->unreadable.empty()) << report->unreadable[0];
  EXPECT_EQ(report->opened_by_key_copy, 1u);
  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  ObjectService rebuilt(*fresh_, *keys_, *blobs_, options_);
  EXPECT_EQ(GetFrom(rebuilt, *bucket, "slow"), data);
}

TEST_F(CatalogRebuildTest, NoKeyIsUsedWhenTheAuditLogRefuses) {
  Put("doc", Pattern(100, 1));
  recorder_.set_failing(true);
  auto report = LoseAndRebuild();
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(recorder_.events().size(), 0u);
  auto bucket = fresh_->GetBucket("dossiers");
  EXPECT_FALSE(bucket.ok());
}

// Tags given at write time come back from the objects' own descriptions; tags changed later from
// each object's newest attributes-update blob, whatever order the store lists the blobs in.
TEST_F(CatalogRebuildTest, TagsSetAtWriteAndChangedLaterComeBack) {
  auto put_tagged = [&](const std::string& key, catalog::Tags tags) {
    clock_.Set(clock_.Now() + std::chrono::seconds(1));
    const Bytes data = Pattern(500, 1);
    auto w = service_->BeginPut(bucket_, key, {}, {}, nullptr, data.size(), std::move(tags));
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(data));
    ASSERT_OK((*w)->Commit({}));
  };
  put_tagged("at-write", {{"project", "alpha"}, {"class", "confidentiel"}});
  put_tagged("changed", {{"v", "0"}});
  put_tagged("removed", {{"gone", "soon"}});
  Put("untagged", Pattern(10, 2));
  // Many updates of one object: the garbage they leave is not collected yet (the grace period),
  // so the store holds every one of them, in no particular order of ids.
  for (int i = 1; i <= 12; ++i) {
    ASSERT_OK(service_->SetObjectTags(bucket_, "changed", {{"v", std::to_string(i)}, {"owner", "ops"}}));
  }
  ASSERT_OK(service_->SetObjectTags(bucket_, "removed", {}));
  // Nothing to record: no blob written.
  ASSERT_OK(service_->SetObjectTags(bucket_, "untagged", {}));
  auto upload = service_->CreateUpload(bucket_, "big", {}, nullptr, {{"stage", "final"}});
  ASSERT_OK(upload);
  std::vector<UploadPartRef> refs = {{1, UploadPart("big", *upload, 1, Pattern(6000, 3))},
                                     {2, UploadPart("big", *upload, 2, Pattern(10, 4))}};
  ASSERT_OK(service_->CompleteUpload(bucket_, "big", *upload, refs, {}));
  EXPECT_EQ(catalog_->GetObject(bucket_.id, "big")->tags, (catalog::Tags{{"stage", "final"}}));
  // The update of an object overwritten since names the old object: never applied.
  put_tagged("over", {{"x", "at-write"}});
  ASSERT_OK(service_->SetObjectTags(bucket_, "over", {{"x", "changed"}}));
  Put("over", Pattern(20, 5));
  std::map<std::string, std::string> update_blobs;
  for (const std::string key : {"changed", "removed"})
    update_blobs[key] = catalog_->GetObject(bucket_.id, key)->update_blob_id;

  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_TRUE(report->unreadable.empty());
  EXPECT_EQ(report->objects, 6u);
  EXPECT_EQ(report->object_updates, 2u);
  // The 11 older updates of "changed"; the first "over" and its update.
  EXPECT_EQ(report->superseded, 11u + 2u);
  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  auto tags_of = [&](const std::string& key) { return fresh_->GetObject(bucket->id, key)->tags; };
  EXPECT_EQ(tags_of("at-write"), (catalog::Tags{{"project", "alpha"}, {"class", "confidentiel"}}));
  EXPECT_EQ(tags_of("changed"), (catalog::Tags{{"v", "12"}, {"owner", "ops"}}));
  EXPECT_TRUE(tags_of("removed").empty());
  EXPECT_TRUE(tags_of("untagged").empty());
  EXPECT_EQ(tags_of("big"), (catalog::Tags{{"stage", "final"}}));
  EXPECT_TRUE(tags_of("over").empty());
  // The rebuilt rows name the update blobs they came from, so that fsck keeps them and the next
  // change collects them.
  for (const auto& [key, blob] : update_blobs) {
    SCOPED_TRACE(key);
    EXPECT_EQ(fresh_->GetObject(bucket->id, key)->update_blob_id, blob);
    EXPECT_TRUE(*fresh_->IsBlobReferenced(blob));
  }
  ObjectService rebuilt(*fresh_, *keys_, *blobs_, options_);
  ASSERT_OK(rebuilt.SetObjectTags(*bucket, "changed", {{"v", "13"}}));
  EXPECT_FALSE(*fresh_->IsBlobReferenced(update_blobs["changed"]));
}

// Object Lock outlives the catalog: the retention and legal hold a version was written with, and
// those set later, come back with it, and still stop its removal.
TEST_F(CatalogRebuildTest, RetentionAndLegalHoldComeBack) {
  auto worm = service_->CreateBucket(tenant_, "worm", /*object_lock=*/true);
  ASSERT_OK(worm);
  const UnixMillis until = ToUnixMillis(std::chrono::system_clock::now()) + 3'600'000;
  const std::string comp(catalog::kComplianceMode);
  auto put = [&](const std::string& key, catalog::ObjectLock lock) {
    clock_.Set(clock_.Now() + std::chrono::seconds(1));
    const Bytes data = Pattern(300, 7);
    auto w = service_->BeginPut(*worm, key, {}, {}, nullptr, data.size(), {}, std::move(lock));
    EXPECT_OK(w);
    if (!w.ok()) return std::string();
    EXPECT_OK((*w)->Write(data));
    auto r = (*w)->Commit({});
    EXPECT_OK(r);
    return r.ok() ? r->version_id : std::string();
  };
  const std::string at_write = put("at-write", catalog::ObjectLock{comp, until, "ON"});
  const std::string later = put("later", {});
  ASSERT_OK(service_->SetObjectRetention(*worm, "later", later, comp, until, false));
  ASSERT_OK(service_->SetObjectLegalHold(*worm, "later", later, true));
  ASSERT_OK(service_->SetObjectTags(*worm, "later", {{"t", "1"}}));  // keeps the lock it does not change
  const std::string lifted = put("lifted", catalog::ObjectLock{"", 0, "ON"});
  ASSERT_OK(service_->SetObjectLegalHold(*worm, "lifted", lifted, false));

  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  auto bucket = fresh_->GetBucket("worm");
  ASSERT_OK(bucket);
  EXPECT_EQ(fresh_->GetObject(bucket->id, "at-write")->lock, (catalog::ObjectLock{comp, until, "ON"}));
  EXPECT_EQ(fresh_->GetObject(bucket->id, "later")->lock, (catalog::ObjectLock{comp, until, "ON"}));
  EXPECT_EQ(fresh_->GetObject(bucket->id, "later")->tags, (catalog::Tags{{"t", "1"}}));
  EXPECT_EQ(fresh_->GetObject(bucket->id, "lifted")->lock, (catalog::ObjectLock{"", 0, "OFF"}));
  EXPECT_THAT(fresh_->DeleteObjectVersion(*bucket, "at-write", at_write, true),
              test_support::StatusIs(StatusCode::kPermissionDenied));
  EXPECT_OK(fresh_->DeleteObjectVersion(*bucket, "lifted", lifted));
  // The bucket is versioned and locked again; its default retention (none here) is not restored.
  EXPECT_EQ(report->locked_buckets, 1u);
  EXPECT_EQ(bucket->settings,
            (catalog::Attributes{{std::string(kVersioningSetting), std::string(kVersioningEnabled)},
                                 {std::string(kObjectLockSetting), std::string(kObjectLockEnabled)}}));
}

// The write sequence orders updates, not their times nor their ids: with the clock standing still,
// the last update still wins.
TEST_F(CatalogRebuildTest, AnOlderUpdateNeverWinsOverANewerOne) {
  Put("doc", Pattern(100, 1));
  for (int i = 0; i < 30; ++i) ASSERT_OK(service_->SetObjectTags(bucket_, "doc", {{"n", std::to_string(i)}}));
  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_EQ(report->object_updates, 1u);
  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  EXPECT_EQ(fresh_->GetObject(bucket->id, "doc")->tags, (catalog::Tags{{"n", "29"}}));
}

// After a rewrap and the destruction of the old version, an update blob opens through its key copy.
TEST_F(CatalogRebuildTest, UpdatesMovedOffADestroyedVersionComeBackThroughKeyCopies) {
  options_.destroy_fence_ms = 0;
  service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, options_);
  Put("doc", Pattern(100, 1));
  ASSERT_OK(service_->SetObjectTags(bucket_, "doc", {{"kept", "yes"}}));
  ASSERT_OK(keys_->RotateTenantKey(tenant_));
  catalog::WrappedKeyCursor cursor;
  for (;;) {
    auto r = service_->RewrapBatch(tenant_, 1, &cursor, 10);
    ASSERT_OK(r);
    if (r->examined == 0) break;
  }
  ASSERT_OK(service_->DestroyKeyVersion(tenant_, 1));
  auto report = LoseAndRebuild();
  ASSERT_OK(report);
  EXPECT_TRUE(report->unreadable.empty());
  EXPECT_TRUE(report->without_key.empty());
  EXPECT_EQ(report->object_updates, 1u);
  auto bucket = fresh_->GetBucket("dossiers");
  ASSERT_OK(bucket);
  EXPECT_EQ(fresh_->GetObject(bucket->id, "doc")->tags, (catalog::Tags{{"kept", "yes"}}));
}

}  // namespace
}  // namespace coffre::service
