#include "engine/pipeline_metrics.h"

namespace tessera::engine {

PipelineMetrics::PipelineMetrics(MetricsRegistry* registry, const std::string& source_name,
                                 int64_t lateness_ms, const std::vector<std::string>& view_names,
                                 int threads, const Clock* clock)
    : registry_(registry), published_views_(view_names.size()) {
  if (registry_ == nullptr) return;
  MetricsRegistry* r = registry_;
  const Labels src = {{"source", source_name}};
  lines_ = r->GetCounter("tessera_source_lines_total", "Non-blank input lines read", src);
  rows_ = r->GetCounter("tessera_source_rows_total", "Rows decoded", src);
  rejected_ = r->GetCounter("tessera_source_rejected_total",
                            "Lines rejected: not a JSON object or no valid event time", src);
  field_errors_ = r->GetCounter("tessera_source_field_errors_total",
                                "Fields whose JSON type did not fit (became NULL)", src);
  late_ = r->GetCounter("tessera_source_late_total", "Rows older than the watermark", src);
  future_ = r->GetCounter("tessera_source_future_total",
                          "Rows rejected for an event time too far ahead of the clock "
                          "(max-future); also in rejected",
                          src);
  for (const std::string& view : view_names) {
    const Labels l = {{"source", source_name}, {"view", view}};
    view_rows_in_.push_back(
        r->GetCounter("tessera_view_rows_in_total", "On-time rows offered to the view", l));
    view_filtered_.push_back(
        r->GetCounter("tessera_view_filtered_total", "Rows dropped by WHERE", l));
    view_null_key_.push_back(
        r->GetCounter("tessera_view_null_key_total", "Rows skipped for a NULL key", l));
    view_key_too_long_.push_back(r->GetCounter("tessera_view_key_too_long_total",
                                               "Rows skipped for a key longer than 4096 bytes", l));
    view_aggregated_.push_back(
        r->GetCounter("tessera_view_rows_aggregated_total", "Rows added to tiles", l));
    view_open_tiles_.push_back(
        r->GetGauge("tessera_view_open_tiles", "Unflushed tiles of the view in memory", l));
    view_open_tile_bytes_.push_back(r->GetGauge(
        "tessera_view_open_tile_bytes", "Approximate bytes of the view's unflushed tiles", l));
  }
  tiles_written_ = r->GetCounter("tessera_flush_tiles_written_total",
                                 "Tiles written by flushes (base and rollups)", src);
  flush_seconds_ =
      r->GetHistogram("tessera_flush_seconds", "Flush latency (build + atomic write)", src);
  store_write_seconds_ =
      r->GetHistogram("tessera_store_write_seconds", "Atomic store write + sync of one flush", src);
  open_tiles_ = r->GetGauge("tessera_open_tiles", "Unflushed tiles in memory", src);
  open_tile_bytes_ =
      r->GetGauge("tessera_open_tile_bytes", "Approximate bytes of unflushed tiles", src);
  rollups_owed_ = r->GetGauge("tessera_rollups_owed",
                              "Hour/day rollups owed: their slot had rows while open", src);
  rollups_owed_closed_ = r->GetGauge(
      "tessera_rollups_owed_closed",
      "Owed rollups whose slot the watermark has closed: built by the next flushes", src);
  for (int t = 0; t < threads; ++t) {
    busy_seconds_.push_back(
        r->GetGauge("tessera_pipeline_busy_seconds",
                    "Seconds pipeline threads spent decoding, aggregating and flushing",
                    {{"source", source_name}, {"thread", std::to_string(t)}}));
  }
  r->AddCallbackGauge("tessera_watermark_lag_seconds",
                      "Now minus the source watermark (max event time - lateness)", src,
                      [this, clock, lateness_ms] {
                        const int64_t max = max_event_time_ms_.load();
                        if (max == std::numeric_limits<int64_t>::min()) return 0.0;
                        return static_cast<double>(clock->NowMillis() - max + lateness_ms) / 1e3;
                      });
  r->AddCallbackGauge("tessera_freshness_seconds",
                      "Now minus the newest event time servable (in tiles, flushed or open)", src,
                      [this, clock] {
                        const int64_t max = max_event_time_ms_.load();
                        if (max == std::numeric_limits<int64_t>::min()) return 0.0;
                        return static_cast<double>(clock->NowMillis() - max) / 1e3;
                      });
}

void PipelineMetrics::Publish(const PipelineState& state) {
  if (registry_ == nullptr) return;
  const SourceCounters& c = *state.source;
  lines_->Inc(c.lines - published_source_.lines);
  rows_->Inc(c.rows - published_source_.rows);
  rejected_->Inc(c.rejected - published_source_.rejected);
  field_errors_->Inc(c.field_errors - published_source_.field_errors);
  late_->Inc(c.late - published_source_.late);
  future_->Inc(c.future - published_source_.future);
  published_source_ = c;
  for (size_t vi = 0; vi < published_views_.size(); ++vi) {
    const ViewCounters& v = (*state.views)[vi];
    ViewCounters& p = published_views_[vi];
    view_rows_in_[vi]->Inc(v.rows_in - p.rows_in);
    view_filtered_[vi]->Inc(v.filtered - p.filtered);
    view_null_key_[vi]->Inc(v.null_key - p.null_key);
    view_key_too_long_[vi]->Inc(v.key_too_long - p.key_too_long);
    view_aggregated_[vi]->Inc(v.aggregated - p.aggregated);
    p = v;
  }
  tiles_written_->Inc(state.tiles_written - published_tiles_);
  published_tiles_ = state.tiles_written;
  open_tiles_->Set(static_cast<double>(state.open_tiles));
  open_tile_bytes_->Set(static_cast<double>(state.open_tile_bytes));
  for (size_t vi = 0; vi < view_open_tiles_.size(); ++vi) {
    if (state.view_open_tiles != nullptr && vi < state.view_open_tiles->size()) {
      view_open_tiles_[vi]->Set(static_cast<double>((*state.view_open_tiles)[vi]));
    }
    if (state.view_open_tile_bytes != nullptr && vi < state.view_open_tile_bytes->size()) {
      view_open_tile_bytes_[vi]->Set(static_cast<double>((*state.view_open_tile_bytes)[vi]));
    }
  }
  rollups_owed_->Set(static_cast<double>(state.rollups_owed));
  rollups_owed_closed_->Set(static_cast<double>(state.rollups_owed_closed));
  max_event_time_ms_.store(state.max_event_time_ms);
}

void PipelineMetrics::AddBusy(int thread, int64_t nanos) {
  if (registry_ == nullptr || nanos <= 0) return;
  busy_seconds_[thread]->Add(static_cast<double>(nanos) / 1e9);
}

void PipelineMetrics::ObserveFlush(int64_t nanos) {
  if (registry_ != nullptr) flush_seconds_->Observe(static_cast<double>(nanos) / 1e9);
}

void PipelineMetrics::ObserveStoreWrite(int64_t nanos) {
  if (registry_ != nullptr) store_write_seconds_->Observe(static_cast<double>(nanos) / 1e9);
}

}  // namespace tessera::engine
