#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/time_util.h"
#include "store/tile_store.h"
#include "tile/ladder.h"

namespace tessera::tile {

using store::Resolution;

inline int64_t AlignUp(int64_t t, int64_t unit) { return -AlignDown(-t, unit); }

// The tiles a window read covers: [from_ms, to_ms), both multiples of the base tile.
struct WindowBounds {
  int64_t from_ms = 0;
  int64_t to_ms = 0;     // the end of the tile holding `at` (== at when at is on a boundary)
  bool rounded = false;  // true when `at` is not on a tile boundary (to_ms > at)
};

// Window (at, W) over tiles of `base_ms`: rows with align_down(at - W) <= ts < at (DESIGN.md:
// between W and W + T of data; the tail is tile-aligned, the "sawtooth"). Tiles cannot split at
// `at`, so a read covers the tile holding `at` whole: [align_down(at - W), align_up(at)). For a
// live read at "now" that tile holds only rows before `at` (the stream has delivered nothing
// later, bar rows dated ahead of the clock within the source's max-future), so the read is the
// window exactly; a read of stored history at an unaligned `at` also counts that tile's rows at
// or after `at`. Point-in-time values at any millisecond: `tessera training-set`.
// REQUIRES: window_ms > 0 and a multiple of base_ms (callers validate user input).
WindowBounds ComputeWindow(int64_t at_ms, int64_t window_ms, int64_t base_ms);

// One range of tiles to read: every stored tile of `resolution` with start in [from, to).
struct TileRange {
  Resolution resolution = Resolution::kBase;
  int64_t from_ms = 0;
  int64_t to_ms = 0;
  friend bool operator==(const TileRange&, const TileRange&) = default;
};

// The fewest tile ranges that exactly cover [from_ms, to_ms): whole UTC days from day tiles,
// whole hours from hour tiles, the ragged ends from base tiles. Ranges are disjoint, ascending
// within each resolution, and together cover the interval exactly.
// REQUIRES: from_ms <= to_ms, both multiples of base_ms, base_ms divides one hour.
std::vector<TileRange> CoverWindow(int64_t from_ms, int64_t to_ms, int64_t base_ms);

// Validates a window length for a view: positive and a multiple of the tile size. The error
// says which window and the tile size.
absl::Status ValidateWindow(int64_t window_ms, int64_t base_ms);

}  // namespace tessera::tile
