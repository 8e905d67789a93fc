// Restoring a keystore backup into a data directory (service/keystore_restore.h): a restore is
// recorded and replaces the keystore, moving the old one aside; it never brings back a key
// destroyed since the backup (it re-applies what the keystore and the audit log record, and
// refuses when it cannot read the audit log); it refuses a backup the root keys do not open and
// one that lacks keys the catalog uses. A refused restore changes nothing.

#include "coffre/service/keystore_restore.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "coffre/service/key_lifecycle.h"
#include "coffre/service/object_service.h"
#include "coffre/storage/blob_store.h"
#include "support/audit_records.h"

namespace coffre::service {
namespace {

namespace fs = std::filesystem;

class KeystoreRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "coffre-restore-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    data_dir_ = dir_ + "/data";
    fs::create_directory(data_dir_);
    keystore_path_ = data_dir_ + "/keystore.db";
    audit_path_ = data_dir_ + "/audit.db";
    backup_ = dir_ + "/keystore.backup";
    root_ = SecretBytes::Random(32);
    auto keys = keystore::Keystore::Open(keystore_path_, root_);
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    keys_ = std::move(keys).value();
    auto log = audit::AuditLog::Open(audit_path_, root_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(log).value();
    auto bank = keys_->CreateTenant("bank");
    ASSERT_TRUE(bank.ok());
    bank_ = bank->id;
    ASSERT_TRUE(keys_->CreateTenant("insurer").ok());
  }
  void TearDown() override {
    keys_.reset();
    log_.reset();
    fs::remove_all(dir_);
  }

  void Backup() {
    auto done = keystore::BackupKeystore(keystore_path_, backup_, root_);
    ASSERT_TRUE(done.ok()) << done.status().ToString();
  }

  // What the CLI passes, for the keystore in place now.
  KeystoreRestoreRequest Request() {
    KeystoreRestoreRequest request;
    request.data_dir = data_dir_;
    request.backup_file = backup_;
    request.root_key = root_;
    request.root_key_source = "the root key file under test";
    if (keys_) {
      auto tenants = keys_->ListTenants();
      EXPECT_TRUE(tenants.ok());
      request.current_tenants = *tenants;
    }
    request.request.action = "cli:keystore restore";
    request.warn = [this](const std::string& warning) { warnings_.push_back(warning); };
    return request;
  }

  // As `coffre keystore restore` runs: nothing else has the keystore or the audit log open.
  Result<KeystoreRestored> Restore(const KeystoreRestoreRequest& request) {
    keys_.reset();
    log_.reset();
    auto staged = keystore::StagedRestore::Stage(backup_, data_dir_);
    if (!staged.ok()) {
      return staged.status();
    }
    return RestoreKeystore(*staged, request);
  }

  // The files the data directory holds whose name starts with `prefix`.
  std::vector<std::string> FilesStartingWith(const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(data_dir_)) {
      if (e.path().filename().string().starts_with(prefix)) {
        out.push_back(e.path().filename().string());
      }
    }
    return out;
  }

  keystore::Tenant TenantNow(const std::string& name) {
    auto keys = keystore::Keystore::Open(keystore_path_, root_);
    EXPECT_TRUE(keys.ok()) << keys.status().ToString();
    auto tenant = (*keys)->GetTenantByName(name);
    EXPECT_TRUE(tenant.ok()) << tenant.status().ToString();
    return tenant.ok() ? *tenant : keystore::Tenant{};
  }

  // Shreds the bank, recorded in the audit log as the CLI does it.
  void ShredBank() {
    KeyLifecycle lifecycle(*keys_, log_.get());
    audit::RequestInfo request;
    request.action = "cli:tenant shred";
    ASSERT_TRUE(lifecycle.ShredTenant(bank_, request).ok());
  }

  // audit.db becomes a file that does not open.
  void DamageAuditLog() {
    log_.reset();
    for (const auto& f : FilesStartingWith("audit.db")) {
      fs::remove(data_dir_ + "/" + f);
    }
    std::ofstream(audit_path_) << "not an audit log";
  }

  // Nothing was installed: the keystore in place was not moved aside.
  void ExpectNothingInstalled() { EXPECT_TRUE(FilesStartingWith("keystore.db.replaced-").empty()); }

  std::string dir_;
  std::string data_dir_;
  std::string keystore_path_;
  std::string audit_path_;
  std::string backup_;
  SecretBytes root_;
  std::unique_ptr<keystore::Keystore> keys_;
  std::unique_ptr<audit::AuditLog> log_;
  std::string bank_;
  std::vector<std::string> warnings_;
};

TEST_F(KeystoreRestoreTest, ReplacesTheKeystoreMovesTheOldOneAsideAndRecordsIt) {
  Backup();
  ASSERT_TRUE(keys_->CreateTenant("late").ok());
  auto restored = Restore(Request());
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ(restored->backup.tenants, 2u);
  EXPECT_EQ(restored->restored.tenants, 2u);
  EXPECT_FALSE(restored->resealed);
  EXPECT_TRUE(restored->reapplied.empty());
  EXPECT_TRUE(restored->missing_key_versions.empty());
  EXPECT_TRUE(restored->recorded);
  EXPECT_FALSE(restored->moved_aside.empty());
  EXPECT_TRUE(warnings_.empty());
  auto keys = keystore::Keystore::Open(keystore_path_, root_);
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ((*keys)->GetTenantByName("late").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(test_support::AuditedActions(audit_path_, root_, audit::Operation::kKeystoreRestore),
            std::vector<std::string>{"cli:keystore restore"});
}

// The keystore that recorded the shred is gone (disaster recovery): the audit log's record alone
// keeps the tenant shredded.
TEST_F(KeystoreRestoreTest, NeverUndoesACryptoShredRecordedInTheAuditLog) {
  Backup();
  ShredBank();
  keys_.reset();
  for (const auto& f : FilesStartingWith("keystore.db")) {
    fs::remove(data_dir_ + "/" + f);
  }
  auto restored = Restore(Request());
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  ASSERT_EQ(restored->reapplied.size(), 1u);
  EXPECT_EQ(restored->reapplied[0].destruction, (keystore::KeyDestruction{bank_, 0}));
  EXPECT_TRUE(restored->moved_aside.empty());
  EXPECT_TRUE(TenantNow("bank").shredded.has_value());
  EXPECT_FALSE(TenantNow("insurer").shredded.has_value());
}

TEST_F(KeystoreRestoreTest, RefusesWhenTheAuditLogCannotBeReadAndChangesNothing) {
  Backup();
  ShredBank();
  DamageAuditLog();
  auto restored = Restore(Request());
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(restored.status().message().find("--no-reapply-shreds"), std::string::npos);
  ExpectNothingInstalled();
  EXPECT_TRUE(TenantNow("bank").shredded.has_value());
}

// Told not to read the audit log, the restore still re-applies what the keystore it replaces
// records, warns, and is not recorded.
TEST_F(KeystoreRestoreTest, WithoutTheAuditLogReappliesTheKeystoresOwnRecordAndWarns) {
  Backup();
  ShredBank();
  DamageAuditLog();
  KeystoreRestoreRequest request = Request();
  request.reapply_audited_destructions = false;
  auto restored = Restore(request);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_FALSE(restored->recorded);
  EXPECT_EQ(warnings_.size(), 2u);
  ASSERT_EQ(restored->reapplied.size(), 1u);
  EXPECT_TRUE(TenantNow("bank").shredded.has_value());
}

TEST_F(KeystoreRestoreTest, RefusesABackupTheRootKeyDoesNotOpen) {
  Backup();
  KeystoreRestoreRequest request = Request();
  request.root_key = SecretBytes::Random(32);
  auto restored = Restore(request);
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(restored.status().message().find("--backup-root-key-file FILE"), std::string::npos);
  EXPECT_NE(restored.status().message().find("the root key file under test"), std::string::npos);
  ExpectNothingInstalled();
}

TEST_F(KeystoreRestoreTest, ResealsABackupTakenBeforeARootKeyRotation) {
  Backup();
  keys_.reset();
  log_.reset();
  const SecretBytes new_root = SecretBytes::Random(32);
  ASSERT_TRUE(audit::AuditLog::AddRootKeySeal(audit_path_, root_, new_root).ok());
  ASSERT_TRUE(keystore::RotateRootKey(keystore_path_, root_, new_root).ok());
  ASSERT_TRUE(audit::AuditLog::DropRootKeySealsExcept(audit_path_, new_root).ok());
  const SecretBytes old_root = root_;
  root_ = new_root;
  KeystoreRestoreRequest request = Request();
  request.backup_root_key = old_root;
  auto restored = Restore(request);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_TRUE(restored->resealed);
  EXPECT_TRUE(keystore::Keystore::Open(keystore_path_, new_root).ok());
}

// A key version created after the backup, which an object uses: the restore would make it
// unreadable, so it is refused unless the operator accepts that.
TEST_F(KeystoreRestoreTest, RefusesABackupThatLacksAKeyVersionTheCatalogUses) {
  Backup();
  ASSERT_TRUE(keys_->RotateTenantKey(bank_).ok());
  {
    auto catalog = catalog::Catalog::Open(data_dir_ + "/catalog.db");
    ASSERT_TRUE(catalog.ok());
    auto blobs = storage::OpenLocalBlobStore(data_dir_);
    ASSERT_TRUE(blobs.ok());
    ObjectService service(**catalog, *keys_, **blobs);
    auto bucket = service.CreateBucket(bank_, "dossiers");
    ASSERT_TRUE(bucket.ok());
    auto put = service.BeginPut(*bucket, "contract", {}, {});
    ASSERT_TRUE(put.ok());
    ASSERT_TRUE((*put)->Write(AsBytes("signed")).ok());
    ASSERT_TRUE((*put)->Commit({}).ok());
  }
  auto refused = Restore(Request());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("key version 2: 1 object or upload"), std::string::npos)
      << refused.status().message();
  ExpectNothingInstalled();

  auto keys = keystore::Keystore::Open(keystore_path_, root_);
  ASSERT_TRUE(keys.ok());
  keys_ = std::move(keys).value();
  KeystoreRestoreRequest request = Request();
  request.allow_missing_key_versions = true;
  auto restored = Restore(request);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  ASSERT_EQ(restored->missing_key_versions.size(), 1u);
}

// The version destroyed since the backup is the backup's active one: the keys the catalog now
// uses are not in it.
TEST_F(KeystoreRestoreTest, RefusesABackupOlderThanARotationWhosePreviousVersionWasDestroyed) {
  Backup();
  ASSERT_TRUE(keys_->RotateTenantKey(bank_).ok());
  ASSERT_TRUE(keys_->DestroyKeyVersion(bank_, 1).ok());
  auto restored = Restore(Request());
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(restored.status().message().find("cannot re-apply the key destructions"), std::string::npos);
  ExpectNothingInstalled();
}

}  // namespace
}  // namespace coffre::service
