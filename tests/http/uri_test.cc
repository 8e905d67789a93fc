#include "coffre/http/uri.h"

#include <gtest/gtest.h>

namespace coffre::http {
namespace {

TEST(SplitTarget, PathAndQuery) {
  EXPECT_EQ(SplitTarget("/a/b?x=1&y").path, "/a/b");
  EXPECT_EQ(SplitTarget("/a/b?x=1&y").query, "x=1&y");
  EXPECT_EQ(SplitTarget("/a?").path, "/a");
  EXPECT_EQ(SplitTarget("/a?").query, "");
  EXPECT_EQ(SplitTarget("/a?b?c").query, "b?c");
  EXPECT_EQ(SplitTarget("/a").path, "/a");
  EXPECT_EQ(SplitTarget("/a").query, "");
  EXPECT_EQ(SplitTarget("").path, "");
}

TEST(PercentDecode, DecodesEscapesInEitherCase) {
  EXPECT_EQ(PercentDecode("a%20b").value(), "a b");
  EXPECT_EQ(PercentDecode("%2F%2f").value(), "//");
  EXPECT_EQ(PercentDecode("%e2%82%AC").value(), "\xe2\x82\xac");
  EXPECT_EQ(PercentDecode("").value(), "");
  EXPECT_EQ(PercentDecode("%00").value(), std::string(1, '\0'));
}

TEST(PercentDecode, PlusIsLiteralUnlessFormEncoded) {
  EXPECT_EQ(PercentDecode("a+b").value(), "a+b");
  EXPECT_EQ(PercentDecode("a+b", PlusSign::kSpace).value(), "a b");
  // An escaped plus is a plus either way.
  EXPECT_EQ(PercentDecode("a%2Bb", PlusSign::kSpace).value(), "a+b");
}

TEST(PercentDecode, RejectsMalformedEscapes) {
  for (PlusSign plus : {PlusSign::kLiteral, PlusSign::kSpace}) {
    EXPECT_FALSE(PercentDecode("%zz", plus).has_value());
    EXPECT_FALSE(PercentDecode("%2", plus).has_value());
    EXPECT_FALSE(PercentDecode("%", plus).has_value());
    EXPECT_FALSE(PercentDecode("abc%", plus).has_value());
    EXPECT_FALSE(PercentDecode("%g0", plus).has_value());
    EXPECT_FALSE(PercentDecode("%0g", plus).has_value());
  }
}

TEST(ParseQuery, DecodesInOrder) {
  EXPECT_EQ(ParseQuery("list-type=2&prefix=a%20b&delimiter=%2F").value(),
            (QueryParams{{"list-type", "2"}, {"prefix", "a b"}, {"delimiter", "/"}}));
}

TEST(ParseQuery, ValuelessAndEmptyValues) {
  EXPECT_EQ(ParseQuery("acl").value(), (QueryParams{{"acl", ""}}));
  EXPECT_EQ(ParseQuery("acl=").value(), (QueryParams{{"acl", ""}}));
  EXPECT_EQ(ParseQuery("uploads&prefix=").value(), (QueryParams{{"uploads", ""}, {"prefix", ""}}));
  EXPECT_EQ(ParseQuery("=v").value(), (QueryParams{{"", "v"}}));
}

TEST(ParseQuery, EmptyQueryAndEmptyPieces) {
  EXPECT_TRUE(ParseQuery("").value().empty());
  EXPECT_EQ(ParseQuery("a=1&&b=2&").value(), (QueryParams{{"a", "1"}, {"b", "2"}}));
}

TEST(ParseQuery, PlusIsLiteralAndEqualsInValueKept) {
  EXPECT_EQ(ParseQuery("prefix=a+b").value(), (QueryParams{{"prefix", "a+b"}}));
  EXPECT_EQ(ParseQuery("k=a=b").value(), (QueryParams{{"k", "a=b"}}));
  EXPECT_EQ(ParseQuery("k=%2B").value(), (QueryParams{{"k", "+"}}));
}

TEST(ParseQuery, FormEncodedPlusIsASpaceInNamesAndValues) {
  EXPECT_EQ(ParseQuery("a+b=c+d&e=%2B", PlusSign::kSpace).value(), (QueryParams{{"a b", "c d"}, {"e", "+"}}));
}

TEST(ParseQuery, RepeatedNamesKept) { EXPECT_EQ(ParseQuery("a=2&a=1").value(), (QueryParams{{"a", "2"}, {"a", "1"}})); }

TEST(ParseQuery, MalformedEscapeFails) {
  EXPECT_FALSE(ParseQuery("a=%zz").has_value());
  EXPECT_FALSE(ParseQuery("a%2=1").has_value());
  EXPECT_FALSE(ParseQuery("ok=1&bad=%").has_value());
  EXPECT_FALSE(ParseQuery("ok=1&bad=%", PlusSign::kSpace).has_value());
}

TEST(SplitPath, SegmentsAsReceived) {
  using Segments = std::vector<std::string_view>;
  EXPECT_EQ(SplitPath("/a/b%20c"), (Segments{"a", "b%20c"}));
  EXPECT_EQ(SplitPath("/"), (Segments{""}));
  EXPECT_EQ(SplitPath("/a/"), (Segments{"a", ""}));
  EXPECT_EQ(SplitPath("//a"), (Segments{"", "a"}));
  EXPECT_TRUE(SplitPath("").empty());
  EXPECT_TRUE(SplitPath("a/b").empty());
}

TEST(MatchPathTemplate, LiteralsAndCaptures) {
  EXPECT_EQ(MatchPathTemplate("/tenants", "/tenants").value(), PathParams{});
  EXPECT_EQ(MatchPathTemplate("/tenants/{tenant}/keys", "/tenants/acme/keys").value(),
            (PathParams{{"tenant", "acme"}}));
  EXPECT_EQ(MatchPathTemplate("/t/{tenant}/k/{key}/disable", "/t/acme/k/AK%201/disable").value(),
            (PathParams{{"key", "AK%201"}, {"tenant", "acme"}}));
}

TEST(MatchPathTemplate, RejectsOtherPaths) {
  EXPECT_FALSE(MatchPathTemplate("/tenants", "/Tenants").has_value());
  EXPECT_FALSE(MatchPathTemplate("/tenants", "/tenants/").has_value());
  EXPECT_FALSE(MatchPathTemplate("/tenants", "tenants").has_value());
  EXPECT_FALSE(MatchPathTemplate("/tenants", "").has_value());
  EXPECT_FALSE(MatchPathTemplate("/tenants/{tenant}", "/tenants").has_value());
  EXPECT_FALSE(MatchPathTemplate("/tenants/{tenant}", "/tenants/a/b").has_value());
  EXPECT_FALSE(MatchPathTemplate("/tenants/{tenant}/keys", "/tenants/acme/key").has_value());
}

TEST(MatchPathTemplate, EmptySegmentsMatchNothing) {
  EXPECT_FALSE(MatchPathTemplate("/tenants/{tenant}/keys", "/tenants//keys").has_value());
  EXPECT_FALSE(MatchPathTemplate("/tenants/{tenant}", "/tenants/").has_value());
  EXPECT_FALSE(MatchPathTemplate("/a/{b}", "//a/b").has_value());
}

}  // namespace
}  // namespace coffre::http
