// TLS on the http::Server: context loading errors, the handshake, protocol versions, and a
// context replaced for new connections while an old one keeps working.

#include "coffre/http/tls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "coffre/http/server.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::http {
namespace {

using test_support::IsOk;
using ::testing::Not;

namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

class OkHandler : public Handler {
 public:
  asio::awaitable<void> Handle(Exchange& exchange) override {
    bhttp::response<bhttp::string_body> response{bhttp::status::ok, 11};
    response.body() = "over tls";
    co_await exchange.Send(std::move(response));
  }
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test_support::TempDir("tls-unit");
    for (const char* name : {"a", "b"}) {
      const std::string cmd =
          "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=" +
          std::string(name) + " -keyout " + Path(std::string(name) + ".key") + " -out " +
          Path(std::string(name) + ".pem") + " 2>/dev/null";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Path(const std::string& name) { return (dir_->path() / name).string(); }

  void Start(std::shared_ptr<ssl::context> tls) {
    ServerOptions options;
    options.listen_port = 0;
    options.tls = std::move(tls);
    server_ = std::make_unique<Server>(io_, handler_, options);
    auto endpoint = server_->Start();
    ASSERT_OK(endpoint);
    port_ = endpoint->port();
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    server_.reset();
    io_.stop();
    if (thread_.joinable()) {
      thread_.join();
    }
  }

  // A blocking TLS client limited to one protocol version; returns the peer's subject CN and
  // the response body, or the handshake error.
  struct ClientResult {
    boost::system::error_code handshake;
    std::string subject;
    std::string body;
  };
  ClientResult Fetch(int version) {
    ClientResult result;
    boost::asio::io_context client_io;
    ssl::context ctx(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), version);
    SSL_CTX_set_max_proto_version(ctx.native_handle(), version);
    SSL_CTX_set_security_level(ctx.native_handle(), 0);  // let the client offer old versions
    ctx.set_verify_mode(ssl::verify_none);
    ssl::stream<tcp::socket> stream(client_io, ctx);
    stream.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    stream.handshake(ssl::stream_base::client, result.handshake);
    if (result.handshake) {
      return result;
    }
    X509* cert = SSL_get1_peer_certificate(stream.native_handle());
    if (cert != nullptr) {
      char cn[64] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
      result.subject = cn;
      X509_free(cert);
    }
    bhttp::request<bhttp::empty_body> request{bhttp::verb::get, "/", 11};
    request.set(bhttp::field::host, "localhost");
    bhttp::write(stream, request);
    boost::beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> response;
    bhttp::read(stream, buffer, response);
    result.body = response.body();
    return result;
  }

  static test_support::TempDir* dir_;
  OkHandler handler_;
  asio::io_context io_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

test_support::TempDir* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, LoadsAMatchingPair) { EXPECT_OK(LoadTlsContext(Path("a.pem"), Path("a.key"))); }

TEST_F(TlsTest, MissingCertificateNamesTheField) {
  auto r = LoadTlsContext(Path("absent.pem"), Path("a.key"));
  ASSERT_THAT(r, Not(IsOk()));
  EXPECT_NE(r.status().message().find("tls_cert_file"), std::string::npos) << r.status().message();
}

TEST_F(TlsTest, GarbageCertificateIsRefused) {
  std::ofstream(Path("garbage.pem")) << "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  EXPECT_THAT(LoadTlsContext(Path("garbage.pem"), Path("a.key")), Not(IsOk()));
}

TEST_F(TlsTest, KeyOfAnotherCertificateIsRefusedWithoutQuotingIt) {
  auto r = LoadTlsContext(Path("a.pem"), Path("b.key"));
  ASSERT_THAT(r, Not(IsOk()));
  EXPECT_NE(r.status().message().find("does not match the certificate"), std::string::npos) << r.status().message();
  EXPECT_EQ(r.status().message().find("PRIVATE KEY-----"), std::string::npos);
}

TEST_F(TlsTest, Tls12And13ServedOlderVersionsRefused) {
  auto tls = LoadTlsContext(Path("a.pem"), Path("a.key"));
  ASSERT_OK(tls);
  Start(*tls);
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    auto r = Fetch(version);
    ASSERT_FALSE(r.handshake) << version << ": " << r.handshake.message();
    EXPECT_EQ(r.subject, "a");
    EXPECT_EQ(r.body, "over tls");
  }
  for (int version : {TLS1_VERSION, TLS1_1_VERSION}) {
    EXPECT_TRUE(Fetch(version).handshake) << version;
  }
}

TEST_F(TlsTest, ReplacedContextServesNewConnections) {
  auto a = LoadTlsContext(Path("a.pem"), Path("a.key"));
  auto b = LoadTlsContext(Path("b.pem"), Path("b.key"));
  ASSERT_OK(a);
  ASSERT_OK(b);
  Start(*a);
  EXPECT_EQ(Fetch(TLS1_3_VERSION).subject, "a");
  ServerOptions next;
  next.tls = *b;
  server_->UpdateLimits(next);
  EXPECT_EQ(Fetch(TLS1_3_VERSION).subject, "b");
}

}  // namespace
}  // namespace coffre::http
