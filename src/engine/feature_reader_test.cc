#include "engine/feature_reader.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/time_util.h"
#include "engine/engine_test_util.h"
#include "engine/retention.h"
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
CREATE FEATURE VIEW hourly WITH (tile = '1h') AS SELECT user_id, COUNT(*) AS n FROM ev
GROUP BY user_id;
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

// The newest event time an answer includes: of the longest window (stored and open tiles alike),
// exact to the millisecond, null when no row is included. JSON: "meta" only when asked for.
TEST_F(FeatureReaderTest, NewestEventTimeOfTheRowsTheAnswerIncludes) {
  auto put = [&](int64_t start, const std::vector<int64_t>& offsets) {
    tile::OwnedBlock block(*view_->layout);
    std::vector<int64_t> ts;
    ts.reserve(offsets.size());
    for (int64_t o : offsets) ts.push_back(start + o);
    AddRowsToBlock(*view_, block.data(), Int64Column(std::vector<int64_t>(ts.size(), 1)), ts);
    std::string bytes;
    view_->layout->Serialize(block.data(), &bytes);
    store::WriteBatch b;
    b.tiles.emplace_back(store::TileKey{view_->id, "a", Resolution::kBase, start}, bytes);
    ASSERT_TRUE(store_.Write(b).ok());
  };
  put(kT0, {4000, 299'999, 17});
  put(kT0 + 2 * kHour, {1, 2});
  FeatureResult r = Read(kT0 + 2 * kHour + k5m, "5m,1d");
  EXPECT_EQ(r.newest_event_time_ms, kT0 + 2 * kHour + 2);
  r = Read(kT0 + kHour, "5m,1h");
  EXPECT_EQ(r.newest_event_time_ms, kT0 + 299'999);
  EXPECT_EQ(N(r, 0), 0);  // the 5m window is empty, the answer is not
  r = Read(kT0 + 5 * kHour, "1h");
  EXPECT_EQ(N(r), 0);
  EXPECT_EQ(r.newest_event_time_ms, std::nullopt);

  // An open tile (unflushed rows) counts like a stored one.
  FakeOpenTiles open(view_, kT0 + 3 * kHour, {7}, store_.GetSnapshot());
  r = Read(kT0 + 4 * kHour, "1d", &open);
  EXPECT_EQ(r.newest_event_time_ms, kT0 + 3 * kHour);

  const std::string plain = r.ToJson(*view_->def);
  EXPECT_EQ(plain.find("meta"), std::string::npos);
  r.meta = FeatureResult::Meta{.watermark_ms = kT0 + 3 * kHour - 1};
  EXPECT_EQ(r.ToJson(*view_->def), plain.substr(0, plain.size() - 1) +
                                       R"(,"meta":{"newest_event_time":"2026-01-01T03:00:00.000Z",)"
                                       R"("watermark":"2026-01-01T02:59:59.999Z"}})");
  r.meta = FeatureResult::Meta{};
  r.newest_event_time_ms.reset();
  EXPECT_EQ(r.ToJson(*view_->def), plain.substr(0, plain.size() - 1) +
                                       R"(,"meta":{"newest_event_time":null,"watermark":null}})");
}

// ---- Base-tile retention (FeatureReaderOptions::base_retention_ms).

// Two stores of the same 9 days of key "a" with every hour and day rollup: `full` keeps every
// base tile, `trimmed` lost the base tiles before K = 2026-01-08 (what a retention compaction
// leaves, every hour being rolled up). The clock is at 2026-01-10T07:00Z, R = 2d, so K =
// align_down(now - R, 1d) = 2026-01-08.
class RetentionReadTest : public FeatureReaderTest {
 protected:
  static constexpr int64_t kRetention = 2 * kDay;
  static constexpr int64_t kNow = kT0 + 9 * kDay + 7 * kHour;
  static constexpr int64_t kKeptFrom = kT0 + 7 * kDay;

  void SetUp() override {
    FeatureReaderTest::SetUp();
    ASSERT_EQ(BaseTilesKeptFrom(kNow, kRetention), kKeptFrom);
    std::map<int64_t, std::vector<int64_t>> hours, days;
    for (int64_t d = 0; d < 9; ++d) {
      for (int64_t h = 0; h < 24; ++h) {
        // Three tiles an hour (minutes 0, 25, 55); every fifth hour one (minute 35).
        const std::vector<int64_t> minutes =
            h % 5 == 0 ? std::vector<int64_t>{35} : std::vector<int64_t>{0, 25, 55};
        for (int64_t m : minutes) {
          const int64_t start = kT0 + d * kDay + h * kHour + m * kMillisPerMinute;
          const std::vector<int64_t> values = {d * 1000 + h * 10 + m % 7, 1};
          PutIn(&full_, Resolution::kBase, start, values);
          if (start >= kKeptFrom) PutIn(&trimmed_, Resolution::kBase, start, values);
          for (int64_t v : values) {
            hours[AlignDown(start, kHour)].push_back(v);
            days[AlignDown(start, kDay)].push_back(v);
          }
        }
      }
    }
    for (auto* store : {&full_, &trimmed_}) {
      for (const auto& [start, values] : hours) PutIn(store, Resolution::kHour, start, values);
      for (const auto& [start, values] : days) PutIn(store, Resolution::kDay, start, values);
    }
  }

  void PutIn(store::MemoryTileStore* store, Resolution res, int64_t start,
             const std::vector<int64_t>& values) {
    store::WriteBatch b;
    b.tiles.emplace_back(store::TileKey{view_->id, "a", res, start}, TileOf(*view_, values, start));
    ASSERT_TRUE(store->Write(b).ok());
  }

  FeatureResult ReadFrom(store::TileStore* store, int64_t retention, int64_t at,
                         const std::string& windows, const ViewRuntime* view = nullptr) {
    if (view == nullptr) view = view_;
    FeatureReader reader(view, store,
                         FeatureReaderOptions{.base_retention_ms = retention, .clock = &clock_});
    auto specs = ParseWindows(windows, view->def->tile_ms);
    EXPECT_TRUE(specs.ok()) << specs.status();
    auto r = reader.Read("a", at, *specs);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : FeatureResult();
  }
  std::string Json(const FeatureResult& r) const { return r.ToJson(*view_->def); }

  FakeClock clock_{kNow};
  store::MemoryTileStore full_;
  store::MemoryTileStore trimmed_;
};

// A 7-day window whose tail is on an hour: the same answer over the trimmed store as over the
// full one without any retention, bit for bit (same tiles read: the hour and day rollups).
TEST_F(RetentionReadTest, SevenDaysFromAnHourAreExactOverTrimmedStore) {
  const int64_t at = kT0 + 8 * kDay + 3 * kHour;  // tail 2026-01-02T03:00Z, before K
  const FeatureResult want = ReadFrom(&full_, 0, at, "7d,1d,1h");
  const FeatureResult got = ReadFrom(&trimmed_, kRetention, at, "7d,1d,1h");
  EXPECT_EQ(Json(got), Json(want));
  EXPECT_EQ(got.tiles_read, want.tiles_read);
  EXPECT_EQ(Json(got).find("tail_from"), std::string::npos);
  EXPECT_GT(N(got), 0);
}

// A tail before K inside an hour is rounded down to the hour: the window holds what the full
// store holds for [align_down(tail, 1h), at), and says so in "tail_from". Without the rounding
// the trimmed store would have lost the rows of the hour's first tiles.
TEST_F(RetentionReadTest, SevenDaysFromInsideAnHourRoundTheTailDownToTheHour) {
  const int64_t at = kT0 + 8 * kDay + 3 * kHour + 10 * kMillisPerMinute;
  const FeatureResult got = ReadFrom(&trimmed_, kRetention, at, "7d");
  ASSERT_TRUE(got.windows[0].tail_from_ms.has_value());
  EXPECT_EQ(*got.windows[0].tail_from_ms, kT0 + kDay + 3 * kHour);
  EXPECT_EQ(got.at_ms, at);  // `at` is after K: not rounded
  // = the full store's window of 7d + 10m ending at `at`.
  const FeatureResult wide = ReadFrom(&full_, 0, at, "10090m");
  EXPECT_EQ(got.windows[0].features, wide.windows[0].features);
  // Over the full store with the same retention: the same rounding, the same answer.
  EXPECT_EQ(Json(ReadFrom(&full_, kRetention, at, "7d")), Json(got));
  // Not what the unrounded window holds: its tail starts after the hour's first tile (2 rows).
  const FeatureResult exact = ReadFrom(&full_, 0, at, "7d");
  EXPECT_EQ(N(exact) + 2, N(got));
  EXPECT_NE(Json(got).find(R"("tail_from":{"7d":"2026-01-02T03:00:00.000Z"})"), std::string::npos)
      << Json(got);
  EXPECT_EQ(Json(exact).find("tail_from"), std::string::npos);
}

// Windows whose tail is at or after K read exactly what they read without a retention.
TEST_F(RetentionReadTest, YoungTailsAreUnchanged) {
  for (int64_t at : {kNow, kNow + 10 * kMillisPerMinute, kKeptFrom + kDay + 17 * k5m}) {
    const std::string windows = "5m,1h,6h,1d,125m";
    const FeatureResult plain = ReadFrom(&trimmed_, 0, at, windows);
    const FeatureResult with_retention = ReadFrom(&trimmed_, kRetention, at, windows);
    EXPECT_EQ(Json(with_retention), Json(plain)) << at;
    EXPECT_EQ(with_retention.tiles_read, plain.tiles_read);
    EXPECT_EQ(Json(with_retention), Json(ReadFrom(&full_, 0, at, windows)));
  }
  // A tail exactly at K is not rounded either.
  const FeatureResult at_k =
      ReadFrom(&trimmed_, kRetention, kKeptFrom + 5 * kMillisPerMinute, "5m");
  EXPECT_FALSE(at_k.windows[0].tail_from_ms.has_value());
}

// An `at` before K inside an hour reads to the end of its hour, and the tail of the window asked
// for (from `at` as asked) is widened down to its hour: the answer holds the asked-for rows and
// says which `at` and tail it used.
TEST_F(RetentionReadTest, AtBeforeTheCutoffWidensToWholeHours) {
  const int64_t at = kT0 + 3 * kDay + 5 * kHour + 20 * kMillisPerMinute;
  const FeatureResult got = ReadFrom(&trimmed_, kRetention, at, "1h");
  EXPECT_EQ(got.at_ms, kT0 + 3 * kDay + 6 * kHour);
  EXPECT_EQ(got.requested_at_ms, at);
  // Asked: [04:20, 05:25); read: [04:00, 06:00).
  ASSERT_TRUE(got.windows[0].tail_from_ms.has_value());
  EXPECT_EQ(*got.windows[0].tail_from_ms, kT0 + 3 * kDay + 4 * kHour);
  EXPECT_EQ(got.windows[0].features,
            ReadFrom(&full_, 0, kT0 + 3 * kDay + 6 * kHour, "2h").windows[0].features);
  EXPECT_NE(Json(got).find("\"requested_at\""), std::string::npos);
}

// A view with 1h tiles has no hour rollups: past the retention its reads widen to whole days (on
// Bigtable its base cells age out like every view's): `at` up, tails down.
TEST_F(RetentionReadTest, HourTileViewsRoundToTheDay) {
  const ViewRuntime* hourly = catalog_->FindView("hourly");
  ASSERT_NE(hourly, nullptr);
  const int64_t at = kT0 + 3 * kDay + 5 * kHour + 20 * kMillisPerMinute;
  const FeatureResult got = ReadFrom(&full_, kRetention, at, "1h,7d", hourly);
  const int64_t day_end = kT0 + 4 * kDay;
  EXPECT_EQ(got.at_ms, day_end);
  ASSERT_TRUE(got.windows[0].tail_from_ms.has_value());  // [day_end - 1h, …) from the day
  EXPECT_EQ(*got.windows[0].tail_from_ms, day_end - kDay);
  ASSERT_TRUE(got.windows[1].tail_from_ms.has_value());  // asked from 04:00 seven days before
  EXPECT_EQ(*got.windows[1].tail_from_ms, day_end - 8 * kDay);
  EXPECT_EQ(got.windows[0].features,
            ReadFrom(&full_, 0, day_end, "1d", hourly).windows[0].features);
  EXPECT_EQ(got.windows[1].features,
            ReadFrom(&full_, 0, day_end, "8d", hourly).windows[0].features);
}

// A store where, right before each of the first `races` base-tile fetches, a "compaction"
// stores the rollup of the next hour from `first_hour` on and drops that hour's base tiles: the
// read saw no rollup there (fetched before) and sees no base tiles (fetched after), so it must
// notice and read again.
class RacingStore final : public store::TileStore {
 public:
  RacingStore(store::MemoryTileStore* inner, uint32_t view_id, int64_t first_hour,
              std::string rollup_bytes, int races)
      : inner_(inner),
        view_id_(view_id),
        first_hour_(first_hour),
        bytes_(std::move(rollup_bytes)),
        races_(races) {}

  absl::Status ScanAt(const store::StoreSnapshot* snapshot, uint32_t view_id,
                      std::string_view entity_key, Resolution resolution, int64_t from_ms,
                      int64_t to_ms,
                      const std::function<void(int64_t, std::string_view)>& fn) override {
    if (resolution == Resolution::kBase && raced_ < races_) {
      const int64_t hour = first_hour_ + raced_++ * kMillisPerHour;
      store::WriteBatch b;
      b.tiles.emplace_back(store::TileKey{view_id_, "a", Resolution::kHour, hour}, bytes_);
      if (!inner_->Write(b).ok()) return absl::InternalError("write");
    }
    const int64_t hidden_to = first_hour_ + raced_ * kMillisPerHour;
    return inner_->ScanAt(
        snapshot, view_id, entity_key, resolution, from_ms, to_ms,
        [&](int64_t start, std::string_view bytes) {
          if (resolution == Resolution::kBase && start >= first_hour_ && start < hidden_to) {
            return;  // dropped by the compaction
          }
          fn(start, bytes);
        });
  }
  std::shared_ptr<const store::StoreSnapshot> GetSnapshot() override {
    return inner_->GetSnapshot();
  }
  absl::Status MultiGet(const std::vector<store::TileKey>& keys,
                        std::vector<std::optional<std::string>>* values) override {
    return inner_->MultiGet(keys, values);
  }
  absl::Status Write(const store::WriteBatch& batch) override { return inner_->Write(batch); }
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) override {
    return inner_->GetMeta(key);
  }
  absl::Status ScanMeta(
      std::string_view prefix,
      const std::function<void(std::string_view, std::string_view)>& fn) override {
    return inner_->ScanMeta(prefix, fn);
  }
  absl::Status Sync() override { return absl::OkStatus(); }

 private:
  store::MemoryTileStore* inner_;
  const uint32_t view_id_;
  const int64_t first_hour_;
  const std::string bytes_;
  const int races_;
  int raced_ = 0;
};

TEST_F(RetentionReadTest, ReadThatRacedACompactionReadsAgain) {
  // An expired hour whose rollup is not stored yet (owed): the read falls back to its base
  // tiles, and the "compaction" runs between the rollup and the base fetch.
  store::MemoryTileStore store;
  const int64_t hour = kT0 + 2 * kDay + 7 * kHour;
  std::vector<int64_t> rows;
  for (int64_t m : {0, 25, 55}) {
    PutIn(&store, Resolution::kBase, hour + m * kMillisPerMinute, {m, 1});
    rows.insert(rows.end(), {m, 1});
  }
  RacingStore racing(&store, view_->id, hour, TileOf(*view_, rows, hour), /*races=*/1);
  const FeatureResult got = ReadFrom(&racing, kRetention, hour + kDay, "1d");
  EXPECT_EQ(N(got), 6);
  EXPECT_EQ(Total(got), 83);
  EXPECT_EQ(got.tiles_read, 1);  // the first attempt found nothing, the second the rollup

  // Compactions that keep racing: the read gives up with Unavailable instead of a wrong answer.
  // (A key with few tiles is read base tiles first, then rollups, so a compaction between the
  // two is seen whole; these 72 more tiles make the read scan each resolution on its own, rollups
  // first, where the race can happen.)
  store::MemoryTileStore store2;
  for (int i = 0; i < 72; ++i) {
    PutIn(&store2, Resolution::kBase, hour + 10 * kHour + i * 5 * kMillisPerMinute, {1, 1});
  }
  RacingStore always(&store2, view_->id, hour, TileOf(*view_, {1}, hour), /*races=*/100);
  FeatureReader reader(view_, &always,
                       FeatureReaderOptions{.base_retention_ms = kRetention, .clock = &clock_});
  auto specs = ParseWindows("1d", view_->def->tile_ms);
  auto r = reader.Read("a", hour + kDay, *specs);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  // Without a retention nothing is checked: base tiles are read as they are.
  FeatureReader plain(view_, &always);
  EXPECT_TRUE(plain.Read("a", hour + kDay, *specs).ok());
}

}  // namespace
}  // namespace tessera::engine
