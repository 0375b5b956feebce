#include "engine/watermark.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "common/errors.h"
#include "common/status_macros.h"
#include "store/meta_keys.h"

namespace tessera::engine {

Watermark::Watermark(std::string_view source_name, int64_t lateness_ms)
    : source_name_(source_name), key_(Key(source_name)), lateness_ms_(lateness_ms) {}

std::string Watermark::Key(std::string_view source_name) {
  return store::meta::SourceMaxEventTimeKey(source_name);
}

absl::Status Watermark::Load(store::TileStore* store) {
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> wm, store->GetMeta(key_));
  if (!wm.has_value()) return absl::OkStatus();
  int64_t v = 0;
  auto [p, ec] = std::from_chars(wm->data(), wm->data() + wm->size(), v);
  if (ec != std::errc() || p != wm->data() + wm->size()) {
    return DataLoss("corrupt watermark entry for source '{}'", source_name_);
  }
  max_event_time_ms_ = v;
  committed_max_event_time_ms_ = v;
  return absl::OkStatus();
}

int64_t Watermark::MarkLate(std::span<const int64_t> event_time_ms, std::vector<uint8_t>* late) {
  const size_t n = event_time_ms.size();
  late->assign(n, 0);
  const int64_t* ts = event_time_ms.data();
  uint8_t* out = late->data();
  int64_t max_ts = max_event_time_ms_;
  int64_t count = 0;
  for (size_t r = 0; r < n; ++r) {
    // watermark = max - lateness, computed without overflow for the initial minimum.
    if (max_ts != kNone && ts[r] < max_ts - lateness_ms_) {
      out[r] = 1;
      ++count;
    } else if (ts[r] > max_ts) {
      max_ts = ts[r];
    }
  }
  max_event_time_ms_ = max_ts;
  return count;
}

int64_t Watermark::ClosedBy(int64_t max_event_time_ms) const {
  if (max_event_time_ms == kNone) return kNone;
  return max_event_time_ms - lateness_ms_;
}

void Watermark::AddToBatch(store::WriteBatch* batch) const {
  if (max_event_time_ms_ != kNone) {
    batch->meta.emplace_back(key_, std::to_string(max_event_time_ms_));
  }
}

}  // namespace tessera::engine
