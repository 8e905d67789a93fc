// S3's tag rules (s3/tagging.h) and the Tagging document parser.

#include "s3/tagging.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "coffre/s3/xml.h"
#include "support/status_matchers.h"

namespace coffre::s3 {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

template <typename T>
ErrorCode CodeOf(const Expected<T, Error>& r) {
  EXPECT_FALSE(r.ok());
  return r.ok() ? ErrorCode::kInternalError : r.error().code;
}

TEST(TagSet, ValidSetsPass) {
  auto tags = CheckTagSet({{"project", "alpha"}, {"a b:c/d=e+f-g_h.i@j", ""}, {"clé", "valeur é"}}, kMaxObjectTags);
  ASSERT_TRUE(tags.ok());
  EXPECT_EQ(tags->size(), 3u);
  EXPECT_EQ(tags->at("clé"), "valeur é");
  EXPECT_TRUE(CheckTagSet({}, kMaxObjectTags).ok());
}

TEST(TagSet, CountLimitsDifferForObjectsAndBuckets) {
  Pairs ten, eleven, fifty_one;
  for (int i = 0; i < 51; ++i) {
    if (i < 10) ten.emplace_back("k" + std::to_string(i), "v");
    if (i < 11) eleven.emplace_back("k" + std::to_string(i), "v");
    fifty_one.emplace_back("k" + std::to_string(i), "v");
  }
  EXPECT_TRUE(CheckTagSet(ten, kMaxObjectTags).ok());
  auto too_many = CheckTagSet(eleven, kMaxObjectTags);
  EXPECT_EQ(CodeOf(too_many), ErrorCode::kBadRequest);
  EXPECT_EQ(too_many.error().message, "Object tags cannot be greater than 10");
  EXPECT_TRUE(CheckTagSet(eleven, kMaxBucketTags).ok());
  EXPECT_EQ(CodeOf(CheckTagSet(fifty_one, kMaxBucketTags)), ErrorCode::kInvalidTag);
}

TEST(TagSet, LengthsCountUnicodeCharacters) {
  // 128 two-byte characters are 256 bytes and still one key of 128 characters.
  std::string key;
  for (int i = 0; i < 128; ++i) key += "é";
  std::string value;
  for (int i = 0; i < 256; ++i) value += "é";
  EXPECT_TRUE(CheckTagSet({{key, value}}, kMaxObjectTags).ok());
  auto long_key = CheckTagSet({{key + "x", "v"}}, kMaxObjectTags);
  EXPECT_EQ(CodeOf(long_key), ErrorCode::kInvalidTag);
  EXPECT_EQ(long_key.error().message, "The TagKey you have provided is too long, max 128");
  auto long_value = CheckTagSet({{"k", value + "x"}}, kMaxObjectTags);
  EXPECT_EQ(CodeOf(long_value), ErrorCode::kInvalidTag);
  EXPECT_EQ(long_value.error().message, "The TagValue you have provided is too long, max 256");
}

TEST(TagSet, BadKeysAndValuesAreInvalidTags) {
  for (const Pairs& bad : std::vector<Pairs>{{{"", "v"}},
                                             {{"a#b", "v"}},
                                             {{"k", "v?"}},
                                             {{"k", std::string("a\x01", 2)}},
                                             {{"k", "\xff"}},
                                             {{"aws:x", "v"}},
                                             {{"AWS:cost", "v"}},
                                             {{"k", "1"}, {"k", "2"}}}) {
    EXPECT_EQ(CodeOf(CheckTagSet(bad, kMaxObjectTags)), ErrorCode::kInvalidTag) << bad[0].first;
  }
  EXPECT_EQ(CheckTagSet({{"k", "1"}, {"k", "2"}}, kMaxObjectTags).error().message,
            "Cannot provide multiple Tags with the same key");
  // A value may begin with aws:, only keys are reserved.
  EXPECT_TRUE(CheckTagSet({{"k", "aws:v"}}, kMaxObjectTags).ok());
}

TEST(TaggingHeader, IsAUrlQuery) {
  auto tags = ParseTaggingHeader("project=alpha&note=two+words%2Fslash&empty=&bare");
  ASSERT_TRUE(tags.ok());
  EXPECT_EQ(*tags, (catalog::Tags{{"project", "alpha"}, {"note", "two words/slash"}, {"empty", ""}, {"bare", ""}}));
  EXPECT_TRUE(ParseTaggingHeader("")->empty());
  EXPECT_EQ(CodeOf(ParseTaggingHeader("a=1&a=2")), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(ParseTaggingHeader("a=%zz")), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf(ParseTaggingHeader("a%23=1")), ErrorCode::kInvalidTag);
  EXPECT_EQ(CodeOf(ParseTaggingHeader("1&2&3&4&5&6&7&8&9&10&11")), ErrorCode::kBadRequest);
}

TEST(TaggingDocument, ParsesInDocumentOrder) {
  auto tags = ParseTagging(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<TagSet><Tag><Key>b</Key><Value>2</Value></Tag><Tag><Key>a</Key><Value></Value></Tag>"
      "<Tag><Key>a</Key><Value>dup</Value></Tag></TagSet></Tagging>");
  ASSERT_TRUE(tags.ok());
  EXPECT_EQ(*tags, (Pairs{{"b", "2"}, {"a", ""}, {"a", "dup"}}));
  auto empty = ParseTagging("<Tagging><TagSet/></Tagging>");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(TaggingDocument, MalformedDocumentsAreMalformedXml) {
  for (const char* bad :
       {"", "<Tagging>", "<Tagging/>", "<Other><TagSet/></Other>", "<Tagging><TagSet/><TagSet/></Tagging>",
        "<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
        "<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>",
        "<Tagging><TagSet><Tag><Key>k</Key><Key>j</Key><Value>v</Value></Tag></TagSet></Tagging>",
        "<Tagging><TagSet><Tag><Key><b/></Key><Value>v</Value></Tag></TagSet></Tagging>",
        "<Tagging><TagSet><Other/></TagSet></Tagging>"}) {
    EXPECT_EQ(CodeOf(ParseTagging(bad)), ErrorCode::kMalformedXML) << bad;
  }
}

}  // namespace
}  // namespace coffre::s3
