// Key lifecycle in the keystore: several access keys per tenant, disable/enable/delete, key
// versions (rotate, destroy, rewrap), crypto-shredding, and how changes made by another process
// (the admin CLI) reach a running daemon's cache.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::keystore {
namespace {

using test_support::StatusIs;
using ::testing::HasSubstr;

using std::chrono::hours;
using std::chrono::milliseconds;

class KeyLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.str() + "/keystore.db";
    root_ = SecretBytes::Random(32);
    ks_ = Open(clock_);
    admin_ = Open(admin_clock_);
  }
  void TearDown() override {
    ks_.reset();
    admin_.reset();
  }

  // The daemon's keystore (ks_) and the admin CLI's (admin_): two connections, as two processes.
  std::unique_ptr<Keystore> Open(const Clock& clock) {
    auto ks = Keystore::Open(path_, root_, clock);
    EXPECT_OK(ks);
    return ks.ok() ? std::move(ks).value() : nullptr;
  }

  Tenant MakeTenant(const std::string& name) {
    auto t = ks_->CreateTenant(name);
    EXPECT_OK(t);
    return t.ok() ? *t : Tenant{};
  }

  void Advance(milliseconds d) { clock_.Set(clock_.Now() + d); }

  std::string DiskBytes() {
    std::string all;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.str())) {
      std::ifstream f(entry.path(), std::ios::binary);
      all += std::string(std::istreambuf_iterator<char>(f), {});
    }
    return all;
  }

  std::vector<std::string> Events(const std::string& tenant_id) {
    std::vector<std::string> out;
    auto events = ks_->ListKeyEvents(tenant_id);
    EXPECT_OK(events);
    for (const auto& e : *events) {
      out.push_back(e.event + (e.version ? ":" + std::to_string(e.version) : ""));
    }
    return out;
  }

  FixedClock clock_{std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
  FixedClock admin_clock_{std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
  test_support::TempDir dir_{"keylife"};
  std::string path_;
  SecretBytes root_;
  std::unique_ptr<Keystore> ks_;
  std::unique_ptr<Keystore> admin_;
};

// --- access keys -------------------------------------------------------------------------

TEST_F(KeyLifecycleTest, DestroyFenceMarksOnlyRetiredVersionsAndIsReadFresh) {
  const Tenant t = MakeTenant("acme");
  ASSERT_EQ(*ks_->RotateTenantKey(t.id), 2u);
  EXPECT_THAT(ks_->SetKeyVersionDestroying(t.id, 2, true), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(ks_->SetKeyVersionDestroying(t.id, 7, true), StatusIs(StatusCode::kNotFound));
  EXPECT_FALSE(*admin_->IsKeyVersionDestroying(t.id, 1));
  // Marked by one process (the CLI), seen at once by the other (the daemon), whatever it cached.
  ASSERT_OK(admin_->SetKeyVersionDestroying(t.id, 1, true));
  EXPECT_TRUE(*ks_->IsKeyVersionDestroying(t.id, 1));
  EXPECT_FALSE(*ks_->IsKeyVersionDestroying(t.id, 2));
  ASSERT_OK(admin_->SetKeyVersionDestroying(t.id, 1, false));
  EXPECT_FALSE(*ks_->IsKeyVersionDestroying(t.id, 1));
  ASSERT_OK(admin_->DestroyKeyVersion(t.id, 1));
  EXPECT_TRUE(*ks_->IsKeyVersionDestroying(t.id, 1)) << "a destroyed version counts as being destroyed";
}

TEST_F(KeyLifecycleTest, SeveralAccessKeysPerTenantDisableEnableDelete) {
  Tenant t = MakeTenant("bank");
  Tenant other = MakeTenant("other");
  auto a = ks_->CreateAccessKey(t.id);
  auto b = ks_->CreateAccessKey(t.id);
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_NE(a->key.access_key_id, b->key.access_key_id);
  EXPECT_NE(a->secret_access_key, b->secret_access_key);
  ASSERT_EQ(ks_->ListAccessKeys(t.id)->size(), 2u);

  ASSERT_OK(ks_->SetAccessKeyEnabled(t.id, a->key.access_key_id, false));
  EXPECT_THAT(ks_->ResolveAccessKey(a->key.access_key_id), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_OK(ks_->ResolveAccessKey(b->key.access_key_id));  // the other key is unaffected
  auto listed = ks_->ListAccessKeys(t.id);
  ASSERT_OK(listed);
  for (const auto& k : *listed) {
    EXPECT_EQ(k.enabled, k.access_key_id != a->key.access_key_id);
  }
  ASSERT_OK(ks_->SetAccessKeyEnabled(t.id, a->key.access_key_id, true));
  EXPECT_OK(ks_->ResolveAccessKey(a->key.access_key_id));

  // A key is managed only through its own tenant.
  EXPECT_THAT(ks_->SetAccessKeyEnabled(other.id, a->key.access_key_id, false), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->DeleteAccessKey(other.id, a->key.access_key_id), StatusIs(StatusCode::kNotFound));
  EXPECT_OK(ks_->ResolveAccessKey(a->key.access_key_id));

  ASSERT_OK(ks_->DeleteAccessKey(t.id, a->key.access_key_id));
  EXPECT_THAT(ks_->ResolveAccessKey(a->key.access_key_id), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->DeleteAccessKey(t.id, a->key.access_key_id), StatusIs(StatusCode::kNotFound));
  ASSERT_EQ(ks_->ListAccessKeys(t.id)->size(), 1u);
  EXPECT_EQ(Events(t.id),
            (std::vector<std::string>{"tenant-created:1", "access-key-created", "access-key-created",
                                      "access-key-disabled", "access-key-enabled", "access-key-deleted"}));
}

TEST_F(KeyLifecycleTest, AccessKeyDisabledByAnotherProcessIsRefusedWithinTheRevalidateInterval) {
  Tenant t = MakeTenant("bank");
  auto ak = ks_->CreateAccessKey(t.id);
  ASSERT_OK(ak);
  ASSERT_OK(ks_->ResolveAccessKey(ak->key.access_key_id));  // cached in the daemon

  ASSERT_OK(admin_->SetAccessKeyEnabled(t.id, ak->key.access_key_id, false));
  Advance(milliseconds(Keystore::kRevalidateIntervalMs));
  EXPECT_THAT(ks_->ResolveAccessKey(ak->key.access_key_id), StatusIs(StatusCode::kPermissionDenied));

  ASSERT_OK(admin_->SetAccessKeyEnabled(t.id, ak->key.access_key_id, true));
  Advance(milliseconds(Keystore::kRevalidateIntervalMs));
  EXPECT_OK(ks_->ResolveAccessKey(ak->key.access_key_id));

  ASSERT_OK(admin_->DeleteAccessKey(t.id, ak->key.access_key_id));
  Advance(milliseconds(Keystore::kRevalidateIntervalMs));
  EXPECT_THAT(ks_->ResolveAccessKey(ak->key.access_key_id), StatusIs(StatusCode::kNotFound));
}

// --- key versions ------------------------------------------------------------------------

TEST_F(KeyLifecycleTest, RotationMakesANewActiveVersionAndOldOnesKeepDecrypting) {
  Tenant t = MakeTenant("bank");
  auto v1 = ks_->NewDataKey(t.id, AsBytes("obj-1"));
  ASSERT_OK(v1);
  EXPECT_EQ(v1->tenant_key_version, 1u);
  auto rotated = ks_->RotateTenantKey(t.id);
  ASSERT_OK(rotated);
  EXPECT_EQ(*rotated, 2u);
  auto v2 = ks_->NewDataKey(t.id, AsBytes("obj-2"));
  ASSERT_OK(v2);
  EXPECT_EQ(v2->tenant_key_version, 2u);
  auto k1 = ks_->UnwrapDataKey(t.id, 1, v1->wrapped, AsBytes("obj-1"));
  ASSERT_OK(k1);
  EXPECT_TRUE(std::equal(k1->Reveal().begin(), k1->Reveal().end(), v1->key.Reveal().begin()));
  auto versions = ks_->ListKeyVersions(t.id);
  ASSERT_OK(versions);
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_FALSE((*versions)[0].active);
  EXPECT_TRUE((*versions)[1].active);
  EXPECT_EQ(Events(t.id), (std::vector<std::string>{"tenant-created:1", "key-rotated:2"}));
  EXPECT_THAT(ks_->RotateTenantKey(RandomId(16)), StatusIs(StatusCode::kNotFound));
}

TEST_F(KeyLifecycleTest, RotationByAnotherProcessReachesTheDaemonWithinTheRevalidateInterval) {
  Tenant t = MakeTenant("bank");
  ASSERT_EQ(ks_->NewDataKey(t.id, AsBytes("x"))->tenant_key_version, 1u);
  ASSERT_EQ(*admin_->RotateTenantKey(t.id), 2u);
  Advance(milliseconds(Keystore::kRevalidateIntervalMs));
  EXPECT_EQ(ks_->NewDataKey(t.id, AsBytes("x"))->tenant_key_version, 2u);
}

TEST_F(KeyLifecycleTest, DestroyRefusesTheActiveVersionAndRemovesARetiredOne) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("obj"));
  ASSERT_OK(dk);
  EXPECT_THAT(ks_->DestroyKeyVersion(t.id, 1), StatusIs(StatusCode::kFailedPrecondition));  // active
  ASSERT_OK(ks_->RotateTenantKey(t.id));
  EXPECT_THAT(ks_->DestroyKeyVersion(t.id, 2), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(ks_->DestroyKeyVersion(t.id, 7), StatusIs(StatusCode::kNotFound));
  ASSERT_OK(ks_->DestroyKeyVersion(t.id, 1));
  EXPECT_THAT(ks_->UnwrapDataKey(t.id, 1, dk->wrapped, AsBytes("obj")), StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(ks_->ListKeyVersions(t.id)->size(), 1u);
  // Version numbers are never reused.
  EXPECT_EQ(*ks_->RotateTenantKey(t.id), 3u);
  EXPECT_EQ(Events(t.id),
            (std::vector<std::string>{"tenant-created:1", "key-rotated:2", "key-destroyed:1", "key-rotated:3"}));
}

TEST_F(KeyLifecycleTest, RewrapMovesADataKeyToTheActiveVersionWithTheSameBinding) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("obj"));
  ASSERT_OK(dk);
  ASSERT_OK(ks_->RotateTenantKey(t.id));
  auto r = ks_->RewrapDataKey(t.id, 1, dk->wrapped, AsBytes("obj"));
  ASSERT_OK(r);
  EXPECT_EQ(r->tenant_key_version, 2u);
  ASSERT_OK(ks_->DestroyKeyVersion(t.id, 1));
  auto k = ks_->UnwrapDataKey(t.id, 2, r->wrapped, AsBytes("obj"));
  ASSERT_OK(k);
  EXPECT_TRUE(std::equal(k->Reveal().begin(), k->Reveal().end(), dk->key.Reveal().begin()));
  // The binding to the object is kept: another object's identity does not open it.
  EXPECT_THAT(ks_->UnwrapDataKey(t.id, 2, r->wrapped, AsBytes("other")), StatusIs(StatusCode::kCorruption));
  EXPECT_THAT(ks_->RewrapDataKey(t.id, 2, r->wrapped, AsBytes("other")), StatusIs(StatusCode::kCorruption));
}

TEST_F(KeyLifecycleTest, ASecondCopyOfADataKeyOpensOnlyUnderItsOwnBinding) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("row"));
  ASSERT_OK(dk);
  auto copy = ks_->WrapDataKey(t.id, dk->tenant_key_version, dk->key, AsBytes("blob"));
  ASSERT_OK(copy);
  EXPECT_NE(*copy, dk->wrapped);
  auto k = ks_->UnwrapDataKey(t.id, dk->tenant_key_version, *copy, AsBytes("blob"));
  ASSERT_OK(k);
  EXPECT_TRUE(std::equal(k->Reveal().begin(), k->Reveal().end(), dk->key.Reveal().begin()));
  EXPECT_THAT(ks_->UnwrapDataKey(t.id, dk->tenant_key_version, *copy, AsBytes("row")),
              StatusIs(StatusCode::kCorruption));
  // Another tenant's keys do not open it; a version that does not exist cannot wrap.
  Tenant other = MakeTenant("other");
  EXPECT_THAT(ks_->UnwrapDataKey(other.id, 1, *copy, AsBytes("blob")), StatusIs(StatusCode::kCorruption));
  EXPECT_THAT(ks_->WrapDataKey(t.id, 7, dk->key, AsBytes("blob")), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->WrapDataKey(t.id, 1, SecretBytes(16), AsBytes("blob")), StatusIs(StatusCode::kInvalidArgument));
  // A shredded tenant wraps nothing.
  ASSERT_OK(ks_->ShredTenant(t.id));
  EXPECT_THAT(ks_->WrapDataKey(t.id, 1, dk->key, AsBytes("blob")), StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(KeyLifecycleTest, AutomaticRotationRotatesOnlyKeysOlderThanThePolicy) {
  Tenant old_tenant = MakeTenant("old");
  Advance(hours(24 * 5));
  Tenant young = MakeTenant("young");
  Tenant shredded = MakeTenant("gone");
  ASSERT_OK(ks_->ShredTenant(shredded.id));
  Advance(hours(24 * 3));  // old: 8 days, young: 3 days
  const int64_t seven_days = 7LL * 24 * 3600 * 1000;
  auto rotated = ks_->RotateKeysOlderThan(seven_days);
  ASSERT_OK(rotated);
  EXPECT_EQ(*rotated, std::vector<KeyRef>{KeyRef(old_tenant.id)});
  EXPECT_TRUE(ks_->RotateKeysOlderThan(seven_days)->empty());  // the new version is young
  EXPECT_EQ(ks_->NewDataKey(old_tenant.id, AsBytes("x"))->tenant_key_version, 2u);
  EXPECT_EQ(ks_->NewDataKey(young.id, AsBytes("x"))->tenant_key_version, 1u);
}

// --- hardening: what binds a stored key to its tenant and version ------------------------

TEST_F(KeyLifecycleTest, DataKeyPresentedUnderAnotherVersionDoesNotOpen) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("obj"));
  ASSERT_OK(ks_->RotateTenantKey(t.id));
  EXPECT_THAT(ks_->UnwrapDataKey(t.id, 2, dk->wrapped, AsBytes("obj")), StatusIs(StatusCode::kCorruption));
}

TEST_F(KeyLifecycleTest, TenantKeyRowCopiedToAnotherVersionDoesNotOpen) {
  Tenant t = MakeTenant("bank");
  ASSERT_OK(ks_->RotateTenantKey(t.id));
  ks_.reset();
  {
    auto conn = db::Connection::Open(path_);
    ASSERT_OK(conn);
    ASSERT_OK(
        (*conn)->Exec("UPDATE tenant_keys SET wrapped_key = (SELECT wrapped_key FROM tenant_keys WHERE "
                      "version = 1) WHERE version = 2"));
  }
  ks_ = Open(clock_);
  EXPECT_THAT(ks_->NewDataKey(t.id, AsBytes("x")), StatusIs(StatusCode::kCorruption));
}

TEST_F(KeyLifecycleTest, DataKeyWrappedForOneTenantFailsInAnotherTenantsRow) {
  Tenant a = MakeTenant("a");
  Tenant b = MakeTenant("b");
  auto dk = ks_->NewDataKey(a.id, AsBytes("obj"));
  ASSERT_OK(dk);
  // Same version number, same object identity: only the tenant differs.
  EXPECT_THAT(ks_->UnwrapDataKey(b.id, 1, dk->wrapped, AsBytes("obj")), StatusIs(StatusCode::kCorruption));
  EXPECT_THAT(ks_->RewrapDataKey(b.id, 1, dk->wrapped, AsBytes("obj")), StatusIs(StatusCode::kCorruption));
}

// --- crypto-shredding --------------------------------------------------------------------

TEST_F(KeyLifecycleTest, ShredDestroysEveryVersionOfOneTenantOnly) {
  Tenant a = MakeTenant("a");
  Tenant b = MakeTenant("b");
  auto a1 = ks_->NewDataKey(a.id, AsBytes("obj"));
  ASSERT_OK(ks_->RotateTenantKey(a.id));
  auto a2 = ks_->NewDataKey(a.id, AsBytes("obj2"));
  auto b1 = ks_->NewDataKey(b.id, AsBytes("obj"));
  auto ak = ks_->CreateAccessKey(a.id);
  auto bk = ks_->CreateAccessKey(b.id);
  ASSERT_OK(a1);
  ASSERT_OK(a2);
  ASSERT_OK(b1);
  ASSERT_OK(ak);
  ASSERT_OK(bk);
  std::vector<Bytes> wrapped_tenant_keys;
  {
    auto conn = db::Connection::Open(path_);
    auto st = (*conn)->Prepare("SELECT wrapped_key FROM tenant_keys WHERE tenant_id = ?");
    ASSERT_OK(st->BindAll(a.id));
    while (*st->Step()) {
      wrapped_tenant_keys.push_back(st->ColumnBlob(0));
    }
  }
  ASSERT_EQ(wrapped_tenant_keys.size(), 2u);

  ASSERT_OK(ks_->ShredTenant(a.id));
  for (auto [version, wrapped, aad] : {std::tuple{1u, a1->wrapped, "obj"}, std::tuple{2u, a2->wrapped, "obj2"}}) {
    auto r = ks_->UnwrapDataKey(a.id, version, wrapped, AsBytes(aad));
    ASSERT_THAT(r, StatusIs(StatusCode::kPermissionDenied, HasSubstr("crypto-shredded")));
  }
  EXPECT_THAT(ks_->NewDataKey(a.id, AsBytes("x")), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(ks_->ResolveAccessKey(ak->key.access_key_id), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(ks_->SetAccessKeyEnabled(a.id, ak->key.access_key_id, true), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(ks_->CreateAccessKey(a.id), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(ks_->RotateTenantKey(a.id), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(ks_->ShredTenant(a.id), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_TRUE(ks_->ListKeyVersions(a.id)->empty());
  EXPECT_TRUE(ks_->GetTenant(a.id)->shredded.has_value());
  EXPECT_EQ(Events(a.id).back(), "tenant-shredded");

  // The other tenant is untouched.
  EXPECT_OK(ks_->UnwrapDataKey(b.id, 1, b1->wrapped, AsBytes("obj")));
  EXPECT_OK(ks_->ResolveAccessKey(bk->key.access_key_id));
  EXPECT_FALSE(ks_->GetTenant(b.id)->shredded.has_value());

  // The wrapped tenant keys are gone from the files, not just unlinked from the b-tree.
  ks_.reset();
  admin_.reset();
  const std::string disk = DiskBytes();
  for (const Bytes& w : wrapped_tenant_keys) {
    EXPECT_EQ(disk.find(std::string(w.begin(), w.end())), std::string::npos);
  }
  // And a reopened keystore agrees.
  ks_ = Open(clock_);
  EXPECT_THAT(ks_->UnwrapDataKey(a.id, 1, a1->wrapped, AsBytes("obj")).status(),
              StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(KeyLifecycleTest, ShredByAnotherProcessDropsTheDaemonsCachedKeys) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("obj"));
  ASSERT_OK(ks_->UnwrapDataKey(t.id, 1, dk->wrapped, AsBytes("obj")));  // tenant key cached
  ASSERT_OK(admin_->ShredTenant(t.id));
  Advance(milliseconds(Keystore::kRevalidateIntervalMs));
  EXPECT_THAT(ks_->UnwrapDataKey(t.id, 1, dk->wrapped, AsBytes("obj")).status(),
              StatusIs(StatusCode::kPermissionDenied));
}

}  // namespace
}  // namespace coffre::keystore
