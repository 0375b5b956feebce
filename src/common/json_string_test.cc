#include "common/json_string.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

namespace tessera {
namespace {

TEST(JsonString, EscapesSpecialAndControlCharacters) {
  EXPECT_EQ(JsonString(""), "\"\"");
  EXPECT_EQ(JsonString("plain key|1"), "\"plain key|1\"");
  EXPECT_EQ(JsonString("a\"b\\c\n\r\t\x01\x1f"), "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\"");
  EXPECT_EQ(JsonString(std::string("nul\0in", 6)), "\"nul\\u0000in\"");
}

TEST(JsonString, KeepsWellFormedUtf8) {
  EXPECT_EQ(JsonString("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5"),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5\"");
  EXPECT_EQ(JsonString("\xef\xbf\xbf\xf4\x8f\xbf\xbf"), "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
}

TEST(JsonString, ReplacesEveryIllFormedByte) {
  EXPECT_EQ(JsonString("\xff"), "\"\\ufffd\"");
  EXPECT_EQ(JsonString("a\xffz"), "\"a\\ufffdz\"");
  EXPECT_EQ(JsonString("\x80"), "\"\\ufffd\"");                        // lone continuation
  EXPECT_EQ(JsonString("\xc3"), "\"\\ufffd\"");                        // truncated
  EXPECT_EQ(JsonString("\xc3z"), "\"\\ufffdz\"");                      // truncated, then ASCII
  EXPECT_EQ(JsonString("\xc0\xaf"), "\"\\ufffd\\ufffd\"");             // overlong '/'
  EXPECT_EQ(JsonString("\xe0\x80\xaf"), "\"\\ufffd\\ufffd\\ufffd\"");  // overlong
  EXPECT_EQ(JsonString("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");  // surrogate D800
  EXPECT_EQ(JsonString("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");  // > U+10FFFF
  EXPECT_EQ(JsonString("\xf5\x80\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
  EXPECT_EQ(JsonString("\xe2\x82"), "\"\\ufffd\\ufffd\"");
}

// Whatever the bytes, the output parses as JSON (nlohmann rejects invalid UTF-8) and a valid
// input round-trips.
TEST(JsonString, RandomBytesAlwaysGiveValidJson) {
  std::mt19937 rng(7);
  for (int round = 0; round < 5000; ++round) {
    std::string s(rng() % 12, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    std::string out;
    AppendJsonString(s, &out);
    nlohmann::json parsed = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(parsed.is_discarded()) << out;
    ASSERT_TRUE(parsed.is_string());
    bool valid = true;
    for (size_t i = 0; i < s.size();) {
      size_t n = Utf8SequenceLength(std::string_view(s).substr(i));
      if (n == 0) {
        valid = false;
        break;
      }
      i += n;
    }
    if (valid) {
      EXPECT_EQ(parsed.get<std::string>(), s);
    }
  }
}

}  // namespace
}  // namespace tessera
