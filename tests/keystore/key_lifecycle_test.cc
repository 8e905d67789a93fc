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

namespace coffre::keystore {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;

class KeyLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "coffre-keylife-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/keystore.db";
    root_ = SecretBytes::Random(32);
    ks_ = Open(clock_);
    admin_ = Open(admin_clock_);
  }
  void TearDown() override {
    ks_.reset();
    admin_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The daemon's keystore (ks_) and the admin CLI's (admin_): two connections, as two processes.
  std::unique_ptr<Keystore> Open(const Clock& clock) {
    auto ks = Keystore::Open(path_, root_, clock);
    EXPECT_TRUE(ks.ok()) << ks.status().ToString();
    return ks.ok() ? std::move(ks).value() : nullptr;
  }

  Tenant MakeTenant(const std::string& name) {
    auto t = ks_->CreateTenant(name);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : Tenant{};
  }

  void Advance(milliseconds d) { clock_.Set(clock_.Now() + d); }

  std::string DiskBytes() {
    std::string all;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      std::ifstream f(entry.path(), std::ios::binary);
      all += std::string(std::istreambuf_iterator<char>(f), {});
    }
    return all;
  }

  std::vector<std::string> Events(const std::string& tenant_id) {
    std::vector<std::string> out;
    auto events = ks_->ListKeyEvents(tenant_id);
    EXPECT_TRUE(events.ok());
    for (const auto& e : *events) {
      out.push_back(e.event + (e.version ? ":" + std::to_string(e.version) : ""));
    }
    return out;
  }

  FixedClock clock_{std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
  FixedClock admin_clock_{std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
  std::string dir_;
  std::string path_;
  SecretBytes root_;
  std::unique_ptr<Keystore> ks_;
  std::unique_ptr<Keystore> admin_;
};

// --- access keys -------------------------------------------------------------------------

TEST_F(KeyLifecycleTest, DestroyFenceMarksOnlyRetiredVersionsAndIsReadFresh) {
  const Tenant t = MakeTenant("acme");
  ASSERT_EQ(*ks_->RotateTenantKey(t.id), 2u);
  EXPECT_EQ(ks_->SetKeyVersionDestroying(t.id, 2, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ks_->SetKeyVersionDestroying(t.id, 7, true).code(), StatusCode::kNotFound);
  EXPECT_FALSE(*admin_->IsKeyVersionDestroying(t.id, 1));
  // Marked by one process (the CLI), seen at once by the other (the daemon), whatever it cached.
  ASSERT_TRUE(admin_->SetKeyVersionDestroying(t.id, 1, true).ok());
  EXPECT_TRUE(*ks_->IsKeyVersionDestroying(t.id, 1));
  EXPECT_FALSE(*ks_->IsKeyVersionDestroying(t.id, 2));
  ASSERT_TRUE(admin_->SetKeyVersionDestroying(t.id, 1, false).ok());
  EXPECT_FALSE(*ks_->IsKeyVersionDestroying(t.id, 1));
  ASSERT_TRUE(admin_->DestroyKeyVersion(t.id, 1).ok());
  EXPECT_TRUE(*ks_->IsKeyVersionDestroying(t.id, 1)) << "a destroyed version counts as being destroyed";
}

TEST_F(KeyLifecycleTest, SeveralAccessKeysPerTenantDisableEnableDelete) {
  Tenant t = MakeTenant("bank");
  Tenant other = MakeTenant("other");
  auto a = ks_->CreateAccessKey(t.id);
  auto b = ks_->CreateAccessKey(t.id);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->key.access_key_id, b->key.access_key_id);
  EXPECT_NE(a->secret_access_key, b->secret_access_key);
  ASSERT_EQ(ks_->ListAccessKeys(t.id)->size(), 2u);

  ASSERT_TRUE(ks_->SetAccessKeyEnabled(t.id, a->key.access_key_id, false).ok());
  EXPECT_EQ(ks_->ResolveAccessKey(a->key.access_key_id).status().code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(ks_->ResolveAccessKey(b->key.access_key_id).ok());  // the other key is unaffected
  auto listed = ks_->ListAccessKeys(t.id);
  ASSERT_TRUE(listed.ok());
  for (const auto& k : *listed) {
    EXPECT_EQ(k.enabled, k.access_key_id != a->key.access_key_id);
  }
  ASSERT_TRUE(ks_->SetAccessKeyEnabled(t.id, a->key.access_key_id, true).ok());
  EXPECT_TRUE(ks_->ResolveAccessKey(a->key.access_key_id).ok());

  // A key is managed only through its own tenant.
  EXPECT_EQ(ks_->SetAccessKeyEnabled(other.id, a->key.access_key_id, false).code(), StatusCode::kNotFound);
  EXPECT_EQ(ks_->DeleteAccessKey(other.id, a->key.access_key_id).code(), StatusCode::kNotFound);
  EXPECT_TRUE(ks_->ResolveAccessKey(a->key.access_key_id).ok());

  ASSERT_TRUE(ks_->DeleteAccessKey(t.id, a->key.access_key_id).ok());
  EXPECT_EQ(ks_->ResolveAccessKey(a->key.access_key_id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ks_->DeleteAccessKey(t.id, a->key.access_key_id).code(), StatusCode::kNotFound);
  ASSERT_EQ(ks_->ListAccessKeys(t.id)->size(), 1u);
  EXPECT_EQ(Events(t.id),
            (std::vector<std::string>{"tenant-created:1", "access-key-created", "access-key-created",
                                      "access-key-disabled", "access-key-enabled", "access-key-deleted"}));
}

TEST_F(KeyLifecycleTest, AccessKeyDisabledByAnotherProcessIsRefusedWithinTheRevalidateInterval) {
  Tenant t = MakeTenant("bank");
  auto ak = ks_->CreateAccessKey(t.id);
  ASSERT_TRUE(ak.ok());
  ASSERT_TRUE(ks_->ResolveAccessKey(ak->key.access_key_id).ok());  // cached in the daemon

  ASSERT_TRUE(admin_->SetAccessKeyEnabled(t.id, ak->key.access_key_id, false).ok());
  Advance(milliseconds(Keystore::kRevalidateIntervalMs));
  EXPECT_EQ(ks_->ResolveAccessKey(ak->key.access_key_id).status().code(), StatusCode::kPermissionDenied);

  ASSERT_TRUE(admin_->SetAccessKeyEnabled(t.id, ak->key.access_key_id, true).ok());
  Advance(milliseconds(Keystore::kRevalidateIntervalMs));
  EXPECT_TRUE(ks_->ResolveAccessKey(ak->key.access_key_id).ok());

  ASSERT_TRUE(admin_->DeleteAccessKey(t.id, ak->key.access_key_id).ok());
  Advance(milliseconds(Keystore::kRevalidateIntervalMs));
  EXPECT_EQ(ks_->ResolveAccessKey(ak->key.access_key_id).status().code(), StatusCode::kNotFound);
}

// --- key versions ------------------------------------------------------------------------

TEST_F(KeyLifecycleTest, RotationMakesANewActiveVersionAndOldOnesKeepDecrypting) {
  Tenant t = MakeTenant("bank");
  auto v1 = ks_->NewDataKey(t.id, AsBytes("obj-1"));
  ASSERT_TRUE(v1.ok());
  EXPECT_EQ(v1->tenant_key_version, 1u);
  auto rotated = ks_->RotateTenantKey(t.id);
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  EXPECT_EQ(*rotated, 2u);
  auto v2 = ks_->NewDataKey(t.id, AsBytes("obj-2"));
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->tenant_key_version, 2u);
  auto k1 = ks_->UnwrapDataKey(t.id, 1, v1->wrapped, AsBytes("obj-1"));
  ASSERT_TRUE(k1.ok());
  EXPECT_TRUE(std::equal(k1->Reveal().begin(), k1->Reveal().end(), v1->key.Reveal().begin()));
  auto versions = ks_->ListKeyVersions(t.id);
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_FALSE((*versions)[0].active);
  EXPECT_TRUE((*versions)[1].active);
  EXPECT_EQ(Events(t.id), (std::vector<std::string>{"tenant-created:1", "key-rotated:2"}));
  EXPECT_EQ(ks_->RotateTenantKey(RandomId(16)).status().code(), StatusCode::kNotFound);
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
  ASSERT_TRUE(dk.ok());
  EXPECT_EQ(ks_->DestroyKeyVersion(t.id, 1).code(), StatusCode::kFailedPrecondition);  // active
  ASSERT_TRUE(ks_->RotateTenantKey(t.id).ok());
  EXPECT_EQ(ks_->DestroyKeyVersion(t.id, 2).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ks_->DestroyKeyVersion(t.id, 7).code(), StatusCode::kNotFound);
  ASSERT_TRUE(ks_->DestroyKeyVersion(t.id, 1).ok());
  EXPECT_EQ(ks_->UnwrapDataKey(t.id, 1, dk->wrapped, AsBytes("obj")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ks_->ListKeyVersions(t.id)->size(), 1u);
  // Version numbers are never reused.
  EXPECT_EQ(*ks_->RotateTenantKey(t.id), 3u);
  EXPECT_EQ(Events(t.id),
            (std::vector<std::string>{"tenant-created:1", "key-rotated:2", "key-destroyed:1", "key-rotated:3"}));
}

TEST_F(KeyLifecycleTest, RewrapMovesADataKeyToTheActiveVersionWithTheSameBinding) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("obj"));
  ASSERT_TRUE(dk.ok());
  ASSERT_TRUE(ks_->RotateTenantKey(t.id).ok());
  auto r = ks_->RewrapDataKey(t.id, 1, dk->wrapped, AsBytes("obj"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tenant_key_version, 2u);
  ASSERT_TRUE(ks_->DestroyKeyVersion(t.id, 1).ok());
  auto k = ks_->UnwrapDataKey(t.id, 2, r->wrapped, AsBytes("obj"));
  ASSERT_TRUE(k.ok());
  EXPECT_TRUE(std::equal(k->Reveal().begin(), k->Reveal().end(), dk->key.Reveal().begin()));
  // The binding to the object is kept: another object's identity does not open it.
  EXPECT_EQ(ks_->UnwrapDataKey(t.id, 2, r->wrapped, AsBytes("other")).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ks_->RewrapDataKey(t.id, 2, r->wrapped, AsBytes("other")).status().code(), StatusCode::kCorruption);
}

TEST_F(KeyLifecycleTest, AutomaticRotationRotatesOnlyKeysOlderThanThePolicy) {
  Tenant old_tenant = MakeTenant("old");
  Advance(hours(24 * 5));
  Tenant young = MakeTenant("young");
  Tenant shredded = MakeTenant("gone");
  ASSERT_TRUE(ks_->ShredTenant(shredded.id).ok());
  Advance(hours(24 * 3));  // old: 8 days, young: 3 days
  const int64_t seven_days = 7LL * 24 * 3600 * 1000;
  auto rotated = ks_->RotateKeysOlderThan(seven_days);
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  EXPECT_EQ(*rotated, std::vector<std::string>{old_tenant.id});
  EXPECT_TRUE(ks_->RotateKeysOlderThan(seven_days)->empty());  // the new version is young
  EXPECT_EQ(ks_->NewDataKey(old_tenant.id, AsBytes("x"))->tenant_key_version, 2u);
  EXPECT_EQ(ks_->NewDataKey(young.id, AsBytes("x"))->tenant_key_version, 1u);
}

// --- hardening: what binds a stored key to its tenant and version ------------------------

TEST_F(KeyLifecycleTest, DataKeyPresentedUnderAnotherVersionDoesNotOpen) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("obj"));
  ASSERT_TRUE(ks_->RotateTenantKey(t.id).ok());
  EXPECT_EQ(ks_->UnwrapDataKey(t.id, 2, dk->wrapped, AsBytes("obj")).status().code(), StatusCode::kCorruption);
}

TEST_F(KeyLifecycleTest, TenantKeyRowCopiedToAnotherVersionDoesNotOpen) {
  Tenant t = MakeTenant("bank");
  ASSERT_TRUE(ks_->RotateTenantKey(t.id).ok());
  ks_.reset();
  {
    auto conn = db::Connection::Open(path_);
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)
                    ->Exec("UPDATE tenant_keys SET wrapped_key = (SELECT wrapped_key FROM tenant_keys WHERE "
                           "version = 1) WHERE version = 2")
                    .ok());
  }
  ks_ = Open(clock_);
  EXPECT_EQ(ks_->NewDataKey(t.id, AsBytes("x")).status().code(), StatusCode::kCorruption);
}

TEST_F(KeyLifecycleTest, DataKeyWrappedForOneTenantFailsInAnotherTenantsRow) {
  Tenant a = MakeTenant("a");
  Tenant b = MakeTenant("b");
  auto dk = ks_->NewDataKey(a.id, AsBytes("obj"));
  ASSERT_TRUE(dk.ok());
  // Same version number, same object identity: only the tenant differs.
  EXPECT_EQ(ks_->UnwrapDataKey(b.id, 1, dk->wrapped, AsBytes("obj")).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ks_->RewrapDataKey(b.id, 1, dk->wrapped, AsBytes("obj")).status().code(), StatusCode::kCorruption);
}

// --- crypto-shredding --------------------------------------------------------------------

TEST_F(KeyLifecycleTest, ShredDestroysEveryVersionOfOneTenantOnly) {
  Tenant a = MakeTenant("a");
  Tenant b = MakeTenant("b");
  auto a1 = ks_->NewDataKey(a.id, AsBytes("obj"));
  ASSERT_TRUE(ks_->RotateTenantKey(a.id).ok());
  auto a2 = ks_->NewDataKey(a.id, AsBytes("obj2"));
  auto b1 = ks_->NewDataKey(b.id, AsBytes("obj"));
  auto ak = ks_->CreateAccessKey(a.id);
  auto bk = ks_->CreateAccessKey(b.id);
  ASSERT_TRUE(a1.ok() && a2.ok() && b1.ok() && ak.ok() && bk.ok());
  std::vector<Bytes> wrapped_tenant_keys;
  {
    auto conn = db::Connection::Open(path_);
    auto st = (*conn)->Prepare("SELECT wrapped_key FROM tenant_keys WHERE tenant_id = ?");
    ASSERT_TRUE(st->BindAll(a.id).ok());
    while (*st->Step()) {
      wrapped_tenant_keys.push_back(st->ColumnBlob(0));
    }
  }
  ASSERT_EQ(wrapped_tenant_keys.size(), 2u);

  ASSERT_TRUE(ks_->ShredTenant(a.id).ok());
  for (auto [version, wrapped, aad] : {std::tuple{1u, a1->wrapped, "obj"}, std::tuple{2u, a2->wrapped, "obj2"}}) {
    auto r = ks_->UnwrapDataKey(a.id, version, wrapped, AsBytes(aad));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
    EXPECT_NE(r.status().message().find("crypto-shredded"), std::string::npos);
  }
  EXPECT_EQ(ks_->NewDataKey(a.id, AsBytes("x")).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(ks_->ResolveAccessKey(ak->key.access_key_id).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(ks_->SetAccessKeyEnabled(a.id, ak->key.access_key_id, true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ks_->CreateAccessKey(a.id).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ks_->RotateTenantKey(a.id).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ks_->ShredTenant(a.id).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(ks_->ListKeyVersions(a.id)->empty());
  EXPECT_TRUE(ks_->GetTenant(a.id)->shredded.has_value());
  EXPECT_EQ(Events(a.id).back(), "tenant-shredded");

  // The other tenant is untouched.
  EXPECT_TRUE(ks_->UnwrapDataKey(b.id, 1, b1->wrapped, AsBytes("obj")).ok());
  EXPECT_TRUE(ks_->ResolveAccessKey(bk->key.access_key_id).ok());
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
  EXPECT_EQ(ks_->UnwrapDataKey(a.id, 1, a1->wrapped, AsBytes("obj")).status().code(), StatusCode::kPermissionDenied);
}

TEST_F(KeyLifecycleTest, ShredByAnotherProcessDropsTheDaemonsCachedKeys) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("obj"));
  ASSERT_TRUE(ks_->UnwrapDataKey(t.id, 1, dk->wrapped, AsBytes("obj")).ok());  // tenant key cached
  ASSERT_TRUE(admin_->ShredTenant(t.id).ok());
  Advance(milliseconds(Keystore::kRevalidateIntervalMs));
  EXPECT_EQ(ks_->UnwrapDataKey(t.id, 1, dk->wrapped, AsBytes("obj")).status().code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace coffre::keystore
