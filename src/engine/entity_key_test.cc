#include "engine/entity_key.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tessera::engine {
namespace {

TEST(EntityKeyTest, SingleColumnKeysAreTakenAsTheyAre) {
  for (std::string text : {"u1", "a|b", "a\\b", "", "\\"}) {
    auto stored = StoredKeyFromText(text, 1);
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(*stored, text);
    EXPECT_EQ(KeyText(*stored, 1), text);
  }
}

TEST(EntityKeyTest, CompositePartsWithSeparatorsNeverCollide) {
  auto ab_c = StoredKeyFromParts({"a|b", "c"}, 2);
  auto a_bc = StoredKeyFromParts({"a", "b|c"}, 2);
  ASSERT_TRUE(ab_c.ok() && a_bc.ok());
  EXPECT_NE(*ab_c, *a_bc);
  EXPECT_EQ(KeyText(*ab_c, 2), "a\\|b|c");
  EXPECT_EQ(KeyText(*a_bc, 2), "a|b\\|c");
  // The text form parses back to the same stored key.
  EXPECT_EQ(StoredKeyFromText("a\\|b|c", 2).value(), *ab_c);
  EXPECT_EQ(StoredKeyFromText("a|b\\|c", 2).value(), *a_bc);
}

TEST(EntityKeyTest, TextRoundTripsEveryPart) {
  const std::vector<std::vector<std::string>> cases = {
      {"", ""}, {"\\", "|"}, {"a\\|", "\\\\"}, {"x", "y", "z"}, {"|||", ""}, {"é", "\xff"}};
  for (const auto& parts : cases) {
    auto stored = StoredKeyFromParts(parts, parts.size());
    ASSERT_TRUE(stored.ok()) << stored.status();
    const std::string text = KeyText(*stored, parts.size());
    auto again = StoredKeyFromText(text, parts.size());
    ASSERT_TRUE(again.ok()) << text << ": " << again.status();
    EXPECT_EQ(*again, *stored) << text;
  }
}

TEST(EntityKeyTest, BadTextNamesTheProblem) {
  auto wrong_parts = StoredKeyFromText("a|b|c", 2);
  ASSERT_FALSE(wrong_parts.ok());
  EXPECT_NE(wrong_parts.status().message().find("3 part(s)"), std::string::npos)
      << wrong_parts.status();
  auto dangling = StoredKeyFromText("a|b\\", 2);
  ASSERT_FALSE(dangling.ok());
  EXPECT_NE(dangling.status().message().find("must be followed by"), std::string::npos);
  EXPECT_FALSE(StoredKeyFromText("a\\x|b", 2).ok());
  EXPECT_FALSE(StoredKeyFromParts({"a"}, 2).ok());
}

TEST(EntityKeyTest, KeysLongerThanTheLimitAreRefused) {
  const std::string max(kMaxEntityKeyBytes, 'k');
  EXPECT_TRUE(StoredKeyFromText(max, 1).ok());
  auto too_long = StoredKeyFromText(max + "k", 1);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.status().message().find("4096"), std::string::npos);
  EXPECT_FALSE(StoredKeyFromParts({max, "x"}, 2).ok());
}

}  // namespace
}  // namespace tessera::engine
