#include "engine/ingest_pipeline.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/time_util.h"
#include "engine/engine_test_util.h"
#include "engine/feature_reader.h"
#include "store/memory/memory_tile_store.h"

namespace tessera::engine {
namespace {

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, track STRING, ts TIMESTAMP) WITH (connector = 'file');
CREATE FEATURE VIEW distinct_tracks AS
SELECT user_id, APPROX_COUNT_DISTINCT(track) AS tracks FROM ev GROUP BY user_id;
CREATE FEATURE VIEW plays AS SELECT user_id, COUNT(*) AS n FROM ev GROUP BY user_id;
)sql";

// 8 users, each with thousands of distinct tracks, all in one 5-minute tile: 8 open tiles whose
// arenas stay tiny while their HyperLogLogs grow to kilobytes of heap each.
std::vector<std::string> ManyDistinctTracks(int rows) {
  std::vector<std::string> lines;
  lines.reserve(rows);
  for (int i = 0; i < rows; ++i) {
    lines.push_back(
        fmt::format(R"({{"user_id":"u{}","track":"t{}","ts":{}}})", i % 8, i, kT0 + i % 60'000));
  }
  return lines;
}

struct Result {
  int64_t flushes = 0;
  size_t max_open_bytes = 0;
};

Result RunView(const char* view_name, size_t budget, int rows, int64_t* tracks_of_u3 = nullptr) {
  store::MemoryTileStore store;
  auto cs = CatalogStore::Load(&store);
  EXPECT_TRUE(cs.ok());
  EXPECT_TRUE((*cs)->Register(kSql).ok());
  const ViewRuntime* view = (*cs)->FindView(view_name);
  FakeClock clock(kT0);
  IngestPipeline p(*view->source, {view}, &store,
                   PipelineOptions{.threads = 2, .memory_budget_bytes = budget, .clock = &clock});
  EXPECT_TRUE(p.Init().ok());
  EXPECT_EQ(p.memory_budget_bytes(), budget);
  StringChunkSource src(ManyDistinctTracks(rows), 500);
  Result r;
  p.set_progress([&](const SourceCounters&, bool) {
    r.max_open_bytes = std::max(r.max_open_bytes, p.open_tile_bytes());
  });
  EXPECT_TRUE(p.Run(&src).ok());
  r.flushes = p.flush_stats().flushes;
  if (tracks_of_u3 != nullptr) {
    FeatureReader reader(view, &store);
    auto windows = ParseWindows("1h", view->def->tile_ms);
    auto read = reader.Read("u3", kT0 + kMillisPerHour, *windows);
    EXPECT_TRUE(read.ok());
    *tracks_of_u3 = read->windows[0].features[0].int64();
  }
  return r;
}

// Arena and hash-table bytes alone (the old accounting) never reach the budget here: the COUNT
// view over the same rows and tiles flushes only at the end. The sketch heap of the distinct
// counts does, so that view flushes on the budget, and its answers stay exact.
TEST(IngestPipelineMemory, SketchHeapCountsTowardTheBudget) {
  constexpr size_t kBudget = 64 * 1024;
  constexpr int kRows = 40'000;
  const Result counts = RunView("plays", kBudget, kRows);
  EXPECT_EQ(counts.flushes, 1);
  EXPECT_LT(counts.max_open_bytes, kBudget);

  int64_t tracks = 0;
  const Result sketches = RunView("distinct_tracks", kBudget, kRows, &tracks);
  EXPECT_GE(sketches.flushes, 4);
  EXPECT_GT(sketches.max_open_bytes, kBudget);
  EXPECT_NEAR(static_cast<double>(tracks), kRows / 8.0, kRows / 8.0 * 0.03);
}

}  // namespace
}  // namespace tessera::engine
