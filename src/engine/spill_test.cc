#include "engine/spill.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "engine/engine_test_util.h"
#include "engine/feature_reader.h"
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
  const std::string a = store::EncodeEntityInView("a");
  const std::string zz = store::EncodeEntityInView("zz");
  s.views.push_back({7, {{a, 5}, {zz, 0}}, 2});
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
  std::vector<KeySample> keys;
  auto by_key = [](const KeySample& a, const KeySample& b) { return a.key < b.key; };
  auto same_key = [](const KeySample& a, const KeySample& b) { return a.key == b.key; };
  for (int round = 0; round < 5; ++round) {
    std::vector<KeySample> samples;
    samples.reserve(700);
    for (int i = 0; i < 700; ++i) {
      samples.push_back({store::EncodeEntityInView(fmt::format("k{}", (i * 7 + round) % 900)), 3});
    }
    AddSamples(std::move(samples), &keys);
    EXPECT_LE(keys.size(), kMaxSamples);
    EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end(), by_key));
    EXPECT_EQ(std::adjacent_find(keys.begin(), keys.end(), same_key), keys.end());
  }
  EXPECT_EQ(keys.size(), 900u);
  uint64_t total = 0;
  for (const KeySample& k : keys) total += k.weight;
  EXPECT_EQ(total, 5u * 700 * 3);  // weights are kept, never lost

  // Past kMaxSamples: still bounded, and still all the weight.
  std::vector<KeySample> more;
  more.reserve(5000);
  for (int i = 0; i < 5000; ++i)
    more.push_back({store::EncodeEntityInView(fmt::format("m{}", i)), 2});
  AddSamples(std::move(more), &keys);
  EXPECT_EQ(keys.size(), kMaxSamples);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end(), by_key));
  total = 0;
  for (const KeySample& k : keys) total += k.weight;
  EXPECT_EQ(total, 5u * 700 * 3 + 5000 * 2);

  const std::vector<KeySample> pivots = PickPivots(keys, 4);
  EXPECT_EQ(pivots.size(), 3u);
  EXPECT_TRUE(PickPivots(keys, 1).empty());
  EXPECT_EQ(PickPivots({{"a", 1}, {"b", 1}}, 100).size(), 2u);  // no more pivots than samples
  EXPECT_TRUE(PickPivots({}, 100).empty());

  const store::EntityRange first = IntervalRange(pivots, 0);
  EXPECT_TRUE(first.lower.empty());
  EXPECT_EQ(first.upper, pivots[0].key);
  const store::EntityRange last = IntervalRange(pivots, 3);
  EXPECT_EQ(last.lower, pivots[2].key);
  EXPECT_TRUE(last.upper.empty());
}

// Keys that rise from run to run (order ids, sessions): the early runs' keys weigh as much in
// the pivots as the late ones', however many runs came after them.
TEST(SpillState, PivotsFollowTheSpilledTilesOfEveryRun) {
  std::vector<KeySample> keys;
  constexpr int kRuns = 40;
  for (int run = 0; run < kRuns; ++run) {
    std::vector<KeySample> samples;
    samples.reserve(200);
    for (int i = 0; i < 200; ++i) {
      samples.push_back({store::EncodeEntityInView(fmt::format("{:04}-{:04}", run, i)), 10});
    }
    AddSamples(std::move(samples), &keys);
  }
  const std::vector<KeySample> pivots = PickPivots(keys, 40);
  ASSERT_GE(pivots.size(), 35u);
  const std::string half = store::EncodeEntityInView(fmt::format("{:04}-0000", kRuns / 2));
  const auto in_first_half =
      std::count_if(pivots.begin(), pivots.end(), [&](const KeySample& p) { return p.key < half; });
  EXPECT_NEAR(static_cast<double>(in_first_half), pivots.size() / 2.0, pivots.size() / 8.0);
}

// Keys too long to keep are cut: a prefix of an encoded key bounds an interval all the same.
// Keys that share a start longer than the cut are cut where they differ instead, so they still
// give as many pivots.
TEST(SpillState, KeysSharingALongStartStayApart) {
  std::vector<KeySample> keys;
  std::vector<KeySample> samples;
  samples.reserve(5000);
  for (int i = 0; i < 5000; ++i) {
    samples.push_back(
        {store::EncodeEntityInView(std::string(300, 'u') + fmt::format("{:05}", i)), 1});
  }
  AddSamples(std::move(samples), &keys);
  ASSERT_EQ(keys.size(), kMaxSamples);
  for (size_t i = 1; i < keys.size(); ++i) EXPECT_LT(keys[i - 1].key, keys[i].key);
  EXPECT_EQ(PickPivots(keys, 64).size(), 63u);
}

TEST(SpillState, LongKeysAreSampledByTheirPrefix) {
  std::vector<KeySample> keys;
  std::vector<KeySample> samples;
  samples.reserve(500);
  for (int i = 0; i < 500; ++i) {
    samples.push_back(
        {store::EncodeEntityInView(fmt::format("{:03}", i) + std::string(400, 'x')), 1});
  }
  AddSamples(std::move(samples), &keys);
  ASSERT_EQ(keys.size(), 500u);
  for (const KeySample& k : keys) EXPECT_EQ(k.key.size(), kMaxSampledKeyBytes);
  EXPECT_EQ(PickPivots(keys, 8).size(), 7u);
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

std::vector<std::pair<store::TileKey, std::string>> BaseTiles(const store::MemoryTileStore& s) {
  std::vector<std::pair<store::TileKey, std::string>> base = s.AllTiles();
  std::erase_if(base, [](const auto& t) { return t.first.resolution != store::Resolution::kBase; });
  return base;
}

// A live source that never has anything (kIdle), until the pipeline stops.
class IdleSource final : public Source {
 public:
  absl::StatusOr<Next> NextChunk(source::Chunk*, source::ChunkOrigin*) override {
    return Next::kIdle;
  }
  void WaitForData(std::chrono::milliseconds max_wait) override {
    std::this_thread::sleep_for(std::min(max_wait, std::chrono::milliseconds(5)));
  }
  void AddCheckpoint(store::WriteBatch*) override {}
};

// Every spill run written, none merged (the merge's first cursor fails): what a backfill killed
// after its last flush leaves.
void SpillWithoutMerging(store::MemoryTileStore* base, const std::vector<std::string>& lines) {
  store::FaultInjectingTileStore faulty(base);
  faulty.FailNth(store::StoreOp::kScan, 1);  // a spilling backfill's first scan: the merge's
  ASSERT_FALSE(Ingest(&faulty, lines, Spilling()).ok());
  ASSERT_TRUE(base->GetMeta(store::meta::SpillStateKey("ev"))->has_value());
}

// Whatever runs next on the source merges the runs before anything else: the next backfill,
// one with views added to the catalog since, a live pipeline (whose readers would not see
// spilled rows, so it never spills itself).
TEST(SpillRuns, TheNextRunMergesThemFirstWhateverItIs) {
  const std::vector<std::string> lines = Events(6'000);
  const std::vector<std::string> a(lines.begin(), lines.begin() + 4'000);
  const std::vector<std::string> b(lines.begin() + 4'000, lines.end());
  store::MemoryTileStore one_a;
  ASSERT_TRUE(Ingest(&one_a, a, PipelineOptions{.memory_budget_bytes = size_t{1} << 30}).ok());
  store::MemoryTileStore one_ab;
  ASSERT_TRUE(Ingest(&one_ab, lines, PipelineOptions{.memory_budget_bytes = size_t{1} << 30}).ok());
  auto no_spill_left = [](store::MemoryTileStore& s) {
    EXPECT_FALSE(s.GetMeta(store::meta::SpillStateKey("ev"))->has_value());
    for (const auto& [key, bytes] : s.AllTiles()) EXPECT_LT(key.view_id, kSpillViewBit);
  };

  for (bool readable : {false, true}) {
    SCOPED_TRACE(readable ? "live pipeline" : "backfill");
    PipelineOptions next = Spilling();
    next.open_tiles_readable = readable;
    next.spill_runs = !readable;
    // No new input: exactly one flush of everything.
    store::MemoryTileStore s1;
    SpillWithoutMerging(&s1, a);
    absl::StatusOr<FlushStats> merged = Ingest(&s1, {}, next);
    ASSERT_TRUE(merged.ok()) << merged.status();
    no_spill_left(s1);
    EXPECT_TRUE(s1.AllTiles() == one_a.AllTiles());
    // The same metadata, but the test source's position (it starts from 0 in every run).
    auto meta = [](store::MemoryTileStore& s) {
      auto m = s.AllMeta();
      std::erase_if(m, [](const auto& kv) { return kv.first == "test/position"; });
      return m;
    };
    EXPECT_EQ(meta(s1), meta(one_a));
    // New input after the merge, by read-merge-write: the base tiles of one flush of it all
    // (rollups may be built differently, not to different values).
    store::MemoryTileStore s2;
    SpillWithoutMerging(&s2, a);
    absl::StatusOr<FlushStats> more = Ingest(&s2, b, next);
    ASSERT_TRUE(more.ok()) << more.status();
    if (readable) {
      EXPECT_EQ(more->spilled_tiles, 0);  // a backfill goes on spilling, then merges
    }
    no_spill_left(s2);
    EXPECT_TRUE(BaseTiles(s2) == BaseTiles(one_ab));
  }

  // A live pipeline's readers see the merged tiles as soon as it has merged them (its readers
  // pair the open tiles with a store snapshot, published again after every merge round).
  {
    store::MemoryTileStore s4;
    SpillWithoutMerging(&s4, a);
    auto catalog = CatalogStore::Load(&s4);
    ASSERT_TRUE(catalog.ok());
    const ViewRuntime* view = (*catalog)->FindView("by_user");
    std::vector<const ViewRuntime*> views;
    for (const auto& v : (*catalog)->views()) views.push_back(v.get());
    PipelineOptions live = Spilling();
    live.open_tiles_readable = true;
    live.spill_runs = false;
    IngestPipeline p(*view->source, views, &s4, live);
    ASSERT_TRUE(p.Init().ok());
    IdleSource idle;  // a live source with nothing to say: the pipeline never flushes
    std::thread running([&] { EXPECT_TRUE(p.Run(&idle).ok()); });
    while (s4.GetMeta(store::meta::SpillStateKey("ev"))->has_value()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    auto windows = ParseWindows("7d", view->def->tile_ms);
    ASSERT_TRUE(windows.ok());
    FeatureReader live_reader(view, &s4, &p);
    FeatureReader store_reader(view, &s4);
    for (const auto& [key, bytes] : one_a.AllTiles()) {
      if (key.view_id != view->id || key.resolution != store::Resolution::kBase) continue;
      auto seen = live_reader.Read(key.entity_key, kT0 + 3 * kMillisPerDay, *windows);
      auto stored = store_reader.Read(key.entity_key, kT0 + 3 * kMillisPerDay, *windows);
      ASSERT_TRUE(seen.ok() && stored.ok());
      ASSERT_GT(stored->windows[0].features[0].int64(), 0);
      EXPECT_EQ(seen->windows[0].features[0].int64(), stored->windows[0].features[0].int64())
          << key.entity_key;
    }
    p.Stop();
    running.join();
    no_spill_left(s4);
  }

  // A view added to the catalog since: the runs of the two views are merged, the new one
  // starts empty.
  const std::string other_sql = std::string(kSql) +
                                "CREATE FEATURE VIEW third AS SELECT user_id, COUNT(*) AS n "
                                "FROM ev GROUP BY user_id;";
  store::MemoryTileStore s3;
  SpillWithoutMerging(&s3, a);
  absl::StatusOr<FlushStats> three = Ingest(&s3, {}, Spilling(), other_sql.c_str());
  ASSERT_TRUE(three.ok()) << three.status();
  no_spill_left(s3);
  EXPECT_TRUE(s3.AllTiles() == one_a.AllTiles());
}

}  // namespace
}  // namespace tessera::engine
