#include "coffre/common/secret_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre {
namespace {

using test_support::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class SecretFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  test_support::TempDir tmp_{"secret-file"};
  const std::string dir_ = tmp_.str();
};

TEST_F(SecretFileTest, ReturnsTheExactContentOfAPrivateFile) {
  const std::string secret("wJalrXUtnFEMI/K7MDENG\n\0bytes", 28);
  for (mode_t mode : {0600, 0400}) {
    auto r = ReadPrivateFile(Write("upstream.secret", secret, mode), "upstream secret file", 64);
    ASSERT_OK(r);
    EXPECT_EQ(std::string(r->Reveal().begin(), r->Reveal().end()), secret);
    std::filesystem::remove(dir_ + "/upstream.secret");
  }
}

TEST_F(SecretFileTest, RefusesFilesOthersCanReachWithoutShowingTheSecret) {
  for (mode_t mode : {0644, 0640, 0604, 0700, 0660}) {
    const std::string path = Write("loose.secret", "wJalrXUtnFEMI", mode);
    EXPECT_THAT(ReadPrivateFile(path, "upstream secret file", 64),
                StatusIs(StatusCode::kPermissionDenied,
                         AllOf(HasSubstr("upstream secret file " + path), Not(HasSubstr("wJalrXUtnFEMI")))))
        << std::oct << mode;
  }
}

TEST_F(SecretFileTest, RefusesWhatIsNotARegularFileWithoutBlocking) {
  EXPECT_THAT(ReadPrivateFile(dir_, "secret", 64), StatusIs(StatusCode::kPermissionDenied));
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(ReadPrivateFile(fifo, "secret", 64), StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(SecretFileTest, BoundsTheSizeAndReportsAMissingFile) {
  EXPECT_OK(ReadPrivateFile(Write("fits", std::string(64, 'k'), 0600), "secret", 64));
  EXPECT_THAT(ReadPrivateFile(Write("big", std::string(65, 'k'), 0600), "secret", 64),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ReadPrivateFile(dir_ + "/absent", "secret", 64), StatusIs(StatusCode::kNotFound));
}

}  // namespace
}  // namespace coffre
