#include "coffre/s3/request.h"

#include <gtest/gtest.h>

#include "coffre/http/uri.h"

namespace coffre::s3 {
namespace {

TEST(UriEncode, KeepsOnlyUnreserved) {
  EXPECT_EQ(UriEncode("AZaz09-_.~", true), "AZaz09-_.~");
  EXPECT_EQ(UriEncode("a b+c*d!e'(f)", true), "a%20b%2Bc%2Ad%21e%27%28f%29");
  EXPECT_EQ(UriEncode("$=&;:@,?#%", true), "%24%3D%26%3B%3A%40%2C%3F%23%25");
  EXPECT_EQ(UriEncode("\xe2\x82\xac", true), "%E2%82%AC");
  EXPECT_EQ(UriEncode(std::string(1, '\0'), true), "%00");
  EXPECT_EQ(UriEncode("", true), "");
}

TEST(UriEncode, SlashDependsOnFlag) {
  EXPECT_EQ(UriEncode("a/b c", false), "a/b%20c");
  EXPECT_EQ(UriEncode("a/b c", true), "a%2Fb%20c");
}

TEST(UriEncode, RoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; ++c) {
    all.push_back(static_cast<char>(c));
  }
  EXPECT_EQ(http::PercentDecode(UriEncode(all, true)).value(), all);
  EXPECT_EQ(http::PercentDecode(UriEncode(all, false)).value(), all);
}

TEST(Strings, EqualsIgnoreCase) {
  EXPECT_TRUE(EqualsIgnoreCase("X-Amz-Date", "x-amz-date"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_FALSE(EqualsIgnoreCase("host", "hosts"));
  EXPECT_FALSE(EqualsIgnoreCase("host", "hosu"));
}

TEST(Strings, ToLowerIsAsciiOnly) {
  EXPECT_EQ(ToLower("X-Amz-DATE"), "x-amz-date");
  EXPECT_EQ(ToLower("\xC3\x89"), "\xC3\x89");
}

TEST(Strings, TrimWhitespace) {
  EXPECT_EQ(TrimWhitespace("  a b \t"), "a b");
  EXPECT_EQ(TrimWhitespace("\t\r\n"), "");
  EXPECT_EQ(TrimWhitespace(""), "");
  EXPECT_EQ(TrimWhitespace("x"), "x");
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
