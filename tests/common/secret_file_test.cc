#include "coffre/common/secret_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace coffre {
namespace {

class SecretFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/coffre-secret-file-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  std::string dir_;
};

TEST_F(SecretFileTest, ReturnsTheExactContentOfAPrivateFile) {
  const std::string secret("wJalrXUtnFEMI/K7MDENG\n\0bytes", 28);
  for (mode_t mode : {0600, 0400}) {
    auto r = ReadPrivateFile(Write("upstream.secret", secret, mode), "upstream secret file", 64);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(std::string(r->Reveal().begin(), r->Reveal().end()), secret);
    std::filesystem::remove(dir_ + "/upstream.secret");
  }
}

TEST_F(SecretFileTest, RefusesFilesOthersCanReachWithoutShowingTheSecret) {
  for (mode_t mode : {0644, 0640, 0604, 0700, 0660}) {
    const std::string path = Write("loose.secret", "wJalrXUtnFEMI", mode);
    auto r = ReadPrivateFile(path, "upstream secret file", 64);
    ASSERT_FALSE(r.ok()) << std::oct << mode;
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
    EXPECT_NE(r.status().message().find("upstream secret file " + path), std::string::npos);
    EXPECT_EQ(r.status().message().find("wJalrXUtnFEMI"), std::string::npos);
  }
}

TEST_F(SecretFileTest, RefusesWhatIsNotARegularFileWithoutBlocking) {
  EXPECT_EQ(ReadPrivateFile(dir_, "secret", 64).status().code(), StatusCode::kPermissionDenied);
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(ReadPrivateFile(fifo, "secret", 64).status().code(), StatusCode::kPermissionDenied);
}

TEST_F(SecretFileTest, BoundsTheSizeAndReportsAMissingFile) {
  EXPECT_TRUE(ReadPrivateFile(Write("fits", std::string(64, 'k'), 0600), "secret", 64).ok());
  auto big = ReadPrivateFile(Write("big", std::string(65, 'k'), 0600), "secret", 64);
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadPrivateFile(dir_ + "/absent", "secret", 64).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace coffre
