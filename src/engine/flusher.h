#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "engine/catalog_store.h"
#include "engine/rollups.h"
#include "engine/tile_shard.h"
#include "store/slot_store.h"
#include "store/tile_store.h"
#include "tile/ladder.h"

namespace tessera::engine {

struct FlushStats {
  int64_t base_tiles = 0;          // base tiles written
  int64_t rollup_tiles = 0;        // hour and day tiles written
  int64_t lifetime_tiles = 0;      // lifetime tiles written (engine/lifetime.h)
  int64_t merged_with_stored = 0;  // tiles that already existed and were read-merged
  int64_t spilled_tiles = 0;       // base tile deltas written to spill runs (engine/spill.h)
  int64_t flushes = 0;
  double build_seconds = 0;   // wall time of rollup + read-merge + encode (parallel)
  double commit_seconds = 0;  // wall time of the atomic store write and sync

  FlushStats& operator+=(const FlushStats& o) {
    base_tiles += o.base_tiles;
    rollup_tiles += o.rollup_tiles;
    lifetime_tiles += o.lifetime_tiles;
    merged_with_stored += o.merged_with_stored;
    spilled_tiles += o.spilled_tiles;
    flushes += o.flushes;
    build_seconds += o.build_seconds;
    commit_seconds += o.commit_seconds;
    return *this;
  }
};

// What a flush of one shard produces.
struct FlushOutput {
  // Tiles in store key order, one run per flushed shard (FlushShard).
  std::vector<store::TileRun> runs;
  // Tiles in no particular order (FlushShardSlots, rollups built from the store).
  std::vector<std::pair<store::TileKey, std::string>> tiles;
  // Slot-partitioned flushes only (FlushShardSlots): tile_slots[i] is the writer slot (an index
  // into the pipeline's slot names) whose cell tiles[i] is.
  std::vector<uint32_t> tile_slots;
  // Rollups of open slots that this flush's base tiles fall in (owed: built once the slot
  // closes). Keys point into the flushed shard, or into owned_keys.
  std::vector<RollupRef> owed;
  std::deque<std::string> owned_keys;  // stay in place as more are added
  // owed[i]'s marker key (store::meta::OwedRollupKey), made by the flush worker.
  std::vector<std::string> owed_keys;
  // Rollups of closed slots written by this flush (any marker of theirs is obsolete).
  std::vector<RollupRef> settled;
  // Spill flushes (SpillShard): encoded entity keys sampled from the spilled shards
  // (engine/spill.h), each with the tiles it stands for, and the bytes spilled.
  struct EntitySample {
    uint32_t view_id;
    std::string key;
    uint64_t weight;
  };
  std::vector<EntitySample> entity_samples;
  size_t spilled_bytes = 0;

  void clear() {
    runs.clear();
    tiles.clear();
    tile_slots.clear();
    owed.clear();
    owned_keys.clear();
    owed_keys.clear();
    settled.clear();
    entity_samples.clear();
    spilled_bytes = 0;
  }
};

// Turns the open (delta) tiles of one shard into full tiles to write, appended to `out` as one
// run in store key order (out->runs): every base tile merged with what the store already holds
// (read-merge-write), and the hour and day rollups of the slots that are closed (end at or
// before `closed_by_ms`, the watermark at this flush): the stored rollup, or else the stored
// children, merged with the deltas. Rollups of open slots are only listed in out->owed
// (engine/rollups.h has the invariant); closed ones that were read are listed in out->settled.
//
// Because a shard's tiles are deltas since the last flush and merge is associative, stored ⊕
// delta is exactly the tile over all rows seen.
//
// `stored_until_ms`: the store holds no tile of this view starting after it (kStoreHoldsNone:
// none at all, as for a view's first flush; kStoreMayHoldAny: no such bound). Tiles and slots
// starting after it are written from the deltas alone, with no read; a closed slot's rollup
// there is written only where two or more base tiles fall in it. This is what makes a backfill
// into a new DB, flushed many times over its memory budget, read almost nothing back.
// Thread-safe for distinct shards (the store is thread-safe).
//
// With a base-tile retention (engine/retention.h), `kept_from_ms` is BaseTilesKeptFrom(now, R):
// slots ending at or before it count as closed whatever the watermark (their rollup is merged
// with the deltas at once, never rebuilt from base tiles the retention may have deleted), and
// an hour rollup is written even over a single base tile (so the retention can delete it).
// kNoRetention: neither.
inline constexpr int64_t kNoRetention = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kStoreHoldsNone = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kStoreMayHoldAny = std::numeric_limits<int64_t>::max();

absl::Status FlushShard(const ViewRuntime& view, const TileShard& shard, store::TileStore* store,
                        int64_t stored_until_ms, int64_t closed_by_ms, FlushOutput* out,
                        FlushStats* stats, int64_t kept_from_ms = kNoRetention);

// Rollup slots of one resolution: which are closed at a flush (ending at or before the
// watermark's `closed_by_ms`, or, under a base-tile retention, past `kept_from_ms`), and how
// many base tiles a closed slot of a view with no stored tiles needs for its rollup to be
// written (FlushShard, and the merge of spill runs).
class RollupRule {
 public:
  RollupRule(const ViewRuntime& view, store::Resolution resolution, int64_t closed_by_ms,
             int64_t kept_from_ms)
      : resolution_(resolution),
        unit_ms_(tile::ResolutionMillis(resolution, view.def->tile_ms)),
        closed_by_ms_(closed_by_ms),
        kept_from_ms_(kept_from_ms) {}

  store::Resolution resolution() const { return resolution_; }
  bool closed(int64_t start_ms) const {
    return tile::SlotClosed(start_ms, unit_ms_, closed_by_ms_) ||
           (kept_from_ms_ != kNoRetention && start_ms <= kept_from_ms_ - unit_ms_);
  }
  int min_children() const {
    return kept_from_ms_ != kNoRetention && resolution_ == store::Resolution::kHour ? 1 : 2;
  }

 private:
  const store::Resolution resolution_;
  const int64_t unit_ms_;
  const int64_t closed_by_ms_;
  const int64_t kept_from_ms_;
};

// A spill flush of one shard (engine/spill.h): its open tiles as they are (deltas, base tiles
// only: no reads, no rollups, nothing owed), appended to `out` as one run in store key order
// under the view id `spill_view_id`, with about `samples` of its entity keys (encoded) in
// out->entity_samples. Thread-safe for distinct shards.
void SpillShard(const ViewRuntime& view, const TileShard& shard, uint32_t spill_view_id,
                size_t samples, FlushOutput* out);

// The open tile keys of a slot-partitioned pipeline (a store with writer slots,
// store/slot_store.h): each key is the writer slot's index (4 bytes, big-endian) followed by
// the entity key, so the open tiles keep each slot's rows apart.
inline constexpr size_t kSlotTagBytes = 4;
void AppendSlotTag(uint32_t slot, std::string* out);
uint32_t SlotOfTaggedKey(std::string_view tagged);
inline std::string_view EntityOfTaggedKey(std::string_view tagged) {
  return tagged.substr(kSlotTagBytes);
}

// The flush of one shard of a slot-partitioned pipeline (docs/scale_out.md): for every open
// tile (slot, key, start), the slot's own committed cells of the base tile and of its hour and
// day rollups are read (SlotStore::MultiGetSlot), merged with the delta, and appended to `out`
// with their slot in out->tile_slots. Rollups are kept up to date at every flush (never owed),
// so a slot's rollup is always the merge of its base cells at the same version.
// `slot_names[i]` is the name of slot i. Thread-safe for distinct shards.
absl::Status FlushShardSlots(const ViewRuntime& view, const TileShard& shard,
                             store::SlotStore* slots, const std::vector<std::string>& slot_names,
                             FlushOutput* out, FlushStats* stats);

}  // namespace tessera::engine
