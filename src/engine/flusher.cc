#include "engine/flusher.h"

#include <optional>

#include "absl/container/flat_hash_map.h"
#include "common/errors.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "tile/tile_math.h"

namespace tessera::engine {
namespace {

using store::Resolution;
using store::TileKey;

// A tile to write: its key and the delta block to fold into the stored value.
struct Pending {
  TileKey key;
  const std::byte* delta;
};

struct RollupId {
  std::string_view key;
  int64_t start_ms;
  uint64_t hash;  // of (key, start), from the key's precomputed hash
  friend bool operator==(const RollupId& a, const RollupId& b) {
    return a.start_ms == b.start_ms && a.key == b.key;
  }
};
struct RollupIdHash {
  size_t operator()(const RollupId& id) const { return id.hash; }
};

// The rollup tiles of one resolution touched by a flush: per slot, how many base deltas fall
// in it and (once built) the merge of those deltas.
class RollupSet {
 public:
  struct Slot {
    int delta_children = 0;
    std::unique_ptr<std::byte[]> storage;
    std::byte* block = nullptr;  // aligned inside storage; null until built
  };

  RollupSet(const tile::TileLayout& layout, Resolution resolution, int64_t unit_ms)
      : layout_(layout), resolution_(resolution), unit_ms_(unit_ms) {}
  ~RollupSet() {
    for (auto& [id, slot] : slots_) {
      if (slot.block != nullptr) layout_.Destroy(slot.block);
    }
  }

  Resolution resolution() const { return resolution_; }
  int64_t unit_ms() const { return unit_ms_; }

  void Count(const TileShard::Entry& e) { ++slots_[Id(e)].delta_children; }
  // Merges a base delta into its slot, building the slot's block on first use. With
  // `min_children`, slots with fewer counted deltas are left unbuilt.
  void Add(const TileShard::Entry& e, int min_children) {
    const std::byte* delta = e.block;
    Slot& slot = slots_[Id(e)];
    if (slot.delta_children < min_children) return;
    if (slot.block == nullptr) {
      const size_t align = layout_.block_align();
      slot.storage = std::make_unique<std::byte[]>(layout_.block_size() + align);
      auto a = reinterpret_cast<uintptr_t>(slot.storage.get());
      slot.block = reinterpret_cast<std::byte*>((a + align - 1) / align * align);
      layout_.Init(slot.block);
    }
    layout_.Merge(slot.block, delta);
  }
  template <typename Fn>
  void ForEach(Fn&& fn) {
    for (auto& [id, slot] : slots_) fn(id.key, id.start_ms, slot);
  }

 private:
  const tile::TileLayout& layout_;
  const Resolution resolution_;
  const int64_t unit_ms_;
  RollupId Id(const TileShard::Entry& e) const {
    const int64_t start = AlignDown(e.start_ms, unit_ms_);
    return RollupId{e.key, start, e.key_hash ^ HashInt(static_cast<uint64_t>(start) * 31 + 7)};
  }

  absl::flat_hash_map<RollupId, Slot, RollupIdHash> slots_;
};

absl::Status Unreadable(const ViewRuntime& view, const TileKey& key, const absl::Status& s) {
  return DataLoss("stored tile of view '{}' key '{}' at {} is unreadable: {}", view.def->name,
                  key.entity_key, FormatRfc3339Millis(key.start_ms), StatusMessage(s));
}

// Fresh view (nothing stored): base deltas are the tiles; a rollup is written only where at
// least two base tiles fall in it.
void FlushFresh(const ViewRuntime& view, const TileShard& shard,
                std::vector<RollupSet*>& rollups,
                std::vector<std::pair<TileKey, std::string>>* out, FlushStats* stats) {
  const tile::TileLayout& layout = *view.layout;
  for (const TileShard::Entry& e : shard.entries()) {
    for (RollupSet* r : rollups) r->Count(e);
  }
  // Encode into a reused buffer, then copy once into an exactly sized value.
  std::string scratch;
  scratch.reserve(1 << 16);
  auto encode = [&](const std::byte* block) {
    scratch.clear();
    layout.Serialize(block, &scratch);
    return std::string(scratch);
  };
  for (const TileShard::Entry& e : shard.entries()) {
    out->emplace_back(TileKey{view.id, std::string(e.key), Resolution::kBase, e.start_ms},
                      encode(e.block));
    ++stats->base_tiles;
    for (RollupSet* r : rollups) r->Add(e, /*min_children=*/2);
  }
  for (RollupSet* r : rollups) {
    r->ForEach([&](std::string_view key, int64_t start, RollupSet::Slot& slot) {
      if (slot.block == nullptr) return;
      std::string bytes = encode(slot.block);
      out->emplace_back(TileKey{view.id, std::string(key), r->resolution(), start},
                        std::move(bytes));
      ++stats->rollup_tiles;
    });
  }
}

}  // namespace

absl::Status FlushShard(const ViewRuntime& view, const TileShard& shard,
                        store::TileStore* store, bool store_may_hold_view,
                        std::vector<std::pair<store::TileKey, std::string>>* out,
                        FlushStats* stats) {
  const tile::TileLayout& layout = *view.layout;
  const int64_t base_ms = view.def->tile_ms;
  RollupSet hours(layout, Resolution::kHour, kMillisPerHour);
  RollupSet days(layout, Resolution::kDay, kMillisPerDay);
  std::vector<RollupSet*> rollups;
  if (base_ms < kMillisPerHour) rollups.push_back(&hours);
  rollups.push_back(&days);
  if (!store_may_hold_view) {
    FlushFresh(view, shard, rollups, out, stats);
    return absl::OkStatus();
  }

  // Base tiles: stored ⊕ delta. Rollups: every touched slot is rebuilt as
  // (stored rollup, or else the at most one stored base tile inside it) ⊕ the deltas inside it,
  // and always written: a later flush of the same slot (live mode flushes every second) then
  // finds it with a point read instead of a range scan. (Writing a rollup over a single base
  // tile keeps the invariant readers rely on: an absent rollup covers at most one base tile.)
  std::vector<Pending> pending;
  pending.reserve(shard.size());
  for (const TileShard::Entry& e : shard.entries()) {
    pending.push_back(
        Pending{TileKey{view.id, std::string(e.key), Resolution::kBase, e.start_ms}, e.block});
    for (RollupSet* r : rollups) r->Add(e, /*min_children=*/0);
  }
  for (RollupSet* r : rollups) {
    r->ForEach([&](std::string_view key, int64_t start, RollupSet::Slot& slot) {
      pending.push_back(
          Pending{TileKey{view.id, std::string(key), r->resolution(), start}, slot.block});
    });
  }

  constexpr size_t kBatch = 4096;
  tile::OwnedBlock stored(layout);
  tile::OwnedBlock child(layout);
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
        if (!s.ok()) return Unreadable(view, p.key, s);
        ++stats->merged_with_stored;
      } else if (p.key.resolution != Resolution::kBase) {
        // No stored rollup: at most one stored base tile lies inside; fold in what is there.
        const int64_t unit = tile::ResolutionMillis(p.key.resolution, base_ms);
        absl::Status decode;
        TESSERA_RETURN_IF_ERROR(store->Scan(
            view.id, p.key.entity_key, Resolution::kBase, p.key.start_ms, p.key.start_ms + unit,
            [&](int64_t start, std::string_view bytes) {
              if (!decode.ok()) return;
              child.Reset();
              decode = layout.Deserialize(bytes, child.data());
              if (!decode.ok()) return;
              layout.Merge(stored.data(), child.data());
            }));
        if (!decode.ok()) return Unreadable(view, p.key, decode);
      }
      layout.Merge(stored.data(), p.delta);
      std::string bytes;
      layout.Serialize(stored.data(), &bytes);
      if (p.key.resolution == Resolution::kBase) {
        ++stats->base_tiles;
      } else {
        ++stats->rollup_tiles;
      }
      out->emplace_back(std::move(p.key), std::move(bytes));
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::engine
