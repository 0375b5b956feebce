#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/arena.h"
#include "tile/tile_layout.h"

namespace tessera::engine {

// The open (not yet flushed) base tiles of one view for the keys that hash to this shard.
// Each tile holds the *delta* since the last flush: the flusher merges it into the stored tile.
//
// Memory: keys and blocks live in arenas, so creating a tile allocates nothing per event and a
// Clear() frees everything at once. Not thread-safe: one writer at a time (the ingest pipeline
// gives each shard one owner thread per phase).
class TileShard {
 public:
  // One open tile.
  struct Entry {
    std::string_view key;
    uint64_t key_hash;  // Hash64(key)
    int64_t start_ms;
    std::byte* block;
  };

  explicit TileShard(const tile::TileLayout* layout) : layout_(layout) {}
  ~TileShard() { Clear(); }
  TileShard(const TileShard&) = delete;
  TileShard& operator=(const TileShard&) = delete;

  // The block of tile (key, start), created empty (Init()'ed) if absent. `key_hash` must be
  // Hash64(key). The key bytes are copied on insert.
  std::byte* FindOrCreate(std::string_view key, uint64_t key_hash, int64_t start_ms);

  // Starts loading the hash-table slot of (key, start) into the cache, for a FindOrCreate soon
  // after (a batch's lookups miss the cache at high cardinality).
  void Prefetch(std::string_view key, uint64_t key_hash, int64_t start_ms) const {
    map_.prefetch(TileId{key, start_ms, Mix(key_hash, start_ms)});
  }

  // The block of (key, start) or nullptr.
  const std::byte* Find(std::string_view key, uint64_t key_hash, int64_t start_ms) const;

  // The open tiles in creation order, which is also memory order (a cache-friendly walk).
  const std::vector<Entry>& entries() const { return entries_; }

  size_t size() const { return entries_.size(); }
  // Smallest and largest start of an open tile (meaningless when empty).
  int64_t min_start_ms() const { return min_start_ms_; }
  int64_t max_start_ms() const { return max_start_ms_; }
  // Approximate bytes held (arenas + hash table), excluding sketch heap memory.
  size_t MemoryBytes() const;

  // Destroys every tile and releases their memory for reuse.
  void Clear();
  // Destroys every tile (freeing its block and sketch memory) and forgets them all, but keeps
  // the key bytes until Clear(): views into them stay valid.
  void DestroyStates();

 private:
  struct TileId {
    std::string_view key;
    int64_t start_ms;
    uint64_t hash;
    friend bool operator==(const TileId& a, const TileId& b) {
      return a.start_ms == b.start_ms && a.key == b.key;
    }
  };
  struct TileIdHash {
    size_t operator()(const TileId& id) const { return id.hash; }
  };
  static uint64_t Mix(uint64_t key_hash, int64_t start_ms);

  const tile::TileLayout* layout_;
  absl::flat_hash_map<TileId, std::byte*, TileIdHash> map_;
  std::vector<Entry> entries_;
  int64_t min_start_ms_ = 0;
  int64_t max_start_ms_ = 0;
  Arena keys_{256 * 1024};
  static constexpr size_t kBlockArenaBytes = 1024 * 1024;
  Arena blocks_{kBlockArenaBytes};
};

}  // namespace tessera::engine
