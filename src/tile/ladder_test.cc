#include "tile/ladder.h"

#include <gtest/gtest.h>

#include <limits>
#include <vector>

namespace tessera::tile {
namespace {

constexpr int64_t k5m = 5 * kMillisPerMinute;

std::vector<Resolution> Rollups(int64_t base_ms) {
  std::span<const Resolution> r = RollupResolutions(base_ms);
  return {r.begin(), r.end()};
}

TEST(Ladder, HourRollupsOnlyBelowAnHour) {
  EXPECT_TRUE(HasHourRollups(k5m));
  EXPECT_TRUE(HasHourRollups(30 * kMillisPerMinute));
  EXPECT_FALSE(HasHourRollups(kMillisPerHour));
  EXPECT_EQ(Rollups(k5m), (std::vector<Resolution>{Resolution::kHour, Resolution::kDay}));
  EXPECT_EQ(Rollups(kMillisPerHour), (std::vector<Resolution>{Resolution::kDay}));
}

TEST(Ladder, ChildResolutionFollowsTheLadder) {
  EXPECT_EQ(ChildResolution(Resolution::kHour, k5m), Resolution::kBase);
  EXPECT_EQ(ChildResolution(Resolution::kDay, k5m), Resolution::kHour);
  // No hour rollups with 1h tiles: a day is made of base tiles.
  EXPECT_EQ(ChildResolution(Resolution::kDay, kMillisPerHour), Resolution::kBase);
}

TEST(Ladder, LengthsAndParentSlots) {
  EXPECT_EQ(ResolutionMillis(Resolution::kBase, k5m), k5m);
  EXPECT_EQ(ResolutionMillis(Resolution::kHour, k5m), kMillisPerHour);
  EXPECT_EQ(ResolutionMillis(Resolution::kDay, kMillisPerHour), kMillisPerDay);
  EXPECT_EQ(RollupMillis(Resolution::kHour), kMillisPerHour);
  EXPECT_EQ(RollupMillis(Resolution::kDay), kMillisPerDay);
  const int64_t t = 3 * kMillisPerDay + 5 * kMillisPerHour + 7 * k5m;
  EXPECT_EQ(ParentSlot(Resolution::kHour, t), 3 * kMillisPerDay + 5 * kMillisPerHour);
  EXPECT_EQ(ParentSlot(Resolution::kDay, t), 3 * kMillisPerDay);
  // Before the epoch, slots still align down (towards minus infinity).
  EXPECT_EQ(ParentSlot(Resolution::kHour, -1), -kMillisPerHour);
  EXPECT_EQ(ParentSlot(Resolution::kDay, -k5m), -kMillisPerDay);
  // Every base tile of an hour has that hour as parent, and the hour has the day as parent.
  for (int64_t s = kMillisPerDay; s < kMillisPerDay + kMillisPerHour; s += k5m) {
    EXPECT_EQ(ParentSlot(Resolution::kHour, s), kMillisPerDay);
    EXPECT_EQ(ParentSlot(Resolution::kDay, ParentSlot(Resolution::kHour, s)), kMillisPerDay);
  }
}

TEST(Ladder, SlotClosedAtTheWatermark) {
  const int64_t h = kMillisPerHour;
  EXPECT_TRUE(SlotClosed(0, h, h));       // ends exactly at the watermark
  EXPECT_FALSE(SlotClosed(0, h, h - 1));  // a row at h - 1 may still come
  EXPECT_TRUE(SlotClosed(-h, h, 0));
  // No watermark yet (the minimum) closes nothing, without overflow.
  constexpr int64_t kNone = std::numeric_limits<int64_t>::min();
  EXPECT_FALSE(SlotClosed(std::numeric_limits<int64_t>::min(), h, kNone));
  EXPECT_FALSE(SlotClosed(0, kMillisPerDay, kNone + 5));
}

}  // namespace
}  // namespace tessera::tile
