#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "engine/catalog_store.h"
#include "engine/feature_reader.h"
#include "serve/http_server.h"
#include "source/http/http_ingest.h"
#include "store/tile_store.h"

namespace tessera::serve {

// The HTTP API of `tessera run` / `tessera serve` (docs/architecture.md, "Interfaces"):
//   GET  /v1/features/{view}/{key}?windows=1h,6h&at=…   one key, same JSON as `tessera get`
//   POST /v1/features:batchGet  {"view":…,"keys":[…],"windows":[…]|"…","at":…} -> {"results":[…]}
//   GET  /v1/views              the catalog
//   POST /v1/ingest/{source}?batch_id=…   NDJSON body -> {"accepted":N,"rejected":R}
//   GET  /healthz, /readyz, /metrics
// Bad requests get 4xx with {"error": "…"} naming the bad parameter.
//
// Thread-safety: handlers run on the server's I/O threads; ingest appends (which wait for an
// fsync) run on the service's own small thread pool.
class FeatureService {
 public:
  struct Options {
    int ingest_threads = 8;  // concurrent durable appends (they share fsyncs)
    std::string default_windows = "5m,1h,6h,1d";
    size_t max_batch_keys = 10000;  // batchGet
  };

  FeatureService(const engine::CatalogStore* catalog, store::TileStore* store,
                 MetricsRegistry* metrics, const Clock* clock, Options options);
  ~FeatureService();

  // Reads of `view` also merge the unflushed tiles of `open` (the live pipeline of its source).
  void SetOpenTiles(const engine::ViewRuntime* view, engine::OpenTileSource* open);
  // Enables POST /v1/ingest/{source}; `on_appended` runs after each durable append.
  void AddIngest(std::unique_ptr<source::HttpIngest> ingest, std::function<void()> on_appended);
  void set_ready(bool ready) { ready_.store(ready); }

  // Registers every route on `server` and the per-route latency observer. REQUIRES: before
  // server->Start().
  void RegisterRoutes(HttpServer* server);

  // Stops the ingest pool (pending appends are answered first).
  void Shutdown();

 private:
  HttpResponse GetFeatures(const HttpRequest& req);
  HttpResponse BatchGet(const HttpRequest& req);
  HttpResponse ListViews() const;
  void Ingest(HttpRequest&& req, Responder respond);
  // Reads `keys` of `view`; appends one JSON object per key to `out`, comma-separated.
  absl::Status ReadKeys(const engine::ViewRuntime& view, const std::vector<std::string>& keys,
                        std::string_view windows, const std::string* at, std::string* out);

  const engine::CatalogStore* catalog_;
  store::TileStore* store_;
  MetricsRegistry* metrics_;
  const Clock* clock_;
  Options options_;
  std::atomic<bool> ready_{false};
  std::map<const engine::ViewRuntime*, engine::OpenTileSource*> open_tiles_;
  struct IngestTarget {
    std::unique_ptr<source::HttpIngest> ingest;
    std::function<void()> on_appended;
    Counter* accepted;
    Counter* rejected;
    Histogram* append_seconds;
  };
  std::map<std::string, IngestTarget, std::less<>> ingest_;  // by lower-case source name
  Histogram* tiles_per_request_;
  Histogram* read_seconds_;

  // Ingest pool.
  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::deque<std::function<void()>> pool_tasks_;
  bool pool_stop_ = false;
  std::vector<std::thread> pool_;
};

}  // namespace tessera::serve
