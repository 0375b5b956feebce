#include "engine/feature_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/time_util.h"
#include "engine/engine_test_util.h"
#include "store/memory/memory_tile_store.h"

namespace tessera::engine {
namespace {

using store::Resolution;

constexpr int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z, a UTC day boundary
constexpr int64_t k5m = 5 * kMillisPerMinute;
constexpr int64_t kHour = kMillisPerHour;
constexpr int64_t kDay = kMillisPerDay;

constexpr char kSql[] = R"sql(
CREATE SOURCE ev (user_id STRING, v BIGINT, ts TIMESTAMP) WITH (connector = 'file');
CREATE FEATURE VIEW s AS SELECT user_id, COUNT(*) AS n, SUM(v) AS total, SUM(v) / COUNT(*) AS mean
FROM ev GROUP BY user_id;
)sql";

// Serves one open tile of key "a" at `start` with `values`, paired with `snapshot`.
class FakeOpenTiles final : public OpenTileSource {
 public:
  FakeOpenTiles(const ViewRuntime* view, int64_t start, std::vector<int64_t> values,
                std::shared_ptr<const store::StoreSnapshot> snapshot)
      : view_(view), start_(start), block_(*view->layout), snapshot_(std::move(snapshot)) {
    AddRowsToBlock(*view, block_.data(), Int64Column(values), start);
  }
  std::shared_ptr<const store::StoreSnapshot> MergeOpenTiles(
      const ViewRuntime& view, std::string_view key,
      std::span<const std::pair<int64_t, int64_t>> ranges, std::span<std::byte* const> blocks,
      int64_t* tiles_merged) override {
    EXPECT_EQ(&view, view_);
    ++calls;
    if (key != "a") return snapshot_;
    for (size_t i = 0; i < ranges.size(); ++i) {
      if (ranges[i].first <= start_ && start_ < ranges[i].second) {
        view.layout->Merge(blocks[i], block_.data());
        ++*tiles_merged;
      }
    }
    return snapshot_;
  }
  int calls = 0;

 private:
  const ViewRuntime* view_;
  int64_t start_;
  tile::OwnedBlock block_;
  std::shared_ptr<const store::StoreSnapshot> snapshot_;
};

class FeatureReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = RegisterCatalog(&store_, kSql);
    ASSERT_NE(catalog_, nullptr);
    view_ = catalog_->FindView("s");
  }

  void Put(Resolution res, int64_t start, const std::vector<int64_t>& values,
           const std::string& key = "a") {
    store::WriteBatch b;
    b.tiles.emplace_back(store::TileKey{view_->id, key, res, start}, TileOf(*view_, values, start));
    ASSERT_TRUE(store_.Write(b).ok());
  }

  // Base tiles of key "a": hour 0 of day 0 has 12 tiles of value 1, hour 5 has 3 of value 10.
  void PutBaseTiles() {
    for (int i = 0; i < 12; ++i) Put(Resolution::kBase, kT0 + i * k5m, {1});
    for (int i = 0; i < 3; ++i) Put(Resolution::kBase, kT0 + 5 * kHour + i * k5m, {10});
  }

  FeatureResult Read(int64_t at, const std::string& windows, OpenTileSource* open = nullptr) {
    FeatureReader reader(view_, &store_, open);
    auto specs = ParseWindows(windows, view_->def->tile_ms);
    EXPECT_TRUE(specs.ok());
    auto r = reader.Read("a", at, *specs);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  }
  static int64_t N(const FeatureResult& r, size_t w = 0) {
    return r.windows[w].features[0].int64();
  }
  static int64_t Total(const FeatureResult& r, size_t w = 0) {
    return r.windows[w].features[1].int64();
  }

  store::MemoryTileStore store_;
  std::unique_ptr<CatalogStore> catalog_;
  const ViewRuntime* view_ = nullptr;
};

// The cover reads a day from its day tile, else its hours, else its base tiles: the same answer
// whichever rollups exist, with fewer tiles read the more do.
TEST_F(FeatureReaderTest, MissingRollupsFallBackToFinerTiles) {
  PutBaseTiles();
  FeatureResult r = Read(kT0 + kDay, "1d");
  EXPECT_EQ(N(r), 15);
  EXPECT_EQ(Total(r), 42);
  EXPECT_EQ(r.tiles_read, 15);  // base tiles only

  Put(Resolution::kHour, kT0, std::vector<int64_t>(12, 1));  // hour 0 rolled up, hour 5 not
  r = Read(kT0 + kDay, "1d");
  EXPECT_EQ(N(r), 15);
  EXPECT_EQ(Total(r), 42);
  EXPECT_EQ(r.tiles_read, 1 + 3);

  Put(Resolution::kHour, kT0 + 5 * kHour, {10, 10, 10});
  Put(Resolution::kDay, kT0, [] {
    std::vector<int64_t> all(12, 1);
    all.insert(all.end(), {10, 10, 10});
    return all;
  }());
  r = Read(kT0 + kDay, "1d");
  EXPECT_EQ(N(r), 15);
  EXPECT_EQ(Total(r), 42);
  EXPECT_EQ(r.tiles_read, 1);
}

// Windows not aligned to rollups use hour tiles in the middle and base tiles at the ragged ends.
TEST_F(FeatureReaderTest, CoverMixesResolutionsAtTheEnds) {
  PutBaseTiles();
  Put(Resolution::kHour, kT0, std::vector<int64_t>(12, 1));
  // [00:55, 05:10): base 00:55, nothing in hours 1..4, hour 5's first two base tiles.
  FeatureResult r = Read(kT0 + 5 * kHour + 2 * k5m, "255m");
  EXPECT_EQ(N(r), 3);
  EXPECT_EQ(Total(r), 21);
  // Several windows at once: each is what it is alone.
  FeatureResult together = Read(kT0 + kDay, "5m,6h,1h,1d");
  EXPECT_EQ(N(together, 3), 15);
  EXPECT_EQ(N(together, 1), 0);  // [18:00, 24:00)
  EXPECT_EQ(N(together, 0), 0);
}

// Open tiles are added to the store snapshot they come with: a write after that snapshot (a
// flush that already holds the open rows) is not counted twice.
TEST_F(FeatureReaderTest, OpenTilesMergeWithTheirSnapshotOnly) {
  PutBaseTiles();
  FakeOpenTiles open(view_, kT0 + 6 * kHour, {100, 200}, store_.GetSnapshot());
  Put(Resolution::kBase, kT0 + 6 * kHour, {100, 200});  // the "flush" of the open tile
  FeatureResult r = Read(kT0 + 7 * kHour, "1d,1h", &open);
  EXPECT_EQ(open.calls, 1);  // once per read, for all windows
  EXPECT_EQ(N(r, 0), 17);
  EXPECT_EQ(Total(r, 0), 342);
  EXPECT_EQ(N(r, 1), 2);  // [6h, 7h): only the open tile
  EXPECT_EQ(r.windows[1].features[2].AsDouble(), 150.0);
  // Without open tiles the store is read as of now.
  r = Read(kT0 + 7 * kHour, "1h");
  EXPECT_EQ(N(r), 2);
}

TEST_F(FeatureReaderTest, UnreadableTileIsDataLossAndBadAtIsOutOfRange) {
  store::WriteBatch b;
  b.tiles.emplace_back(store::TileKey{view_->id, "a", Resolution::kBase, kT0}, "\x07junk");
  ASSERT_TRUE(store_.Write(b).ok());
  FeatureReader reader(view_, &store_);
  auto windows = ParseWindows("1h", view_->def->tile_ms);
  auto r = reader.Read("a", kT0 + kHour, *windows);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(reader.Read("b", kT0 + kHour, *windows).status().code(), absl::StatusCode::kOk);
  EXPECT_EQ(reader.Read("a", kMaxTimestampMs + 1, *windows).status().code(),
            absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace tessera::engine
