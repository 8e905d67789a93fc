#include "coffre/s3/request.h"

#include <gtest/gtest.h>

namespace coffre::s3 {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

TEST(UriDecode, DecodesEscapesInEitherCase) {
  EXPECT_EQ(UriDecode("a%20b").value(), "a b");
  EXPECT_EQ(UriDecode("%2F%2f").value(), "//");
  EXPECT_EQ(UriDecode("%e2%82%AC").value(), "\xe2\x82\xac");
  EXPECT_EQ(UriDecode("").value(), "");
  EXPECT_EQ(UriDecode("%00").value(), std::string(1, '\0'));
}

TEST(UriDecode, KeepsPlusAsPlus) { EXPECT_EQ(UriDecode("a+b").value(), "a+b"); }

TEST(UriDecode, RejectsMalformedEscapes) {
  EXPECT_FALSE(UriDecode("%zz").has_value());
  EXPECT_FALSE(UriDecode("%2").has_value());
  EXPECT_FALSE(UriDecode("%").has_value());
  EXPECT_FALSE(UriDecode("abc%").has_value());
  EXPECT_FALSE(UriDecode("%g0").has_value());
  EXPECT_FALSE(UriDecode("%0g").has_value());
}

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
  EXPECT_EQ(UriDecode(UriEncode(all, true)).value(), all);
  EXPECT_EQ(UriDecode(UriEncode(all, false)).value(), all);
}

TEST(ParseQuery, DecodesInOrder) {
  EXPECT_EQ(ParseQuery("list-type=2&prefix=a%20b&delimiter=%2F").value(),
            (Params{{"list-type", "2"}, {"prefix", "a b"}, {"delimiter", "/"}}));
}

TEST(ParseQuery, ValuelessAndEmptyValues) {
  EXPECT_EQ(ParseQuery("acl").value(), (Params{{"acl", ""}}));
  EXPECT_EQ(ParseQuery("acl=").value(), (Params{{"acl", ""}}));
  EXPECT_EQ(ParseQuery("uploads&prefix=").value(), (Params{{"uploads", ""}, {"prefix", ""}}));
  EXPECT_EQ(ParseQuery("=v").value(), (Params{{"", "v"}}));
}

TEST(ParseQuery, EmptyQueryAndEmptyPieces) {
  EXPECT_TRUE(ParseQuery("").value().empty());
  EXPECT_EQ(ParseQuery("a=1&&b=2&").value(), (Params{{"a", "1"}, {"b", "2"}}));
}

TEST(ParseQuery, PlusIsLiteralAndEqualsInValueKept) {
  EXPECT_EQ(ParseQuery("prefix=a+b").value(), (Params{{"prefix", "a+b"}}));
  EXPECT_EQ(ParseQuery("k=a=b").value(), (Params{{"k", "a=b"}}));
  EXPECT_EQ(ParseQuery("k=%2B").value(), (Params{{"k", "+"}}));
}

TEST(ParseQuery, RepeatedNamesKept) { EXPECT_EQ(ParseQuery("a=2&a=1").value(), (Params{{"a", "2"}, {"a", "1"}})); }

TEST(ParseQuery, MalformedEscapeFails) {
  EXPECT_FALSE(ParseQuery("a=%zz").has_value());
  EXPECT_FALSE(ParseQuery("a%2=1").has_value());
  EXPECT_FALSE(ParseQuery("ok=1&bad=%").has_value());
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
