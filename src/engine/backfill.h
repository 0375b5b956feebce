#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "engine/catalog_store.h"
#include "engine/ingest_pipeline.h"
#include "store/tile_store.h"

namespace tessera::engine {

struct BackfillOptions {
  std::vector<std::string> inputs;  // NDJSON files (plain, .gz, .zst), replayed in this order
  std::string source;               // source the files belong to; empty = the only one used
  std::string dead_letter_path;     // rejected lines as JSON, one per line; empty = none
  PipelineOptions pipeline;         // its max_future_ms is replaced by the one below
  // Rows further ahead of the clock are rejected (sql::kNoFutureBound: no bound). nullopt: the
  // source's 'max-future' if it has one, else sql::kDefaultBackfillMaxFutureMs (one day).
  std::optional<int64_t> max_future_ms;
  // Bytes of input per chunk: each worker decodes one chunk per round.
  size_t chunk_bytes = size_t{1} << 20;
  const Clock* clock = SystemClock::Default();  // for the elapsed time in the summary
  // Progress callback (every round): rows so far, uncompressed bytes so far, total bytes of the
  // inputs on disk (compressed ones count as stored), and whether a flush is starting.
  std::function<void(int64_t rows, uint64_t bytes, uint64_t total_bytes, bool flushing)> progress;
};

struct BackfillSummary {
  std::string source;
  SourceCounters counters;
  std::vector<std::pair<std::string, ViewCounters>> views;
  FlushStats flush;
  int files = 0;
  int files_skipped = 0;  // already fully in the DB (same content fingerprint)
  int files_resumed = 0;  // partially in the DB: resumed where the last run stopped
  double seconds = 0;
  int threads = 0;

  // One line: {"read":N,"rejected":R,"late":L,…}
  std::string ToJson() const;
};

// Replays files through the ingest pipeline into `store`, exactly once per file content:
// each file is identified by a 128-bit hash of its bytes; every flush records, in the same
// atomic write as the tiles, how far into each file the tiles reach. A file already complete in
// the DB is skipped; a file a crashed run left half done resumes at the recorded offset.
absl::StatusOr<BackfillSummary> RunBackfill(store::TileStore* store, CatalogStore* catalog,
                                            const BackfillOptions& options);

}  // namespace tessera::engine
