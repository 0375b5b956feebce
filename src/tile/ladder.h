#pragma once

#include <cstdint>
#include <limits>
#include <span>

#include "common/time_util.h"
#include "store/tile_store.h"

namespace tessera::tile {

using store::Resolution;

// The tile ladder: the rules that say which tiles exist for a view and how they nest. Every
// writer (flusher, rollup builder) and reader (feature reader, tile-cover math) asks here.
//
//   base  the view's tile size T (binder-checked: whole seconds, divides one hour)
//   hour  [h, h + 1h) for UTC hours h; exists only when T < 1h (with T = 1h a base tile *is* the
//         hour, and a rollup of one child would only duplicate it)
//   day   [d, d + 1d) for UTC days d; always exists. Its children are the hour rollups when the
//         view has them, else the base tiles
//
// A rollup is exactly the merge of its children (engine/rollups.h has the invariant).

// True when the view with base tile `base_ms` has hour rollups (base tiles shorter than an hour).
constexpr bool HasHourRollups(int64_t base_ms) { return base_ms < kMillisPerHour; }

// The rollup resolutions of a view, finest first: {hour, day} or {day}.
inline std::span<const Resolution> RollupResolutions(int64_t base_ms) {
  static constexpr Resolution kHourAndDay[] = {Resolution::kHour, Resolution::kDay};
  return HasHourRollups(base_ms) ? std::span<const Resolution>(kHourAndDay)
                                 : std::span<const Resolution>(kHourAndDay + 1, 1);
}

// Length in ms of one tile of `res`; hour and day lengths do not depend on the base tile.
// REQUIRES: base_ms divides one hour.
constexpr int64_t ResolutionMillis(Resolution res, int64_t base_ms) {
  switch (res) {
    case Resolution::kBase:
      return base_ms;
    case Resolution::kHour:
      return kMillisPerHour;
    case Resolution::kDay:
    case Resolution::kLifetime:  // not on the ladder; its edge moves by whole days
      return kMillisPerDay;
  }
  return base_ms;
}

// The length of a rollup slot (hour or day), for code that has no base tile size at hand.
// REQUIRES: rollup != kBase.
constexpr int64_t RollupMillis(Resolution rollup) {
  return rollup == Resolution::kDay ? kMillisPerDay : kMillisPerHour;
}

// Start of the `rollup` slot holding the tile (of any finer resolution) that starts at `start_ms`.
// REQUIRES: rollup != kBase.
inline int64_t ParentSlot(Resolution rollup, int64_t start_ms) {
  return AlignDown(start_ms, RollupMillis(rollup));
}

// The resolution one level below `rollup`: a day's children are hours when the view has hour
// rollups, else base tiles; an hour's children are base tiles.
// REQUIRES: rollup != kBase.
constexpr Resolution ChildResolution(Resolution rollup, int64_t base_ms) {
  return rollup == Resolution::kDay && HasHourRollups(base_ms) ? Resolution::kHour
                                                               : Resolution::kBase;
}

// True when the slot [start, start + unit) ends at or before `closed_by_ms` (a watermark): no
// row can land in it any more, so its rollup is final. False for the "no watermark yet" minimum.
constexpr bool SlotClosed(int64_t start_ms, int64_t unit_ms, int64_t closed_by_ms) {
  return closed_by_ms >= std::numeric_limits<int64_t>::min() + unit_ms &&
         start_ms <= closed_by_ms - unit_ms;
}

}  // namespace tessera::tile
