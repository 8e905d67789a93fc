// Root key rotation (RotateRootKey): every sealed row re-sealed under the new key in one
// transaction, the old key refused afterwards, and any failure midway leaving everything under
// the old key.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>

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

using std::chrono::milliseconds;

// Argon2id at libsodium's minimum cost: the tests are about the stored parameters, not strength.
PassphraseKdfParams FastKdf() { return PassphraseKdfParams{1, 8192}; }

class RootRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.str() + "/keystore.db";
    old_root_ = SecretBytes::Random(32);
    new_root_ = SecretBytes::Random(32);
    Populate();
  }

  // Two tenants (one rotated: two versions), three access keys, and a data key per tenant.
  void Populate() {
    auto ks = Keystore::Open(path_, old_root_, clock_);
    ASSERT_OK(ks);
    for (const std::string name : {"bank", "insurer"}) {
      auto t = (*ks)->CreateTenant(name);
      ASSERT_OK(t);
      tenants_.push_back(t->id);
      auto dk = (*ks)->NewDataKey(t->id, AsBytes("obj-" + name));
      ASSERT_OK(dk);
      data_keys_.push_back(std::move(dk).value());
    }
    ASSERT_OK((*ks)->RotateTenantKey(tenants_[0]));
    for (int i = 0; i < 3; ++i) {
      auto k = (*ks)->CreateAccessKey(tenants_[i % 2]);
      ASSERT_OK(k);
      secrets_[k->key.access_key_id] = k->secret_access_key;
    }
  }

  // Every sealed column of the keystore, by row.
  std::map<std::string, Bytes> SealedRows() {
    std::map<std::string, Bytes> out;
    auto conn = db::Connection::Open(path_, db::OpenMode::kQueryOnly);
    EXPECT_OK(conn);
    for (const char* sql :
         {"SELECT 'tk/' || tenant_id || '/' || version, wrapped_key FROM tenant_keys",
          "SELECT 'ak/' || access_key_id, secret FROM access_keys", "SELECT 'meta/' || name, value FROM meta"}) {
      auto st = (*conn)->Prepare(sql);
      EXPECT_OK(st);
      while (*st->Step()) {
        out[st->ColumnText(0)] = st->ColumnBlob(1);
      }
    }
    return out;
  }

  // Opens with `root` and checks that every key and secret still reads back.
  void ExpectEverythingOpensWith(const SecretBytes& root) {
    auto ks = Keystore::Open(path_, root, clock_);
    ASSERT_OK(ks);
    for (size_t i = 0; i < tenants_.size(); ++i) {
      auto key = (*ks)->UnwrapDataKey(tenants_[i], data_keys_[i].tenant_key_version, data_keys_[i].wrapped,
                                      AsBytes("obj-" + std::string(i == 0 ? "bank" : "insurer")));
      ASSERT_OK(key);
      EXPECT_TRUE(ConstantTimeEquals(key->Reveal(), data_keys_[i].key.Reveal()));
      auto fresh = (*ks)->NewDataKey(tenants_[i], AsBytes("new"));  // the active version opens too
      EXPECT_OK(fresh);
    }
    for (const auto& [id, secret] : secrets_) {
      auto r = (*ks)->ResolveAccessKey(id);
      ASSERT_OK(r);
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(r->secret.Reveal().data()), r->secret.size()), secret);
    }
  }

  void ExpectRefused(const SecretBytes& root) {
    auto ks = Keystore::Open(path_, root, clock_);
    ASSERT_THAT(ks, StatusIs(StatusCode::kPermissionDenied));
  }

  FixedClock clock_{std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
  test_support::TempDir dir_{"rootrot"};
  std::string path_;
  SecretBytes old_root_;
  SecretBytes new_root_;
  std::vector<std::string> tenants_;
  std::vector<DataKey> data_keys_;
  std::map<std::string, std::string> secrets_;
};

TEST_F(RootRotationTest, ReSealsEveryTenantKeyAndAccessKeySecretAndRefusesTheOldKey) {
  const auto before = SealedRows();
  auto report = RotateRootKey(path_, old_root_, new_root_);
  ASSERT_OK(report);
  EXPECT_EQ(report->tenant_keys, 3u);  // bank v1, v2; insurer v1
  EXPECT_EQ(report->access_keys, 3u);

  const auto after = SealedRows();
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [row, sealed] : before) {
    if (row.rfind("tk/", 0) == 0 || row.rfind("ak/", 0) == 0 || row == "meta/root-key-check") {
      EXPECT_NE(after.at(row), sealed) << row << " was not re-sealed";
    }
  }
  ExpectEverythingOpensWith(new_root_);
  ExpectRefused(old_root_);

  // The keystore-wide event is kept for auditors.
  auto ks = Keystore::Open(path_, new_root_, clock_);
  ASSERT_OK(ks);
  auto events = (*ks)->ListKeyEvents("");
  ASSERT_OK(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].event, "root-key-rotated");
}

// Another connection (another process: the daemon) sees either every row under the old key or
// every row under the new one, never a mix: the rotation is one transaction.
TEST_F(RootRotationTest, AnotherConnectionNeverSeesAHalfRotatedKeystore) {
  const auto before = SealedRows();
  size_t calls = 0;
  RootKeyRotationOptions options;
  options.after_row = [&](size_t rows_done) -> Status {
    ++calls;
    EXPECT_EQ(rows_done, calls);
    EXPECT_EQ(SealedRows(), before) << "a re-sealed row is visible before the commit (after " << rows_done << ")";
    return Status::Ok();
  };
  ASSERT_OK(RotateRootKey(path_, old_root_, new_root_, options));
  // Every rewritten row: the 6 sealed values and the 2 tenant rows, which get new MACs.
  EXPECT_EQ(calls, 8u);
  EXPECT_NE(SealedRows(), before);
}

// A crash or error midway (here injected after two re-sealed rows, then after the last one):
// rolled back, the old key still opens everything, the new key opens nothing.
TEST_F(RootRotationTest, FailureMidRotationLeavesTheOldKeyWorking) {
  const auto before = SealedRows();
  for (size_t fail_at : {1u, 2u, 6u}) {
    RootKeyRotationOptions options;
    options.after_row = [&](size_t rows_done) -> Status {
      return rows_done == fail_at ? Status::IOError("injected failure") : Status::Ok();
    };
    auto report = RotateRootKey(path_, old_root_, new_root_, options);
    ASSERT_THAT(report, StatusIs(StatusCode::kIOError));
    EXPECT_EQ(SealedRows(), before) << "failed at row " << fail_at;
  }
  ExpectEverythingOpensWith(old_root_);
  ExpectRefused(new_root_);
  // And the rotation then succeeds when run again.
  ASSERT_OK(RotateRootKey(path_, old_root_, new_root_));
  ExpectEverythingOpensWith(new_root_);
}

// The database cannot be written (another connection holds the write lock past the busy
// timeout, as a stuck writer would): refused, nothing changed.
TEST_F(RootRotationTest, LockedDatabaseRefusesAndChangesNothing) {
  const auto before = SealedRows();
  auto locker = db::Connection::Open(path_, db::OpenMode::kReadWrite, 100);
  ASSERT_OK(locker);
  ASSERT_OK((*locker)->Exec("BEGIN IMMEDIATE"));
  auto report = RotateRootKey(path_, old_root_, new_root_);
  EXPECT_THAT(report, Not(IsOk()));
  ASSERT_OK((*locker)->Exec("ROLLBACK"));
  EXPECT_EQ(SealedRows(), before);
  ExpectEverythingOpensWith(old_root_);
}

TEST_F(RootRotationTest, WrongCurrentKeySameKeyAndMissingKeystoreAreRefused) {
  const auto before = SealedRows();
  SecretBytes wrong = SecretBytes::Random(32);
  auto r = RotateRootKey(path_, wrong, new_root_);
  ASSERT_THAT(r, StatusIs(StatusCode::kPermissionDenied));
  r = RotateRootKey(path_, old_root_, SecretBytes(old_root_.Reveal()));
  ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  r = RotateRootKey(path_, old_root_, SecretBytes(16));
  ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  r = RotateRootKey(dir_.str() + "/missing.db", old_root_, new_root_);
  ASSERT_THAT(r, StatusIs(StatusCode::kNotFound));
  EXPECT_FALSE(std::filesystem::exists(dir_.str() + "/missing.db"));
  EXPECT_EQ(SealedRows(), before);
}

// A row that does not open under the current key (altered) stops the whole rotation: the rows
// re-sealed before it are rolled back.
TEST_F(RootRotationTest, AlteredRowAbortsTheWholeRotation) {
  {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    // The last access key in rotation order: every tenant key was re-sealed before it.
    ASSERT_OK(
        (*conn)->Exec("UPDATE access_keys SET secret = zeroblob(68) WHERE access_key_id = "
                      "(SELECT max(access_key_id) FROM access_keys)"));
  }
  const auto before = SealedRows();
  auto r = RotateRootKey(path_, old_root_, new_root_);
  ASSERT_THAT(r, StatusIs(StatusCode::kCorruption, HasSubstr("nothing was changed")));
  EXPECT_EQ(SealedRows(), before);
  ExpectRefused(new_root_);
}

// To a passphrase: its salt and parameters are stored in the same transaction, so the
// passphrase then derives the new root key; back to a key file: they are removed.
TEST_F(RootRotationTest, PassphraseParametersFollowTheNewRootKey) {
  SecretBytes passphrase(std::span<const uint8_t>(AsBytes("a new passphrase")));
  auto derived = DeriveRootKeyFromNewPassphrase(passphrase, FastKdf());
  ASSERT_OK(derived);
  RootKeyRotationOptions options;
  options.passphrase_kdf = derived->kdf_record;
  ASSERT_OK(RotateRootKey(path_, old_root_, derived->root_key, options));
  auto again = DeriveRootKeyFromPassphrase(path_, passphrase, /*create=*/false);
  ASSERT_OK(again);
  EXPECT_TRUE(ConstantTimeEquals(again->Reveal(), derived->root_key.Reveal()));
  ExpectEverythingOpensWith(*again);

  ASSERT_OK(RotateRootKey(path_, *again, new_root_));
  EXPECT_THAT(DeriveRootKeyFromPassphrase(path_, passphrase, false).status(),
              StatusIs(StatusCode::kFailedPrecondition));
  ExpectEverythingOpensWith(new_root_);
}

// A process that opened the keystore before the rotation (a running daemon) gets a clear error
// naming the rotation for keys it has not cached, never garbage.
TEST_F(RootRotationTest, ProcessStillOnTheOldKeyIsToldToRestart) {
  auto daemon = Keystore::Open(path_, old_root_, clock_);
  ASSERT_OK(daemon);
  ASSERT_OK(RotateRootKey(path_, old_root_, new_root_));
  clock_.Set(clock_.Now() + milliseconds(Keystore::kRevalidateIntervalMs + 1));
  auto r = (*daemon)->ResolveAccessKey(secrets_.begin()->first);
  ASSERT_THAT(r, StatusIs(StatusCode::kFailedPrecondition, HasSubstr("rotate-root")));
  auto k = (*daemon)->UnwrapDataKey(tenants_[1], data_keys_[1].tenant_key_version, data_keys_[1].wrapped,
                                    AsBytes("obj-insurer"));
  ASSERT_THAT(k, StatusIs(StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace coffre::keystore
