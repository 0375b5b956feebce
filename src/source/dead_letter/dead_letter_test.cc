#include "source/dead_letter/dead_letter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "common/errors.h"

namespace tessera::source {
namespace {

using ::testing::HasSubstr;

sql::SourceDef Plays(std::vector<std::pair<std::string, std::string>> options = {}) {
  sql::SourceDef s;
  s.name = "plays";
  s.options = std::move(options);
  return s;
}

TEST(DeadLetterSink, RecordsSayWhereEachLineCameFrom) {
  Rejection r;
  r.line_number = 2;
  r.reason = "line 2: expected a JSON object, got 5";
  r.line = "5";
  ChunkOrigin kafka;
  kafka.input = "kafka topic 'plays' partition 3";
  kafka.partition = 3;
  kafka.offsets = {100, 107};
  auto k = nlohmann::json::parse(DeadLetterSink::Record("plays", kafka, r));
  EXPECT_EQ(k["source"], "plays");
  EXPECT_EQ(k["partition"], 3);
  EXPECT_EQ(k["offset"], 107);
  EXPECT_EQ(k["reason"], "expected a JSON object, got 5");
  EXPECT_EQ(k["raw"], "5");
  EXPECT_FALSE(k.contains("line"));

  ChunkOrigin pubsub;
  pubsub.input = "pubsub subscription 'sub'";
  pubsub.ids = {"a1", "b2"};
  auto p = nlohmann::json::parse(DeadLetterSink::Record("plays", pubsub, r));
  EXPECT_EQ(p["message_id"], "b2");

  ChunkOrigin file;
  file.input = "events.ndjson";
  file.first_line = 1;
  auto f = nlohmann::json::parse(DeadLetterSink::Record("plays", file, r));
  EXPECT_EQ(f["line"], 2);
  EXPECT_EQ(f["input"], "events.ndjson");
}

TEST(DeadLetterSink, FileSinkAppendsOneObjectPerLine) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("tessera_dl_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "dl.ndjson").string();
  {
    auto sink = DeadLetterSink::Create("file://" + path, Plays());
    ASSERT_TRUE(sink.ok()) << sink.status();
    Rejection r;
    r.line_number = 1;
    r.reason = "line 1: invalid JSON";
    r.line = "{\"bad\n";
    ChunkOrigin o;
    o.input = "stdin";
    (*sink)->Write(o, r);
    (*sink)->Write(o, r);
    EXPECT_EQ((*sink)->written(), 2);
    // Each record is in the file as soon as it is written (no later write or close needed).
    std::ifstream now(path);
    std::string all((std::istreambuf_iterator<char>(now)), std::istreambuf_iterator<char>());
    EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), 2);
  }
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["raw"], "{\"bad\n");
    ++n;
  }
  EXPECT_EQ(n, 2);
  std::filesystem::remove_all(dir);
}

TEST(DeadLetterSink, BadUrisAreErrorsNamingTheForms) {
  auto bad = DeadLetterSink::Create("s3://bucket/x", Plays());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(StatusMessage(bad.status()), HasSubstr("'kafka://topic'"));
  // kafka://topic needs the source's own brokers.
  auto no_brokers = DeadLetterSink::Create("kafka://dlq", Plays({{"connector", "http"}}));
  ASSERT_FALSE(no_brokers.ok());
  EXPECT_THAT(StatusMessage(no_brokers.status()), HasSubstr("host:port"));
  auto missing_dir = DeadLetterSink::Create("file:///nonexistent/tessera/dl.ndjson", Plays());
  ASSERT_FALSE(missing_dir.ok());
  EXPECT_THAT(StatusMessage(missing_dir.status()), HasSubstr("cannot open dead-letter file"));
}

}  // namespace
}  // namespace tessera::source
