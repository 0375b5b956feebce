// `all` windows: the per-key lifetime tile (engine/lifetime.h) kept by flushes and spill merges,
// read by FeatureReader, against the same rows read as one 100-year window.

#include "engine/lifetime.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/varint.h"
#include "engine/backfill.h"
#include "engine/catalog_store.h"
#include "engine/entity_key.h"
#include "engine/feature_reader.h"
#include "store/memory/memory_tile_store.h"

namespace tessera::engine {
namespace {

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr int kUsers = 5;

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR) WITH (connector = 'file');
CREATE FEATURE VIEW stats AS
SELECT user_id, COUNT(*) AS n, SUM(v) AS total, MIN(v) AS lo, APPROX_COUNT_DISTINCT(v) AS kinds,
       EXP_DECAY_SUM(v, '1d') AS decayed
FROM ev GROUP BY user_id;
)sql";

// Events over `days` days from `from`, out of order within the lateness, some late beyond it,
// some NULL values.
std::string Events(int n, int64_t from, int days, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out;
  const int64_t span = days * kMillisPerDay;
  for (int i = 0; i < n; ++i) {
    int64_t ts = from + span * i / n - static_cast<int64_t>(rng() % 3'000'000);
    if (rng() % 50 == 0) ts -= 3 * kMillisPerHour;  // late: dropped unless the run is behind
    const std::string v = rng() % 10 == 0 ? "null" : std::to_string(rng() % 1000);
    out += fmt::format(R"({{"user_id":"u{}","v":{},"ts":{}}})"
                       "\n",
                       rng() % kUsers, v, ts);
  }
  return out;
}

class LifetimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / fmt::format("lifetime_test_{}", getpid());
    std::filesystem::create_directories(dir_);
    auto cs = CatalogStore::Load(&store_);
    ASSERT_TRUE(cs.ok()) << cs.status();
    catalog_ = std::move(*cs);
    ASSERT_TRUE(catalog_->Register(kSql).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Backfill(const std::string& name, const std::string& lines, bool spill) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << lines;
    BackfillOptions o;
    o.inputs = {path};
    o.chunk_bytes = 4096;
    o.pipeline.threads = 2;
    o.pipeline.memory_budget_bytes = 24 << 10;  // many flushes
    o.pipeline.spill_runs = spill;
    absl::StatusOr<BackfillSummary> s = RunBackfill(&store_, catalog_.get(), o);
    ASSERT_TRUE(s.ok()) << s.status();
  }

  // `all` equals the 36500d window (every stored row) for every user at every `at`, and reads
  // few tiles when `at` is past the lifetime edge.
  void ExpectAllIsEverything(const std::vector<int64_t>& ats, int64_t edge_reads_from) {
    const ViewRuntime* view = catalog_->FindView("stats");
    ASSERT_NE(view, nullptr);
    FeatureReader reader(view, &store_);
    absl::StatusOr<std::vector<WindowSpec>> windows =
        ParseWindows("1d,all,36500d", view->def->tile_ms);
    ASSERT_TRUE(windows.ok()) << windows.status();
    int nonempty = 0;
    size_t lifetime_tiles = 0;
    for (const auto& [k, bytes] : store_.AllTiles()) {
      lifetime_tiles += k.resolution == store::Resolution::kLifetime;
    }
    EXPECT_EQ(lifetime_tiles, static_cast<size_t>(kUsers));
    for (int u = 0; u < kUsers; ++u) {
      const std::string key = *StoredKeyFromText(fmt::format("u{}", u), 1);
      for (int64_t at : ats) {
        SCOPED_TRACE(fmt::format("u{} at {}", u, at));
        absl::StatusOr<FeatureResult> r = reader.Read(key, at, *windows);
        ASSERT_TRUE(r.ok()) << r.status();
        const std::vector<Value>& all = r->windows[1].features;
        const std::vector<Value>& everything = r->windows[2].features;
        ASSERT_EQ(r->windows[1].name, "all");
        for (size_t f = 0; f + 1 < all.size(); ++f) EXPECT_EQ(all[f], everything[f]) << f;
        const Value& d1 = all.back();
        const Value& d2 = everything.back();
        ASSERT_EQ(d1.is_null(), d2.is_null());
        if (!d1.is_null()) {
          EXPECT_NEAR(d1.double_value(), d2.double_value(), 1e-9 * std::fabs(d2.double_value()));
        }
        nonempty += all[0].int64() > 0;
        // Alone, past the edge: the lifetime tile plus at most a few days of rollups below it.
        if (at >= edge_reads_from) {
          absl::StatusOr<FeatureResult> alone = reader.Read(key, at, {(*windows)[1]});
          ASSERT_TRUE(alone.ok());
          EXPECT_EQ(alone->windows[0].features, all);
          EXPECT_LE(alone->tiles_read, 1 + 3 + 24 + 12) << "lifetime read scanned too much";
        }
      }
    }
    EXPECT_GT(nonempty, 0);
  }

  std::filesystem::path dir_;
  store::MemoryTileStore store_;
  std::unique_ptr<CatalogStore> catalog_;
};

TEST_F(LifetimeTest, FlushesKeepTheLifetimeTile) {
  Backfill("a.ndjson", Events(6000, kT0, 20, 1), /*spill=*/false);
  const int64_t end = kT0 + 20 * kMillisPerDay;
  ExpectAllIsEverything({kT0 + kMillisPerDay / 2, kT0 + 7 * kMillisPerDay + 12'345, end - 1,
                         end + kMillisPerHour, end + 30 * kMillisPerDay},
                        end - 1);
}

TEST_F(LifetimeTest, SpillMergeWritesWhatOneFlushWould) {
  Backfill("a.ndjson", Events(6000, kT0, 20, 2), /*spill=*/true);
  const int64_t end = kT0 + 20 * kMillisPerDay;
  ExpectAllIsEverything({kT0 + 3 * kMillisPerDay, end - 1, end + 7 * kMillisPerDay}, end - 1);
}

TEST_F(LifetimeTest, LaterRunsOverOlderAndOverlappingRowsStayExact) {
  Backfill("recent.ndjson", Events(3000, kT0 + 10 * kMillisPerDay, 10, 3), /*spill=*/false);
  // Older rows, behind every lifetime edge the first run wrote.
  Backfill("old.ndjson", Events(3000, kT0, 10, 4), /*spill=*/false);
  // And rows spanning both.
  Backfill("both.ndjson", Events(2000, kT0 + 5 * kMillisPerDay, 10, 5), /*spill=*/false);
  const int64_t end = kT0 + 20 * kMillisPerDay;
  ExpectAllIsEverything(
      {kT0 + 2 * kMillisPerDay, kT0 + 12 * kMillisPerDay, end - 1, end + kMillisPerDay}, end - 1);
}

TEST_F(LifetimeTest, ReadWithoutALifetimeTileMergesTheWholeRange) {
  Backfill("a.ndjson", Events(2000, kT0, 6, 6), /*spill=*/false);
  // A DB from before lifetime tiles: drop them; reads still see every row.
  const ViewRuntime* view = catalog_->FindView("stats");
  store::MemoryTileStore copy;
  for (auto& [key, bytes] : store_.AllTiles()) {
    if (key.resolution == store::Resolution::kLifetime) continue;
    store::WriteBatch b;
    b.tiles.emplace_back(key, bytes);
    ASSERT_TRUE(copy.Write(b).ok());
  }
  FeatureReader reader(view, &copy);
  absl::StatusOr<std::vector<WindowSpec>> windows = ParseWindows("all,36500d", view->def->tile_ms);
  ASSERT_TRUE(windows.ok());
  for (int u = 0; u < kUsers; ++u) {
    absl::StatusOr<FeatureResult> r = reader.Read(*StoredKeyFromText(fmt::format("u{}", u), 1),
                                                  kT0 + 7 * kMillisPerDay, *windows);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->windows[0].features[0], r->windows[1].features[0]);
    EXPECT_EQ(r->windows[0].features[1], r->windows[1].features[1]);
  }
}

// A DB written before the freshness slot: its tiles' newest event time is unknown, and so is the
// lifetime tile folded from them. The rows from the lifetime edge on are all newer than that
// tile's, so an answer with `all` still reports the newest row when they have one.
std::string ToVersion1(const tile::TileLayout& layout, const std::string& v2) {
  tile::OwnedBlock block(layout);
  EXPECT_TRUE(layout.Deserialize(v2, block.data()).ok());
  std::string last;  // the engine slot, last in the tile
  const size_t n = layout.num_slots();
  layout.agg(n - 1).Serialize(block.data() + layout.offset(n - 1), &last);
  EXPECT_TRUE(v2.ends_with(last));
  std::string v1 = v2.substr(0, v2.size() - last.size());
  EXPECT_EQ(v1[0], 2);
  EXPECT_EQ(static_cast<size_t>(v1[1]), n);
  v1[0] = 1;
  v1[1] = static_cast<char>(n - 1);
  return v1;
}

TEST_F(LifetimeTest, NewestRowIsKnownAboveALifetimeTileOfAnOlderBuild) {
  std::string day0;
  for (int64_t t = kT0 + 3 * kMillisPerHour; t < kT0 + 20 * kMillisPerHour; t += 600'000) {
    day0 += fmt::format(R"({{"user_id":"u0","v":1,"ts":{}}})"
                        "\n",
                        t);
  }
  Backfill("day0.ndjson", day0, /*spill=*/false);
  // The store as the older build left it: version-1 tiles, no lifetime tiles.
  const ViewRuntime* view = catalog_->FindView("stats");
  store::MemoryTileStore db;
  store::WriteBatch batch;
  for (auto& [k, bytes] : store_.AllTiles()) {
    if (k.resolution == store::Resolution::kLifetime) continue;
    batch.tiles.emplace_back(k, ToVersion1(*view->layout, bytes));
  }
  for (auto& [k, v] : store_.AllMeta()) batch.meta.emplace_back(k, v);
  ASSERT_TRUE(db.Write(batch).ok());
  auto catalog = CatalogStore::Load(&db);
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  // This build adds three days: the key's lifetime tile is folded from the old tiles.
  std::string later;
  int64_t newest = 0;
  for (int64_t t = kT0 + 20 * kMillisPerHour; t < kT0 + 4 * kMillisPerDay; t += 600'000) {
    later += fmt::format(R"({{"user_id":"u0","v":1,"ts":{}}})"
                         "\n",
                         t);
    newest = t;
  }
  const std::string path = (dir_ / "later.ndjson").string();
  std::ofstream(path) << later;
  BackfillOptions o;
  o.inputs = {path};
  o.pipeline.threads = 1;
  ASSERT_TRUE(RunBackfill(&db, catalog->get(), o).ok());
  const ViewRuntime* v = (*catalog)->FindView("stats");
  FeatureReader reader(v, &db);
  for (const char* w : {"1h", "1h,all", "all"}) {
    absl::StatusOr<std::vector<WindowSpec>> windows = ParseWindows(w, v->def->tile_ms);
    ASSERT_TRUE(windows.ok());
    absl::StatusOr<FeatureResult> r =
        reader.Read(*StoredKeyFromText("u0", 1), kT0 + 4 * kMillisPerDay, *windows);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->newest_event_time_ms, std::optional<int64_t>(newest)) << w;
  }
}

TEST(LifetimeEncodingTest, EdgeRoundTripsAndBadEdgesAreDataLoss) {
  EXPECT_EQ(LifetimeEdge(kT0 + 5), kT0);
  EXPECT_EQ(LifetimeEdge(std::numeric_limits<int64_t>::min()), kNoLifetimeEdge);
  int64_t edge = 0;
  std::string_view tile;
  EXPECT_FALSE(DecodeLifetimeTile("", &edge, &tile).ok());
  std::string bytes;
  PutZigZag64(&bytes, kT0 + 1);  // not a day boundary
  EXPECT_FALSE(DecodeLifetimeTile(bytes, &edge, &tile).ok());
  bytes.clear();
  PutZigZag64(&bytes, kT0);
  bytes += "rest";
  ASSERT_TRUE(DecodeLifetimeTile(bytes, &edge, &tile).ok());
  EXPECT_EQ(edge, kT0);
  EXPECT_EQ(tile, "rest");
}

TEST(ParseWindowsTest, AllIsTheLifetimeWindow) {
  absl::StatusOr<std::vector<WindowSpec>> w = ParseWindows("1h, ALL", 300'000);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)[1].name, "all");
  EXPECT_TRUE((*w)[1].lifetime());
  EXPECT_FALSE(ParseWindows("all,All", 300'000).ok());
  absl::StatusOr<std::vector<WindowSpec>> bad = ParseWindows("forever", 300'000);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'all'"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace tessera::engine
