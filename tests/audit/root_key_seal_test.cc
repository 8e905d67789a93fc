// The audit signing key across a root key rotation (AuditLog::AddRootKeySeal and
// DropRootKeySealsExcept; docs/KEYS.md): at every step between the two, the log opens with the
// root key the keystore accepts, and always with the same signing key.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "coffre/audit/audit_log.h"
#include "coffre/db/sqlite.h"

namespace coffre::audit {
namespace {

class RootKeySealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/coffre-audit-seal-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/audit.db";
    old_root_ = SecretBytes::Random(32);
    new_root_ = SecretBytes::Random(32);
    auto log = AuditLog::Open(path_, old_root_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    public_key_ = (*log)->public_key();
    Event e;
    e.operation = Operation::kTenantKeyCreate;
    e.tenant = "t";
    e.request.action = "cli";
    ASSERT_TRUE((*log)->Record(e).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Opens with `root`: true with the original signing key, false if refused.
  bool OpensWith(const SecretBytes& root) {
    auto log = AuditLog::Open(path_, root);
    if (!log.ok()) {
      EXPECT_EQ(log.status().code(), StatusCode::kPermissionDenied) << log.status().ToString();
      return false;
    }
    EXPECT_EQ((*log)->public_key(), public_key_);
    auto n = (*log)->VerifyStored();
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return true;
  }

  // Every stored sealed copy of the signing key, as it is on disk.
  std::string SealedCopies() {
    auto conn = db::Connection::Open(path_, db::OpenMode::kQueryOnly);
    EXPECT_TRUE(conn.ok());
    std::string all;
    for (const char* sql : {"SELECT sealed_secret FROM signing_keys", "SELECT sealed_secret FROM signing_key_seals"}) {
      auto st = (*conn)->Prepare(sql);
      EXPECT_TRUE(st.ok());
      while (*st->Step()) {
        Bytes b = st->ColumnBlob(0);
        all += std::string(b.begin(), b.end()) + "|";
      }
    }
    return all;
  }

  std::string dir_;
  std::string path_;
  SecretBytes old_root_;
  SecretBytes new_root_;
  Bytes public_key_;
};

TEST_F(RootKeySealTest, EveryStepOfARotationOpensWithTheKeyTheKeystoreAccepts) {
  // Step 1 done (a crash here: the keystore still accepts the old key).
  ASSERT_TRUE(AuditLog::AddRootKeySeal(path_, old_root_, new_root_).ok());
  EXPECT_TRUE(OpensWith(old_root_));
  EXPECT_TRUE(OpensWith(new_root_));
  // Idempotent: a rotation retried after a crash adds it again.
  ASSERT_TRUE(AuditLog::AddRootKeySeal(path_, old_root_, new_root_).ok());
  // Step 3 (after the keystore committed the new key): the old key opens nothing any more.
  ASSERT_TRUE(AuditLog::DropRootKeySealsExcept(path_, new_root_).ok());
  EXPECT_TRUE(OpensWith(new_root_));
  EXPECT_FALSE(OpensWith(old_root_));
  // And a second rotation goes the same way from the new key's copy.
  SecretBytes third = SecretBytes::Random(32);
  ASSERT_TRUE(AuditLog::AddRootKeySeal(path_, new_root_, third).ok());
  ASSERT_TRUE(AuditLog::DropRootKeySealsExcept(path_, third).ok());
  EXPECT_TRUE(OpensWith(third));
  EXPECT_FALSE(OpensWith(new_root_));
}

// A failed keystore rotation: the copy under the new key is dropped, the old key keeps working.
TEST_F(RootKeySealTest, AbandonedRotationDropsTheNewCopy) {
  ASSERT_TRUE(AuditLog::AddRootKeySeal(path_, old_root_, new_root_).ok());
  ASSERT_TRUE(AuditLog::DropRootKeySealsExcept(path_, old_root_).ok());
  EXPECT_TRUE(OpensWith(old_root_));
  EXPECT_FALSE(OpensWith(new_root_));
}

TEST_F(RootKeySealTest, WrongCurrentKeyOrNoCopyToKeepChangesNothing) {
  const std::string before = SealedCopies();
  SecretBytes wrong = SecretBytes::Random(32);
  Status st = AuditLog::AddRootKeySeal(path_, wrong, new_root_);
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << st.ToString();
  // Dropping every copy but one under a key that has none would leave the signing key unopenable.
  st = AuditLog::DropRootKeySealsExcept(path_, new_root_);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_EQ(SealedCopies(), before);
  EXPECT_TRUE(OpensWith(old_root_));
}

}  // namespace
}  // namespace coffre::audit
