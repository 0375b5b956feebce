#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "engine/pipeline_metrics.h"
#include "sql/plan.h"

namespace tessera::offline {

struct TrainingSetOptions {
  std::vector<std::string> inputs;  // event files (NDJSON, .gz/.zst), replayed in this order
  std::string spine;                // NDJSON or CSV (offline/spine.h)
  std::string spine_time = "ts";    // the spine's time column
  bool skip_bad_spine = false;      // count and leave out spine rows with a bad time or key
  std::vector<std::string> views;   // views to read; they must share one source
  std::string windows = "5m,1h,6h,1d";
  std::string out;  // .ndjson or .csv, optionally .gz/.zst; written whole or not at all
  // Rows further ahead of the clock are rejected (sql::kNoFutureBound: no bound). nullopt: the
  // source's 'max-future' if it has one, else sql::kDefaultBackfillMaxFutureMs — as a backfill.
  std::optional<int64_t> max_future_ms;
  int threads = 0;  // 0: one per hardware thread; at most PitEngine::kMaxThreads
  // Tile states held at once, at most (arenas, tables and sketch heap). When the states of every
  // spine key would not fit, the keys are split by hash into 2^k parts, one pass over the
  // events each (see BuildTrainingSet).
  size_t memory_budget_bytes = size_t{1} << 30;
  size_t chunk_bytes = size_t{1} << 20;  // input bytes a worker decodes per round
  const Clock* clock = SystemClock::Default();
};

struct TrainingSetSummary {
  int64_t spine_rows = 0;          // rows written
  int64_t spine_rows_skipped = 0;  // bad rows left out (--skip-bad-spine)
  std::vector<std::pair<std::string, int64_t>> spine_null_keys;  // per view
  engine::SourceCounters counters;                               // the events, as a backfill
  std::vector<std::pair<std::string, engine::ViewCounters>> views;
  int files = 0;
  int files_skipped = 0;   // inputs whose content repeats an earlier one's, as a backfill skips
  int files_resumed = 0;   // inputs read only after the content of an earlier one they continue
  int64_t tiles = 0;       // (key, tile) states built
  int passes = 0;          // passes over the events (the last one's counters are reported)
  int partitions = 0;      // key-hash parts of the passes that completed
  uint64_t out_bytes = 0;  // uncompressed
  double seconds = 0;
  int threads = 0;

  // One line: {"spine_rows":N,"read":…,"rejected":…,"late":…,…}
  std::string ToJson() const;
};

// Writes point-in-time features for every spine row (DESIGN.md, `tessera training-set`): for
// the row's time t and each window W of each view, the view's features over the rows of its
// key with align_down(t − W, T) <= ts < t, where the rows are the events after the same
// rules as a backfill of the same files in the same order into an empty DB (malformed and NULL
// handling, the watermark's late rule, the max-future bound). A spine key never seen gets the
// features of an empty window, as `get` does.
//
// How (docs/training_sets.md): the spine is read into memory and indexed by key. The events are
// streamed once through the ingestion's decoder, view evaluation and late rule; a row is kept
// only if some spine row of its key needs it (t − W_max tile-aligned <= ts < t), aggregated into
// its tile — a tile holding spine times is split at them into segments — so a spine row's value
// is the merge of whole tiles for the tail and of the segments before t for the head: exact to
// the millisecond, with no raw row kept and no window recomputed from rows. When the states
// exceed memory_budget_bytes the pass restarts with the keys split by hash into enough parts
// (one pass each). Output is in spine order; the spine's columns first, then
// `{view}__{feature}__{window}`.
absl::StatusOr<TrainingSetSummary> BuildTrainingSet(const sql::Catalog& catalog,
                                                    const TrainingSetOptions& options);

}  // namespace tessera::offline
