#include "engine/rollups.h"

#include "absl/container/flat_hash_set.h"
#include "common/errors.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "engine/fetched_tiles.h"
#include "store/meta_keys.h"
#include "tile/ladder.h"
#include "tile/tile_layout.h"

namespace tessera::engine {

using store::Resolution;

absl::StatusOr<int> MergeStoredChildren(const ViewRuntime& view, store::TileScanner* scanner,
                                        std::string_view key, Resolution resolution,
                                        int64_t start_ms, std::byte* block) {
  const tile::TileLayout& layout = *view.layout;
  const int64_t unit = tile::ResolutionMillis(resolution, view.def->tile_ms);
  int merged = 0;
  absl::Status decode;
  auto merge = [&](int64_t start, std::string_view bytes) {
    if (!decode.ok()) return;
    decode = layout.MergeSerialized(bytes, block);
    if (!decode.ok()) {
      decode = UnreadableTile(view, key, start, decode);
      return;
    }
    ++merged;
  };
  if (tile::ChildResolution(resolution, view.def->tile_ms) != Resolution::kHour) {
    TESSERA_RETURN_IF_ERROR(
        scanner->Scan(view.id, key, Resolution::kBase, start_ms, start_ms + unit, merge));
    TESSERA_RETURN_IF_ERROR(decode);
    return merged;
  }
  // A day over hours: its base tiles and hour rollups with one cursor positioning (base tiles
  // come first in key order, so they wait until the hours with a rollup are known: those hours'
  // base tiles are inside their rollup).
  FetchedTiles base;
  absl::flat_hash_set<int64_t> rolled_hours;
  TESSERA_RETURN_IF_ERROR(scanner->ScanSpan(view.id, key, Resolution::kBase, Resolution::kHour,
                                            start_ms, start_ms + unit,
                                            [&](Resolution res, int64_t start, std::string_view b) {
                                              if (res == Resolution::kHour) {
                                                rolled_hours.insert(start);
                                                merge(start, b);
                                              } else {
                                                base.Add(start, b);
                                              }
                                              return true;
                                            }));
  for (size_t i = 0; i < base.size(); ++i) {
    if (rolled_hours.contains(tile::ParentSlot(Resolution::kHour, base.starts[i]))) continue;
    merge(base.starts[i], base.tile(i));
  }
  TESSERA_RETURN_IF_ERROR(decode);
  return merged;
}

absl::StatusOr<bool> BuildRollupFromStore(const ViewRuntime& view, store::TileScanner* scanner,
                                          const OwedRollup& rollup,
                                          std::vector<std::pair<store::TileKey, std::string>>* out,
                                          bool single_child_hours) {
  tile::OwnedBlock block(*view.layout);
  TESSERA_ASSIGN_OR_RETURN(
      int merged, MergeStoredChildren(view, scanner, rollup.key, rollup.resolution, rollup.start_ms,
                                      block.data()));
  if (merged < (single_child_hours && rollup.resolution == store::Resolution::kHour ? 1 : 2)) {
    return false;
  }
  std::string bytes;
  view.layout->Serialize(block.data(), &bytes);
  out->emplace_back(store::TileKey{view.id, rollup.key, rollup.resolution, rollup.start_ms},
                    std::move(bytes));
  return true;
}

PendingRollups::SlotId PendingRollups::Id(uint32_t view_id, Resolution resolution,
                                          int64_t start_ms) {
  const int64_t unit = tile::RollupMillis(resolution);
  return SlotId{start_ms + unit, view_id, static_cast<uint8_t>(resolution), start_ms};
}

absl::Status PendingRollups::Load(const std::vector<uint32_t>& view_ids) {
  for (uint32_t view_id : view_ids) {
    const std::string prefix = store::meta::OwedRollupViewPrefix(view_id);
    absl::Status parse;
    TESSERA_RETURN_IF_ERROR(
        store_->ScanMeta(prefix, [&](std::string_view marker, std::string_view) {
          if (!parse.ok()) return;
          const std::optional<store::meta::OwedRollupMarker> m =
              store::meta::ParseOwedRollupKey(marker);
          if (!m.has_value()) {
            parse = DataLoss("corrupt owed-rollup marker '{}': expected {}RES/START/KEY", marker,
                             prefix);
            return;
          }
          Slot& slot = slots_[Id(view_id, m->resolution, m->start_ms)];
          if (slot.key_hashes.insert(Hash64(m->entity_key)).second) ++size_;
        }));
    TESSERA_RETURN_IF_ERROR(parse);
  }
  return absl::OkStatus();
}

void PendingRollups::Owe(const RollupRef& r, store::WriteBatch* batch) {
  Owe(r, store::meta::OwedRollupKey(r.view_id, r.resolution, r.start_ms, r.key), batch);
}

void PendingRollups::Owe(const RollupRef& r, std::string marker_key, store::WriteBatch* batch) {
  Slot& slot = slots_[Id(r.view_id, r.resolution, r.start_ms)];
  if (!slot.key_hashes.insert(r.key_hash).second) return;
  ++size_;
  if (slot.listed) slot.keys.emplace_back(r.key);  // not expected: listed slots are closed
  batch->meta.emplace_back(std::move(marker_key), "");
}

void PendingRollups::Settle(const RollupRef& r, store::WriteBatch* batch) {
  auto it = slots_.find(Id(r.view_id, r.resolution, r.start_ms));
  if (it == slots_.end() || it->second.key_hashes.erase(r.key_hash) == 0) return;
  --size_;
  batch->meta_deletes.push_back(
      store::meta::OwedRollupKey(r.view_id, r.resolution, r.start_ms, r.key));
  if (it->second.key_hashes.empty() && !it->second.listed) slots_.erase(it);
}

size_t PendingRollups::CountClosed(int64_t closed_by_ms) const {
  size_t n = 0;
  for (auto it = slots_.begin(); it != slots_.end() && std::get<0>(it->first) <= closed_by_ms;
       ++it) {
    n +=
        it->second.listed ? it->second.keys.size() - it->second.next : it->second.key_hashes.size();
  }
  return n;
}

bool PendingRollups::Owes(const RollupRef& r) const {
  auto it = slots_.find(Id(r.view_id, r.resolution, r.start_ms));
  return it != slots_.end() && it->second.key_hashes.contains(r.key_hash);
}

bool PendingRollups::HasClosed(int64_t closed_by_ms) const {
  return !slots_.empty() && std::get<0>(slots_.begin()->first) <= closed_by_ms;
}

absl::Status PendingRollups::TakeClosed(int64_t closed_by_ms, size_t limit,
                                        std::vector<OwedRollup>* out, store::WriteBatch* batch) {
  while (out->size() < limit && HasClosed(closed_by_ms)) {
    auto it = slots_.begin();
    const auto [end_ms, view_id, res, start_ms] = it->first;
    Slot& slot = it->second;
    const Resolution resolution = static_cast<Resolution>(res);
    if (!slot.listed) {
      // The slot closed by the last commit, so no marker of it can be added and all are committed:
      // list the keys from the store.
      const std::string prefix = store::meta::OwedRollupSlotPrefix(view_id, resolution, start_ms);
      TESSERA_RETURN_IF_ERROR(store_->ScanMeta(prefix, [&](std::string_view m, std::string_view) {
        slot.keys.emplace_back(m.substr(prefix.size()));
      }));
      slot.listed = true;
    }
    for (; slot.next < slot.keys.size() && out->size() < limit; ++slot.next) {
      std::string& key = slot.keys[slot.next];
      batch->meta_deletes.push_back(store::meta::OwedRollupKey(view_id, resolution, start_ms, key));
      if (slot.key_hashes.erase(Hash64(key)) > 0) --size_;
      out->push_back(OwedRollup{view_id, resolution, start_ms, std::move(key)});
    }
    if (slot.next == slot.keys.size()) {
      size_ -= slot.key_hashes.size();  // recorded in memory but without a marker: none owed
      slots_.erase(it);
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::engine
