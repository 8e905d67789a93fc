// Root key sources: key file permissions and ownership, systemd credentials, and passphrases
// stretched with Argon2id (salt and parameters in the keystore; a wrong passphrase is caught by
// the keystore's check value at open, never by garbage decryption later).

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "coffre/keystore/keystore.h"

namespace coffre::keystore {
namespace {

// Small Argon2id limits: the tests check the plumbing, not the cost.
const PassphraseKdfParams kFast{1, 8 * 1024 * 1024};

class RootKeySourcesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "coffre-rootsrc-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    ::unsetenv("CREDENTIALS_DIRECTORY");
    std::filesystem::remove_all(dir_);
  }
  void WriteFile(const std::string& path, std::string_view content, mode_t mode) {
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << content;
    }
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
  }
  SecretBytes Pass(std::string_view s) { return SecretBytes(AsBytes(s)); }

  std::string dir_;
  const std::string hex_ = std::string(64, 'a');
};

TEST_F(RootKeySourcesTest, KeyFileModeMustBe0600Or0400) {
  const std::string path = dir_ + "/root.key";
  for (mode_t ok : {0600, 0400}) {
    WriteFile(path, hex_, ok);
    EXPECT_TRUE(LoadRootKeyFile(path).ok()) << std::oct << ok;
  }
  for (mode_t bad : {0700, 0200, 0500}) {
    WriteFile(path, hex_, bad);
    auto r = LoadRootKeyFile(path);
    ASSERT_FALSE(r.ok()) << std::oct << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
    EXPECT_NE(r.status().message().find("0600 or 0400"), std::string::npos);
  }
}

TEST_F(RootKeySourcesTest, KeyFileOwnedBySomeoneElseIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to give a file to another user";
  }
  const std::string path = dir_ + "/root.key";
  WriteFile(path, hex_, 0600);
  ASSERT_EQ(::chown(path.c_str(), 12345, 12345), 0);
  auto r = LoadRootKeyFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.status().message().find("owned by uid 12345"), std::string::npos);
}

TEST_F(RootKeySourcesTest, SystemdCredential) {
  EXPECT_EQ(LoadRootKeyCredential("coffre-root-key").status().code(), StatusCode::kFailedPrecondition);
  ASSERT_EQ(::setenv("CREDENTIALS_DIRECTORY", dir_.c_str(), 1), 0);
  EXPECT_EQ(LoadRootKeyCredential("coffre-root-key").status().code(), StatusCode::kNotFound);
  WriteFile(dir_ + "/coffre-root-key", hex_, 0400);
  auto key = LoadRootKeyCredential("coffre-root-key");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->Reveal()[0], 0xaa);
  EXPECT_EQ(LoadRootKeyCredential("../coffre-root-key").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RootKeySourcesTest, PassphraseFromAFileDescriptor) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "correct horse\n", 14), 14);
  ::close(fds[1]);
  auto p = ReadPassphraseFromFd(fds[0]);
  ::close(fds[0]);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p->Reveal().data()), p->size()), "correct horse");
  // A closed (empty) input is refused, not taken as an empty passphrase.
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[1]);
  EXPECT_EQ(ReadPassphraseFromFd(fds[0]).status().code(), StatusCode::kInvalidArgument);
  ::close(fds[0]);
}

TEST_F(RootKeySourcesTest, PromptRefusesWhenStdinIsNotATerminal) {
  if (::isatty(STDIN_FILENO) == 1) {
    GTEST_SKIP() << "stdin is a terminal";
  }
  EXPECT_EQ(PromptPassphrase(false).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(RootKeySourcesTest, PassphraseDerivesTheSameKeyAndAWrongOneIsDetectedAtOpen) {
  const std::string path = dir_ + "/keystore.db";
  auto key = DeriveRootKeyFromPassphrase(path, Pass("correct horse"), /*create=*/true, kFast);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  std::string tenant_id;
  {
    auto ks = Keystore::Open(path, *key);
    ASSERT_TRUE(ks.ok()) << ks.status().ToString();
    tenant_id = (*ks)->CreateTenant("bank")->id;
  }
  // Same passphrase, stored salt and parameters: the same root key (the defaults passed now are
  // ignored in favour of the stored ones).
  auto again = DeriveRootKeyFromPassphrase(path, Pass("correct horse"), /*create=*/false);
  ASSERT_TRUE(again.ok());
  auto ks = Keystore::Open(path, *again);
  ASSERT_TRUE(ks.ok());
  EXPECT_TRUE((*ks)->NewDataKey(tenant_id, AsBytes("x")).ok());
  ks->reset();

  auto wrong = DeriveRootKeyFromPassphrase(path, Pass("wrong horse"), /*create=*/false);
  ASSERT_TRUE(wrong.ok());
  auto refused = Keystore::Open(path, *wrong);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(RootKeySourcesTest, PassphraseOnAKeystoreMadeWithAKeyFileIsRefused) {
  const std::string path = dir_ + "/keystore.db";
  ASSERT_TRUE(Keystore::Open(path, SecretBytes::Random(32)).ok());
  auto r = DeriveRootKeyFromPassphrase(path, Pass("anything"), /*create=*/true, kFast);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace coffre::keystore
