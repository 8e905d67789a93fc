// Key-lifecycle events in the audit log (docs/AUDIT.md, "Key-lifecycle events"): each change
// is recorded exactly once with the right fields, and a change whose record cannot be made
// durable is not made (or is undone where the record must follow it).

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <mutex>

#include "coffre/service/key_lifecycle.h"
#include "coffre/service/object_service.h"
#include "support/fake_recorder.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::service {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;
using audit::Operation;

using test_support::FakeRecorder;

class KeyLifecycleAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto keys = keystore::Keystore::Open(dir_.str() + "/keystore.db", SecretBytes::Random(32), clock_);
    ASSERT_OK(keys);
    keys_ = std::move(keys).value();
    lifecycle_ = std::make_unique<KeyLifecycle>(*keys_, &recorder_, clock_);
    request_.action = "cli:test";
  }

  keystore::Tenant NewTenant(const std::string& name) {
    auto t = lifecycle_->CreateTenant(name, request_);
    EXPECT_OK(t);
    recorder_.clear();
    return t.ok() ? *t : keystore::Tenant{};
  }

  std::vector<uint32_t> Versions(const std::string& tenant_id) {
    std::vector<uint32_t> out;
    auto versions = keys_->ListKeyVersions(tenant_id);
    EXPECT_OK(versions);
    if (versions.ok()) {
      for (const auto& v : *versions) {
        out.push_back(v.version);
      }
    }
    return out;
  }

  void ExpectLifecycle(const audit::Event& e, Operation op, const std::string& tenant_id, uint32_t version) {
    EXPECT_EQ(e.operation, op);
    EXPECT_EQ(e.outcome, audit::Outcome::kSuccess);
    EXPECT_EQ(e.tenant, tenant_id);
    EXPECT_EQ(e.key_id, tenant_id);
    EXPECT_EQ(e.key_version, version);
    EXPECT_EQ(e.request.action, "cli:test");
    EXPECT_EQ(e.request.client_address, "");
    EXPECT_EQ(e.bucket, "");
  }

  test_support::TempDir dir_{"lifecycle-audit"};
  FixedClock clock_{std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 56))};
  std::unique_ptr<keystore::Keystore> keys_;
  FakeRecorder recorder_;
  std::unique_ptr<KeyLifecycle> lifecycle_;
  audit::RequestInfo request_;
};

TEST_F(KeyLifecycleAuditTest, CreateTenantAndAccessKeyAreEachRecordedOnce) {
  auto t = lifecycle_->CreateTenant("acme", request_);
  ASSERT_OK(t);
  auto k = lifecycle_->CreateAccessKey(t->id, request_);
  ASSERT_OK(k);
  const auto events = recorder_.events();
  ASSERT_EQ(events.size(), 2u);
  ExpectLifecycle(events[0], Operation::kTenantKeyCreate, t->id, 1);
  EXPECT_EQ(events[0].request.access_key_id, "");
  EXPECT_EQ(events[1].operation, Operation::kAccessKeyCreate);
  EXPECT_EQ(events[1].tenant, t->id);
  EXPECT_EQ(events[1].key_id, "");  // no tenant key is involved
  EXPECT_EQ(events[1].key_version, 0u);
  EXPECT_EQ(events[1].request.access_key_id, k->key.access_key_id);
  EXPECT_EQ(events[1].request.action, "cli:test");
  // A completed creation is not "completed" again.
  auto again = lifecycle_->CreateTenant("acme", request_);
  ASSERT_THAT(again, StatusIs(StatusCode::kAlreadyExists));
  EXPECT_EQ(recorder_.events().size(), 2u);
}

TEST_F(KeyLifecycleAuditTest, TenantWhoseCreationWasNotRecordedGetsNoAccessKeyUntilRetried) {
  recorder_.set_failing(true);
  auto t = lifecycle_->CreateTenant("acme", request_);
  ASSERT_THAT(t, StatusIs(StatusCode::kUnavailable, HasSubstr("run the same command again")));
  auto existing = keys_->GetTenantByName("acme");
  ASSERT_OK(existing);
  EXPECT_TRUE(keys_->ListAccessKeys(existing->id)->empty());
  // Once the log is writable, the same call records the creation and returns the tenant.
  recorder_.set_failing(false);
  auto retried = lifecycle_->CreateTenant("acme", request_);
  ASSERT_OK(retried);
  EXPECT_EQ(retried->id, existing->id);
  const auto events = recorder_.events();
  ASSERT_EQ(events.size(), 1u);
  ExpectLifecycle(events[0], Operation::kTenantKeyCreate, existing->id, 1);
}

TEST_F(KeyLifecycleAuditTest, AccessKeyWhoseCreationCannotBeRecordedIsDeletedAgain) {
  auto t = NewTenant("acme");
  recorder_.set_failing(true);
  auto k = lifecycle_->CreateAccessKey(t.id, request_);
  ASSERT_THAT(k, StatusIs(StatusCode::kUnavailable));
  EXPECT_TRUE(keys_->ListAccessKeys(t.id)->empty());
  EXPECT_TRUE(recorder_.events().empty());
}

// A named key whose creation cannot be recorded is destroyed again before anything was encrypted
// under it; its name stays taken (names are never reused).
TEST_F(KeyLifecycleAuditTest, NamedKeyWhoseCreationCannotBeRecordedIsDestroyedAgain) {
  auto t = NewTenant("acme");
  recorder_.set_failing(true);
  auto k = lifecycle_->CreateNamedKey(t.id, "customer-1", request_);
  ASSERT_THAT(k, StatusIs(StatusCode::kUnavailable));
  auto listed = keys_->ListNamedKeys(t.id);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_TRUE(listed->front().destroyed.has_value());
  EXPECT_THAT(keys_->NewDataKey(listed->front().ref(), AsBytes("x")), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_TRUE(recorder_.events().empty());
  recorder_.set_failing(false);
  auto created = lifecycle_->CreateNamedKey(t.id, "customer-2", request_);
  ASSERT_OK(created);
  const auto events = recorder_.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].operation, Operation::kNamedKeyCreate);
  EXPECT_EQ(events[0].key_id, created->key_id);
  EXPECT_EQ(events[0].tenant, t.id);
}

TEST_F(KeyLifecycleAuditTest, DisableAndDeleteAreRecordedBeforeTheChange) {
  auto t = NewTenant("acme");
  auto k = lifecycle_->CreateAccessKey(t.id, request_);
  ASSERT_OK(k);
  const std::string id = k->key.access_key_id;
  recorder_.clear();

  recorder_.set_failing(true);
  EXPECT_THAT(lifecycle_->DisableAccessKey(t.id, id, request_), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(lifecycle_->DeleteAccessKey(t.id, id, request_), StatusIs(StatusCode::kUnavailable));
  auto listed = keys_->ListAccessKeys(t.id);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_TRUE(listed->front().enabled);  // nothing changed
  recorder_.set_failing(false);

  ASSERT_OK(lifecycle_->DisableAccessKey(t.id, id, request_));
  EXPECT_FALSE(keys_->ListAccessKeys(t.id)->front().enabled);
  recorder_.set_failing(true);
  EXPECT_THAT(lifecycle_->EnableAccessKey(t.id, id, request_), StatusIs(StatusCode::kUnavailable));
  EXPECT_FALSE(keys_->ListAccessKeys(t.id)->front().enabled);  // not enabled unrecorded
  recorder_.set_failing(false);
  ASSERT_OK(lifecycle_->EnableAccessKey(t.id, id, request_));
  EXPECT_TRUE(keys_->ListAccessKeys(t.id)->front().enabled);
  ASSERT_OK(lifecycle_->DeleteAccessKey(t.id, id, request_));
  EXPECT_TRUE(keys_->ListAccessKeys(t.id)->empty());
  const auto events = recorder_.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].operation, Operation::kAccessKeyDisable);
  EXPECT_EQ(events[1].operation, Operation::kAccessKeyEnable);
  EXPECT_EQ(events[2].operation, Operation::kAccessKeyDelete);
  for (const auto& e : events) {
    EXPECT_EQ(e.tenant, t.id);
    EXPECT_EQ(e.request.access_key_id, id);
    EXPECT_EQ(e.outcome, audit::Outcome::kSuccess);
  }
  // An unknown key is refused before anything is recorded.
  EXPECT_THAT(lifecycle_->DisableAccessKey(t.id, id, request_), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(lifecycle_->DeleteAccessKey(t.id, "CONOSUCHKEY0000000000", request_), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(lifecycle_->EnableAccessKey(t.id, id, request_), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(recorder_.events().size(), 3u);
}

TEST_F(KeyLifecycleAuditTest, RotationIsRecordedWithTheNewVersionBeforeTheKeyExists) {
  auto t = NewTenant("acme");
  recorder_.set_failing(true);
  auto refused = lifecycle_->RotateTenantKey(t.id, request_);
  ASSERT_THAT(refused, StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(Versions(t.id), std::vector<uint32_t>{1});
  recorder_.set_failing(false);

  auto v = lifecycle_->RotateTenantKey(t.id, request_);
  ASSERT_OK(v);
  EXPECT_EQ(*v, 2u);
  auto events = recorder_.events();
  ASSERT_EQ(events.size(), 1u);
  ExpectLifecycle(events[0], Operation::kTenantKeyRotate, t.id, 2);
}

TEST_F(KeyLifecycleAuditTest, RotationPredictsTheVersionAfterADestroyedOne) {
  auto t = NewTenant("acme");
  ASSERT_OK(lifecycle_->RotateTenantKey(t.id, request_));
  ASSERT_OK(keys_->DestroyKeyVersion(t.id, 1));
  recorder_.clear();
  auto v = lifecycle_->RotateTenantKey(t.id, request_);
  ASSERT_OK(v);
  EXPECT_EQ(*v, 3u);
  ASSERT_EQ(recorder_.events().size(), 1u);
  EXPECT_EQ(recorder_.events()[0].key_version, 3u);
}

TEST_F(KeyLifecycleAuditTest, PolicyRotatesOnlyKeysOlderThanTheLimitAndRecordsEach) {
  auto old_tenant = NewTenant("old");
  clock_.Set(clock_.Now() + std::chrono::hours(24 * 10));
  auto young = NewTenant("young");
  auto shredded = NewTenant("gone");
  ASSERT_OK(keys_->ShredTenant(shredded.id));
  clock_.Set(clock_.Now() + std::chrono::hours(24 * 5));
  audit::RequestInfo policy;
  policy.action = "policy";
  const int64_t seven_days_ms = int64_t{7} * 24 * 3600 * 1000;

  recorder_.set_failing(true);
  auto refused = lifecycle_->RotateKeysOlderThan(seven_days_ms, policy);
  ASSERT_THAT(refused, Not(IsOk()));
  EXPECT_EQ(Versions(old_tenant.id), std::vector<uint32_t>{1});
  recorder_.set_failing(false);

  auto rotated = lifecycle_->RotateKeysOlderThan(seven_days_ms, policy);
  ASSERT_OK(rotated);
  ASSERT_EQ(rotated->size(), 1u);
  EXPECT_EQ(rotated->front(), std::make_pair(keystore::KeyRef(old_tenant.id), uint32_t{2}));
  EXPECT_EQ(Versions(young.id), std::vector<uint32_t>{1});
  const auto events = recorder_.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].operation, Operation::kTenantKeyRotate);
  EXPECT_EQ(events[0].tenant, old_tenant.id);
  EXPECT_EQ(events[0].key_version, 2u);
  EXPECT_EQ(events[0].request.action, "policy");
  // The new version is young: nothing more to do.
  rotated = lifecycle_->RotateKeysOlderThan(seven_days_ms, policy);
  ASSERT_OK(rotated);
  EXPECT_TRUE(rotated->empty());
  EXPECT_EQ(recorder_.events().size(), 1u);
}

TEST_F(KeyLifecycleAuditTest, ShredIsRecordedFirstAndRefusedWhenTheLogIsUnwritable) {
  auto t = NewTenant("acme");
  ASSERT_OK(lifecycle_->RotateTenantKey(t.id, request_));
  recorder_.clear();
  recorder_.set_failing(true);
  EXPECT_THAT(lifecycle_->ShredTenant(t.id, request_), StatusIs(StatusCode::kUnavailable));
  EXPECT_FALSE(keys_->GetTenant(t.id)->shredded.has_value());
  EXPECT_EQ(Versions(t.id), (std::vector<uint32_t>{1, 2}));
  recorder_.set_failing(false);
  ASSERT_OK(lifecycle_->ShredTenant(t.id, request_));
  EXPECT_TRUE(keys_->GetTenant(t.id)->shredded.has_value());
  auto events = recorder_.events();
  ASSERT_EQ(events.size(), 1u);
  ExpectLifecycle(events[0], Operation::kTenantShred, t.id, 2);
  // Shredded: nothing more is done, so nothing more is recorded.
  EXPECT_THAT(lifecycle_->ShredTenant(t.id, request_), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(lifecycle_->RotateTenantKey(t.id, request_), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(lifecycle_->CreateAccessKey(t.id, request_), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(recorder_.events().size(), 1u);
}

TEST_F(KeyLifecycleAuditTest, WithoutARecorderChangesAreMadeUnrecorded) {
  KeyLifecycle plain(*keys_, nullptr, clock_);
  auto t = plain.CreateTenant("acme", request_);
  ASSERT_OK(t);
  EXPECT_OK(plain.RotateTenantKey(t->id, request_));
  EXPECT_OK(plain.ShredTenant(t->id, request_));
}

// --- the object service's part: destroy and rewrap ------------------------------------------

class ServiceLifecycleAuditTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("svc-lifecycle-audit"));
    ServiceOptions opts;
    opts.segment_size = 4096;
    opts.min_part_size = 10;
    opts.destroy_fence_ms = 50;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, opts);
    tenant_ = keys_->CreateTenant("acme")->id;
    bucket_ = *service_->CreateBucket(tenant_, "dossiers");
    request_.action = "cli:key rewrap";
  }

  void Put(const std::string& key) {
    auto w = service_->BeginPut(bucket_, key, {}, {});
    ASSERT_OK(w);
    ASSERT_OK((*w)->Write(Bytes(100, 7)));
    ASSERT_OK((*w)->Commit({}));
  }

  uint64_t Refs(uint32_t version) {
    auto counts = service_->CountKeyReferences(tenant_);
    EXPECT_OK(counts);
    auto it = counts->find(version);
    return it == counts->end() ? 0 : it->second;
  }

  std::unique_ptr<ObjectService> service_;
  FakeRecorder recorder_;
  std::string tenant_;
  catalog::Bucket bucket_;
  RequestInfo request_;
};

TEST_F(ServiceLifecycleAuditTest, RewrapRecordsEachDataKeyOnceWithItsObjectAndNewVersion) {
  Put("a.pdf");
  Put("b.pdf");
  auto upload = service_->CreateUpload(bucket_, "big.bin", {});
  ASSERT_OK(upload);
  ASSERT_OK(keys_->RotateTenantKey(tenant_));
  service_->set_audit(&recorder_);

  catalog::WrappedKeyCursor cursor;
  auto r = service_->RewrapBatch(tenant_, 1, &cursor, 100, &request_);
  ASSERT_OK(r);
  EXPECT_EQ(r->rewrapped, 3u);
  EXPECT_EQ(Refs(1), 0u);
  // Each data key's rewrap, then the key-copies blob that keeps its blobs' copies under version 2,
  // whose own data key is recorded as a wrap before it is used.
  auto events = recorder_.events();
  ASSERT_EQ(events.size(), 4u);
  const audit::Event copies = events.back();
  events.pop_back();
  EXPECT_EQ(copies.operation, Operation::kDataKeyWrap);
  EXPECT_EQ(copies.key_version, 2u);
  EXPECT_EQ(copies.tenant, tenant_);
  EXPECT_EQ(copies.bucket, "");
  auto key_copy_blobs = catalog_->ListBlobIds(catalog::BlobRefSource::kKeyCopies, "", 10);
  ASSERT_OK(key_copy_blobs);
  EXPECT_EQ(*key_copy_blobs, std::vector<std::string>{copies.object_id});
  std::map<std::string, audit::Event> by_key;
  for (const auto& e : events) {
    EXPECT_EQ(e.operation, Operation::kDataKeyRewrap);
    EXPECT_EQ(e.outcome, audit::Outcome::kSuccess);
    EXPECT_EQ(e.tenant, tenant_);
    EXPECT_EQ(e.key_id, tenant_);
    EXPECT_EQ(e.key_version, 2u);
    EXPECT_EQ(e.bucket, "dossiers");
    EXPECT_EQ(e.request.action, "cli:key rewrap");
    EXPECT_FALSE(e.object_id.empty());
    by_key[e.object_key] = e;
  }
  ASSERT_EQ(by_key.count("big.bin"), 1u);
  EXPECT_EQ(by_key["big.bin"].object_id, *upload);  // an upload in progress is named by its upload id
  EXPECT_EQ(by_key.count("a.pdf"), 1u);
  EXPECT_EQ(by_key.count("b.pdf"), 1u);
  // The walk is done: nothing more is recorded.
  auto done = service_->RewrapBatch(tenant_, 1, &cursor, 100, &request_);
  ASSERT_OK(done);
  EXPECT_EQ(done->examined, 0u);
  EXPECT_EQ(recorder_.events().size(), 4u);
  service_->set_audit(nullptr);
}

TEST_F(ServiceLifecycleAuditTest, RewrapLeavesDataKeysWhoseRecordFailsOnTheOldVersion) {
  Put("a.pdf");
  Put("b.pdf");
  ASSERT_OK(keys_->RotateTenantKey(tenant_));
  service_->set_audit(&recorder_);
  recorder_.set_failing(true);
  catalog::WrappedKeyCursor cursor;
  auto r = service_->RewrapBatch(tenant_, 1, &cursor, 100, &request_);
  ASSERT_THAT(r, StatusIs(Errc::kUnavailable));
  EXPECT_EQ(Refs(1), 2u);
  EXPECT_EQ(Refs(2), 0u);
  service_->set_audit(nullptr);
}

TEST_F(ServiceLifecycleAuditTest, DestroyIsRecordedFirstAndOnlyWhenItIsAllowed) {
  ASSERT_OK(keys_->RotateTenantKey(tenant_));
  service_->set_audit(&recorder_);
  // Refused for the active version: nothing recorded.
  auto active = service_->DestroyKeyVersion(tenant_, 2, &request_);
  ASSERT_THAT(active, StatusIs(Errc::kPreconditionFailed));
  EXPECT_TRUE(recorder_.events().empty());
  // Unwritable log: nothing destroyed.
  recorder_.set_failing(true);
  auto refused = service_->DestroyKeyVersion(tenant_, 1, &request_);
  ASSERT_THAT(refused, StatusIs(Errc::kUnavailable));
  EXPECT_EQ(keys_->ListKeyVersions(tenant_)->size(), 2u);
  recorder_.set_failing(false);
  ASSERT_OK(service_->DestroyKeyVersion(tenant_, 1, &request_));
  EXPECT_EQ(keys_->ListKeyVersions(tenant_)->size(), 1u);
  auto events = recorder_.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].operation, Operation::kTenantKeyDestroy);
  EXPECT_EQ(events[0].tenant, tenant_);
  EXPECT_EQ(events[0].key_id, tenant_);
  EXPECT_EQ(events[0].key_version, 1u);
  EXPECT_EQ(events[0].outcome, audit::Outcome::kSuccess);
  service_->set_audit(nullptr);
}

}  // namespace
}  // namespace coffre::service
