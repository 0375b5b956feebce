#include "common/strings.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

namespace tessera {
namespace {

TEST(StringsTest, CaseFoldingIsAsciiOnly) {
  EXPECT_EQ(ToLowerAscii("Plays_2024$X"), "plays_2024$x");
  EXPECT_EQ(ToUpperAscii("count_star"), "COUNT_STAR");
  EXPECT_EQ(ToLowerAscii(""), "");
  // Bytes outside ASCII (UTF-8 "É") are left alone whatever the locale.
  EXPECT_EQ(ToLowerAscii("\xC3\x89T\xC3\xA9"), "\xC3\x89t\xC3\xA9");
  // Same as the C locale's tolower on every byte (what metadata keys were built with).
  for (int c = 0; c < 256; ++c) {
    EXPECT_EQ(static_cast<unsigned char>(AsciiLower(static_cast<char>(c))), std::tolower(c)) << c;
    EXPECT_EQ(static_cast<unsigned char>(AsciiUpper(static_cast<char>(c))), std::toupper(c)) << c;
  }
}

TEST(StringsTest, EqualsIgnoreCase) {
  EXPECT_TRUE(EqualsIgnoreCase("Plays", "pLAYS"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_FALSE(EqualsIgnoreCase("plays", "play"));
  EXPECT_FALSE(EqualsIgnoreCase("a_b", "a-b"));
  EXPECT_FALSE(EqualsIgnoreCase("\xC3\x89", "\xC3\xA9"));
}

TEST(StringsTest, CountNewlines) {
  EXPECT_EQ(CountNewlines(""), 0u);
  EXPECT_EQ(CountNewlines("abc"), 0u);
  EXPECT_EQ(CountNewlines("\n"), 1u);
  EXPECT_EQ(CountNewlines("a\nb\n\nc"), 3u);
  std::string big(100000, 'x');
  for (size_t i = 0; i < big.size(); i += 7) big[i] = '\n';
  EXPECT_EQ(CountNewlines(big), (big.size() + 6) / 7);
}

TEST(StringsTest, Trim) {
  EXPECT_EQ(Trim("  a b\t "), "a b");
  EXPECT_EQ(Trim(" \t "), "");
  EXPECT_EQ(Trim(""), "");
  EXPECT_EQ(Trim("x"), "x");
  // The default keeps line ends (SQL CAST and HTTP header values trim spaces and tabs only).
  EXPECT_EQ(Trim(" 5\n"), "5\n");
  EXPECT_EQ(Trim("\r\n token \n", kSpaceTabNewline), "token");
  EXPECT_EQ(TrimRight("  x \t"), "  x");
  EXPECT_EQ(TrimRight("1.5 \r\n", kSpaceTabNewline), "1.5");
  EXPECT_EQ(TrimRight("\n\n", kSpaceTabNewline), "");
}

}  // namespace
}  // namespace tessera
