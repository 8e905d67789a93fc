// The client's TLS: the upstream's certificate must chain to the configured CA and name the host
// connected to; a handshake that fails for either reason is not retried.

#include "coffre/http/tls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "coffre/common/bytes.h"
#include "coffre/upstream/s3_client.h"
#include "support/loopback_server.h"

namespace coffre::upstream {
namespace {

class AnswerOk final : public http::Handler {
 public:
  boost::asio::awaitable<void> Handle(http::Exchange& exchange) override {
    http::bhttp::response<http::bhttp::string_body> response{http::bhttp::status::ok, 11};
    co_await exchange.Send(std::move(response));
  }
};

class UpstreamTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("coffre-upstream-tls-" + std::to_string(::getpid())));
    std::filesystem::create_directories(*dir_);
    // "good" names the loopback address the tests connect to; "elsewhere" names another host.
    for (const auto& [name, san] : {std::pair{"good", "IP:127.0.0.1"}, std::pair{"elsewhere", "DNS:elsewhere.test"}}) {
      const std::string cmd =
          "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=" +
          std::string(name) + " -addext subjectAltName=" + san + " -keyout " + Path(std::string(name) + ".key") +
          " -out " + Path(std::string(name) + ".pem") + " 2>/dev/null";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::string Path(const std::string& name) { return (*dir_ / name).string(); }

  void Serve(const std::string& cert) {
    auto tls = http::LoadTlsContext(Path(cert + ".pem"), Path(cert + ".key"));
    ASSERT_TRUE(tls.ok()) << tls.status().message();
    http::ServerOptions options;
    options.tls = *tls;
    ASSERT_TRUE(server_.Start(handler_, options));
  }

  std::unique_ptr<S3Client> Client(const std::string& ca) {
    S3ClientOptions options;
    options.endpoint = "https://127.0.0.1:" + std::to_string(server_.port());
    options.bucket = "b";
    options.access_key_id = "AKID";
    options.secret_access_key = SecretBytes(AsBytes("secret"));
    options.ca_file = Path(ca + ".pem");
    options.retry.base_delay = std::chrono::milliseconds(1);
    auto client = S3Client::Create(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status().message();
    return client.ok() ? std::move(client).value() : nullptr;
  }

  static std::filesystem::path* dir_;
  AnswerOk handler_;
  test_support::LoopbackServer server_;
};

std::filesystem::path* UpstreamTlsTest::dir_ = nullptr;

TEST_F(UpstreamTlsTest, TrustedCertificateForTheHostIsAccepted) {
  Serve("good");
  auto client = Client("good");
  const Status status = client->HeadBucket();
  EXPECT_TRUE(status.ok()) << status.message();
  EXPECT_TRUE(client->HeadBucket().ok());
  EXPECT_EQ(client->counters().connections_opened.load(), 1u) << "the TLS connection is kept alive";
}

TEST_F(UpstreamTlsTest, BodiesMayBeStreamedOverTls) {
  Serve("good");
  auto client = Client("good");
  EXPECT_TRUE(client->CanStream());
  auto stream = client->BeginPutObject("k", 4);
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  ASSERT_TRUE(stream->Write(AsBytes("body")).ok());
  const Result<std::string> etag = stream->Finish();
  EXPECT_TRUE(etag.ok()) << etag.status().message();
}

TEST_F(UpstreamTlsTest, UntrustedCertificateIsRefusedWithoutRetry) {
  Serve("good");
  auto client = Client("elsewhere");
  const Status status = client->HeadBucket();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.message();
  EXPECT_NE(status.message().find("TLS handshake failed"), std::string::npos) << status.message();
  EXPECT_EQ(client->counters().attempts.load(), 1u);
}

TEST_F(UpstreamTlsTest, CertificateForAnotherHostIsRefused) {
  Serve("elsewhere");
  auto client = Client("elsewhere");
  const Status status = client->HeadBucket();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.message();
}

TEST(UpstreamTls, UnreadableCaFileIsInvalidArgument) {
  S3ClientOptions options;
  options.endpoint = "https://127.0.0.1:1";
  options.bucket = "b";
  options.ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(S3Client::Create(std::move(options)).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coffre::upstream
