#include "source/format/chunk_origin.h"

#include <gtest/gtest.h>

namespace tessera::source {
namespace {

TEST(ChunkOrigin, LineNumbersAreThePositionOfFileLines) {
  ChunkOrigin o;
  o.input = "events.ndjson";
  o.first_line = 10;
  EXPECT_EQ(o.Position(12), "line 12");
  EXPECT_EQ(o.Describe(12, "line 12: expected a JSON object, got 5"),
            "events.ndjson, line 12: expected a JSON object, got 5");
}

TEST(ChunkOrigin, MessageSourcesNameOffsetsAndIds) {
  ChunkOrigin k;
  k.input = "kafka topic 'plays' partition 3";
  k.first_line = 1;
  k.offsets = {100, 101, 105};
  EXPECT_EQ(k.Position(3), "offset 105");
  EXPECT_EQ(k.Describe(2, "line 2: missing event-time field 'ts'"),
            "kafka topic 'plays' partition 3, offset 101: missing event-time field 'ts'");
  EXPECT_EQ(k.Position(4), "line 4");  // beyond the table: the line number is all there is

  ChunkOrigin p;
  p.ids = {"77", "78"};
  EXPECT_EQ(p.Describe(2, "a reason without a line"), "message 78: a reason without a line");
}

}  // namespace
}  // namespace tessera::source
