#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/time_util.h"
#include "engine/catalog_store.h"
#include "engine/engine_test_util.h"
#include "engine/entity_key.h"
#include "engine/feature_reader.h"
#include "engine/ingest_pipeline.h"
#include "store/memory/memory_tile_store.h"

namespace tessera::engine {
namespace {

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr int64_t k5m = 5 * kMillisPerMinute;

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, tag STRING, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE) WITH (connector = 'file');
CREATE FEATURE VIEW stats AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total, MAX(v) AS top, LAST_VALUE(tag) AS last_tag,
       SUM(v) / COUNT(*) AS mean
FROM ev WHERE v IS NULL OR v >= 0 GROUP BY user_id;
)sql";

std::string Line(const std::string& user, int64_t v, const std::string& tag, int64_t ts) {
  return fmt::format(R"({{"user_id":"{}","v":{},"tag":"{}","ts":{}}})", user, v, tag, ts);
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = RegisterCatalog(&store_, kSql);
    ASSERT_NE(catalog_, nullptr);
    view_ = catalog_->FindView("stats");
    ASSERT_NE(view_, nullptr);
  }

  // Runs lines through a pipeline; returns it for its counters.
  std::unique_ptr<IngestPipeline> Ingest(std::vector<std::string> lines, PipelineOptions opts,
                                         size_t chunk_lines = 7) {
    auto p = std::make_unique<IngestPipeline>(
        *view_->source, std::vector<const ViewRuntime*>{view_}, &store_, opts);
    EXPECT_TRUE(p->Init().ok());
    StringChunkSource src(std::move(lines), chunk_lines);
    absl::Status s = p->Run(&src);
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_GE(src.checkpoints(), 1);
    return p;
  }

  nlohmann::json Read(const std::string& key, int64_t at, const std::string& windows) {
    FeatureReader reader(view_, &store_);
    auto specs = ParseWindows(windows, view_->def->tile_ms);
    EXPECT_TRUE(specs.ok());
    auto r = reader.Read(key, at, *specs);
    EXPECT_TRUE(r.ok()) << r.status();
    return nlohmann::json::parse(r->ToJson(*view_->def));
  }

  store::MemoryTileStore store_;
  std::unique_ptr<CatalogStore> catalog_;
  const ViewRuntime* view_ = nullptr;
};

TEST_F(EngineTest, CountsLateRejectedFilteredAndNullKeys) {
  std::vector<std::string> lines = {
      Line("a", 1, "x", kT0),
      Line("a", 2, "y", kT0 + 60'000),
      "not json",
      R"({"user_id":"a","v":3})",                                // no event time: rejected
      Line("b", -5, "z", kT0 + 61'000),                          // filtered by WHERE
      R"({"user_id":null,"v":4,"tag":"n","ts":1767225662000})",  // NULL key
      Line("a", 7, "w", kT0 + 3 * kMillisPerHour),               // moves the watermark
      Line("a", 9, "late", kT0 + 60'000),                        // older than watermark: late
      Line("a", 8, "ok", kT0 + 3 * kMillisPerHour - 9 * kMillisPerMinute),  // within lateness
  };
  auto p = Ingest(lines, PipelineOptions{.threads = 2});
  EXPECT_EQ(p->source_counters().lines, 9);
  EXPECT_EQ(p->source_counters().rejected, 2);
  EXPECT_EQ(p->source_counters().late, 1);
  EXPECT_EQ(p->view_counters()[0].filtered, 1);
  EXPECT_EQ(p->view_counters()[0].null_key, 1);
  EXPECT_EQ(p->view_counters()[0].aggregated, 4);

  auto j = Read("a", kT0 + 4 * kMillisPerHour, "5m,1h,1d");
  EXPECT_EQ(j["windows"]["1d"]["n"], 4);
  EXPECT_EQ(j["windows"]["1d"]["total"], 1 + 2 + 7 + 8);
  EXPECT_EQ(j["windows"]["1d"]["top"], 8);
  EXPECT_EQ(j["windows"]["1d"]["last_tag"], "w");
  EXPECT_DOUBLE_EQ(j["windows"]["1d"]["mean"].get<double>(), 18.0 / 4);
  EXPECT_EQ(j["windows"]["1h"]["n"], 1);  // [3h, 4h) holds only the row at 3h
  EXPECT_EQ(j["windows"]["5m"]["n"], 0);
  EXPECT_TRUE(j["windows"]["5m"]["total"].is_null());
  EXPECT_TRUE(j["windows"]["5m"]["mean"].is_null());  // 0 rows: NULL / 0 -> NULL
}

TEST_F(EngineTest, UnknownKeyGetsEmptyValues) {
  Ingest({Line("a", 1, "x", kT0)}, PipelineOptions{.threads = 1});
  auto j = Read("nobody", kT0 + k5m, "5m,1h");
  EXPECT_EQ(j["windows"]["1h"]["n"], 0);
  EXPECT_TRUE(j["windows"]["1h"]["top"].is_null());
  EXPECT_TRUE(j["windows"]["1h"]["last_tag"].is_null());
}

// An unaligned `at` keeps the sawtooth tail align_down(at - W) and reads the tile holding `at`
// whole; the response echoes `at` as asked.
TEST_F(EngineTest, UnalignedAtKeepsTheSawtoothTail) {
  Ingest({Line("a", 1, "x", kT0 - k5m + 1), Line("a", 1, "x", kT0 + 1000)},
         PipelineOptions{.threads = 1});
  auto j = Read("a", kT0 + 2000, "5m");
  EXPECT_EQ(j["windows"]["5m"]["n"], 2);  // [kT0 - 5m, kT0 + 5m)
  EXPECT_EQ(j["at"], FormatRfc3339Millis(kT0 + 2000));
  EXPECT_FALSE(j.contains("requested_at"));
  EXPECT_EQ(Read("a", kT0, "5m")["windows"]["5m"]["n"], 1);  // on the boundary: [kT0 - 5m, kT0)
}

// Late-but-within-bound rows that arrive after their tile was flushed are merged in, and the
// rollups stay equal to the merge of their children.
TEST_F(EngineTest, FlushesAreReadMergeWriteAndRollupsStayExact) {
  std::mt19937_64 rng(3);
  std::vector<std::string> lines;
  int64_t t = kT0;
  int64_t expected_total = 0;
  for (int i = 0; i < 3000; ++i) {
    t += static_cast<int64_t>(rng() % 90'000);
    int64_t ts = t - static_cast<int64_t>(rng() % (9 * kMillisPerMinute));  // within lateness
    int64_t v = static_cast<int64_t>(rng() % 100);
    expected_total += v;
    lines.push_back(Line("k", v, "t", ts));
  }
  // A tiny budget flushes after every round, so later rows hit already-written tiles.
  auto p = Ingest(lines, PipelineOptions{.threads = 2, .memory_budget_bytes = 1}, 5);
  EXPECT_EQ(p->source_counters().late, 0);
  auto j = Read("k", t + k5m, "7d");
  EXPECT_EQ(j["windows"]["7d"]["n"], 3000);
  EXPECT_EQ(j["windows"]["7d"]["total"], expected_total);
  // The same 7d answer from base tiles only: sum over every 5m window.
  int64_t n = 0;
  for (int64_t at = AlignDown(kT0, k5m) - 2 * k5m; at <= t + k5m; at += k5m) {
    n += Read("k", at, "5m")["windows"]["5m"]["n"].get<int64_t>();
  }
  EXPECT_EQ(n, 3000);
}

// Windows are answered together (nested, sharing one accumulator): in any order, repeated or
// not, each is what it is when read alone.
TEST_F(EngineTest, WindowsReadTogetherEqualWindowsReadAlone) {
  std::mt19937_64 rng(8);
  std::vector<std::string> lines;
  int64_t t = kT0;
  for (int i = 0; i < 2000; ++i) {
    t += static_cast<int64_t>(rng() % 200'000);
    lines.push_back(Line(fmt::format("u{}", rng() % 3), static_cast<int64_t>(rng() % 100),
                         fmt::format("t{}", i), t));
  }
  Ingest(lines, PipelineOptions{.threads = 2, .memory_budget_bytes = 1}, 50);
  for (int64_t at : {t, t - 7 * kMillisPerHour - 3000, kT0 + 30 * kMillisPerHour}) {
    auto together = Read("u1", at, "1d,5m,6h,1h,60m,2d");
    for (const char* w : {"1d", "5m", "6h", "1h", "2d"}) {
      EXPECT_EQ(together["windows"][w], Read("u1", at, w)["windows"][w]) << w << " at " << at;
    }
  }
}

// One thread or several, big chunks or small: the same tiles.
TEST(EngineDeterminism, ThreadsAndChunkingDoNotChangeResults) {
  std::mt19937_64 rng(11);
  std::vector<std::string> lines;
  int64_t t = kT0;
  for (int i = 0; i < 5000; ++i) {
    t += static_cast<int64_t>(rng() % 20'000);
    int64_t ts = t - static_cast<int64_t>(rng() % (15 * kMillisPerMinute));
    lines.push_back(Line(fmt::format("u{}", rng() % 50), static_cast<int64_t>(rng() % 1000),
                         fmt::format("t{}", rng() % 7), ts));
  }
  std::vector<std::string> answers;
  for (int threads : {1, 2, 3}) {
    store::MemoryTileStore store;
    auto cs = CatalogStore::Load(&store);
    ASSERT_TRUE(cs.ok());
    ASSERT_TRUE((*cs)->Register(kSql).ok());
    const ViewRuntime* view = (*cs)->FindView("stats");
    IngestPipeline p(*view->source, {view}, &store, PipelineOptions{.threads = threads});
    ASSERT_TRUE(p.Init().ok());
    StringChunkSource src(lines, threads == 2 ? 3 : 400);
    ASSERT_TRUE(p.Run(&src).ok());
    FeatureReader reader(view, &store);
    std::string all;
    for (int u = 0; u < 50; ++u) {
      auto r =
          reader.Read(fmt::format("u{}", u), t, *ParseWindows("5m,1h,6h,1d", kMillisPerMinute * 5));
      ASSERT_TRUE(r.ok());
      all += r->ToJson(*view->def) + "\n";
    }
    answers.push_back(all);
    if (threads == 1) {
      EXPECT_GT(p.source_counters().late, 0);
    }
  }
  EXPECT_EQ(answers[0], answers[1]);
  EXPECT_EQ(answers[0], answers[2]);
}

TEST_F(EngineTest, CatalogPersistsAndRejectsChangedDefinitions) {
  auto reloaded = CatalogStore::Load(&store_);
  ASSERT_TRUE(reloaded.ok());
  const ViewRuntime* v = (*reloaded)->FindView("STATS");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->id, view_->id);
  // Same SQL again: a no-op.
  EXPECT_TRUE((*reloaded)->Register(kSql).ok());
  // Same name, different aggregates: refused.
  auto changed = (*reloaded)->Register(R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, tag STRING, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE) WITH (connector = 'file');
CREATE FEATURE VIEW stats AS SELECT user_id, COUNT(*) AS n FROM ev GROUP BY user_id;)sql");
  ASSERT_FALSE(changed.ok());
  EXPECT_THAT(std::string(changed.status().message()),
              ::testing::HasSubstr("view 'stats' already exists"));
  // A new view gets a new id.
  auto added = (*reloaded)->Register(R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, tag STRING, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE) WITH (connector = 'file');
CREATE FEATURE VIEW by_tag AS SELECT tag, COUNT(*) AS n FROM ev GROUP BY tag;)sql");
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_NE((*reloaded)->FindView("by_tag")->id, view_->id);
}

// Serving while ingesting: every read sees each pushed row exactly once, whatever flushes run
// concurrently, and a row is visible as soon as the pipeline has taken it (no flush needed).
TEST(EngineLive, ReadsWhileIngestingCountEveryRowOnce) {
  store::MemoryTileStore store;
  auto cs = CatalogStore::Load(&store);
  ASSERT_TRUE(cs.ok());
  ASSERT_TRUE((*cs)->Register(kSql).ok());
  const ViewRuntime* view = (*cs)->FindView("stats");
  IngestPipeline p(*view->source, {view}, &store,
                   PipelineOptions{.threads = 2, .flush_interval_ms = 2});
  ASSERT_TRUE(p.Init().ok());
  LiveChunkSource src;
  absl::Status run_status;
  std::thread runner([&] { run_status = p.Run(&src); });

  FeatureReader reader(view, &store, &p);
  auto windows = *ParseWindows("1d", k5m);
  auto count = [&]() -> int64_t {
    auto r = reader.Read("u", kT0 + kMillisPerHour, windows);
    EXPECT_TRUE(r.ok());
    return r->windows[0].features[0].int64();
  };
  std::atomic<int64_t> pushed{0};
  std::atomic<bool> done{false};
  std::atomic<int64_t> violations{0};
  // A second reader hammers the view: counts never exceed what was pushed and never go down
  // (a double count or a lost row during a flush would show up here).
  std::thread hammer([&] {
    int64_t last = 0;
    while (!done.load()) {
      int64_t c = count();
      if (c > pushed.load() || c < last) violations.fetch_add(1);
      last = c;
    }
  });
  for (int round = 0; round < 40; ++round) {
    std::vector<std::string> lines;
    lines.reserve(25);
    for (int i = 0; i < 25; ++i) {
      lines.push_back(Line("u", 1, "t", kT0 + (round * 25 + i) * 1000));
    }
    pushed += 25;
    src.Push(lines);
    // Wait until visible, then check it stays exact across the flushes that keep running.
    int64_t seen = 0;
    for (int spin = 0; spin < 2000 && seen != pushed; ++spin) {
      seen = count();
      ASSERT_LE(seen, pushed) << "a row was counted twice";
      if (seen != pushed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(seen, pushed);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(count(), pushed);
  }
  done = true;
  hammer.join();
  EXPECT_EQ(violations.load(), 0);
  src.Close();
  runner.join();
  ASSERT_TRUE(run_status.ok()) << run_status;
  EXPECT_GT(p.flush_stats().flushes, 3);
  EXPECT_EQ(count(), pushed);
}

TEST(ParseWindows, RejectsBadLists) {
  EXPECT_TRUE(ParseWindows("5m,1h,6h,1d,7d", k5m).ok());
  EXPECT_FALSE(ParseWindows("5m,,1h", k5m).ok());
  EXPECT_FALSE(ParseWindows("7m", k5m).ok());
  EXPECT_FALSE(ParseWindows("1x", k5m).ok());
  EXPECT_FALSE(ParseWindows("", k5m).ok());
}

}  // namespace
}  // namespace tessera::engine

namespace tessera::engine {
namespace {

absl::StatusOr<FeatureResult> ReadView(const ViewRuntime* view, store::TileStore* store,
                                       std::string_view text_key, int64_t at,
                                       std::string_view windows) {
  auto stored = StoredKeyFromText(text_key, view->def->keys.size());
  if (!stored.ok()) return stored.status();
  auto specs = ParseWindows(windows, view->def->tile_ms);
  if (!specs.ok()) return specs.status();
  return FeatureReader(view, store).Read(*stored, at, *specs);
}

std::unique_ptr<IngestPipeline> RunLines(const ViewRuntime* view, store::TileStore* store,
                                         std::vector<std::string> lines, PipelineOptions opts) {
  auto p = std::make_unique<IngestPipeline>(*view->source, std::vector<const ViewRuntime*>{view},
                                            store, opts);
  EXPECT_TRUE(p->Init().ok());
  StringChunkSource src(std::move(lines), 3);
  absl::Status s = p->Run(&src);
  EXPECT_TRUE(s.ok()) << s;
  return p;
}

constexpr char kPairSql[] = R"sql(
CREATE SOURCE ev (a STRING, b STRING, v BIGINT, ts TIMESTAMP);
CREATE FEATURE VIEW pairs AS SELECT a, b, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY a, b;
)sql";

// ("a|b","c") and ("a","b|c") were one tile when parts were joined by '|'.
TEST(CompositeKeyTest, PartsContainingTheSeparatorAreDistinctKeys) {
  store::MemoryTileStore store;
  auto catalog = RegisterCatalog(&store, kPairSql);
  const ViewRuntime* view = catalog->FindView("pairs");
  RunLines(view, &store,
           {fmt::format(R"({{"a":"a|b","b":"c","v":1,"ts":{}}})", kT0),
            fmt::format(R"({{"a":"a","b":"b|c","v":10,"ts":{}}})", kT0),
            fmt::format(R"({{"a":"a\\","b":"|c","v":100,"ts":{}}})", kT0)},
           PipelineOptions{.threads = 2});
  auto ab_c = ReadView(view, &store, "a\\|b|c", kT0 + k5m, "5m");
  auto a_bc = ReadView(view, &store, "a|b\\|c", kT0 + k5m, "5m");
  auto slash = ReadView(view, &store, "a\\\\|\\|c", kT0 + k5m, "5m");
  ASSERT_TRUE(ab_c.ok() && a_bc.ok() && slash.ok());
  EXPECT_EQ(ab_c->windows[0].features[1], Value::Int64(1));
  EXPECT_EQ(a_bc->windows[0].features[1], Value::Int64(10));
  EXPECT_EQ(slash->windows[0].features[1], Value::Int64(100));
  // The response echoes the text form.
  auto j = nlohmann::json::parse(ab_c->ToJson(*view->def));
  EXPECT_EQ(j["key"], "a\\|b|c");
  // The unescaped form has three parts: an error naming the problem, not someone else's tile.
  auto ambiguous = ReadView(view, &store, "a|b|c", kT0 + k5m, "5m");
  EXPECT_EQ(ambiguous.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CompositeKeyTest, FormatOneDbWithCompositeKeysIsRefusedWithAClearMessage) {
  store::MemoryTileStore store;
  RegisterCatalog(&store, kPairSql);
  store::WriteBatch drop;
  drop.meta_deletes.push_back("format_version");  // what a DB written before format 2 lacks
  ASSERT_TRUE(store.Write(drop).ok());
  auto reopened = CatalogStore::Load(&store);
  ASSERT_FALSE(reopened.ok());
  EXPECT_NE(reopened.status().message().find("storage format 1"), std::string::npos)
      << reopened.status();
  EXPECT_NE(reopened.status().message().find("pairs"), std::string::npos);
}

TEST(CompositeKeyTest, FormatOneDbWithSingleKeysStillOpens) {
  store::MemoryTileStore store;
  RegisterCatalog(&store,
                  "CREATE SOURCE ev (u STRING, ts TIMESTAMP);"
                  "CREATE FEATURE VIEW c AS SELECT u, COUNT(*) AS n FROM ev GROUP BY u;");
  store::WriteBatch drop;
  drop.meta_deletes.push_back("format_version");
  ASSERT_TRUE(store.Write(drop).ok());
  EXPECT_TRUE(CatalogStore::Load(&store).ok());
  store::WriteBatch newer;
  newer.meta.emplace_back("format_version", "3");
  ASSERT_TRUE(store.Write(newer).ok());
  auto refused = CatalogStore::Load(&store);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("newer"), std::string::npos);
}

TEST(CompositeKeyTest, OverlongKeysAreCountedNotAggregated) {
  store::MemoryTileStore store;
  auto catalog = RegisterCatalog(&store, kPairSql);
  const ViewRuntime* view = catalog->FindView("pairs");
  const std::string huge(kMaxEntityKeyBytes, 'x');
  auto p = RunLines(view, &store,
                    {fmt::format(R"({{"a":"{}","b":"c","v":1,"ts":{}}})", huge, kT0),
                     fmt::format(R"({{"a":"ok","b":"c","v":1,"ts":{}}})", kT0)},
                    PipelineOptions{.threads = 1});
  EXPECT_EQ(p->view_counters()[0].key_too_long, 1);
  EXPECT_EQ(p->view_counters()[0].aggregated, 1);
}

constexpr char kFutureSql[] = R"sql(
CREATE SOURCE ev (u STRING, v BIGINT, ts TIMESTAMP) WITH ('max-future' = '5m');
CREATE FEATURE VIEW c AS SELECT u, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY u;
)sql";

// One row from a clock in year 9999 must not make every later row late.
TEST(FutureRowTest, FarFutureRowIsRejectedAndDoesNotMoveTheWatermark) {
  store::MemoryTileStore store;
  auto catalog = RegisterCatalog(&store, kFutureSql);
  const ViewRuntime* view = catalog->FindView("c");
  EXPECT_EQ(view->source->max_future_ms, 5 * kMillisPerMinute);
  FakeClock clock(kT0 + kMillisPerHour);
  PipelineOptions opts{.threads = 2};
  opts.max_future_ms = *view->source->max_future_ms;
  opts.clock = &clock;
  std::vector<std::string> rejected;
  auto p = std::make_unique<IngestPipeline>(*view->source, std::vector<const ViewRuntime*>{view},
                                            &store, opts);
  ASSERT_TRUE(p->Init().ok());
  p->set_reject_sink([&](const source::ChunkOrigin&, const source::Rejection& r) {
    rejected.emplace_back(r.reason);
  });
  StringChunkSource src({fmt::format(R"({{"u":"a","v":1,"ts":{}}})", kT0),
                         R"({"u":"a","v":1000,"ts":"9999-12-31T00:00:00Z"})",
                         fmt::format(R"({{"u":"a","v":1000,"ts":{}}})",
                                     kT0 + kMillisPerHour + 6 * kMillisPerMinute),  // 6m ahead
                         fmt::format(R"({{"u":"a","v":2,"ts":{}}})", kT0 + 1000),
                         fmt::format(R"({{"u":"a","v":4,"ts":{}}})",
                                     kT0 + kMillisPerHour + 4 * kMillisPerMinute)},  // 4m ahead
                        1);
  ASSERT_TRUE(p->Run(&src).ok());
  EXPECT_EQ(p->source_counters().future, 2);
  EXPECT_EQ(p->source_counters().rejected, 2);
  EXPECT_EQ(p->source_counters().late, 0);
  EXPECT_EQ(p->max_event_time_ms(), kT0 + kMillisPerHour + 4 * kMillisPerMinute);
  ASSERT_EQ(rejected.size(), 2u);
  EXPECT_NE(rejected[0].find("9999-12-31T00:00:00.000Z"), std::string::npos) << rejected[0];
  EXPECT_NE(rejected[0].find("future"), std::string::npos) << rejected[0];
  auto r = ReadView(view, &store, "a", kT0 + 2 * kMillisPerHour, "1d");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->windows[0].features[0], Value::Int64(3));
  EXPECT_EQ(r->windows[0].features[1], Value::Int64(7));
}

TEST(FutureRowTest, MaxFutureOptionIsValidated) {
  store::MemoryTileStore store;
  auto cs = CatalogStore::Load(&store);
  ASSERT_TRUE(cs.ok());
  auto bad =
      (*cs)->Register("CREATE SOURCE ev (u STRING, ts TIMESTAMP) WITH ('max-future'='soon');");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("max-future"), std::string::npos) << bad.status();
  auto off =
      (*cs)->Register("CREATE SOURCE ev2 (u STRING, ts TIMESTAMP) WITH ('max-future'='off');");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ((*cs)->catalog().FindSource("ev2")->max_future_ms, sql::kNoFutureBound);
}

// Two BIGINT_MAX rows: NULL, never the wrapped -2 (and the tiles still merge exactly).
TEST(SumOverflowTest, OutOfRangeWindowSumIsNullAndInRangeSumsStayExact) {
  store::MemoryTileStore store;
  auto catalog = RegisterCatalog(&store, kFutureSql);
  const ViewRuntime* view = catalog->FindView("c");
  const int64_t max = std::numeric_limits<int64_t>::max();
  RunLines(view, &store,
           {fmt::format(R"({{"u":"a","v":{},"ts":{}}})", max, kT0),
            fmt::format(R"({{"u":"a","v":{},"ts":{}}})", max, kT0 + k5m),
            fmt::format(R"({{"u":"a","v":{},"ts":{}}})", -max, kT0 + 2 * k5m)},
           PipelineOptions{.threads = 1, .memory_budget_bytes = 1});
  auto two = ReadView(view, &store, "a", kT0 + 2 * k5m, "10m");
  ASSERT_TRUE(two.ok());
  EXPECT_TRUE(two->windows[0].features[1].is_null());
  auto three = ReadView(view, &store, "a", kT0 + 3 * k5m, "15m");
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(three->windows[0].features[1], Value::Int64(max));
}

TEST(ReadBoundsTest, AtOutsideTheTimeRangeIsAnErrorNotAnOverflow) {
  store::MemoryTileStore store;
  auto catalog = RegisterCatalog(&store, kFutureSql);
  const ViewRuntime* view = catalog->FindView("c");
  for (int64_t at : {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(),
                     kMaxTimestampMs + 1}) {
    auto r = ReadView(view, &store, "a", at, "1d");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange) << at;
  }
  EXPECT_TRUE(ReadView(view, &store, "a", kMaxTimestampMs, "36500d").ok());
  EXPECT_TRUE(ReadView(view, &store, "a", kMinTimestampMs, "36500d").ok());
  EXPECT_FALSE(ParseWindows("36501d", kMillisPerMinute).ok());
  EXPECT_FALSE(ParseWindows("1h,1h", kMillisPerMinute).ok());
  EXPECT_TRUE(ParseWindows("1h,60m", kMillisPerMinute).ok());
}

}  // namespace
}  // namespace tessera::engine
