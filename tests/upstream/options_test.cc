#include "coffre/upstream/options.h"

#include <gtest/gtest.h>

namespace coffre::upstream {
namespace {

S3ClientOptions With(std::string endpoint, AddressingStyle style = AddressingStyle::kPath) {
  S3ClientOptions options;
  options.endpoint = std::move(endpoint);
  options.bucket = "my-bucket";
  options.addressing = style;
  return options;
}

TEST(ResolveEndpoint, PathStyleKeepsTheHostAndPrefixesTheBucket) {
  auto e = ResolveEndpoint(With("https://s3.example.net"));
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_TRUE(e->tls);
  EXPECT_EQ(e->port, 443);
  EXPECT_EQ(e->connect_host, "s3.example.net");
  EXPECT_EQ(e->host_header, "s3.example.net");
  EXPECT_EQ(RequestTarget(*e, "a/b c", ""), "/my-bucket/a/b%20c");
  EXPECT_EQ(RequestTarget(*e, "", "list-type=2"), "/my-bucket?list-type=2");
}

TEST(ResolveEndpoint, VirtualHostedPutsTheBucketInTheHost) {
  auto e = ResolveEndpoint(With("https://s3.fr-par.example.com:8443/", AddressingStyle::kVirtualHosted));
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->port, 8443);
  EXPECT_EQ(e->connect_host, "my-bucket.s3.fr-par.example.com");
  EXPECT_EQ(e->host_header, "my-bucket.s3.fr-par.example.com:8443");
  EXPECT_EQ(RequestTarget(*e, "x/y~z", "partNumber=1&uploadId=u"), "/x/y~z?partNumber=1&uploadId=u");
  EXPECT_EQ(RequestTarget(*e, "", ""), "/");
}

TEST(ResolveEndpoint, VirtualHostedNeedsADnsLabel) {
  S3ClientOptions options = With("https://s3.example.net", AddressingStyle::kVirtualHosted);
  options.bucket = "dotted.bucket";
  EXPECT_EQ(ResolveEndpoint(options).status().code(), StatusCode::kInvalidArgument);
}

TEST(ResolveEndpoint, LoopbackMayBePlainHttp) {
  for (const char* url : {"http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000"}) {
    auto e = ResolveEndpoint(With(url));
    ASSERT_TRUE(e.ok()) << url << ": " << e.status().message();
    EXPECT_FALSE(e->tls);
    EXPECT_TRUE(e->loopback);
    EXPECT_EQ(e->port, 9000);
  }
  EXPECT_EQ(ResolveEndpoint(With("http://[::1]:9000"))->host_header, "[::1]:9000");
  // Only an address is taken as loopback for streaming: a name goes through the resolver.
  EXPECT_TRUE(ResolveEndpoint(With("http://127.0.0.1:9000"))->loopback_address);
  EXPECT_TRUE(ResolveEndpoint(With("http://127.8.9.10:9000"))->loopback_address);
  EXPECT_TRUE(ResolveEndpoint(With("http://[::1]:9000"))->loopback_address);
  EXPECT_FALSE(ResolveEndpoint(With("http://localhost:9000"))->loopback_address);
  EXPECT_EQ(ResolveEndpoint(With("http://127.0.0.1"))->host_header, "127.0.0.1");
}

TEST(ResolveEndpoint, PlainHttpElsewhereNeedsAllowPlaintext) {
  S3ClientOptions options = With("http://10.0.0.5:7480");
  auto refused = ResolveEndpoint(options);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("allow_plaintext"), std::string::npos);
  options.allow_plaintext = true;
  EXPECT_TRUE(ResolveEndpoint(options).ok());
}

TEST(ResolveEndpoint, MalformedUrlsAreRefused) {
  for (const char* url : {"s3.example.net", "ftp://h", "https://", "https://h:0", "https://h:70000", "https://h/path",
                          "https://user@h", "https://[::1", "https://h:x", "https://h:", "https://[::1]:"}) {
    EXPECT_EQ(ResolveEndpoint(With(url)).status().code(), StatusCode::kInvalidArgument) << url;
  }
  S3ClientOptions no_bucket = With("https://h");
  no_bucket.bucket.clear();
  EXPECT_EQ(ResolveEndpoint(no_bucket).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coffre::upstream
