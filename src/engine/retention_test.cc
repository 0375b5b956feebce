#include "engine/retention.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/errors.h"
#include "engine/backfill.h"
#include "engine/catalog_store.h"
#include "engine/feature_reader.h"
#include "store/memory/memory_tile_store.h"
#include "store/meta_keys.h"
#include "store/rocksdb/rocksdb_tile_store.h"

namespace tessera::engine {
namespace {

constexpr int64_t kHour = kMillisPerHour;
constexpr int64_t kDay = kMillisPerDay;

TEST(BaseRetentionTest, ZeroOrWholeHoursOfAtLeastTwoDays) {
  for (int64_t ms : {int64_t{0}, 2 * kDay, 49 * kHour, 30 * kDay, kMaxDurationMs}) {
    EXPECT_TRUE(ValidateBaseRetention(ms).ok()) << ms;
  }
  for (int64_t ms : {int64_t{-1}, -2 * kDay, int64_t{1}, kHour, 2 * kDay - kHour,
                     2 * kDay + kMillisPerMinute, 30 * kDay + 1, kMaxDurationMs + kHour}) {
    const absl::Status s = ValidateBaseRetention(ms);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << ms;
    EXPECT_NE(s.message().find("whole number of hours"), std::string::npos) << s;
    EXPECT_NE(s.message().find(std::to_string(ms)), std::string::npos) << s;
  }
}

TEST(BaseRetentionTest, SetAndLoad) {
  store::MemoryTileStore store;
  EXPECT_EQ(*LoadBaseRetention(&store), 0);  // none set
  EXPECT_TRUE(SetBaseRetention(&store, 0).ok());
  EXPECT_EQ(store.GetMeta(store::meta::kBaseRetentionKey)->has_value(), false);  // no-op
  EXPECT_EQ(SetBaseRetention(&store, kDay).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*LoadBaseRetention(&store), 0);

  ASSERT_TRUE(SetBaseRetention(&store, 30 * kDay).ok());
  EXPECT_EQ(*LoadBaseRetention(&store), 30 * kDay);
  EXPECT_EQ(store.GetMeta(store::meta::kBaseRetentionKey)->value_or(""), "2592000000");
  EXPECT_TRUE(SetBaseRetention(&store, 30 * kDay).ok());  // the same again

  // Raising or removing it would make readers trust base tiles that may be gone.
  for (int64_t ms : {int64_t{0}, 31 * kDay}) {
    const absl::Status s = SetBaseRetention(&store, ms);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_NE(s.message().find("30d"), std::string::npos) << s;
  }
  ASSERT_TRUE(SetBaseRetention(&store, 7 * kDay).ok());  // lowering is fine
  EXPECT_EQ(*LoadBaseRetention(&store), 7 * kDay);
}

TEST(BaseRetentionTest, UnreadableStoredValueIsDataLoss) {
  for (std::string_view bad : {"30d", "-1", "007", "3600000", "172800001"}) {
    store::MemoryTileStore store;
    store::WriteBatch b;
    b.meta.emplace_back(std::string(store::meta::kBaseRetentionKey), std::string(bad));
    ASSERT_TRUE(store.Write(b).ok());
    const absl::StatusOr<int64_t> r = LoadBaseRetention(&store);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << bad;
    EXPECT_NE(r.status().message().find("store/base_retention_ms"), std::string::npos);
    EXPECT_EQ(SetBaseRetention(&store, 7 * kDay).code(), absl::StatusCode::kDataLoss) << bad;
  }
}

TEST(BaseRetentionTest, KeptFromIsTheDayOfNowMinusRetention) {
  constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
  EXPECT_EQ(BaseTilesKeptFrom(kT0 + 9 * kDay + 7 * kHour, 2 * kDay), kT0 + 7 * kDay);
  EXPECT_EQ(BaseTilesKeptFrom(kT0 + 9 * kDay, 2 * kDay), kT0 + 7 * kDay);
  EXPECT_EQ(BaseTilesKeptFrom(kT0 + 9 * kDay - 1, 2 * kDay), kT0 + 6 * kDay);
}

// End to end over RocksDB: a backfill of 10 days (flushing often: fresh, read-merge-write and
// owed-rollup paths all write rollups, and hours with a single tile get none), then a compaction
// under a 7-day retention drops the base tiles it may. Every read then answers exactly what the
// same read answers over an in-memory copy that kept every base tile, with the same retention
// (same rounding); reads whose tails are on hours or young also equal reads without retention.
TEST(BaseRetentionTest, RocksDbCompactionThenReadsMatchAFullStore) {
  constexpr int64_t kT0 = 1'767'225'600'000;
  constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE) WITH (connector = 'file');
CREATE FEATURE VIEW stats AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total, MAX(v) AS top, SUM(v) * 1.0 / COUNT(*) AS mean
FROM ev GROUP BY user_id;
)sql";
  const std::string dir = ::testing::TempDir() + "/retention_e2e";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string input = dir + "/events.ndjson";
  {
    // Dense on even days (an event every 5 minutes on average), sparse on odd ones (every 45):
    // some hours hold many tiles of a user, some one, some none.
    std::mt19937 rng(7);
    std::ofstream out(input);
    int64_t ts = kT0;
    while (ts < kT0 + 10 * kDay) {
      const int64_t max_gap = ((ts - kT0) / kDay) % 2 == 0 ? 10 : 90;
      ts += static_cast<int64_t>(rng() % (max_gap * kMillisPerMinute));
      const int64_t jitter = static_cast<int64_t>(rng() % (5 * kMillisPerMinute));
      out << fmt::format(R"({{"user_id":"u{}","v":{},"ts":{}}})", rng() % 3, rng() % 1000,
                         ts - jitter)
          << "\n";
    }
  }
  // "now" is day 17, 05:00: with R = 7d readers trust base tiles from day 10 on; the filter (an
  // hour of slack) drops them before day 10 too, since 17d 05:00 - 7d - 1h is still in day 10.
  FakeClock clock(kT0 + 17 * kDay + 5 * kHour);
  const int64_t retention = 7 * kDay;

  store::RocksDbOptions ro;
  ro.write_buffer_bytes = 64 << 10;
  ro.clock = &clock;
  auto opened = store::RocksDbTileStore::Open(dir + "/db", ro);
  ASSERT_TRUE(opened.ok()) << opened.status();
  store::RocksDbTileStore& rocks = **opened;
  store::MemoryTileStore full;
  std::vector<std::unique_ptr<CatalogStore>> catalogs;
  for (store::TileStore* store :
       {static_cast<store::TileStore*>(&rocks), static_cast<store::TileStore*>(&full)}) {
    ASSERT_TRUE(SetBaseRetention(store, retention).ok());
    auto cs = CatalogStore::Load(store);
    ASSERT_TRUE(cs.ok()) << cs.status();
    ASSERT_TRUE((*cs)->Register(kSql).ok());
    BackfillOptions o;
    o.inputs = {input};
    o.chunk_bytes = 4096;
    o.pipeline.threads = 2;
    o.pipeline.memory_budget_bytes = 32 << 10;
    o.pipeline.rollups_per_flush = 7;
    auto summary = RunBackfill(store, cs->get(), o);
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->counters.late, 0);
    catalogs.push_back(std::move(*cs));
  }
  EXPECT_EQ(rocks.base_retention_ms(), retention);  // followed from SetBaseRetention
  ASSERT_TRUE(rocks.CompactAll().ok());
  EXPECT_GT(rocks.base_tiles_dropped(), 500u);
  ASSERT_EQ(*LoadBaseRetention(&rocks), retention);

  const ViewRuntime* view = catalogs[0]->FindView("stats");
  ASSERT_NE(view, nullptr);
  ASSERT_EQ(view->id, catalogs[1]->FindView("stats")->id);
  // With a retention the flushes roll up every closed hour, a single base tile too: no base
  // tile of an expired day survives.
  int64_t old_base = 0;
  ASSERT_TRUE(rocks
                  .Scan(view->id, "u1", store::Resolution::kBase, kT0, kT0 + 9 * kDay,
                        [&](int64_t, std::string_view) { ++old_base; })
                  .ok());
  EXPECT_EQ(old_base, 0);

  auto read = [&](store::TileStore* store, int64_t r, const std::string& key, int64_t at,
                  const std::string& windows) {
    FeatureReader reader(view, store,
                         FeatureReaderOptions{.base_retention_ms = r, .clock = &clock});
    auto specs = ParseWindows(windows, view->def->tile_ms);
    EXPECT_TRUE(specs.ok()) << specs.status();
    auto result = reader.Read(key, at, *specs);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->ToJson(*view->def) : std::string();
  };
  const std::string windows = "5m,1h,6h,1d,3d,7d,9d,125m";
  int rounded = 0;
  for (const std::string& key : std::vector<std::string>{"u0", "u1", "u2"}) {
    for (int64_t at = kT0 + kDay; at <= kT0 + 11 * kDay; at += 7 * kHour + 35 * kMillisPerMinute) {
      const std::string got = read(&rocks, retention, key, at, windows);
      EXPECT_EQ(got, read(&full, retention, key, at, windows)) << key << " at " << at;
      if (got.find("tail_from") != std::string::npos) ++rounded;
    }
    // Tails on hours (and `at` after the cutoff): exactly the full store without retention.
    for (int64_t at : {kT0 + 10 * kDay, kT0 + 10 * kDay + 5 * kHour, kT0 + 11 * kDay}) {
      EXPECT_EQ(read(&rocks, retention, key, at, "1h,6h,1d,3d,7d,9d"),
                read(&full, 0, key, at, "1h,6h,1d,3d,7d,9d"))
          << key << " at " << at;
    }
  }
  EXPECT_GT(rounded, 10);
  // `all` (engine/lifetime.h): the lifetime tile is never deleted, and the rollups below its edge
  // (or, for an `at` before it, from the start) stand for the dropped base tiles.
  for (const std::string& key : std::vector<std::string>{"u0", "u1", "u2"}) {
    for (int64_t at : {kT0 + 2 * kDay, kT0 + 9 * kDay + 3 * kHour, kT0 + 10 * kDay,
                       kT0 + 10 * kDay + 5 * kHour, kT0 + 30 * kDay}) {
      const std::string got = read(&rocks, retention, key, at, "1h,all");
      EXPECT_EQ(got, read(&full, 0, key, at, "1h,all")) << key << " at " << at;
      EXPECT_NE(got.find("\"all\":{\"n\":"), std::string::npos) << got;
    }
  }
  // The rounding is what keeps them equal: a reader unaware of the retention misses rows.
  int wrong = 0;
  for (int64_t at = kT0 + kDay; at <= kT0 + 11 * kDay; at += 7 * kHour + 35 * kMillisPerMinute) {
    if (read(&rocks, 0, "u0", at, windows) != read(&full, 0, "u0", at, windows)) ++wrong;
  }
  EXPECT_GT(wrong, 5);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tessera::engine
