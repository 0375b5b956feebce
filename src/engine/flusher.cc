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

  RollupSlots(const ViewRuntime& view, Resolution resolution, int64_t closed_by_ms)
      : view_(view),
        resolution_(resolution),
        unit_ms_(tile::ResolutionMillis(resolution, view.def->tile_ms)),
        closed_by_ms_(closed_by_ms) {}

  Resolution resolution() const { return resolution_; }
  bool closed(int64_t start_ms) const {
    return tile::SlotClosed(start_ms, unit_ms_, closed_by_ms_);
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
  absl::flat_hash_map<SlotId, Slot, SlotIdHash> slots_;
};

// Fresh view (nothing stored): base deltas are the tiles; a closed slot's rollup is written
// only where at least two base tiles fall in it.
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
      if (slot.delta_children < 2) return;
      out->tiles.emplace_back(TileKey{view.id, std::string(ref.key), ref.resolution, ref.start_ms},
                              encode(slot.deltas->data()));
      ++stats->rollup_tiles;
    });
  }
}

}  // namespace

absl::Status FlushShard(const ViewRuntime& view, const TileShard& shard, store::TileStore* store,
                        bool store_may_hold_view, int64_t closed_by_ms, FlushOutput* out,
                        FlushStats* stats) {
  const tile::TileLayout& layout = *view.layout;
  std::vector<std::unique_ptr<RollupSlots>> slots;
  std::vector<RollupSlots*> rollups;
  for (Resolution res : tile::RollupResolutions(view.def->tile_ms)) {
    slots.push_back(std::make_unique<RollupSlots>(view, res, closed_by_ms));
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

}  // namespace tessera::engine
