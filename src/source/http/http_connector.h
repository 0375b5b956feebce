#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "source/http/http_ingest.h"
#include "source/http/log_chunk_source.h"
#include "source/source.h"
#include "store/event_log.h"
#include "store/tile_store.h"

namespace tessera::source {

struct HttpConnectorOptions {
  // Schema, lateness, future bound and clock of the source (the write path's validation; the
  // log consumer applies the same future bound, see LogChunkSourceOptions).
  HttpIngestOptions ingest;
  // Decoded rows waiting for the pipeline, at most (LogChunkSourceOptions::max_offered_bytes).
  size_t max_offered_bytes = size_t{128} << 20;
  // A `wait=visible` ingest answers after this long even if the pipeline has not aggregated
  // its rows yet (they are durable; visible shortly).
  std::chrono::milliseconds max_visible_wait{10'000};
  // The connector's series (labelled source=…): tessera_log_append_seconds,
  // tessera_log_backlog_entries, tessera_log_entries_total{path=decoded|raw}. Optional.
  MetricsRegistry* metrics = nullptr;
};

// When an ingest answer is sent (the request's `wait` parameter).
enum class IngestWait {
  kDurable,  // once the rows are on stable storage
  kVisible,  // once they are also aggregated, so the next read sees them (read-your-writes)
};

// What the pipeline consuming the connector tells it, for admission control.
struct PipelineLoad {
  // Bytes of the pipeline's unflushed tiles now; thread-safe.
  std::function<size_t()> open_tile_bytes;
  size_t memory_budget_bytes = 0;
};

// The `http` connector of one source, in one place: the write path (HttpIngest: validate,
// append durably to the event log) and the read path (LogChunkSource: the pipeline's input),
// and what joins them: each appended body's decoded rows are offered to the log consumer, so
// the pipeline does not decode the same lines again (LogChunkSource says when it still does),
// the consumer is woken after each append, and an answer can wait until its rows are visible.
// Also the admission check against the pipeline's memory and the connector's metrics.
//
// Lifetime: shared by the pipeline's runner (through source(), an aliasing pointer that keeps
// the connector alive) and the HTTP service (Ingest); either may go first.
// Thread-safety: Ingest(), OverloadReason(), Close() and the accessors are thread-safe;
// source() follows the Source contract (the pipeline's threads).
class HttpConnector {
 public:
  // Reads the consumer's stored position from `meta` (the same store as the tiles). `log` and
  // `meta` are not owned and must outlive the connector.
  static absl::StatusOr<std::shared_ptr<HttpConnector>> Create(store::EventLog* log,
                                                               store::TileStore* meta,
                                                               std::string source,
                                                               HttpConnectorOptions options);
  ~HttpConnector();
  HttpConnector(const HttpConnector&) = delete;
  HttpConnector& operator=(const HttpConnector&) = delete;

  // The pipeline's input (the log consumer), sharing ownership of the connector.
  static std::shared_ptr<Source> AsSource(const std::shared_ptr<HttpConnector>& connector);

  // The pipeline that consumes source() has loaded its state: the write path starts from its
  // largest event time (late rows are judged against it), and OverloadReason() watches its
  // memory until DetachPipeline(). REQUIRES: before the connector is handed to the HTTP service
  // (ingest must not judge lateness before it knows the pipeline's state).
  void AttachPipeline(int64_t max_event_time_ms, PipelineLoad load);
  // The pipeline is going away: OverloadReason() stops calling it (returns once no call is in
  // flight).
  void DetachPipeline();

  // POST /v1/ingest/{source}: validates `body`, appends the accepted lines durably (idempotent
  // per non-empty `batch_id`, see HttpIngest), offers their decoded rows to the pipeline and
  // wakes it; with kVisible, then waits until the rows are visible to reads (at most
  // max_visible_wait). Errors are HttpIngest's (AlreadyExists for a reused batch id with another
  // body; the log's errors).
  absl::StatusOr<IngestResult> Ingest(std::string_view batch_id, std::string_view body,
                                      IngestWait wait);

  // Non-empty while the pipeline cannot take more (its unflushed tiles are past twice their
  // budget): says why, for a 503 + Retry-After. Empty before AttachPipeline().
  std::string OverloadReason() const;

  // Shutdown: the pipeline drains the log and ends; waiting Ingest() calls return.
  void Close();

  const std::string& source_name() const { return ingest_.source(); }
  // See HttpIngest::set_reject_observer. REQUIRES: before the first Ingest().
  void set_reject_observer(HttpIngest::RejectObserver observer) {
    ingest_.set_reject_observer(std::move(observer));
  }
  // Log entries appended but not yet handed to the pipeline.
  uint64_t Backlog() const;
  LogChunkSource* consumer() { return consumer_.get(); }

 private:
  HttpConnector(store::EventLog* log, std::string source, HttpConnectorOptions options,
                std::unique_ptr<LogChunkSource> consumer);
  void RegisterMetrics(const std::shared_ptr<HttpConnector>& self);

  store::EventLog* log_;
  const HttpConnectorOptions options_;
  HttpIngest ingest_;
  std::unique_ptr<LogChunkSource> consumer_;
  mutable Mutex load_mu_;
  PipelineLoad load_ ABSL_GUARDED_BY(load_mu_);
  Histogram* append_seconds_ = nullptr;  // optional
};

}  // namespace tessera::source
