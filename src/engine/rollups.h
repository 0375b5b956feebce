#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/catalog_store.h"
#include "store/tile_store.h"

namespace tessera::engine {

// Hour and day rollups.
//
// Invariant readers rely on: a stored rollup is exactly the merge of the stored tiles inside its
// slot (a flush that changes a child rewrites the rollup in the same atomic write). Where no
// rollup is stored, readers merge the next finer level instead (day -> hours -> base tiles),
// so a missing rollup only costs read time, never correctness.
//
// Rollups are written only for *closed* slots: the slot ends at or before the source's
// watermark (newest event time - lateness), so no row can land in it any more and the rollup is
// final. While a slot is open, flushes write its base tiles only and record its rollup as *owed*
// (a metadata marker, see PendingRollups); the flush whose watermark closes a slot it has rows
// in writes the rollup directly, and owed rollups of closed slots are built from the stored
// children by later flushes, a bounded number per flush. So the every-second live flush costs
// one read-merge-write per touched base tile however late (within the lateness) its rows are;
// the price is paid by reads whose window covers a whole open slot (within the lateness after
// an hour or day boundary), which merge its finer tiles instead.

// A rollup slot of one entity key.
struct RollupRef {
  uint32_t view_id = 0;
  store::Resolution resolution = store::Resolution::kHour;
  int64_t start_ms = 0;
  std::string_view key;
  uint64_t key_hash = 0;  // Hash64(key)
};

// An owed rollup taken for building (owns its key).
struct OwedRollup {
  uint32_t view_id = 0;
  store::Resolution resolution = store::Resolution::kHour;
  int64_t start_ms = 0;
  std::string key;
};

// Merges into `block` the stored tiles one level below rollup (resolution, start) of `key`:
// for an hour, its base tiles; for a day, its stored hour rollups plus the base tiles of the
// hours that have none, read through `scanner` (one cursor for all the rollups a flush builds).
// Returns how many tiles were merged. `block` must be Init()'ed; after an error it may hold part
// of the children (the caller discards it).
absl::StatusOr<int> MergeStoredChildren(const ViewRuntime& view, store::TileScanner* scanner,
                                        std::string_view key, store::Resolution resolution,
                                        int64_t start_ms, std::byte* block);

// Builds the rollup of a closed slot from the store and appends it to `out` when it merges two
// or more tiles (with one, readers read that tile directly) — or one, for an hour with
// `single_child_hours` (a base-tile retention, so that the base tile can be deleted). Returns
// whether it was written.
absl::StatusOr<bool> BuildRollupFromStore(const ViewRuntime& view, store::TileScanner* scanner,
                                          const OwedRollup& rollup,
                                          std::vector<std::pair<store::TileKey, std::string>>* out,
                                          bool single_child_hours = false);

// The rollups owed by one source's views (base tiles were written while their slot was
// open): in the store as metadata markers (store::meta::OwedRollupKey,
// "rollup/owed/{view}/{resolution}/{start}/{key}", written in the same atomic batch as the base
// tiles that made them owed), and mirrored in memory so a slot's marker is written once, not on
// every flush. Not thread-safe: the pipeline's coordinating thread owns it (the const Owes may
// be called from several threads while nothing modifies it).
//
// Memory: 8 bytes per owed (key, slot) while the slot is open; keys are read back from the
// markers only when the slot closes.
class PendingRollups {
 public:
  explicit PendingRollups(store::TileStore* store) : store_(store) {}

  // Loads the markers of these views (call once, before use).
  absl::Status Load(const std::vector<uint32_t>& view_ids);

  // Records that `r` is owed; appends its marker to `batch` unless already recorded.
  void Owe(const RollupRef& r, store::WriteBatch* batch);
  // Owe with the marker's key made already (store::meta::OwedRollupKey of `r`, e.g. by the
  // flush workers in parallel).
  void Owe(const RollupRef& r, std::string marker_key, store::WriteBatch* batch);
  // Whether `r` is recorded as owed (its marker written or in the batch being committed). Const:
  // callable from several threads while nothing modifies this (the flush workers, between
  // TakeClosed and the commit).
  bool Owes(const RollupRef& r) const;
  // `r` was written directly: forgets it, deleting its marker when one was recorded.
  void Settle(const RollupRef& r, store::WriteBatch* batch);

  // True when some owed rollup's slot ends at or before `closed_by_ms`.
  bool HasClosed(int64_t closed_by_ms) const;
  // Moves up to `limit` owed rollups whose slots end at or before `closed_by_ms` into `out`
  // (oldest slots first) and appends the deletion of their markers to `batch`.
  absl::Status TakeClosed(int64_t closed_by_ms, size_t limit, std::vector<OwedRollup>* out,
                          store::WriteBatch* batch);

  // Owed rollups known in memory (for metrics and tests).
  size_t size() const { return size_; }
  // Of those, the ones whose slots end at or before `closed_by_ms`.
  size_t CountClosed(int64_t closed_by_ms) const;

 private:
  // Ordered by slot end, so the closed slots come first.
  using SlotId =
      std::tuple<int64_t /*end_ms*/, uint32_t /*view*/, uint8_t /*res*/, int64_t /*start_ms*/>;
  struct Slot {
    absl::flat_hash_set<uint64_t> key_hashes;  // owed keys (hashes) not yet taken
    std::vector<std::string> keys;             // read from the markers when the slot closes
    size_t next = 0;                           // keys[next..] not yet taken
    bool listed = false;
  };
  static SlotId Id(uint32_t view_id, store::Resolution resolution, int64_t start_ms);

  store::TileStore* store_;
  std::map<SlotId, Slot> slots_;
  size_t size_ = 0;
};

}  // namespace tessera::engine
