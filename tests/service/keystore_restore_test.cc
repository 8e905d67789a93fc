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
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::service {
namespace {

using test_support::StatusIs;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

class KeystoreRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = dir_.str() + "/data";
    fs::create_directory(data_dir_);
    keystore_path_ = data_dir_ + "/keystore.db";
    audit_path_ = data_dir_ + "/audit.db";
    backup_ = dir_.str() + "/keystore.backup";
    root_ = SecretBytes::Random(32);
    auto keys = keystore::Keystore::Open(keystore_path_, root_);
    ASSERT_OK(keys);
    keys_ = std::move(keys).value();
    auto log = audit::AuditLog::Open(audit_path_, root_);
    ASSERT_OK(log);
    log_ = std::move(log).value();
    auto bank = keys_->CreateTenant("bank");
    ASSERT_OK(bank);
    bank_ = bank->id;
    ASSERT_OK(keys_->CreateTenant("insurer"));
  }
  void TearDown() override {
    keys_.reset();
    log_.reset();
  }

  void Backup() {
    auto done = keystore::BackupKeystore(keystore_path_, backup_, root_);
    ASSERT_OK(done);
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
      EXPECT_OK(tenants);
      request.current_tenants = *tenants;
      for (const auto& tenant : *tenants) {
        auto named = keys_->ListNamedKeys(tenant.id);
        EXPECT_OK(named);
        request.current_named_keys.insert(request.current_named_keys.end(), named->begin(), named->end());
      }
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
    EXPECT_OK(keys);
    auto tenant = (*keys)->GetTenantByName(name);
    EXPECT_OK(tenant);
    return tenant.ok() ? *tenant : keystore::Tenant{};
  }

  // Shreds the bank, recorded in the audit log as the CLI does it.
  void ShredBank() {
    KeyLifecycle lifecycle(*keys_, log_.get());
    audit::RequestInfo request;
    request.action = "cli:tenant shred";
    ASSERT_OK(lifecycle.ShredTenant(bank_, request));
  }

  // audit.db becomes a file that does not open.
  void DamageAuditLog() {
    log_.reset();
    for (const auto& f : FilesStartingWith("audit.db")) {
      fs::remove(data_dir_ + "/" + f);
    }
    std::ofstream(audit_path_) << "not an audit log";
  }

  // Runs `fn` with an object service over the data directory's catalog and blobs and keys_.
  template <typename Fn>
  void WithService(Fn&& fn) {
    auto catalog = catalog::Catalog::Open(data_dir_ + "/catalog.db");
    ASSERT_OK(catalog);
    auto blobs = storage::OpenLocalBlobStore(data_dir_);
    ASSERT_OK(blobs);
    ObjectService service(**catalog, *keys_, **blobs);
    fn(service);
  }

  // Nothing was installed: the keystore in place was not moved aside.
  void ExpectNothingInstalled() { EXPECT_TRUE(FilesStartingWith("keystore.db.replaced-").empty()); }

  test_support::TempDir dir_{"restore"};
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
  ASSERT_OK(keys_->CreateTenant("late"));
  auto restored = Restore(Request());
  ASSERT_OK(restored);
  EXPECT_EQ(restored->backup.tenants, 2u);
  EXPECT_EQ(restored->restored.tenants, 2u);
  EXPECT_FALSE(restored->resealed);
  EXPECT_TRUE(restored->reapplied.empty());
  EXPECT_TRUE(restored->missing_key_versions.empty());
  EXPECT_TRUE(restored->recorded);
  EXPECT_FALSE(restored->moved_aside.empty());
  EXPECT_TRUE(warnings_.empty());
  auto keys = keystore::Keystore::Open(keystore_path_, root_);
  ASSERT_OK(keys);
  EXPECT_THAT((*keys)->GetTenantByName("late"), StatusIs(StatusCode::kNotFound));
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
  ASSERT_OK(restored);
  ASSERT_EQ(restored->reapplied.size(), 1u);
  EXPECT_EQ(restored->reapplied[0].destruction, (keystore::KeyDestruction{bank_, 0}));
  EXPECT_TRUE(restored->moved_aside.empty());
  EXPECT_TRUE(TenantNow("bank").shredded.has_value());
  EXPECT_FALSE(TenantNow("insurer").shredded.has_value());
}

// A customer's erasure (a named key destroyed) survives a restore of a backup taken before it: from
// the audit log's record when the keystore that recorded it is gone, and from the replaced
// keystore's own record when the audit log is not read. The tenant's other keys come back live.
TEST_F(KeystoreRestoreTest, NeverUndoesTheDestructionOfANamedKey) {
  auto doomed = keys_->CreateNamedKey(bank_, "customer-1");
  auto kept = keys_->CreateNamedKey(bank_, "customer-2");
  ASSERT_OK(doomed);
  ASSERT_OK(kept);
  Backup();
  WithService([&](ObjectService& service) {
    service.set_audit(log_.get());
    ASSERT_OK(service.DestroyNamedKey(doomed->ref(), false));
  });
  const keystore::KeyDestruction destroyed{bank_, 0, doomed->key_id};
  for (const bool disaster : {true, false}) {
    SCOPED_TRACE(disaster ? "the keystore is gone: the audit log remembers" : "the audit log is not read");
    // The second round restores the same backup over the keystore the first one installed, which
    // records the destruction it re-applied.
    KeystoreRestoreRequest request = Request();
    if (disaster) {
      keys_.reset();
      for (const auto& f : FilesStartingWith("keystore.db")) fs::remove(data_dir_ + "/" + f);
    } else {
      request.reapply_audited_destructions = false;
    }
    auto restored = Restore(request);
    ASSERT_OK(restored);
    if (disaster) {
      ASSERT_EQ(restored->reapplied.size(), 1u);
      EXPECT_EQ(restored->reapplied[0].destruction, destroyed);
    }
    auto keys = keystore::Keystore::Open(keystore_path_, root_);
    ASSERT_OK(keys);
    auto gone = (*keys)->FindNamedKey(bank_, "customer-1");
    ASSERT_OK(gone);
    EXPECT_TRUE(gone->destroyed);
    EXPECT_THAT((*keys)->NewDataKey(doomed->ref(), AsBytes("x")), StatusIs(StatusCode::kPermissionDenied));
    EXPECT_OK((*keys)->NewDataKey(kept->ref(), AsBytes("x")));
    keys_ = std::move(keys).value();
  }
}

// Objects under a named key made after the backup would be lost by the restore: it refuses.
TEST_F(KeystoreRestoreTest, RefusesABackupThatLacksANamedKeyTheCatalogUses) {
  Backup();
  auto key = keys_->CreateNamedKey(bank_, "customer-9");
  ASSERT_OK(key);
  WithService([&](ObjectService& service) {
    auto bucket = service.CreateBucket(bank_, "dossiers");
    ASSERT_OK(bucket);
    auto put = service.BeginPut(*bucket, "contract", {}, {}, nullptr, std::nullopt, {}, {}, key->key_id);
    ASSERT_OK(put);
    ASSERT_OK((*put)->Write(AsBytes("signed")));
    ASSERT_OK((*put)->Commit({}));
  });
  auto refused = Restore(Request());
  ASSERT_THAT(refused, StatusIs(StatusCode::kFailedPrecondition, HasSubstr("named key customer-9")));
  ExpectNothingInstalled();
}

TEST_F(KeystoreRestoreTest, RefusesWhenTheAuditLogCannotBeReadAndChangesNothing) {
  Backup();
  ShredBank();
  DamageAuditLog();
  auto restored = Restore(Request());
  ASSERT_THAT(restored, StatusIs(StatusCode::kUnavailable, HasSubstr("--no-reapply-shreds")));
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
  ASSERT_OK(restored);
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
  ASSERT_THAT(restored, StatusIs(StatusCode::kPermissionDenied, HasSubstr("--backup-root-key-file FILE")));
  EXPECT_NE(restored.status().message().find("the root key file under test"), std::string::npos);
  ExpectNothingInstalled();
}

TEST_F(KeystoreRestoreTest, ResealsABackupTakenBeforeARootKeyRotation) {
  Backup();
  keys_.reset();
  log_.reset();
  const SecretBytes new_root = SecretBytes::Random(32);
  ASSERT_OK(audit::AuditLog::AddRootKeySeal(audit_path_, root_, new_root));
  ASSERT_OK(keystore::RotateRootKey(keystore_path_, root_, new_root));
  ASSERT_OK(audit::AuditLog::DropRootKeySealsExcept(audit_path_, new_root));
  const SecretBytes old_root = root_;
  root_ = new_root;
  KeystoreRestoreRequest request = Request();
  request.backup_root_key = old_root;
  auto restored = Restore(request);
  ASSERT_OK(restored);
  EXPECT_TRUE(restored->resealed);
  EXPECT_OK(keystore::Keystore::Open(keystore_path_, new_root));
}

// A key version created after the backup, which an object uses: the restore would make it
// unreadable, so it is refused unless the operator accepts that.
TEST_F(KeystoreRestoreTest, RefusesABackupThatLacksAKeyVersionTheCatalogUses) {
  Backup();
  ASSERT_OK(keys_->RotateTenantKey(bank_));
  WithService([&](ObjectService& service) {
    auto bucket = service.CreateBucket(bank_, "dossiers");
    ASSERT_OK(bucket);
    auto put = service.BeginPut(*bucket, "contract", {}, {});
    ASSERT_OK(put);
    ASSERT_OK((*put)->Write(AsBytes("signed")));
    ASSERT_OK((*put)->Commit({}));
  });
  auto refused = Restore(Request());
  ASSERT_THAT(refused, StatusIs(StatusCode::kFailedPrecondition, HasSubstr("key version 2: 1 object or upload")));
  ExpectNothingInstalled();

  auto keys = keystore::Keystore::Open(keystore_path_, root_);
  ASSERT_OK(keys);
  keys_ = std::move(keys).value();
  KeystoreRestoreRequest request = Request();
  request.allow_missing_key_versions = true;
  auto restored = Restore(request);
  ASSERT_OK(restored);
  ASSERT_EQ(restored->missing_key_versions.size(), 1u);
}

// The version destroyed since the backup is the backup's active one: the keys the catalog now
// uses are not in it.
TEST_F(KeystoreRestoreTest, RefusesABackupOlderThanARotationWhosePreviousVersionWasDestroyed) {
  Backup();
  ASSERT_OK(keys_->RotateTenantKey(bank_));
  ASSERT_OK(keys_->DestroyKeyVersion(bank_, 1));
  auto restored = Restore(Request());
  ASSERT_THAT(restored, StatusIs(StatusCode::kFailedPrecondition, HasSubstr("cannot re-apply the key destructions")));
  ExpectNothingInstalled();
}

}  // namespace
}  // namespace coffre::service
