#include "engine/rollups.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/hash.h"
#include "common/time_util.h"
#include "engine/engine_test_util.h"
#include "engine/feature_reader.h"
#include "engine/ingest_pipeline.h"
#include "store/memory/memory_tile_store.h"
#include "store/meta_keys.h"
#include "tile/tile_math.h"

namespace tessera::engine {
namespace {

using store::Resolution;

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr int64_t k5m = 5 * kMillisPerMinute;

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '10' MINUTE) WITH (connector = 'file');
CREATE FEATURE VIEW stats AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY user_id;
)sql";

RollupRef Ref(uint32_t view, Resolution res, int64_t start, std::string_view key) {
  return RollupRef{view, res, start, key, Hash64(key)};
}

size_t MetaCount(store::TileStore* store, std::string_view prefix) {
  size_t n = 0;
  EXPECT_TRUE(store->ScanMeta(prefix, [&](std::string_view, std::string_view) { ++n; }).ok());
  return n;
}

TEST(PendingRollups, OweWritesOneMarkerPerSlotAndKey) {
  store::MemoryTileStore store;
  PendingRollups pending(&store);
  ASSERT_TRUE(pending.Load({1}).ok());
  store::WriteBatch batch;
  pending.Owe(Ref(1, Resolution::kHour, kT0, "a"), &batch);
  pending.Owe(Ref(1, Resolution::kHour, kT0, "a"), &batch);  // again: nothing new
  pending.Owe(Ref(1, Resolution::kDay, kT0, "a"), &batch);
  pending.Owe(Ref(1, Resolution::kHour, kT0, "b|c"), &batch);
  ASSERT_EQ(batch.meta.size(), 3u);
  EXPECT_EQ(batch.meta[0].first, store::meta::OwedRollupKey(1, Resolution::kHour, kT0, "a"));
  EXPECT_EQ(pending.size(), 3u);
  EXPECT_TRUE(pending.Owes(Ref(1, Resolution::kHour, kT0, "a")));
  EXPECT_TRUE(pending.Owes(Ref(1, Resolution::kDay, kT0, "a")));
  EXPECT_FALSE(pending.Owes(Ref(1, Resolution::kHour, kT0 + kMillisPerHour, "a")));
  EXPECT_FALSE(pending.Owes(Ref(1, Resolution::kDay, kT0, "b|c")));
  EXPECT_FALSE(pending.Owes(Ref(2, Resolution::kHour, kT0, "a")));
  ASSERT_TRUE(store.Write(batch).ok());

  // A restart reloads them; a settled one is deleted.
  PendingRollups reloaded(&store);
  ASSERT_TRUE(reloaded.Load({1}).ok());
  EXPECT_EQ(reloaded.size(), 3u);
  store::WriteBatch more;
  reloaded.Owe(Ref(1, Resolution::kHour, kT0, "a"), &more);
  EXPECT_TRUE(more.meta.empty());
  EXPECT_TRUE(reloaded.Owes(Ref(1, Resolution::kHour, kT0, "b|c")));
  reloaded.Settle(Ref(1, Resolution::kHour, kT0, "a"), &more);
  reloaded.Settle(Ref(1, Resolution::kHour, kT0, "zz"), &more);  // never owed: nothing
  ASSERT_EQ(more.meta_deletes.size(), 1u);
  EXPECT_EQ(reloaded.size(), 2u);
  EXPECT_FALSE(reloaded.Owes(Ref(1, Resolution::kHour, kT0, "a")));
}

TEST(PendingRollups, TakeClosedHandsOutClosedSlotsOldestFirstWithinTheLimit) {
  store::MemoryTileStore store;
  PendingRollups pending(&store);
  ASSERT_TRUE(pending.Load({1, 2}).ok());
  store::WriteBatch batch;
  for (const char* key : {"a", "b", "c"}) {
    pending.Owe(Ref(1, Resolution::kHour, kT0 + kMillisPerHour, key), &batch);
  }
  pending.Owe(Ref(2, Resolution::kHour, kT0, "x"), &batch);
  pending.Owe(Ref(1, Resolution::kDay, kT0, "a"), &batch);
  ASSERT_TRUE(store.Write(batch).ok());

  EXPECT_FALSE(pending.HasClosed(kT0 + kMillisPerHour - 1));
  EXPECT_TRUE(pending.HasClosed(kT0 + kMillisPerHour));
  std::vector<OwedRollup> taken;
  store::WriteBatch deletes;
  // Only the first hour has ended by kT0 + 1h + 59m.
  ASSERT_TRUE(pending.TakeClosed(kT0 + 2 * kMillisPerHour - 1, 10, &taken, &deletes).ok());
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].view_id, 2u);
  EXPECT_EQ(taken[0].key, "x");
  // The next hour, two at a time.
  taken.clear();
  ASSERT_TRUE(pending.TakeClosed(kT0 + 2 * kMillisPerHour, 2, &taken, &deletes).ok());
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0].key, "a");
  EXPECT_EQ(taken[1].key, "b");
  taken.clear();
  ASSERT_TRUE(pending.TakeClosed(kT0 + 2 * kMillisPerHour, 2, &taken, &deletes).ok());
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].key, "c");
  EXPECT_FALSE(pending.HasClosed(kT0 + 2 * kMillisPerHour));
  EXPECT_EQ(pending.size(), 1u);  // the day
  EXPECT_EQ(deletes.meta_deletes.size(), 4u);
  ASSERT_TRUE(store.Write(deletes).ok());
  EXPECT_EQ(MetaCount(&store, "rollup/owed/"), 1u);
}

TEST(PendingRollups, CorruptMarkerIsDataLoss) {
  store::MemoryTileStore store;
  store::WriteBatch batch;
  batch.meta.emplace_back(store::meta::OwedRollupViewPrefix(3) + "7/abc/k", "");
  ASSERT_TRUE(store.Write(batch).ok());
  PendingRollups pending(&store);
  absl::Status s = pending.Load({3});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("owed-rollup marker"), std::string::npos) << s;
}

// A stream over three days, flushed after every few rows, in two runs (a restart between):
// rollups appear only for closed slots, owed ones are built within the per-flush limit, and
// every read equals brute force whatever state the rollups are in.
class RollupPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = RegisterCatalog(&store_, kSql);
    ASSERT_NE(catalog_, nullptr);
    view_ = catalog_->FindView("stats");
    ASSERT_NE(view_, nullptr);
  }

  struct Row {
    std::string key;
    int64_t v;
    int64_t ts;
  };

  void Ingest(const std::vector<Row>& rows, size_t rollups_per_flush) {
    std::vector<std::string> lines;
    for (const Row& r : rows) {
      lines.push_back(fmt::format(R"({{"user_id":"{}","v":{},"ts":{}}})", r.key, r.v, r.ts));
      all_.push_back(r);
    }
    IngestPipeline p(
        *view_->source, {view_}, &store_,
        PipelineOptions{
            .threads = 2, .memory_budget_bytes = 1, .rollups_per_flush = rollups_per_flush});
    ASSERT_TRUE(p.Init().ok());
    StringChunkSource src(std::move(lines), 25);
    ASSERT_TRUE(p.Run(&src).ok());
    EXPECT_EQ(p.source_counters().late, 0);
    max_ts_ = std::max(max_ts_, p.max_event_time_ms());
  }

  // Every stored rollup is of a closed slot and equals the merge of the base tiles inside it.
  void CheckRollups() {
    const int64_t closed_by = max_ts_ - 10 * kMillisPerMinute;
    for (const char* key : {"a", "b", "c"}) {
      for (Resolution res : {Resolution::kHour, Resolution::kDay}) {
        const int64_t unit = tile::ResolutionMillis(res, k5m);
        std::vector<int64_t> starts;
        ASSERT_TRUE(store_
                        .Scan(view_->id, key, res, kT0 - kMillisPerDay, kT0 + 10 * kMillisPerDay,
                              [&](int64_t start, std::string_view) { starts.push_back(start); })
                        .ok());
        for (int64_t start : starts) {
          EXPECT_TRUE(tile::SlotClosed(start, unit, closed_by))
              << key << " " << static_cast<int>(res) << " " << FormatRfc3339Millis(start);
          int64_t n = 0;
          for (const Row& r : all_) n += r.key == key && r.ts >= start && r.ts < start + unit;
          EXPECT_EQ(ReadN(key, start + unit, unit), n);  // a window that is exactly the slot
        }
      }
    }
  }

  int64_t ReadN(const std::string& key, int64_t at, int64_t window_ms) {
    FeatureReader reader(view_, &store_);
    auto r = reader.Read(key, at, {WindowSpec{"w", window_ms}});
    EXPECT_TRUE(r.ok()) << r.status();
    return r->windows[0].features[0].int64();
  }

  // Windows of several lengths ending on hour and day boundaries, where rollups are used.
  void CheckReadsAgainstBruteForce() {
    for (const char* key : {"a", "b", "c"}) {
      for (int64_t at = kT0; at <= max_ts_ + kMillisPerHour; at += 7 * kMillisPerHour) {
        for (int64_t w : {kMillisPerHour, 6 * kMillisPerHour, kMillisPerDay, 2 * kMillisPerDay,
                          7 * kMillisPerDay}) {
          int64_t n = 0;
          for (const Row& r : all_) n += r.key == key && r.ts >= at - w && r.ts < at;
          EXPECT_EQ(ReadN(key, at, w), n) << key << " at " << FormatRfc3339Millis(at) << " w " << w;
        }
      }
    }
  }

  size_t Owed() { return MetaCount(&store_, "rollup/owed/"); }

  store::MemoryTileStore store_;
  std::unique_ptr<CatalogStore> catalog_;
  const ViewRuntime* view_ = nullptr;
  std::vector<Row> all_;
  int64_t max_ts_ = 0;
};

TEST_F(RollupPipelineTest, RollupsOnlyForClosedSlotsAndReadsStayExact) {
  std::mt19937_64 rng(5);
  std::vector<Row> first, second;
  int64_t t = kT0;
  const char* keys[] = {"a", "b", "c"};
  for (int i = 0; i < 3000; ++i) {
    t += static_cast<int64_t>(rng() % 170'000);
    const int64_t ts = t - static_cast<int64_t>(rng() % (8 * kMillisPerMinute));
    (i < 1800 ? first : second).push_back(Row{keys[rng() % 3], 1, ts});
  }
  // A tight per-flush limit: owed rollups are built over many flushes.
  Ingest(first, /*rollups_per_flush=*/2);
  CheckRollups();
  CheckReadsAgainstBruteForce();
  // Rollups of the open hours and day are owed.
  EXPECT_GE(Owed(), 2u);

  // A restart: the owed markers are reloaded and built once the new rows close their slots.
  Ingest(second, /*rollups_per_flush=*/1);
  CheckRollups();
  CheckReadsAgainstBruteForce();
  // Only slots the final watermark leaves open are still owed.
  const int64_t closed_by = max_ts_ - 10 * kMillisPerMinute;
  ASSERT_TRUE(store_
                  .ScanMeta("rollup/owed/",
                            [&](std::string_view m, std::string_view) {
                              // rollup/owed/{view}/{res}/{start}/{key}
                              auto parts = std::string(m);
                              size_t a = parts.find('/', 12);
                              size_t b = parts.find('/', a + 1);
                              size_t c = parts.find('/', b + 1);
                              const int res = std::stoi(parts.substr(a + 1, b - a - 1));
                              const int64_t start = std::stoll(parts.substr(b + 1, c - b - 1));
                              const int64_t unit = res == 2 ? kMillisPerDay : kMillisPerHour;
                              EXPECT_FALSE(tile::SlotClosed(start, unit, closed_by)) << m;
                            })
                  .ok());
  // Closed hours with two or more base tiles all have their rollup.
  for (const char* key : keys) {
    std::map<int64_t, int> base_per_hour;
    ASSERT_TRUE(store_
                    .Scan(view_->id, key, Resolution::kBase, kT0 - kMillisPerDay,
                          kT0 + 10 * kMillisPerDay,
                          [&](int64_t start, std::string_view) {
                            ++base_per_hour[AlignDown(start, kMillisPerHour)];
                          })
                    .ok());
    std::map<int64_t, int> hours;
    ASSERT_TRUE(store_
                    .Scan(view_->id, key, Resolution::kHour, kT0 - kMillisPerDay,
                          kT0 + 10 * kMillisPerDay,
                          [&](int64_t start, std::string_view) { hours[start] = 1; })
                    .ok());
    for (const auto& [hour, n] : base_per_hour) {
      if (n >= 2 && tile::SlotClosed(hour, kMillisPerHour, closed_by)) {
        EXPECT_TRUE(hours.contains(hour)) << key << " " << FormatRfc3339Millis(hour);
      }
    }
  }
}

// Rows within the lateness after their hour has ended still reach its rollup, which is built
// once the watermark closes the hour, from the stored tiles.
TEST_F(RollupPipelineTest, LateRowsWithinTheLatenessReachTheHourRollup) {
  const int64_t h10 = kT0 + 10 * kMillisPerHour;
  // One row per round, one flush per round.
  std::vector<Row> rows = {
      {"k", 1, h10 + 40 * kMillisPerMinute},  // two base tiles in hour 10: its rollup is owed
      {"k", 1, h10 + 50 * kMillisPerMinute},
      {"x", 1, h10 + 65 * kMillisPerMinute},  // hour 10 has ended, but is open
      {"k", 1, h10 + 58 * kMillisPerMinute},  // within the lateness, into hour 10
      {"x", 1, h10 + 72 * kMillisPerMinute},  // the watermark closes hour 10
  };
  std::vector<std::string> lines;
  for (const Row& r : rows) {
    lines.push_back(fmt::format(R"({{"user_id":"{}","v":{},"ts":{}}})", r.key, r.v, r.ts));
    all_.push_back(r);
  }
  IngestPipeline p(*view_->source, {view_}, &store_,
                   PipelineOptions{.threads = 1, .memory_budget_bytes = 1});
  ASSERT_TRUE(p.Init().ok());
  StringChunkSource src(std::move(lines), 1);
  ASSERT_TRUE(p.Run(&src).ok());
  EXPECT_EQ(p.source_counters().late, 0);
  max_ts_ = p.max_event_time_ms();
  int hour_rollups = 0;
  ASSERT_TRUE(store_
                  .Scan(view_->id, "k", Resolution::kHour, h10, h10 + kMillisPerHour,
                        [&](int64_t, std::string_view) { ++hour_rollups; })
                  .ok());
  EXPECT_EQ(hour_rollups, 1);
  EXPECT_EQ(ReadN("k", h10 + kMillisPerHour, kMillisPerHour), 3);
  CheckRollups();
}

}  // namespace
}  // namespace tessera::engine
