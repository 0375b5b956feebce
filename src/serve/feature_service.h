#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "engine/catalog_store.h"
#include "engine/feature_reader.h"
#include "serve/http_server.h"
#include "serve/task_pool.h"
#include "source/http/http_connector.h"
#include "store/tile_store.h"

namespace tessera::serve {

// The HTTP API of `tessera run` / `tessera serve` (docs/architecture.md, "Interfaces"):
//   GET  /v1/features/{view}/{key}?windows=1h,6h&at=…&meta=true   one key, same JSON as
//                               `tessera get`
//   POST /v1/features:batchGet  {"view":…,"keys":[…],"windows":[…]|"…","at":…,"meta":true}
//                               -> {"results":[…]}
//   GET  /v1/views              the catalog
//   POST /v1/ingest/{source}?batch_id=…   NDJSON body (optionally gzip) -> {"accepted":N,…}
//   GET  /healthz, /readyz, /metrics   (every GET route also answers HEAD)
// `meta` (true or false, the default) adds "meta":{"newest_event_time":…,"watermark":…} to each
// answer (engine::FeatureResult): the newest row the answer includes and the engine's watermark
// of the view's source (SetWatermark, else the one committed to the store).
// Bad requests get 4xx with {"error": "…"} naming the bad parameter; an unknown query parameter
// is one. On a read-only service (`tessera serve`) ingest answers 405 pointing at `tessera run`.
//
// Thread-safety: handlers run on the server's I/O threads; ingest appends (which wait for an
// fsync) run on the service's own small thread pool.
class FeatureService {
 public:
  struct Options {
    int ingest_threads = 8;  // concurrent durable appends (they share fsyncs)
    std::string default_windows = "5m,1h,6h,1d";
    size_t max_batch_keys = 10000;  // batchGet
    // A feature answer (a GET's, or a batchGet's for all its keys) larger than this is refused
    // with a 400 once it passes it, instead of growing memory with what a request asks for
    // (many keys × windows × large LIST / MAP values).
    size_t max_response_bytes = size_t{64} << 20;
    // Ingest bodies queued or being appended, at most; a POST that would exceed it gets 503 with
    // Retry-After instead of growing memory (the client retries; nothing was appended).
    size_t max_pending_ingest_bytes = size_t{256} << 20;
    // `tessera serve`: no ingest; POST /v1/ingest/… says to send events to `tessera run`.
    bool read_only = false;
    // > 0: batchGets run on a pool of this many threads instead of the HTTP I/O thread that
    // received them, so a server with few I/O threads answers single-key GETs without waiting
    // behind batches. Their bodies queued or being read, at most (the rule of
    // max_pending_ingest_bytes: 503 + Retry-After beyond it, one body always admitted).
    int read_threads = 0;
    size_t max_pending_read_bytes = size_t{64} << 20;
  };

  // `catalog` is not owned and must outlive the service unless replaced by SetCatalog().
  FeatureService(const engine::CatalogStore* catalog, store::TileStore* store,
                 MetricsRegistry* metrics, const Clock* clock, Options options);
  ~FeatureService();

  // Serves `catalog` from now on (a follower reloaded it). Requests in flight finish with the
  // catalog they started with (they hold a reference). Thread-safe. REQUIRES: no SetOpenTiles
  // (open tiles are keyed by the views of the first catalog).
  void SetCatalog(std::shared_ptr<const engine::CatalogStore> catalog);
  // The store's base-tile retention (engine/retention.h; 0 = none), which reads need to round
  // windows reaching past it. Thread-safe.
  void set_base_retention_ms(int64_t ms) { base_retention_ms_.store(ms); }
  // /readyz also fails (503 with the message) while `check` returns an error, e.g. a follower
  // that has not caught up with the writer for too long. REQUIRES: before RegisterRoutes().
  void SetReadinessCheck(std::function<absl::Status()> check);

  // Reads of `view` also merge the unflushed tiles of `open` (the live pipeline of its source).
  void SetOpenTiles(const engine::ViewRuntime* view, engine::OpenTileSource* open);
  // Reads of `view` with meta report `watermark_ms()` (engine::Watermark::kNone: none yet) as the
  // watermark: the live pipeline's (engine::LiveRuntime::WatermarkFor). Without it, the
  // watermark committed to the store (engine::Watermark::LoadCommitted). A null function is
  // ignored. REQUIRES: before RegisterRoutes(); `watermark_ms` thread-safe.
  void SetWatermark(const engine::ViewRuntime* view, std::function<int64_t()> watermark_ms);
  // Enables POST /v1/ingest/{source} for the connector's source. The connector's Ingest runs
  // on the ingest pool with the request's `wait` (visible, the default: answer once the rows
  // can be read; durable: once they are on disk). While its OverloadReason() is non-empty (its
  // pipeline cannot take more) POSTs get 503 + Retry-After. REQUIRES: before RegisterRoutes().
  void AddIngest(std::shared_ptr<source::HttpConnector> connector);
  void set_ready(bool ready) { ready_.store(ready); }

  // Registers every route on `server` and the per-route latency observer. REQUIRES: before
  // server->Start().
  void RegisterRoutes(HttpServer* server);

  // Drops the pooled reader contexts idle for a second or more, releasing the store versions
  // they hold (a follower calls it at every catch-up, so an idle server holds none for long).
  void ReleaseIdleContexts();

  // Stops the ingest pool (pending appends are answered first).
  void Shutdown();

 private:
  HttpResponse GetFeatures(const HttpRequest& req);
  HttpResponse BatchGet(const HttpRequest& req);
  // Runs BatchGet on read_pool_, within max_pending_read_bytes.
  void QueueBatchGet(HttpRequest&& req, Responder done);
  HttpResponse ListViews() const;
  void Ingest(HttpRequest&& req, Responder respond);
  // Reads `keys` of `view` (of `catalog`); appends one JSON object per key to `out`,
  // comma-separated; with `meta`, each with its "meta" (one watermark for all of them).
  absl::Status ReadKeys(const std::shared_ptr<const engine::CatalogStore>& catalog,
                        const engine::ViewRuntime& view, const std::vector<std::string>& keys,
                        std::string_view windows, const std::string* at, bool meta,
                        std::string* out);
  // The watermark reads of `view` report (see SetWatermark); nullopt: none yet.
  absl::StatusOr<std::optional<int64_t>> WatermarkOf(const engine::ViewRuntime& view) const;

  // Reader contexts (a store cursor, scratch blocks, finalizers) reused by later requests
  // instead of made per request. Only contexts of the current catalog are pooled (SetCatalog
  // empties the pool), so the views a context prepared for are alive and cannot be mistaken for
  // later ones. Between requests a pooled context holds one store version (RocksDB: a
  // superversion, whose files stay open) or one open-tile snapshot: at most kMaxPooledContexts
  // are kept, and one idle for kMaxPooledIdleNanos is dropped at the next take, return or
  // ReleaseIdleContexts().
  struct PooledContext {
    std::shared_ptr<const engine::CatalogStore> catalog;
    int64_t returned_ns = 0;  // clock_->MonotonicNanos() when last returned
    engine::FeatureReader::Context context;
  };
  static constexpr size_t kMaxPooledContexts = 8;
  static constexpr int64_t kMaxPooledIdleNanos = 1'000'000'000;
  std::unique_ptr<PooledContext> TakeContext(
      const std::shared_ptr<const engine::CatalogStore>& catalog);
  void ReturnContext(std::unique_ptr<PooledContext> context);
  // Moves the contexts idle longer than kMaxPooledIdleNanos into *out.
  void TakeIdleContexts(int64_t now_ns, std::vector<std::unique_ptr<PooledContext>>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(contexts_mu_);
  Mutex contexts_mu_;
  // Oldest return first (reuse takes the newest).
  std::vector<std::unique_ptr<PooledContext>> contexts_ ABSL_GUARDED_BY(contexts_mu_);

  std::shared_ptr<const engine::CatalogStore> catalog() const;
  HttpResponse Readiness() const;

  mutable Mutex catalog_mu_;
  std::shared_ptr<const engine::CatalogStore> catalog_ ABSL_GUARDED_BY(catalog_mu_);
  std::atomic<int64_t> base_retention_ms_{0};
  std::function<absl::Status()> readiness_check_;
  store::TileStore* store_;
  MetricsRegistry* metrics_;
  const Clock* clock_;
  Options options_;
  std::atomic<bool> ready_{false};
  std::map<const engine::ViewRuntime*, engine::OpenTileSource*> open_tiles_;
  std::map<const engine::ViewRuntime*, std::function<int64_t()>> watermarks_;
  struct IngestTarget {
    std::shared_ptr<source::HttpConnector> connector;
    Counter* accepted;
    Counter* rejected;
    Counter* late;
  };
  std::map<std::string, IngestTarget, std::less<>> ingest_;  // by lower-case source name
  // Appends one body and answers (on the ingest pool).
  void RunIngest(IngestTarget* target, const std::string& batch_id, const std::string& body,
                 source::IngestWait wait, const Responder& respond);
  Histogram* tiles_per_request_;
  Histogram* read_seconds_;
  uint64_t instance_id_ = 0;  // distinct for every FeatureService of the process

  ByteBudget pending_ingest_;  // ingest bodies queued on ingest_pool_ or being appended
  Counter* ingest_refused_ = nullptr;
  std::unique_ptr<TaskPool> ingest_pool_;
  std::unique_ptr<TaskPool> read_pool_;  // batchGets, when options_.read_threads > 0
  ByteBudget pending_reads_;             // batchGet bodies queued on read_pool_ or being read
};

}  // namespace tessera::serve
