#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/arena.h"
#include "common/clock.h"
#include "common/column.h"
#include "common/value.h"
#include "engine/catalog_store.h"
#include "sql/expr.h"
#include "store/tile_store.h"

namespace tessera::engine {

// The length of the lifetime window `all`: every row of the key before `at`.
inline constexpr int64_t kLifetimeWindowMs = std::numeric_limits<int64_t>::max();

// A window as the user named it ("1h", "all") and its length (kLifetimeWindowMs for "all").
struct WindowSpec {
  std::string name;
  int64_t length_ms = 0;
  bool lifetime() const { return length_ms == kLifetimeWindowMs; }
};

// The start of the rows of window `w` read at `at_ms` over tiles of `tile_ms`:
// align_down(at − W, T), or kMinTimestampMs for `all`.
int64_t WindowFrom(const WindowSpec& w, int64_t at_ms, int64_t tile_ms);

// Windows one read may ask for (each costs a finalize and a JSON object).
inline constexpr size_t kMaxWindowsPerRead = 32;

// Parses "5m,1h,6h,1d,all" and checks each is a multiple of the view's tile size, at most
// kMaxDurationMs long, and named once; at most kMaxWindowsPerRead of them. "all" (any case) is
// the lifetime window.
absl::StatusOr<std::vector<WindowSpec>> ParseWindows(std::string_view list, int64_t tile_ms);

struct WindowResult {
  std::string name;
  std::vector<Value> features;  // in ViewDef::features order
  // Set when the base-tile retention rounded the window's tail down to the hour: the start of
  // the rows the window then holds (FeatureReaderOptions::base_retention_ms).
  std::optional<int64_t> tail_from_ms;
};

struct FeatureResult {
  std::string key;              // text form
  int64_t at_ms = 0;            // `at` as asked, unless the retention rounded it to the hour
  int64_t requested_at_ms = 0;  // as asked
  std::vector<WindowResult> windows;
  int64_t tiles_read = 0;  // over every attempt (a read that raced a retention compaction reruns)
  // The event time of the newest row the answer includes: of the longest window, since all
  // windows end at the same `at` (the others hold it too, or no row at all). From the tiles'
  // engine slot (MakeTileLayout), so exact; nullopt when the answer includes no row, or a row of
  // a tile written before tiles recorded it (unknown).
  std::optional<int64_t> newest_event_time_ms;

  // Freshness metadata (HTTP `meta=true`, `tessera get --meta`). The reader leaves `meta` unset;
  // a caller that sets it gets "meta" in the JSON.
  struct Meta {
    // The engine's watermark of the view's source, as the caller knows it; nullopt: none yet.
    std::optional<int64_t> watermark_ms;
  };
  std::optional<Meta> meta;

  // {"view":V,"key":K,"at":"RFC3339","windows":{"1h":{"plays":3,…},…}} plus, when the retention
  // rounded `at` to the hour, "requested_at", and when the
  // retention rounded some windows' tails, "tail_from":{"7d":"RFC3339",…} for those windows; when
  // `meta` is set, last, "meta":{"newest_event_time":"RFC3339"|null,"watermark":"RFC3339"|null}.
  std::string ToJson(const sql::ViewDef& view) const;
  // The same, appended to *out (a batch's response is built in place).
  void AppendJson(const sql::ViewDef& view, std::string* out) const;
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

struct FeatureReaderOptions {
  // Adds the live engine's unflushed tiles; null: the store only. Must outlive the reader.
  OpenTileSource* open_tiles = nullptr;
  // The store's base-tile retention R in ms (engine/retention.h: LoadBaseRetention); 0 = none.
  // Base tiles starting before K = BaseTilesKeptFrom(now, R) (the start of the UTC day of
  // now - R) may be gone, their rows kept in the hour rollups. So, for a view with hour rollups
  // (tile < 1h):
  //   * a window whose tail `from` (align_down(at - W, T), `at` as asked) is before K and not on
  //     an hour reads from the hour: from := align_down(from, 1h) (outward: the window holds up
  //     to an hour more, never less), reported in WindowResult::tail_from_ms;
  //   * an `at` before K and not on an hour reads up to the end of its hour (outward too: the
  //     rest of that hour counts), reported as FeatureResult::at_ms;
  //   * a read that falls back to base tiles before K (an hour without a stored rollup) checks,
  //     after reading them, that no hour rollup appeared there meanwhile (a compaction may have
  //     dropped base tiles it then covers) and reruns if one did.
  // Windows whose tail is at or after K read exactly what they read without a retention.
  int64_t base_retention_ms = 0;
  // Wall clock of `now` above (not the read's `at`: deletion follows the clock); null = the
  // system clock. Must outlive the reader.
  const Clock* clock = nullptr;
};

// Turns a view's merged tile block into its feature values: finalizes every aggregate slot,
// then evaluates the post-aggregate expressions (DESIGN.md: after the window merge, never per
// tile). Not thread-safe: one per thread; the view must outlive it.
class FeatureFinalizer {
 public:
  explicit FeatureFinalizer(const ViewRuntime& view);
  ~FeatureFinalizer();
  // Replaces *out with the features of `block` read at `at_ms` (the window's end, which the
  // time-decayed aggregates decay to), in ViewDef::features order.
  void Finalize(const std::byte* block, int64_t at_ms, std::vector<Value>* out);

 private:
  const ViewRuntime& view_;
  std::vector<Column> agg_columns_;
  std::vector<Value> agg_values_;
  std::vector<std::unique_ptr<sql::ExprEvaluator>> evals_;  // per feature; null: a bare aggregate
  bool has_exprs_ = false;  // some feature is an expression: agg_columns_ are its input
  Arena arena_;
};

// Answers window reads for one view by merging the fewest stored tiles that cover each window,
// then finalizing and evaluating the post-aggregate expressions.
// Thread-safe (state is per call, or per Context); the view runtime and store must outlive it.
class FeatureReader {
 public:
  FeatureReader(const ViewRuntime* view, store::TileStore* store,
                const FeatureReaderOptions& options)
      : view_(view), store_(store), options_(options) {}
  // `open_tiles` (optional) adds the live engine's unflushed tiles; no retention.
  FeatureReader(const ViewRuntime* view, store::TileStore* store,
                OpenTileSource* open_tiles = nullptr)
      : FeatureReader(view, store, FeatureReaderOptions{.open_tiles = open_tiles}) {}

  // What consecutive reads of one thread (a batch of keys) share: scratch blocks and buffers, the
  // finalizer, and one store scanner (store::TileScanner: one cursor for every scan instead of
  // one per scan). Reads that take their snapshot from open tiles get a scanner of their own per
  // read. Reads without open tiles read through the shared one, so they may all see the store as
  // of the first of them: Refresh() before a batch whose reads must see earlier writes.
  // Not thread-safe. Works with any reader (it re-prepares itself for another view or store) as
  // long as the views and stores it was used with outlive it: a view or store made later at the
  // address of a destroyed one would be taken for it.
  class Context {
   public:
    Context();
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    // The reads that follow see every store write that finished before this call.
    void Refresh();

   private:
    friend class FeatureReader;
    struct State;
    std::unique_ptr<State> state_;
  };

  // `key` is in stored form (engine/entity_key.h: StoredKeyFromText); the result's key is in
  // text form. Errors: OutOfRange for an `at` or window outside the supported range, DataLoss
  // for an unreadable stored tile, Unavailable when retention compactions kept racing the read
  // (kMaxReadAttempts times; retry later).
  absl::StatusOr<FeatureResult> Read(std::string_view key, int64_t at_ms,
                                     const std::vector<WindowSpec>& windows) const;
  // The same, sharing `context` with the thread's other reads (see Context).
  absl::StatusOr<FeatureResult> Read(std::string_view key, int64_t at_ms,
                                     const std::vector<WindowSpec>& windows,
                                     Context* context) const;

  static constexpr int kMaxReadAttempts = 4;

 private:
  using Ranges = std::vector<std::pair<int64_t, int64_t>>;

  // Fetches every stored tile of `resolution` in the union of `ranges` (one scan per disjoint
  // interval) into fetched[resolution] of `state`.
  absl::Status Fetch(store::Resolution resolution, const std::vector<Ranges>& ranges,
                     store::TileScanner* scanner, std::string_view key, Context::State* state,
                     int64_t* tiles_read) const;

  // One attempt at merging every window of `result` (its windows' names and tails are set).
  // Window order[k] holds the rows of [parts[k].first, parts[0].second); parts[k] are the rows it
  // adds to window order[k - 1]. Returns false, with the windows' features unset, when a retention
  // compaction may have raced the read (see FeatureReaderOptions); `kept_from` is K there
  // (INT64_MIN without a retention).
  // With `lifetime` (one part, [kMinTimestampMs, head)): the window `all`, read as the key's
  // lifetime tile (engine/lifetime.h) plus the stored tiles from its edge, plus every unflushed
  // row before the head.
  absl::StatusOr<bool> MergeWindows(std::string_view key, const Ranges& parts,
                                    const std::vector<size_t>& order, int64_t kept_from,
                                    bool lifetime, FeatureResult* result,
                                    Context::State* state) const;

  const ViewRuntime* view_;
  store::TileStore* store_;
  FeatureReaderOptions options_;
};

}  // namespace tessera::engine
