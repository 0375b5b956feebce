#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "store/event_log.h"
#include "store/tile_store.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace tessera::store {
namespace rocksdb_internal {
class BaseRetentionFilterFactory;
}  // namespace rocksdb_internal

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
  // Open as a RocksDB secondary instance that follows a DB another process writes (`tessera
  // serve` beside `tessera run`): read-only like `read_only` (which it implies), takes no lock,
  // and sees what the writer had made durable (SST files and WAL) at the last CatchUp() (or at
  // Open). The directory holds the secondary's own info logs; it is created if missing and must
  // not be shared by two secondaries at once. Also works when no writer runs. Snapshots do not
  // pin anything on a secondary (RocksDB does not support them there): GetSnapshot() returns a
  // handle whose reads see the latest catch-up.
  std::string secondary_dir;
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
  // Compress bulk-written SST files with the upper-level codec (LZ4). Off for backfills: LZ4
  // is ~7 % of a high-cardinality backfill's CPU. The files are then ~1.5x larger until a
  // compaction rewrites them with the bottommost codec; files no later write overlaps are never
  // compacted by themselves (`tessera backfill --compact` compacts everything at once).
  bool compress_bulk_ingest = true;
  // Event log: a batch id is remembered (for idempotent retries) until Trim has passed the
  // entry that is this many entries newer than it, i.e. Trim(source, n) forgets the batch ids of
  // entries with seq <= n - log_batch_id_retention_entries. A record costs ~100 bytes.
  uint64_t log_batch_id_retention_entries = 1'000'000;
  // Collect RocksDB statistics (a few % slower); read them with
  // GetProperty("rocksdb.options-statistics"), e.g. "rocksdb.wal.synced" counts WAL fsyncs.
  bool statistics = false;
  // Base-tile retention in ms (engine/retention.h): compactions drop a base tile whose UTC day
  // ended at least this long (plus an hour of clock slack) before `clock`'s now, once the hour
  // rollup covering it is stored (base_retention_filter.h has the exact rule). nullopt (the
  // default): the DB's own setting, metadata store/base_retention_ms, read at Open and followed
  // whenever a Write sets it; a value here overrides it (tests, tools); 0 keeps every base tile.
  // Read-only and secondary stores never compact and ignore it.
  std::optional<int64_t> base_retention_ms;
  // Wall clock of the retention cutoff; null = the system clock. Must outlive the store.
  const Clock* clock = nullptr;
};

// The embedded default TileStore: one RocksDB database in one directory, tiles and metadata in
// the default column family under the key layout of store/key_codec.h.
//
// It is also the embedded EventLog: log entries live in the same DB (own key namespaces), so one
// opened store gives both interfaces (`TileStore& tiles = *store; EventLog& log = *store;`) and a
// tile flush can commit "log consumed up to seq N" as ordinary metadata in the same atomic
// Write(). Append REQUIRES a store opened with the WAL enabled (durability comes from the synced
// WAL); on a disable_wal or read_only store it returns FailedPrecondition. Read and LastSeq work
// on any store.
//
// Event log seq/durability invariant: per source, seqs are handed out under log_mu_ (so they are
// unique and increasing) and the write (one rocksdb::WriteBatch with sync = true: entry, batch-id
// record, batch index) runs without any lock of ours, so concurrent appends join one RocksDB
// write group and share its WAL fsync (group commit). Writes may therefore finish out of seq
// order. Readers only ever see the "readable" prefix: every seq below the lowest seq still in
// flight (or everything handed out when none is in flight). So when Read hands out seq n, every
// seq < n has either been durably written (and is visible to the reader's iterator, which is
// created after the watermark is taken) or failed (a failed Append leaves a permanent gap: seqs
// are dense unless an Append returned an error, or the process died with Appends in flight; a
// gap is never an acknowledged seq). LastSeq returns that same watermark. After a
// restart everything in the DB is durable and the next seq is max(highest entry, trim mark) + 1,
// so a seq is never handed out twice. Concurrent Appends with the same batch id: the later ones
// wait for the first to finish, then return its result as a duplicate (or append themselves if
// it failed); across restarts the persisted batch-id record answers.
// Thread-safety: all methods may be called concurrently (RocksDB is internally synchronized).
// Write() is one rocksdb::WriteBatch, so it is atomic; Scan() and a scanner iterate an implicit
// snapshot and MultiGet() reads all keys from one snapshot, so readers see none or all of a Write.
// Errors: every RocksDB failure becomes an absl::Status naming the operation and the directory;
// no exception escapes.
class RocksDbTileStore final : public TileStore, public EventLog {
 public:
  // Opens (or creates, see options) the DB in `dir`. A directory locked by another process gives
  // Unavailable; a missing DB with read_only or !create_if_missing gives NotFound. A DB is only
  // ever created in a directory that is absent, empty, or holds just what a killed creation
  // leaves (LOCK, IDENTITY, LOG*, OPTIONS-*, *.dbtmp, MANIFEST-000001): a directory with any
  // other file but no CURRENT
  // (e.g. a damaged DB whose SST files RocksDB would delete) or a path that is not a directory
  // gives FailedPrecondition naming what is there.
  static absl::StatusOr<std::unique_ptr<RocksDbTileStore>> Open(const std::string& dir,
                                                                const RocksDbOptions& options);

  // Closes the DB. Memtables are flushed on a clean close even without a WAL, but only Sync()
  // gives a guarantee that survives a crash.
  ~RocksDbTileStore() override;
  RocksDbTileStore(const RocksDbTileStore&) = delete;
  RocksDbTileStore& operator=(const RocksDbTileStore&) = delete;

  absl::Status ScanAt(const StoreSnapshot* snapshot, uint32_t view_id, std::string_view entity_key,
                      Resolution resolution, int64_t from_ms, int64_t to_ms,
                      const std::function<void(int64_t, std::string_view)>& fn) override;
  // One iterator for all the scanner's scans (kRandom: one for Scan and one for ScanSpan). With
  // a null snapshot they all read the state of the store at the scanner's first scan (the
  // iterator's implicit snapshot).
  std::unique_ptr<TileScanner> NewScanner(const StoreSnapshot* snapshot, ScanOrder order) override;
  std::shared_ptr<const StoreSnapshot> GetSnapshot() override;
  absl::Status MultiGet(const std::vector<TileKey>& keys,
                        std::vector<std::optional<std::string>>* values) override;
  absl::Status Write(const WriteBatch& batch) override;
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) override;
  absl::Status ScanMeta(std::string_view prefix,
                        const std::function<void(std::string_view, std::string_view)>& fn) override;
  // Without a WAL: flushes all memtables to SST files and waits. With a WAL: fsyncs it.
  absl::Status Sync() override;
  bool supports_view_ranges() const override { return true; }
  // Reads ahead and leaves the block cache alone.
  absl::StatusOr<std::unique_ptr<ViewCursor>> NewViewCursor(uint32_t view_id,
                                                            const EntityRange& range) override;
  // Drops the files wholly inside the views' range, then one range delete for the rest.
  absl::Status DeleteViewTiles(uint32_t first_view_id, uint32_t last_view_id) override;

  // EventLog (rocksdb_event_log.cc). See the class comment for the invariants.
  using EventLog::Append;
  absl::StatusOr<AppendResult> Append(std::string_view source, std::string_view batch_id,
                                      std::string_view payload, int64_t accepted, int64_t rejected,
                                      std::string_view annotation) override;
  absl::Status Read(std::string_view source, uint64_t after_seq, size_t max_bytes,
                    const std::function<void(uint64_t, std::string_view)>& fn) override;
  absl::StatusOr<uint64_t> LastSeq(std::string_view source) override;
  // Deletes entries <= min(up_to_seq, LastSeq(source)) with one range delete, records the trim
  // mark, and forgets batch ids older than log_batch_id_retention_entries, all in one atomic
  // write (synced as the store's options say: losing a trim in a crash only brings back entries
  // that a consumer has already passed; the WAL replays a prefix, so a surviving trim implies
  // the surviving position write that preceded it). Trims are serialized among themselves but do
  // not block Appends.
  absl::Status Trim(std::string_view source, uint64_t up_to_seq) override;

  const std::string& dir() const { return dir_; }
  // True for read_only and secondary stores.
  bool read_only() const { return options_.read_only || secondary(); }
  bool secondary() const { return !options_.secondary_dir.empty(); }

  // Secondary stores: applies what the writer has written since the last catch-up (new MANIFEST
  // entries and WAL records), so later reads see it. Cheap when nothing changed. Thread-safe;
  // concurrent reads see either the old or the new state of each key. Other stores: a no-op.
  absl::Status CatchUp();

  // A RocksDB property ("rocksdb.stats", "rocksdb.estimate-num-keys", …) for diagnostics and
  // metrics, or nullopt if unknown.
  std::optional<std::string> GetProperty(std::string_view property) const;
  // The count of a statistics ticker such as "rocksdb.wal.synced" (WAL fsyncs), read from
  // GetProperty("rocksdb.options-statistics"); 0 when the store runs without statistics.
  uint64_t TickerCount(std::string_view name) const;

  // The base-tile retention compactions apply now (RocksDbOptions::base_retention_ms); 0 for none
  // and for read-only and secondary stores.
  int64_t base_retention_ms() const;
  // Base tiles the retention has dropped since Open.
  uint64_t base_tiles_dropped() const;
  // Compacts every key now (waits), applying the retention to all of the DB at once instead of as
  // compactions come. FailedPrecondition on read-only and secondary stores.
  absl::Status CompactAll();

  // Reads the tiles in key order into the block cache until they are all read or the cache is
  // 90 % full, so that the first reads of a server just started find their blocks in memory
  // instead of each loading its own (a DB that fits the cache is then served warm from the
  // first request). Returns the tile bytes read (keys and values).
  absl::StatusOr<uint64_t> WarmBlockCache();

 private:
  RocksDbTileStore(std::string dir, const RocksDbOptions& options, std::unique_ptr<rocksdb::DB> db,
                   std::shared_ptr<rocksdb_internal::BaseRetentionFilterFactory> retention);
  absl::Status WriteViaBatch(const WriteBatch& batch);
  absl::Status WriteViaIngest(const WriteBatch& batch);
  // After `batch` was written: a change of the DB's retention setting takes effect (unless the
  // options fixed the retention).
  void FollowRetentionSetting(const WriteBatch& batch);

  // The event log's in-memory view of one source. Lives in log_sources_; every field is read and
  // written with log_mu_ held (the analysis does not follow the LogSource* handed around).
  struct LogSource {
    uint64_t last_assigned = 0;    // highest seq handed out (durable, in flight or failed)
    uint64_t trimmed = 0;          // entries with seq <= trimmed are deleted
    std::set<uint64_t> in_flight;  // seqs handed out whose write has not finished
    std::set<std::string, std::less<>> in_flight_batch_ids;
    // Every seq <= this is durable or failed, so readers may pass it.
    uint64_t Readable() const { return in_flight.empty() ? last_assigned : *in_flight.begin() - 1; }
  };
  // The state of `source`, loaded from the DB on first use. The pointer stays valid for the
  // store's lifetime (sources are never erased from the map).
  absl::StatusOr<LogSource*> LoadLogSource(std::string_view source)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(log_mu_);

  const std::string dir_;
  const RocksDbOptions options_;
  // Null for read-only and secondary stores. Declared before db_, so it outlives the DB whose
  // options hold it too.
  std::shared_ptr<rocksdb_internal::BaseRetentionFilterFactory> retention_;
  std::unique_ptr<rocksdb::DB> db_;
  std::atomic<uint64_t> ingest_seq_{0};

  Mutex trim_mu_ ABSL_ACQUIRED_BEFORE(log_mu_);  // serializes Trim
  Mutex log_mu_;
  CondVar log_cv_;  // signalled when an Append finishes
  std::map<std::string, LogSource, std::less<>> log_sources_ ABSL_GUARDED_BY(log_mu_);
};

}  // namespace tessera::store
