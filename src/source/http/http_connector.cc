#include "source/http/http_connector.h"

#include <fmt/format.h>

#include <utility>

#include "common/status_macros.h"

namespace tessera::source {

absl::StatusOr<std::shared_ptr<HttpConnector>> HttpConnector::Create(store::EventLog* log,
                                                                     store::TileStore* meta,
                                                                     std::string source,
                                                                     HttpConnectorOptions options) {
  LogChunkSourceOptions lo;
  lo.max_offered_bytes = options.max_offered_bytes;
  lo.max_future_ms = options.ingest.max_future_ms;
  lo.clock = options.ingest.clock;
  if (options.metrics != nullptr) {
    const char* help =
        "Log entries handed to the pipeline: via=handoff as the rows HTTP ingest decoded, "
        "via=log read from the log and decoded by the pipeline";
    lo.entries_offered = options.metrics->GetCounter("tessera_log_entries_consumed_total", help,
                                                     {{"source", source}, {"via", "handoff"}});
    lo.entries_raw = options.metrics->GetCounter("tessera_log_entries_consumed_total", help,
                                                 {{"source", source}, {"via", "log"}});
  }
  TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<LogChunkSource> consumer,
                           LogChunkSource::Create(log, meta, source, lo));
  std::shared_ptr<HttpConnector> c(
      new HttpConnector(log, std::move(source), std::move(options), std::move(consumer)));
  c->RegisterMetrics(c);
  return c;
}

HttpConnector::HttpConnector(store::EventLog* log, std::string source, HttpConnectorOptions options,
                             std::unique_ptr<LogChunkSource> consumer)
    : log_(log),
      options_(std::move(options)),
      ingest_(log, std::move(source), options_.ingest),
      consumer_(std::move(consumer)) {}

HttpConnector::~HttpConnector() = default;

std::shared_ptr<Source> HttpConnector::AsSource(const std::shared_ptr<HttpConnector>& connector) {
  return std::shared_ptr<Source>(connector, connector->consumer_.get());
}

void HttpConnector::RegisterMetrics(const std::shared_ptr<HttpConnector>& self) {
  MetricsRegistry* metrics = options_.metrics;
  if (metrics == nullptr) return;
  const Labels labels = {{"source", source_name()}};
  append_seconds_ =
      metrics->GetHistogram("tessera_log_append_seconds",
                            "Durable log append latency (incl. group-commit fsync)", labels);
  // The registry may outlive the connector: the gauges hold it weakly.
  std::weak_ptr<HttpConnector> weak = self;
  metrics->AddCallbackGauge(
      "tessera_log_backlog_entries",
      "Durable log entries appended but not yet taken by the pipeline (queue depth)", labels,
      [weak] {
        std::shared_ptr<HttpConnector> c = weak.lock();
        return c == nullptr ? 0.0 : static_cast<double>(c->Backlog());
      });
  metrics->AddCallbackGauge(
      "tessera_log_handoff_bytes",
      "Bytes of decoded ingest rows waiting to be handed to the pipeline with their log entry",
      labels, [weak] {
        std::shared_ptr<HttpConnector> c = weak.lock();
        return c == nullptr ? 0.0 : static_cast<double>(c->consumer_->offered_bytes());
      });
}

void HttpConnector::AttachPipeline(int64_t max_event_time_ms, PipelineLoad load) {
  ingest_.ObserveMaxEventTime(max_event_time_ms);
  MutexLock lock(&load_mu_);
  load_ = std::move(load);
}

void HttpConnector::DetachPipeline() {
  MutexLock lock(&load_mu_);
  load_ = PipelineLoad();
}

absl::StatusOr<IngestResult> HttpConnector::Ingest(std::string_view batch_id, std::string_view body,
                                                   IngestWait wait) {
  const Clock* clock = options_.ingest.clock;
  const int64_t t0 = clock->MonotonicNanos();
  std::unique_ptr<DecodedRows> rows;
  absl::StatusOr<IngestResult> r = ingest_.Ingest(batch_id, body, &rows);
  if (append_seconds_ != nullptr) {
    append_seconds_->Observe(static_cast<double>(clock->MonotonicNanos() - t0) / 1e9);
  }
  if (!r.ok() || r->seq == 0) return r;
  // Offer before waking the consumer, so it usually finds the rows when it reaches the entry.
  if (rows != nullptr) consumer_->Offer(r->seq, std::move(rows));
  consumer_->Notify();
  if (wait == IngestWait::kVisible) consumer_->WaitVisible(r->seq, options_.max_visible_wait);
  return r;
}

std::string HttpConnector::OverloadReason() const {
  size_t used = 0;
  size_t budget = 0;
  {
    MutexLock lock(&load_mu_);
    if (!load_.open_tile_bytes) return "";
    used = load_.open_tile_bytes();
    budget = load_.memory_budget_bytes;
  }
  // Past twice its tile budget the pipeline is not keeping up with its flushes: refuse new
  // bodies rather than grow.
  if (used <= 2 * budget) return "";
  return fmt::format("server busy: {} MiB of unflushed tiles, budget {} MiB", used >> 20,
                     budget >> 20);
}

void HttpConnector::Close() { consumer_->Close(); }

uint64_t HttpConnector::Backlog() const {
  absl::StatusOr<uint64_t> last = log_->LastSeq(source_name());
  const uint64_t pos = consumer_->position();
  return last.ok() && *last > pos ? *last - pos : 0;
}

}  // namespace tessera::source
