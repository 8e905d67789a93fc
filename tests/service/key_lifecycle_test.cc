// The object service's key lifecycle: rewrap keeps every object readable without touching its
// data, destroy refuses a referenced version, and a shredded tenant's objects fail with
// AccessDenied (never partial data) while another tenant's are intact.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include "coffre/service/object_service.h"
#include "service/data_key_aad.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"
#include "support/test_data.h"

namespace coffre::service {
namespace {

using test_support::Pattern;
using test_support::StatusIs;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

class ServiceKeyLifecycleTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("service-keys"));
    ServiceOptions opts;
    opts.segment_size = 4096;
    opts.min_part_size = 5000;
    opts.garbage_grace_ms = 0;
    opts.destroy_fence_ms = 50;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, opts);
    tenant_ = keys_->CreateTenant("acme")->id;
    other_ = keys_->CreateTenant("other")->id;
    bucket_ = *service_->CreateBucket(tenant_, "dossiers");
    other_bucket_ = *service_->CreateBucket(other_, "theirs");
  }

  void Put(const catalog::Bucket& b, const std::string& key, const Bytes& data) {
    auto w = service_->BeginPut(b, key, {}, {});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(data));
    auto c = (*w)->Commit({});
    ASSERT_OK(c);
  }

  SResult<Bytes> Get(const catalog::Bucket& b, const std::string& key, const std::string& version_id = "") {
    auto r = service_->OpenObject(b, key, nullptr, version_id);
    if (!r.ok()) return r.error();
    Bytes out;
    Bytes buf(3000);
    for (;;) {
      auto n = (*r)->Read(buf);
      if (!n.ok()) return n.error();
      if (*n == 0) break;
      out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    }
    return out;
  }

  // Every blob file's bytes, by path.
  std::map<std::string, std::string> BlobContents() {
    std::map<std::string, std::string> out;
    if (!fs::exists(dir_ + "/blobs")) return out;
    for (auto& e : fs::recursive_directory_iterator(dir_ + "/blobs")) {
      if (e.is_regular_file()) {
        std::ifstream f(e.path(), std::ios::binary);
        out[e.path().string()] = std::string(std::istreambuf_iterator<char>(f), {});
      }
    }
    return out;
  }

  uint64_t RewrapAll(uint32_t from, uint32_t batch) {
    catalog::WrappedKeyCursor cursor;
    uint64_t rewrapped = 0;
    for (int guard = 0; guard < 1000; ++guard) {
      auto r = service_->RewrapBatch(tenant_, from, &cursor, batch);
      EXPECT_OK(r);
      if (!r.ok() || r->examined == 0) break;
      EXPECT_EQ(r->failed, 0u);
      rewrapped += r->rewrapped;
    }
    return rewrapped;
  }

  std::unique_ptr<ObjectService> service_;
  std::string tenant_;
  std::string other_;
  catalog::Bucket bucket_;
  catalog::Bucket other_bucket_;
};

// The destroy fence (keystore.h): a PUT that began under version 1 before the rotation and
// commits while version 1 is being destroyed re-wraps its data key rather than being orphaned.
TEST_F(ServiceKeyLifecycleTest, AWriteFromBeforeTheRotationMovesOffAVersionBeingDestroyed) {
  const Bytes data = Pattern(10000, 3);
  auto w = service_->BeginPut(bucket_, "late", {}, {});
  ASSERT_OK(w);
  ASSERT_OK((*w)->Write(data));
  ASSERT_EQ(*keys_->RotateTenantKey(tenant_), 2u);
  ASSERT_OK(keys_->SetKeyVersionDestroying(tenant_, 1, true));  // a destroy in progress
  auto versions = keys_->ListKeyVersions(tenant_);
  ASSERT_OK(versions);
  EXPECT_TRUE((*versions)[0].destroying);
  ASSERT_OK((*w)->Commit({}));
  EXPECT_EQ(*service_->CountKeyReferences(tenant_), (std::map<uint32_t, uint64_t>{{2, 1}}));
  ASSERT_OK(service_->DestroyKeyVersion(tenant_, 1));
  auto got = Get(bucket_, "late");
  ASSERT_OK(got);
  EXPECT_EQ(*got, data);
  // The same for an upload created while the old version is being destroyed.
  ASSERT_EQ(*keys_->RotateTenantKey(tenant_), 3u);
  ASSERT_OK(keys_->SetKeyVersionDestroying(tenant_, 2, true));
  // (Its data key is drawn under version 3 already; the check is cheap and finds nothing.)
  auto upload = service_->CreateUpload(bucket_, "up", {});
  ASSERT_OK(upload);
  EXPECT_EQ(service_->CountKeyReferences(tenant_)->at(3), 1u);
}

// A row that appears under the version while the fence waits (a writer that checked before the
// mark) refuses the destruction, and the mark is lifted.
TEST_F(ServiceKeyLifecycleTest, DestroyRefusesWhenARowAppearsDuringTheFence) {
  ServiceOptions opts = service_->options();
  opts.destroy_fence_ms = 1500;
  ObjectService slow(*catalog_, *keys_, *blobs_, opts);
  const std::string upload_id = "fence-upload-00000000000";
  auto dk = keys_->NewDataKey(tenant_, internal::DataKeyAad(bucket_.name, "late-upload", upload_id));
  ASSERT_OK(dk);
  ASSERT_EQ(*keys_->RotateTenantKey(tenant_), 2u);
  std::thread late_writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    catalog::UploadRecord up;
    up.upload_id = upload_id;
    up.bucket_id = bucket_.id;
    up.tenant_id = bucket_.tenant_id;
    up.key = "late-upload";
    up.key_info = catalog::KeyInfo{dk->tenant_key_id, dk->tenant_key_version, dk->wrapped};
    EXPECT_OK(catalog_->CreateUpload(up));
  });
  auto refused = slow.DestroyKeyVersion(tenant_, 1);
  late_writer.join();
  ASSERT_THAT(refused, StatusIs(Errc::kPreconditionFailed));
  auto versions = keys_->ListKeyVersions(tenant_);
  ASSERT_OK(versions);
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_FALSE((*versions)[0].destroying) << "the mark must be lifted when the destruction is abandoned";
}

TEST_F(ServiceKeyLifecycleTest, RewrapMovesEveryDataKeyWithoutTouchingObjectData) {
  std::map<std::string, Bytes> objects;
  for (int i = 0; i < 9; ++i) {
    objects["k" + std::to_string(i)] = Pattern(100 + 3000 * i, i);
    Put(bucket_, "k" + std::to_string(i), objects["k" + std::to_string(i)]);
  }
  // An upload in progress, with one part written under version 1.
  auto upload = service_->CreateUpload(bucket_, "big", {});
  ASSERT_OK(upload);
  const Bytes part1 = Pattern(6000, 77);
  {
    auto w = service_->BeginPart(bucket_, "big", *upload, 1, {});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(part1));
    ASSERT_OK((*w)->Commit({}));
  }
  ASSERT_EQ(*keys_->RotateTenantKey(tenant_), 2u);
  Put(bucket_, "after", Pattern(10, 5));  // new objects use version 2
  const auto before = BlobContents();

  EXPECT_EQ(*service_->CountKeyReferences(tenant_), (std::map<uint32_t, uint64_t>{{1, 10}, {2, 1}}));
  auto refused = service_->DestroyKeyVersion(tenant_, 1);
  ASSERT_THAT(refused, StatusIs(Errc::kPreconditionFailed));

  EXPECT_EQ(RewrapAll(1, 4), 10u);
  EXPECT_EQ(*service_->CountKeyReferences(tenant_), (std::map<uint32_t, uint64_t>{{2, 11}}));
  // Not one byte of object data rewritten; the only new blobs are the key copies.
  auto after = BlobContents();
  for (const auto& [path, bytes] : before) EXPECT_EQ(after[path], bytes) << path;
  auto key_copies = catalog_->ListBlobIds(catalog::BlobRefSource::kKeyCopies, "", 100);
  ASSERT_OK(key_copies);
  EXPECT_EQ(key_copies->size(), 3u);  // one per batch of 4 rows
  EXPECT_EQ(after.size(), before.size() + key_copies->size());
  ASSERT_OK(service_->DestroyKeyVersion(tenant_, 1));
  auto active = service_->DestroyKeyVersion(tenant_, 2);
  ASSERT_THAT(active, StatusIs(Errc::kPreconditionFailed));

  // With version 1 gone, everything still reads, and the upload completes.
  for (const auto& [key, data] : objects) {
    auto got = Get(bucket_, key);
    ASSERT_OK(got) << key;
    EXPECT_EQ(*got, data);
  }
  const Bytes part2 = Pattern(100, 78);
  {
    auto w = service_->BeginPart(bucket_, "big", *upload, 2, {});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(part2));
    ASSERT_OK((*w)->Commit({}));
  }
  auto parts = service_->ListParts(bucket_, "big", *upload, 0, 100);
  ASSERT_OK(parts);
  std::vector<UploadPartRef> refs;
  for (const auto& p : *parts) refs.push_back({p.part_number, p.etag});
  ASSERT_OK(service_->CompleteUpload(bucket_, "big", *upload, refs, {}));
  Bytes whole = part1;
  whole.insert(whole.end(), part2.begin(), part2.end());
  EXPECT_EQ(*Get(bucket_, "big"), whole);
}

// Noncurrent versions and delete markers hold data keys too: a destruction waits for them, a
// rewrap moves them, and they still open once the old version is gone.
TEST_F(ServiceKeyLifecycleTest, NoncurrentVersionsAreCountedRewrappedAndStillReadable) {
  ASSERT_OK(service_->UpdateBucketSettings(bucket_, {{std::string(kVersioningSetting), std::string("Enabled")}}));
  bucket_ = *catalog_->GetBucket("dossiers");
  Put(bucket_, "dossier", Pattern(5000, 1));
  Put(bucket_, "dossier", Pattern(6000, 2));
  ASSERT_OK(service_->DeleteObject(bucket_, "dossier"));  // a delete marker, described by a blob
  auto versions = catalog_->ListObjectVersions(bucket_.id, {});
  ASSERT_OK(versions);
  ASSERT_EQ(versions->entries.size(), 3u);
  const std::string newer = versions->entries[1].version->version_id();
  const std::string older = versions->entries[2].version->version_id();
  ASSERT_EQ(*keys_->RotateTenantKey(tenant_), 2u);

  EXPECT_EQ(*service_->CountKeyReferences(tenant_), (std::map<uint32_t, uint64_t>{{1, 3}}));
  ASSERT_THAT(service_->DestroyKeyVersion(tenant_, 1), StatusIs(Errc::kPreconditionFailed));
  EXPECT_EQ(RewrapAll(1, 1), 3u);
  EXPECT_EQ(*service_->CountKeyReferences(tenant_), (std::map<uint32_t, uint64_t>{{2, 3}}));
  ASSERT_OK(service_->DestroyKeyVersion(tenant_, 1));

  for (const auto& [version, data] : {std::pair{older, Pattern(5000, 1)}, std::pair{newer, Pattern(6000, 2)}}) {
    auto got = Get(bucket_, "dossier", version);
    ASSERT_OK(got) << version;
    EXPECT_EQ(*got, data);
  }
}

// Rewrap runs in the admin command, beside the daemon, over its own blob store on the same
// directory. The key copies it writes must never be pack records, which only the daemon appends
// to: the next record the daemon writes would land on them.
TEST_F(ServiceKeyLifecycleTest, RewrapBesideTheDaemonLeavesItsPacksAlone) {
  std::map<std::string, Bytes> objects;
  auto put_declared = [&](const std::string& key, const Bytes& data) {
    auto w = service_->BeginPut(bucket_, key, {}, {}, nullptr, data.size());  // small: a pack record
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(data));
    ASSERT_OK((*w)->Commit({}));
    objects[key] = data;
  };
  for (int i = 0; i < 4; ++i) put_declared("before/" + std::to_string(i), Pattern(300 + i, i));
  ASSERT_EQ(*keys_->RotateTenantKey(tenant_), 2u);

  auto cli_blobs = storage::OpenLocalBlobStore(dir_);
  ASSERT_OK(cli_blobs);
  ServiceOptions opts;
  opts.segment_size = 4096;
  ObjectService cli(*catalog_, *keys_, **cli_blobs, opts);
  catalog::WrappedKeyCursor cursor;
  for (;;) {
    auto r = cli.RewrapBatch(tenant_, 1, &cursor, 100);
    ASSERT_OK(r);
    if (r->examined == 0) break;
  }
  // The daemon goes on writing small objects into its pack.
  for (int i = 0; i < 4; ++i) put_declared("after/" + std::to_string(i), Pattern(300 + i, 10 + i));

  for (const auto& [key, data] : objects) {
    auto got = Get(bucket_, key);
    ASSERT_OK(got) << key;
    EXPECT_EQ(*got, data) << key;
  }
  auto key_copies = catalog_->ListBlobIds(catalog::BlobRefSource::kKeyCopies, "", 10);
  ASSERT_OK(key_copies);
  ASSERT_EQ(key_copies->size(), 1u);
  EXPECT_GT(blobs_->MaxPackedBlob(), 0u);  // the daemon packs small blobs
  auto reader = blobs_->Open((*key_copies)[0]);
  ASSERT_OK(reader);
  Bytes header(crypto::kHeaderSize);
  ASSERT_OK((*reader)->ReadAt(0, header));
  EXPECT_OK(crypto::ParseBlobHeaderUnauthenticated(header));
  EXPECT_TRUE(fs::exists(dir_ + "/blobs/" + (*key_copies)[0].substr(0, 2) + "/" + (*key_copies)[0].substr(2, 2) + "/" +
                         (*key_copies)[0]))
      << "a file of its own";
}

TEST_F(ServiceKeyLifecycleTest, RewrapIsResumableFromAnyPoint) {
  for (int i = 0; i < 6; ++i) Put(bucket_, "k" + std::to_string(i), Pattern(10, i));
  ASSERT_OK(keys_->RotateTenantKey(tenant_));
  // An interrupted run: one batch, then the process dies (the cursor is lost).
  catalog::WrappedKeyCursor cursor;
  ASSERT_EQ(service_->RewrapBatch(tenant_, 1, &cursor, 2)->rewrapped, 2u);
  // A new run starts from scratch and finds only what is left.
  EXPECT_EQ(RewrapAll(1, 100), 4u);
  EXPECT_EQ(*service_->CountKeyReferences(tenant_), (std::map<uint32_t, uint64_t>{{2, 6}}));
}

TEST_F(ServiceKeyLifecycleTest, ShreddedTenantsObjectsFailWithAccessDeniedAndOthersAreIntact) {
  const Bytes mine = Pattern(9000, 1);
  const Bytes theirs = Pattern(9000, 2);
  Put(bucket_, "doc", mine);
  Put(other_bucket_, "doc", theirs);
  ASSERT_OK(keys_->ShredTenant(tenant_));

  auto got = Get(bucket_, "doc");
  ASSERT_THAT(got, StatusIs(Errc::kAccessDenied, HasSubstr("crypto-shredded")));
  auto put = service_->BeginPut(bucket_, "new", {}, {});
  ASSERT_THAT(put, StatusIs(Errc::kAccessDenied));
  EXPECT_EQ(*Get(other_bucket_, "doc"), theirs);

  // The catalog side, then the garbage collector, remove the tenant's rows and files.
  const size_t files_before = BlobContents().size();
  while (*service_->RemoveTenantData(tenant_, 1) != 0) {
  }
  EXPECT_THAT(service_->GetBucket(tenant_, "dossiers"), StatusIs(Errc::kNoSuchBucket));
  ASSERT_OK(service_->CollectGarbage());
  EXPECT_EQ(BlobContents().size(), files_before - 1);
  EXPECT_EQ(*Get(other_bucket_, "doc"), theirs);
}

}  // namespace
}  // namespace coffre::service
