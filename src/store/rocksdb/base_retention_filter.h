#pragma once

// Base-tile retention for the RocksDB store (engine/retention.h has the setting and the read
// side). Internal to src/store/rocksdb.

#include <rocksdb/compaction_filter.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "common/clock.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace tessera::store::rocksdb_internal {

// Extra age a base tile's day must have, beyond the retention, before a compaction drops it: the
// filter's clock (the writer's) may run ahead of a reader's (another process, or a clock stepped
// back), and a reader only avoids base tiles that *its* clock calls expired.
inline constexpr int64_t kRetentionClockSlackMs = 60 * 60 * 1000;

// Creates one filter per compaction. Each drops a stored tile when ALL of these hold:
//   1. it is a well-formed tile key of base resolution (metadata, log entries and hour/day
//      rollups are never dropped);
//   2. a retention R > 0 is set and the tile's UTC day ended at or before
//      now - R - kRetentionClockSlackMs, `now` read from the clock when the compaction starts;
//   3. the hour rollup covering it (same view and entity key, resolution hour, start = the
//      tile's start aligned down to the hour) is stored now: a DB::Get at the latest state.
// Anything else, including a failed Get or no DB attached yet, keeps the tile.
//
// Why that is sound (docs/storage_format.md §6): tiles are never deleted by the engine, so a
// rollup seen by (3) stays; a rollup is written only for a closed slot, whose rows are final, and
// then holds every row of its base tiles; every reader of base tiles either reads that rollup
// instead (FeatureReader rounds expired tails to the hour and re-reads when a rollup appeared
// under it; MergeStoredChildren skips base tiles of hours that have a rollup) or only reads base
// tiles of open slots (the flusher's read-merge-write), which have no rollup. Views whose base
// tile is 1h have no hour rollups, so their base tiles are kept.
//
// Calling DB::Get from a compaction filter: RocksDB advises care, not a ban (MyRocks does it).
// The risks named upstream are writes from the filter (a write stall waiting on the compaction
// itself: we only read) and the compaction's output not being installed yet (we only rely on
// keys that are never deleted). Thread-safe: the factory is shared, each filter is used by one
// compaction thread.
class BaseRetentionFilterFactory final : public rocksdb::CompactionFilterFactory {
 public:
  // `clock` must outlive the factory.
  explicit BaseRetentionFilterFactory(const Clock* clock) : clock_(clock) {}

  // The DB whose rollups the filters look up; null (the default, and while the DB opens or
  // closes) keeps every tile. `db` must stay open until SetDb(nullptr) has returned and the
  // compactions running then have finished (DB::Close waits for them).
  void SetDb(rocksdb::DB* db) { db_.store(db, std::memory_order_release); }
  // R in ms; 0 (or more than kMaxDurationMs) keeps every tile. Compactions starting afterwards
  // use it.
  void SetRetention(int64_t ms) { retention_ms_.store(ms, std::memory_order_relaxed); }
  int64_t retention_ms() const { return retention_ms_.load(std::memory_order_relaxed); }
  // Base tiles dropped so far by this factory's filters.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& context) override;
  const char* Name() const override { return "tessera.BaseRetention"; }

 private:
  friend class BaseRetentionFilter;
  const Clock* const clock_;
  std::atomic<rocksdb::DB*> db_{nullptr};
  std::atomic<int64_t> retention_ms_{0};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace tessera::store::rocksdb_internal
