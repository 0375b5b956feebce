#include "engine/open_tiles.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "agg/hyperloglog.h"
#include "common/arena.h"
#include "common/column.h"
#include "common/hash.h"
#include "common/time_util.h"
#include "engine/engine_test_util.h"
#include "store/memory/memory_tile_store.h"
#include "tile/tile_layout.h"

namespace tessera::engine {
namespace {

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr int64_t k5m = 5 * kMillisPerMinute;

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, track STRING, ts TIMESTAMP) WITH (connector = 'file');
CREATE FEATURE VIEW v AS
SELECT user_id, COUNT(*) AS n, APPROX_COUNT_DISTINCT(track) AS tracks FROM ev GROUP BY user_id;
)sql";

class OpenTilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = RegisterCatalog(&store_, kSql);
    ASSERT_NE(catalog_, nullptr);
    view_ = catalog_->FindView("v");
  }

  // Adds one row per track to tile (key, start) the way the pipeline does: under Add().
  void AddRows(OpenTiles* open, std::string_view key, int64_t start,
               const std::vector<std::string>& tracks) {
    const uint32_t n = static_cast<uint32_t>(tracks.size());
    Column col;
    col.Reset(DataType::kString, n);
    Arena arena;
    for (uint32_t i = 0; i < n; ++i) col.SetValue(i, Value::String(tracks[i]), &arena);
    std::vector<uint32_t> rows(n);
    std::iota(rows.begin(), rows.end(), 0);
    std::vector<int64_t> ts(n, start);
    const uint64_t hash = Hash64(key);
    const tile::TileLayout& layout = *view_->layout;
    open->Add(0, open->ShardOf(hash), n, [&](TileShard& tiles) {
      std::byte* block = tiles.FindOrCreate(key, hash, start);
      std::vector<std::byte*> states(n);
      for (size_t a = 0; a < layout.num_slots(); ++a) {
        for (auto& s : states) s = block + layout.offset(a);
        const bool has_arg = a < view_->def->aggregates.size() && view_->def->aggregates[a].arg;
        const Column* arg = has_arg ? &col : nullptr;
        const bool has_arg2 = has_arg && view_->def->aggregates[a].arg2;  // SUM_BY: col twice
        layout.agg(a).AddBatch(states.data(), agg::AggArgs(arg, has_arg2 ? arg : nullptr),
                               ts.data(), rows.data(), n);
      }
    });
  }

  static std::vector<std::string> Tracks(int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back(fmt::format("track-{}", i));
    return out;
  }

  // COUNT(*) of the open tiles of `key` in [from, to), and the snapshot MergeInto returned.
  int64_t OpenCount(OpenTiles* open, std::string_view key, int64_t from, int64_t to,
                    std::shared_ptr<const store::StoreSnapshot>* snapshot = nullptr) {
    tile::OwnedBlock block(*view_->layout);
    std::byte* blocks[] = {block.data()};
    const std::pair<int64_t, int64_t> ranges[] = {{from, to}};
    int64_t merged = 0;
    auto snap = open->MergeInto(0, key, ranges, blocks, &merged);
    if (snapshot != nullptr) *snapshot = snap;
    return view_->layout->agg(0).Finalize(block.data()).int64();
  }

  size_t TableBytes(const OpenTiles& open) {
    size_t total = 0;
    for (int s = 0; s < open.num_shards(); ++s) total += open.shard(0, s).MemoryBytes();
    return total;
  }

  store::MemoryTileStore store_;
  std::unique_ptr<CatalogStore> catalog_;
  const ViewRuntime* view_ = nullptr;
  FakeClock clock_;
};

TEST_F(OpenTilesTest, ReadersMergeOpenTilesInRangeWithThePublishedSnapshot) {
  OpenTiles open({view_}, 2, 3, size_t{1} << 30, &clock_);
  EXPECT_EQ(open.num_shards(), 6);
  auto before = store_.GetSnapshot();
  open.Publish(before);
  EXPECT_TRUE(open.empty());
  AddRows(&open, "a", kT0, Tracks(0, 3));
  AddRows(&open, "a", kT0 + k5m, Tracks(0, 2));
  AddRows(&open, "a", kT0 + 10 * k5m, Tracks(0, 1));
  AddRows(&open, "b", kT0, Tracks(0, 5));
  EXPECT_EQ(open.size(), 4u);
  std::shared_ptr<const store::StoreSnapshot> snap;
  EXPECT_EQ(OpenCount(&open, "a", kT0, kT0 + 2 * k5m, &snap), 5);
  EXPECT_EQ(snap, before);
  EXPECT_EQ(OpenCount(&open, "a", kT0 + k5m, kT0 + 11 * k5m), 3);
  EXPECT_EQ(OpenCount(&open, "a", kT0 - k5m, kT0), 0);
  EXPECT_EQ(OpenCount(&open, "nobody", kT0, kT0 + k5m), 0);

  // After a flush: the new snapshot and no open tiles, in one step for readers.
  auto after = store_.GetSnapshot();
  open.SwapOut(after);
  EXPECT_TRUE(open.empty());
  EXPECT_EQ(OpenCount(&open, "a", kT0, kT0 + 11 * k5m, &snap), 0);
  EXPECT_EQ(snap, after);
  EXPECT_EQ(open.MemoryBytes(), 0u);
  open.ReleaseRetired(0);
  open.ReleaseRetired(1);
}

TEST_F(OpenTilesTest, MemoryCountsSketchHeapNotOnlyArenas) {
  OpenTiles open({view_}, 1, 1, size_t{1} << 30, &clock_);
  // One tile, many distinct tracks: the arena holds one small block; the HLL grows to dense.
  AddRows(&open, "a", kT0, Tracks(0, 20'000));
  open.UpdateMemory(0, 0);
  EXPECT_EQ(open.heap_recounts(), 1);  // 20000 rows >= kMinRowsPerCount: counted exactly
  EXPECT_LT(TableBytes(open), 4096u);
  EXPECT_GE(open.MemoryBytes(), TableBytes(open) + agg::HyperLogLog::kNumRegisters);
}

TEST_F(OpenTilesTest, HeapIsRecountedOnRowsOrTimeAndEstimatedInBetween) {
  OpenTiles open({view_}, 1, 1, size_t{1} << 30, &clock_);
  AddRows(&open, "a", kT0, Tracks(0, 10));
  open.UpdateMemory(0, 0);
  // Few rows, no time passed, little growth: no walk, the estimate scales the last count (none).
  EXPECT_EQ(open.heap_recounts(), 0);
  EXPECT_EQ(open.MemoryBytes(), TableBytes(open));
  // A second of (fake) time later, the next update counts the rows not counted yet exactly.
  clock_.AdvanceMillis(1000);
  open.UpdateMemory(0, 0);
  EXPECT_EQ(open.heap_recounts(), 1);
  const size_t counted = open.MemoryBytes();
  EXPECT_GT(counted, TableBytes(open));  // the sparse HLL's heap table
  open.UpdateMemory(0, 0);
  EXPECT_EQ(open.heap_recounts(), 1);  // no rows since: nothing to do
  // Growth without new tiles is caught after kMinRowsPerCount rows at the latest.
  AddRows(&open, "a", kT0, Tracks(10, 10 + OpenTiles::kMinRowsPerCount - 1));
  open.UpdateMemory(0, 0);
  EXPECT_EQ(open.heap_recounts(), 1);
  EXPECT_EQ(open.MemoryBytes(), counted);  // estimated: no new tile, so no growth seen
  AddRows(&open, "a", kT0, Tracks(5000, 5001));
  open.UpdateMemory(0, 0);
  EXPECT_EQ(open.heap_recounts(), 2);
  EXPECT_GT(open.MemoryBytes(), counted);
}

TEST_F(OpenTilesTest, AShardThatWentQuietIsRecountedOnceItsCountIsOld) {
  OpenTiles open({view_}, 1, 1, size_t{1} << 30, &clock_);
  AddRows(&open, "a", kT0, Tracks(0, 10));
  open.UpdateMemory(0, 0);  // the round that added them: estimated, not counted
  EXPECT_EQ(open.heap_recounts(), 0);
  open.UpdateStaleMemory();  // no time passed: nothing to do
  EXPECT_EQ(open.heap_recounts(), 0);
  clock_.AdvanceMillis(1000);
  open.UpdateStaleMemory();  // no rows since, but uncounted ones: counted now
  EXPECT_EQ(open.heap_recounts(), 1);
  EXPECT_GT(open.MemoryBytes(), TableBytes(open));
  clock_.AdvanceMillis(1000);
  open.UpdateStaleMemory();  // everything counted: nothing to do
  EXPECT_EQ(open.heap_recounts(), 1);
}

TEST_F(OpenTilesTest, ArenaGrowthBeyondAFractionOfTheBudgetForcesARecount) {
  // Budget 16 KiB over 1 shard: a recount once the arena grew by more than 2 KiB.
  OpenTiles open({view_}, 1, 1, 16 * 1024, &clock_);
  for (int k = 0; k < 100; ++k) AddRows(&open, fmt::format("key-{}", k), kT0, Tracks(0, 1));
  open.UpdateMemory(0, 0);
  EXPECT_EQ(open.heap_recounts(), 1);
}

}  // namespace
}  // namespace tessera::engine
