#include "coffre/ops/probes.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::ops {
namespace {

using test_support::IsOk;
using ::testing::Not;

class ProbesTest : public ::testing::Test {
 protected:
  test_support::TempDir temp_{"probes"};
  const std::filesystem::path dir_ = temp_.path();
};

TEST_F(ProbesTest, WritableDirectoryPassesAndLeavesNothingBehind) {
  ASSERT_OK(ProbeWritable(dir_.string()));
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(ProbesTest, MissingDirectoryFailsWithItsName) {
  Status st = ProbeWritable((dir_ / "absent").string());
  ASSERT_THAT(st, Not(IsOk()));
  EXPECT_NE(st.message().find("absent"), std::string::npos);
}

TEST_F(ProbesTest, DirectoryThatRefusesNewFilesFails) {
  // /proc refuses file creation even to root, like a read-only mount would.
  EXPECT_THAT(ProbeWritable("/proc"), Not(IsOk()));
  if (::geteuid() != 0) {
    ::chmod(dir_.c_str(), 0500);
    EXPECT_THAT(ProbeWritable(dir_.string()), Not(IsOk()));
  }
}

TEST_F(ProbesTest, FreeBytesOfAnExistingDirectory) {
  auto free = FreeBytes(dir_.string());
  ASSERT_OK(free);
  EXPECT_GT(*free, 0u);
  EXPECT_THAT(FreeBytes((dir_ / "absent").string()), Not(IsOk()));
}

}  // namespace
}  // namespace coffre::ops
