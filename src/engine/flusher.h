#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "engine/catalog_store.h"
#include "engine/rollups.h"
#include "engine/tile_shard.h"
#include "store/tile_store.h"

namespace tessera::engine {

struct FlushStats {
  int64_t base_tiles = 0;          // base tiles written
  int64_t rollup_tiles = 0;        // hour and day tiles written
  int64_t merged_with_stored = 0;  // tiles that already existed and were read-merged
  int64_t flushes = 0;
  double build_seconds = 0;   // wall time of rollup + read-merge + encode (parallel)
  double commit_seconds = 0;  // wall time of the atomic store write and sync

  FlushStats& operator+=(const FlushStats& o) {
    base_tiles += o.base_tiles;
    rollup_tiles += o.rollup_tiles;
    merged_with_stored += o.merged_with_stored;
    flushes += o.flushes;
    build_seconds += o.build_seconds;
    commit_seconds += o.commit_seconds;
    return *this;
  }
};

// What a flush of one shard produces.
struct FlushOutput {
  std::vector<std::pair<store::TileKey, std::string>> tiles;
  // Rollups of open slots that this flush's base tiles fall in (owed: built once the slot
  // closes). Keys point into the flushed shard.
  std::vector<RollupRef> owed;
  // Rollups of closed slots written by this flush (any marker of theirs is obsolete).
  std::vector<RollupRef> settled;

  void clear() {
    tiles.clear();
    owed.clear();
    settled.clear();
  }
};

// Turns the open (delta) tiles of one shard into full tiles to write, appended to `out`: every
// base tile merged with what the store already holds (read-merge-write), and the hour and day
// rollups of the slots that are closed (end at or before `closed_by_ms`, the watermark at this
// flush): the stored children (or a stored rollup, which a DB written by an older version may
// hold) merged with the deltas. Rollups of open slots are only listed in out->owed
// (engine/rollups.h has the invariant).
//
// Because a shard's tiles are deltas since the last flush and merge is associative, stored ⊕
// delta is exactly the tile over all rows seen.
//
// A fresh view's flush (`store_may_hold_view` = false) reads nothing and writes a closed slot's
// rollup only where two or more base tiles fall in it.
// Thread-safe for distinct shards (the store is thread-safe).
absl::Status FlushShard(const ViewRuntime& view, const TileShard& shard, store::TileStore* store,
                        bool store_may_hold_view, int64_t closed_by_ms, FlushOutput* out,
                        FlushStats* stats);

}  // namespace tessera::engine
