#include "engine/lifetime.h"

#include <algorithm>
#include <vector>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/varint.h"
#include "tile/ladder.h"

namespace tessera::engine {

using store::Resolution;

int64_t LifetimeEdge(int64_t closed_by_ms) {
  if (closed_by_ms < kMinTimestampMs || closed_by_ms > kMaxTimestampMs + kMillisPerDay) {
    return kNoLifetimeEdge;
  }
  return AlignDown(closed_by_ms, kMillisPerDay);
}

void EncodeLifetimeTile(int64_t edge_ms, const tile::TileLayout& layout, const std::byte* block,
                        std::string* out) {
  PutZigZag64(out, edge_ms);
  layout.Serialize(block, out);
}

absl::Status DecodeLifetimeTile(std::string_view bytes, int64_t* edge_ms, std::string_view* tile) {
  ByteReader reader(bytes);
  int64_t edge = 0;
  absl::Status s = reader.ZigZag64(&edge, "lifetime edge");
  if (!s.ok()) return s;
  if (edge < kMinTimestampMs || edge > kMaxTimestampMs + kMillisPerDay ||
      AlignDown(edge, kMillisPerDay) != edge) {
    return DataLoss("lifetime tile edge {} is not a UTC day boundary in range", edge);
  }
  *edge_ms = edge;
  *tile = reader.rest();
  return absl::OkStatus();
}

absl::StatusOr<int64_t> MergeStoredRange(const ViewRuntime& view, store::TileScanner* scanner,
                                         std::string_view key, int64_t from_ms, int64_t to_ms,
                                         std::byte* block) {
  const tile::TileLayout& layout = *view.layout;
  int64_t merged = 0;
  absl::Status decode;
  // Starts of the rollups merged so far (ascending, as scans return them) at each level.
  std::vector<int64_t> days;
  std::vector<int64_t> hours;
  auto covered = [](const std::vector<int64_t>& starts, int64_t slot) {
    return std::binary_search(starts.begin(), starts.end(), slot);
  };
  auto scan = [&](Resolution res, std::vector<int64_t>* record) -> absl::Status {
    return scanner->Scan(view.id, key, res, from_ms, to_ms, [&](int64_t start, std::string_view b) {
      if (!decode.ok()) return;
      if (res != Resolution::kDay && covered(days, AlignDown(start, kMillisPerDay))) return;
      if (res == Resolution::kBase && covered(hours, AlignDown(start, kMillisPerHour))) return;
      decode = layout.MergeSerialized(b, block);
      if (!decode.ok()) {
        decode = UnreadableTile(view, key, start, decode);
        return;
      }
      ++merged;
      if (record != nullptr) record->push_back(start);
    });
  };
  TESSERA_RETURN_IF_ERROR(scan(Resolution::kDay, &days));
  TESSERA_RETURN_IF_ERROR(decode);
  if (tile::HasHourRollups(view.def->tile_ms)) {
    TESSERA_RETURN_IF_ERROR(scan(Resolution::kHour, &hours));
    TESSERA_RETURN_IF_ERROR(decode);
  }
  TESSERA_RETURN_IF_ERROR(scan(Resolution::kBase, nullptr));
  TESSERA_RETURN_IF_ERROR(decode);
  return merged;
}

}  // namespace tessera::engine
