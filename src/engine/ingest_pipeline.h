#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "engine/catalog_store.h"
#include "engine/feature_reader.h"
#include "engine/flusher.h"
#include "engine/rollups.h"
#include "engine/tile_shard.h"
#include "source/chunk_source.h"
#include "source/file/line_reader.h"
#include "source/file/ndjson_decoder.h"
#include "store/tile_store.h"

namespace tessera::engine {

using source::ChunkSource;

struct PipelineOptions {
  // Worker threads; 0 means one per hardware thread.
  int threads = 0;
  // Shards per view = shards_per_thread * threads; a shard is owned by one thread at a time.
  int shards_per_thread = 4;
  // Flush (read-merge-write, then drop) the open tiles when they hold more than this.
  size_t memory_budget_bytes = size_t{2} << 30;
  // Live sources: also flush when this long has passed since the last flush and there is
  // something to flush. 0 = only on memory pressure and at the end.
  int64_t flush_interval_ms = 0;
  // Owed rollups (of slots the watermark has closed) built per flush, at most; the rest wait
  // for the next flush. Spreads the hourly/daily burst; the final flush builds them all.
  size_t rollups_per_flush = 50000;
  // Rows whose event time is more than this ahead of clock->NowMillis() are rejected (counted in
  // SourceCounters::future and ::rejected) and never move the watermark; sql::kNoFutureBound = no
  // bound.
  int64_t max_future_ms = sql::kNoFutureBound;
  // Gives "now" for the future-row bound and the freshness gauges, and times flushes.
  const Clock* clock = SystemClock::Default();
  // Where the pipeline's counters, gauges and histograms go (optional).
  MetricsRegistry* metrics = nullptr;
};

struct SourceCounters {
  int64_t lines = 0;         // non-blank input lines
  int64_t rows = 0;          // decoded rows (lines - rejected)
  int64_t rejected = 0;      // not a JSON object, no valid event time, or too far in the future
  int64_t future = 0;        // of `rejected`: event time beyond the clock + max_future_ms
  int64_t field_errors = 0;  // fields whose JSON type did not fit (became NULL)
  int64_t late = 0;          // older than the watermark: dropped
};

struct ViewCounters {
  int64_t rows_in = 0;       // on-time rows offered to the view
  int64_t filtered = 0;      // WHERE false or NULL
  int64_t null_key = 0;      // a GROUP BY value was NULL
  int64_t key_too_long = 0;  // the key is longer than kMaxEntityKeyBytes (engine/entity_key.h)
  int64_t aggregated = 0;    // rows added to tiles
};

// A rejected line, for dead-letter sinks. Called from worker threads, serialized by the pipeline.
using RejectSink = std::function<void(std::string_view input, int64_t line, std::string_view reason,
                                      std::string_view raw)>;

// Aggregates one source's rows into the tiles of its views and flushes them to the store —
// the one code path shared by backfill and live ingestion.
//
// Per round, each worker thread decodes one chunk and evaluates every view's WHERE, keys and
// aggregate arguments (parallel); then the watermark rule marks late rows in stream order
// (serial, cheap); then each worker adds the rows of the shards it owns, batch by batch in
// stream order (parallel, no locks, deterministic). Flushes happen between rounds, so a flush
// and its checkpoint cover exactly the chunks handed out so far.
//
// Watermark: max event time seen on the source minus its lateness; a row older than the
// watermark is late (dropped and counted). The max is persisted with every flush, so a later
// run continues the same stream. Hour and day rollups are written once the watermark closes their
// slot (engine/rollups.h): by the flush whose watermark closes a slot it has rows in, otherwise
// owed and built from the store by later flushes (a bounded number each) and the final flush.
//
// Serving while ingesting (OpenTileSource): readers merge the open tiles with a store snapshot
// published by the last flush. A flush writes the store first (readers still use the old
// snapshot plus the open tiles), then, in one short exclusive section, publishes the new
// snapshot and swaps in empty shards; so every row is seen exactly once by every read.
class IngestPipeline final : public OpenTileSource {
 public:
  IngestPipeline(const sql::SourceDef& source, std::vector<const ViewRuntime*> views,
                 store::TileStore* store, PipelineOptions options);
  ~IngestPipeline() override;

  // Reads the persisted watermark state. Call once before Run().
  absl::Status Init();

  // Processes every chunk of `input` until it ends or Stop() is called, then flushes. On error,
  // what was fully processed before the error is flushed with its checkpoint, and the error is
  // returned.
  absl::Status Run(ChunkSource* input);

  // Asks Run() to flush and return soon (e.g. on SIGTERM). Thread-safe.
  void Stop() { stop_.store(true); }

  // OpenTileSource. Thread-safe; callable while Run() runs (and after Init()).
  std::shared_ptr<const store::StoreSnapshot> MergeOpenTiles(
      const ViewRuntime& view, std::string_view key,
      std::span<const std::pair<int64_t, int64_t>> ranges, std::span<std::byte* const> blocks,
      int64_t* tiles_merged) override;

  void set_reject_sink(RejectSink sink) { reject_sink_ = std::move(sink); }
  // Called from the coordinating thread after every round with the counters so far, and once
  // with flushing = true before each flush.
  void set_progress(std::function<void(const SourceCounters&, bool flushing)> fn) {
    progress_ = std::move(fn);
  }

  const SourceCounters& source_counters() const { return source_counters_; }
  const std::vector<ViewCounters>& view_counters() const { return view_counters_; }
  const FlushStats& flush_stats() const { return flush_stats_; }
  int64_t max_event_time_ms() const { return max_event_time_ms_; }
  int threads() const { return threads_; }

 private:
  struct Worker;
  struct ViewPrep;

  void Prepare(Worker* w);
  void MarkLate(const std::vector<Worker*>& order);
  void Aggregate(int worker_index, const std::vector<Worker*>& order);
  bool HasOpenTiles() const;
  absl::Status FlushShards(int worker_index);
  // Picks the owed rollups the next flush builds (coordinating thread).
  absl::Status TakeOwedRollups(size_t limit);
  // The watermark for a max event time: slots ending at or before it are closed.
  int64_t ClosedBy(int64_t max_event_time_ms) const;
  // The latest event time accepted now (clock + max_future_ms).
  int64_t FutureLimit() const;
  absl::Status CommitFlush(ChunkSource* input);
  size_t OpenTileBytes() const;
  void RegisterMetrics();
  void PublishMetrics();
  std::string WatermarkKey() const;

  const sql::SourceDef& source_;
  std::vector<const ViewRuntime*> views_;
  store::TileStore* store_;
  PipelineOptions options_;
  int threads_;
  int num_shards_;

  // shards_[view][shard]. During aggregation the owning worker holds the shard's mutex
  // exclusively; readers of open tiles hold it shared.
  std::vector<std::vector<std::unique_ptr<TileShard>>> shards_;
  std::vector<std::vector<std::unique_ptr<std::shared_mutex>>> shard_mu_;
  std::atomic<bool> stop_{false};
  // Shards swapped out by the last flush, cleared by their owning workers.
  std::vector<std::vector<std::unique_ptr<TileShard>>> retired_;
  // Guards shards_ pointers (not contents) and published_.
  std::shared_mutex publish_mu_;
  std::shared_ptr<const store::StoreSnapshot> published_;

  // Metrics (null when options_.metrics is null). Counters are published from the
  // coordinating thread after every round as deltas of the plain counters above.
  struct Metrics {
    Counter* lines;
    Counter* rows;
    Counter* rejected;
    Counter* field_errors;
    Counter* late;
    Counter* future;
    std::vector<Counter*> view_rows_in, view_filtered, view_null_key, view_key_too_long,
        view_aggregated;
    Counter* tiles_written;
    Histogram* flush_seconds;
    Histogram* store_write_seconds;
    Gauge* open_tiles;
    Gauge* open_tile_bytes;
    Gauge* rollups_owed;
    Gauge* rollups_owed_closed;
    std::vector<Gauge*> busy_seconds;  // per worker thread, only grows
  };
  std::unique_ptr<Metrics> metrics_;
  SourceCounters published_source_;
  std::vector<ViewCounters> published_views_;
  int64_t published_tiles_ = 0;
  std::atomic<int64_t> max_event_time_seen_{std::numeric_limits<int64_t>::min()};
  std::vector<bool> store_may_hold_view_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<FlushOutput> flush_out_;  // per worker
  PendingRollups pending_rollups_;
  std::vector<std::vector<OwedRollup>> owed_work_;  // per worker: owed rollups to build
  store::WriteBatch flush_meta_;  // metadata changes of the next commit (owed-rollup markers)
  int64_t committed_max_event_time_ms_;
  std::vector<FlushStats> flush_stats_per_worker_;

  int64_t max_event_time_ms_;
  SourceCounters source_counters_;
  std::vector<ViewCounters> view_counters_;
  FlushStats flush_stats_;
  RejectSink reject_sink_;
  std::mutex reject_mu_;
  std::function<void(const SourceCounters&, bool flushing)> progress_;
};

}  // namespace tessera::engine
