// Root key rotation of a data directory (service/root_key_rotation.h): the keystore and the audit
// log both move to the new key and the rotation is recorded; a rotation refused (the same key, a
// missing approval, a wrong current key) or failed leaves both under the current key.

#include "coffre/service/root_key_rotation.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "coffre/db/sqlite.h"
#include "support/audit_records.h"

namespace coffre::service {
namespace {

namespace fs = std::filesystem;

class RootKeyRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "coffre-root-rotation-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    keystore_path_ = dir_ + "/keystore.db";
    audit_path_ = dir_ + "/audit.db";
    current_ = SecretBytes::Random(32);
    new_ = SecretBytes::Random(32);
    auto keys = keystore::Keystore::Open(keystore_path_, current_);
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    keys_ = std::move(keys).value();
    auto tenant = keys_->CreateTenant("bank");
    ASSERT_TRUE(tenant.ok());
    ASSERT_TRUE(keys_->CreateAccessKey(tenant->id).ok());
    auto log = audit::AuditLog::Open(audit_path_, current_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    request_.data_dir = dir_;
    request_.new_root.key = new_;
    request_.request.action = "cli:keystore rotate-root";
  }
  void TearDown() override {
    keys_.reset();
    fs::remove_all(dir_);
  }

  Result<RootKeyRotated> Rotate() { return RotateDataDirRootKey(*keys_, current_, request_); }

  static bool KeystoreOpens(const std::string& path, const SecretBytes& root) {
    return keystore::Keystore::Open(path, root).ok();
  }
  bool AuditOpens(const SecretBytes& root) { return audit::AuditLog::Open(audit_path_, root).ok(); }

  // Both stores still under the current key, and not under the new one.
  void ExpectUnchanged() {
    EXPECT_TRUE(KeystoreOpens(keystore_path_, current_));
    EXPECT_FALSE(KeystoreOpens(keystore_path_, new_));
    EXPECT_TRUE(AuditOpens(current_));
    EXPECT_FALSE(AuditOpens(new_));
  }

  std::vector<std::string> RotationRecords(const SecretBytes& root) {
    return test_support::AuditedActions(audit_path_, root, audit::Operation::kRootKeyRotate);
  }

  // Two admins: one requests a root key rotation, the other grants it.
  std::string GrantedApproval() {
    EXPECT_TRUE(keys_->CreateAdminCredential("alice", keystore::AdminRole::kAdmin).ok());
    EXPECT_TRUE(keys_->CreateAdminCredential("bob", keystore::AdminRole::kAdmin).ok());
    DualControl dual(*keys_, nullptr, request_.policy);
    auto requested = dual.Request(keystore::GuardedOperation::kRotateRootKey, "", 0, "alice", {});
    EXPECT_TRUE(requested.ok()) << requested.status().ToString();
    EXPECT_TRUE(dual.Grant(requested->id, "bob", {}).ok());
    return requested->id;
  }

  std::string dir_;
  std::string keystore_path_;
  std::string audit_path_;
  SecretBytes current_;
  SecretBytes new_;
  std::unique_ptr<keystore::Keystore> keys_;
  RootKeyRotationRequest request_;
};

TEST_F(RootKeyRotationTest, MovesTheKeystoreAndTheAuditLogToTheNewKeyAndRecordsIt) {
  auto rotated = Rotate();
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  EXPECT_EQ(rotated->keystore_path, keystore_path_);
  EXPECT_EQ(rotated->tenant_keys, 1u);
  EXPECT_EQ(rotated->access_keys, 1u);
  EXPECT_TRUE(rotated->warnings.empty());
  EXPECT_TRUE(KeystoreOpens(keystore_path_, new_));
  EXPECT_FALSE(KeystoreOpens(keystore_path_, current_));
  EXPECT_FALSE(AuditOpens(current_));  // the copy of the signing key under the old key is gone
  EXPECT_EQ(RotationRecords(new_), std::vector<std::string>{"cli:keystore rotate-root"});
}

TEST_F(RootKeyRotationTest, ANewPassphraseBecomesTheRootKeyWithItsParameters) {
  const SecretBytes passphrase(std::span<const uint8_t>(AsBytes("a new passphrase")));
  request_.new_root.key = SecretBytes();
  request_.new_root.passphrase = passphrase;
  request_.new_root.passphrase_params = keystore::PassphraseKdfParams{1, 8192};  // libsodium's minimum cost
  auto rotated = Rotate();
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  auto derived = keystore::DeriveRootKeyFromPassphrase(keystore_path_, passphrase, /*create=*/false);
  ASSERT_TRUE(derived.ok()) << derived.status().ToString();
  EXPECT_TRUE(KeystoreOpens(keystore_path_, *derived));
  EXPECT_TRUE(AuditOpens(*derived));
}

TEST_F(RootKeyRotationTest, WithoutAnAuditLogOneIsStartedUnderTheNewKey) {
  fs::remove(audit_path_);
  auto rotated = Rotate();
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  EXPECT_TRUE(rotated->warnings.empty());
  EXPECT_EQ(RotationRecords(new_), std::vector<std::string>{"cli:keystore rotate-root"});
}

TEST_F(RootKeyRotationTest, RefusesTheCurrentKeyAsTheNewOne) {
  request_.new_root.key = current_;
  auto rotated = Rotate();
  ASSERT_FALSE(rotated.ok());
  EXPECT_EQ(rotated.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rotated.status().message().find("nothing was changed"), std::string::npos);
  EXPECT_TRUE(KeystoreOpens(keystore_path_, current_));
}

TEST_F(RootKeyRotationTest, RefusesAWrongCurrentKeyAndChangesNothing) {
  const SecretBytes wrong = SecretBytes::Random(32);
  auto rotated = RotateDataDirRootKey(*keys_, wrong, request_);
  ASSERT_FALSE(rotated.ok());
  EXPECT_EQ(rotated.status().code(), StatusCode::kPermissionDenied) << rotated.status().ToString();
  ExpectUnchanged();
}

TEST_F(RootKeyRotationTest, UnderDualControlRefusesWithoutAnApprovalAndChangesNothing) {
  request_.policy.required = true;
  auto rotated = Rotate();
  ASSERT_FALSE(rotated.ok());
  EXPECT_EQ(rotated.status().code(), StatusCode::kPermissionDenied) << rotated.status().ToString();
  ExpectUnchanged();
}

TEST_F(RootKeyRotationTest, UnderDualControlAGrantedApprovalIsUsedUpAndNamedInTheRecord) {
  request_.policy.required = true;
  request_.approval_id = GrantedApproval();
  auto rotated = Rotate();
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  EXPECT_EQ(RotationRecords(new_),
            std::vector<std::string>{"cli:keystore rotate-root with approval " + request_.approval_id});
  auto keys = keystore::Keystore::Open(keystore_path_, new_);
  ASSERT_TRUE(keys.ok());
  auto approval = (*keys)->GetApproval(request_.approval_id);
  ASSERT_TRUE(approval.ok());
  EXPECT_EQ(approval->StateAt(ToUnixMillis(Clock::System().Now())), keystore::ApprovalState::kUsed);
}

// A keystore row that does not open stops the keystore's rotation: the keystore keeps the
// current key, the approval can be used again, and the audit log still opens with the current key.
TEST_F(RootKeyRotationTest, AFailedKeystoreRotationReleasesTheApproval) {
  request_.policy.required = true;
  request_.approval_id = GrantedApproval();
  {
    auto conn = db::Connection::Open(keystore_path_, db::OpenMode::kReadWrite);
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)->Exec("UPDATE access_keys SET secret = zeroblob(68)").ok());
  }
  auto rotated = Rotate();
  ASSERT_FALSE(rotated.ok());
  EXPECT_EQ(rotated.status().code(), StatusCode::kCorruption) << rotated.status().ToString();
  EXPECT_NE(rotated.status().message().find("the keystore is unchanged"), std::string::npos);
  EXPECT_FALSE(KeystoreOpens(keystore_path_, new_));
  EXPECT_TRUE(AuditOpens(current_));
  auto approval = keys_->GetApproval(request_.approval_id);
  ASSERT_TRUE(approval.ok());
  EXPECT_EQ(approval->StateAt(ToUnixMillis(Clock::System().Now())), keystore::ApprovalState::kApproved);
}

}  // namespace
}  // namespace coffre::service
