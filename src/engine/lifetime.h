#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/time_util.h"
#include "engine/catalog_store.h"
#include "store/tile_store.h"
#include "tile/tile_layout.h"

namespace tessera::engine {

// The per-key lifetime rollup that answers `all` windows (everything since the key's first row).
//
// A key's lifetime tile (store::Resolution::kLifetime, start 0) holds an *edge* E, a UTC day
// boundary, and the merge of every row of the key with event time before E. Invariant readers
// rely on, like the rollups' (engine/rollups.h): the lifetime tile is exactly the merge of the
// key's rows before its edge, so `all` at `at` is the lifetime tile ⊕ the stored tiles in
// [E, at) ⊕ the unflushed rows — a handful of tiles however old the key is.
//
// Writers keep it so in the same atomic write as the tiles they change:
//   * FlushShard (engine/flusher.h), for every key it flushes: the new edge is
//     E' = max(E, LifetimeEdge(watermark)), and the new tile is the old one ⊕ the stored tiles
//     in [E, E') (read before this write: MergeStoredRange) ⊕ this flush's rows before E' (late
//     rows and backfills into the past land there too). A key without a tile starts from the
//     merge of all its stored tiles (once: a DB written before lifetime tiles existed). The tile
//     is written when it changes, or when it is new and the store holds tiles of the view; into
//     a view with nothing stored, only keys with rows before the edge get one.
//   * The merge of spill runs (engine/spill.h), where the store held no tile of the view: the
//     rows before LifetimeEdge(watermark), for keys that have some, as one flush would.
// Base-tile retention never deletes it (it deletes base tiles only), and rows older than the
// retention are in it like any other.
//
// Slot-partitioned stores (Bigtable workers, FlushShardSlots) keep no watermark-closed slots:
// each writer slot's lifetime cell holds every row the slot ever wrote for the key, with the
// edge kLifetimeEdgeAll, read-merge-written at every flush like the slot's rollup cells. A read
// merges all slots' cells when no stored base tile of the key starts at or after its head (so
// they hold no row the window excludes) and the head is inside the base-tile retention; else
// it merges the key's stored tiles from the start.

// No edge (no watermark yet): no lifetime tile is written.
inline constexpr int64_t kNoLifetimeEdge = std::numeric_limits<int64_t>::min();

// The edge for a flush at watermark `closed_by_ms` (tile::SlotClosed's bound): the end of the
// newest closed UTC day, or kNoLifetimeEdge when there is no watermark.
int64_t LifetimeEdge(int64_t closed_by_ms);

// The edge of a slot store's lifetime cells: past every accepted event time (10000-01-01).
inline constexpr int64_t kLifetimeEdgeAll = kMaxTimestampMs + 1;

// The stored start of every lifetime tile.
inline constexpr int64_t kLifetimeTileStart = 0;

// Lifetime tile encoding: zigzag varint edge, then the tile's encoding (tile::TileLayout).
void EncodeLifetimeTile(int64_t edge_ms, const tile::TileLayout& layout, const std::byte* block,
                        std::string* out);
// Splits an encoded lifetime tile into its edge and its tile encoding (a view into `bytes`).
// DataLoss for a malformed edge.
absl::Status DecodeLifetimeTile(std::string_view bytes, int64_t* edge_ms, std::string_view* tile);

// Merges into `block` every row of `key` stored in [from_ms, to_ms) (day boundaries): the day
// rollups there, the hour rollups of days without one, the base tiles of hours (and days)
// without one. Three scans of `scanner`; returns the number of tiles merged. `block` must be
// Init()'ed; after an error it may hold part of the range (the caller discards it).
absl::StatusOr<int64_t> MergeStoredRange(const ViewRuntime& view, store::TileScanner* scanner,
                                         std::string_view key, int64_t from_ms, int64_t to_ms,
                                         std::byte* block);

}  // namespace tessera::engine
