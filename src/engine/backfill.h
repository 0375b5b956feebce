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
#include "nlohmann/json_fwd.hpp"
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

// Adds the counters of a replay of a source's rows into views to a summary, as backfills and
// training sets print them: "read" (lines), "rows", "rejected", "late", "future",
// "field_errors", "null_key" (over the views) and per view "views":{V:{"rows_in",…}}.
void AddReplayCounters(const SourceCounters& counters,
                       const std::vector<std::pair<std::string, ViewCounters>>& views,
                       nlohmann::json* out);

// The max-future bound of a replay of files of `source`: `requested` if set, else the source's
// 'max-future', else sql::kDefaultBackfillMaxFutureMs.
int64_t ReplayMaxFutureMs(const sql::SourceDef& source, std::optional<int64_t> requested);

struct BackfillSummary {
  std::string source;
  SourceCounters counters;
  std::vector<std::pair<std::string, ViewCounters>> views;
  FlushStats flush;
  int files = 0;
  int files_skipped = 0;  // all of the content already in the DB (any name or compression)
  int files_resumed = 0;  // a prefix of the content in the DB: replayed from where it ends
  double seconds = 0;
  int threads = 0;

  // One line: {"read":N,"rejected":R,"late":L,…}
  std::string ToJson() const;
};

// Replays files through the ingest pipeline into `store`, exactly once per input content.
// An input is identified by its uncompressed content (not its name, path or compression):
// every flush records, in the same atomic write as the tiles, the uncompressed offset the tiles
// reach in each input and a hash of the bytes before it (input_progress.h). A later run starts
// each input after the longest such committed prefix of its content: an input whose content is
// all committed is skipped (files_skipped); one that continues a committed prefix resumes after
// it (files_resumed): a retry after a crash or a failed read (truncated .gz), a file that grew,
// the .gz of a plain file already loaded. A final line without '\n' is replayed and committed;
// if the input later continues that line, the line is replayed again in full unless what was
// added to it is blank (the earlier, cut version of the line is almost always invalid JSON and
// was rejected; a cut that left a complete object followed by appended garbage keeps the row).
// Records of the previous format (keyed by a hash of the stored bytes) are honoured for inputs
// with those exact bytes and rewritten in this format.
// Errors: CheckBackfillInputs; a read error (the tiles of the lines before it are committed, so
// a retry continues exactly).
// OK if every input is a readable regular file: NotFound for a missing one, InvalidArgument for
// a directory or a special file, FailedPrecondition for one that cannot be opened; each names it.
absl::Status CheckBackfillInputs(const std::vector<std::string>& inputs);

absl::StatusOr<BackfillSummary> RunBackfill(store::TileStore* store, CatalogStore* catalog,
                                            const BackfillOptions& options);

}  // namespace tessera::engine
