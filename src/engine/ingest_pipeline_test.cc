#include "engine/ingest_pipeline.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
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

// A backfill's flush frees each shard once serialized, so it needs room beside the open tiles
// for one shard per thread: it starts at shards_per_thread / (shards_per_thread + 1) of the
// budget. A live pipeline's readers keep every shard until the commit: it starts at the budget.
TEST(PipelineOptions, FlushThresholdLeavesRoomForTheFlush) {
  PipelineOptions o{.shards_per_thread = 4, .memory_budget_bytes = size_t{1000} << 20};
  EXPECT_EQ(o.FlushThresholdBytes(), size_t{1000} << 20);
  o.open_tiles_readable = false;
  EXPECT_EQ(o.FlushThresholdBytes(), size_t{800} << 20);
  o.shards_per_thread = 1;
  EXPECT_EQ(o.FlushThresholdBytes(), size_t{500} << 20);
  o.shards_per_thread = 0;  // treated as 1, like OpenTiles does
  EXPECT_EQ(o.FlushThresholdBytes(), size_t{500} << 20);
}

// Hands out the chunks of a StringChunkSource, every other one already decoded
// (ChunkOrigin::decoded), as the http connector does with the rows HTTP ingest decoded.
class PreDecodingChunkSource final : public Source {
 public:
  PreDecodingChunkSource(const sql::SourceDef& source, std::vector<std::string> lines,
                         size_t chunk_lines)
      : inner_(std::move(lines), chunk_lines), decoder_(source.columns, source.time_column) {}

  absl::StatusOr<Next> NextChunk(source::Chunk* chunk, source::ChunkOrigin* origin) override {
    absl::StatusOr<Next> next = inner_.NextChunk(chunk, origin);
    if (!next.ok() || *next != Next::kChunk || chunks_++ % 2 == 1) return next;
    auto rows = std::make_unique<source::DecodedRows>();
    decoder_.Decode(*chunk, origin->first_line, &rows->batch, &rows->stats);
    for (int64_t ts : rows->batch.event_time_ms) {
      rows->max_event_time_ms = std::max(rows->max_event_time_ms, ts);
    }
    origin->decoded = std::move(rows);
    chunk->Clear();
    return next;
  }
  void AddCheckpoint(store::WriteBatch* batch) override { inner_.AddCheckpoint(batch); }

 private:
  StringChunkSource inner_;
  source::NdjsonDecoder decoder_;
  int chunks_ = 0;
};

struct RunOutcome {
  SourceCounters source;
  std::vector<ViewCounters> views;
  std::vector<std::string> features;  // per user: n, total of the last hour
};

RunOutcome RunMixed(bool pre_decoded) {
  constexpr char kMixedSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, ts TIMESTAMP,
                  WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE) WITH (connector = 'http');
CREATE FEATURE VIEW totals AS SELECT user_id, COUNT(*) AS n, SUM(v) AS total FROM ev
  WHERE v > 0 GROUP BY user_id;
)sql";
  // Rows moving forward in time with late ones, field errors, NULL keys and rejected lines.
  std::vector<std::string> lines;
  for (int i = 0; i < 3000; ++i) {
    const int64_t ts = kT0 + int64_t{i} * 1000 - (i % 7 == 0 ? 5 * 60'000 : 0);
    if (i % 11 == 0) {
      lines.push_back(fmt::format(R"({{"user_id":"u{}","v":"x","ts":{}}})", i % 5, ts));
    } else if (i % 13 == 0) {
      lines.push_back(fmt::format(R"({{"user_id":null,"v":1,"ts":{}}})", ts));
    } else if (i % 17 == 0) {
      lines.push_back("not json");
    } else {
      lines.push_back(fmt::format(R"({{"user_id":"u{}","v":{},"ts":{}}})", i % 5, i % 9, ts));
    }
  }
  store::MemoryTileStore store;
  auto cs = CatalogStore::Load(&store);
  EXPECT_TRUE(cs.ok());
  EXPECT_TRUE((*cs)->Register(kMixedSql).ok());
  const ViewRuntime* view = (*cs)->FindView("totals");
  FakeClock clock(kT0);
  IngestPipeline p(*view->source, {view}, &store, PipelineOptions{.threads = 2, .clock = &clock});
  EXPECT_TRUE(p.Init().ok());
  absl::Status run;
  if (pre_decoded) {
    PreDecodingChunkSource src(*view->source, lines, 100);
    run = p.Run(&src);
  } else {
    StringChunkSource src(lines, 100);
    run = p.Run(&src);
  }
  EXPECT_TRUE(run.ok()) << run;
  RunOutcome out{p.source_counters(), p.view_counters(), {}};
  FeatureReader reader(view, &store);
  auto windows = ParseWindows("1h", view->def->tile_ms);
  for (int u = 0; u < 5; ++u) {
    auto read = reader.Read(fmt::format("u{}", u), kT0 + kMillisPerHour, *windows);
    EXPECT_TRUE(read.ok());
    out.features.push_back(fmt::format("{} {}", read->windows[0].features[0].int64(),
                                       read->windows[0].features[1].int64()));
  }
  return out;
}

// Chunks the source decoded already go through the same late marking, views and counters as
// chunks the pipeline decodes itself.
TEST(IngestPipelineDecodedChunks, BehaveExactlyLikeChunksDecodedHere) {
  const RunOutcome raw = RunMixed(false);
  const RunOutcome pre = RunMixed(true);
  EXPECT_GT(raw.source.late, 0);
  EXPECT_GT(raw.source.rejected, 0);
  EXPECT_GT(raw.source.field_errors, 0);
  EXPECT_GT(raw.views[0].null_key, 0);
  EXPECT_EQ(pre.source.lines, raw.source.lines);
  EXPECT_EQ(pre.source.rows, raw.source.rows);
  EXPECT_EQ(pre.source.rejected, raw.source.rejected);
  EXPECT_EQ(pre.source.field_errors, raw.source.field_errors);
  EXPECT_EQ(pre.source.late, raw.source.late);
  EXPECT_EQ(pre.views[0].rows_in, raw.views[0].rows_in);
  EXPECT_EQ(pre.views[0].filtered, raw.views[0].filtered);
  EXPECT_EQ(pre.views[0].null_key, raw.views[0].null_key);
  EXPECT_EQ(pre.views[0].aggregated, raw.views[0].aggregated);
  EXPECT_EQ(pre.features, raw.features);
}

}  // namespace
}  // namespace tessera::engine
