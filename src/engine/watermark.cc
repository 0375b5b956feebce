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

namespace {

absl::StatusOr<int64_t> ParseMillis(std::string_view v, std::string_view source_name,
                                    std::string_view what) {
  int64_t ms = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return DataLoss("corrupt {} entry for source '{}'", what, source_name);
  }
  return ms;
}

}  // namespace

absl::Status Watermark::Load(store::TileStore* store) {
  TESSERA_ASSIGN_OR_RETURN(std::optional<std::string> wm, store->GetMeta(key_));
  if (wm.has_value()) {
    TESSERA_ASSIGN_OR_RETURN(max_event_time_ms_, ParseMillis(*wm, source_name_, "watermark"));
  }
  const std::string prefix = store::meta::SourceLanePrefix(source_name_);
  absl::Status bad;
  TESSERA_RETURN_IF_ERROR(
      store->ScanMeta(prefix, [&](std::string_view key, std::string_view value) {
        absl::StatusOr<int64_t> ms = ParseMillis(value, source_name_, "watermark lane");
        if (!ms.ok()) {
          if (bad.ok()) bad = ms.status();
          return;
        }
        lanes_[std::string(key.substr(prefix.size()))] = *ms;
      }));
  TESSERA_RETURN_IF_ERROR(bad);
  // A single-stream source (or one from before lanes) keeps its newest time in the source key.
  if (lanes_.empty() && max_event_time_ms_ != kNone) lanes_[""] = max_event_time_ms_;
  Recompute();
  committed_closed_by_ = closed_by_;
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Watermark::LoadCommitted(store::TileStore* store,
                                                 std::string_view source_name,
                                                 int64_t lateness_ms) {
  Watermark w(source_name, lateness_ms);
  TESSERA_RETURN_IF_ERROR(w.Load(store));
  std::vector<std::string> lanes;
  for (const auto& [lane, ms] : w.lanes()) lanes.push_back(lane);
  w.SetActiveLanes(std::move(lanes));  // none: the newest over all lanes (there are none)
  return w.closed_by();
}

absl::Status Watermark::ReloadLane(store::TileStore* store, const std::string& lane) {
  if (lane.empty()) return absl::OkStatus();
  TESSERA_ASSIGN_OR_RETURN(
      std::optional<std::string> stored,
      store->GetMeta(store::meta::SourceLaneMaxEventTimeKey(source_name_, lane)));
  if (!stored.has_value()) return absl::OkStatus();
  TESSERA_ASSIGN_OR_RETURN(int64_t ms, ParseMillis(*stored, source_name_, "watermark lane"));
  int64_t& held = lanes_.try_emplace(lane, kNone).first->second;
  held = std::max(held, ms);
  max_event_time_ms_ = std::max(max_event_time_ms_, ms);
  Recompute();
  return absl::OkStatus();
}

void Watermark::ForgetLane(const std::string& lane) {
  auto it = lanes_.find(lane);
  if (it == lanes_.end()) return;
  it->second = kNone;
  Recompute();
}

void Watermark::SetActiveLanes(std::vector<std::string> active) {
  active_ = std::move(active);
  for (const std::string& lane : active_) lanes_.try_emplace(lane, kNone);
  Recompute();
}

int64_t Watermark::MinOfOtherActive(const std::string* except) const {
  int64_t min = kOpen;
  for (const std::string& lane : active_) {
    if (except != nullptr && lane == *except) continue;
    auto it = lanes_.find(lane);
    min = std::min(min, it == lanes_.end() ? kNone : it->second);
  }
  return min;
}

void Watermark::Recompute() {
  int64_t newest = MinOfOtherActive(nullptr);
  if (newest == kOpen) {  // no active lane: the newest over all lanes
    newest = kNone;
    for (const auto& [lane, ms] : lanes_) newest = std::max(newest, ms);
  }
  closed_by_ = newest == kNone ? kNone : newest - lateness_ms_;
}

int64_t Watermark::MarkLate(const std::string& lane, std::span<const int64_t> event_time_ms,
                            std::vector<uint8_t>* late) {
  const size_t n = event_time_ms.size();
  late->assign(n, 0);
  const int64_t* ts = event_time_ms.data();
  uint8_t* out = late->data();
  const int64_t others = MinOfOtherActive(&lane);
  int64_t& lane_max = lanes_.try_emplace(lane, kNone).first->second;
  int64_t max_ts = lane_max;
  int64_t count = 0;
  for (size_t r = 0; r < n; ++r) {
    // watermark = min(others, this lane) - lateness, computed without overflow for kNone.
    const int64_t newest = std::min(others, max_ts);
    if (newest != kNone && ts[r] < newest - lateness_ms_) {
      out[r] = 1;
      ++count;
    } else if (ts[r] > max_ts) {
      max_ts = ts[r];
    }
  }
  lane_max = max_ts;
  max_event_time_ms_ = std::max(max_event_time_ms_, max_ts);
  Recompute();
  return count;
}

void Watermark::AddToBatch(store::WriteBatch* batch) const {
  if (max_event_time_ms_ != kNone) {
    batch->meta.emplace_back(key_, std::to_string(max_event_time_ms_));
  }
  for (const auto& [lane, ms] : lanes_) {
    if (lane.empty() || ms == kNone) continue;
    batch->meta.emplace_back(store::meta::SourceLaneMaxEventTimeKey(source_name_, lane),
                             std::to_string(ms));
  }
}

}  // namespace tessera::engine
