// Named keys in the object service: an object's data key under the named key its writer chose, read
// back through it; a key named by name, id or the tenant's default; destroying a named key
// crypto-shreds exactly its objects, recorded first and refused while Object Lock protects one of
// them; rotation, rewrap and version destruction per key.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coffre/service/object_service.h"
#include "support/fake_recorder.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"

namespace coffre::service {
namespace {

constexpr UnixMillis kDay = 24LL * 60 * 60 * 1000;

class NamedKeysServiceTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("namedkeys"));
    options_.clock = &clock_;
    options_.destroy_fence_ms = 0;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, options_);
    service_->set_audit(&recorder_);
    auto t = keys_->CreateTenant("bank");
    ASSERT_OK(t);
    tenant_ = t->id;
    auto b = service_->CreateBucket(tenant_, "dossiers");
    ASSERT_OK(b);
    bucket_ = *b;
    auto key = keys_->CreateNamedKey(tenant_, "customer-1");
    ASSERT_OK(key);
    key_ = *key;
  }

  SResult<PutResult> Put(const catalog::Bucket& bucket, const std::string& key, const std::string& named_key_id,
                         catalog::ObjectLock lock = {}) {
    auto w = service_->BeginPut(bucket, key, {}, {}, nullptr, 4, {}, std::move(lock), named_key_id);
    if (!w.ok()) return w.error();
    if (auto r = (*w)->Write(AsBytes("data")); !r.ok()) return r.error();
    return (*w)->Commit({});
  }

  SResult<std::string> Get(const std::string& key) {
    auto r = service_->OpenObject(bucket_, key);
    if (!r.ok()) return r.error();
    Bytes buf(16);
    auto n = (*r)->Read(buf);
    if (!n.ok()) return n.error();
    return std::string(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
  }

  FixedClock clock_{std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'000))};
  ServiceOptions options_;
  std::unique_ptr<ObjectService> service_;
  test_support::FakeRecorder recorder_;
  std::string tenant_;
  catalog::Bucket bucket_;
  keystore::NamedKey key_;
};

TEST_F(NamedKeysServiceTest, AnObjectIsUnderTheKeyItsWriterChose) {
  auto put = Put(bucket_, "a", key_.key_id);
  ASSERT_OK(put);
  EXPECT_EQ(put->encryption.key_id, key_.key_id);
  EXPECT_TRUE(put->encryption.kms);
  auto plain = Put(bucket_, "b", "");
  ASSERT_OK(plain);
  EXPECT_EQ(plain->encryption.key_id, tenant_);
  EXPECT_FALSE(plain->encryption.kms);
  auto head = service_->HeadObject(bucket_, "a");
  ASSERT_OK(head);
  EXPECT_EQ(head->encryption.key_id, key_.key_id);
  EXPECT_EQ(Get("a").value(), "data");
  // The key use is recorded under the named key's id.
  bool wrapped_under_named = false;
  for (const auto& e : recorder_.events()) {
    wrapped_under_named |= e.operation == audit::Operation::kDataKeyWrap && e.key_id == key_.key_id;
  }
  EXPECT_TRUE(wrapped_under_named);
  // A multipart upload keeps its key to the end.
  auto upload = service_->CreateUpload(bucket_, "big", {}, nullptr, {}, {}, key_.key_id);
  ASSERT_OK(upload);
  auto part = service_->BeginPart(bucket_, "big", *upload, 1, {}, nullptr, 4);
  ASSERT_OK(part);
  ASSERT_OK((*part)->Write(AsBytes("part")));
  auto committed = (*part)->Commit({});
  ASSERT_OK(committed);
  EXPECT_EQ(committed->encryption.key_id, key_.key_id);
  auto done = service_->CompleteUpload(bucket_, "big", *upload, {{1, committed->etag}}, {});
  ASSERT_OK(done);
  EXPECT_EQ(done->encryption.key_id, key_.key_id);
}

TEST_F(NamedKeysServiceTest, KeysAreNamedByNameIdOrAsTheTenantsDefault) {
  EXPECT_EQ(service_->ResolveEncryptionKey(bucket_, "customer-1").value(), key_.key_id);
  EXPECT_EQ(service_->ResolveEncryptionKey(bucket_, keystore::KeyIdAsUuid(key_.key_id)).value(), key_.key_id);
  EXPECT_EQ(service_->ResolveEncryptionKey(bucket_, "aws/s3").value(), "");
  EXPECT_EQ(service_->ResolveEncryptionKey(bucket_, keystore::KeyIdAsUuid(tenant_)).value(), "");
  auto unknown = service_->ResolveEncryptionKey(bucket_, "customer-404");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Errc::kNoSuchEncryptionKey);
  // Another tenant's key is no key of this one.
  auto other = keys_->CreateTenant("insurer");
  ASSERT_OK(other);
  auto theirs = service_->CreateBucket(other->id, "claims");
  ASSERT_OK(theirs);
  auto refused = service_->ResolveEncryptionKey(*theirs, key_.key_id);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::kNoSuchEncryptionKey);
  auto put = Put(*theirs, "x", key_.key_id);
  ASSERT_FALSE(put.ok());
  EXPECT_TRUE(catalog_->GetObject(theirs->id, "x").status().code() == StatusCode::kNotFound);
}

TEST_F(NamedKeysServiceTest, DestroyingTheKeyShredsExactlyItsObjects) {
  ASSERT_OK(Put(bucket_, "erased", key_.key_id));
  ASSERT_OK(Put(bucket_, "kept", ""));
  ASSERT_OK(service_->DestroyNamedKey(key_.ref(), false));
  auto gone = Get("erased");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, Errc::kAccessDenied);
  EXPECT_EQ(Get("kept").value(), "data");
  // Recorded, naming the key and its tenant.
  size_t destroys = 0;
  for (const auto& e : recorder_.events()) {
    if (e.operation != audit::Operation::kNamedKeyDestroy) continue;
    ++destroys;
    EXPECT_EQ(e.key_id, key_.key_id);
    EXPECT_EQ(e.tenant, tenant_);
  }
  EXPECT_EQ(destroys, 1u);
  // Nothing new goes under it; the object itself can still be deleted.
  auto resolved = service_->ResolveEncryptionKey(bucket_, "customer-1");
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.error().code, Errc::kEncryptionKeyDestroyed);
  EXPECT_OK(service_->DeleteObject(bucket_, "erased"));
  // The default key cannot be destroyed this way.
  EXPECT_FALSE(service_->DestroyNamedKey(keystore::KeyRef(tenant_), true).ok());
}

TEST_F(NamedKeysServiceTest, ObjectLockOutlivesTheKeyItsVersionsAreUnder) {
  auto locked = service_->CreateBucket(tenant_, "archive", /*object_lock=*/true);
  ASSERT_OK(locked);
  const UnixMillis now = ToUnixMillis(clock_.Now());
  // Protected versions under other keys do not stop it.
  ASSERT_OK(Put(*locked, "other-key", "", catalog::ObjectLock{"COMPLIANCE", now + kDay, ""}));
  ASSERT_OK(Put(*locked, "gov", key_.key_id, catalog::ObjectLock{"GOVERNANCE", now + kDay, ""}));
  auto refused = service_->DestroyNamedKey(key_.ref(), false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::kPreconditionFailed);
  EXPECT_NE(refused.error().message.find("archive/gov"), std::string::npos) << refused.error().message;
  ASSERT_OK(Put(*locked, "held", key_.key_id, catalog::ObjectLock{"", 0, "ON"}));
  // A legal hold stops it even with the bypass; nothing was destroyed or recorded as destroyed.
  refused = service_->DestroyNamedKey(key_.ref(), true);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("legal hold"), std::string::npos);
  for (const auto& e : recorder_.events()) EXPECT_NE(e.operation, audit::Operation::kNamedKeyDestroy);
  EXPECT_OK(keys_->NewDataKey(key_.ref(), AsBytes("still usable")));
  // Once the hold is lifted and the retention has run out, it goes.
  ASSERT_OK(service_->SetObjectLegalHold(*locked, "held", "", false));
  clock_.Set(clock_.Now() + std::chrono::milliseconds(2 * kDay));
  EXPECT_OK(service_->DestroyNamedKey(key_.ref(), false));
}

TEST_F(NamedKeysServiceTest, RotatedRewrappedAndAVersionDestroyedWhileItsObjectsStayReadable) {
  ASSERT_OK(Put(bucket_, "a", key_.key_id));
  ASSERT_OK(Put(bucket_, "b", ""));
  ASSERT_OK(keys_->RotateTenantKey(key_.ref()));
  auto counts = service_->CountKeyReferences(key_.ref());
  ASSERT_OK(counts);
  EXPECT_EQ((*counts)[1], 1u);
  auto refused = service_->DestroyKeyVersion(key_.ref(), 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::kPreconditionFailed);
  catalog::WrappedKeyCursor cursor;
  auto rewrapped = service_->RewrapBatch(key_.ref(), 1, &cursor, 100);
  ASSERT_OK(rewrapped);
  EXPECT_EQ(rewrapped->rewrapped, 1u);
  ASSERT_OK(service_->DestroyKeyVersion(key_.ref(), 1));
  EXPECT_EQ(Get("a").value(), "data");
  EXPECT_EQ(Get("b").value(), "data");
  // The tenant's default key was never touched.
  auto default_counts = service_->CountKeyReferences(keystore::KeyRef(tenant_));
  ASSERT_OK(default_counts);
  EXPECT_EQ((*default_counts)[1], 1u);
}

}  // namespace
}  // namespace coffre::service
