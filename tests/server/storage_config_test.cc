#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "coffre/server/config.h"
#include "support/status_matchers.h"

namespace coffre::server {
namespace {

std::string WithStorage(const std::string& storage) { return R"({"storage": )" + storage + "}"; }

std::string S3(const std::string& overrides = "") {
  return R"({"backend": "s3", "endpoint": "https://s3.gra.io.cloud.ovh.net", "region": "gra", "bucket": "coffre-blobs",
             "access_key_id": "AKIDEXAMPLE", "secret_access_key_file": "/run/credentials/coffre.service/upstream.secret")" +
         overrides + "}";
}

// The message of a refused storage config; "" when it was accepted.
std::string Refusal(const std::string& storage) {
  auto parsed = ParseConfig(WithStorage(storage));
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << parsed.status().ToString();
  return parsed.status().message();
}

TEST(StorageConfigTest, LocalIsTheDefault) {
  auto c = ParseConfig("{}");
  ASSERT_OK(c);
  EXPECT_EQ(c->storage.backend, "local");
  auto local = ParseConfig(WithStorage(R"({"backend": "local"})"));
  ASSERT_OK(local);
  EXPECT_EQ(local->storage.backend, "local");
}

TEST(StorageConfigTest, AcceptsACompleteS3Backend) {
  auto c = ParseConfig(
      WithStorage(S3(R"(, "prefix": "coffre/", "addressing_style": "virtual", "tls_ca_file": "/etc/ssl/ca.pem")")));
  ASSERT_OK(c);
  const StorageConfig& s = c->storage;
  EXPECT_EQ(s.backend, "s3");
  EXPECT_EQ(s.endpoint, "https://s3.gra.io.cloud.ovh.net");
  EXPECT_EQ(s.region, "gra");
  EXPECT_EQ(s.bucket, "coffre-blobs");
  EXPECT_EQ(s.prefix, "coffre/");
  EXPECT_EQ(s.addressing_style, "virtual");
  EXPECT_EQ(s.access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(s.secret_access_key_file, "/run/credentials/coffre.service/upstream.secret");
  EXPECT_EQ(s.tls_ca_file, "/etc/ssl/ca.pem");
  EXPECT_FALSE(s.allow_plaintext);
}

TEST(StorageConfigTest, EachRequiredFieldIsNamedWhenMissing) {
  for (const char* field : {"endpoint", "region", "bucket", "access_key_id", "secret_access_key_file"}) {
    SCOPED_TRACE(field);
    const std::string config = S3(std::string(R"(, ")") + field + R"(": "")");
    EXPECT_NE(Refusal(config).find(std::string("'storage.") + field + "' is required"), std::string::npos)
        << Refusal(config);
  }
}

TEST(StorageConfigTest, TheSecretIsNeverTakenFromTheConfig) {
  EXPECT_NE(Refusal(S3(R"(, "secret_access_key": "wJalrXUtnFEMI")")).find("secret_access_key_file"), std::string::npos);
  // And the refusal does not echo it.
  EXPECT_EQ(Refusal(S3(R"(, "secret_access_key": "wJalrXUtnFEMI")")).find("wJalrXUtnFEMI"), std::string::npos);
  EXPECT_NE(Refusal(S3(R"(, "secret_access_key_file": "upstream.secret")")).find("absolute path"), std::string::npos);
}

TEST(StorageConfigTest, PlainHttpOnlyToLoopbackUnlessAllowed) {
  EXPECT_EQ(Refusal(S3(R"(, "endpoint": "http://127.0.0.1:7480")")), "");
  EXPECT_EQ(Refusal(S3(R"(, "endpoint": "http://localhost:7480")")), "");
  EXPECT_EQ(Refusal(S3(R"(, "endpoint": "http://[::1]:7480")")), "");
  EXPECT_NE(Refusal(S3(R"(, "endpoint": "http://ceph.bank.internal:7480")")).find("allow_plaintext"),
            std::string::npos);
  EXPECT_EQ(Refusal(S3(R"(, "endpoint": "http://ceph.bank.internal:7480", "allow_plaintext": true)")), "");
  EXPECT_EQ(Refusal(S3(R"(, "endpoint": "https://ceph.bank.internal:7480")")), "");
}

TEST(StorageConfigTest, MalformedEndpointsAreRefused) {
  for (const char* endpoint :
       {"s3.example.com", "ftp://s3.example.com", "https://", "https://host/path", "https://host?x=1",
        "https://user@host", "https://host:99999", "https://host:", "https://host:abc", "https://::1"}) {
    SCOPED_TRACE(endpoint);
    EXPECT_NE(Refusal(S3(std::string(R"(, "endpoint": ")") + endpoint + "\"")).find("upstream endpoint"),
              std::string::npos);
  }
  EXPECT_EQ(Refusal(S3(R"(, "endpoint": "https://host:8443/")")), "");  // a trailing slash is harmless
}

TEST(StorageConfigTest, BucketNamesFollowS3Rules) {
  for (const char* bucket : {"ab", "Upper", "under_score", "-dash", "dash-", "a..b", "192.168.1.1",
                             "a234567890123456789012345678901234567890123456789012345678901234"}) {
    SCOPED_TRACE(bucket);
    EXPECT_NE(Refusal(S3(std::string(R"(, "bucket": ")") + bucket + "\"")).find("storage.bucket"), std::string::npos);
  }
  EXPECT_EQ(Refusal(S3(R"(, "bucket": "my.bucket-01")")), "");
  // Dotted buckets and virtual-hosted addressing over TLS do not match a wildcard certificate.
  EXPECT_NE(Refusal(S3(R"(, "bucket": "my.bucket", "addressing_style": "virtual")")).find("path"), std::string::npos);
}

TEST(StorageConfigTest, PrefixAndAddressingStyle) {
  EXPECT_EQ(Refusal(S3(R"(, "prefix": "gateways/paris/")")), "");
  EXPECT_NE(Refusal(S3(R"(, "prefix": "no-slash")")).find("storage.prefix"), std::string::npos);
  EXPECT_NE(Refusal(S3(R"(, "prefix": "/leading/")")).find("storage.prefix"), std::string::npos);
  EXPECT_NE(Refusal(S3(R"(, "prefix": "tab\t/")")).find("storage.prefix"), std::string::npos);
  EXPECT_NE(Refusal(S3(R"(, "addressing_style": "dns")")).find("addressing_style"), std::string::npos);
}

TEST(StorageConfigTest, TimeoutsAreBoundedAndReachTheClient) {
  auto defaults = ParseConfig(WithStorage(S3()));
  ASSERT_OK(defaults);
  EXPECT_EQ(UpstreamClientOptions(defaults->storage).request_timeout, std::chrono::seconds(30));
  EXPECT_EQ(UpstreamClientOptions(defaults->storage).connect_timeout, std::chrono::seconds(5));
  auto c = ParseConfig(WithStorage(S3(R"(, "request_timeout_seconds": 120, "connect_timeout_seconds": 2)")));
  ASSERT_OK(c);
  const upstream::S3ClientOptions options = UpstreamClientOptions(c->storage);
  EXPECT_EQ(options.request_timeout, std::chrono::seconds(120));
  EXPECT_EQ(options.connect_timeout, std::chrono::seconds(2));
  // Retries get room for at least two silences of that length.
  EXPECT_GE(options.retry.total_deadline, std::chrono::seconds(240));
  for (const char* bad : {"0", "601", "1.5", "\"30\"", "-1"}) {
    EXPECT_NE(Refusal(S3(std::string(R"(, "request_timeout_seconds": )") + bad)).find("1 to 600"), std::string::npos)
        << bad;
  }
  EXPECT_NE(Refusal(S3(R"(, "connect_timeout_seconds": 121)")).find("1 to 120"), std::string::npos);
  EXPECT_NE(Refusal(R"({"backend": "local", "request_timeout_seconds": 10})").find("only to"), std::string::npos);
}

TEST(StorageConfigTest, GatewayModeHasWorkersForItsUpstreamWaits) {
  auto local = ParseConfig("{}");
  ASSERT_OK(local);
  auto gateway = ParseConfig(WithStorage(S3()));
  ASSERT_OK(gateway);
  EXPECT_GE(WorkerThreads(*gateway), kGatewayWorkerThreads);
  EXPECT_LE(WorkerThreads(*local), WorkerThreads(*gateway));
  auto chosen = ParseConfig(R"({"worker_threads": 6, "storage": )" + S3() + "}");
  ASSERT_OK(chosen);
  EXPECT_EQ(WorkerThreads(*chosen), 6u);  // what the operator sets wins
}

TEST(StorageConfigTest, UnknownBackendsFieldsAndTypesAreNamed) {
  EXPECT_NE(Refusal(R"({"backend": "gcs"})").find("storage.backend"), std::string::npos);
  EXPECT_NE(Refusal(R"("local")").find("'storage' must be an object"), std::string::npos);
  EXPECT_NE(Refusal(S3(R"(, "endpiont": "x")")).find("unknown field 'storage.endpiont'"), std::string::npos);
  EXPECT_NE(Refusal(S3(R"(, "allow_plaintext": "yes")")).find("storage.allow_plaintext"), std::string::npos);
  EXPECT_NE(Refusal(S3(R"(, "region": 3)")).find("'storage.region' must be a string"), std::string::npos);
  // Upstream settings beside the local backend are a mistake worth naming, not something to ignore.
  EXPECT_NE(Refusal(R"({"backend": "local", "bucket": "coffre-blobs"})").find("only to"), std::string::npos);
}

}  // namespace
}  // namespace coffre::server
