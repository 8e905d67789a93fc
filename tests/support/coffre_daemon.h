#pragma once

// The `coffre` daemon itself as a real upstream S3 server for the tests of the upstream client
// and of the upstream blob store: started on 127.0.0.1 (a port the kernel picks) in a temporary
// data directory, as tests/integration/harness.py starts it, and stopped with SIGTERM when the
// CoffreDaemon goes away. CMake passes the binary in COFFRE_BINARY; a test without it skips.
//
//   const char* binary = test_support::CoffreBinary();
//   if (binary == nullptr) GTEST_SKIP() << "COFFRE_BINARY is not set";
//   test_support::CoffreDaemon daemon;
//   ASSERT_TRUE(daemon.Start(binary));

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
#include <sstream>
#include <string>
#include <thread>

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "coffre/upstream/options.h"

extern char** environ;

namespace coffre::test_support {

// The daemon binary from COFFRE_BINARY, or nullptr when it is not set.
inline const char* CoffreBinary() {
  const char* binary = std::getenv("COFFRE_BINARY");
  return binary == nullptr || *binary == '\0' ? nullptr : binary;
}

// The value of "name": "value" in the daemon's dev-credentials.json (plain strings only).
inline std::string JsonString(const std::string& json, const std::string& name) {
  const size_t at = json.find("\"" + name + "\"");
  const size_t open = at == std::string::npos ? at : json.find('"', json.find(':', at) + 1);
  const size_t close = open == std::string::npos ? open : json.find('"', open + 1);
  return close == std::string::npos ? std::string() : json.substr(open + 1, close - open - 1);
}

class CoffreDaemon {
 public:
  CoffreDaemon() = default;
  CoffreDaemon(const CoffreDaemon&) = delete;
  CoffreDaemon& operator=(const CoffreDaemon&) = delete;
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

  // Options for an S3Client of `bucket` on this daemon, with its dev credentials.
  upstream::S3ClientOptions ClientOptions(const std::string& bucket) const {
    upstream::S3ClientOptions options;
    options.endpoint = endpoint_;
    options.bucket = bucket;
    options.access_key_id = access_key_id_;
    options.secret_access_key = SecretBytes(AsBytes(secret_));
    return options;
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

}  // namespace coffre::test_support
