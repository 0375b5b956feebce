#include "store/rocksdb/rocksdb_tile_store.h"

#include <fmt/format.h>
#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"
#include "store/key_codec.h"
#include "store/meta_keys.h"
#include "store/rocksdb/base_retention_filter.h"
#include "store/rocksdb/rocksdb_util.h"

namespace tessera::store {

using rocksdb_internal::BaseRetentionFilterFactory;
using rocksdb_internal::FromRocks;
using rocksdb_internal::Guard;
using rocksdb_internal::ToSlice;
using rocksdb_internal::View;

namespace {

// Prefix extractor: a tile key's (view, entity key), without the resolution. Every tile of a
// key, of all resolutions, shares it, so one prefix seek reads a key's base, hour and day tiles,
// and prefix Bloom filters let it skip every SST file that holds none of them (the L0 files of
// a live DB's recent flushes). Metadata keys are outside the domain (no prefix filtering;
// ScanMeta uses total-order seeks). Satisfies RocksDB's requirements: the prefix of a key is a
// prefix of it, prefixes are order-preserving (the length-prefixed key makes them prefix-free),
// and Transform(Transform(k)) == Transform(k) (a (view, key) prefix parses as a tile prefix whose
// resolution byte is missing, so it is outside the domain and returned whole).
class TilePrefixTransform final : public rocksdb::SliceTransform {
 public:
  // Persisted in SST properties; RocksDB ignores prefix filters written under another name
  // (v1, of DBs written before, was (view, key, resolution)).
  const char* Name() const override { return "tessera.TileKeyPrefix.v2"; }

  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    std::optional<size_t> len = TilePrefixLength(View(key));
    return {key.data(), len.has_value() ? *len - 1 : key.size()};  // without the resolution
  }

  bool InDomain(const rocksdb::Slice& key) const override {
    return TilePrefixLength(View(key)).has_value();
  }
};

rocksdb::CompressionType PickCompression(
    const std::vector<rocksdb::CompressionType>& supported,
    std::initializer_list<rocksdb::CompressionType> preferred) {
  for (rocksdb::CompressionType c : preferred) {
    if (std::find(supported.begin(), supported.end(), c) != supported.end()) return c;
  }
  return rocksdb::kNoCompression;
}

rocksdb::Options MakeOptions(const RocksDbOptions& opts) {
  rocksdb::Options o;
  o.create_if_missing = opts.create_if_missing && !opts.read_only && opts.secondary_dir.empty();
  o.max_background_jobs = std::max(1, opts.max_background_jobs);
  o.bytes_per_sync = 1 << 20;
  o.write_buffer_size = opts.write_buffer_bytes;
  o.max_write_buffer_number = 3;
  o.level_compaction_dynamic_level_bytes = true;
  o.keep_log_file_num = 4;
  o.max_log_file_size = 16 << 20;
  // Group commit for the event log: RocksDB's write-group leader merges the queued writers'
  // batches and fsyncs the WAL once for all of them, but by default stops adding writers at
  // 1 MB, which would give every ~1.3 MB ingest batch its own fsync.
  o.max_write_batch_group_size_bytes = uint64_t{64} << 20;
  if (opts.statistics) o.statistics = rocksdb::CreateDBStatistics();

  // Values are small and repetitive: cheap LZ4 for the upper levels, ZSTD for the bottommost
  // level where most of the data settles and is rarely rewritten.
  std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  o.compression =
      PickCompression(supported, {rocksdb::kLZ4Compression, rocksdb::kSnappyCompression});
  o.bottommost_compression = PickCompression(
      supported, {rocksdb::kZSTD, rocksdb::kLZ4Compression, rocksdb::kSnappyCompression});

  o.prefix_extractor = std::make_shared<TilePrefixTransform>();
  // Memtable filter for both point reads (MultiGet/GetMeta) and prefix seeks (Scan).
  o.memtable_prefix_bloom_size_ratio = 0.02;
  o.memtable_whole_key_filtering = true;

  rocksdb::LRUCacheOptions cache_opts;
  cache_opts.capacity = opts.block_cache_bytes;
  cache_opts.high_pri_pool_ratio = 0.25;  // index and filter blocks
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(cache_opts);
  t.cache_index_and_filter_blocks = true;
  t.cache_index_and_filter_blocks_with_high_priority = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  // Whole-key entries serve MultiGet; prefix entries (from prefix_extractor) serve Scan.
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(opts.bloom_bits_per_key));
  t.whole_key_filtering = true;
  t.optimize_filters_for_memory = true;
  // Partitioned index and filters: a read loads only the small partitions it needs, so the
  // first `get` after opening a DB with big (bulk-ingested) files stays fast.
  t.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  t.partition_filters = true;
  t.metadata_block_size = 4096;
  // Point lookups land in a data block via a hash index instead of a binary search.
  t.data_block_index_type = rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
  t.data_block_hash_table_util_ratio = 0.75;
  t.format_version = 5;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

// Files a RocksDB writes before CURRENT while creating a DB, none of which holds data: the info
// LOG, LOCK, IDENTITY (via 000000.dbtmp), the new DB's MANIFEST-000001 and CURRENT's temporary
// 000001.dbtmp (RocksDB 7.8, seen with strace). OPTIONS files and other *.dbtmp temporaries are
// metadata too. A killed creation may leave any of them behind; creating the DB again over them
// loses nothing. Data lives only in *.sst, *.log and *.blob files, which are never on this list.
bool IsDatalessCreationFile(const std::string& name) {
  return name == "LOCK" || name == "IDENTITY" || name == "MANIFEST-000001" ||
         name.rfind("LOG", 0) == 0 || name.rfind("OPTIONS-", 0) == 0 || name.ends_with(".dbtmp");
}

// A directory without CURRENT is either absent, empty, or what a killed DB creation left
// behind. Anything else (SST files, a MANIFEST, a WAL, files of another program) is refused:
// RocksDB would create a new DB there and delete the existing SST and MANIFEST files.
absl::Status CheckNoDataWithoutCurrent(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return absl::OkStatus();
  std::vector<std::string> names;
  bool has_data = false;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return FailedPrecondition("RocksDB Open of {}: cannot list it: {}", dir, ec.message());
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!IsDatalessCreationFile(name)) has_data = true;
    names.push_back(std::move(name));
  }
  if (ec) return FailedPrecondition("RocksDB Open of {}: cannot list it: {}", dir, ec.message());
  if (!has_data) return absl::OkStatus();
  std::sort(names.begin(), names.end());
  std::string listed;
  constexpr size_t kMaxListed = 8;
  for (size_t i = 0; i < names.size() && i < kMaxListed; ++i) {
    if (i > 0) listed += ", ";
    listed += names[i];
  }
  if (names.size() > kMaxListed) listed += fmt::format(", … {} more", names.size() - kMaxListed);
  const bool looks_like_rocksdb = std::any_of(names.begin(), names.end(), [](const auto& n) {
    return n.rfind("MANIFEST-", 0) == 0 || n.ends_with(".sst") || n.ends_with(".log");
  });
  return FailedPrecondition(
      "DB directory {} has files ({}) but no CURRENT: {}; refusing to create a new DB over it", dir,
      listed,
      looks_like_rocksdb ? "it looks like a damaged RocksDB (restore CURRENT or the directory "
                           "from a backup)"
                         : "it is not a tessera DB (use an empty or new directory)");
}

}  // namespace

RocksDbTileStore::RocksDbTileStore(std::string dir, const RocksDbOptions& options,
                                   std::unique_ptr<rocksdb::DB> db,
                                   std::shared_ptr<BaseRetentionFilterFactory> retention)
    : dir_(std::move(dir)),
      options_(options),
      retention_(std::move(retention)),
      db_(std::move(db)) {}

RocksDbTileStore::~RocksDbTileStore() {
  // Compactions that start from now on keep every tile; Close waits for the running ones, whose
  // filters may still look up rollups in the DB until then.
  if (retention_ != nullptr) retention_->SetDb(nullptr);
  if (db_ != nullptr) {
    try {
      db_->Close().PermitUncheckedError();
    } catch (...) {  // nothing sensible to do in a destructor; the WAL/SSTs are what they are
    }
  }
}

absl::StatusOr<std::unique_ptr<RocksDbTileStore>> RocksDbTileStore::Open(
    const std::string& dir, const RocksDbOptions& options) {
  return Guard("Open", dir, [&]() -> absl::StatusOr<std::unique_ptr<RocksDbTileStore>> {
    if (dir.empty()) return InvalidArgument("RocksDB Open: the DB directory must not be empty");
    std::error_code ec;
    const std::filesystem::file_status st = std::filesystem::status(dir, ec);
    if (std::filesystem::exists(st) && !std::filesystem::is_directory(st)) {
      return FailedPrecondition("RocksDB Open of {}: the DB path is not a directory", dir);
    }
    const bool exists = std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec);
    if (!exists) TESSERA_RETURN_IF_ERROR(CheckNoDataWithoutCurrent(dir));
    if (!exists &&
        (options.read_only || !options.secondary_dir.empty() || !options.create_if_missing)) {
      return NotFound("RocksDB Open of {}: no tessera DB there (nothing has been written yet?)",
                      dir);
    }
    if (!exists) {
      std::filesystem::create_directories(dir, ec);
      if (ec) return Internal("RocksDB Open of {}: cannot create directory: {}", dir, ec.message());
    }

    rocksdb::Options rocks_options = MakeOptions(options);
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s;
    const bool secondary = !options.secondary_dir.empty();
    std::shared_ptr<BaseRetentionFilterFactory> retention;
    if (!secondary && !options.read_only) {
      // Attached to the DB only below, once the retention is known: until then every
      // compaction (WAL recovery may start some) keeps every tile.
      retention = std::make_shared<BaseRetentionFilterFactory>(
          options.clock != nullptr ? options.clock : SystemClock::Default());
      rocks_options.compaction_filter_factory = retention;
    }
    if (secondary) {
      std::filesystem::create_directories(options.secondary_dir, ec);
      if (ec) {
        return Internal("RocksDB secondary Open of {}: cannot create secondary directory {}: {}",
                        dir, options.secondary_dir, ec.message());
      }
      // A secondary must keep every SST file open: the writer's compactions delete files the
      // secondary's current version may still reference.
      rocks_options.max_open_files = -1;
      s = rocksdb::DB::OpenAsSecondary(rocks_options, dir, options.secondary_dir, &raw);
    } else if (options.read_only) {
      s = rocksdb::DB::OpenForReadOnly(rocks_options, dir, &raw,
                                       /*error_if_wal_file_exists=*/false);
    } else {
      s = rocksdb::DB::Open(rocks_options, dir, &raw);
    }
    std::unique_ptr<rocksdb::DB> db(raw);
    if (!s.ok()) {
      return FromRocks(s,
                       secondary           ? "secondary Open"
                       : options.read_only ? "read-only Open"
                                           : "Open",
                       dir);
    }
    if (!options.read_only && !secondary) {
      // A process killed during a bulk write may have left its unfinished SST files behind;
      // they were never ingested (we hold the DB lock now, so no writer is using them).
      std::error_code ec;
      for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind("bulk-", 0) == 0 && name.size() > 8 &&
            name.compare(name.size() - 8, 8, ".sst.tmp") == 0) {
          std::filesystem::remove(entry.path(), ec);
        }
      }
    }
    if (retention != nullptr) {
      int64_t ms = options.base_retention_ms.value_or(0);
      if (!options.base_retention_ms.has_value()) {
        rocksdb::PinnableSlice value;
        const std::string key = EncodeMetaKey(meta::kBaseRetentionKey);
        s = db->Get(rocksdb::ReadOptions(), db->DefaultColumnFamily(), key, &value);
        if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "Open (reading the retention)", dir);
        if (s.ok()) {
          const std::optional<int64_t> stored = meta::ParseBaseRetentionValue(View(value));
          if (!stored.has_value()) {
            return DataLoss("RocksDB Open of {}: metadata {} holds '{}', not a retention in ms",
                            dir, meta::kBaseRetentionKey, View(value));
          }
          ms = *stored;
        }
      }
      retention->SetRetention(ms);
      retention->SetDb(db.get());
    }
    return std::unique_ptr<RocksDbTileStore>(
        new RocksDbTileStore(dir, options, std::move(db), std::move(retention)));
  });
}

namespace {

// Owns a rocksdb snapshot for as long as any reader holds it. Null `db` (a secondary store,
// where RocksDB iterators reject snapshots): reads see the latest catch-up.
class RocksSnapshot final : public StoreSnapshot {
 public:
  explicit RocksSnapshot(rocksdb::DB* db)
      : db_(db), snapshot_(db != nullptr ? db->GetSnapshot() : nullptr) {}
  ~RocksSnapshot() override {
    if (db_ != nullptr) db_->ReleaseSnapshot(snapshot_);
  }
  const rocksdb::Snapshot* get() const { return snapshot_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
};

}  // namespace

std::shared_ptr<const StoreSnapshot> RocksDbTileStore::GetSnapshot() {
  return std::make_shared<RocksSnapshot>(secondary() ? nullptr : db_.get());
}

absl::Status RocksDbTileStore::CatchUp() {
  if (!secondary()) return absl::OkStatus();
  return Guard("CatchUp", dir_, [&]() -> absl::Status {
    return FromRocks(db_->TryCatchUpWithPrimary(), "CatchUp (TryCatchUpWithPrimary)", dir_);
  });
}

namespace {

// kRandom: one rocksdb iterator re-seeked for every Scan, and another for every ScanSpan. The
// upper bound lives in the scanner (RocksDB reads it through ReadOptions::iterate_upper_bound at
// every Seek), so each scan sets its own. Prefix mode (prefix_same_as_start) is exact for every
// scan, as both bounds of a scan start with its tile prefix; it lets RocksDB skip the SST files
// whose prefix Bloom filter lacks it.
//
// kAscending: one total-order iterator without an upper bound for all scans; each scan checks
// its own bound and starts by stepping forward from where the last one stopped when its range
// begins at most kMaxSteps keys ahead. A Next costs a fraction of a Seek, which binary-searches
// the index of every L0 file and level (most of the time a backfill under a memory budget spent
// building day rollups from the store went to those seeks).
class RocksTileScanner final : public TileScanner {
 public:
  RocksTileScanner(rocksdb::DB* db, const rocksdb::Snapshot* snapshot, const std::string* dir,
                   ScanOrder order)
      : db_(db), dir_(dir), ascending_(order == ScanOrder::kAscending) {
    ro_.snapshot = snapshot;
    if (ascending_) {
      ro_.total_order_seek = true;  // across entities: no prefix mode, no bound
    } else {
      ro_.iterate_upper_bound = &upper_slice_;
      ro_.prefix_same_as_start = true;
    }
  }

  absl::Status Scan(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                    int64_t from_ms, int64_t to_ms,
                    absl::FunctionRef<void(int64_t, std::string_view)> fn) override {
    if (from_ms >= to_ms) return absl::OkStatus();
    return Guard("Scan", *dir_, [&]() -> absl::Status {
      lower_.clear();
      AppendTilePrefix(view_id, entity_key, resolution, &lower_);
      const size_t prefix_len = lower_.size();
      upper_.assign(lower_);
      AppendTileStart(from_ms, &lower_);
      AppendTileStart(to_ms, &upper_);
      upper_slice_ = rocksdb::Slice(upper_);
      if (it_ == nullptr) it_.reset(db_->NewIterator(ro_));
      rocksdb::Iterator* it = it_.get();
      for (Position(it, lower_); it->Valid(); it->Next()) {
        const std::string_view key = View(it->key());
        if (ascending_ && key >= upper_) break;
        if (key.size() != prefix_len + kStartMsBytes ||
            key.compare(0, prefix_len, lower_, 0, prefix_len) != 0) {
          Drop(&it_);  // the next scan starts from a fresh iterator
          return UnexpectedTileKey(key);
        }
        fn(DecodeTileStart(key), View(it->value()));
      }
      return Finish(&it_, "Scan", upper_);
    });
  }

  void Refresh() override {
    if (ro_.snapshot != nullptr) return;  // reads as of its snapshot
    floor_valid_ = false;
    for (std::unique_ptr<rocksdb::Iterator>* it : {&it_, &span_it_}) {
      if (*it == nullptr) continue;
      bool renewed = false;
      try {
        renewed = (*it)->Refresh().ok();
      } catch (...) {  // e.g. bad_alloc: a fresh iterator is made by the next scan instead
      }
      if (!renewed) it->reset();
    }
  }

  // One cursor positioning over the key's tiles of all resolutions: a key's base, hour and day
  // tiles are adjacent, so a key with few tiles is read with one seek (kRandom: a prefix
  // seek); tiles outside [from_ms, to_ms) are stepped over, or skipped with a re-seek when
  // there are many.
  absl::Status ScanSpan(
      uint32_t view_id, std::string_view entity_key, Resolution first, Resolution last,
      int64_t from_ms, int64_t to_ms,
      absl::FunctionRef<bool(Resolution, int64_t, std::string_view)> fn) override {
    if (from_ms >= to_ms || first > last) return absl::OkStatus();
    return Guard("Scan", *dir_, [&]() -> absl::Status {
      span_lower_.clear();
      AppendTilePrefix(view_id, entity_key, first, &span_lower_);
      const size_t prefix_len = span_lower_.size();  // (view, key) then one resolution byte
      span_upper_.assign(span_lower_);
      span_upper_.back() = static_cast<char>(last);
      AppendTileStart(to_ms, &span_upper_);
      span_upper_slice_ = rocksdb::Slice(span_upper_);
      AppendTileStart(from_ms, &span_lower_);
      // Ascending scanners share one cursor; random ones keep one per kind of scan.
      std::unique_ptr<rocksdb::Iterator>& cursor = ascending_ ? it_ : span_it_;
      if (cursor == nullptr) {
        rocksdb::ReadOptions ro = ro_;  // kRandom: every resolution shares the prefix
        if (!ascending_) ro.iterate_upper_bound = &span_upper_slice_;
        cursor.reset(db_->NewIterator(ro));
      }
      rocksdb::Iterator* it = cursor.get();
      constexpr int kMaxSkips = 16;
      int skipped = 0;
      std::string seek;
      Position(it, span_lower_);
      while (it->Valid()) {
        const std::string_view key = View(it->key());
        if (ascending_ && key >= span_upper_) break;
        if (key.size() != prefix_len + kStartMsBytes ||
            key.compare(0, prefix_len - 1, span_lower_, 0, prefix_len - 1) != 0) {
          Drop(&cursor);
          return UnexpectedTileKey(key);
        }
        const auto res = static_cast<uint8_t>(key[prefix_len - 1]);
        const int64_t start = DecodeTileStart(key);
        if (start >= from_ms && start < to_ms) {
          if (!fn(static_cast<Resolution>(res), start, View(it->value()))) break;
          it->Next();
          continue;
        }
        // Outside the range: step over a few tiles (cheaper than a seek), else seek to the
        // range of this resolution, or of the next one.
        if (++skipped <= kMaxSkips) {
          it->Next();
          continue;
        }
        skipped = 0;
        seek.assign(key.substr(0, prefix_len));
        if (start >= to_ms) {
          if (res >= static_cast<uint8_t>(last)) break;
          seek.back() = static_cast<char>(res + 1);
        }
        AppendTileStart(from_ms, &seek);
        it->Seek(ToSlice(seek));
      }
      return Finish(&cursor, "Scan", span_upper_);
    });
  }

 private:
  // A key inside a scanned tile range that is not a tile key of the scanned (view, key).
  absl::Status UnexpectedTileKey(std::string_view key) const {
    return DataLoss("RocksDB Scan of {}: unexpected key of {} bytes inside a tile range", *dir_,
                    key.size());
  }

  // Places `it` at the first key >= target: kAscending steps forward when no key lies between
  // floor_ and the cursor and target >= floor_ is at most kMaxSteps keys ahead, else seeks.
  void Position(rocksdb::Iterator* it, std::string_view target) {
    constexpr int kMaxSteps = 32;
    if (floor_valid_ && target >= floor_) {
      floor_valid_ = false;
      for (int i = 0; i < kMaxSteps; ++i) {
        // Invalid: an error (the caller reports it) or no key >= floor_, so none >= target.
        if (!it->Valid() || View(it->key()) >= target) return;
        it->Next();
      }
    }
    floor_valid_ = false;
    it->Seek(ToSlice(target));
  }

  // Ends a scan whose range ends before `upper`: its status, and for kAscending what Position
  // needs to step from here. A scan stops at the first key >= upper or earlier, so no key lies
  // in [upper, cursor).
  absl::Status Finish(std::unique_ptr<rocksdb::Iterator>* cursor, const char* what,
                      std::string_view upper) {
    absl::Status s = FromRocks((*cursor)->status(), what, *dir_);
    if (!s.ok()) {
      Drop(cursor);
    } else if (ascending_) {
      floor_.assign(upper);
      floor_valid_ = true;
    }
    return s;
  }

  void Drop(std::unique_ptr<rocksdb::Iterator>* cursor) {
    cursor->reset();
    floor_valid_ = false;
  }

  rocksdb::DB* db_;
  const std::string* dir_;
  const bool ascending_;
  rocksdb::ReadOptions ro_;
  // kAscending, when floor_valid_: no key lies in [floor_, cursor) (at the end: none >= floor_).
  std::string floor_;
  bool floor_valid_ = false;
  std::string lower_;
  std::string upper_;
  rocksdb::Slice upper_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;  // made by the first scan
  std::string span_lower_;
  std::string span_upper_;
  rocksdb::Slice span_upper_slice_;
  std::unique_ptr<rocksdb::Iterator> span_it_;  // made by the first ScanSpan
};

const rocksdb::Snapshot* RocksSnapshotOf(const StoreSnapshot* snapshot) {
  return snapshot != nullptr ? static_cast<const RocksSnapshot*>(snapshot)->get() : nullptr;
}

}  // namespace

absl::Status RocksDbTileStore::ScanAt(const StoreSnapshot* snapshot, uint32_t view_id,
                                      std::string_view entity_key, Resolution resolution,
                                      int64_t from_ms, int64_t to_ms,
                                      const std::function<void(int64_t, std::string_view)>& fn) {
  RocksTileScanner scanner(db_.get(), RocksSnapshotOf(snapshot), &dir_, ScanOrder::kRandom);
  return scanner.Scan(view_id, entity_key, resolution, from_ms, to_ms, fn);
}

std::unique_ptr<TileScanner> RocksDbTileStore::NewScanner(const StoreSnapshot* snapshot,
                                                          ScanOrder order) {
  return std::make_unique<RocksTileScanner>(db_.get(), RocksSnapshotOf(snapshot), &dir_, order);
}

namespace {

// A view's tiles in key order: one total-order iterator over [lower, upper) of its tile keys,
// read ahead and kept out of the block cache (a bulk load reads each of them once).
class RocksViewCursor final : public ViewCursor {
 public:
  RocksViewCursor(rocksdb::DB* db, const std::string* dir, uint32_t view_id,
                  const EntityRange& range)
      : dir_(dir) {
    const std::string view = EncodeViewPrefix(view_id);
    upper_ = range.upper.empty() ? PrefixSuccessor(view) : view + range.upper;
    upper_slice_ = rocksdb::Slice(upper_);
    rocksdb::ReadOptions ro;
    ro.total_order_seek = true;
    ro.iterate_upper_bound = &upper_slice_;
    ro.fill_cache = false;  // RocksDB's own read-ahead (growing to 256 KiB) for the rest
    it_.reset(db->NewIterator(ro));
    std::string lower = view + range.lower;
    if (range.lower_exclusive) lower = PrefixSuccessor(lower);  // entity keys are prefix-free
    it_->Seek(lower);
  }

  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  std::string_view view_key() const override { return View(it_->key()).substr(kViewPrefixBytes); }
  std::string_view value() const override { return View(it_->value()); }
  absl::Status status() const override { return FromRocks(it_->status(), "view cursor", *dir_); }

 private:
  const std::string* dir_;
  std::string upper_;
  rocksdb::Slice upper_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ViewCursor>> RocksDbTileStore::NewViewCursor(
    uint32_t view_id, const EntityRange& range) {
  return Guard("NewViewCursor", dir_, [&]() -> absl::StatusOr<std::unique_ptr<ViewCursor>> {
    return std::make_unique<RocksViewCursor>(db_.get(), &dir_, view_id, range);
  });
}

absl::Status RocksDbTileStore::DeleteViewTiles(uint32_t first_view_id, uint32_t last_view_id) {
  if (read_only()) {
    return FailedPrecondition("RocksDB DeleteViewTiles in {}: the store was opened read-only",
                              dir_);
  }
  return Guard("DeleteViewTiles", dir_, [&]() -> absl::Status {
    if (first_view_id > last_view_id) return absl::OkStatus();
    const std::string begin = EncodeViewPrefix(first_view_id);
    const std::string end = PrefixSuccessor(EncodeViewPrefix(last_view_id));
    const rocksdb::Slice b(begin);
    const rocksdb::Slice e(end);
    // Files wholly inside the range go at once (spill runs' ingested files are); the range
    // delete covers the rest.
    rocksdb::Status s = rocksdb::DeleteFilesInRange(db_.get(), db_->DefaultColumnFamily(), &b, &e,
                                                    /*include_end=*/false);
    if (!s.ok()) return FromRocks(s, "DeleteViewTiles (files)", dir_);
    rocksdb::WriteOptions wo;
    wo.disableWAL = options_.disable_wal;
    wo.sync = options_.sync && !options_.disable_wal;
    return FromRocks(db_->DeleteRange(wo, db_->DefaultColumnFamily(), b, e), "DeleteViewTiles",
                     dir_);
  });
}

absl::Status RocksDbTileStore::MultiGet(const std::vector<TileKey>& keys,
                                        std::vector<std::optional<std::string>>* values) {
  return Guard("MultiGet", dir_, [&]() -> absl::Status {
    values->assign(keys.size(), std::nullopt);
    if (keys.empty()) return absl::OkStatus();
    std::vector<std::string> encoded;
    encoded.reserve(keys.size());
    std::vector<rocksdb::Slice> slices;
    slices.reserve(keys.size());
    for (const TileKey& k : keys) {
      encoded.push_back(EncodeTileKey(k));
      slices.emplace_back(encoded.back());
    }
    std::vector<rocksdb::PinnableSlice> found(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), keys.size(), slices.data(),
                  found.data(), statuses.data(), /*sorted_input=*/false);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (statuses[i].ok()) {
        (*values)[i].emplace(found[i].data(), found[i].size());
      } else if (!statuses[i].IsNotFound()) {
        return FromRocks(statuses[i], "MultiGet", dir_);
      }
    }
    return absl::OkStatus();
  });
}

absl::Status RocksDbTileStore::Write(const WriteBatch& batch) {
  if (read_only()) {
    return FailedPrecondition("RocksDB Write to {}: the store was opened read-only", dir_);
  }
  if (batch.empty()) return absl::OkStatus();
  absl::Status s;
  if ((batch.bulk && batch.tile_count() > 0) ||
      (options_.bulk_ingest_min_tiles > 0 &&
       batch.tile_count() >= options_.bulk_ingest_min_tiles)) {
    s = WriteViaIngest(batch);
  } else {
    s = WriteViaBatch(batch);
  }
  if (s.ok()) FollowRetentionSetting(batch);
  return s;
}

void RocksDbTileStore::FollowRetentionSetting(const WriteBatch& batch) {
  if (retention_ == nullptr || options_.base_retention_ms.has_value()) return;
  // Applied in the batch's order: meta, then meta_deletes. A value that does not parse keeps
  // every tile (engine/retention.h never writes one).
  std::optional<int64_t> ms;
  for (const auto& [key, value] : batch.meta) {
    if (key == meta::kBaseRetentionKey) ms = meta::ParseBaseRetentionValue(value).value_or(0);
  }
  for (const std::string& key : batch.meta_deletes) {
    if (key == meta::kBaseRetentionKey) ms = 0;
  }
  if (ms.has_value()) retention_->SetRetention(*ms);
}

absl::Status RocksDbTileStore::WriteViaBatch(const WriteBatch& batch) {
  return Guard("Write", dir_, [&]() -> absl::Status {
    rocksdb::WriteBatch wb;
    for (const TileRun& run : batch.tile_runs) {
      for (size_t i = 0; i < run.size(); ++i) {
        rocksdb::Status s = wb.Put(ToSlice(run.key(i)), ToSlice(run.value(i)));
        if (!s.ok()) return FromRocks(s, "Write (batching a tile)", dir_);
      }
    }
    std::string key;
    for (const auto& [k, bytes] : batch.tiles) {
      key.clear();
      AppendTilePrefix(k.view_id, k.entity_key, k.resolution, &key);
      AppendTileStart(k.start_ms, &key);
      rocksdb::Status s = wb.Put(key, ToSlice(bytes));
      if (!s.ok()) return FromRocks(s, "Write (batching a tile)", dir_);
    }
    for (const auto& [meta_key, value] : batch.meta) {
      rocksdb::Status s = wb.Put(EncodeMetaKey(meta_key), value);
      if (!s.ok()) return FromRocks(s, "Write (batching metadata)", dir_);
    }
    for (const auto& meta_key : batch.meta_deletes) {
      rocksdb::Status s = wb.Delete(EncodeMetaKey(meta_key));
      if (!s.ok()) return FromRocks(s, "Write (batching a metadata delete)", dir_);
    }
    rocksdb::WriteOptions wo;
    wo.disableWAL = options_.disable_wal;
    wo.sync = options_.sync && !options_.disable_wal;  // RocksDB rejects sync without a WAL
    return FromRocks(db_->Write(wo, &wb), "Write", dir_);
  });
}

namespace {

// Runs fn(0..n-1) on n threads (the caller's thread runs fn(0)) and waits for all.
template <typename Fn>
void RunParallel(size_t n, Fn&& fn) {
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n; ++t) threads.emplace_back([&fn, t] { fn(t); });
  fn(0);
  for (auto& th : threads) th.join();
}

}  // namespace

absl::Status RocksDbTileStore::WriteViaIngest(const WriteBatch& batch) {
  return Guard("Write (bulk ingest)", dir_, [&]() -> absl::Status {
    // The batch as sorted sources merged into sorted SST files: each tile run as it is (sorted by
    // its producer), and the loose tiles encoded into one buffer and sorted here. Of equal keys
    // the last in batch order wins, as in a write batch. Metadata (meta, meta deletes) goes to
    // a file of its own, so the tile files span tile keys only: tiles of a key range nothing
    // else holds (a new view, a spill run) then go straight to the bottom level.
    struct Entry {
      uint32_t key_offset;
      uint32_t key_size;
      uint32_t index;  // position in the batch's tiles, or in meta then meta_deletes
    };
    const size_t tiles = batch.tiles.size();
    const size_t metas = batch.meta.size();
    std::string keys;
    keys.reserve(tiles * 40);
    std::vector<Entry> entries;
    std::vector<Entry> meta_entries;
    entries.reserve(tiles);
    meta_entries.reserve(metas + batch.meta_deletes.size());
    auto add = [&](std::vector<Entry>* to, const std::string& key, size_t index) {
      to->push_back(Entry{static_cast<uint32_t>(keys.size()), static_cast<uint32_t>(key.size()),
                          static_cast<uint32_t>(index)});
      keys += key;
    };
    std::string key;
    for (size_t i = 0; i < tiles; ++i) {
      const TileKey& k = batch.tiles[i].first;
      key.clear();
      AppendTilePrefix(k.view_id, k.entity_key, k.resolution, &key);
      AppendTileStart(k.start_ms, &key);
      add(&entries, key, i);
    }
    for (size_t i = 0; i < metas; ++i) add(&meta_entries, EncodeMetaKey(batch.meta[i].first), i);
    for (size_t i = 0; i < batch.meta_deletes.size(); ++i) {
      add(&meta_entries, EncodeMetaKey(batch.meta_deletes[i]), metas + i);
    }
    if (keys.size() > UINT32_MAX) {
      return ResourceExhausted("bulk write of {} key bytes is too large", keys.size());
    }
    auto entry_key = [&](const Entry& e) {
      return std::string_view(keys.data() + e.key_offset, e.key_size);
    };
    auto by_key = [&](const Entry& a, const Entry& b) {
      int c = entry_key(a).compare(entry_key(b));
      return c != 0 ? c < 0 : a.index < b.index;
    };
    std::sort(entries.begin(), entries.end(), by_key);
    std::sort(meta_entries.begin(), meta_entries.end(), by_key);

    // Source r < runs is batch.tile_runs[r]; source `runs` is `entries`. A source's position i
    // orders equal keys of one source (later wins); sources order them by r (later wins).
    const size_t runs = batch.tile_runs.size();
    const size_t sources = runs + 1;
    auto source_size = [&](size_t r) {
      return r < runs ? batch.tile_runs[r].size() : entries.size();
    };
    auto key_at = [&](size_t r, size_t i) {
      return r < runs ? batch.tile_runs[r].key(i) : entry_key(entries[i]);
    };
    size_t total = 0;
    size_t largest = 0;
    for (size_t r = 0; r < sources; ++r) {
      total += source_size(r);
      if (source_size(r) > source_size(largest)) largest = r;
    }
    // Automatic: one thread per core, but no thread for fewer than 10k entries.
    const size_t threads =
        options_.bulk_threads > 0
            ? std::clamp<size_t>(total, 1, static_cast<size_t>(options_.bulk_threads))
            : std::clamp<size_t>(total / 10000, 1,
                                 std::max(1u, std::thread::hardware_concurrency()));
    // Thread t writes the keys in [pivot t, pivot t+1): pivots are keys of the largest source at
    // even spacing, so every thread gets a share; equal keys never straddle two files.
    std::vector<std::string> pivots;
    for (size_t t = 1; t < threads; ++t) {
      pivots.emplace_back(key_at(largest, source_size(largest) * t / threads));
    }
    auto lower_bound = [&](size_t r, std::string_view k) {
      size_t lo = 0;
      size_t hi = source_size(r);
      while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (key_at(r, mid) < k) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      return lo;
    };
    const uint64_t seq = ingest_seq_.fetch_add(1);
    rocksdb::Options options = db_->GetOptions();
    // Ingested files are written with the fast upper-level codec (LZ4) or none; compaction
    // later rewrites them with the bottommost codec.
    options.bottommost_compression = rocksdb::kDisableCompressionOption;
    if (!options_.compress_bulk_ingest) options.compression = rocksdb::kNoCompression;
    // Tasks 0 .. threads-1 write tiles, task `threads` the metadata. A task starts a new file at
    // each view id, so that no file spans two views: the files of a view nothing else writes
    // (a new view, a spill run) then overlap nothing.
    const size_t tasks = threads + (meta_entries.empty() ? 0 : 1);
    std::vector<std::vector<std::string>> paths(tasks);
    std::vector<rocksdb::Status> statuses(tasks);
    RunParallel(tasks, [&](size_t t) {
      if (t == threads) {
        paths[t].push_back(fmt::format("{}/bulk-{}-{}-meta.sst.tmp", dir_, ::getpid(), seq));
        rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), options);
        rocksdb::Status s = writer.Open(paths[t].back());
        for (size_t i = 0; s.ok() && i < meta_entries.size(); ++i) {
          const std::string_view k = entry_key(meta_entries[i]);
          // A later entry of the same key supersedes this.
          if (i + 1 < meta_entries.size() && entry_key(meta_entries[i + 1]) == k) continue;
          const uint32_t index = meta_entries[i].index;
          s = index < metas ? writer.Put(ToSlice(k), ToSlice(batch.meta[index].second))
                            : writer.Delete(ToSlice(k));
        }
        if (s.ok()) s = writer.Finish();
        statuses[t] = s;
        return;
      }
      struct Head {
        size_t source;
        size_t i;
        size_t end;
        std::string_view key;  // key_at(source, i), kept for the heap's comparisons
      };
      std::vector<Head> heads;
      for (size_t r = 0; r < sources; ++r) {
        const size_t begin = t == 0 ? 0 : lower_bound(r, pivots[t - 1]);
        const size_t end = t + 1 == threads ? source_size(r) : lower_bound(r, pivots[t]);
        if (begin < end) heads.push_back(Head{r, begin, end, key_at(r, begin)});
      }
      if (heads.empty()) return;
      // Min-heap on (key, source): std::*_heap keep the greatest first, hence `after`.
      auto after = [](const Head& a, const Head& b) {
        const int c = a.key.compare(b.key);
        return c != 0 ? c > 0 : a.source > b.source;
      };
      std::make_heap(heads.begin(), heads.end(), after);
      rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), options);
      rocksdb::Status s;
      std::string file_view;  // the view prefix of the open file's keys; empty: no file open
      while (s.ok() && !heads.empty()) {
        std::pop_heap(heads.begin(), heads.end(), after);
        Head& h = heads.back();
        const size_t r = h.source;
        const size_t i = h.i;
        const std::string_view k = h.key;
        if (++h.i < h.end) {
          h.key = key_at(r, h.i);
          if (h.key < k || (r < runs && h.key == k)) {
            s = rocksdb::Status::InvalidArgument("a tile run's keys are not in increasing order");
            break;
          }
          std::push_heap(heads.begin(), heads.end(), after);
        } else {
          heads.pop_back();
        }
        // A later entry of the same key (in the same source or a later one) supersedes this.
        if (!heads.empty() && heads.front().key == k) continue;
        if (file_view.empty() || !k.starts_with(file_view)) {
          if (!file_view.empty()) s = writer.Finish();
          if (!s.ok()) break;
          paths[t].push_back(fmt::format("{}/bulk-{}-{}-{}-{}.sst.tmp", dir_, ::getpid(), seq, t,
                                         paths[t].size()));
          s = writer.Open(paths[t].back());
          if (!s.ok()) break;
          file_view.assign(k.substr(0, kViewPrefixBytes));
        }
        if (r < runs) {
          s = writer.Put(ToSlice(k), ToSlice(batch.tile_runs[r].value(i)));
          continue;
        }
        s = writer.Put(ToSlice(k), ToSlice(batch.tiles[entries[i].index].second));
      }
      if (s.ok() && !file_view.empty()) s = writer.Finish();
      statuses[t] = s;
    });
    std::vector<std::string> files;
    rocksdb::Status s;
    for (size_t t = 0; t < tasks; ++t) {
      if (!statuses[t].ok() && s.ok()) s = statuses[t];
      files.insert(files.end(), paths[t].begin(), paths[t].end());
    }
    if (s.ok()) {
      rocksdb::IngestExternalFileOptions io;
      io.move_files = true;
      io.allow_blocking_flush = true;
      s = db_->IngestExternalFile(files, io);  // atomic: all files or none
    }
    for (const std::string& f : files) {
      std::error_code ec;
      std::filesystem::remove(f, ec);  // moved on success; left over on failure
    }
    return FromRocks(s, "Write (bulk ingest of sorted SST files)", dir_);
  });
}

absl::StatusOr<std::optional<std::string>> RocksDbTileStore::GetMeta(std::string_view key) {
  return Guard("GetMeta", dir_, [&]() -> absl::StatusOr<std::optional<std::string>> {
    rocksdb::PinnableSlice value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), EncodeMetaKey(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, "GetMeta", dir_);
    return std::optional<std::string>(std::in_place, value.data(), value.size());
  });
}

absl::Status RocksDbTileStore::ScanMeta(
    std::string_view prefix, const std::function<void(std::string_view, std::string_view)>& fn) {
  return Guard("ScanMeta", dir_, [&]() -> absl::Status {
    const std::string lower = EncodeMetaKey(prefix);
    const std::string upper = PrefixSuccessor(lower);  // never empty: kMetaNamespace != 0xff
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    ro.total_order_seek = true;  // metadata keys are outside the prefix extractor's domain
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    for (it->Seek(lower); it->Valid(); it->Next()) {
      std::string_view key = View(it->key());
      fn(key.substr(1), View(it->value()));
    }
    return FromRocks(it->status(), "ScanMeta", dir_);
  });
}

absl::Status RocksDbTileStore::Sync() {
  if (read_only()) return absl::OkStatus();
  return Guard("Sync", dir_, [&]() -> absl::Status {
    if (options_.disable_wal) {
      rocksdb::FlushOptions fo;
      fo.wait = true;
      fo.allow_write_stall = true;
      return FromRocks(db_->Flush(fo), "Sync (memtable flush)", dir_);
    }
    return FromRocks(db_->SyncWAL(), "Sync (WAL fsync)", dir_);
  });
}

int64_t RocksDbTileStore::base_retention_ms() const {
  return retention_ != nullptr ? retention_->retention_ms() : 0;
}

uint64_t RocksDbTileStore::base_tiles_dropped() const {
  return retention_ != nullptr ? retention_->dropped() : 0;
}

absl::Status RocksDbTileStore::CompactAll() {
  if (read_only()) {
    return FailedPrecondition("RocksDB CompactAll of {}: the store was opened read-only", dir_);
  }
  return Guard("CompactAll", dir_, [&]() -> absl::Status {
    rocksdb::CompactRangeOptions co;
    // Rewrite the bottommost level too, so every key passes the compaction filter.
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    return FromRocks(db_->CompactRange(co, nullptr, nullptr), "CompactAll", dir_);
  });
}

absl::StatusOr<uint64_t> RocksDbTileStore::WarmBlockCache() {
  return Guard("WarmBlockCache", dir_, [&]() -> absl::StatusOr<uint64_t> {
    const rocksdb::Options options = db_->GetOptions();
    const auto* table = options.table_factory->GetOptions<rocksdb::BlockBasedTableOptions>();
    const std::shared_ptr<rocksdb::Cache> cache = table != nullptr ? table->block_cache : nullptr;
    if (cache == nullptr) return uint64_t{0};
    const size_t full = cache->GetCapacity() / 10 * 9;
    const std::string lower(1, kTileNamespace);
    const std::string upper(1, static_cast<char>(kTileNamespace + 1));
    const rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.total_order_seek = true;
    ro.iterate_upper_bound = &upper_slice;
    ro.readahead_size = size_t{4} << 20;  // one sequential pass over the files
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    uint64_t bytes = 0;
    size_t n = 0;
    for (it->Seek(lower); it->Valid(); it->Next()) {
      bytes += it->key().size() + it->value().size();
      if (++n % 1024 == 0 && cache->GetUsage() >= full) break;
    }
    TESSERA_RETURN_IF_ERROR(FromRocks(it->status(), "WarmBlockCache", dir_));
    return bytes;
  });
}

std::optional<std::string> RocksDbTileStore::GetProperty(std::string_view property) const {
  try {
    std::string value;
    if (!db_->GetProperty(ToSlice(property), &value)) return std::nullopt;
    return value;
  } catch (...) {
    return std::nullopt;
  }
}

uint64_t RocksDbTileStore::TickerCount(std::string_view name) const {
  std::optional<std::string> stats = GetProperty("rocksdb.options-statistics");
  if (!stats.has_value()) return 0;
  std::istringstream lines(*stats);
  std::string line;
  const std::string want = std::string(name) + " COUNT : ";
  while (std::getline(lines, line)) {
    if (line.rfind(want, 0) == 0) return std::stoull(line.substr(want.size()));
  }
  return 0;
}

namespace rocksdb_internal {
namespace {

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

absl::Status FromRocks(const rocksdb::Status& s, std::string_view op, const std::string& dir) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = s.ToString();
  if (s.IsIOError() && (Contains(msg, "/LOCK") || Contains(msg, "lock hold"))) {
    return Unavailable(
        "RocksDB {} of {}: the DB directory is locked; another tessera process probably holds "
        "it open (stop it, or wait for it to finish). RocksDB says: {}",
        op, dir, msg);
  }
  if (s.IsNotFound()) return NotFound("RocksDB {} of {}: {}", op, dir, msg);
  if (s.IsCorruption()) return DataLoss("RocksDB {} of {}: {}", op, dir, msg);
  if (s.IsInvalidArgument()) return InvalidArgument("RocksDB {} of {}: {}", op, dir, msg);
  if (s.IsNoSpace()) return ResourceExhausted("RocksDB {} of {}: {}", op, dir, msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsShutdownInProgress()) {
    return Unavailable("RocksDB {} of {}: {}", op, dir, msg);
  }
  if (s.IsNotSupported()) return FailedPrecondition("RocksDB {} of {}: {}", op, dir, msg);
  return Internal("RocksDB {} of {}: {}", op, dir, msg);
}

}  // namespace rocksdb_internal
}  // namespace tessera::store
