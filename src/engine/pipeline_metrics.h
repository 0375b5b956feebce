#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"

namespace tessera::engine {

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

// What one ingest pipeline publishes after a round or a flush.
struct PipelineState {
  const SourceCounters* source = nullptr;
  const std::vector<ViewCounters>* views = nullptr;  // in the pipeline's view order
  int64_t tiles_written = 0;                         // base + rollup tiles, all flushes so far
  size_t open_tiles = 0;
  size_t open_tile_bytes = 0;
  // The same per view (in the pipeline's view order), or null: not published.
  const std::vector<size_t>* view_open_tiles = nullptr;
  const std::vector<size_t>* view_open_tile_bytes = nullptr;
  size_t rollups_owed = 0;
  size_t rollups_owed_closed = 0;
  int64_t max_event_time_ms = std::numeric_limits<int64_t>::min();
};

// The Prometheus series of one source's ingest pipeline. The pipeline keeps plain counters (no
// atomics on the hot path) and Publish() adds what they gained since the last call to the
// registry's counters, so several pipelines and restarts add up. Without a registry every call
// is a no-op.
//
// Series (labels source, and view for tessera_view_*): tessera_source_{lines, rows, rejected,
// field_errors, late, future}_total, tessera_view_{rows_in, filtered, null_key, key_too_long,
// rows_aggregated}_total, tessera_flush_tiles_written_total, tessera_flush_seconds,
// tessera_store_write_seconds, tessera_open_tiles, tessera_open_tile_bytes,
// tessera_rollups_owed, tessera_rollups_owed_closed, tessera_pipeline_busy_seconds{thread}, and
// the callback gauges tessera_watermark_lag_seconds and tessera_freshness_seconds.
//
// Thread-safety: Publish() from one thread at a time (the coordinating thread); AddBusy() from
// worker `thread`; Observe*() from any thread. The callback gauges read an atomic, so the
// registry may render concurrently. The registry must not render after this is destroyed.
class PipelineMetrics {
 public:
  // `registry` may be null. `view_names` in the pipeline's view order.
  PipelineMetrics(MetricsRegistry* registry, const std::string& source_name, int64_t lateness_ms,
                  const std::vector<std::string>& view_names, int threads, const Clock* clock);
  PipelineMetrics(const PipelineMetrics&) = delete;
  PipelineMetrics& operator=(const PipelineMetrics&) = delete;

  bool enabled() const { return registry_ != nullptr; }

  // Adds the counters' growth since the last Publish() and sets the gauges.
  void Publish(const PipelineState& state);
  // Busy time of a worker thread (decoding and aggregating).
  void AddBusy(int thread, int64_t nanos);
  void ObserveFlush(int64_t nanos);
  void ObserveStoreWrite(int64_t nanos);

 private:
  MetricsRegistry* registry_;
  Counter* lines_ = nullptr;
  Counter* rows_ = nullptr;
  Counter* rejected_ = nullptr;
  Counter* field_errors_ = nullptr;
  Counter* late_ = nullptr;
  Counter* future_ = nullptr;
  std::vector<Counter*> view_rows_in_, view_filtered_, view_null_key_, view_key_too_long_,
      view_aggregated_;
  Counter* tiles_written_ = nullptr;
  Histogram* flush_seconds_ = nullptr;
  Histogram* store_write_seconds_ = nullptr;
  Gauge* open_tiles_ = nullptr;
  std::vector<Gauge*> view_open_tiles_;
  std::vector<Gauge*> view_open_tile_bytes_;
  Gauge* open_tile_bytes_ = nullptr;
  Gauge* rollups_owed_ = nullptr;
  Gauge* rollups_owed_closed_ = nullptr;
  std::vector<Gauge*> busy_seconds_;  // per worker thread, only grows

  // What the registry has already been given.
  SourceCounters published_source_;
  std::vector<ViewCounters> published_views_;
  int64_t published_tiles_ = 0;
  std::atomic<int64_t> max_event_time_ms_{std::numeric_limits<int64_t>::min()};
};

}  // namespace tessera::engine
