#include "coffre/common/ascii.h"

#include <gtest/gtest.h>

namespace coffre {
namespace {

TEST(Ascii, EqualsIgnoreCase) {
  EXPECT_TRUE(EqualsIgnoreCase("X-Amz-Date", "x-amz-date"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_FALSE(EqualsIgnoreCase("host", "hosts"));
  EXPECT_FALSE(EqualsIgnoreCase("host", "hosu"));
}

TEST(Ascii, ToLowerIsAsciiOnly) {
  EXPECT_EQ(ToLower("X-Amz-DATE"), "x-amz-date");
  EXPECT_EQ(ToLower("\xC3\x89"), "\xC3\x89");
}

TEST(Ascii, TrimWhitespace) {
  EXPECT_EQ(TrimWhitespace("  a b \t"), "a b");
  EXPECT_EQ(TrimWhitespace("\t\r\n"), "");
  EXPECT_EQ(TrimWhitespace(""), "");
  EXPECT_EQ(TrimWhitespace("x"), "x");
}

}  // namespace
}  // namespace coffre
