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
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::service {
namespace {

using test_support::StatusIs;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

class RootKeyRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keystore_path_ = dir_.str() + "/keystore.db";
    audit_path_ = dir_.str() + "/audit.db";
    current_ = SecretBytes::Random(32);
    new_ = SecretBytes::Random(32);
    auto keys = keystore::Keystore::Open(keystore_path_, current_);
    ASSERT_OK(keys);
    keys_ = std::move(keys).value();
    auto tenant = keys_->CreateTenant("bank");
    ASSERT_OK(tenant);
    ASSERT_OK(keys_->CreateAccessKey(tenant->id));
    auto log = audit::AuditLog::Open(audit_path_, current_);
    ASSERT_OK(log);
    request_.data_dir = dir_.str();
    request_.new_root.key = new_;
    request_.request.action = "cli:keystore rotate-root";
  }
  void TearDown() override { keys_.reset(); }

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
    EXPECT_OK(keys_->CreateAdminCredential("alice", keystore::AdminRole::kAdmin));
    EXPECT_OK(keys_->CreateAdminCredential("bob", keystore::AdminRole::kAdmin));
    DualControl dual(*keys_, nullptr, request_.policy);
    auto requested = dual.Request(keystore::GuardedOperation::kRotateRootKey, "", 0, "alice", {});
    EXPECT_OK(requested);
    EXPECT_OK(dual.Grant(requested->id, "bob", {}));
    return requested->id;
  }

  test_support::TempDir dir_{"root-rotation"};
  std::string keystore_path_;
  std::string audit_path_;
  SecretBytes current_;
  SecretBytes new_;
  std::unique_ptr<keystore::Keystore> keys_;
  RootKeyRotationRequest request_;
};

TEST_F(RootKeyRotationTest, MovesTheKeystoreAndTheAuditLogToTheNewKeyAndRecordsIt) {
  auto rotated = Rotate();
  ASSERT_OK(rotated);
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
  ASSERT_OK(rotated);
  auto derived = keystore::DeriveRootKeyFromPassphrase(keystore_path_, passphrase, /*create=*/false);
  ASSERT_OK(derived);
  EXPECT_TRUE(KeystoreOpens(keystore_path_, *derived));
  EXPECT_TRUE(AuditOpens(*derived));
}

TEST_F(RootKeyRotationTest, WithoutAnAuditLogOneIsStartedUnderTheNewKey) {
  fs::remove(audit_path_);
  auto rotated = Rotate();
  ASSERT_OK(rotated);
  EXPECT_TRUE(rotated->warnings.empty());
  EXPECT_EQ(RotationRecords(new_), std::vector<std::string>{"cli:keystore rotate-root"});
}

TEST_F(RootKeyRotationTest, RefusesTheCurrentKeyAsTheNewOne) {
  request_.new_root.key = current_;
  auto rotated = Rotate();
  ASSERT_THAT(rotated, StatusIs(StatusCode::kInvalidArgument, HasSubstr("nothing was changed")));
  EXPECT_TRUE(KeystoreOpens(keystore_path_, current_));
}

TEST_F(RootKeyRotationTest, RefusesAWrongCurrentKeyAndChangesNothing) {
  const SecretBytes wrong = SecretBytes::Random(32);
  auto rotated = RotateDataDirRootKey(*keys_, wrong, request_);
  ASSERT_THAT(rotated, StatusIs(StatusCode::kPermissionDenied));
  ExpectUnchanged();
}

TEST_F(RootKeyRotationTest, UnderDualControlRefusesWithoutAnApprovalAndChangesNothing) {
  request_.policy.required = true;
  auto rotated = Rotate();
  ASSERT_THAT(rotated, StatusIs(StatusCode::kPermissionDenied));
  ExpectUnchanged();
}

TEST_F(RootKeyRotationTest, UnderDualControlAGrantedApprovalIsUsedUpAndNamedInTheRecord) {
  request_.policy.required = true;
  request_.approval_id = GrantedApproval();
  auto rotated = Rotate();
  ASSERT_OK(rotated);
  EXPECT_EQ(RotationRecords(new_),
            std::vector<std::string>{"cli:keystore rotate-root with approval " + request_.approval_id});
  auto keys = keystore::Keystore::Open(keystore_path_, new_);
  ASSERT_OK(keys);
  auto approval = (*keys)->GetApproval(request_.approval_id);
  ASSERT_OK(approval);
  EXPECT_EQ(approval->StateAt(ToUnixMillis(Clock::System().Now())), keystore::ApprovalState::kUsed);
}

// A keystore row that does not open stops the keystore's rotation: the keystore keeps the
// current key, the approval can be used again, and the audit log still opens with the current key.
TEST_F(RootKeyRotationTest, AFailedKeystoreRotationReleasesTheApproval) {
  request_.policy.required = true;
  request_.approval_id = GrantedApproval();
  {
    auto conn = db::Connection::Open(keystore_path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec("UPDATE access_keys SET secret = zeroblob(68)"));
  }
  auto rotated = Rotate();
  ASSERT_THAT(rotated, StatusIs(StatusCode::kCorruption, HasSubstr("the keystore is unchanged")));
  EXPECT_FALSE(KeystoreOpens(keystore_path_, new_));
  EXPECT_TRUE(AuditOpens(current_));
  auto approval = keys_->GetApproval(request_.approval_id);
  ASSERT_OK(approval);
  EXPECT_EQ(approval->StateAt(ToUnixMillis(Clock::System().Now())), keystore::ApprovalState::kApproved);
}

}  // namespace
}  // namespace coffre::service
