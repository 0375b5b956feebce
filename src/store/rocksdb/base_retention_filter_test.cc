#include "store/rocksdb/base_retention_filter.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/clock.h"
#include "common/time_util.h"
#include "store/meta_keys.h"
#include "store/rocksdb/rocksdb_tile_store.h"

namespace tessera::store {
namespace {

using rocksdb_internal::kRetentionClockSlackMs;

constexpr int64_t kDay0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr int64_t kHour = kMillisPerHour;
constexpr int64_t kDay = kMillisPerDay;
constexpr int64_t k5m = 5 * kMillisPerMinute;
constexpr int64_t kRetention = 7 * kDay;
constexpr uint32_t kView = 3;

using Tile = std::tuple<std::string, Resolution, int64_t>;  // (entity key, resolution, start)

class BaseRetentionFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/retention_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  RocksDbOptions Options(std::optional<int64_t> retention) {
    RocksDbOptions o;
    o.block_cache_bytes = 8 << 20;
    o.write_buffer_bytes = 64 << 10;
    o.base_retention_ms = retention;
    o.clock = &clock_;
    return o;
  }
  void Open(std::optional<int64_t> retention) {
    store_.reset();
    auto s = RocksDbTileStore::Open(dir_, Options(retention));
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }

  void Put(const std::vector<Tile>& tiles, uint32_t view = kView) {
    WriteBatch b;
    for (const auto& [key, res, start] : tiles) {
      b.tiles.emplace_back(TileKey{view, key, res, start}, "tile@" + std::to_string(start));
    }
    ASSERT_TRUE(store_->Write(b).ok());
    ASSERT_TRUE(store_->Sync().ok());
  }

  // Every stored tile of `key` in [from, to) at each resolution.
  std::set<Tile> Stored(const std::string& key, int64_t from, int64_t to, uint32_t view = kView) {
    std::set<Tile> out;
    for (Resolution res : {Resolution::kBase, Resolution::kHour, Resolution::kDay}) {
      EXPECT_TRUE(store_
                      ->Scan(view, key, res, from, to,
                             [&](int64_t start, std::string_view) { out.emplace(key, res, start); })
                      .ok());
    }
    return out;
  }

  // The old day (ended long before the cutoff) and a layout of tiles in it:
  //   hour 0: two base tiles and their hour rollup            -> base tiles dropped
  //   hour 1: two base tiles, no hour rollup (owed, say)      -> kept
  //   hour 2: one base tile, only the day rollup covers it    -> kept (no hour rollup)
  //   day rollup of the day
  std::vector<Tile> OldDay(const std::string& key, int64_t day) {
    return {{key, Resolution::kBase, day},
            {key, Resolution::kBase, day + k5m},
            {key, Resolution::kHour, day},
            {key, Resolution::kBase, day + kHour},
            {key, Resolution::kBase, day + kHour + k5m},
            {key, Resolution::kBase, day + 2 * kHour + 10 * k5m},
            {key, Resolution::kDay, day}};
  }

  FakeClock clock_{kDay0 + 30 * kDay + 5 * kHour};
  std::string dir_;
  std::unique_ptr<RocksDbTileStore> store_;
};

// Base tiles of an expired day go once their hour rollup is stored; everything else stays: base
// tiles of hours without an hour rollup (a day rollup is not enough), of young days, rollups,
// metadata.
TEST_F(BaseRetentionFilterTest, DropsExpiredBaseTilesCoveredByAnHourRollupOnly) {
  Open(kRetention);
  const int64_t old_day = kDay0 + 10 * kDay;
  const int64_t young_day = kDay0 + 25 * kDay;  // ended 4d 5h ago: inside the retention
  Put(OldDay("a", old_day));
  Put(OldDay("a", young_day));
  // Same layout without any rollup, for a key whose bytes extend "a" (the length prefix keeps
  // "a"'s rollups from covering it).
  Put({{"ab", Resolution::kBase, old_day}, {"ab", Resolution::kBase, old_day + k5m}});
  // Another view holds the hour rollup of "ab": it covers nothing of view kView.
  Put({{"ab", Resolution::kHour, old_day}}, kView + 1);
  WriteBatch meta;
  meta.meta.emplace_back("test/marker", "1");
  ASSERT_TRUE(store_->Write(meta).ok());

  ASSERT_TRUE(store_->CompactAll().ok());

  std::set<Tile> want;
  for (const Tile& t : OldDay("a", old_day)) want.insert(t);
  want.erase({"a", Resolution::kBase, old_day});
  want.erase({"a", Resolution::kBase, old_day + k5m});
  EXPECT_EQ(Stored("a", old_day, old_day + kDay), want);
  std::set<Tile> young;
  for (const Tile& t : OldDay("a", young_day)) young.insert(t);
  EXPECT_EQ(Stored("a", young_day, young_day + kDay), young);
  EXPECT_EQ(Stored("ab", old_day, old_day + kDay).size(), 2u);
  EXPECT_EQ(Stored("ab", old_day, old_day + kDay, kView + 1).size(), 1u);
  EXPECT_EQ(store_->GetMeta("test/marker")->value_or(""), "1");
  EXPECT_EQ(store_->base_tiles_dropped(), 2u);

  // Once the owed rollup of hour 1 is written, the next compaction drops its base tiles too.
  Put({{"a", Resolution::kHour, old_day + kHour}});
  ASSERT_TRUE(store_->CompactAll().ok());
  want.erase({"a", Resolution::kBase, old_day + kHour});
  want.erase({"a", Resolution::kBase, old_day + kHour + k5m});
  want.insert({"a", Resolution::kHour, old_day + kHour});
  EXPECT_EQ(Stored("a", old_day, old_day + kDay), want);
  EXPECT_EQ(store_->base_tiles_dropped(), 4u);
}

// A rollup still in the memtable counts (the filter's Get reads the latest state), and base
// tiles rewritten after their rollup are dropped as well.
TEST_F(BaseRetentionFilterTest, RollupInTheMemtableCovers) {
  Open(kRetention);
  const int64_t old_day = kDay0;
  Put({{"k", Resolution::kBase, old_day + 3 * kHour}});
  WriteBatch b;  // not synced: stays in the memtable until CompactAll flushes it
  b.tiles.emplace_back(TileKey{kView, "k", Resolution::kHour, old_day + 3 * kHour}, "h");
  ASSERT_TRUE(store_->Write(b).ok());
  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_EQ(Stored("k", old_day, old_day + kDay),
            (std::set<Tile>{{"k", Resolution::kHour, old_day + 3 * kHour}}));
}

// The day must have ended R + the clock slack ago: exactly R is not enough.
TEST_F(BaseRetentionFilterTest, CutoffIsTheDayEndPlusRetentionPlusSlack) {
  Open(kRetention);
  const int64_t day = kDay0 + 20 * kDay;
  Put({{"k", Resolution::kBase, day + 23 * kHour + 11 * k5m}, {"k", Resolution::kHour, day}});
  Put({{"k", Resolution::kBase, day + 23 * kHour}, {"k", Resolution::kHour, day + 23 * kHour}});
  clock_.SetMillis(day + kDay + kRetention + kRetentionClockSlackMs - 1);
  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_EQ(store_->base_tiles_dropped(), 0u);
  clock_.SetMillis(day + kDay + kRetention + kRetentionClockSlackMs);
  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_EQ(
      Stored("k", day, day + kDay),
      (std::set<Tile>{{"k", Resolution::kHour, day}, {"k", Resolution::kHour, day + 23 * kHour}}));
}

// Without a retention (option 0, or no setting in the DB) nothing is dropped.
TEST_F(BaseRetentionFilterTest, NoRetentionKeepsEverything) {
  for (std::optional<int64_t> r : {std::optional<int64_t>(0), std::optional<int64_t>()}) {
    Open(r);
    Put(OldDay("a", kDay0));
    ASSERT_TRUE(store_->CompactAll().ok());
    EXPECT_EQ(Stored("a", kDay0, kDay0 + kDay).size(), OldDay("a", kDay0).size());
    EXPECT_EQ(store_->base_retention_ms(), 0);
  }
}

// By default the store follows the DB's setting: read at Open, and applied as soon as a Write
// sets it; an explicit option overrides it.
TEST_F(BaseRetentionFilterTest, FollowsTheDbSetting) {
  Open(std::nullopt);
  Put(OldDay("a", kDay0));
  WriteBatch set;
  set.meta.emplace_back(std::string(meta::kBaseRetentionKey), std::to_string(kRetention));
  ASSERT_TRUE(store_->Write(set).ok());
  EXPECT_EQ(store_->base_retention_ms(), kRetention);
  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_EQ(store_->base_tiles_dropped(), 2u);

  Put(OldDay("b", kDay0));
  Open(std::nullopt);  // reopened: read from the metadata
  EXPECT_EQ(store_->base_retention_ms(), kRetention);
  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_EQ(store_->base_tiles_dropped(), 2u);
  EXPECT_EQ(Stored("b", kDay0, kDay0 + kDay).size(), OldDay("b", kDay0).size() - 2);

  Put(OldDay("c", kDay0));
  Open(0);  // the option wins
  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_EQ(store_->base_tiles_dropped(), 0u);
  ASSERT_TRUE(store_->Write(set).ok());
  EXPECT_EQ(store_->base_retention_ms(), 0);

  Open(std::nullopt);  // deleting the setting turns the retention off
  WriteBatch del;
  del.meta_deletes.emplace_back(meta::kBaseRetentionKey);
  ASSERT_TRUE(store_->Write(del).ok());
  EXPECT_EQ(store_->base_retention_ms(), 0);
}

TEST_F(BaseRetentionFilterTest, MalformedSettingFailsOpenAndReadOnlyStoresNeverCompact) {
  Open(std::nullopt);
  Put(OldDay("a", kDay0));
  WriteBatch set;
  set.meta.emplace_back(std::string(meta::kBaseRetentionKey), "7d");
  ASSERT_TRUE(store_->Write(set).ok());
  EXPECT_EQ(store_->base_retention_ms(), 0);  // a value that does not parse keeps every tile
  store_.reset();
  auto bad = RocksDbTileStore::Open(dir_, Options(std::nullopt));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
  EXPECT_NE(bad.status().message().find("store/base_retention_ms"), std::string::npos);

  RocksDbOptions ro = Options(kRetention);
  ro.read_only = true;
  auto reader = RocksDbTileStore::Open(dir_, ro);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->base_retention_ms(), 0);
  EXPECT_EQ((*reader)->CompactAll().code(), absl::StatusCode::kFailedPrecondition);
}

// Keys outside the supported time range, or not tiles, are never touched.
TEST_F(BaseRetentionFilterTest, KeepsTilesOutsideTheTimeRange) {
  Open(kRetention);
  const int64_t far = std::numeric_limits<int64_t>::min();
  Put({{"k", Resolution::kBase, far}, {"k", Resolution::kHour, AlignDown(far / 2, kHour)}});
  Put({{"k", Resolution::kBase, kMinTimestampMs}, {"k", Resolution::kHour, kMinTimestampMs}});
  ASSERT_TRUE(store_->CompactAll().ok());
  EXPECT_EQ(store_->base_tiles_dropped(), 1u);  // only the one at kMinTimestampMs
  std::set<Tile> base;
  ASSERT_TRUE(store_
                  ->Scan(kView, "k", Resolution::kBase, far, kDay0,
                         [&](int64_t start, std::string_view) {
                           base.emplace("k", Resolution::kBase, start);
                         })
                  .ok());
  EXPECT_EQ(base, (std::set<Tile>{{"k", Resolution::kBase, far}}));
}

}  // namespace
}  // namespace tessera::store
