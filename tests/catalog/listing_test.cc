#include "catalog/listing.h"

#include <gtest/gtest.h>

#include "catalog/attributes.h"
#include "support/status_matchers.h"

namespace coffre::catalog {
namespace {

using test_support::StatusIs;

TEST(PrefixSuccessor, IncrementsLastByteAndDropsTrailingFF) {
  EXPECT_EQ(PrefixSuccessor("a/"), "a0");
  EXPECT_EQ(PrefixSuccessor("abc"), "abd");
  EXPECT_EQ(PrefixSuccessor(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixSuccessor(std::string("a\xfe\xff\xff", 4)), std::string("a\xff", 2));
  EXPECT_EQ(PrefixSuccessor(std::string("\x01", 1)), std::string("\x02", 1));
  EXPECT_EQ(PrefixSuccessor(""), std::nullopt);
  EXPECT_EQ(PrefixSuccessor(std::string("\xff\xff", 2)), std::nullopt);
}

TEST(PrefixSuccessor, IsGreaterThanEveryExtensionAndNoSmallerStringIs) {
  const std::string prefix("a\xfe\xff", 3);
  const std::string next = *PrefixSuccessor(prefix);
  for (const std::string& tail : {std::string(), std::string("\xff\xff\xff", 3), std::string("zzz")}) {
    EXPECT_LT(prefix + tail, next);
  }
  EXPECT_FALSE(next.starts_with(prefix));
}

TEST(CommonPrefixLength, FindsFirstDelimiterAfterPrefix) {
  EXPECT_EQ(CommonPrefixLength("a/b/c", "", "/"), 2u);
  EXPECT_EQ(CommonPrefixLength("a/b/c", "a/", "/"), 4u);
  EXPECT_EQ(CommonPrefixLength("a/b/c", "a/b/", "/"), std::nullopt);
  EXPECT_EQ(CommonPrefixLength("a/b", "", ""), std::nullopt);
  EXPECT_EQ(CommonPrefixLength("a--b--c", "a", "--"), 3u);
  // The delimiter is searched after the prefix only, even if the prefix itself contains it.
  EXPECT_EQ(CommonPrefixLength("a/b", "a/", "/"), std::nullopt);
}

TEST(StartBound, MarkerInsideCommonPrefixSkipsThePrefix) {
  auto b = StartBound("", "/", "a/");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->key, "a0");
  EXPECT_TRUE(b->inclusive);
  b = StartBound("", "/", "a/x/y");
  EXPECT_EQ(b->key, "a0");
  b = StartBound("p/", "/", "p/q/r");
  EXPECT_EQ(b->key, "p/q0");
  EXPECT_FALSE(StartBound("", std::string("\xff", 1), std::string("\xff", 1)).has_value());
}

TEST(StartBound, MarkerBeforeOrOutsidePrefix) {
  auto b = StartBound("m", "/", "");
  EXPECT_EQ(b->key, "m");
  EXPECT_TRUE(b->inclusive);
  b = StartBound("m", "/", "a/b");
  EXPECT_EQ(b->key, "m");
  EXPECT_TRUE(b->inclusive);
  b = StartBound("m", "/", "z");
  EXPECT_EQ(b->key, "z");
  EXPECT_FALSE(b->inclusive);
  b = StartBound("", "", "k");
  EXPECT_EQ(b->key, "k");
  EXPECT_FALSE(b->inclusive);
}

TEST(Attributes, RoundTripPlainAndNonUtf8) {
  const Attributes plain = {{"content-type", "text/plain"}, {"x-amz-meta-name", "d\xc3\xa9j\xc3\xa0"}};
  EXPECT_EQ(*DecodeAttributes(EncodeAttributes(plain)), plain);
  EXPECT_EQ(EncodeAttributes({}), "{}");
  EXPECT_TRUE(DecodeAttributes("{}")->empty());
  const Attributes latin1 = {{"x-amz-meta-name", "d\xe9j\xe0"}, {std::string("k\xff", 2), ""}, {"$b64", "x"}};
  const std::string text = EncodeAttributes(latin1);
  EXPECT_NE(text.find("$b64"), std::string::npos);
  EXPECT_EQ(*DecodeAttributes(text), latin1);
  // A user attribute literally named "$b64" in the plain form is not mistaken for the other form.
  const Attributes tricky = {{"$b64", "[]"}};
  EXPECT_EQ(*DecodeAttributes(EncodeAttributes(tricky)), tricky);
}

TEST(Attributes, MalformedTextIsCorruption) {
  for (const char* bad : {"", "not json", "[]", "{\"a\": 1}", "{\"$b64\": [[\"!!\", \"\"]]}", "{\"$b64\": [1]}"}) {
    auto r = DecodeAttributes(bad);
    ASSERT_THAT(r, StatusIs(StatusCode::kCorruption)) << bad;
  }
}

}  // namespace
}  // namespace coffre::catalog
