// The client's TLS: the upstream's certificate must chain to the configured CA and name the host
// connected to; a handshake that fails for either reason is not retried.

#include "coffre/http/tls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

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

// Keeps the body of the last PUT and answers a GET with it, whole with a Content-Length, or, for a
// key ending in "chunked", in chunks of the transfer encoding, so both ways a body's end is known
// are read over TLS.
class KeepAndServe final : public http::Handler {
 public:
  boost::asio::awaitable<void> Handle(http::Exchange& exchange) override {
    if (exchange.request().method() == http::bhttp::verb::put) {
      kept_.clear();
      std::vector<uint8_t> piece(100 * 1024);
      for (;;) {
        const auto [got, error] = co_await exchange.ReadBody(piece);
        if (got == 0) break;
        kept_.append(reinterpret_cast<const char*>(piece.data()), got);
      }
      http::bhttp::response<http::bhttp::string_body> response{http::bhttp::status::ok, 11};
      response.set(http::bhttp::field::etag, "\"" + std::to_string(kept_.size()) + "\"");
      co_await exchange.Send(std::move(response));
      co_return;
    }
    if (!exchange.request().target().ends_with("chunked")) {
      http::bhttp::response<http::bhttp::string_body> response{http::bhttp::status::ok, 11};
      response.body() = kept_;
      co_await exchange.Send(std::move(response));
      co_return;
    }
    // A 206, whose Content-Range says the object's size where the length is not given.
    http::ResponseHeader header;
    header.result(http::bhttp::status::partial_content);
    header.set(http::bhttp::field::content_range,
               "bytes 0-" + std::to_string(kept_.size() - 1) + "/" + std::to_string(kept_.size()));
    co_await exchange.SendHeader(std::move(header));
    for (size_t at = 0; at < kept_.size(); at += 70'001) {
      const size_t size = std::min<size_t>(70'001, kept_.size() - at);
      co_await exchange.SendBody(std::span(reinterpret_cast<const uint8_t*>(kept_.data()) + at, size));
    }
    co_await exchange.FinishBody();
  }

 private:
  std::string kept_;
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

  void Serve(const std::string& cert, http::Handler* handler = nullptr) {
    auto tls = http::LoadTlsContext(Path(cert + ".pem"), Path(cert + ".key"));
    ASSERT_TRUE(tls.ok()) << tls.status().message();
    http::ServerOptions options;
    options.tls = *tls;
    ASSERT_TRUE(server_.Start(handler != nullptr ? *handler : handler_, options));
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

// Many TLS records each way: a body streamed up in pieces, then read back whole and chunked, on
// the one kept-alive connection.
TEST_F(UpstreamTlsTest, LargeBodiesGoBothWaysOverTls) {
  KeepAndServe keeper;
  Serve("good", &keeper);
  auto client = Client("good");
  std::string body(3 * 1024 * 1024 + 4321, '\0');
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>((i * 131) ^ (i >> 11));
  }
  auto stream = client->BeginPutObject("k", body.size());
  ASSERT_TRUE(stream.ok()) << stream.status().message();
  for (size_t at = 0; at < body.size(); at += 300'007) {
    const size_t size = std::min<size_t>(300'007, body.size() - at);
    ASSERT_TRUE(stream->Write(AsBytes(std::string_view(body).substr(at, size))).ok());
  }
  const Result<std::string> etag = stream->Finish();
  ASSERT_TRUE(etag.ok()) << etag.status().message();
  EXPECT_EQ(*etag, "\"" + std::to_string(body.size()) + "\"");
  for (const std::string key : {"whole", "chunked"}) {
    std::string back;
    const auto info = client->GetObject(
        key,
        [&back](ByteView piece) {
          back.append(AsChars(piece));
          return Status::Ok();
        },
        ByteRange{.first = 0});
    ASSERT_TRUE(info.ok()) << key << ": " << info.status().message();
    EXPECT_EQ(info->size, body.size());
    EXPECT_TRUE(back == body) << key << ": " << back.size() << " bytes back";
  }
  EXPECT_EQ(client->counters().connections_opened.load(), 1u);
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
