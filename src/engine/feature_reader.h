#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/value.h"
#include "engine/catalog_store.h"
#include "store/tile_store.h"

namespace tessera::engine {

// A window as the user named it ("1h") and its length.
struct WindowSpec {
  std::string name;
  int64_t length_ms = 0;
};

// Windows one read may ask for (each costs a finalize and a JSON object).
inline constexpr size_t kMaxWindowsPerRead = 32;

// Parses "5m,1h,6h,1d" and checks each is a multiple of the view's tile size, at most
// kMaxDurationMs long, and named once; at most kMaxWindowsPerRead of them.
absl::StatusOr<std::vector<WindowSpec>> ParseWindows(std::string_view list, int64_t tile_ms);

struct WindowResult {
  std::string name;
  std::vector<Value> features;  // in ViewDef::features order
};

struct FeatureResult {
  std::string key;              // text form
  int64_t at_ms = 0;            // effective `at` (see tile::ComputeWindow)
  int64_t requested_at_ms = 0;  // as asked
  std::vector<WindowResult> windows;
  int64_t tiles_read = 0;

  // {"view":V,"key":K,"at":"RFC3339","windows":{"1h":{"plays":3,…},…}} plus, when `at` was
  // rounded to a tile boundary, "requested_at".
  std::string ToJson(const sql::ViewDef& view) const;
};

// Unflushed (in-memory) tiles a reader must add to what the store holds: the live engine.
class OpenTileSource {
 public:
  virtual ~OpenTileSource() = default;
  // Merges into *blocks[i] the open base tiles of (view, key) with start in ranges[i]
  // ([from, to)), adds their number to *tiles_merged, and returns the store snapshot that,
  // together with them, is one consistent view (every row counted once, whatever flushes run
  // concurrently). Returns null when the view is not served from memory (read the latest).
  virtual std::shared_ptr<const store::StoreSnapshot> MergeOpenTiles(
      const ViewRuntime& view, std::string_view key,
      std::span<const std::pair<int64_t, int64_t>> ranges, std::span<std::byte* const> blocks,
      int64_t* tiles_merged) = 0;
};

// Answers window reads for one view by merging the fewest stored tiles that cover each window,
// then finalizing and evaluating the post-aggregate expressions.
// Thread-safe (state is per call); the view runtime and store must outlive it.
class FeatureReader {
 public:
  // `open_tiles` (optional) adds the live engine's unflushed tiles.
  FeatureReader(const ViewRuntime* view, store::TileStore* store,
                OpenTileSource* open_tiles = nullptr)
      : view_(view), store_(store), open_tiles_(open_tiles) {}

  // `key` is in stored form (engine/entity_key.h: StoredKeyFromText); the result's key is in
  // text form. Errors: OutOfRange for an `at` or window outside the supported range, DataLoss
  // for an unreadable stored tile.
  absl::StatusOr<FeatureResult> Read(std::string_view key, int64_t at_ms,
                                     const std::vector<WindowSpec>& windows) const;

 private:
  // Tiles of one resolution fetched for a read, in increasing start.
  struct FetchedTiles {
    std::vector<int64_t> starts;
    std::vector<std::string> bytes;
    // fn(start, bytes) for the fetched tiles with from <= start < to.
    template <typename Fn>
    void ForEach(int64_t from, int64_t to, Fn&& fn) const {
      auto it = std::lower_bound(starts.begin(), starts.end(), from);
      for (size_t i = static_cast<size_t>(it - starts.begin()); i < starts.size() && starts[i] < to;
           ++i) {
        fn(starts[i], bytes[i]);
      }
    }
  };
  // Fetches every stored tile of `resolution` in the union of `ranges` (one scan per disjoint
  // interval) into *out.
  absl::Status Fetch(store::Resolution resolution,
                     const std::vector<std::vector<std::pair<int64_t, int64_t>>>& ranges,
                     const store::StoreSnapshot* snapshot, std::string_view key, FetchedTiles* out,
                     int64_t* tiles_read) const;

  const ViewRuntime* view_;
  store::TileStore* store_;
  OpenTileSource* open_tiles_;
};

}  // namespace tessera::engine
