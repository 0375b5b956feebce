#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera::store {

// Resolution of a tile: the view's base tile size, or one of the rollups built from it.
enum class Resolution : uint8_t {
  kBase = 0,  // the view's tile size (default 5m)
  kHour = 1,  // exactly the merge of the base tiles in [start, start + 1h)
  kDay = 2,   // exactly the merge of the hour tiles in [start, start + 1d), UTC days
  // One tile per entity key, at start 0: the merge of every row of the key before its *edge*
  // (a UTC day boundary stored in the value; engine/lifetime.h). What `all` windows read.
  kLifetime = 3,
};

// Identifies one tile. `entity_key` is the view's key value (composite keys joined by '|').
struct TileKey {
  uint32_t view_id = 0;
  std::string entity_key;
  Resolution resolution = Resolution::kBase;
  int64_t start_ms = 0;

  friend bool operator==(const TileKey&, const TileKey&) = default;
};

// Tiles already in the stores' key encoding (store/key_codec.h), packed back to back in large
// buffers: what a flush produces and a bulk write streams into sorted files without decoding,
// re-encoding or sorting them one by one. Keys must be added in strictly increasing byte order
// (a store may reject a run that is not). Not thread-safe.
class TileRun {
 public:
  // Starts the next tile with its key; the caller then appends the tile's bytes to the returned
  // buffer (only appends, and only until the next BeginTile: the tile ends where it stops).
  std::string* BeginTile(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                         int64_t start_ms);

  size_t size() const { return bounds_.size(); }
  bool empty() const { return bounds_.empty(); }
  // The encoded key and the value of tile i.
  std::string_view key(size_t i) const {
    const Bounds& b = bounds_[i];
    return std::string_view(chunks_[b.chunk]).substr(b.key, b.value - b.key);
  }
  std::string_view value(size_t i) const {
    const Bounds& b = bounds_[i];
    const std::string& chunk = chunks_[b.chunk];
    const size_t end = i + 1 < bounds_.size() && bounds_[i + 1].chunk == b.chunk
                           ? bounds_[i + 1].key
                           : chunk.size();
    return std::string_view(chunk).substr(b.value, end - b.value);
  }
  void clear() {
    chunks_.clear();
    bounds_.clear();
  }

 private:
  // Chunk i is closed once it holds ChunkBytes(i): 64 KiB, doubling up to 1 MiB (a small
  // flush reserves little); a tile never spans two chunks.
  static size_t ChunkBytes(size_t i) { return (size_t{64} << 10) << std::min<size_t>(i, 4); }
  // 12 bytes a tile: offsets within a chunk stay below its ChunkBytes plus one encoded key.
  struct Bounds {
    uint32_t chunk;
    uint32_t key;
    uint32_t value;
  };
  std::vector<std::string> chunks_;
  std::vector<Bounds> bounds_;
};

// One atomic unit of change: tile values to overwrite and metadata entries to set.
// Metadata is a small key-value namespace beside the tiles (catalog, ingest positions, file
// fingerprints); it never collides with tile keys.
// Applied in this order: tile_runs (in order), tiles, then meta, then meta_deletes; a later entry
// for the same key wins (so a key both set and deleted in one batch ends up deleted).
struct WriteBatch {
  // A hint: write the tiles as sorted files whatever their number (RocksDB: ingested, not through
  // the memtable), for tiles of a key range no other write touches, which then stay apart.
  bool bulk = false;
  std::vector<TileRun> tile_runs;
  std::vector<std::pair<TileKey, std::string>> tiles;
  std::vector<std::pair<std::string, std::string>> meta;
  std::vector<std::string> meta_deletes;

  size_t tile_count() const {
    size_t n = tiles.size();
    for (const TileRun& run : tile_runs) n += run.size();
    return n;
  }
  bool empty() const { return tile_count() == 0 && meta.empty() && meta_deletes.empty(); }
};

// A consistent, read-only view of a store at one moment (see TileStore::GetSnapshot).
class StoreSnapshot {
 public:
  virtual ~StoreSnapshot() = default;
};

class SlotStore;

// How the scans of one scanner follow each other; a store may position its cursor accordingly.
// Only a hint: scans return the same tiles either way.
enum class ScanOrder {
  // Unrelated keys (feature reads). RocksDB seeks every scan, with its prefix Bloom filters.
  kRandom,
  // Mostly increasing key order over densely stored keys (rollups built from the store, key by
  // key). RocksDB steps its cursor forward to the next scan's range when that is a few tiles
  // ahead, and seeks otherwise.
  kAscending,
};

// A run of scans that share one store cursor: the scans of one feature read, or of a batch of
// reads. A store reuses what a scan sets up (RocksDB: one iterator, re-positioned for each scan)
// instead of setting it up again per scan. Obtained from TileStore::NewScanner.
//
// Thread-safety: not thread-safe (one per thread). It must not outlive its store, nor the
// snapshot it was made with.
class TileScanner {
 public:
  virtual ~TileScanner() = default;

  // As TileStore::ScanAt, with the scanner's snapshot: fn(start_ms, bytes) for every stored tile
  // of (view_id, entity_key, resolution) with from_ms <= start_ms < to_ms, in increasing
  // start_ms. The bytes are valid only during fn. Scans may come in any order (any view, key,
  // resolution or range after any other). After an error the scanner stays usable.
  // REQUIRES: fn does not use this scanner (it may use the store or another scanner).
  virtual absl::Status Scan(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                            int64_t from_ms, int64_t to_ms,
                            absl::FunctionRef<void(int64_t, std::string_view)> fn) = 0;

  // fn(resolution, start_ms, bytes) for every stored tile of (view_id, entity_key) whose
  // resolution is in [first, last] and from_ms <= start_ms < to_ms, in key order (resolution,
  // then start): what Scan gives for each of those resolutions in turn, but a store may read
  // them with one positioning of its cursor (RocksDB: one seek when they are adjacent, as a
  // key's few tiles are). Stops as soon as fn returns false. The default runs Scan per
  // resolution. REQUIRES: fn does not use this scanner.
  virtual absl::Status ScanSpan(uint32_t view_id, std::string_view entity_key, Resolution first,
                                Resolution last, int64_t from_ms, int64_t to_ms,
                                absl::FunctionRef<bool(Resolution, int64_t, std::string_view)> fn);

  // A scanner made without a snapshot: its later scans see at least every write that finished
  // before Refresh, as a new scanner's would (RocksDB renews its cursor in place, which is cheap
  // when nothing changed). No effect on a scanner with a snapshot. The default does nothing:
  // it suits scanners that read the latest state per scan.
  virtual void Refresh() {}
};

// The tiles of one view in store key order, as of the cursor's creation: for merging sorted runs
// a bulk load keeps under reserved view ids (engine/spill.h). Obtained from
// TileStore::NewViewCursor. Not thread-safe; it must not outlive its store.
class ViewCursor {
 public:
  virtual ~ViewCursor() = default;
  // False at the end, and after an error (status() says which).
  virtual bool Valid() const = 0;
  // REQUIRES: Valid().
  virtual void Next() = 0;
  // The current tile's key within its view (store/key_codec.h, EncodeViewTileKey: what orders a
  // view's tiles) and its bytes; valid until Next(). REQUIRES: Valid().
  virtual std::string_view view_key() const = 0;
  virtual std::string_view value() const = 0;
  virtual absl::Status status() const = 0;
};

// A range of a view's entity keys, each bound an encoded entity key (store/key_codec.h,
// EncodeEntityInView) compared as bytes; an empty bound is no bound.
struct EntityRange {
  std::string lower;             // from this entity key on (inclusive) ...
  bool lower_exclusive = false;  // ... or after it
  std::string upper;             // before this one (exclusive)
};

// Persistent home of tiles. The engine does read-merge-write: a stored tile is always the full
// state for its (view, key, resolution, start); the store never interprets tile bytes.
//
// Thread-safety: all methods may be called concurrently; a Write() is atomic (all or nothing)
// and readers see either none or all of it.
class TileStore {
 public:
  virtual ~TileStore() = default;

  // Calls fn(start_ms, bytes) for every stored tile of (view_id, entity_key, resolution) with
  // from_ms <= start_ms < to_ms, in increasing start_ms. The bytes are valid only during fn.
  absl::Status Scan(uint32_t view_id, std::string_view entity_key, Resolution resolution,
                    int64_t from_ms, int64_t to_ms,
                    const std::function<void(int64_t, std::string_view)>& fn) {
    return ScanAt(nullptr, view_id, entity_key, resolution, from_ms, to_ms, fn);
  }

  // Scan as of `snapshot` (from this store's GetSnapshot), or of now when null.
  virtual absl::Status ScanAt(const StoreSnapshot* snapshot, uint32_t view_id,
                              std::string_view entity_key, Resolution resolution, int64_t from_ms,
                              int64_t to_ms,
                              const std::function<void(int64_t, std::string_view)>& fn) = 0;

  // A scanner whose scans read as of `snapshot` (from this store's GetSnapshot; it must outlive
  // the scanner), or, when null, see at least every write that finished before NewScanner (a
  // store may read one state for all of them, as RocksDB does, or the latest per scan). Never
  // null. The default runs each Scan as one ScanAt; stores with a cheaper cursor override it.
  virtual std::unique_ptr<TileScanner> NewScanner(const StoreSnapshot* snapshot, ScanOrder order);

  // The store as of now, for reads that must not see later writes (the live engine pairs a
  // snapshot with its unflushed tiles). Cheap for RocksDB; a copy for the in-memory double.
  virtual std::shared_ptr<const StoreSnapshot> GetSnapshot() = 0;

  // values->at(i) = stored bytes of keys[i], or nullopt when absent. values is resized.
  virtual absl::Status MultiGet(const std::vector<TileKey>& keys,
                                std::vector<std::optional<std::string>>* values) = 0;

  // Applies everything in `batch` atomically and durably (as durable as the store's options).
  virtual absl::Status Write(const WriteBatch& batch) = 0;

  virtual absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) = 0;

  // Calls fn(key, value) for every metadata entry whose key starts with `prefix`, in key order.
  virtual absl::Status ScanMeta(
      std::string_view prefix,
      const std::function<void(std::string_view, std::string_view)>& fn) = 0;

  // Makes everything written so far durable (e.g. after writes without a WAL).
  virtual absl::Status Sync() = 0;

  // Non-null for a store whose writes are atomic per row only (Bigtable): writers then flush
  // through writer slots (store/slot_store.h, docs/scale_out.md). In such a store a tile may be
  // held by several slots, so Scan reports a start once per slot holding a committed cell there
  // (callers merge them: tile states are mergeable), and Write() / MultiGet() act on the
  // "default slot" "" (Write stays atomic; concurrent writers of the default slot serialize).
  virtual SlotStore* slots() { return nullptr; }

  // Whole-view operations, for bulk loads that keep sorted runs under reserved view ids
  // (engine/spill.h). Stores that offer them say so here; the others (writer-slot stores) return
  // Unimplemented.
  virtual bool supports_view_ranges() const { return false; }
  // A cursor over the tiles of view_id whose entity keys lie in `range`, in key order.
  virtual absl::StatusOr<std::unique_ptr<ViewCursor>> NewViewCursor(uint32_t view_id,
                                                                    const EntityRange& range);
  // Deletes every tile of the view ids first_view_id .. last_view_id (inclusive), as durably as
  // Write (Sync() makes it durable). Readers may see some of them gone before the others.
  virtual absl::Status DeleteViewTiles(uint32_t first_view_id, uint32_t last_view_id);

  // The longest entity key this store can hold a tile of (Bigtable: its 4 KiB row-key limit
  // minus the tile key's other bytes). Writers count longer keys as too long; readers know no
  // tile of one exists.
  virtual size_t max_entity_key_bytes() const { return std::numeric_limits<size_t>::max(); }
};

}  // namespace tessera::store
