#include "server/data_dir_lock.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::server {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

class DataDirLockTest : public ::testing::Test {
 protected:
  test_support::TempDir temp_{"lock"};
  const std::filesystem::path dir_ = temp_.path() / "data";  // not created: Acquire creates it
};

TEST_F(DataDirLockTest, CreatesThePrivateDirectoryAndRecordsThePid) {
  auto lock = DataDirLock::Acquire(dir_.string(), /*create_directory=*/true);
  ASSERT_OK(lock);
  struct stat st {};
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(DataDirLock::HolderPid(dir_.string()), ::getpid());
}

TEST_F(DataDirLockTest, SecondHolderIsRefusedWithDirectoryAndPid) {
  auto first = DataDirLock::Acquire(dir_.string(), /*create_directory=*/true);
  ASSERT_OK(first);
  // flock belongs to the open file description: a second open in this process conflicts just
  // as a second process would.
  auto second = DataDirLock::Acquire(dir_.string());
  ASSERT_THAT(second, StatusIs(StatusCode::kUnavailable));
  EXPECT_NE(second.status().message().find(dir_.string()), std::string::npos) << second.status().message();
  EXPECT_NE(second.status().message().find("pid " + std::to_string(::getpid())), std::string::npos)
      << second.status().message();
}

TEST_F(DataDirLockTest, ReleasedWhenTheHolderGoesAway) {
  {
    auto first = DataDirLock::Acquire(dir_.string(), /*create_directory=*/true);
    ASSERT_OK(first);
  }
  auto again = DataDirLock::Acquire(dir_.string());
  EXPECT_OK(again);
}

TEST_F(DataDirLockTest, StalePidFromACrashedHolderDoesNotBlock) {
  std::filesystem::create_directories(dir_);
  std::ofstream(DataDirLock::Path(dir_.string())) << "999999\n";
  auto lock = DataDirLock::Acquire(dir_.string());
  ASSERT_OK(lock);
  EXPECT_EQ(DataDirLock::HolderPid(dir_.string()), ::getpid());
}

TEST_F(DataDirLockTest, MissingDirectoryWithoutCreateFails) {
  auto lock = DataDirLock::Acquire(dir_.string());
  EXPECT_THAT(lock, Not(IsOk()));
  EXPECT_FALSE(std::filesystem::exists(dir_));
}

TEST_F(DataDirLockTest, SymlinkedLockFileIsNotFollowed) {
  std::filesystem::create_directories(dir_);
  const auto target = dir_ / "victim";
  std::ofstream(target) << "keep me";
  std::filesystem::create_symlink(target, DataDirLock::Path(dir_.string()));
  auto lock = DataDirLock::Acquire(dir_.string());
  EXPECT_THAT(lock, Not(IsOk()));
  std::ifstream in(target);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "keep me");
}

}  // namespace
}  // namespace coffre::server
