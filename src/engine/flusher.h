#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "engine/catalog_store.h"
#include "engine/tile_shard.h"
#include "store/tile_store.h"

namespace tessera::engine {

struct FlushStats {
  int64_t base_tiles = 0;    // base tiles written
  int64_t rollup_tiles = 0;  // hour and day tiles written
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

// Turns the open (delta) tiles of one shard into full tiles to write: every base tile, plus the
// hour and day rollups they belong to, each merged with what the store already holds
// (read-merge-write), serialized and appended to `out`.
//
// Because a shard's tiles are deltas since the last flush and merge is associative, stored ⊕
// delta is exactly the tile over all rows seen, and a rollup stays exactly the merge of its
// children even when late rows update a child after the rollup was first written.
//
// Rollup invariant (readers rely on it): a stored rollup is exactly the merge of the base tiles
// inside it; where no rollup is stored, at most one base tile lies inside. A fresh view's flush
// (`store_may_hold_view` = false: no reads) writes rollups only where two or more base tiles
// fall; later flushes rewrite every rollup they touch.
// Thread-safe for distinct shards (the store is thread-safe).
absl::Status FlushShard(const ViewRuntime& view, const TileShard& shard,
                        store::TileStore* store, bool store_may_hold_view,
                        std::vector<std::pair<store::TileKey, std::string>>* out,
                        FlushStats* stats);

}  // namespace tessera::engine
