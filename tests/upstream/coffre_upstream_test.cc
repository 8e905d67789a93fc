// The client against a real upstream: the `coffre` daemon itself, started on 127.0.0.1 in a
// temporary data directory (as tests/integration/harness.py starts it). CMake passes the binary in
// COFFRE_BINARY; without it the test is skipped.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "coffre/common/bytes.h"
#include "coffre/upstream/s3_client.h"

extern char** environ;

namespace coffre::upstream {
namespace {

// The value of "name": "value" in the daemon's dev-credentials.json (plain strings only).
std::string JsonString(const std::string& json, const std::string& name) {
  const size_t at = json.find("\"" + name + "\"");
  const size_t open = at == std::string::npos ? at : json.find('"', json.find(':', at) + 1);
  const size_t close = open == std::string::npos ? open : json.find('"', open + 1);
  return close == std::string::npos ? std::string() : json.substr(open + 1, close - open - 1);
}

class CoffreDaemon {
 public:
  ~CoffreDaemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (out_ >= 0) ::close(out_);
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  ::testing::AssertionResult Start(const std::string& binary) {
    char tmpl[] = "/tmp/coffre-upstream-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return ::testing::AssertionFailure() << "mkdtemp";
    dir_ = tmpl;
    const std::string data_dir = dir_ + "/data";
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) return ::testing::AssertionFailure() << "pipe";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (dir_ + "/stderr").c_str(), O_WRONLY | O_CREAT, 0600);
    std::string args[] = {binary, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"};
    char* argv[] = {args[0].data(), args[1].data(), args[2].data(), args[3].data(),
                    args[4].data(), args[5].data(), nullptr};
    const int spawned = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    out_ = pipe_fds[0];
    if (spawned != 0) return ::testing::AssertionFailure() << "cannot start " << binary;
    return WaitListening(data_dir);
  }

  const std::string& endpoint() const { return endpoint_; }
  const std::string& access_key_id() const { return access_key_id_; }
  const std::string& secret() const { return secret_; }

 private:
  // Reads the daemon's stdout until "listening on 127.0.0.1:PORT", then its dev credentials.
  ::testing::AssertionResult WaitListening(const std::string& data_dir) {
    std::string output;
    char buf[4096];
    while (output.find("listening on ") == std::string::npos ||
           output.find('\n', output.find("listening on ")) == std::string::npos) {
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) return ::testing::AssertionFailure() << "coffre serve ended before listening: " << output;
      output.append(buf, static_cast<size_t>(n));
    }
    const size_t at = output.find("listening on ") + 13;
    endpoint_ = "http://" + output.substr(at, output.find_first_of(" \n", at) - at);
    for (int i = 0; i < 200 && access_key_id_.empty(); ++i) {
      std::ifstream file(data_dir + "/dev-credentials.json");
      std::stringstream text;
      text << file.rdbuf();
      access_key_id_ = JsonString(text.str(), "access_key_id");
      secret_ = JsonString(text.str(), "secret_access_key");
      if (access_key_id_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    if (access_key_id_.empty()) return ::testing::AssertionFailure() << "no dev-credentials.json";
    return ::testing::AssertionSuccess();
  }

  std::string dir_;
  pid_t pid_ = -1;
  int out_ = -1;
  std::string endpoint_;
  std::string access_key_id_;
  std::string secret_;
};

TEST(CoffreAsUpstream, EveryOperationAgainstTheRealDaemon) {
  const char* binary = std::getenv("COFFRE_BINARY");
  if (binary == nullptr || *binary == '\0') GTEST_SKIP() << "COFFRE_BINARY is not set";
  CoffreDaemon daemon;
  ASSERT_TRUE(daemon.Start(binary));
  S3ClientOptions options;
  options.endpoint = daemon.endpoint();
  options.bucket = "upstream-blobs";
  options.access_key_id = daemon.access_key_id();
  options.secret_access_key = SecretBytes(AsBytes(daemon.secret()));
  auto created = S3Client::Create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status().message();
  S3Client& client = **created;

  ASSERT_TRUE(client.CreateBucket().ok());
  ASSERT_TRUE(client.HeadBucket().ok());
  std::string data(300'000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 13 + 1);
  auto etag = client.PutObject("blobs/ab/cd 1", AsBytes(data));
  ASSERT_TRUE(etag.ok()) << etag.status().message();
  auto head = client.HeadObject("blobs/ab/cd 1");
  ASSERT_TRUE(head.ok()) << head.status().message();
  EXPECT_EQ(head->size, data.size());
  EXPECT_EQ(head->etag, *etag);

  std::string got;
  auto info = client.GetObject(
      "blobs/ab/cd 1",
      [&](ByteView piece) {
        got.append(AsChars(piece));
        return Status::Ok();
      },
      ByteRange{.first = 1000, .last = 200'999});
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->size, data.size());
  EXPECT_TRUE(got == data.substr(1000, 200'000));

  size_t offset = 0;
  auto streamed = client.PutObject("blobs/streamed", data.size(), [&](std::span<uint8_t> out) -> Result<size_t> {
    const size_t n = std::min(out.size(), data.size() - offset);
    std::copy_n(data.data() + offset, n, out.data());
    offset += n;
    return n;
  });
  ASSERT_TRUE(streamed.ok()) << streamed.status().message();

  auto upload = client.CreateMultipartUpload("blobs/multi");
  ASSERT_TRUE(upload.ok()) << upload.status().message();
  const std::string part1(5 * 1024 * 1024, 'p');
  auto e1 = client.UploadPart("blobs/multi", *upload, 1, AsBytes(part1));
  auto e2 = client.UploadPart("blobs/multi", *upload, 2, AsBytes("tail"));
  ASSERT_TRUE(e1.ok() && e2.ok()) << e1.status().message() << e2.status().message();
  auto done = client.CompleteMultipartUpload("blobs/multi", *upload, {{1, *e1}, {2, *e2}});
  ASSERT_TRUE(done.ok()) << done.status().message();
  EXPECT_EQ(client.HeadObject("blobs/multi")->size, part1.size() + 4);
  auto aborted = client.CreateMultipartUpload("blobs/abandoned");
  ASSERT_TRUE(aborted.ok());
  EXPECT_TRUE(client.AbortMultipartUpload("blobs/abandoned", *aborted).ok());

  auto page = client.ListObjectsV2({.prefix = "blobs/", .max_keys = 2});
  ASSERT_TRUE(page.ok()) << page.status().message();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "blobs/ab/cd 1");
  EXPECT_EQ(page->objects[0].size, data.size());
  EXPECT_GT(page->objects[0].last_modified, 0);
  ASSERT_FALSE(page->next_continuation_token.empty());
  auto rest = client.ListObjectsV2({.prefix = "blobs/", .continuation_token = page->next_continuation_token});
  ASSERT_TRUE(rest.ok()) << rest.status().message();
  ASSERT_EQ(rest->objects.size(), 1u);
  EXPECT_EQ(rest->objects[0].key, "blobs/streamed");

  EXPECT_TRUE(client.DeleteObject("blobs/ab/cd 1").ok());
  const Status gone = client.HeadObject("blobs/ab/cd 1").status();
  EXPECT_EQ(gone.code(), StatusCode::kNotFound) << gone.message();
  const Status missing = client.GetObject("nope", [](ByteView) { return Status::Ok(); }).status();
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("NoSuchKey"), std::string::npos) << missing.message();
  EXPECT_EQ(client.counters().retries.load(), 0u);
}

}  // namespace
}  // namespace coffre::upstream
