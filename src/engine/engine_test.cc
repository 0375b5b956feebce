#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/time_util.h"
#include "engine/catalog_store.h"
#include "engine/engine_test_util.h"
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
    auto cs = CatalogStore::Load(&store_);
    ASSERT_TRUE(cs.ok()) << cs.status();
    catalog_ = std::move(*cs);
    auto views = catalog_->Register(kSql);
    ASSERT_TRUE(views.ok()) << views.status();
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

TEST_F(EngineTest, UnalignedAtIsRoundedUpAndEchoed) {
  Ingest({Line("a", 1, "x", kT0 + 1000)}, PipelineOptions{.threads = 1});
  auto j = Read("a", kT0 + 2000, "5m");
  EXPECT_EQ(j["windows"]["5m"]["n"], 1);
  EXPECT_EQ(j["at"], FormatRfc3339Millis(kT0 + k5m));
  EXPECT_EQ(j["requested_at"], FormatRfc3339Millis(kT0 + 2000));
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
