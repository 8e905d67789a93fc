// The audit signing key across a root key rotation (AuditLog::AddRootKeySeal and
// DropRootKeySealsExcept; docs/KEYS.md): at every step between the two, the log opens with the
// root key the keystore accepts, and always with the same signing key.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "coffre/audit/audit_log.h"
#include "coffre/crypto/aead.h"
#include "coffre/crypto/hash.h"
#include "coffre/crypto/root_subkeys.h"
#include "coffre/db/sqlite.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::audit {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

class RootKeySealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.str() + "/audit.db";
    old_root_ = SecretBytes::Random(32);
    new_root_ = SecretBytes::Random(32);
    auto log = AuditLog::Open(path_, old_root_);
    ASSERT_OK(log);
    public_key_ = (*log)->public_key();
    Event e;
    e.operation = Operation::kTenantKeyCreate;
    e.tenant = "t";
    e.request.action = "cli";
    ASSERT_OK((*log)->Record(e));
  }

  // Opens with `root`: true with the original signing key, false if refused.
  bool OpensWith(const SecretBytes& root) {
    auto log = AuditLog::Open(path_, root);
    if (!log.ok()) {
      EXPECT_THAT(log, StatusIs(StatusCode::kPermissionDenied));
      return false;
    }
    EXPECT_EQ((*log)->public_key(), public_key_);
    auto n = (*log)->VerifyStored();
    EXPECT_OK(n);
    return true;
  }

  // Every stored sealed copy of the signing key, as it is on disk.
  std::string SealedCopies() {
    auto conn = db::Connection::Open(path_, db::OpenMode::kQueryOnly);
    EXPECT_OK(conn);
    std::string all;
    for (const char* sql : {"SELECT sealed_secret FROM signing_keys", "SELECT sealed_secret FROM signing_key_seals"}) {
      auto st = (*conn)->Prepare(sql);
      EXPECT_OK(st);
      while (*st->Step()) {
        Bytes b = st->ColumnBlob(0);
        all += std::string(b.begin(), b.end()) + "|";
      }
    }
    return all;
  }

  Bytes Query(const std::string& sql) {
    auto conn = db::Connection::Open(path_, db::OpenMode::kQueryOnly);
    EXPECT_OK(conn);
    auto st = (*conn)->Prepare(sql);
    EXPECT_OK(st);
    auto row = st->Step();
    EXPECT_TRUE(row.ok() && *row) << sql;
    return st->ColumnBlob(0);
  }
  void Exec(const std::string& sql, const std::string& key_id, const Bytes& a, const Bytes& b = {}) {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    auto st = (*conn)->Prepare(sql);
    ASSERT_OK(st);
    if (b.empty()) {
      ASSERT_OK(st->BindAll(a, key_id));
    } else {
      ASSERT_OK(st->BindAll(key_id, a, b));
    }
    ASSERT_OK(st->Run());
  }
  std::string KeyIdStored() {
    Bytes b = Query("SELECT CAST(key_id AS BLOB) FROM signing_keys");
    return std::string(b.begin(), b.end());
  }
  static Bytes Aad(const std::string& key_id) {
    std::string s = "coffre/v1/audit-signing-key/" + key_id;
    return Bytes(s.begin(), s.end());
  }
  static SecretBytes SealKey(const SecretBytes& root) {
    return crypto::DeriveRootSubkey(root, crypto::RootKeyPurpose::kAuditSigningKeySeal);
  }
  // The fingerprint an earlier version keyed signing_key_seals by: HMAC keyed by the root key itself.
  static Bytes LegacyFingerprint(const SecretBytes& root) {
    const crypto::Sha256Digest mac = crypto::HmacSha256(root.Reveal(), AsBytes("coffre/v1/audit-root-key-fingerprint"));
    return Bytes(mac.begin(), mac.begin() + 16);
  }
  // The signing key's private half, from the original copy under `root`'s derived seal key.
  SecretBytes SigningSecret(const SecretBytes& root) {
    auto secret =
        crypto::OpenSecret(SealKey(root), Query("SELECT sealed_secret FROM signing_keys"), Aad(KeyIdStored()));
    EXPECT_OK(secret);
    return std::move(secret).value();
  }
  // Rewrites the original copy as an earlier version stored it: sealed under the root key itself.
  void MakeOriginalLegacy(const SecretBytes& root) {
    const std::string id = KeyIdStored();
    const SecretBytes secret = SigningSecret(root);
    auto sealed = crypto::Seal(root, secret.Reveal(), Aad(id));
    ASSERT_OK(sealed);
    Exec("UPDATE signing_keys SET sealed_secret = ? WHERE key_id = ?", id, *sealed);
  }
  // True if any stored copy opens under `root` used directly as the AES-GCM key.
  bool AnyCopyOpensWithRawKey(const SecretBytes& root) {
    auto conn = db::Connection::Open(path_, db::OpenMode::kQueryOnly);
    EXPECT_OK(conn);
    const Bytes aad = Aad(KeyIdStored());
    for (const char* sql : {"SELECT sealed_secret FROM signing_keys", "SELECT sealed_secret FROM signing_key_seals"}) {
      auto st = (*conn)->Prepare(sql);
      EXPECT_OK(st);
      while (*st->Step()) {
        if (crypto::OpenSecret(root, st->ColumnBlob(0), aad).ok()) {
          return true;
        }
      }
    }
    return false;
  }

  test_support::TempDir dir_{"audit-seal"};
  std::string path_;
  SecretBytes old_root_;
  SecretBytes new_root_;
  Bytes public_key_;
};

TEST_F(RootKeySealTest, EveryStepOfARotationOpensWithTheKeyTheKeystoreAccepts) {
  // Step 1 done (a crash here: the keystore still accepts the old key).
  ASSERT_OK(AuditLog::AddRootKeySeal(path_, old_root_, new_root_));
  EXPECT_TRUE(OpensWith(old_root_));
  EXPECT_TRUE(OpensWith(new_root_));
  // Idempotent: a rotation retried after a crash adds it again.
  ASSERT_OK(AuditLog::AddRootKeySeal(path_, old_root_, new_root_));
  // Step 3 (after the keystore committed the new key): the old key opens nothing any more.
  ASSERT_OK(AuditLog::DropRootKeySealsExcept(path_, new_root_));
  EXPECT_TRUE(OpensWith(new_root_));
  EXPECT_FALSE(OpensWith(old_root_));
  // And a second rotation goes the same way from the new key's copy.
  SecretBytes third = SecretBytes::Random(32);
  ASSERT_OK(AuditLog::AddRootKeySeal(path_, new_root_, third));
  ASSERT_OK(AuditLog::DropRootKeySealsExcept(path_, third));
  EXPECT_TRUE(OpensWith(third));
  EXPECT_FALSE(OpensWith(new_root_));
}

// A failed keystore rotation: the copy under the new key is dropped, the old key keeps working.
TEST_F(RootKeySealTest, AbandonedRotationDropsTheNewCopy) {
  ASSERT_OK(AuditLog::AddRootKeySeal(path_, old_root_, new_root_));
  ASSERT_OK(AuditLog::DropRootKeySealsExcept(path_, old_root_));
  EXPECT_TRUE(OpensWith(old_root_));
  EXPECT_FALSE(OpensWith(new_root_));
}

TEST_F(RootKeySealTest, WrongCurrentKeyOrNoCopyToKeepChangesNothing) {
  const std::string before = SealedCopies();
  SecretBytes wrong = SecretBytes::Random(32);
  Status st = AuditLog::AddRootKeySeal(path_, wrong, new_root_);
  EXPECT_THAT(st, StatusIs(StatusCode::kPermissionDenied));
  // Dropping every copy but one under a key that has none would leave the signing key unopenable.
  st = AuditLog::DropRootKeySealsExcept(path_, new_root_);
  EXPECT_THAT(st, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(SealedCopies(), before);
  EXPECT_TRUE(OpensWith(old_root_));
}

TEST_F(RootKeySealTest, SealedUnderTheDerivedKeyNeverTheRootKeyItself) {
  const Bytes original = Query("SELECT sealed_secret FROM signing_keys");
  const Bytes aad = Aad(KeyIdStored());
  EXPECT_THAT(crypto::OpenSecret(old_root_, original, aad), Not(IsOk()));
  EXPECT_OK(crypto::OpenSecret(SealKey(old_root_), original, aad));
  // A rotation's copy: under the new root key's derived key, named by the derived fingerprint.
  ASSERT_OK(AuditLog::AddRootKeySeal(path_, old_root_, new_root_));
  const Bytes copy = Query("SELECT sealed_secret FROM signing_key_seals");
  EXPECT_THAT(crypto::OpenSecret(new_root_, copy, aad), Not(IsOk()));
  EXPECT_OK(crypto::OpenSecret(SealKey(new_root_), copy, aad));
  const Bytes fingerprint = Query("SELECT root_fingerprint FROM signing_key_seals");
  const SecretBytes fp_key = crypto::DeriveRootSubkey(new_root_, crypto::RootKeyPurpose::kAuditRootKeyFingerprint);
  const crypto::Sha256Digest mac = crypto::HmacSha256(fp_key.Reveal(), AsBytes("coffre/v2/audit-root-key-fingerprint"));
  EXPECT_EQ(fingerprint, Bytes(mac.begin(), mac.begin() + 16));
  EXPECT_NE(fingerprint, LegacyFingerprint(new_root_));
}

// A log an earlier version wrote (signing key sealed under the root key itself) opens with the same
// signing key, verifies, and is re-sealed under the derived key; it keeps recording and verifying.
TEST_F(RootKeySealTest, EarlierVersionsRawKeySealOpensAndIsResealed) {
  MakeOriginalLegacy(old_root_);
  ASSERT_TRUE(AnyCopyOpensWithRawKey(old_root_));
  EXPECT_TRUE(OpensWith(old_root_));
  EXPECT_FALSE(AnyCopyOpensWithRawKey(old_root_));
  EXPECT_OK(
      crypto::OpenSecret(SealKey(old_root_), Query("SELECT sealed_secret FROM signing_keys"), Aad(KeyIdStored())));
  {
    auto log = AuditLog::Open(path_, old_root_);
    ASSERT_OK(log);
    Event e;
    e.operation = Operation::kTenantKeyCreate;
    e.tenant = "t";
    e.request.action = "cli";
    ASSERT_OK((*log)->Record(e));
  }
  EXPECT_TRUE(OpensWith(old_root_));
  EXPECT_FALSE(OpensWith(new_root_));
}

// An earlier version's log caught between the steps of a rotation: the original under the old root
// key and a copy under the new one, both raw-key seals. Each is re-sealed by an open with its key.
TEST_F(RootKeySealTest, EarlierVersionsRotationCopyIsResealedInPlace) {
  const std::string id = KeyIdStored();
  {
    const SecretBytes secret = SigningSecret(old_root_);
    auto sealed = crypto::Seal(new_root_, secret.Reveal(), Aad(id));
    ASSERT_OK(sealed);
    Exec("INSERT INTO signing_key_seals (key_id, root_fingerprint, sealed_secret, created) VALUES (?, ?, ?, 0)", id,
         LegacyFingerprint(new_root_), *sealed);
  }
  MakeOriginalLegacy(old_root_);
  EXPECT_TRUE(OpensWith(new_root_));
  EXPECT_FALSE(AnyCopyOpensWithRawKey(new_root_));
  EXPECT_TRUE(AnyCopyOpensWithRawKey(old_root_));  // not opened with the old key yet
  EXPECT_TRUE(OpensWith(old_root_));
  EXPECT_FALSE(AnyCopyOpensWithRawKey(old_root_));
  // The rotation finishes as before.
  ASSERT_OK(AuditLog::DropRootKeySealsExcept(path_, new_root_));
  EXPECT_TRUE(OpensWith(new_root_));
  EXPECT_FALSE(OpensWith(old_root_));
}

// A rotation run on an earlier version's log before the daemon opened it once: the old key's raw
// seal opens it, the new copy is under the derived key, and dropping the old key leaves no raw seal.
TEST_F(RootKeySealTest, RotationFromAnEarlierVersionsSeal) {
  MakeOriginalLegacy(old_root_);
  ASSERT_OK(AuditLog::AddRootKeySeal(path_, old_root_, new_root_));
  ASSERT_OK(AuditLog::DropRootKeySealsExcept(path_, new_root_));
  EXPECT_FALSE(AnyCopyOpensWithRawKey(old_root_));
  EXPECT_FALSE(AnyCopyOpensWithRawKey(new_root_));
  EXPECT_TRUE(OpensWith(new_root_));
  EXPECT_FALSE(OpensWith(old_root_));
}

// Abandoned after an earlier version's seal: keeping the old key keeps its raw seal until an open.
TEST_F(RootKeySealTest, AbandonedRotationKeepsAnEarlierVersionsSeal) {
  MakeOriginalLegacy(old_root_);
  ASSERT_OK(AuditLog::AddRootKeySeal(path_, old_root_, new_root_));
  ASSERT_OK(AuditLog::DropRootKeySealsExcept(path_, old_root_));
  EXPECT_FALSE(OpensWith(new_root_));
  EXPECT_TRUE(OpensWith(old_root_));
  EXPECT_FALSE(AnyCopyOpensWithRawKey(old_root_));
}

}  // namespace
}  // namespace coffre::audit
