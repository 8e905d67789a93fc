#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "coffre/server/config.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::server {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

// A fresh directory holding data/ (data_dir) and etc/ (outside it).
class RootKeyPlacementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(root_ / "data" / "keys");
    std::filesystem::create_directories(root_ / "etc");
  }

  Config Production(const std::string& key_file) const {
    Config c;
    c.data_dir = (root_ / "data").string();
    c.root_key_file = key_file;
    return c;
  }

  test_support::TempDir temp_{"placement"};
  const std::filesystem::path root_ = temp_.path();
};

TEST_F(RootKeyPlacementTest, DefaultPlaceIsRefusedWithWhereToPutIt) {
  const Status st = CheckRootKeyPlacement(Production(""));
  ASSERT_THAT(st, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_NE(st.message().find("root_key_file (default " + (root_ / "data" / "root.key").string() + ")"),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("/etc/coffre/root.key"), std::string::npos);
  EXPECT_NE(st.message().find("LoadCredential=root.key:/etc/coffre/root.key"), std::string::npos);
}

TEST_F(RootKeyPlacementTest, EverySpellingOfAPathInsideIsRefused) {
  const std::string inside = (root_ / "data" / "keys" / "root.key").string();
  std::filesystem::create_symlink(inside, root_ / "etc" / "link.key");
  for (const std::string& path :
       {inside, (root_ / "etc" / "link.key").string(), (root_ / "etc" / ".." / "data" / "keys" / "root.key").string(),
        (root_ / "data" / "." / "root.key").string()}) {
    EXPECT_THAT(CheckRootKeyPlacement(Production(path)), Not(IsOk())) << path;
  }
  // data_dir itself through a symlink, or with a trailing slash
  std::filesystem::create_directory_symlink(root_ / "data", root_ / "data-link");
  Config c = Production(inside);
  c.data_dir = (root_ / "data-link").string();
  EXPECT_THAT(CheckRootKeyPlacement(c), Not(IsOk()));
  c.data_dir = (root_ / "data").string() + "/";
  EXPECT_THAT(CheckRootKeyPlacement(c), Not(IsOk()));
}

TEST_F(RootKeyPlacementTest, OutsideIsAccepted) {
  EXPECT_OK(CheckRootKeyPlacement(Production((root_ / "etc" / "root.key").string())));
  // a sibling whose name starts like data_dir is outside it
  EXPECT_OK(CheckRootKeyPlacement(Production((root_ / "data-keys" / "root.key").string())));
  // a link inside data_dir to a key kept elsewhere: copies of the directory hold only the link
  std::filesystem::create_symlink(root_ / "etc" / "root.key", root_ / "data" / "root.key");
  EXPECT_OK(CheckRootKeyPlacement(Production((root_ / "data" / "root.key").string())));
}

TEST_F(RootKeyPlacementTest, DevelopmentAndOtherSourcesAreNotConcerned) {
  Config dev = Production("");
  dev.development = true;
  EXPECT_OK(CheckRootKeyPlacement(dev));
  EXPECT_OK(CheckRootKeyPlacement(DevelopmentConfig()));
  EXPECT_TRUE(DevelopmentConfig().development);
  for (const char* source : {"credential", "passphrase"}) {
    Config c = Production("");
    c.root_key_source = source;
    EXPECT_OK(CheckRootKeyPlacement(c)) << source;
  }
}

TEST(ConfigDevelopmentTest, OffByDefaultAndParsed) {
  auto c = ParseConfig("{}");
  ASSERT_OK(c);
  EXPECT_FALSE(c->development);
  EXPECT_EQ(c->max_bodies_per_tenant, 64u);
  c = ParseConfig(R"({"development": true, "max_bodies_per_tenant": 0})");
  ASSERT_OK(c);
  EXPECT_TRUE(c->development);
  EXPECT_EQ(c->max_bodies_per_tenant, 0u);
  EXPECT_THAT(ParseConfig(R"({"development": "yes"})"), Not(IsOk()));
  EXPECT_THAT(ParseConfig(R"({"max_bodies_per_tenant": -1})"), Not(IsOk()));
}

}  // namespace
}  // namespace coffre::server
