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
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::keystore {
namespace {

using test_support::StatusIs;
using ::testing::HasSubstr;

// Small Argon2id limits: the tests check the plumbing, not the cost.
const PassphraseKdfParams kFast{1, 8 * 1024 * 1024};

class RootKeySourcesTest : public ::testing::Test {
 protected:
  void TearDown() override { ::unsetenv("CREDENTIALS_DIRECTORY"); }
  void WriteFile(const std::string& path, std::string_view content, mode_t mode) {
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << content;
    }
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
  }
  SecretBytes Pass(std::string_view s) { return SecretBytes(AsBytes(s)); }

  test_support::TempDir dir_{"rootsrc"};
  const std::string hex_ = std::string(64, 'a');
};

TEST_F(RootKeySourcesTest, KeyFileModeMustBe0600Or0400) {
  const std::string path = dir_.str() + "/root.key";
  for (mode_t ok : {0600, 0400}) {
    WriteFile(path, hex_, ok);
    EXPECT_OK(LoadRootKeyFile(path)) << std::oct << ok;
  }
  for (mode_t bad : {0700, 0200, 0500}) {
    WriteFile(path, hex_, bad);
    auto r = LoadRootKeyFile(path);
    ASSERT_THAT(r, StatusIs(StatusCode::kPermissionDenied, HasSubstr("0600 or 0400"))) << std::oct << bad;
  }
}

TEST_F(RootKeySourcesTest, KeyFileOwnedBySomeoneElseIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to give a file to another user";
  }
  const std::string path = dir_.str() + "/root.key";
  WriteFile(path, hex_, 0600);
  ASSERT_EQ(::chown(path.c_str(), 12345, 12345), 0);
  auto r = LoadRootKeyFile(path);
  ASSERT_THAT(r, StatusIs(StatusCode::kPermissionDenied, HasSubstr("owned by uid 12345")));
}

TEST_F(RootKeySourcesTest, SystemdCredential) {
  EXPECT_THAT(LoadRootKeyCredential("coffre-root-key"), StatusIs(StatusCode::kFailedPrecondition));
  ASSERT_EQ(::setenv("CREDENTIALS_DIRECTORY", dir_.str().c_str(), 1), 0);
  EXPECT_THAT(LoadRootKeyCredential("coffre-root-key"), StatusIs(StatusCode::kNotFound));
  WriteFile(dir_.str() + "/coffre-root-key", hex_, 0400);
  auto key = LoadRootKeyCredential("coffre-root-key");
  ASSERT_OK(key);
  EXPECT_EQ(key->Reveal()[0], 0xaa);
  EXPECT_THAT(LoadRootKeyCredential("../coffre-root-key"), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(RootKeySourcesTest, PassphraseFromAFileDescriptor) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "correct horse\n", 14), 14);
  ::close(fds[1]);
  auto p = ReadPassphraseFromFd(fds[0]);
  ::close(fds[0]);
  ASSERT_OK(p);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p->Reveal().data()), p->size()), "correct horse");
  // A closed (empty) input is refused, not taken as an empty passphrase.
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[1]);
  EXPECT_THAT(ReadPassphraseFromFd(fds[0]), StatusIs(StatusCode::kInvalidArgument));
  ::close(fds[0]);
}

TEST_F(RootKeySourcesTest, PromptRefusesWhenStdinIsNotATerminal) {
  if (::isatty(STDIN_FILENO) == 1) {
    GTEST_SKIP() << "stdin is a terminal";
  }
  EXPECT_THAT(PromptPassphrase(false), StatusIs(StatusCode::kFailedPrecondition));
}

TEST_F(RootKeySourcesTest, PassphraseDerivesTheSameKeyAndAWrongOneIsDetectedAtOpen) {
  const std::string path = dir_.str() + "/keystore.db";
  auto key = DeriveRootKeyFromPassphrase(path, Pass("correct horse"), /*create=*/true, kFast);
  ASSERT_OK(key);
  std::string tenant_id;
  {
    auto ks = Keystore::Open(path, *key);
    ASSERT_OK(ks);
    tenant_id = (*ks)->CreateTenant("bank")->id;
  }
  // Same passphrase, stored salt and parameters: the same root key (the defaults passed now are
  // ignored in favour of the stored ones).
  auto again = DeriveRootKeyFromPassphrase(path, Pass("correct horse"), /*create=*/false);
  ASSERT_OK(again);
  auto ks = Keystore::Open(path, *again);
  ASSERT_OK(ks);
  EXPECT_OK((*ks)->NewDataKey(tenant_id, AsBytes("x")));
  ks->reset();

  auto wrong = DeriveRootKeyFromPassphrase(path, Pass("wrong horse"), /*create=*/false);
  ASSERT_OK(wrong);
  auto refused = Keystore::Open(path, *wrong);
  ASSERT_THAT(refused, StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(RootKeySourcesTest, PassphraseOnAKeystoreMadeWithAKeyFileIsRefused) {
  const std::string path = dir_.str() + "/keystore.db";
  ASSERT_OK(Keystore::Open(path, SecretBytes::Random(32)));
  auto r = DeriveRootKeyFromPassphrase(path, Pass("anything"), /*create=*/true, kFast);
  ASSERT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace coffre::keystore
