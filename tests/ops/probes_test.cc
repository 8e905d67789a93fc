#include "coffre/ops/probes.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace coffre::ops {
namespace {

class ProbesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("coffre-probes-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    ::chmod(dir_.c_str(), 0700);
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
};

TEST_F(ProbesTest, WritableDirectoryPassesAndLeavesNothingBehind) {
  ASSERT_TRUE(ProbeWritable(dir_.string()).ok());
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(ProbesTest, MissingDirectoryFailsWithItsName) {
  Status st = ProbeWritable((dir_ / "absent").string());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("absent"), std::string::npos);
}

TEST_F(ProbesTest, DirectoryThatRefusesNewFilesFails) {
  // /proc refuses file creation even to root, like a read-only mount would.
  EXPECT_FALSE(ProbeWritable("/proc").ok());
  if (::geteuid() != 0) {
    ::chmod(dir_.c_str(), 0500);
    EXPECT_FALSE(ProbeWritable(dir_.string()).ok());
  }
}

TEST_F(ProbesTest, FreeBytesOfAnExistingDirectory) {
  auto free = FreeBytes(dir_.string());
  ASSERT_TRUE(free.ok());
  EXPECT_GT(*free, 0u);
  EXPECT_FALSE(FreeBytes((dir_ / "absent").string()).ok());
}

}  // namespace
}  // namespace coffre::ops
