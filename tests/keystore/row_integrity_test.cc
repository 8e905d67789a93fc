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

namespace coffre::keystore {
namespace {

using std::chrono::milliseconds;

class RowIntegrityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "coffre-rows-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/keystore.db";
    root_ = SecretBytes::Random(32);
  }
  void TearDown() override {
    ks_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Reopen() {
    ks_.reset();
    auto ks = Keystore::Open(path_, root_, clock_);
    ASSERT_TRUE(ks.ok()) << ks.status().ToString();
    ks_ = std::move(ks).value();
  }

  // What the attacker does: SQL on the file, through a connection of its own.
  void Sql(const std::string& sql) {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    Status st = (*conn)->Exec(sql);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  template <typename... Args>
  void SqlArgs(const std::string& sql, const Args&... args) {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    auto st = (*conn)->Prepare(sql);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    ASSERT_TRUE(st->BindAll(args...).ok());
    Status run = st->Run();
    ASSERT_TRUE(run.ok()) << run.ToString();
  }
  // Every column of one row, to write back later (a replay).
  std::vector<Bytes> SaveAccessKeyRow(const std::string& id) {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    EXPECT_TRUE(conn.ok());
    auto st = (*conn)->Prepare("SELECT secret, enabled, gen, mac FROM access_keys WHERE access_key_id = ?");
    EXPECT_TRUE(st.ok());
    EXPECT_TRUE(st->BindAll(id).ok());
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
    EXPECT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
  }

  std::string NewTenant(const std::string& name) {
    auto t = ks_->CreateTenant(name);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t->id;
  }

  FixedClock clock_{std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
  std::string dir_;
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
  ASSERT_TRUE(ks_->CreateAccessKey(t).ok());
  ASSERT_TRUE(ks_->CreateAdminCredential("alice", AdminRole::kAdmin).ok());
  ASSERT_TRUE(ks_->RotateTenantKey(t).ok());
  ASSERT_TRUE(ks_->SetKeyVersionDestroying(t, 1, true).ok());
  EXPECT_TRUE(ks_->CheckIntegrity().ok()) << ks_->CheckIntegrity().ToString();
  Reopen();
  EXPECT_TRUE(ks_->CheckIntegrity().ok());
  EXPECT_EQ(ks_->IntegrityFailures(), 0u);
}

TEST_F(RowIntegrityTest, ForgedAdminCredentialIsRefused) {
  Reopen();
  ASSERT_TRUE(ks_->CreateAdminCredential("alice", AdminRole::kAdmin).ok());
  const std::string token = std::string(kAdminTokenPrefix) + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  const crypto::Sha256Digest digest = crypto::Sha256::Digest(AsBytes(token));
  SqlArgs(
      "INSERT INTO admin_credentials(name, role, token_mac, created, gen, mac) VALUES('mallory', 'admin', ?, 1, 1, "
      "zeroblob(32))",
      ByteView(digest));
  EXPECT_EQ(ks_->AuthenticateAdminToken(token).status().code(), StatusCode::kNotFound);
  ExpectIntegrityFailure();
  Reopen();
  EXPECT_EQ(ks_->AuthenticateAdminToken(token).status().code(), StatusCode::kNotFound);
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
  ASSERT_TRUE(auditor.ok() && bob.ok());
  ASSERT_TRUE(ks_->DisableAdminCredential("bob").ok());
  Sql("UPDATE admin_credentials SET role = 'admin' WHERE name = 'audrey'");
  Sql("UPDATE admin_credentials SET disabled = NULL WHERE name = 'bob'");
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_FALSE(ks_->AuthenticateAdminToken(auditor->token).ok());
    EXPECT_FALSE(ks_->AuthenticateAdminToken(bob->token).ok());
    ExpectIntegrityFailure();
    Reopen();
  }
  // Disabling a failing credential is the way out: it becomes valid, and disabled.
  ASSERT_TRUE(ks_->DisableAdminCredential("audrey").ok());
}

TEST_F(RowIntegrityTest, ReenabledAccessKeyIsRefused) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  ASSERT_TRUE(k.ok());
  ASSERT_TRUE(ks_->SetAccessKeyEnabled(t, k->key.access_key_id, false).ok());
  Sql("UPDATE access_keys SET enabled = 1");
  Reopen();
  EXPECT_EQ(ks_->ResolveAccessKey(k->key.access_key_id).status().code(), StatusCode::kPermissionDenied);
  ExpectIntegrityFailure();
  // Enabling it through the API does not launder the edit; disabling makes it valid again.
  EXPECT_FALSE(ks_->SetAccessKeyEnabled(t, k->key.access_key_id, true).ok());
  ASSERT_TRUE(ks_->SetAccessKeyEnabled(t, k->key.access_key_id, false).ok());
  EXPECT_TRUE(ks_->SetAccessKeyEnabled(t, k->key.access_key_id, true).ok());
  EXPECT_TRUE(ks_->ResolveAccessKey(k->key.access_key_id).ok());
}

TEST_F(RowIntegrityTest, AccessKeyRowMovedToAnotherTenantIsRefused) {
  Reopen();
  const std::string a = NewTenant("alpha");
  const std::string b = NewTenant("beta");
  auto k = ks_->CreateAccessKey(a);
  ASSERT_TRUE(k.ok());
  SqlArgs("UPDATE access_keys SET tenant_id = ? WHERE access_key_id = ?", b, k->key.access_key_id);
  Reopen();
  EXPECT_FALSE(ks_->ResolveAccessKey(k->key.access_key_id).ok());
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, ReplayedAccessKeyRowIsRefusedByAProcessThatSawTheNewerOne) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  ASSERT_TRUE(k.ok());
  const std::vector<Bytes> enabled_row = SaveAccessKeyRow(k->key.access_key_id);
  // Another process (the CLI) disables it; this one sees that once its cache is revalidated.
  {
    auto cli = Keystore::Open(path_, root_, clock_);
    ASSERT_TRUE(cli.ok());
    ASSERT_TRUE((*cli)->SetAccessKeyEnabled(t, k->key.access_key_id, false).ok());
  }
  clock_.Set(clock_.Now() + milliseconds(Keystore::kRevalidateIntervalMs + 1));
  EXPECT_EQ(ks_->ResolveAccessKey(k->key.access_key_id).status().code(), StatusCode::kPermissionDenied);
  RestoreAccessKeyRow(k->key.access_key_id, enabled_row);
  clock_.Set(clock_.Now() + milliseconds(Keystore::kRevalidateIntervalMs + 1));
  EXPECT_EQ(ks_->ResolveAccessKey(k->key.access_key_id).status().code(), StatusCode::kPermissionDenied);
  EXPECT_GE(ks_->IntegrityFailures(), 1u);
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, ReplayedAccessKeyOfAShreddedTenantIsRefusedAfterRestart) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  ASSERT_TRUE(k.ok());
  const std::vector<Bytes> enabled_row = SaveAccessKeyRow(k->key.access_key_id);
  ASSERT_TRUE(ks_->ShredTenant(t).ok());
  RestoreAccessKeyRow(k->key.access_key_id, enabled_row);
  Reopen();  // a fresh process has seen no newer generation; the tenant's row still says shredded
  EXPECT_EQ(ks_->ResolveAccessKey(k->key.access_key_id).status().code(), StatusCode::kPermissionDenied);
}

TEST_F(RowIntegrityTest, UnshreddedTenantIsRefused) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  ASSERT_TRUE(k.ok());
  ASSERT_TRUE(ks_->ShredTenant(t).ok());
  Sql("UPDATE tenants SET shredded = NULL");
  Sql("UPDATE access_keys SET enabled = 1");
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_EQ(ks_->GetTenant(t).status().code(), StatusCode::kNotFound);
    EXPECT_EQ(ks_->GetTenantByName("acme").status().code(), StatusCode::kNotFound);
    EXPECT_FALSE(ks_->CreateAccessKey(t).ok());
    EXPECT_FALSE(ks_->RotateTenantKey(t).ok());
    EXPECT_FALSE(ks_->ResolveAccessKey(k->key.access_key_id).ok());
    auto listed = ks_->ListTenants();
    ASSERT_TRUE(listed.ok());
    EXPECT_TRUE(listed->empty());
    ExpectIntegrityFailure();
    Reopen();
  }
}

TEST_F(RowIntegrityTest, ForgedKeyVersionStateIsRefused) {
  Reopen();
  const std::string t = NewTenant("acme");
  ASSERT_TRUE(ks_->RotateTenantKey(t).ok());  // version 2 active, 1 retired
  Sql("UPDATE tenant_keys SET state = 'retired' WHERE version = 2");
  Sql("UPDATE tenant_keys SET state = 'active' WHERE version = 1");
  Reopen();
  EXPECT_FALSE(ks_->NewDataKey(t, AsBytes("obj")).ok());
  EXPECT_FALSE(ks_->DestroyKeyVersion(t, 2).ok());  // version 2 really is the active one
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, ClearedDestroyMarkIsTakenAsMarked) {
  Reopen();
  const std::string t = NewTenant("acme");
  ASSERT_TRUE(ks_->RotateTenantKey(t).ok());
  ASSERT_TRUE(ks_->SetKeyVersionDestroying(t, 1, true).ok());
  Sql("UPDATE tenant_keys SET destroying = NULL WHERE version = 1");
  auto marked = ks_->IsKeyVersionDestroying(t, 1);
  ASSERT_TRUE(marked.ok());
  EXPECT_TRUE(*marked);
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, HandGrantedOrForgedApprovalIsRefused) {
  Reopen();
  const std::string t = NewTenant("acme");
  ASSERT_TRUE(ks_->CreateAdminCredential("alice", AdminRole::kAdmin).ok());
  ASSERT_TRUE(ks_->CreateAdminCredential("bob", AdminRole::kAdmin).ok());
  auto a = ks_->RequestApproval(NewApprovalId(), GuardedOperation::kShredTenant, t, 0, "alice", 600'000);
  ASSERT_TRUE(a.ok());
  SqlArgs("UPDATE approvals SET approved_by = 'bob', approved = ? WHERE id = ?", int64_t{1'700'000'000'001}, a->id);
  SqlArgs(
      "INSERT INTO approvals(id, operation, tenant_id, version, requested_by, requested, expires, approved_by, "
      "approved, gen, mac) VALUES('apr-00000000deadbeef', 'tenant.shred', ?, 0, 'alice', ?, ?, 'bob', ?, 1, "
      "zeroblob(32))",
      t, int64_t{1'700'000'000'000}, int64_t{1'700'001'000'000}, int64_t{1'700'000'000'000});
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_FALSE(ks_->UseApproval(a->id, GuardedOperation::kShredTenant, t, 0).ok());
    EXPECT_FALSE(ks_->UseApproval("apr-00000000deadbeef", GuardedOperation::kShredTenant, t, 0).ok());
    auto listed = ks_->ListApprovals(10);
    ASSERT_TRUE(listed.ok());
    EXPECT_TRUE(listed->empty());
    ExpectIntegrityFailure();
    Reopen();
  }
}

TEST_F(RowIntegrityTest, UsedApprovalCannotBeMadeUnusedByHand) {
  Reopen();
  const std::string t = NewTenant("acme");
  ASSERT_TRUE(ks_->CreateAdminCredential("alice", AdminRole::kAdmin).ok());
  ASSERT_TRUE(ks_->CreateAdminCredential("bob", AdminRole::kAdmin).ok());
  auto a = ks_->RequestApproval(NewApprovalId(), GuardedOperation::kDestroyKeyVersion, t, 1, "alice", 600'000);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(ks_->GrantApproval(a->id, "bob").ok());
  ASSERT_TRUE(ks_->UseApproval(a->id, GuardedOperation::kDestroyKeyVersion, t, 1).ok());
  Sql("UPDATE approvals SET used = NULL");
  EXPECT_FALSE(ks_->UseApproval(a->id, GuardedOperation::kDestroyKeyVersion, t, 1).ok());
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, RootRotationReMacsEveryRowAndRefusesForgedOnes) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  auto admin = ks_->CreateAdminCredential("alice", AdminRole::kAdmin);
  ASSERT_TRUE(k.ok() && admin.ok());
  auto dk = ks_->NewDataKey(t, AsBytes("obj"));
  ASSERT_TRUE(dk.ok());
  ks_.reset();

  const SecretBytes new_root = SecretBytes::Random(32);
  auto rotated = RotateRootKey(path_, root_, new_root);
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  root_ = new_root;
  Reopen();
  EXPECT_TRUE(ks_->CheckIntegrity().ok()) << ks_->CheckIntegrity().ToString();
  EXPECT_TRUE(ks_->AuthenticateAdminToken(admin->token).ok());  // tokens survive a rotation
  EXPECT_TRUE(ks_->ResolveAccessKey(k->key.access_key_id).ok());
  auto unwrapped = ks_->UnwrapDataKey(t, dk->tenant_key_version, dk->wrapped, AsBytes("obj"));
  ASSERT_TRUE(unwrapped.ok());
  EXPECT_TRUE(ConstantTimeEquals(unwrapped->Reveal(), dk->key.Reveal()));

  // A forged row is never made valid by a rotation: it is refused, and nothing changes.
  ks_.reset();
  Sql("UPDATE access_keys SET enabled = 0");
  Sql("UPDATE access_keys SET enabled = 1");  // same bytes: still valid
  Sql("UPDATE admin_credentials SET role = 'auditor'");
  auto refused = RotateRootKey(path_, root_, SecretBytes::Random(32));
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption) << refused.status().ToString();
  Reopen();
  ExpectIntegrityFailure();
}

TEST_F(RowIntegrityTest, ARunningProcessReportsARotationNotAForgery) {
  Reopen();
  const std::string t = NewTenant("acme");
  auto k = ks_->CreateAccessKey(t);
  ASSERT_TRUE(k.ok());
  ASSERT_TRUE(RotateRootKey(path_, root_, SecretBytes::Random(32)).ok());
  clock_.Set(clock_.Now() + milliseconds(Keystore::kRevalidateIntervalMs + 1));
  EXPECT_EQ(ks_->ResolveAccessKey(k->key.access_key_id).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ks_->CheckIntegrity().code(), StatusCode::kFailedPrecondition);
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
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(internal::MigrateKeystoreSchemaTo(**conn, 5).ok());
    auto check = crypto::Seal(root_, AsBytes(internal::kCheckPlaintext), AsBytes(internal::kCheckAad));
    auto sealed_key = crypto::Seal(root_, tenant_key.Reveal(), internal::TenantKeyAad(tenant_id, 1));
    auto sealed_secret = crypto::Seal(root_, AsBytes(secret), internal::AccessKeySecretAad(access_key_id, tenant_id));
    auto dk = crypto::Seal(tenant_key, data_key.Reveal(), internal::DataKeyAad(tenant_id, 1, AsBytes("obj")));
    ASSERT_TRUE(check.ok() && sealed_key.ok() && sealed_secret.ok() && dk.ok());
    wrapped_data_key = *dk;
    const crypto::Sha256Digest digest = crypto::Sha256::Digest(AsBytes(token));
    auto run = [&](const std::string& sql, auto... args) {
      auto st = (*conn)->Prepare(sql);
      ASSERT_TRUE(st.ok()) << st.status().ToString();
      ASSERT_TRUE(st->BindAll(args...).ok());
      Status s = st->Run();
      ASSERT_TRUE(s.ok()) << s.ToString();
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
  EXPECT_TRUE(ks_->CheckIntegrity().ok()) << ks_->CheckIntegrity().ToString();
  auto admin = ks_->AuthenticateAdminToken(token);
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  EXPECT_EQ(admin->name, "alice");
  auto resolved = ks_->ResolveAccessKey(access_key_id);
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_EQ(AsChars(resolved->secret.Reveal()), secret);
  auto unwrapped = ks_->UnwrapDataKey(tenant_id, 1, wrapped_data_key, AsBytes("obj"));
  ASSERT_TRUE(unwrapped.ok()) << unwrapped.status().ToString();
  EXPECT_TRUE(ConstantTimeEquals(unwrapped->Reveal(), data_key.Reveal()));
  EXPECT_TRUE(ks_->GetApproval("apr-0000000000000001").ok());
  auto events = ks_->ListKeyEvents("");
  ASSERT_TRUE(events.ok());
  ASSERT_FALSE(events->empty());
  EXPECT_EQ(events->back().event, "keystore-rows-authenticated");

  // Nothing is sealed under the raw root key any more, and the raw key's check value is gone:
  // an attacker cannot make the keystore look unconverted again without an old copy of it.
  {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_TRUE(conn.ok());
    auto st = (*conn)->Prepare("SELECT wrapped_key FROM tenant_keys");
    ASSERT_TRUE(st.ok());
    auto row = st->Step();
    ASSERT_TRUE(row.ok() && *row);
    EXPECT_FALSE(crypto::Open(root_, st->ColumnBlobView(0), internal::TenantKeyAad(tenant_id, 1)).ok());
  }
  Reopen();
  EXPECT_TRUE(ks_->CheckIntegrity().ok());
  EXPECT_TRUE(ks_->AuthenticateAdminToken(token).ok());
}

TEST_F(RowIntegrityTest, RemovedAdminTokenKeyIsRefusedAtOpen) {
  Reopen();
  ks_.reset();
  Sql("DELETE FROM meta WHERE name = 'admin-token-key'");
  auto ks = Keystore::Open(path_, root_, clock_);
  EXPECT_EQ(ks.status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace coffre::keystore
