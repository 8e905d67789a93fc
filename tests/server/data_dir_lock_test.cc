#include "server/data_dir_lock.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace coffre::server {
namespace {

class DataDirLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("coffre-lock-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(DataDirLockTest, CreatesThePrivateDirectoryAndRecordsThePid) {
  auto lock = DataDirLock::Acquire(dir_.string(), /*create_directory=*/true);
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(DataDirLock::HolderPid(dir_.string()), ::getpid());
}

TEST_F(DataDirLockTest, SecondHolderIsRefusedWithDirectoryAndPid) {
  auto first = DataDirLock::Acquire(dir_.string(), /*create_directory=*/true);
  ASSERT_TRUE(first.ok());
  // flock belongs to the open file description: a second open in this process conflicts just
  // as a second process would.
  auto second = DataDirLock::Acquire(dir_.string());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(dir_.string()), std::string::npos) << second.status().message();
  EXPECT_NE(second.status().message().find("pid " + std::to_string(::getpid())), std::string::npos)
      << second.status().message();
}

TEST_F(DataDirLockTest, ReleasedWhenTheHolderGoesAway) {
  {
    auto first = DataDirLock::Acquire(dir_.string(), /*create_directory=*/true);
    ASSERT_TRUE(first.ok());
  }
  auto again = DataDirLock::Acquire(dir_.string());
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

TEST_F(DataDirLockTest, StalePidFromACrashedHolderDoesNotBlock) {
  std::filesystem::create_directories(dir_);
  std::ofstream(DataDirLock::Path(dir_.string())) << "999999\n";
  auto lock = DataDirLock::Acquire(dir_.string());
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  EXPECT_EQ(DataDirLock::HolderPid(dir_.string()), ::getpid());
}

TEST_F(DataDirLockTest, MissingDirectoryWithoutCreateFails) {
  auto lock = DataDirLock::Acquire(dir_.string());
  EXPECT_FALSE(lock.ok());
  EXPECT_FALSE(std::filesystem::exists(dir_));
}

TEST_F(DataDirLockTest, SymlinkedLockFileIsNotFollowed) {
  std::filesystem::create_directories(dir_);
  const auto target = dir_ / "victim";
  std::ofstream(target) << "keep me";
  std::filesystem::create_symlink(target, DataDirLock::Path(dir_.string()));
  auto lock = DataDirLock::Acquire(dir_.string());
  EXPECT_FALSE(lock.ok());
  std::ifstream in(target);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "keep me");
}

}  // namespace
}  // namespace coffre::server
