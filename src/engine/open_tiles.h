#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "engine/catalog_store.h"
#include "engine/tile_shard.h"
#include "store/tile_store.h"

namespace tessera::engine {

// The open (unflushed) tiles of one source's views, and the store snapshot they complete.
//
// Each view's keys are hashed into num_shards() TileShards. In each phase of a pipeline a shard
// is worked on by one worker at a time: the worker that claimed it for this round adds to it
// (Add(), exclusive lock) and refreshes its memory estimate; the worker that claimed it for a
// flush walks it. Rows of a shard are added in stream order whichever worker claims it, so
// aggregation is deterministic. Readers of open tiles (MergeInto) hold a shard's lock shared.
//
// Swap on flush: a flush first writes the store, then SwapOut() publishes the new store snapshot
// and swaps in empty shards in one exclusive section, so a reader sees either (old snapshot + the
// open tiles) or (new snapshot + nothing): every row exactly once. The swapped-out shards are
// freed by the workers in parallel (ReleaseRetired: shard s by worker s % threads), since
// destroying many sketches is not free.
//
// Memory: MemoryBytes() is what the flush trigger compares with the budget: arenas and hash
// tables (known exactly at all times) plus the heap memory of the sketches (HyperLogLog, KLL,
// LAST_K/TOP_K, string FIRST/LAST_VALUE), which only a walk over a shard's tiles can count.
// Walking every open tile every round would cost O(open tiles) per round, so a shard's heap is
// recounted exactly (by the worker that just added to it) only when one of these holds since its
// last count:
//   - it took at least max(kMinRowsPerCount, kRowsPerTilePerCount * tiles at the last count)
//     rows: the walk then costs at most 1/kRowsPerTilePerCount tile visits per row, amortized;
//   - its arena and hash-table bytes grew by more than budget / (8 * shards): a burst of new
//     keys is counted before it can matter;
//   - kRecountNanos (1 s) passed and it took rows: a slow live trickle is counted too.
// In between, a shard's heap is estimated as the last exact count scaled by its arena growth
// (new tiles are assumed to hold as much heap per arena byte as the counted ones). What the
// estimate can miss is the heap growth of the rows added since the last count beyond that
// proportion. It is bounded: each row grows a sketch's heap by a bounded amortized amount (an
// HLL entry or register page, at most 16 KiB per sketch in total; a KLL item; one LAST_K/TOP_K
// entry), and a shard takes at most max(kMinRowsPerCount, 2 * its tile count) rows, at most 1 s
// of input, between counts; each count is exact, so the error never accumulates. (On the
// 2M-event backfill benchmark the counts take about 1% of the CPU time.)
class OpenTiles {
 public:
  static constexpr uint64_t kMinRowsPerCount = 1024;
  static constexpr uint64_t kRowsPerTilePerCount = 2;
  static constexpr int64_t kRecountNanos = 1'000'000'000;

  // `threads` owners, `shards_per_thread` shards each per view. `clock` (monotonic time) paces
  // the time-based recount. The views' runtimes and the clock must outlive this.
  OpenTiles(std::vector<const ViewRuntime*> views, int threads, int shards_per_thread,
            size_t memory_budget_bytes, const Clock* clock);
  OpenTiles(const OpenTiles&) = delete;
  OpenTiles& operator=(const OpenTiles&) = delete;

  int num_shards() const { return num_shards_; }
  int threads() const { return threads_; }
  int ShardOf(uint64_t key_hash) const {
    return static_cast<int>(key_hash % static_cast<uint64_t>(num_shards_));
  }

  // The shard's worker of this round only: runs fn(TileShard&) on shard (view, shard) locked
  // exclusively (readers wait), and counts `rows` added rows for the memory estimate.
  template <typename Fn>
  void Add(size_t view, int shard, uint32_t rows, Fn&& fn) {
    {
      std::unique_lock lock(*mu_[view][shard]);
      fn(*shards_[view][shard]);
    }
    memory_[view][shard].rows_since_count += rows;
  }

  // The shard's worker (or any thread while no one adds, e.g. during a flush): the shard,
  // without locking.
  const TileShard& shard(size_t view, int shard) const { return *shards_[view][shard]; }

  // Thread-safe, callable at any time: merges into *blocks[i] the open tiles of (view, key) with
  // start in ranges[i] ([from, to)), adds their number to *tiles_merged, and returns the store
  // snapshot they complete (see OpenTileSource::MergeOpenTiles).
  std::shared_ptr<const store::StoreSnapshot> MergeInto(
      size_t view, std::string_view key, std::span<const std::pair<int64_t, int64_t>> ranges,
      std::span<std::byte* const> blocks, int64_t* tiles_merged) const;

  // The shard's flush worker, in a pipeline whose open tiles no reader merges (a backfill): frees
  // the shard's tile states once the flush has serialized them. Its keys stay until SwapOut()'s
  // shards are released (the flush's owed rollups point into them).
  void DropStates(size_t view, int shard) { shards_[view][shard]->DestroyStates(); }

  // Sets the store snapshot readers pair with the open tiles, while they are empty (before
  // anything is added, or right after a SwapOut).
  void Publish(std::shared_ptr<const store::StoreSnapshot> snapshot);
  // The store now holds every open tile (as of `snapshot`): publishes it and swaps in empty
  // shards in one exclusive section. Coordinating thread, while no one adds.
  void SwapOut(std::shared_ptr<const store::StoreSnapshot> snapshot);
  // Frees the swapped-out shards owned by `worker`. Each worker after SwapOut().
  void ReleaseRetired(int worker);

  // The shard's worker of this round: refreshes its memory estimate, recounting sketch heap
  // exactly where due (see the class comment). Call after adding to it, once per round.
  void UpdateMemory(size_t view, int shard);
  // Coordinating thread, between phases: UpdateMemory of every shard whose rows are not all
  // counted and whose last count is kRecountNanos old, so a shard that went quiet is counted too.
  void UpdateStaleMemory();
  // The open tiles' bytes: the sum of the shards' estimates as of their last UpdateMemory();
  // of all views, or of one. Coordinating thread, between phases.
  size_t MemoryBytes() const;
  size_t MemoryBytes(size_t view) const;
  // Number of open tiles (of all views, or of one), and whether there are none. Coordinating
  // thread, between phases.
  size_t size() const;
  size_t size(size_t view) const;
  bool empty() const;
  // Exact heap recounts so far (for tests of the accounting's cost).
  int64_t heap_recounts() const;

 private:
  // Memory bookkeeping of one shard, touched only by its worker (and summed between phases).
  struct ShardMemory {
    size_t estimate = 0;        // arena + table bytes + estimated heap, at the last update
    size_t heap_counted = 0;    // exact sketch heap at the last count
    size_t table_at_count = 0;  // TileShard::MemoryBytes() at the last count
    size_t tiles_at_count = 0;
    uint64_t rows_since_count = 0;
    int64_t counted_at_ns = 0;
    int64_t recounts = 0;
  };
  void Recount(size_t view, int shard, size_t table_bytes, int64_t now_ns);

  const std::vector<const ViewRuntime*> views_;
  const int threads_;
  const int num_shards_;
  const size_t growth_per_count_;  // arena growth that forces a recount, per shard
  const Clock* clock_;

  // shards_[view][shard], guarded by mu_[view][shard] against readers, and the pointers by
  // publish_mu_.
  std::vector<std::vector<std::unique_ptr<TileShard>>> shards_;
  std::vector<std::vector<std::unique_ptr<std::shared_mutex>>> mu_;
  std::vector<std::vector<ShardMemory>> memory_;
  std::vector<std::vector<std::unique_ptr<TileShard>>> retired_;
  // Guards the shards_ pointers (not contents; readers take it shared, SwapOut exclusively) and
  // published_.
  mutable SharedMutex publish_mu_;
  std::shared_ptr<const store::StoreSnapshot> published_ ABSL_GUARDED_BY(publish_mu_);
};

}  // namespace tessera::engine
