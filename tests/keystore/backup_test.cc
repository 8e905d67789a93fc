// Keystore backup and restore (keystore/backup.h): the online copy beside a writer, the checks
// that refuse a bad backup with the keystore unchanged, re-sealing under the current root key,
// re-applying destructions, and the installation that moves the old keystore aside.

#include "coffre/keystore/backup.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::keystore {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = dir_.str() + "/data";
    fs::create_directory(data_dir_);
    keystore_ = data_dir_ + "/keystore.db";
    backup_ = dir_.str() + "/keystore.backup";
    root_ = SecretBytes::Random(32);
    auto ks = Keystore::Open(keystore_, root_);
    ASSERT_OK(ks);
    for (const std::string name : {"bank", "insurer"}) {
      auto t = (*ks)->CreateTenant(name);
      ASSERT_OK(t);
      tenants_.push_back(t->id);
      auto dk = (*ks)->NewDataKey(t->id, AsBytes("obj"));
      ASSERT_OK(dk);
      data_keys_.push_back(std::move(dk).value());
    }
  }

  // Every file of the data directory with its bytes: "the keystore unchanged" means this is equal.
  std::map<std::string, std::string> DataDirFiles() {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(data_dir_)) {
      out[e.path().filename().string()] = ReadAll(e.path().string());
    }
    return out;
  }

  void Backup() {
    auto done = BackupKeystore(keystore_, backup_, root_);
    ASSERT_OK(done);
  }

  // Both data keys still unwrap from the keystore in place.
  void ExpectDataKeysOpen(const SecretBytes& root) {
    auto ks = Keystore::Open(keystore_, root);
    ASSERT_OK(ks);
    for (size_t i = 0; i < tenants_.size(); ++i) {
      auto key =
          (*ks)->UnwrapDataKey(tenants_[i], data_keys_[i].tenant_key_version, data_keys_[i].wrapped, AsBytes("obj"));
      EXPECT_OK(key);
      EXPECT_TRUE(ConstantTimeEquals(key->Reveal(), data_keys_[i].key.Reveal()));
    }
  }

  test_support::TempDir dir_{"backup"};
  std::string data_dir_, keystore_, backup_;
  SecretBytes root_;
  std::vector<std::string> tenants_;
  std::vector<DataKey> data_keys_;
};

TEST_F(BackupTest, BackupIsSelfContainedPrivateAndChecked) {
  auto done = BackupKeystore(keystore_, backup_, root_);
  ASSERT_OK(done);
  EXPECT_EQ(done->tenants, 2u);
  EXPECT_EQ(done->key_versions, 2u);
  EXPECT_EQ(done->access_keys, 0u);
  struct stat st {};
  ASSERT_EQ(::stat(backup_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(fs::exists(backup_ + "-wal"));
  EXPECT_FALSE(fs::exists(backup_ + "-journal"));
  // Rollback journal mode recorded in the file header (bytes 18 and 19 are 1, not 2 for WAL).
  const std::string bytes = ReadAll(backup_);
  ASSERT_GT(bytes.size(), 100u);
  EXPECT_EQ(bytes[18], 1);
  EXPECT_EQ(bytes[19], 1);
  // No temporary file left beside it.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_.str())) {
    files += e.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(files, 1u);
}

TEST_F(BackupTest, BackupRefusesAnExistingFileUnlessForced) {
  WriteAll(backup_, "precious");
  auto refused = BackupKeystore(keystore_, backup_, root_);
  ASSERT_THAT(refused, StatusIs(StatusCode::kAlreadyExists, HasSubstr("--force")));
  EXPECT_EQ(ReadAll(backup_), "precious");
  BackupOptions force;
  force.overwrite = true;
  ASSERT_OK(BackupKeystore(keystore_, backup_, root_, force));
  EXPECT_NE(ReadAll(backup_), "precious");
  // The keystore itself is never a backup target.
  force.overwrite = true;
  auto self = BackupKeystore(keystore_, keystore_, root_, force);
  EXPECT_THAT(self, StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(BackupTest, BackupRefusesAWrongRootKeyAndLeavesNoFile) {
  auto refused = BackupKeystore(keystore_, backup_, SecretBytes::Random(32));
  ASSERT_THAT(refused, StatusIs(StatusCode::kPermissionDenied));
  EXPECT_FALSE(fs::exists(backup_));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_.str()), fs::directory_iterator()), 1);  // data/ only
}

TEST_F(BackupTest, AFailedCheckLeavesNoBackupFile) {
  BackupOptions options;
  options.before_verify = [](const std::string& tmp) {
    // Damage the copy: every b-tree page after the first gets an invalid page type.
    std::string bytes = ReadAll(tmp);
    for (size_t page = 4096; page < bytes.size(); page += 4096) {
      bytes[page] = '\x7f';
    }
    WriteAll(tmp, bytes);
    return Status::Ok();
  };
  auto refused = BackupKeystore(keystore_, backup_, root_, options);
  ASSERT_THAT(refused, Not(IsOk()));
  EXPECT_FALSE(fs::exists(backup_));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_.str()), fs::directory_iterator()), 1);
}

TEST_F(BackupTest, BackupWhileAnotherConnectionWrites) {
  std::atomic<bool> stop{false};
  std::atomic<int> created{0};
  std::thread writer([&] {
    auto ks = Keystore::Open(keystore_, root_);
    ASSERT_OK(ks);
    for (int i = 0; !stop.load(); ++i) {
      auto t = (*ks)->CreateTenant("t" + std::to_string(i));
      ASSERT_OK(t);
      ASSERT_OK((*ks)->CreateAccessKey(t->id));
      created.fetch_add(1);
    }
  });
  while (created.load() < 5) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int i = 0; i < 5; ++i) {
    const std::string path = backup_ + std::to_string(i);
    auto done = BackupKeystore(keystore_, path, root_);
    ASSERT_OK(done);
    // A consistent snapshot: every tenant of the copy has its key version (created in one
    // transaction), and the copy restores and opens.
    EXPECT_EQ(done->key_versions, done->tenants);
    EXPECT_GE(done->tenants, 2u + 5u);
    auto staged = StagedRestore::Stage(path, data_dir_);
    ASSERT_OK(staged);
    auto verified = staged->Verify(root_);
    ASSERT_OK(verified);
    EXPECT_EQ(verified->tenants, done->tenants);
  }
  stop = true;
  writer.join();
}

TEST_F(BackupTest, BackupDestroyRestoreReadsEveryKeyBack) {
  Backup();
  for (const auto& f : {"", "-wal", "-shm"}) {
    fs::remove(keystore_ + f);
  }
  {
    auto staged = StagedRestore::Stage(backup_, data_dir_);
    ASSERT_OK(staged);
    auto resealed = staged->AdoptRootKey(root_, std::nullopt, {});
    ASSERT_OK(resealed);
    EXPECT_FALSE(*resealed);
    auto installed = staged->Install(1'700'000'000'000);
    ASSERT_OK(installed);
    EXPECT_TRUE(installed->moved_aside.empty());
  }
  ExpectDataKeysOpen(root_);
  // The backup file itself is only read.
  EXPECT_TRUE(fs::exists(backup_));
  EXPECT_FALSE(fs::exists(backup_ + "-wal"));
}

TEST_F(BackupTest, InstallMovesTheCurrentKeystoreAsideNeverDeletes) {
  Backup();
  const std::string before = ReadAll(keystore_);
  auto staged = StagedRestore::Stage(backup_, data_dir_);
  ASSERT_OK(staged);
  ASSERT_OK(staged->AdoptRootKey(root_, std::nullopt, {}));
  auto installed = staged->Install(1'700'000'000'000);  // 2023-11-14T22:13:20Z
  ASSERT_OK(installed);
  ASSERT_FALSE(installed->moved_aside.empty());
  EXPECT_EQ(installed->moved_aside.back(), keystore_ + ".replaced-20231114T221320Z");
  EXPECT_TRUE(fs::exists(keystore_ + ".replaced-20231114T221320Z"));
  EXPECT_FALSE(fs::exists(keystore_ + "-wal"));
  // A second restore in the same second does not overwrite the first moved-aside copy.
  auto again = StagedRestore::Stage(backup_, data_dir_);
  ASSERT_OK(again);
  auto second = again->Install(1'700'000'000'000);
  ASSERT_OK(second);
  EXPECT_EQ(second->moved_aside.back(), keystore_ + ".replaced-20231114T221320Z-1");
  ExpectDataKeysOpen(root_);
  // No staged copy left behind.
  for (const auto& e : fs::directory_iterator(data_dir_)) {
    EXPECT_EQ(e.path().filename().string().find("restore-"), std::string::npos) << e.path();
  }
}

class RestoreRefusalTest : public BackupTest {
 protected:
  // Stages `backup_` and expects a refusal with `code`, the data directory untouched.
  void ExpectRefused(StatusCode code, const std::optional<SecretBytes>& root = std::nullopt) {
    const auto before = DataDirFiles();
    {
      auto staged = StagedRestore::Stage(backup_, data_dir_);
      if (staged.ok()) {
        auto adopted = staged->AdoptRootKey(root ? *root : root_, std::nullopt, {});
        ASSERT_THAT(adopted, StatusIs(code)) << "the restore was not refused";
      } else {
        EXPECT_EQ(staged.status().code(), code) << staged.status().ToString();
        EXPECT_NE(staged.status().message().find("nothing was changed"), std::string::npos);
      }
    }  // the staged copy is removed here
    EXPECT_EQ(DataDirFiles(), before);
    ExpectDataKeysOpen(root_);
  }
};

TEST_F(RestoreRefusalTest, WrongRootKey) {
  Backup();
  ExpectRefused(StatusCode::kPermissionDenied, SecretBytes::Random(32));
}

TEST_F(RestoreRefusalTest, CorruptFile) {
  Backup();
  std::string bytes = ReadAll(backup_);
  for (size_t i = 4096; i < bytes.size(); i += 7) {
    bytes[i] = static_cast<char>(bytes[i] ^ 0x5a);
  }
  WriteAll(backup_, bytes);
  ExpectRefused(StatusCode::kInvalidArgument);
}

TEST_F(RestoreRefusalTest, TruncatedFile) {
  Backup();
  const std::string bytes = ReadAll(backup_);
  WriteAll(backup_, bytes.substr(0, bytes.size() / 2 + 100));
  ExpectRefused(StatusCode::kInvalidArgument);
}

TEST_F(RestoreRefusalTest, NotSqlite) {
  WriteAll(backup_, std::string(8192, 'x'));
  ExpectRefused(StatusCode::kInvalidArgument);
}

TEST_F(RestoreRefusalTest, EmptyFileAndOtherDatabase) {
  WriteAll(backup_, "");
  ExpectRefused(StatusCode::kInvalidArgument);
  fs::remove(backup_);
  {
    auto conn = db::Connection::Open(backup_);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec("CREATE TABLE t(x); PRAGMA user_version = 1; PRAGMA journal_mode = DELETE"));
  }
  ExpectRefused(StatusCode::kInvalidArgument);
}

TEST_F(RestoreRefusalTest, MissingFile) { ExpectRefused(StatusCode::kInvalidArgument); }

TEST_F(RestoreRefusalTest, WalBesideTheBackup) {
  Backup();
  WriteAll(backup_ + "-wal", "something");
  ExpectRefused(StatusCode::kInvalidArgument);
}

TEST_F(RestoreRefusalTest, NewerSchema) {
  Backup();
  {
    auto conn = db::Connection::Open(backup_);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec("PRAGMA user_version = 999; PRAGMA journal_mode = DELETE"));
  }
  ExpectRefused(StatusCode::kInvalidArgument);
}

TEST_F(BackupTest, RestoreWithTheBackupsRootKeyReseals) {
  Backup();
  // The root key was rotated after the backup: the backup opens only with the old key.
  const SecretBytes new_root = SecretBytes::Random(32);
  ASSERT_OK(RotateRootKey(keystore_, root_, new_root));
  {
    auto staged = StagedRestore::Stage(backup_, data_dir_);
    ASSERT_OK(staged);
    auto refused = staged->AdoptRootKey(new_root, std::nullopt, {});
    EXPECT_THAT(refused, StatusIs(StatusCode::kPermissionDenied));
    auto wrong = staged->AdoptRootKey(new_root, SecretBytes::Random(32), {});
    EXPECT_THAT(wrong, StatusIs(StatusCode::kPermissionDenied));
    auto resealed = staged->AdoptRootKey(new_root, root_, {});
    ASSERT_OK(resealed);
    EXPECT_TRUE(*resealed);
    ASSERT_OK(staged->Verify(new_root));
    EXPECT_THAT(staged->Verify(root_), StatusIs(StatusCode::kPermissionDenied));
    ASSERT_OK(staged->Install(1'700'000'000'000));
  }
  ExpectDataKeysOpen(new_root);
  EXPECT_THAT(Keystore::Open(keystore_, root_), StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(BackupTest, ReapplyShredAndDestroyMadeAfterTheBackup) {
  // Version 1 of the bank retired (rotated) before the backup, destroyed after it; the insurer
  // shredded after it.
  {
    auto ks = Keystore::Open(keystore_, root_);
    ASSERT_OK(ks);
    ASSERT_OK((*ks)->RotateTenantKey(tenants_[0]));
  }
  Backup();
  {
    auto ks = Keystore::Open(keystore_, root_);
    ASSERT_OK(ks);
    ASSERT_OK((*ks)->DestroyKeyVersion(tenants_[0], 1));
    ASSERT_OK((*ks)->ShredTenant(tenants_[1]));
  }
  auto recorded = ListKeyDestructions(keystore_);
  ASSERT_OK(recorded);
  const std::vector<KeyDestruction> expected = {{tenants_[0], 1}, {tenants_[1], 0}};
  std::vector<KeyDestruction> sorted_expected = expected;
  std::sort(sorted_expected.begin(), sorted_expected.end());
  EXPECT_EQ(*recorded, sorted_expected);

  auto staged = StagedRestore::Stage(backup_, data_dir_);
  ASSERT_OK(staged);
  ASSERT_OK(staged->AdoptRootKey(root_, std::nullopt, {}));
  auto before = staged->Verify(root_);
  ASSERT_OK(before);
  EXPECT_EQ(before->shredded_tenants, 0u);
  EXPECT_EQ(before->key_versions, 3u);
  // An unknown tenant (created after the backup) and a repeat are skipped.
  std::vector<KeyDestruction> todo = *recorded;
  todo.push_back({std::string(32, 'a'), 0});
  todo.push_back({tenants_[1], 0});
  auto applied = staged->Reapply(root_, todo);
  ASSERT_OK(applied);
  ASSERT_EQ(applied->size(), 2u);
  EXPECT_EQ(applied->at(0).destruction, (KeyDestruction{tenants_[1], 0}));  // shreds first
  EXPECT_EQ(applied->at(0).tenant_name, "insurer");
  EXPECT_EQ(applied->at(1).destruction, (KeyDestruction{tenants_[0], 1}));
  auto after = staged->Verify(root_);
  ASSERT_OK(after);
  EXPECT_EQ(after->shredded_tenants, 1u);
  EXPECT_EQ(after->key_versions, 1u);  // the bank's version 2
  // Applying again changes nothing.
  auto again = staged->Reapply(root_, todo);
  ASSERT_OK(again);
  EXPECT_TRUE(again->empty());
  ASSERT_OK(staged->Install(1'700'000'000'000));

  auto ks = Keystore::Open(keystore_, root_);
  ASSERT_OK(ks);
  auto insurer = (*ks)->GetTenant(tenants_[1]);
  ASSERT_OK(insurer);
  EXPECT_TRUE(insurer->shredded.has_value());
  EXPECT_THAT((*ks)->UnwrapDataKey(tenants_[1], 1, data_keys_[1].wrapped, AsBytes("obj")).status(),
              StatusIs(StatusCode::kPermissionDenied));
  auto versions = (*ks)->ListKeyVersions(tenants_[0]);
  ASSERT_OK(versions);
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_EQ(versions->at(0).version, 2u);
}

TEST_F(BackupTest, ReapplyRefusesToDestroyTheBackupsActiveVersion) {
  Backup();  // version 1 active in the backup
  {
    auto ks = Keystore::Open(keystore_, root_);
    ASSERT_OK(ks);
    ASSERT_OK((*ks)->RotateTenantKey(tenants_[0]));
    ASSERT_OK((*ks)->DestroyKeyVersion(tenants_[0], 1));
  }
  const auto files = DataDirFiles();
  {
    auto staged = StagedRestore::Stage(backup_, data_dir_);
    ASSERT_OK(staged);
    ASSERT_OK(staged->AdoptRootKey(root_, std::nullopt, {}));
    auto refused = staged->Reapply(root_, {{tenants_[0], 1}});
    ASSERT_THAT(refused, StatusIs(StatusCode::kFailedPrecondition, HasSubstr("predates")));
  }
  EXPECT_EQ(DataDirFiles(), files);
}

TEST_F(BackupTest, RestoreVoidsApprovalsStillOpenInTheBackup) {
  Backup();
  {
    auto conn = db::Connection::Open(backup_);
    ASSERT_OK(conn);
    auto has = (*conn)->Prepare("SELECT count(*) FROM sqlite_master WHERE name = 'approvals'");
    ASSERT_OK(has);
    ASSERT_TRUE(*has->Step());
    if (has->ColumnInt64(0) == 0) {
      GTEST_SKIP() << "this keystore schema has no approvals";
    }
    // One open, one already used, one expired.
    Status inserted = (*conn)->Exec(
        "INSERT INTO approvals(id, operation, tenant_id, version, requested_by, requested, expires, "
        "approved_by, approved, used) VALUES "
        "('open', 'root_key.rotate', '', 0, 'alice', 1000, 9000000000000, 'bob', 2000, NULL), "
        "('used', 'root_key.rotate', '', 0, 'alice', 1000, 9000000000000, 'bob', 2000, 3000), "
        "('old', 'root_key.rotate', '', 0, 'alice', 1000, 5000, NULL, NULL, NULL)");
    ASSERT_OK(inserted);
  }
  auto staged = StagedRestore::Stage(backup_, data_dir_);
  ASSERT_OK(staged);
  auto voided = staged->VoidOpenApprovals(root_, 1'700'000'000'000);
  ASSERT_OK(voided);
  EXPECT_EQ(*voided, 1u);
  ASSERT_OK(staged->Install(1'700'000'000'000));
  auto conn = db::Connection::Open(keystore_, db::OpenMode::kQueryOnly);
  ASSERT_OK(conn);
  auto st = (*conn)->Prepare("SELECT id, used FROM approvals ORDER BY id");
  ASSERT_OK(st);
  std::map<std::string, int64_t> used;
  while (*st->Step()) {
    used[st->ColumnText(0)] = st->ColumnIsNull(1) ? -1 : st->ColumnInt64(1);
  }
  EXPECT_EQ(used["open"], 1'700'000'000'000);
  EXPECT_EQ(used["used"], 3000);
  EXPECT_EQ(used["old"], -1);
}

}  // namespace
}  // namespace coffre::keystore
