#include "engine/flusher.h"

#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "common/errors.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "tile/ladder.h"

namespace tessera::engine {
namespace {

using store::Resolution;
using store::TileKey;

// A base tile to write: its key and the delta block to fold into the stored value.
struct Pending {
  TileKey key;
  const std::byte* delta;
};

struct SlotId {
  std::string_view key;
  int64_t start_ms;
  uint64_t hash;  // of (key, start), from the key's precomputed hash
  friend bool operator==(const SlotId& a, const SlotId& b) {
    return a.start_ms == b.start_ms && a.key == b.key;
  }
};
struct SlotIdHash {
  size_t operator()(const SlotId& id) const { return id.hash; }
};

// The rollup slots of one resolution that a flush's base deltas fall in, and for the closed
// ones the merge of those deltas.
class RollupSlots {
 public:
  struct Slot {
    uint64_t key_hash = 0;
    int delta_children = 0;
    std::unique_ptr<tile::OwnedBlock> deltas;  // closed slots only
  };

  RollupSlots(const ViewRuntime& view, Resolution resolution, int64_t closed_by_ms,
              int64_t kept_from_ms)
      : view_(view),
        resolution_(resolution),
        unit_ms_(tile::ResolutionMillis(resolution, view.def->tile_ms)),
        closed_by_ms_(closed_by_ms),
        kept_from_ms_(kept_from_ms) {}

  Resolution resolution() const { return resolution_; }
  bool closed(int64_t start_ms) const {
    return tile::SlotClosed(start_ms, unit_ms_, closed_by_ms_) ||
           (kept_from_ms_ != kNoRetention && start_ms <= kept_from_ms_ - unit_ms_);
  }
  // Fewest base deltas a fresh view's closed slot needs for its rollup to be written.
  int min_children() const {
    return kept_from_ms_ != kNoRetention && resolution_ == Resolution::kHour ? 1 : 2;
  }

  // Counts a base delta in its slot and, when the slot is closed, merges it in.
  void Add(const TileShard::Entry& e) {
    const int64_t start = tile::ParentSlot(resolution_, e.start_ms);
    Slot& slot = slots_[SlotId{e.key, start, e.key_hash ^ HashInt(static_cast<uint64_t>(start))}];
    slot.key_hash = e.key_hash;
    ++slot.delta_children;
    if (!closed(start)) return;
    if (slot.deltas == nullptr) slot.deltas = std::make_unique<tile::OwnedBlock>(*view_.layout);
    view_.layout->Merge(slot.deltas->data(), e.block);
  }

  // fn(ref, slot) for every slot.
  template <typename Fn>
  void ForEach(Fn&& fn) {
    for (auto& [id, slot] : slots_) {
      fn(RollupRef{view_.id, resolution_, id.start_ms, id.key, slot.key_hash}, slot);
    }
  }

 private:
  const ViewRuntime& view_;
  const Resolution resolution_;
  const int64_t unit_ms_;
  const int64_t closed_by_ms_;
  const int64_t kept_from_ms_;
  absl::flat_hash_map<SlotId, Slot, SlotIdHash> slots_;
};

// Fresh view (nothing stored): base deltas are the tiles; a closed slot's rollup is written
// only where at least RollupSlots::min_children() base tiles fall in it.
void FlushFresh(const ViewRuntime& view, const TileShard& shard, std::vector<RollupSlots*>& rollups,
                FlushOutput* out, FlushStats* stats) {
  const tile::TileLayout& layout = *view.layout;
  // Encode into a reused buffer, then copy once into an exactly sized value.
  std::string scratch;
  scratch.reserve(1 << 16);
  auto encode = [&](const std::byte* block) {
    scratch.clear();
    layout.Serialize(block, &scratch);
    return std::string(scratch);
  };
  for (const TileShard::Entry& e : shard.entries()) {
    out->tiles.emplace_back(TileKey{view.id, std::string(e.key), Resolution::kBase, e.start_ms},
                            encode(e.block));
    ++stats->base_tiles;
    for (RollupSlots* r : rollups) r->Add(e);
  }
  for (RollupSlots* r : rollups) {
    r->ForEach([&](const RollupRef& ref, RollupSlots::Slot& slot) {
      if (!r->closed(ref.start_ms)) {
        out->owed.push_back(ref);
        return;
      }
      if (slot.delta_children < r->min_children()) return;
      out->tiles.emplace_back(TileKey{view.id, std::string(ref.key), ref.resolution, ref.start_ms},
                              encode(slot.deltas->data()));
      ++stats->rollup_tiles;
    });
  }
}

// A tile of one writer slot to write: the merge of its deltas (a rollup's from several base
// tiles of the flush).
struct SlotDelta {
  TileKey key;
  const std::byte* block = nullptr;          // a base tile's open block
  std::unique_ptr<tile::OwnedBlock> merged;  // a rollup's merged deltas
};
struct SlotTileRef {
  uint32_t slot;
  std::string_view entity;
  Resolution resolution;
  int64_t start_ms;
  friend bool operator==(const SlotTileRef&, const SlotTileRef&) = default;
};
struct SlotTileRefHash {
  size_t operator()(const SlotTileRef& r) const {
    return HashInt(Hash64(r.entity) ^ static_cast<uint64_t>(r.start_ms) * 31 ^
                   (static_cast<uint64_t>(r.slot) << 8) ^ static_cast<uint64_t>(r.resolution));
  }
};

}  // namespace

absl::Status FlushShard(const ViewRuntime& view, const TileShard& shard, store::TileStore* store,
                        bool store_may_hold_view, int64_t closed_by_ms, FlushOutput* out,
                        FlushStats* stats, int64_t kept_from_ms) {
  const tile::TileLayout& layout = *view.layout;
  std::vector<std::unique_ptr<RollupSlots>> slots;
  std::vector<RollupSlots*> rollups;
  for (Resolution res : tile::RollupResolutions(view.def->tile_ms)) {
    slots.push_back(std::make_unique<RollupSlots>(view, res, closed_by_ms, kept_from_ms));
    rollups.push_back(slots.back().get());
  }
  if (!store_may_hold_view) {
    FlushFresh(view, shard, rollups, out, stats);
    return absl::OkStatus();
  }

  // Base tiles: stored ⊕ delta. Rollups of closed slots: the stored children ⊕ deltas (the
  // stored children do not include this flush's base tiles yet). Rollups of open slots are owed.
  std::vector<Pending> pending;
  pending.reserve(shard.size());
  for (const TileShard::Entry& e : shard.entries()) {
    pending.push_back(
        Pending{TileKey{view.id, std::string(e.key), Resolution::kBase, e.start_ms}, e.block});
    for (RollupSlots* r : rollups) r->Add(e);
  }
  for (RollupSlots* r : rollups) {
    r->ForEach([&](const RollupRef& ref, RollupSlots::Slot& slot) {
      if (!r->closed(ref.start_ms)) {
        out->owed.push_back(ref);
        return;
      }
      pending.push_back(
          Pending{TileKey{view.id, std::string(ref.key), ref.resolution, ref.start_ms},
                  slot.deltas->data()});
      out->settled.push_back(ref);
    });
  }

  constexpr size_t kBatch = 4096;
  tile::OwnedBlock stored(layout);
  std::vector<TileKey> keys;
  std::vector<std::optional<std::string>> values;
  for (size_t begin = 0; begin < pending.size(); begin += kBatch) {
    size_t end = std::min(pending.size(), begin + kBatch);
    keys.clear();
    for (size_t i = begin; i < end; ++i) keys.push_back(pending[i].key);
    TESSERA_RETURN_IF_ERROR(store->MultiGet(keys, &values));
    for (size_t i = begin; i < end; ++i) {
      Pending& p = pending[i];
      const std::optional<std::string>& existing = values[i - begin];
      stored.Reset();
      if (existing.has_value()) {
        absl::Status s = layout.Deserialize(*existing, stored.data());
        if (!s.ok()) return UnreadableTile(view, p.key.entity_key, p.key.start_ms, s);
        ++stats->merged_with_stored;
      } else if (p.key.resolution != Resolution::kBase) {
        TESSERA_RETURN_IF_ERROR(MergeStoredChildren(view, store, p.key.entity_key, p.key.resolution,
                                                    p.key.start_ms, stored.data())
                                    .status());
      }
      layout.Merge(stored.data(), p.delta);
      std::string bytes;
      layout.Serialize(stored.data(), &bytes);
      if (p.key.resolution == Resolution::kBase) {
        ++stats->base_tiles;
      } else {
        ++stats->rollup_tiles;
      }
      out->tiles.emplace_back(std::move(p.key), std::move(bytes));
    }
  }
  return absl::OkStatus();
}

void AppendSlotTag(uint32_t slot, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(slot >> shift));
}

uint32_t SlotOfTaggedKey(std::string_view tagged) {
  uint32_t slot = 0;
  for (size_t i = 0; i < kSlotTagBytes; ++i) {
    slot = slot << 8 | static_cast<uint8_t>(tagged[i]);
  }
  return slot;
}

absl::Status FlushShardSlots(const ViewRuntime& view, const TileShard& shard,
                             store::SlotStore* slots, const std::vector<std::string>& slot_names,
                             FlushOutput* out, FlushStats* stats) {
  const tile::TileLayout& layout = *view.layout;
  absl::flat_hash_map<uint32_t, std::vector<SlotDelta>> by_slot;
  absl::flat_hash_map<SlotTileRef, std::pair<uint32_t, size_t>, SlotTileRefHash> rollup_index;
  for (const TileShard::Entry& e : shard.entries()) {
    const uint32_t slot = SlotOfTaggedKey(e.key);
    const std::string_view entity = EntityOfTaggedKey(e.key);
    std::vector<SlotDelta>& deltas = by_slot[slot];
    deltas.push_back(SlotDelta{TileKey{view.id, std::string(entity), Resolution::kBase, e.start_ms},
                               e.block, nullptr});
    for (Resolution res : tile::RollupResolutions(view.def->tile_ms)) {
      const int64_t start = tile::ParentSlot(res, e.start_ms);
      auto [it, inserted] =
          rollup_index.try_emplace(SlotTileRef{slot, entity, res, start}, slot, deltas.size());
      if (inserted) {
        deltas.push_back(SlotDelta{TileKey{view.id, std::string(entity), res, start}, nullptr,
                                   std::make_unique<tile::OwnedBlock>(layout)});
      }
      layout.Merge(deltas[it->second.second].merged->data(), e.block);
    }
  }

  constexpr size_t kBatch = 4096;
  tile::OwnedBlock stored(layout);
  std::vector<TileKey> keys;
  std::vector<std::optional<std::string>> values;
  for (auto& [slot, deltas] : by_slot) {
    for (size_t begin = 0; begin < deltas.size(); begin += kBatch) {
      const size_t end = std::min(deltas.size(), begin + kBatch);
      keys.clear();
      for (size_t i = begin; i < end; ++i) keys.push_back(deltas[i].key);
      TESSERA_RETURN_IF_ERROR(slots->MultiGetSlot(slot_names[slot], keys, &values));
      for (size_t i = begin; i < end; ++i) {
        SlotDelta& d = deltas[i];
        stored.Reset();
        const std::optional<std::string>& existing = values[i - begin];
        if (existing.has_value()) {
          absl::Status s = layout.Deserialize(*existing, stored.data());
          if (!s.ok()) return UnreadableTile(view, d.key.entity_key, d.key.start_ms, s);
          ++stats->merged_with_stored;
        }
        layout.Merge(stored.data(), d.block != nullptr ? d.block : d.merged->data());
        std::string bytes;
        layout.Serialize(stored.data(), &bytes);
        if (d.key.resolution == Resolution::kBase) {
          ++stats->base_tiles;
        } else {
          ++stats->rollup_tiles;
        }
        out->tiles.emplace_back(std::move(d.key), std::move(bytes));
        out->tile_slots.push_back(slot);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::engine
