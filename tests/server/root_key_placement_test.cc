#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "coffre/server/config.h"

namespace coffre::server {
namespace {

// A fresh directory holding data/ (data_dir) and etc/ (outside it).
class RootKeyPlacementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "coffre-placement-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    std::filesystem::create_directories(root_ / "data" / "keys");
    std::filesystem::create_directories(root_ / "etc");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  Config Production(const std::string& key_file) const {
    Config c;
    c.data_dir = (root_ / "data").string();
    c.root_key_file = key_file;
    return c;
  }

  std::filesystem::path root_;
};

TEST_F(RootKeyPlacementTest, DefaultPlaceIsRefusedWithWhereToPutIt) {
  const Status st = CheckRootKeyPlacement(Production(""));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
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
    EXPECT_FALSE(CheckRootKeyPlacement(Production(path)).ok()) << path;
  }
  // data_dir itself through a symlink, or with a trailing slash
  std::filesystem::create_directory_symlink(root_ / "data", root_ / "data-link");
  Config c = Production(inside);
  c.data_dir = (root_ / "data-link").string();
  EXPECT_FALSE(CheckRootKeyPlacement(c).ok());
  c.data_dir = (root_ / "data").string() + "/";
  EXPECT_FALSE(CheckRootKeyPlacement(c).ok());
}

TEST_F(RootKeyPlacementTest, OutsideIsAccepted) {
  EXPECT_TRUE(CheckRootKeyPlacement(Production((root_ / "etc" / "root.key").string())).ok());
  // a sibling whose name starts like data_dir is outside it
  EXPECT_TRUE(CheckRootKeyPlacement(Production((root_ / "data-keys" / "root.key").string())).ok());
  // a link inside data_dir to a key kept elsewhere: copies of the directory hold only the link
  std::filesystem::create_symlink(root_ / "etc" / "root.key", root_ / "data" / "root.key");
  EXPECT_TRUE(CheckRootKeyPlacement(Production((root_ / "data" / "root.key").string())).ok());
}

TEST_F(RootKeyPlacementTest, DevelopmentAndOtherSourcesAreNotConcerned) {
  Config dev = Production("");
  dev.development = true;
  EXPECT_TRUE(CheckRootKeyPlacement(dev).ok());
  EXPECT_TRUE(CheckRootKeyPlacement(DevelopmentConfig()).ok());
  EXPECT_TRUE(DevelopmentConfig().development);
  for (const char* source : {"credential", "passphrase"}) {
    Config c = Production("");
    c.root_key_source = source;
    EXPECT_TRUE(CheckRootKeyPlacement(c).ok()) << source;
  }
}

TEST(ConfigDevelopmentTest, OffByDefaultAndParsed) {
  auto c = ParseConfig("{}");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->development);
  EXPECT_EQ(c->max_bodies_per_tenant, 64u);
  c = ParseConfig(R"({"development": true, "max_bodies_per_tenant": 0})");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->development);
  EXPECT_EQ(c->max_bodies_per_tenant, 0u);
  EXPECT_FALSE(ParseConfig(R"({"development": "yes"})").ok());
  EXPECT_FALSE(ParseConfig(R"({"max_bodies_per_tenant": -1})").ok());
}

}  // namespace
}  // namespace coffre::server
