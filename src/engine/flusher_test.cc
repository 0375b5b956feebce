#include "engine/flusher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "common/time_util.h"
#include "engine/engine_test_util.h"
#include "engine/lifetime.h"
#include "store/key_codec.h"
#include "store/memory/memory_tile_store.h"

namespace tessera::engine {
namespace {

using store::Resolution;

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z, a UTC day boundary
constexpr int64_t k5m = 5 * kMillisPerMinute;
constexpr int64_t kHour = kMillisPerHour;

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, ts TIMESTAMP) WITH (connector = 'file');
CREATE FEATURE VIEW s AS SELECT user_id, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY user_id;
CREATE FEATURE VIEW hourly WITH (tile = '1h') AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY user_id;
)sql";

using TileId = std::tuple<std::string, Resolution, int64_t>;
// (n, total) of each output tile.
using Tiles = std::map<TileId, std::pair<int64_t, int64_t>>;

class FlusherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = RegisterCatalog(&store_, kSql);
    ASSERT_NE(catalog_, nullptr);
    view_ = catalog_->FindView("s");
  }

  // The tiles of `out`'s runs, each run checked to be in strictly increasing key order.
  Tiles Decode(const ViewRuntime& view, const FlushOutput& out) {
    EXPECT_TRUE(out.tiles.empty());
    std::vector<std::pair<store::TileKey, std::string>> decoded;
    for (const store::TileRun& run : out.runs) {
      for (size_t i = 0; i < run.size(); ++i) {
        if (i > 0) {
          EXPECT_LT(run.key(i - 1), run.key(i)) << "tile " << i;
        }
        absl::StatusOr<store::TileKey> key = store::DecodeTileKey(run.key(i));
        EXPECT_TRUE(key.ok()) << key.status();
        if (key.ok()) decoded.emplace_back(*key, std::string(run.value(i)));
      }
    }
    Tiles tiles;
    lifetime_.clear();
    for (const auto& [key, raw] : decoded) {
      EXPECT_EQ(key.view_id, view.id);
      std::string_view bytes = raw;
      int64_t edge = 0;
      if (key.resolution == Resolution::kLifetime) {
        EXPECT_TRUE(DecodeLifetimeTile(raw, &edge, &bytes).ok());
      }
      tile::OwnedBlock block(*view.layout);
      EXPECT_TRUE(view.layout->Deserialize(bytes, block.data()).ok());
      const Value total = view.layout->agg(1).Finalize(block.data() + view.layout->offset(1));
      const std::pair<int64_t, int64_t> n_total(view.layout->agg(0).Finalize(block.data()).int64(),
                                                total.is_null() ? 0 : total.int64());
      if (key.resolution == Resolution::kLifetime) {
        lifetime_[key.entity_key] = {edge, n_total};
        continue;
      }
      tiles[{key.entity_key, key.resolution, key.start_ms}] = n_total;
    }
    return tiles;
  }

  static std::vector<TileId> Refs(const std::vector<RollupRef>& refs) {
    std::vector<TileId> out;
    out.reserve(refs.size());
    for (const RollupRef& r : refs) out.emplace_back(std::string(r.key), r.resolution, r.start_ms);
    std::sort(out.begin(), out.end());
    return out;
  }

  void Store(const ViewRuntime& view, const std::string& key, Resolution res, int64_t start,
             const std::string& bytes) {
    store::WriteBatch b;
    b.tiles.emplace_back(store::TileKey{view.id, key, res, start}, bytes);
    ASSERT_TRUE(store_.Write(b).ok());
  }

  store::MemoryTileStore store_;
  std::unique_ptr<CatalogStore> catalog_;
  const ViewRuntime* view_ = nullptr;
  // The lifetime tiles of the last Decode: key -> (edge, (n, total)).
  std::map<std::string, std::pair<int64_t, std::pair<int64_t, int64_t>>> lifetime_;
};

// Nothing stored: the deltas are the tiles. Hour 0 is closed (the watermark is at 1h): its
// rollup is written where it merges two tiles (a), not for one (b). Open slots are owed.
TEST_F(FlusherTest, FreshViewWritesDeltasAndTheRollupsOfClosedSlots) {
  TileShard shard(view_->layout.get());
  AddToShard(*view_, &shard, "a", kT0, {1, 2});
  AddToShard(*view_, &shard, "a", kT0 + k5m, {3});
  AddToShard(*view_, &shard, "a", kT0 + kHour, {4});
  AddToShard(*view_, &shard, "b", kT0, {5});
  FlushOutput out;
  FlushStats stats;
  ASSERT_TRUE(FlushShard(*view_, shard, &store_, kStoreHoldsNone, kT0 + kHour, &out, &stats).ok());
  EXPECT_EQ(Decode(*view_, out), (Tiles{
                                     {{"a", Resolution::kBase, kT0}, {2, 3}},
                                     {{"a", Resolution::kBase, kT0 + k5m}, {1, 3}},
                                     {{"a", Resolution::kBase, kT0 + kHour}, {1, 4}},
                                     {{"b", Resolution::kBase, kT0}, {1, 5}},
                                     {{"a", Resolution::kHour, kT0}, {3, 6}},
                                 }));
  EXPECT_EQ(Refs(out.owed), (std::vector<TileId>{{"a", Resolution::kHour, kT0 + kHour},
                                                 {"a", Resolution::kDay, kT0},
                                                 {"b", Resolution::kDay, kT0}}));
  EXPECT_TRUE(out.settled.empty());
  EXPECT_EQ(stats.base_tiles, 4);
  EXPECT_EQ(stats.rollup_tiles, 1);
  EXPECT_EQ(stats.merged_with_stored, 0);
}

// Stored tiles: base = stored ⊕ delta; a closed slot's rollup = its stored children ⊕ the
// deltas (the children do not hold this flush's rows yet), and it is settled.
TEST_F(FlusherTest, StoredViewIsReadMergeWrite) {
  Store(*view_, "a", Resolution::kBase, kT0, TileOf(*view_, {10}, kT0));
  Store(*view_, "a", Resolution::kBase, kT0 + 2 * k5m, TileOf(*view_, {1}, kT0 + 2 * k5m));
  TileShard shard(view_->layout.get());
  AddToShard(*view_, &shard, "a", kT0, {5});
  FlushOutput out;
  FlushStats stats;
  ASSERT_TRUE(FlushShard(*view_, shard, &store_, kStoreMayHoldAny, kT0 + kHour, &out, &stats).ok());
  EXPECT_EQ(Decode(*view_, out), (Tiles{
                                     {{"a", Resolution::kBase, kT0}, {2, 15}},
                                     {{"a", Resolution::kHour, kT0}, {3, 16}},
                                 }));
  EXPECT_EQ(Refs(out.settled), (std::vector<TileId>{{"a", Resolution::kHour, kT0}}));
  EXPECT_EQ(Refs(out.owed), (std::vector<TileId>{{"a", Resolution::kDay, kT0}}));
  EXPECT_EQ(stats.merged_with_stored, 1);

  // A stored rollup (a DB from an older version may hold one) is merged with the deltas.
  Store(*view_, "a", Resolution::kHour, kT0, TileOf(*view_, {100, 100}, kT0));
  FlushOutput again;
  ASSERT_TRUE(
      FlushShard(*view_, shard, &store_, kStoreMayHoldAny, kT0 + kHour, &again, &stats).ok());
  EXPECT_EQ(Decode(*view_, again)[TileId("a", Resolution::kHour, kT0)],
            std::make_pair(int64_t{3}, int64_t{205}));
}

TEST_F(FlusherTest, UnreadableStoredTileIsDataLoss) {
  Store(*view_, "a", Resolution::kBase, kT0, "\x09garbage");
  TileShard shard(view_->layout.get());
  AddToShard(*view_, &shard, "a", kT0, {5});
  FlushOutput out;
  FlushStats stats;
  absl::Status s = FlushShard(*view_, shard, &store_, kStoreMayHoldAny, kT0, &out, &stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("view 's' key 'a'"), std::string::npos) << s;
}

// With 1h tiles there are no hour rollups: a closed day is rolled up from the base tiles.
TEST_F(FlusherTest, HourTilesRollUpStraightIntoDays) {
  const ViewRuntime* hourly = catalog_->FindView("hourly");
  TileShard shard(hourly->layout.get());
  AddToShard(*hourly, &shard, "a", kT0, {1});
  AddToShard(*hourly, &shard, "a", kT0 + kHour, {2});
  FlushOutput out;
  FlushStats stats;
  ASSERT_TRUE(
      FlushShard(*hourly, shard, &store_, kStoreHoldsNone, kT0 + kMillisPerDay, &out, &stats).ok());
  EXPECT_EQ(Decode(*hourly, out), (Tiles{
                                      {{"a", Resolution::kBase, kT0}, {1, 1}},
                                      {{"a", Resolution::kBase, kT0 + kHour}, {1, 2}},
                                      {{"a", Resolution::kDay, kT0}, {2, 3}},
                                  }));
  EXPECT_TRUE(out.owed.empty());
}

// With stored_until_ms = kT0, only tiles and slots starting at or before kT0 are read: later ones
// are written from the deltas (the flusher trusts the bound: a tile stored after it is not read),
// and a later closed slot's rollup follows the fresh rule.
TEST_F(FlusherTest, ReadsOnlyUpToStoredUntil) {
  Store(*view_, "a", Resolution::kBase, kT0, TileOf(*view_, {10}, kT0));
  Store(*view_, "b", Resolution::kBase, kT0 + kHour, TileOf(*view_, {100}, kT0 + kHour));
  TileShard shard(view_->layout.get());
  AddToShard(*view_, &shard, "a", kT0, {5});
  AddToShard(*view_, &shard, "a", kT0 + k5m, {1});
  AddToShard(*view_, &shard, "b", kT0 + kHour, {2});
  AddToShard(*view_, &shard, "b", kT0 + kHour + k5m, {3});
  FlushOutput out;
  FlushStats stats;
  ASSERT_TRUE(FlushShard(*view_, shard, &store_, kT0, kT0 + 2 * kHour, &out, &stats).ok());
  EXPECT_EQ(Decode(*view_, out), (Tiles{
                                     {{"a", Resolution::kBase, kT0}, {2, 15}},
                                     {{"a", Resolution::kBase, kT0 + k5m}, {1, 1}},
                                     {{"a", Resolution::kHour, kT0}, {3, 16}},
                                     {{"b", Resolution::kBase, kT0 + kHour}, {1, 2}},
                                     {{"b", Resolution::kBase, kT0 + kHour + k5m}, {1, 3}},
                                     {{"b", Resolution::kHour, kT0 + kHour}, {2, 5}},
                                 }));
  EXPECT_EQ(Refs(out.settled), (std::vector<TileId>{{"a", Resolution::kHour, kT0}}));
  EXPECT_EQ(Refs(out.owed),
            (std::vector<TileId>{{"a", Resolution::kDay, kT0}, {"b", Resolution::kDay, kT0}}));
  EXPECT_EQ(stats.merged_with_stored, 1);
}

// Runs are in store key order: by the encoded key (its varint length first, so a 200-byte key
// sorts before a 128-byte one), then resolution, then start; every tile is there once.
TEST_F(FlusherTest, RunsAreInStoreKeyOrder) {
  TileShard shard(view_->layout.get());
  Tiles want;
  int64_t n = 0;
  for (size_t len : {1, 2, 15, 16, 17, 127, 128, 129, 200, 255, 256, 300}) {
    for (char c : {'a', 'z'}) {
      const std::string key(len, c);
      for (int64_t start : {kT0 + k5m, kT0 - kHour, kT0}) {
        ++n;
        AddToShard(*view_, &shard, key, start, {n});
        want[{key, Resolution::kBase, start}] = {1, n};
      }
    }
  }
  for (bool fresh : {true, false}) {
    FlushOutput out;
    FlushStats stats;
    ASSERT_TRUE(FlushShard(*view_, shard, &store_, fresh ? kStoreHoldsNone : kStoreMayHoldAny, kT0,
                           &out, &stats)
                    .ok());
    ASSERT_EQ(out.runs.size(), 1u);
    Tiles got = Decode(*view_, out);
    // The closed hour before kT0 holds one tile per key: no rollup (fresh), or one (stored).
    std::erase_if(got, [](const auto& t) { return std::get<1>(t.first) != Resolution::kBase; });
    EXPECT_EQ(got, want) << "fresh " << fresh;
  }
}

// With nothing stored, a key gets its lifetime tile when it has rows before the edge (the end
// of the newest day the watermark closed): "b" has, "a" has not. Once the store holds tiles,
// every flushed key without a tile gets one, empty or not.
TEST_F(FlusherTest, FreshKeysGetALifetimeTile) {
  TileShard shard(view_->layout.get());
  AddToShard(*view_, &shard, "a", kT0 + kHour, {4});
  AddToShard(*view_, &shard, "b", kT0 - kHour, {6});
  AddToShard(*view_, &shard, "b", kT0 + kHour, {7});
  FlushOutput out;
  FlushStats stats;
  ASSERT_TRUE(
      FlushShard(*view_, shard, &store_, kStoreHoldsNone, kT0 + 2 * kHour, &out, &stats).ok());
  Decode(*view_, out);
  using Entry = std::pair<int64_t, std::pair<int64_t, int64_t>>;
  EXPECT_FALSE(lifetime_.contains("a"));
  EXPECT_EQ(lifetime_["b"], Entry(kT0, {1, 6}));
  EXPECT_EQ(stats.lifetime_tiles, 1);
  FlushOutput stored;
  ASSERT_TRUE(
      FlushShard(*view_, shard, &store_, kStoreMayHoldAny, kT0 + 2 * kHour, &stored, &stats).ok());
  Decode(*view_, stored);
  EXPECT_EQ(lifetime_["a"], Entry(kT0, {0, 0}));
  // No watermark yet: no edge, no lifetime tile.
  FlushOutput none;
  ASSERT_TRUE(FlushShard(*view_, shard, &store_, kStoreHoldsNone,
                         std::numeric_limits<int64_t>::min(), &none, &stats)
                  .ok());
  Decode(*view_, none);
  EXPECT_TRUE(lifetime_.empty());
}

// A closed day moves the edge: the stored lifetime tile ⊕ the day's stored tiles (rollups where
// there are, finer tiles elsewhere) ⊕ this flush's deltas before the new edge.
TEST_F(FlusherTest, LifetimeTileFoldsTheClosedDays) {
  const int64_t day = kMillisPerDay;
  std::string old;
  tile::OwnedBlock block(*view_->layout);
  ASSERT_TRUE(view_->layout->Deserialize(TileOf(*view_, {1000}, kT0 - day), block.data()).ok());
  EncodeLifetimeTile(kT0, *view_->layout, block.data(), &old);
  Store(*view_, "a", Resolution::kLifetime, kLifetimeTileStart, old);
  Store(*view_, "a", Resolution::kBase, kT0, TileOf(*view_, {1}, kT0));
  Store(*view_, "a", Resolution::kBase, kT0 + kHour, TileOf(*view_, {2}, kT0 + kHour));
  Store(*view_, "a", Resolution::kHour, kT0 + kHour, TileOf(*view_, {2}, kT0 + kHour));
  Store(*view_, "a", Resolution::kDay, kT0 + day, TileOf(*view_, {30, 40}, kT0 + day));
  Store(*view_, "a", Resolution::kBase, kT0 + day, TileOf(*view_, {30, 40}, kT0 + day));
  Store(*view_, "a", Resolution::kBase, kT0 + 3 * day, TileOf(*view_, {500}, kT0 + 3 * day));
  TileShard shard(view_->layout.get());
  AddToShard(*view_, &shard, "a", kT0 + 3 * day + kHour, {7});
  FlushOutput out;
  FlushStats stats;
  // Watermark on day 3: days 0..2 are closed, so the edge moves from kT0 to kT0 + 3d.
  ASSERT_TRUE(
      FlushShard(*view_, shard, &store_, kStoreMayHoldAny, kT0 + 3 * day + 2 * kHour, &out, &stats)
          .ok());
  Decode(*view_, out);
  using Entry = std::pair<int64_t, std::pair<int64_t, int64_t>>;
  EXPECT_EQ(lifetime_["a"], Entry(kT0 + 3 * day, {1 + 1 + 1 + 2, 1000 + 1 + 2 + 70}));

  // Nothing new before the edge and the same edge: not rewritten.
  ASSERT_TRUE(store_
                  .Write([&] {
                    store::WriteBatch b;
                    for (const store::TileRun& run : out.runs) b.tile_runs.push_back(run);
                    return b;
                  }())
                  .ok());
  FlushOutput again;
  ASSERT_TRUE(FlushShard(*view_, shard, &store_, kStoreMayHoldAny, kT0 + 3 * day + 2 * kHour,
                         &again, &stats)
                  .ok());
  Decode(*view_, again);
  EXPECT_FALSE(lifetime_.contains("a"));
}

// Deltas behind a stored edge (its watermark ran further than this flush's) are added to it.
TEST_F(FlusherTest, DeltasBehindTheStoredEdgeJoinTheLifetimeTile) {
  const int64_t day = kMillisPerDay;
  std::string old;
  tile::OwnedBlock block(*view_->layout);
  ASSERT_TRUE(view_->layout->Deserialize(TileOf(*view_, {1000}, kT0), block.data()).ok());
  EncodeLifetimeTile(kT0 + 5 * day, *view_->layout, block.data(), &old);
  Store(*view_, "a", Resolution::kLifetime, kLifetimeTileStart, old);
  TileShard shard(view_->layout.get());
  AddToShard(*view_, &shard, "a", kT0 + day, {3});
  AddToShard(*view_, &shard, "a", kT0 + 6 * day, {4});  // after the edge: not in it
  FlushOutput out;
  FlushStats stats;
  ASSERT_TRUE(
      FlushShard(*view_, shard, &store_, kStoreMayHoldAny, kT0 + day + kHour, &out, &stats).ok());
  Decode(*view_, out);
  using Entry = std::pair<int64_t, std::pair<int64_t, int64_t>>;
  EXPECT_EQ(lifetime_["a"], Entry(kT0 + 5 * day, {2, 1003}));
}

}  // namespace
}  // namespace tessera::engine
