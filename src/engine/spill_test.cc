#include "engine/spill.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "engine/engine_test_util.h"
#include "engine/ingest_pipeline.h"
#include "store/key_codec.h"
#include "store/memory/memory_tile_store.h"
#include "store/meta_keys.h"
#include "store/testing/fault_injecting_tile_store.h"

namespace tessera::engine {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

TEST(SpillState, EncodingRoundTripsAndRejectsWhatItCannotProduce) {
  SpillState s;
  s.flushes = 3;
  s.spilled_bytes = 123456789;
  s.merging = true;
  s.views.push_back({7,
                     {std::string("\x01"
                                  "a",
                                  2),
                      std::string("\x02"
                                  "zz",
                                  3)},
                     2});
  s.views.push_back({9, {}, 0});
  const std::string bytes = s.Encode();
  absl::StatusOr<SpillState> back = SpillState::Decode(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Encode(), bytes);
  EXPECT_EQ(back->flushes, 3u);
  EXPECT_TRUE(back->merging);
  EXPECT_EQ(back->views[0].keys, s.views[0].keys);
  EXPECT_FALSE(back->merged());
  s.views[0].merged_intervals = 3;  // past the last of its 3 intervals
  s.views[1].merged_intervals = 1;
  EXPECT_TRUE(s.merged());

  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(SpillState::Decode(bytes.substr(0, n)).status().code(), absl::StatusCode::kDataLoss)
        << n;
  }
  EXPECT_EQ(SpillState::Decode(bytes + "x").status().code(), absl::StatusCode::kDataLoss);
  std::string version = bytes;
  version[0] = 2;
  EXPECT_THAT(StatusMessage(SpillState::Decode(version).status()), HasSubstr("version"));
  SpillState unsorted = s;
  std::swap(unsorted.views[0].keys[0], unsorted.views[0].keys[1]);
  EXPECT_THAT(StatusMessage(SpillState::Decode(unsorted.Encode()).status()),
              HasSubstr("ascending"));
  SpillState past_end = s;
  past_end.views[0].merged_intervals = 4;
  EXPECT_EQ(SpillState::Decode(past_end.Encode()).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SpillState, SamplesStayBoundedSortedAndDistinct) {
  std::vector<std::string> keys;
  for (int round = 0; round < 5; ++round) {
    std::vector<std::string> samples;
    for (int i = 0; i < 700; ++i) {
      samples.push_back(store::EncodeEntityInView(fmt::format("k{}", (i * 7 + round) % 900)));
    }
    samples.push_back(store::EncodeEntityInView(std::string(kMaxSampledKeyBytes + 1, 'x')));
    AddSamples(std::move(samples), &keys);
    EXPECT_LE(keys.size(), kMaxSamples);
    EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
    EXPECT_EQ(std::adjacent_find(keys.begin(), keys.end()), keys.end());
    for (const std::string& k : keys) EXPECT_LE(k.size(), kMaxSampledKeyBytes);
  }
  EXPECT_EQ(keys.size(), 900u);

  const std::vector<std::string> pivots = PickPivots(keys, 4);
  EXPECT_EQ(pivots.size(), 3u);
  EXPECT_TRUE(std::is_sorted(pivots.begin(), pivots.end()));
  EXPECT_TRUE(PickPivots(keys, 1).empty());
  EXPECT_EQ(PickPivots({"a", "b"}, 100).size(), 2u);  // no more pivots than samples
  EXPECT_TRUE(PickPivots({}, 100).empty());

  const store::EntityRange first = IntervalRange(pivots, 0);
  EXPECT_TRUE(first.lower.empty());
  EXPECT_EQ(first.upper, pivots[0]);
  const store::EntityRange last = IntervalRange(pivots, 3);
  EXPECT_EQ(last.lower, pivots[2]);
  EXPECT_TRUE(last.upper.empty());
}

// Two views of one source (one with a composite key), entity keys of many lengths (past 127
// bytes their length takes two varint bytes, which changes their store order), rows out of
// order, late rows, NULL keys and values, over three days.
constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, device STRING, v BIGINT, tag STRING, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '20' MINUTE) WITH (connector = 'file');
CREATE FEATURE VIEW by_user AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total, MAX(v) AS top, LAST_VALUE(tag) AS last_tag,
       APPROX_COUNT_DISTINCT(tag) AS tags
FROM ev GROUP BY user_id;
CREATE FEATURE VIEW by_device AS
SELECT user_id, device, COUNT(*) AS n, MIN(v) AS low FROM ev GROUP BY user_id, device;
)sql";

std::vector<std::string> Events(int n) {
  std::mt19937_64 rng(11);
  std::vector<std::string> lines;
  int64_t t = kT0;
  for (int i = 0; i < n; ++i) {
    t += static_cast<int64_t>(rng() % 40'000);
    const int64_t ts = t - static_cast<int64_t>(rng() % (30 * kMillisPerMinute));
    const uint64_t u = rng() % 300;
    const std::string user =
        u % 50 == 0 ? "null" : fmt::format("\"{}{}\"", std::string(u % 7 * 45, 'p'), u);
    const std::string v = rng() % 10 == 0 ? "null" : std::to_string(rng() % 1000);
    lines.push_back(fmt::format(R"({{"user_id":{},"device":"d{}","v":{},"tag":"t{}","ts":{}}})",
                                user, rng() % 3, v, rng() % 40, ts));
  }
  return lines;
}

// A backfill-like run of every view of the source into `store`.
absl::StatusOr<FlushStats> Ingest(store::TileStore* store, const std::vector<std::string>& lines,
                                  PipelineOptions options, const char* sql = kSql) {
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<CatalogStore> catalog, CatalogStore::Load(store));
  TESSERA_RETURN_IF_ERROR(catalog->Register(sql).status());
  std::vector<const ViewRuntime*> views;
  for (const auto& v : catalog->views()) views.push_back(v.get());
  IngestPipeline p(*views[0]->source, views, store, options);
  TESSERA_RETURN_IF_ERROR(p.Init());
  StringChunkSource src(lines, 300);
  TESSERA_RETURN_IF_ERROR(p.Run(&src));
  return p.flush_stats();
}

PipelineOptions Spilling() {
  return PipelineOptions{.threads = 2,
                         .memory_budget_bytes = 64 << 10,
                         .open_tiles_readable = false,
                         .spill_runs = true,
                         .spill_interval_bytes = 16 << 10};
}

TEST(SpillRuns, EndWithExactlyTheTilesOfOneFlush) {
  const std::vector<std::string> lines = Events(20'000);
  store::MemoryTileStore one;
  absl::StatusOr<FlushStats> once =
      Ingest(&one, lines, PipelineOptions{.threads = 2, .memory_budget_bytes = size_t{1} << 30});
  ASSERT_TRUE(once.ok()) << once.status();
  ASSERT_EQ(once->flushes, 1);
  ASSERT_EQ(once->spilled_tiles, 0);

  store::MemoryTileStore spilled;
  absl::StatusOr<FlushStats> s = Ingest(&spilled, lines, Spilling());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(s->spilled_tiles, once->base_tiles);  // tiles spanning spill runs count per run
  EXPECT_GT(s->flushes, 10);                      // spill runs, then merge rounds
  EXPECT_EQ(s->base_tiles, once->base_tiles);
  EXPECT_EQ(s->rollup_tiles, once->rollup_tiles);
  EXPECT_TRUE(spilled.AllTiles() == one.AllTiles());
  EXPECT_EQ(spilled.AllMeta(), one.AllMeta());  // spill state and runs deleted
  for (const auto& [key, bytes] : spilled.AllTiles()) {
    EXPECT_LT(key.view_id, kSpillViewBit);
  }
}

TEST(SpillRuns, AreNotUsedWhereTheStoreHoldsTilesOrReadersMergeOpenTiles) {
  const std::vector<std::string> lines = Events(4'000);
  store::MemoryTileStore store;
  const std::vector<std::string> first(lines.begin(), lines.begin() + 2'000);
  const std::vector<std::string> rest(lines.begin() + 2'000, lines.end());
  ASSERT_TRUE(Ingest(&store, first, PipelineOptions{.threads = 2}).ok());
  absl::StatusOr<FlushStats> s = Ingest(&store, rest, Spilling());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->spilled_tiles, 0);  // the views hold tiles: read-merge-write

  store::MemoryTileStore live;
  PipelineOptions readable = Spilling();
  readable.open_tiles_readable = true;
  s = Ingest(&live, lines, readable);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->spilled_tiles, 0);
}

// A run cut short after some spill runs leaves them and the state; the next run with other
// views for the source is refused with a message saying what to do, and one with the same
// views finishes the merge.
TEST(SpillRuns, CutShortRunResumesOnlyWithItsViews) {
  const std::vector<std::string> lines = Events(6'000);
  store::MemoryTileStore base;
  store::FaultInjectingTileStore faulty(&base);
  faulty.FailNth(store::StoreOp::kWrite, 6);  // a few spill runs in
  ASSERT_FALSE(Ingest(&faulty, lines, Spilling()).ok());
  ASSERT_TRUE(base.GetMeta(store::meta::SpillStateKey("ev"))->has_value());

  const std::string other_sql =
      std::string(kSql) + "CREATE FEATURE VIEW third AS SELECT user_id, COUNT(*) AS n FROM ev " +
      "GROUP BY user_id;";
  absl::StatusOr<FlushStats> refused = Ingest(&faulty, {}, Spilling(), other_sql.c_str());
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_THAT(StatusMessage(refused.status()), HasSubstr("spill runs of 2 view(s)"));

  // With its own views, a run with no new input finishes what the cut-short one committed:
  // the merge, then the runs and the state are gone. (crash_points_test checks that resuming at
  // every crash point ends exactly as a clean run.)
  store::MemoryTileStore fresh;
  store::FaultInjectingTileStore crashy(&fresh);
  crashy.CrashAfter(40);
  (void)Ingest(&crashy, lines, Spilling());
  crashy.Heal();
  absl::StatusOr<FlushStats> finished = Ingest(&crashy, {}, Spilling());
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_FALSE(fresh.GetMeta(store::meta::SpillStateKey("ev"))->has_value());
  for (const auto& [key, bytes] : fresh.AllTiles()) EXPECT_LT(key.view_id, kSpillViewBit);
}

}  // namespace
}  // namespace tessera::engine
