#include "tile/tile_math.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace tessera::tile {
namespace {

constexpr int64_t kMin = kMillisPerMinute;
constexpr int64_t k5m = 5 * kMin;

TEST(ComputeWindow, AlignedAtIsExact) {
  WindowBounds w = ComputeWindow(10 * kMillisPerHour, kMillisPerHour, k5m);
  EXPECT_EQ(w.from_ms, 9 * kMillisPerHour);
  EXPECT_EQ(w.to_ms, 10 * kMillisPerHour);
  EXPECT_FALSE(w.rounded);
}

TEST(ComputeWindow, UnalignedAtKeepsTheSawtoothTailAndReadsItsTileWhole) {
  // align_down(at - W) <= ts < at: the tail starts a whole tile before at - W.
  WindowBounds w = ComputeWindow(10 * kMillisPerHour + 61'000, kMillisPerHour, k5m);
  EXPECT_EQ(w.to_ms, 10 * kMillisPerHour + k5m);
  EXPECT_EQ(w.from_ms, 9 * kMillisPerHour);
  EXPECT_TRUE(w.rounded);
}

TEST(ComputeWindow, NegativeTimes) {
  WindowBounds w = ComputeWindow(-1, k5m, k5m);
  EXPECT_EQ(w.to_ms, 0);
  EXPECT_EQ(w.from_ms, -2 * k5m);
}

TEST(CoverWindow, WithinOneHourUsesBaseTiles) {
  auto r = CoverWindow(10 * kMillisPerHour + k5m, 10 * kMillisPerHour + 4 * k5m, k5m);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], (TileRange{Resolution::kBase, 10 * kMillisPerHour + k5m,
                             10 * kMillisPerHour + 4 * k5m}));
}

TEST(CoverWindow, SevenDaysUsesDayTiles) {
  int64_t to = 20 * kMillisPerDay + 3 * kMillisPerHour + 2 * k5m;
  auto r = CoverWindow(to - 7 * kMillisPerDay, to, k5m);
  // base | hours | days | hours | base
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[2].resolution, Resolution::kDay);
  EXPECT_EQ(r[2].to_ms - r[2].from_ms, 6 * kMillisPerDay);
}

TEST(CoverWindow, HourBaseNeverUsesHourRollup) {
  auto r = CoverWindow(kMillisPerHour, 5 * kMillisPerHour, kMillisPerHour);
  for (const auto& t : r) EXPECT_NE(t.resolution, Resolution::kHour);
}

// Property: the ranges tile [from, to) exactly, with aligned boundaries per resolution.
TEST(CoverWindow, CoversExactlyRandom) {
  std::mt19937_64 rng(7);
  for (int64_t base : {kMin, k5m, 15 * kMin, kMillisPerHour}) {
    for (int i = 0; i < 2000; ++i) {
      int64_t from =
          AlignDown(static_cast<int64_t>(rng() % (40 * kMillisPerDay)) - 20 * kMillisPerDay, base);
      int64_t to = from + base * static_cast<int64_t>(rng() % (9 * kMillisPerDay / base));
      auto ranges = CoverWindow(from, to, base);
      std::vector<std::pair<int64_t, int64_t>> spans;
      for (const auto& r : ranges) {
        int64_t unit = ResolutionMillis(r.resolution, base);
        ASSERT_LT(r.from_ms, r.to_ms);
        ASSERT_EQ(AlignDown(r.from_ms, unit), r.from_ms);
        ASSERT_EQ(AlignDown(r.to_ms, unit), r.to_ms);
        spans.emplace_back(r.from_ms, r.to_ms);
      }
      std::sort(spans.begin(), spans.end());
      int64_t cursor = from;
      for (auto [a, b] : spans) {
        ASSERT_EQ(a, cursor);
        cursor = b;
      }
      ASSERT_EQ(cursor, to);
      ASSERT_LE(ranges.size(), 5u);
    }
  }
}

TEST(ValidateWindow, RejectsNonMultiples) {
  EXPECT_TRUE(ValidateWindow(kMillisPerHour, k5m).ok());
  absl::Status s = ValidateWindow(7 * kMin, k5m);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("not a multiple of the view's tile size 5m"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera::tile
