// Spine parsing, the point-in-time engine against a brute force, and previews.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "common/time_util.h"
#include "engine/entity_key.h"
#include "offline/pit_engine.h"
#include "offline/preview.h"
#include "offline/spine.h"
#include "offline/training_set.h"
#include "sql/plan.h"

namespace tessera::offline {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr int64_t k5m = 5 * kMillisPerMinute;

class OfflineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tessera-offline-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::string Read(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  static SpineOptions UserAndPair() {
    SpineOptions o;
    o.views.push_back({{"user_id"}, {DataType::kString}});
    o.views.push_back({{"n", "flag"}, {DataType::kInt64, DataType::kBool}});
    return o;
  }

  std::filesystem::path dir_;
};

TEST_F(OfflineTest, NdjsonSpineTimesKeysAndColumns) {
  const std::string path =
      Write("s.ndjson",
            "{\"user_id\":\"a\",\"ts\":1767225600000,\"n\":7,\"flag\":true}\n"
            "\n"
            "{\"ts\":\"2026-01-01T01:00:00.5+01:00\",\"user_id\":5,\"n\":\"8\","
            "\"flag\":\"false\",\"extra\":[1]}\r\n"
            "{\"user_id\":null,\"ts\":1.5e12,\"n\":2.0}\n");
  absl::StatusOr<Spine> s = Spine::Read(path, UserAndPair());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 3u);
  EXPECT_EQ(s->time(0), kT0);
  EXPECT_EQ(s->time(1), kT0 + 500);  // the offset is applied
  EXPECT_EQ(s->time(2), 1'500'000'000'000);
  EXPECT_EQ(s->line(1), 3);
  EXPECT_EQ(*s->key(0, 0), "a");
  EXPECT_EQ(*s->key(0, 1), "5");  // a number for a STRING key: its text
  EXPECT_FALSE(s->key(0, 2).has_value());
  EXPECT_EQ(engine::KeyText(*s->key(1, 0), 2), "7|true");
  EXPECT_EQ(engine::KeyText(*s->key(1, 1), 2), "8|false");
  EXPECT_FALSE(s->key(1, 2).has_value());  // flag missing: NULL
  EXPECT_EQ(s->null_keys(0), 1);
  EXPECT_THAT(s->columns(), ::testing::ElementsAre("user_id", "ts", "n", "flag", "extra"));
  std::string out;
  EXPECT_TRUE(s->AppendColumns(1, TableFormat::kNdjson, &out));
  EXPECT_EQ(out,
            "\"ts\":\"2026-01-01T01:00:00.5+01:00\",\"user_id\":5,\"n\":\"8\",\"flag\":\"false\","
            "\"extra\":[1]");
  out.clear();
  s->AppendColumns(1, TableFormat::kCsv, &out);
  EXPECT_EQ(out, "5,2026-01-01T01:00:00.5+01:00,8,false,[1]");
  out.clear();
  s->AppendColumns(2, TableFormat::kCsv, &out);
  EXPECT_EQ(out, ",1.5e12,2.0,,");  // numbers exactly as written
}

TEST_F(OfflineTest, CsvSpine) {
  const std::string path = Write("s.csv",
                                 "user_id,label,ts,n,flag\r\n"
                                 "\"a,b\",1,2026-01-01T00:00:00Z,3,true\r\n"
                                 ",0,1767225600001,,false\r\n");
  absl::StatusOr<Spine> s = Spine::Read(path, UserAndPair());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ(*s->key(0, 0), "a,b");
  EXPECT_FALSE(s->key(0, 1).has_value());  // empty field: NULL
  EXPECT_FALSE(s->key(1, 1).has_value());
  EXPECT_EQ(s->time(1), kT0 + 1);
  std::string out;
  s->AppendColumns(0, TableFormat::kNdjson, &out);
  EXPECT_EQ(out,
            "\"user_id\":\"a,b\",\"label\":\"1\",\"ts\":\"2026-01-01T00:00:00Z\",\"n\":\"3\","
            "\"flag\":\"true\"");
  out.clear();
  s->AppendColumns(1, TableFormat::kNdjson, &out);
  EXPECT_THAT(out, HasSubstr("\"user_id\":null"));
  out.clear();
  s->AppendColumns(0, TableFormat::kCsv, &out);
  EXPECT_EQ(out, "\"a,b\",1,2026-01-01T00:00:00Z,3,true");
}

TEST_F(OfflineTest, BadSpineRowsNameTheLineOrAreSkipped) {
  const std::string text =
      "{\"user_id\":\"a\",\"ts\":1,\"n\":1,\"flag\":true}\n"
      "{\"user_id\":\"b\",\"ts\":\"soon\",\"n\":1,\"flag\":true}\n"
      "{\"user_id\":\"c\",\"n\":1,\"flag\":true}\n"
      "{\"user_id\":\"d\",\"ts\":5,\"n\":\"x\",\"flag\":true}\n"
      "not json\n"
      "{\"user_id\":\"e\",\"ts\":99999999999999999,\"n\":1,\"flag\":true}\n";
  const std::string path = Write("bad.ndjson", text);
  absl::StatusOr<Spine> s = Spine::Read(path, UserAndPair());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("line 2"));
  EXPECT_THAT(s.status().message(), HasSubstr("\"soon\""));
  SpineOptions skip = UserAndPair();
  skip.skip_bad_rows = true;
  s = Spine::Read(path, skip);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->size(), 1u);
  EXPECT_EQ(s->skipped_rows(), 5);
  std::string out;
  s->AppendColumns(0, TableFormat::kNdjson, &out);
  EXPECT_EQ(out, "\"user_id\":\"a\",\"ts\":1,\"n\":1,\"flag\":true");

  auto error = [&](const std::string& name, const std::string& body) {
    absl::StatusOr<Spine> r = Spine::Read(Write(name, body), UserAndPair());
    return r.ok() ? std::string("ok") : std::string(r.status().message());
  };
  EXPECT_THAT(error("k.ndjson", "{\"user_id\":\"a\",\"ts\":1,\"n\":\"x\",\"flag\":true}\n"),
              HasSubstr("key column 'n': expected a BIGINT"));
  EXPECT_THAT(error("nokey.ndjson", "{\"user_id\":\"a\",\"ts\":1,\"n\":1}\n"),
              HasSubstr("no column 'flag'"));
  EXPECT_THAT(error("h.csv", "user_id,user_id,ts\n"), HasSubstr("appears twice"));
  EXPECT_THAT(error("t.csv", "user_id,n,flag\n"), HasSubstr("no time column 'ts'"));
  EXPECT_THAT(error("w.csv", "user_id,ts,n,flag\na,1,2\n"), HasSubstr("3 fields, expected 4"));
  EXPECT_THAT(error("q.csv", "user_id,ts,n,flag\n\"a,1,2,true\n"), HasSubstr("unterminated"));
  EXPECT_THAT(error("x.txt", ""), HasSubstr(".ndjson"));
}

// The engine against a brute force of align_down(t - W, T) <= ts < t over the on-time rows,
// with disorder, late rows, several points per key and points inside tiles; then the same with
// a budget that forces several passes and with one thread.
TEST_F(OfflineTest, PointsEqualBruteForce) {
  absl::StatusOr<sql::Catalog> catalog = sql::ParseCatalog(R"(
    CREATE SOURCE ev (k STRING, x BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE)
      WITH (connector = 'file');
    CREATE FEATURE VIEW v WITH (tile = '5m') AS
      SELECT k, COUNT(*) AS n, SUM(x) AS s, MAX(x) AS m, LAST_VALUE(x) AS last FROM ev GROUP BY k;
  )");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  std::mt19937_64 rng(5);
  struct Row {
    std::string k;
    int64_t x, ts;
  };
  std::vector<Row> on_time;
  std::string events;
  int64_t t = kT0, max_ts = INT64_MIN;
  for (int i = 0; i < 5000; ++i) {
    t += rng() % 20000;
    int64_t ts = t;
    if (rng() % 20 == 0) ts -= rng() % (9 * kMillisPerMinute);  // disorder within lateness
    if (rng() % 50 == 0) ts -= 20 * kMillisPerMinute;           // late
    Row r{"k" + std::to_string(rng() % 20), static_cast<int64_t>(rng() % 1000), ts};
    events += fmt::format("{{\"k\":\"{}\",\"x\":{},\"ts\":{}}}\n", r.k, r.x, r.ts);
    if (max_ts != INT64_MIN && ts < max_ts - 10 * kMillisPerMinute) continue;
    max_ts = std::max(max_ts, ts);
    on_time.push_back(r);
  }
  const std::string input = Write("ev.ndjson", events);
  std::string spine;
  std::vector<std::pair<std::string, int64_t>> points;
  for (int i = 0; i < 600; ++i) {
    const std::string k = "k" + std::to_string(rng() % 22);  // two keys never seen
    int64_t at = kT0 + static_cast<int64_t>(rng() % static_cast<uint64_t>(t - kT0 + k5m));
    if (i % 7 == 0) at = on_time[rng() % on_time.size()].ts;  // exactly an event's time
    if (i % 11 == 0) at = AlignDown(at, k5m);
    points.emplace_back(k, at);
    spine += fmt::format("{{\"k\":\"{}\",\"ts\":{},\"i\":{}}}\n", k, at, i);
  }
  const std::string spine_path = Write("spine.ndjson", spine);
  const std::vector<std::pair<std::string, int64_t>> windows = {
      {"5m", k5m}, {"1h", kMillisPerHour}, {"1d", kMillisPerDay}};

  std::string reference;
  for (auto [threads, budget] : {std::pair<int, size_t>{2, size_t{1} << 30}, {1, 4096}, {3, 1}}) {
    TrainingSetOptions o;
    o.inputs = {input};
    o.spine = spine_path;
    o.views = {"v"};
    o.windows = "5m,1h,1d";
    o.out = (dir_ / "out.ndjson").string();
    o.threads = threads;
    o.memory_budget_bytes = budget;
    o.chunk_bytes = 4096;  // many rounds, so the budget is checked while the states grow
    absl::StatusOr<TrainingSetSummary> summary = BuildTrainingSet(*catalog, o);
    ASSERT_TRUE(summary.ok()) << summary.status();
    const std::string out = Read(o.out);
    if (reference.empty()) {
      reference = out;
      std::istringstream lines(out);
      std::string line;
      for (size_t i = 0; std::getline(lines, line); ++i) {
        ASSERT_LT(i, points.size());
        const auto& [k, at] = points[i];
        std::string expected = fmt::format("{{\"k\":\"{}\",\"ts\":{},\"i\":{}", k, at, i);
        std::map<std::string, std::string> n, s, m, last;
        for (const auto& [name, w] : windows) {
          int64_t count = 0, sum = 0, max = INT64_MIN, last_ts = INT64_MIN, last_x = 0;
          for (const Row& r : on_time) {
            if (r.k != k || r.ts < AlignDown(at - w, k5m) || r.ts >= at) continue;
            ++count;
            sum += r.x;
            max = std::max(max, r.x);
            if (r.ts >= last_ts) last_ts = r.ts, last_x = r.x;
          }
          n[name] = std::to_string(count);
          s[name] = count ? std::to_string(sum) : "null";
          m[name] = count ? std::to_string(max) : "null";
          last[name] = count ? std::to_string(last_x) : "null";
        }
        for (auto* f : {&n, &s, &m, &last}) {
          const char* fname = f == &n ? "n" : f == &s ? "s" : f == &m ? "m" : "last";
          for (const auto& [name, w] : windows) {
            expected += fmt::format(",\"v__{}__{}\":{}", fname, name, (*f)[name]);
          }
        }
        EXPECT_EQ(line, expected + "}");
      }
    } else {
      EXPECT_EQ(out, reference) << threads << " threads, budget " << budget;
      if (budget < 100) {
        EXPECT_GT(summary->passes, 1);
      }
    }
  }
}

TEST_F(OfflineTest, PreviewShowsKeysAndStatistics) {
  absl::StatusOr<sql::Catalog> catalog = sql::ParseCatalog(R"(
    CREATE SOURCE ev (k STRING, x BIGINT, ts TIMESTAMP) WITH (connector = 'file');
    CREATE FEATURE VIEW v AS SELECT k, COUNT(*) AS n, MAX(x) AS m FROM ev GROUP BY k;
  )");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  std::string events;
  for (int i = 0; i < 10; ++i) {
    events += fmt::format("{{\"k\":\"a\",\"x\":{},\"ts\":{}}}\n", i, kT0 + i * 60'000);
  }
  events += fmt::format("{{\"k\":\"b\",\"x\":100,\"ts\":{}}}\n", kT0 + 30 * 60'000);
  PreviewOptions o;
  o.inputs = {Write("ev.ndjson", events)};
  o.view = "v";
  o.windows = "5m,1h";
  absl::StatusOr<std::string> report = BuildPreview(*catalog, o);
  ASSERT_TRUE(report.ok()) << report.status();
  // At the end (kT0 + 30m + 1 ms): a's rows are all in 1h and none in the 5m window; b's one row
  // is in both.
  EXPECT_THAT(*report,
              HasSubstr("at 2026-01-01T00:30:00.001Z (the end of the events + 1 ms): 2 keys"));
  EXPECT_THAT(*report, HasSubstr("key a\n"));
  EXPECT_THAT(*report, ::testing::ContainsRegex("n +0 +10\n"));
  EXPECT_THAT(*report, ::testing::ContainsRegex("m +5m +1 +1 +100 +100 +100 +100\n"));
  o.at = kT0 + 5 * 60'000 + 1;  // rows 0..5 of a; b not yet seen
  o.keys = {"a", "nobody"};
  report = BuildPreview(*catalog, o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(*report, HasSubstr(": 1 key\n"));  // a; the key asked for has no row: not counted
  EXPECT_THAT(*report, HasSubstr("key nobody\n"));
  EXPECT_THAT(*report, ::testing::ContainsRegex("n +6 +6\n"));
  EXPECT_THAT(*report, ::testing::ContainsRegex("n +5m +1 +0 +6 +6 +6 +6\n"));  // a only

  // Nothing on time: said so, not a time of 1970.
  o.inputs = {Write("empty.ndjson", "not json\n")};
  o.at.reset();
  o.keys.clear();
  report = BuildPreview(*catalog, o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(*report, HasSubstr("no on-time rows"));
}

// Without --at the end of the events is the time; tiles the longest window can no longer reach
// are dropped as the stream moves on (here: a budget that forces it), with the same report.
TEST_F(OfflineTest, PreviewAtTheEndDropsTilesOutOfReach) {
  absl::StatusOr<sql::Catalog> catalog = sql::ParseCatalog(R"(
    CREATE SOURCE ev (k STRING, x BIGINT, ts TIMESTAMP) WITH (connector = 'file');
    CREATE FEATURE VIEW v AS SELECT k, COUNT(*) AS n, SUM(x) AS s FROM ev GROUP BY k;
  )");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  std::string events;
  for (int i = 0; i < 20000; ++i) {  // 20000 keys, one row each, a minute apart: ~14 days
    events += fmt::format("{{\"k\":\"k{}\",\"x\":{},\"ts\":{}}}\n", i % 2000, i, kT0 + i * 60'000);
  }
  PreviewOptions o;
  o.inputs = {Write("ev.ndjson", events)};
  o.view = "v";
  o.windows = "1h";
  absl::StatusOr<std::string> big = BuildPreview(*catalog, o);
  ASSERT_TRUE(big.ok()) << big.status();
  o.memory_budget_bytes = 64 << 10;
  absl::StatusOr<std::string> small = BuildPreview(*catalog, o);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(*small, *big);
  EXPECT_THAT(*big, HasSubstr(": 2000 keys"));
  EXPECT_THAT(*big, ::testing::ContainsRegex("n +1h +2000 +0 +0 +0 +1 +1\n"));
}

}  // namespace
}  // namespace tessera::offline
