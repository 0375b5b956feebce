#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/time_util.h"
#include "store/tile_store.h"

namespace tessera::engine {

// Base-tile retention: a store-level setting R (metadata store::meta::kBaseRetentionKey). Base
// tiles of a UTC day that ended at least R ago may be deleted once the hour rollup covering them
// is stored (the RocksDB store's compaction filter does it, store/rocksdb/base_retention_filter.h;
// Bigtable ages out its base-tile family); rollups are kept forever. Readers answer windows
// reaching that far back from the rollups, rounding such a window's tail (and an `at` that far
// back) outward to the hour: FeatureReaderOptions::base_retention_ms, docs/storage_format.md §6.
//
// R can be set on a DB that never had one and lowered later; it cannot be raised or removed once
// set, because base tiles older than the current R may already be gone and a reader with a
// larger R would read them as if they were there (backfill into a new DB instead).

// Shortest retention: two days keeps every base tile until well after its slot closed and its
// owed rollups were built (lateness is usually minutes to hours).
inline constexpr int64_t kMinBaseRetentionMs = 2 * kMillisPerDay;

// OK for 0 (keep base tiles forever) or a whole number of hours >= kMinBaseRetentionMs and
// <= kMaxDurationMs; InvalidArgument naming the value and the rule otherwise.
absl::Status ValidateBaseRetention(int64_t ms);

// Records R in the store's metadata (one atomic write). Errors: InvalidArgument from
// ValidateBaseRetention; FailedPrecondition when it would raise or remove a retention already set
// (setting the same value again is a no-op); DataLoss when the stored value is unreadable; the
// store's own errors. Takes effect for a RocksDB store opened on the DB at once (it follows the
// key), for readers at their next LoadBaseRetention.
absl::Status SetBaseRetention(store::TileStore* store, int64_t ms);

// R as stored: 0 when the DB has none. DataLoss when the stored value is not one that
// SetBaseRetention writes.
absl::StatusOr<int64_t> LoadBaseRetention(store::TileStore* store);

// Start of the first UTC day whose base tiles are all still kept at `now_ms` under retention
// `retention_ms` (> 0): a base tile starting before it may be gone. The RocksDB filter only drops
// base tiles before this point (its own clock is earlier, and it keeps an extra hour of slack).
inline int64_t BaseTilesKeptFrom(int64_t now_ms, int64_t retention_ms) {
  return AlignDown(now_ms - retention_ms, kMillisPerDay);
}

}  // namespace tessera::engine
