#include "engine/flusher.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "common/errors.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/varint.h"
#include "engine/lifetime.h"
#include "store/key_codec.h"
#include "tile/ladder.h"

namespace tessera::engine {
namespace {

using store::Resolution;
using store::TileKey;

// A shard's open tiles in store key order: by entity key as encoded (varint length, then the
// bytes), then start. `prefix` holds the first 16 encoded bytes (zero-padded, big-endian), so
// most comparisons never touch the keys; encoded keys are prefix-free, so equal prefixes mean
// equal lengths, and equal keys when the key is shorter than 15 bytes. The entry is a copy:
// walking the sorted order then touches only the blocks.
struct Sorted {
  uint64_t prefix[2];
  TileShard::Entry entry;
};

bool SameKey(const Sorted& a, const Sorted& b) {
  return a.prefix[0] == b.prefix[0] && a.prefix[1] == b.prefix[1] &&
         (a.entry.key.size() < 15 || a.entry.key == b.entry.key);
}

std::vector<Sorted> SortedEntries(const TileShard& shard) {
  std::vector<Sorted> sorted;
  sorted.reserve(shard.size());
  for (const TileShard::Entry& e : shard.entries()) {
    char bytes[16] = {};
    static_assert(sizeof(bytes) >= kMaxVarint64Bytes);
    const size_t n = EncodeVarint64(e.key.size(), bytes);  // as the store key encodes it
    const size_t copy = std::min(e.key.size(), sizeof(bytes) - n);
    std::memcpy(bytes + n, e.key.data(), copy);
    Sorted s{{0, 0}, e};
    for (size_t i = 0; i < 16; ++i) {
      s.prefix[i / 8] = s.prefix[i / 8] << 8 | static_cast<unsigned char>(bytes[i]);
    }
    sorted.push_back(s);
  }
  std::sort(sorted.begin(), sorted.end(), [](const Sorted& a, const Sorted& b) {
    if (a.prefix[0] != b.prefix[0]) return a.prefix[0] < b.prefix[0];
    if (a.prefix[1] != b.prefix[1]) return a.prefix[1] < b.prefix[1];
    if (!SameKey(a, b)) return a.entry.key < b.entry.key;
    return a.entry.start_ms < b.entry.start_ms;
  });
  return sorted;
}

// The end of the key group that starts at sorted[begin].
size_t KeyGroupEnd(const std::vector<Sorted>& sorted, size_t begin) {
  size_t end = begin + 1;
  while (end < sorted.size() && SameKey(sorted[begin], sorted[end])) ++end;
  return end;
}

// Calls fn(ref, first, last) for every rollup slot of `rule`'s resolution that the base tiles
// [first, last) of one key (sorted by start) fall in, in increasing slot start.
template <typename Fn>
void ForEachSlot(const ViewRuntime& view, const RollupRule& rule, const Sorted* first,
                 const Sorted* last, Fn&& fn) {
  while (first != last) {
    const int64_t slot = tile::ParentSlot(rule.resolution(), first->entry.start_ms);
    const Sorted* end = first + 1;
    while (end != last && tile::ParentSlot(rule.resolution(), end->entry.start_ms) == slot) ++end;
    fn(RollupRef{view.id, rule.resolution(), slot, first->entry.key, first->entry.key_hash}, first,
       end);
    first = end;
  }
}

// One tile a flush writes, in store key order: a base tile (its one delta) or a closed slot's
// rollup (the base deltas [first, last) of its key), merged with the stored tile or children
// when `read`.
struct Item {
  Resolution resolution;
  int64_t start_ms;
  const Sorted* first;
  const Sorted* last;
  bool read;
};

constexpr size_t kPrefetch = 8;

// Asks for every cache line of an open tile's block: serializing a tile reads all its states.
void PrefetchBlock(const std::byte* block, size_t bytes) {
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(block + off);
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
                        int64_t stored_until_ms, int64_t closed_by_ms, FlushOutput* out,
                        FlushStats* stats, int64_t kept_from_ms) {
  if (shard.size() == 0) return absl::OkStatus();
  const tile::TileLayout& layout = *view.layout;
  std::vector<RollupRule> rules;
  for (Resolution res : tile::RollupResolutions(view.def->tile_ms)) {
    rules.emplace_back(view, res, closed_by_ms, kept_from_ms);
  }
  const std::vector<Sorted> sorted = SortedEntries(shard);
  store::TileRun& run = out->runs.emplace_back();

  // Items are gathered key by key and written in batches, each with one MultiGet of the tiles
  // that need a read.
  constexpr size_t kMaxReads = 4096;
  constexpr size_t kMaxItems = 65536;
  std::vector<Item> items;
  size_t reads = 0;
  tile::OwnedBlock stored(layout);
  tile::OwnedBlock merged(layout);
  std::vector<TileKey> keys;
  std::vector<std::optional<std::string>> values;
  std::unique_ptr<store::TileScanner> scanner;  // made at the first rollup built from children
  // The key's lifetime tile (engine/lifetime.h): the stored one (`existing`, null when the store
  // holds no tile of the view) advanced to the edge of this flush's watermark, plus the deltas
  // [it.first, it.last) (ascending start) before the new edge. Written when it changes, or is
  // new while the store holds tiles of the view.
  const int64_t edge = LifetimeEdge(closed_by_ms);
  auto write_lifetime = [&](const Item& it,
                            const std::optional<std::string>* existing) -> absl::Status {
    const std::string_view key = it.first->entry.key;
    stored.Reset();
    int64_t old_edge = kNoLifetimeEdge;
    if (existing != nullptr && existing->has_value()) {
      std::string_view tile;
      absl::Status s = DecodeLifetimeTile(**existing, &old_edge, &tile);
      if (s.ok()) s = layout.Deserialize(tile, stored.data());
      if (!s.ok()) return UnreadableTile(view, key, kLifetimeTileStart, s);
    }
    const bool had = old_edge != kNoLifetimeEdge;
    const int64_t new_edge = std::max(old_edge, edge);
    // With nothing stored, a key without rows before the edge needs no tile yet (its reads find
    // every row from the start cheaply); once anything is stored, a key gets its tile at once,
    // so that later flushes do not look for rows before the edge again and again.
    bool changed = new_edge != old_edge && existing != nullptr;
    if (existing != nullptr && new_edge > old_edge) {
      // Rows stored in [old edge, new edge): all the key's stored rows when it had no tile.
      if (scanner == nullptr) scanner = store->NewScanner(nullptr, store::ScanOrder::kRandom);
      TESSERA_RETURN_IF_ERROR(MergeStoredRange(view, scanner.get(), key,
                                               had ? old_edge : kMinTimestampMs, new_edge,
                                               stored.data())
                                  .status());
    }
    for (const Sorted* s = it.first; s != it.last && s->entry.start_ms < new_edge; ++s) {
      layout.Merge(stored.data(), s->entry.block);
      changed = true;
    }
    if (!changed) return absl::OkStatus();
    EncodeLifetimeTile(new_edge, layout, stored.data(),
                       run.BeginTile(view.id, key, Resolution::kLifetime, kLifetimeTileStart));
    ++stats->lifetime_tiles;
    return absl::OkStatus();
  };
  auto write_items = [&]() -> absl::Status {
    keys.clear();
    for (const Item& it : items) {
      if (it.read) {
        keys.push_back(
            TileKey{view.id, std::string(it.first->entry.key), it.resolution, it.start_ms});
      }
    }
    if (!keys.empty()) TESSERA_RETURN_IF_ERROR(store->MultiGet(keys, &values));
    size_t next_read = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i + kPrefetch < items.size()) {
        PrefetchBlock(items[i + kPrefetch].first->entry.block, layout.block_size());
      }
      const Item& it = items[i];
      const std::string_view key = it.first->entry.key;
      if (it.resolution == Resolution::kLifetime) {
        TESSERA_RETURN_IF_ERROR(write_lifetime(it, it.read ? &values[next_read++] : nullptr));
        continue;
      }
      const std::byte* delta = it.first->entry.block;
      if (it.last - it.first > 1) {
        merged.Reset();
        for (const Sorted* s = it.first; s != it.last; ++s)
          layout.Merge(merged.data(), s->entry.block);
        delta = merged.data();
      }
      if (it.read) {
        const std::optional<std::string>& existing = values[next_read++];
        stored.Reset();
        if (existing.has_value()) {
          absl::Status s = layout.Deserialize(*existing, stored.data());
          if (!s.ok()) return UnreadableTile(view, key, it.start_ms, s);
          ++stats->merged_with_stored;
        } else if (it.resolution != Resolution::kBase) {
          if (scanner == nullptr) scanner = store->NewScanner(nullptr, store::ScanOrder::kRandom);
          TESSERA_RETURN_IF_ERROR(MergeStoredChildren(view, scanner.get(), key, it.resolution,
                                                      it.start_ms, stored.data())
                                      .status());
        }
        layout.Merge(stored.data(), delta);
        delta = stored.data();
      }
      layout.Serialize(delta, run.BeginTile(view.id, key, it.resolution, it.start_ms));
      if (it.resolution == Resolution::kBase) {
        ++stats->base_tiles;
      } else {
        ++stats->rollup_tiles;
      }
    }
    items.clear();
    reads = 0;
    return absl::OkStatus();
  };

  for (size_t begin = 0; begin < sorted.size();) {
    const size_t end = KeyGroupEnd(sorted, begin);
    for (size_t i = begin; i < end; ++i) {
      const bool read = sorted[i].entry.start_ms <= stored_until_ms;
      items.push_back(
          Item{Resolution::kBase, sorted[i].entry.start_ms, &sorted[i], &sorted[i] + 1, read});
      reads += read;
    }
    for (const RollupRule& rule : rules) {
      ForEachSlot(view, rule, &sorted[begin], &sorted[0] + end,
                  [&](const RollupRef& ref, const Sorted* first, const Sorted* last) {
                    if (!rule.closed(ref.start_ms)) {
                      out->owed.push_back(ref);
                      return;
                    }
                    // No tile of the slot is stored when it starts after stored_until_ms (so
                    // no marker either): its rollup is the deltas', written where they are
                    // enough children. Otherwise it is the stored rollup or children ⊕ deltas.
                    const bool read = ref.start_ms <= stored_until_ms;
                    if (!read && last - first < rule.min_children()) return;
                    items.push_back(Item{ref.resolution, ref.start_ms, first, last, read});
                    reads += read;
                    if (read) out->settled.push_back(ref);
                  });
    }
    if (edge != kNoLifetimeEdge) {
      const bool read = stored_until_ms != kStoreHoldsNone;
      items.push_back(
          Item{Resolution::kLifetime, kLifetimeTileStart, &sorted[begin], &sorted[0] + end, read});
      reads += read;
    }
    begin = end;
    if (reads >= kMaxReads || items.size() >= kMaxItems) TESSERA_RETURN_IF_ERROR(write_items());
  }
  return write_items();
}

void SpillShard(const ViewRuntime& view, const TileShard& shard, uint32_t spill_view_id,
                size_t samples, FlushOutput* out) {
  if (shard.size() == 0) return;
  const tile::TileLayout& layout = *view.layout;
  const std::vector<Sorted> sorted = SortedEntries(shard);
  store::TileRun& run = out->runs.emplace_back();
  const size_t every = std::max<size_t>(1, sorted.size() / std::max<size_t>(1, samples));
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i + kPrefetch < sorted.size()) {
      PrefetchBlock(sorted[i + kPrefetch].entry.block, layout.block_size());
    }
    const TileShard::Entry& e = sorted[i].entry;
    std::string* bytes = run.BeginTile(spill_view_id, e.key, Resolution::kBase, e.start_ms);
    const size_t before = bytes->size();
    layout.Serialize(e.block, bytes);
    out->spilled_bytes += bytes->size() - before + e.key.size() + store::kViewPrefixBytes + 10;
    if (i % every == 0) {
      out->entity_samples.push_back(FlushOutput::EntitySample{
          view.id, store::EncodeEntityInView(e.key), std::min(every, sorted.size() - i)});
    }
  }
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
    auto rollup = [&](Resolution res) {
      const int64_t start =
          res == Resolution::kLifetime ? kLifetimeTileStart : tile::ParentSlot(res, e.start_ms);
      auto [it, inserted] =
          rollup_index.try_emplace(SlotTileRef{slot, entity, res, start}, slot, deltas.size());
      if (inserted) {
        deltas.push_back(SlotDelta{TileKey{view.id, std::string(entity), res, start}, nullptr,
                                   std::make_unique<tile::OwnedBlock>(layout)});
      }
      layout.Merge(deltas[it->second.second].merged->data(), e.block);
    };
    for (Resolution res : tile::RollupResolutions(view.def->tile_ms)) rollup(res);
    rollup(Resolution::kLifetime);  // every row of the slot (engine/lifetime.h)
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
        const bool lifetime = d.key.resolution == Resolution::kLifetime;
        if (existing.has_value()) {
          std::string_view tile = *existing;
          int64_t edge = kLifetimeEdgeAll;
          absl::Status s =
              lifetime ? DecodeLifetimeTile(*existing, &edge, &tile) : absl::OkStatus();
          if (s.ok() && edge != kLifetimeEdgeAll) {
            s = DataLoss("a writer slot's lifetime cell has the edge {}, expected {}", edge,
                         kLifetimeEdgeAll);
          }
          if (s.ok()) s = layout.Deserialize(tile, stored.data());
          if (!s.ok()) return UnreadableTile(view, d.key.entity_key, d.key.start_ms, s);
          ++stats->merged_with_stored;
        }
        layout.Merge(stored.data(), d.block != nullptr ? d.block : d.merged->data());
        std::string bytes;
        if (lifetime) {
          EncodeLifetimeTile(kLifetimeEdgeAll, layout, stored.data(), &bytes);
          ++stats->lifetime_tiles;
        } else {
          layout.Serialize(stored.data(), &bytes);
          if (d.key.resolution == Resolution::kBase) {
            ++stats->base_tiles;
          } else {
            ++stats->rollup_tiles;
          }
        }
        out->tiles.emplace_back(std::move(d.key), std::move(bytes));
        out->tile_slots.push_back(slot);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::engine
