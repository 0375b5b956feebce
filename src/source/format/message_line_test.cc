#include "source/format/message_line.h"

#include <gtest/gtest.h>

namespace tessera::source {
namespace {

TEST(MessageLine, OneLinePerMessageWithNewlinesAsSpaces) {
  std::string out;
  AppendMessageLine("{\"a\":\n1}", &out);
  AppendMessageLine("", &out);
  AppendMessageLine("\n\n", &out);
  EXPECT_EQ(out, "{\"a\": 1}\nnull\n  \n");
}

}  // namespace
}  // namespace tessera::source
