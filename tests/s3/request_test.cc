#include "coffre/s3/request.h"

#include <gtest/gtest.h>

#include "coffre/http/uri.h"

namespace coffre::s3 {
namespace {

TEST(UriEncode, RoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; ++c) {
    all.push_back(static_cast<char>(c));
  }
  EXPECT_EQ(http::PercentDecode(UriEncode(all, true)).value(), all);
  EXPECT_EQ(http::PercentDecode(UriEncode(all, false)).value(), all);
}

TEST(HttpRequestView, HeaderIsCaseInsensitiveAndFirstWins) {
  HttpRequestView request;
  request.method = "GET";
  request.target = "/";
  request.headers = {{"Host", "example"}, {"X-Amz-Meta-A", "1"}, {"x-amz-meta-a", "2"}};
  EXPECT_EQ(request.Header("host").value(), "example");
  EXPECT_EQ(request.Header("X-AMZ-META-A").value(), "1");
  EXPECT_FALSE(request.Header("range").has_value());
}

}  // namespace
}  // namespace coffre::s3
