#include "source/dead_letter/recent_rejects.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace tessera::source {
namespace {

using nlohmann::json;

Rejection Reject(int64_t line, std::string_view raw, std::string reason = "bad") {
  Rejection r;
  r.line_number = line;
  r.reason = "line " + std::to_string(line) + ": " + reason;
  r.line = raw;
  return r;
}

TEST(RecentRejectsTest, KeepsTheLastRecordsNewestFirst) {
  RecentRejects recent("plays", RecentRejects::Options{.capacity = 2});
  ChunkOrigin origin;
  origin.input = "events.ndjson";
  for (int i = 1; i <= 3; ++i) recent.Add(1000 + i, origin, Reject(i, "{oops" + std::to_string(i)));
  const json j = json::parse(recent.ToJson());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["line"], 3);
  EXPECT_EQ(j[0]["at"], 1003);
  EXPECT_EQ(j[0]["raw"], "{oops3");
  EXPECT_EQ(j[0]["reason"], "bad");
  EXPECT_EQ(j[0]["source"], "plays");
  EXPECT_EQ(j[0]["input"], "events.ndjson");
  EXPECT_EQ(j[1]["line"], 2);
  EXPECT_EQ(recent.total(), 3);
}

TEST(RecentRejectsTest, CutsLongLinesAndReasonsToTheirBound) {
  RecentRejects recent("s", RecentRejects::Options{.max_raw_bytes = 8, .max_reason_bytes = 20});
  ChunkOrigin origin;
  // "é" is two bytes: a cut never splits it.
  recent.Add(1, origin,
             Reject(1, "abcdeféééé" + std::string(1 << 20, 'x'), std::string(1000, 'r')));
  const json j = json::parse(recent.ToJson());
  EXPECT_EQ(j[0]["raw"], "abcdefé");
  EXPECT_EQ(j[0]["raw_bytes"], 10 + 8 + (1 << 20) - 4);
  EXPECT_LE(j[0]["reason"].get<std::string>().size(), 20u);
  EXPECT_LT(recent.ToJson().size(), 200u);
}

TEST(RecentRejectsTest, CutsTheInputsNameWhichMayHoldClientText) {
  RecentRejects recent("s", RecentRejects::Options{.max_input_bytes = 16});
  ChunkOrigin origin;
  origin.input = "http request, batch_id \"" + std::string(10000, 'b') + "\"";
  recent.Add(1, origin, Reject(1, "x"));
  const json j = json::parse(recent.ToJson());
  EXPECT_EQ(j[0]["input"], "http request, ba");
  EXPECT_LT(recent.ToJson().size(), 200u);
}

TEST(RecentRejectsTest, SaysWhereAKafkaLineCameFrom) {
  RecentRejects recent("s", RecentRejects::Options{});
  ChunkOrigin origin;
  origin.input = "kafka topic 'plays' partition 3";
  origin.partition = 3;
  origin.first_line = 1;
  origin.offsets = {100, 101};
  recent.Add(5, origin, Reject(2, "x"));
  const json j = json::parse(recent.ToJson());
  EXPECT_EQ(j[0]["partition"], 3);
  EXPECT_EQ(j[0]["offset"], 101);

  ChunkOrigin pubsub;
  pubsub.input = "pubsub subscription 's'";
  pubsub.first_line = 10;
  pubsub.ids = {"m1", "m2", "m3"};
  recent.Add(6, pubsub, Reject(12, "y"));
  EXPECT_EQ(json::parse(recent.ToJson())[0]["message_id"], "m3");
}

}  // namespace
}  // namespace tessera::source
