#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/tile_store.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace tessera::store {

// How to open a RocksDbTileStore. Defaults suit a long-running `tessera run`.
struct RocksDbOptions {
  // Create the directory (and its parents) and an empty DB when none exists. Ignored when
  // read_only.
  bool create_if_missing = true;
  // Open for reading only (`tessera get`): takes no lock and never creates or modifies files;
  // the DB must already exist. Write() returns FailedPrecondition, Sync() does nothing.
  // Only sees what was durable when opened. REQUIRES: no writer has the DB open (RocksDB's
  // read-only mode is undefined beside a live writer).
  bool read_only = false;
  // Skip the write-ahead log: much faster bulk loads, but writes since the last Sync() are lost
  // on a crash. Backfill sets this and calls Sync() at the end (Sync flushes the memtables).
  bool disable_wal = false;
  // fsync the WAL on every Write (survives machine crashes, not just process crashes). Has no
  // effect when disable_wal.
  bool sync = false;
  // One LRU cache shared by data, index and filter blocks (index/filter blocks at high priority).
  size_t block_cache_bytes = size_t{256} << 20;
  // Size of one memtable; up to 3 exist at once while flushes run.
  size_t write_buffer_bytes = size_t{64} << 20;
  // Flush + compaction threads.
  int max_background_jobs = 2;
  // Bloom filter density (whole keys and tile prefixes). 10 bits/key ~ 1% false positives.
  int bloom_bits_per_key = 10;
  // A Write() with at least this many tiles is written as one sorted SST file and ingested
  // (atomic, like a write batch, but it bypasses the memtable and WAL: several times faster for
  // flushes of many tiles). 0 disables it.
  size_t bulk_ingest_min_tiles = 20000;
  // Threads that sort and write the SST files of a bulk write (each writes a disjoint key
  // range; all files are ingested in one atomic step). 0 = one per hardware thread.
  int bulk_threads = 0;
};

// The embedded default TileStore: one RocksDB database in one directory, tiles and metadata in
// the default column family under the key layout of store/key_codec.h.
//
// Thread-safety: all methods may be called concurrently (RocksDB is internally synchronized).
// Write() is one rocksdb::WriteBatch, so it is atomic; Scan() iterates an implicit snapshot and
// MultiGet() reads all keys from one snapshot, so readers see none or all of a Write.
// Errors: every RocksDB failure becomes an absl::Status naming the operation and the directory;
// no exception escapes.
class RocksDbTileStore final : public TileStore {
 public:
  // Opens (or creates, see options) the DB in `dir`. A directory locked by another process gives
  // Unavailable; a missing DB with read_only or !create_if_missing gives NotFound.
  static absl::StatusOr<std::unique_ptr<RocksDbTileStore>> Open(const std::string& dir,
                                                                const RocksDbOptions& options);

  // Closes the DB. Memtables are flushed on a clean close even without a WAL, but only Sync()
  // gives a guarantee that survives a crash.
  ~RocksDbTileStore() override;
  RocksDbTileStore(const RocksDbTileStore&) = delete;
  RocksDbTileStore& operator=(const RocksDbTileStore&) = delete;

  absl::Status Scan(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                    int64_t from_ms, int64_t to_ms,
                    const std::function<void(int64_t, std::string_view)>& fn) override;
  absl::Status MultiGet(const std::vector<TileKey>& keys,
                        std::vector<std::optional<std::string>>* values) override;
  absl::Status Write(const WriteBatch& batch) override;
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) override;
  absl::Status ScanMeta(std::string_view prefix,
                        const std::function<void(std::string_view, std::string_view)>& fn) override;
  // Without a WAL: flushes all memtables to SST files and waits. With a WAL: fsyncs it.
  absl::Status Sync() override;

  const std::string& dir() const { return dir_; }
  bool read_only() const { return options_.read_only; }

  // A RocksDB property ("rocksdb.stats", "rocksdb.estimate-num-keys", …) for diagnostics and
  // metrics, or nullopt if unknown.
  std::optional<std::string> GetProperty(std::string_view property) const;

 private:
  RocksDbTileStore(std::string dir, const RocksDbOptions& options, std::unique_ptr<rocksdb::DB> db);
  absl::Status WriteViaIngest(const WriteBatch& batch);

  const std::string dir_;
  const RocksDbOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::atomic<uint64_t> ingest_seq_{0};
};

}  // namespace tessera::store
