#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/arena.h"
#include "common/clock.h"
#include "common/value.h"
#include "engine/catalog_store.h"
#include "engine/feature_reader.h"
#include "engine/pipeline_metrics.h"
#include "sql/plan.h"

// The point-in-time engine of the offline commands (`tessera training-set`, `tessera preview`):
// the features of many (view, key, time) points, each exact to the millisecond, from event
// files, with no DB.
//
// Semantics: for a point (key, t) and window W of a view with tile T, the view's features over
// the rows of the key with align_down(t − W, T) <= ts < t, where the rows are the events after
// the same rules as a backfill of the same files in the same order into an empty DB (decoding,
// the max-future bound, the watermark's late rule, WHERE, NULL keys) — the one evaluation the
// ingestion uses (engine::ViewRowPrep, engine::Watermark, engine::FeatureFinalizer).
//
// How (docs/training_sets.md): the events are streamed once per pass, decoded and evaluated in
// parallel, the late rule applied in stream order. A row is kept only if a point of its key needs
// it (align_down(t − W_max, T) <= ts < t for the first point time t after it) and is added to
// its tile's state; a tile that holds point times is split at them into segments. A point's
// value is then the merge of whole tiles for the tail and of the segments before t for the head:
// no raw row is kept and no window is recomputed from rows. The tile states of one pass are
// bounded by a memory budget: when they would exceed it, the keys are split by hash into 2^k
// parts and the events are read once per part.
namespace tessera::offline {

// One view as the engine reads it, and its points.
struct PitView {
  std::unique_ptr<engine::ViewRuntime> rt;  // owns the layout; def and source point elsewhere
  std::vector<engine::WindowSpec> windows;  // as requested (the sink's window indexes)
  std::vector<size_t> by_length;            // window indexes, shortest first
  int64_t tile_ms = 0;
  int64_t reach_ms = 0;  // the longest window: rows before align_down(t - reach_ms) never count

  // The points. Key k (stored form, engine/entity_key.h) has points begin[k] .. begin[k+1) - 1,
  // ordered by time: point_time[i] and the caller's id point_id[i].
  absl::flat_hash_map<absl::string_view, uint32_t> key_id;  // views keys the caller owns
  std::vector<uint64_t> key_hash;                           // Hash64 of each key
  std::vector<uint32_t> begin{0};
  std::vector<int64_t> point_time;
  std::vector<uint32_t> point_id;

  // Open key set (previews): every key with an on-time row before open_at gets one point, whose
  // id is its key id, at open_at — or, when open_at is nullopt, every key at the end of the
  // events (their max event time + 1 ms). Keys added before Run() (AddKey) are answered even
  // if the events lack them.
  bool open_keys = false;
  std::optional<int64_t> open_at;
  std::vector<uint8_t> key_seen;           // open views: the key has an on-time row before open_at
  Arena key_arena;                         // the keys of an open view
  std::vector<std::string_view> open_key;  // open views: the stored key of each key id

  // The view `def` with `windows` ("5m,1h,…", each a multiple of the tile).
  static absl::StatusOr<PitView> Make(const sql::ViewDef& def, const sql::SourceDef& source,
                                      std::string_view windows);
  // Sets the points from per-point keys (nullopt: no point) and times; point ids are the
  // indexes. `keys` must outlive the view.
  void SetPoints(const std::vector<std::optional<std::string_view>>& keys,
                 const std::vector<int64_t>& times);
  // Open views: adds `key` (copied) with one point at open_at if it is new; returns its id.
  uint32_t AddKey(std::string_view key);
};

// Receives the feature values of every point. Called from the engine's worker threads: each point
// is answered by one worker, its windows in increasing length order, then PointDone.
class PitSink {
 public:
  virtual ~PitSink() = default;
  // The features (in ViewDef::features order) of window `window` of point `id` of view `view`,
  // at time `t`. `features` is valid during the call only.
  virtual void Window(int worker, size_t view, uint32_t id, int64_t t, size_t window,
                      const std::vector<Value>& features) = 0;
  virtual void PointDone(int worker, size_t view, uint32_t id) = 0;
};

struct PitOptions {
  std::vector<std::string> inputs;  // event files (NDJSON, .gz/.zst), replayed in this order
  // Rows further ahead of the clock are rejected (sql::kNoFutureBound: no bound). nullopt: the
  // source's 'max-future' if it has one, else sql::kDefaultBackfillMaxFutureMs — as a backfill.
  std::optional<int64_t> max_future_ms;
  int threads = 0;                               // 0: one per hardware thread; at most kMaxThreads
  size_t memory_budget_bytes = size_t{1} << 30;  // tile states of one pass (see above)
  size_t chunk_bytes = size_t{1} << 20;          // input bytes a worker decodes per round
  const Clock* clock = SystemClock::Default();
};

struct PitStats {
  engine::SourceCounters counters;          // the events, as a backfill counts them
  std::vector<engine::ViewCounters> views;  // per PitView
  int64_t tiles = 0;                        // (key, tile) states built
  int passes = 0;                           // passes over the events, restarts included
  int key_parts = 0;                        // key-hash parts answered
  int64_t max_event_time_ms = 0;            // of the accepted rows (0 if none)
  int files_skipped = 0;  // inputs whose content repeats an earlier input's (as in a backfill)
  int files_resumed = 0;  // inputs that continue an earlier input's content: read after it
};

class PitEngine {
 public:
  static constexpr int kMaxThreads = 64;

  // The views must read `source`; all outlive the engine.
  PitEngine(const sql::SourceDef& source, std::vector<PitView>* views, const PitOptions& options);
  ~PitEngine();
  PitEngine(const PitEngine&) = delete;
  PitEngine& operator=(const PitEngine&) = delete;

  int threads() const;
  // Answers every point of every view into `sink`. Errors: reading the inputs.
  absl::StatusOr<PitStats> Run(PitSink* sink);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::offline
