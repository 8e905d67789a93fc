// Authenticated keystore rows (rows.h; docs/KEYS.md "Authenticated rows"): each test plays
// someone who can write keystore.db but lacks the root key, with plain SQL beside an open keystore
// and across a reopen, and checks the forged, edited, moved or replayed row is refused and
// reported by CheckIntegrity. Also the conversion of a keystore written before rows were
// authenticated, and root key rotation over authenticated rows.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/hash.h"
#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"
#include "keystore/rows.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::keystore {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

using std::chrono::milliseconds;

class RowIntegrityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.str() + "/keystore.db";
    root_ = SecretBytes::Random(32);
  }
  void TearDown() override { ks_.reset(); }

  void Reopen() {
    ks_.reset();
    auto ks = Keystore::Open(path_, root_, clock_);
    ASSERT_OK(ks);
    ks_ = std::move(ks).value();
  }

  // What the attacker does: SQL on the file, through a connection of its own.
  void Sql(const std::string& sql) {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    Status st = (*conn)->Exec(sql);
    ASSERT_OK(st);
  }
  template <typename... Args>
  void SqlArgs(const std::string& sql, const Args&... args) {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    auto st = (*conn)->Prepare(sql);
    ASSERT_OK(st);
    ASSERT_OK(st->BindAll(args...));
    Status run = st->Run();
    ASSERT_OK(run);
  }
  // Every column of one row, to write back later (a replay).
  std::vector<Bytes> SaveAccessKeyRow(const std::string& id) {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    EXPECT_OK(conn);
    auto st = (*conn)->Prepare("SELECT secret, enabled, gen, mac FROM access_keys WHERE access_key_id = ?");
    EXPECT_OK(st);
    EXPECT_OK(st->BindAll(id));
    auto row = st->Step();
    EXPECT_TRUE(row.ok() && *row);
    return {st->ColumnBlob(0), Bytes{static_cast<uint8_t>(st->ColumnInt64(1))},
            Bytes{static_cast<uint8_t>(st->ColumnInt64(2))}, st->ColumnBlob(3)};
  }
  void RestoreAccessKeyRow(const std::string& id, const std::vector<Bytes>& saved) {
    SqlArgs("UPDATE access_keys SET secret = ?, enabled = ?, gen = ?, mac = ? WHERE access_key_id = ?", saved[0],
            int64_t{saved[1][0]}, int64_t{saved[2][0]}, saved[3], id);
  }

  void ExpectIntegrityFailure() {
    Status st = ks_->CheckIntegrity();
    EXPECT_THAT(st, StatusIs(StatusCode::kCorruption));
  }

  std::string NewTenant(const std::string& name) {
    auto t = ks_->CreateTenant(name);
    EXPECT_OK(t);
    return t->id;
  }

  FixedClock clock_{std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
  test_support::TempDir dir_{"rows"};
  std::string path_;
  SecretBytes root_;
  std::unique_ptr<Keystore> ks_;
};

TEST(DeriveRootSubkeyTest, OneKeyPerPurposeNeverTheRootKey) {
  const SecretBytes root = SecretBytes::Random(32);
  std::vector<Bytes> seen{Bytes(root.Reveal().begin(), root.Reveal().end())};
  for (RootKeyPurpose p : {RootKeyPurpose::kKeystoreWrap, RootKeyPurpose::kKeystoreRowMac,
                           RootKeyPurpose::kAuditSigningKeySeal, RootKeyPurpose::kAuditRootKeyFingerprint}) {
    const SecretBytes k = DeriveRootSubkey(root, p);
    ASSERT_EQ(k.size(), 32u);
    const Bytes b(k.Reveal().begin(), k.Reveal().end());
    for (const Bytes& other : seen) {
      EXPECT_NE(b, other);
    }
    seen.push_back(b);
    // Deterministic: the same root key gives the same subkey in every process.
    const SecretBytes again = DeriveRootSubkey(root, p);
    EXPECT_EQ(Bytes(again.Reveal().begin(), again.Reveal().end()), b);
  }
}

TEST_F(RowIntegrityTest, UntouchedKeystoreIsIntact) {
  Reopen();
  const std::string t = NewTenant("acme");
  ASSERT_OK(ks_->CreateAccessKey(t));
  ASSERT_OK(ks_->CreateAdminCredential("alice", AdminRole::kAdmin));
  ASSERT_OK(ks_->RotateTenantKey(t));
  ASSERT_OK(ks_->SetKeyVersionDestroying(t, 1, true));
  EXPECT_OK(ks_->CheckIntegrity());
  Reopen();
  EXPECT_OK(ks_->CheckIntegrity());
  EXPECT_EQ(ks_->IntegrityFailures(), 0u);
}

TEST_F(RowIntegrityTest, ForgedAdminCredentialIsRefused) {
  Reopen();
  ASSERT_OK(ks_->CreateAdminCredential("alice", AdminRole::kAdmin));
  const std::string token = std::string(kAdminTokenPrefix) + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  const crypto::Sha256Digest digest = crypto::Sha256::Digest(AsBytes(token));
  SqlArgs(
      "INSERT INTO admin_credentials(name, role, token_mac, created, gen, mac) VALUES('mallory', 'admin', ?, 1, 1, "
      "zeroblob(32))",
      ByteView(digest));
  EXPECT_THAT(ks_->AuthenticateAdminToken(token), StatusIs(StatusCode::kNotFound));
  ExpectIntegrityFailure();
  Reopen();
  EXPECT_THAT(ks_->AuthenticateAdminToken(token), StatusIs(StatusCode::kNotFound));
  ExpectIntegrityFailure();
  // The forged name cannot take part in dual control either.
  const std::string t = NewTenant("acme");
  EXPECT_EQ(
      ks_->RequestApproval(NewApprovalId(), GuardedOperation::kShredTenant, t, 0, "mallory", 60'000).status().code(),
      StatusCode::kPermissionDenied);
}

TEST_F(RowIntegrityTest, EditedCredentialRoleAndDisabledAreRefused) {
  Reopen();
  auto auditor = ks_->CreateAdminCredential("audrey", AdminRole::kAuditor);
  auto bob = ks_->CreateAdminCredential("bob", AdminRole::kAdmin);
  ASSERT_OK(auditor);
  ASSERT_OK(bob);
  ASSERT_OK(ks_->DisableAdminCredential("bob"));
  Sql("UPDATE admin_credentials SET role = 'admin' WHERE name = 'audrey'");
  Sql("UPDATE admin_credentials SET disabled = NULL WHERE name = 'bob'");
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_THAT(ks_->AuthenticateAdminToken(auditor->token), Not(IsOk()));
    EXPECT_THAT(ks_->AuthenticateAdminToken(bob->token), Not(IsOk()));
    ExpectIntegrityFailure();
    Reopen();
  }
  // Disabling a failing credential is the way out: it becomes valid, and disabled.
  ASSERT_OK(ks_->DisableAdminCredential("audrey"));
}

TEST_F(RowIntegrityTest, ReenabledAccessKeyIsRefused) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  ASSERT_OK(k);
  ASSERT_OK(ks_->SetAccessKeyEnabled(t, k->key.access_key_id, false));
  Sql("UPDATE access_keys SET enabled = 1");
  Reopen();
  EXPECT_THAT(ks_->ResolveAccessKey(k->key.access_key_id), StatusIs(StatusCode::kPermissionDenied));
  ExpectIntegrityFailure();
  // Enabling it through the API does not launder the edit; disabling makes it valid again.
  EXPECT_THAT(ks_->SetAccessKeyEnabled(t, k->key.access_key_id, true), Not(IsOk()));
  ASSERT_OK(ks_->SetAccessKeyEnabled(t, k->key.access_key_id, false));
  EXPECT_OK(ks_->SetAccessKeyEnabled(t, k->key.access_key_id, true));
  EXPECT_OK(ks_->ResolveAccessKey(k->key.access_key_id));
}

TEST_F(RowIntegrityTest, AccessKeyRowMovedToAnotherTenantIsRefused) {
  Reopen();
  const std::string a = NewTenant("alpha");
  const std::string b = NewTenant("beta");
  auto k = ks_->CreateAccessKey(a);
  ASSERT_OK(k);
  SqlArgs("UPDATE access_keys SET tenant_id = ? WHERE access_key_id = ?", b, k->key.access_key_id);
  Reopen();
  EXPECT_THAT(ks_->ResolveAccessKey(k->key.access_key_id), Not(IsOk()));
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, ReplayedAccessKeyRowIsRefusedByAProcessThatSawTheNewerOne) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  ASSERT_OK(k);
  const std::vector<Bytes> enabled_row = SaveAccessKeyRow(k->key.access_key_id);
  // Another process (the CLI) disables it; this one sees that once its cache is revalidated.
  {
    auto cli = Keystore::Open(path_, root_, clock_);
    ASSERT_OK(cli);
    ASSERT_OK((*cli)->SetAccessKeyEnabled(t, k->key.access_key_id, false));
  }
  clock_.Set(clock_.Now() + milliseconds(Keystore::kRevalidateIntervalMs + 1));
  EXPECT_THAT(ks_->ResolveAccessKey(k->key.access_key_id), StatusIs(StatusCode::kPermissionDenied));
  RestoreAccessKeyRow(k->key.access_key_id, enabled_row);
  clock_.Set(clock_.Now() + milliseconds(Keystore::kRevalidateIntervalMs + 1));
  EXPECT_THAT(ks_->ResolveAccessKey(k->key.access_key_id), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_GE(ks_->IntegrityFailures(), 1u);
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, ReplayedAccessKeyOfAShreddedTenantIsRefusedAfterRestart) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  ASSERT_OK(k);
  const std::vector<Bytes> enabled_row = SaveAccessKeyRow(k->key.access_key_id);
  ASSERT_OK(ks_->ShredTenant(t));
  RestoreAccessKeyRow(k->key.access_key_id, enabled_row);
  Reopen();  // a fresh process has seen no newer generation; the tenant's row still says shredded
  EXPECT_THAT(ks_->ResolveAccessKey(k->key.access_key_id), StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(RowIntegrityTest, UnshreddedTenantIsRefused) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  ASSERT_OK(k);
  ASSERT_OK(ks_->ShredTenant(t));
  Sql("UPDATE tenants SET shredded = NULL");
  Sql("UPDATE access_keys SET enabled = 1");
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_THAT(ks_->GetTenant(t), StatusIs(StatusCode::kNotFound));
    EXPECT_THAT(ks_->GetTenantByName("acme"), StatusIs(StatusCode::kNotFound));
    EXPECT_THAT(ks_->CreateAccessKey(t), Not(IsOk()));
    EXPECT_THAT(ks_->RotateTenantKey(t), Not(IsOk()));
    EXPECT_THAT(ks_->ResolveAccessKey(k->key.access_key_id), Not(IsOk()));
    auto listed = ks_->ListTenants();
    ASSERT_OK(listed);
    EXPECT_TRUE(listed->empty());
    ExpectIntegrityFailure();
    Reopen();
  }
}

TEST_F(RowIntegrityTest, ForgedKeyVersionStateIsRefused) {
  Reopen();
  const std::string t = NewTenant("acme");
  ASSERT_OK(ks_->RotateTenantKey(t));  // version 2 active, 1 retired
  Sql("UPDATE tenant_keys SET state = 'retired' WHERE version = 2");
  Sql("UPDATE tenant_keys SET state = 'active' WHERE version = 1");
  Reopen();
  EXPECT_THAT(ks_->NewDataKey(t, AsBytes("obj")), Not(IsOk()));
  EXPECT_THAT(ks_->DestroyKeyVersion(t, 2), Not(IsOk()));  // version 2 really is the active one
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, ClearedDestroyMarkIsTakenAsMarked) {
  Reopen();
  const std::string t = NewTenant("acme");
  ASSERT_OK(ks_->RotateTenantKey(t));
  ASSERT_OK(ks_->SetKeyVersionDestroying(t, 1, true));
  Sql("UPDATE tenant_keys SET destroying = NULL WHERE version = 1");
  auto marked = ks_->IsKeyVersionDestroying(t, 1);
  ASSERT_OK(marked);
  EXPECT_TRUE(*marked);
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, HandGrantedOrForgedApprovalIsRefused) {
  Reopen();
  const std::string t = NewTenant("acme");
  ASSERT_OK(ks_->CreateAdminCredential("alice", AdminRole::kAdmin));
  ASSERT_OK(ks_->CreateAdminCredential("bob", AdminRole::kAdmin));
  auto a = ks_->RequestApproval(NewApprovalId(), GuardedOperation::kShredTenant, t, 0, "alice", 600'000);
  ASSERT_OK(a);
  SqlArgs("UPDATE approvals SET approved_by = 'bob', approved = ? WHERE id = ?", int64_t{1'700'000'000'001}, a->id);
  SqlArgs(
      "INSERT INTO approvals(id, operation, tenant_id, version, requested_by, requested, expires, approved_by, "
      "approved, gen, mac) VALUES('apr-00000000deadbeef', 'tenant.shred', ?, 0, 'alice', ?, ?, 'bob', ?, 1, "
      "zeroblob(32))",
      t, int64_t{1'700'000'000'000}, int64_t{1'700'001'000'000}, int64_t{1'700'000'000'000});
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_THAT(ks_->UseApproval(a->id, GuardedOperation::kShredTenant, t, 0), Not(IsOk()));
    EXPECT_THAT(ks_->UseApproval("apr-00000000deadbeef", GuardedOperation::kShredTenant, t, 0), Not(IsOk()));
    auto listed = ks_->ListApprovals(10);
    ASSERT_OK(listed);
    EXPECT_TRUE(listed->empty());
    ExpectIntegrityFailure();
    Reopen();
  }
}

TEST_F(RowIntegrityTest, UsedApprovalCannotBeMadeUnusedByHand) {
  Reopen();
  const std::string t = NewTenant("acme");
  ASSERT_OK(ks_->CreateAdminCredential("alice", AdminRole::kAdmin));
  ASSERT_OK(ks_->CreateAdminCredential("bob", AdminRole::kAdmin));
  auto a = ks_->RequestApproval(NewApprovalId(), GuardedOperation::kDestroyKeyVersion, t, 1, "alice", 600'000);
  ASSERT_OK(a);
  ASSERT_OK(ks_->GrantApproval(a->id, "bob"));
  ASSERT_OK(ks_->UseApproval(a->id, GuardedOperation::kDestroyKeyVersion, t, 1));
  Sql("UPDATE approvals SET used = NULL");
  EXPECT_THAT(ks_->UseApproval(a->id, GuardedOperation::kDestroyKeyVersion, t, 1), Not(IsOk()));
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, RootRotationReMacsEveryRowAndRefusesForgedOnes) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  auto admin = ks_->CreateAdminCredential("alice", AdminRole::kAdmin);
  ASSERT_OK(k);
  ASSERT_OK(admin);
  auto dk = ks_->NewDataKey(t, AsBytes("obj"));
  ASSERT_OK(dk);
  ks_.reset();

  const SecretBytes new_root = SecretBytes::Random(32);
  auto rotated = RotateRootKey(path_, root_, new_root);
  ASSERT_OK(rotated);
  root_ = new_root;
  Reopen();
  EXPECT_OK(ks_->CheckIntegrity());
  EXPECT_OK(ks_->AuthenticateAdminToken(admin->token));  // tokens survive a rotation
  EXPECT_OK(ks_->ResolveAccessKey(k->key.access_key_id));
  auto unwrapped = ks_->UnwrapDataKey(t, dk->tenant_key_version, dk->wrapped, AsBytes("obj"));
  ASSERT_OK(unwrapped);
  EXPECT_TRUE(ConstantTimeEquals(unwrapped->Reveal(), dk->key.Reveal()));

  // A forged row is never made valid by a rotation: it is refused, and nothing changes.
  ks_.reset();
  Sql("UPDATE access_keys SET enabled = 0");
  Sql("UPDATE access_keys SET enabled = 1");  // same bytes: still valid
  Sql("UPDATE admin_credentials SET role = 'auditor'");
  auto refused = RotateRootKey(path_, root_, SecretBytes::Random(32));
  EXPECT_THAT(refused, StatusIs(StatusCode::kCorruption));
  Reopen();
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, ARunningProcessReportsARotationNotAForgery) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  ASSERT_OK(k);
  ASSERT_OK(RotateRootKey(path_, root_, SecretBytes::Random(32)));
  clock_.Set(clock_.Now() + milliseconds(Keystore::kRevalidateIntervalMs + 1));
  EXPECT_THAT(ks_->ResolveAccessKey(k->key.access_key_id), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(ks_->CheckIntegrity(), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(ks_->IntegrityFailures(), 0u);
}

// A keystore as written before rows were authenticated: schema version 5, values sealed under
// the raw root key, admin tokens as plain SHA-256.
TEST_F(RowIntegrityTest, LegacyKeystoreIsConvertedOnFirstOpen) {
  const std::string tenant_id(32, 'a');
  const std::string access_key_id = "CO" + std::string(18, 'A');
  const std::string secret(40, 's');
  const std::string token = std::string(kAdminTokenPrefix) + std::string(43, 'T');
  const SecretBytes tenant_key = SecretBytes::Random(32);
  const SecretBytes data_key = SecretBytes::Random(32);
  Bytes wrapped_data_key;
  {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWriteCreate);
    ASSERT_OK(conn);
    ASSERT_OK(internal::MigrateKeystoreSchemaTo(**conn, 5));
    auto check = crypto::Seal(root_, AsBytes(internal::kCheckPlaintext), AsBytes(internal::kCheckAad));
    auto sealed_key = crypto::Seal(root_, tenant_key.Reveal(), internal::TenantKeyAad(tenant_id, 1));
    auto sealed_secret = crypto::Seal(root_, AsBytes(secret), internal::AccessKeySecretAad(access_key_id, tenant_id));
    auto dk = crypto::Seal(tenant_key, data_key.Reveal(), internal::DataKeyAad(tenant_id, 1, AsBytes("obj")));
    ASSERT_OK(check);
    ASSERT_OK(sealed_key);
    ASSERT_OK(sealed_secret);
    ASSERT_OK(dk);
    wrapped_data_key = *dk;
    const crypto::Sha256Digest digest = crypto::Sha256::Digest(AsBytes(token));
    auto run = [&](const std::string& sql, auto... args) {
      auto st = (*conn)->Prepare(sql);
      ASSERT_OK(st);
      ASSERT_OK(st->BindAll(args...));
      Status s = st->Run();
      ASSERT_OK(s);
    };
    run("INSERT INTO meta(name, value) VALUES('root-key-check', ?)", *check);
    run("INSERT INTO tenants(id, name, created) VALUES(?, 'acme', 1)", tenant_id);
    run("INSERT INTO tenant_keys(tenant_id, version, wrapped_key, state, created) VALUES(?, 1, ?, 'active', 1)",
        tenant_id, *sealed_key);
    run("INSERT INTO access_keys(access_key_id, tenant_id, secret, enabled, created) VALUES(?, ?, ?, 1, 1)",
        access_key_id, tenant_id, *sealed_secret);
    run("INSERT INTO admin_credentials(name, role, token_sha256, created) VALUES('alice', 'admin', ?, 1)",
        ByteView(digest));
    run("INSERT INTO approvals(id, operation, tenant_id, version, requested_by, requested, expires) "
        "VALUES('apr-0000000000000001', 'tenant.shred', ?, 0, 'alice', 1, 2)",
        tenant_id);
  }
  Reopen();
  EXPECT_OK(ks_->CheckIntegrity());
  auto admin = ks_->AuthenticateAdminToken(token);
  ASSERT_OK(admin);
  EXPECT_EQ(admin->name, "alice");
  auto resolved = ks_->ResolveAccessKey(access_key_id);
  ASSERT_OK(resolved);
  EXPECT_EQ(AsChars(resolved->secret.Reveal()), secret);
  auto unwrapped = ks_->UnwrapDataKey(tenant_id, 1, wrapped_data_key, AsBytes("obj"));
  ASSERT_OK(unwrapped);
  EXPECT_TRUE(ConstantTimeEquals(unwrapped->Reveal(), data_key.Reveal()));
  EXPECT_OK(ks_->GetApproval("apr-0000000000000001"));
  auto events = ks_->ListKeyEvents("");
  ASSERT_OK(events);
  ASSERT_FALSE(events->empty());
  EXPECT_EQ(events->back().event, "keystore-rows-authenticated");

  // Nothing is sealed under the raw root key any more, and the raw key's check value is gone:
  // an attacker cannot make the keystore look unconverted again without an old copy of it.
  {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    auto st = (*conn)->Prepare("SELECT wrapped_key FROM tenant_keys");
    ASSERT_OK(st);
    auto row = st->Step();
    ASSERT_TRUE(row.ok() && *row);
    EXPECT_THAT(crypto::Open(root_, st->ColumnBlobView(0), internal::TenantKeyAad(tenant_id, 1)), Not(IsOk()));
  }
  Reopen();
  EXPECT_OK(ks_->CheckIntegrity());
  EXPECT_OK(ks_->AuthenticateAdminToken(token));
}

TEST_F(RowIntegrityTest, RemovedAdminTokenKeyIsRefusedAtOpen) {
  Reopen();
  ks_.reset();
  Sql("DELETE FROM meta WHERE name = 'admin-token-key'");
  auto ks = Keystore::Open(path_, root_, clock_);
  EXPECT_THAT(ks, StatusIs(StatusCode::kCorruption));
}

}  // namespace
}  // namespace coffre::keystore
