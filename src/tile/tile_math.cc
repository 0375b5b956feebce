#include "tile/tile_math.h"

#include <algorithm>

#include "common/errors.h"

namespace tessera::tile {

WindowBounds ComputeWindow(int64_t at_ms, int64_t window_ms, int64_t base_ms) {
  WindowBounds w;
  w.to_ms = AlignUp(at_ms, base_ms);
  w.rounded = w.to_ms != at_ms;
  w.from_ms = AlignDown(at_ms - window_ms, base_ms);
  return w;
}

namespace {

// Appends [from, to) at `res` if non-empty.
void Add(std::vector<TileRange>* out, Resolution res, int64_t from, int64_t to) {
  if (from < to) out->push_back(TileRange{res, from, to});
}

// Covers [from, to) (multiples of base_ms) with hour tiles in the middle and base tiles at
// the ends.
void CoverWithHours(std::vector<TileRange>* out, int64_t from, int64_t to, int64_t base_ms) {
  if (!HasHourRollups(base_ms)) {
    Add(out, Resolution::kBase, from, to);
    return;
  }
  int64_t h_from = AlignUp(from, kMillisPerHour);
  int64_t h_to = AlignDown(to, kMillisPerHour);
  if (h_from >= h_to) {
    Add(out, Resolution::kBase, from, to);
    return;
  }
  Add(out, Resolution::kBase, from, h_from);
  Add(out, Resolution::kHour, h_from, h_to);
  Add(out, Resolution::kBase, h_to, to);
}

}  // namespace

std::vector<TileRange> CoverWindow(int64_t from_ms, int64_t to_ms, int64_t base_ms) {
  std::vector<TileRange> out;
  int64_t d_from = AlignUp(from_ms, kMillisPerDay);
  int64_t d_to = AlignDown(to_ms, kMillisPerDay);
  if (d_from >= d_to) {
    CoverWithHours(&out, from_ms, to_ms, base_ms);
    return out;
  }
  CoverWithHours(&out, from_ms, d_from, base_ms);
  Add(&out, Resolution::kDay, d_from, d_to);
  CoverWithHours(&out, d_to, to_ms, base_ms);
  return out;
}

absl::Status ValidateWindow(int64_t window_ms, int64_t base_ms) {
  if (window_ms <= 0 || window_ms % base_ms != 0) {
    return InvalidArgument("window {} is not a multiple of the view's tile size {}",
                           FormatDurationMillis(window_ms), FormatDurationMillis(base_ms));
  }
  return absl::OkStatus();
}

}  // namespace tessera::tile
