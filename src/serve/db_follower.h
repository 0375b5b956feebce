#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "serve/feature_service.h"
#include "store/tile_store.h"

namespace tessera::serve {

// Keeps a read-only FeatureService (`tessera serve`) current with a DB that another process
// (`tessera run`) writes: every `interval` it calls `catch_up` (for RocksDB,
// RocksDbTileStore::CatchUp on a secondary instance) and, when the stored catalog changed (the
// writer registered new sources or views), reloads it and hands it to the service.
//
// Staleness: what `serve` answers lags the writer's durable state by at most `interval` plus
// one catch-up, as long as catch-ups succeed. (The writer's unflushed open tiles exist only in
// its own process, so relative to the events posted to `run` the bound is `run`'s flush
// interval + `interval`.)
//
// Exposed on /metrics:
//   tessera_serve_catchup_age_seconds      seconds since the last successful catch-up
//   tessera_serve_catchup_failures_total   failed catch-ups (or catalog reloads)
//   tessera_serve_catalog_reloads_total    catalogs reloaded because the writer changed it
// and on /readyz (SetReadinessCheck): not ready once no catch-up succeeded for `stale_after`.
//
// Thread-safety: RefreshOnce() is serialized internally; Start()/Stop() from one owner thread.
class DbFollower {
 public:
  struct Options {
    std::chrono::milliseconds interval{500};
    // /readyz fails after this long without a successful catch-up (a few missed intervals:
    // one slow catch-up is not an outage).
    std::chrono::milliseconds stale_after{10'000};
  };

  // Not owned; all must outlive the follower. `store` is the store `catch_up` refreshes.
  DbFollower(std::function<absl::Status()> catch_up, store::TileStore* store,
             FeatureService* service, MetricsRegistry* metrics, const Clock* clock,
             Options options);
  ~DbFollower();  // Stop()s
  DbFollower(const DbFollower&) = delete;
  DbFollower& operator=(const DbFollower&) = delete;

  // Reads the current catalog fingerprint (so the first refresh does not reload needlessly),
  // registers the metrics and the readiness check. REQUIRES: before service->RegisterRoutes().
  absl::Status Init();

  // One catch-up and, if the catalog changed, a reload. Returns the first error.
  absl::Status RefreshOnce() ABSL_LOCKS_EXCLUDED(refresh_mu_, state_mu_);

  // The `interval` timer thread calling RefreshOnce(). Errors are counted and logged to stderr
  // (once per change of the error, not once per tick).
  void Start();
  void Stop();

  // Seconds since the last successful catch-up (since Init() before the first one).
  double SecondsSinceCatchUp() const;
  // OK while fresh; Unavailable naming the age and the last error once older than stale_after.
  absl::Status Freshness() const;

 private:
  absl::StatusOr<std::string> CatalogFingerprint();

  std::function<absl::Status()> catch_up_;
  store::TileStore* store_;
  FeatureService* service_;
  const Clock* clock_;
  Options options_;
  Counter* failures_;
  Counter* reloads_;
  MetricsRegistry* metrics_;

  // Lock order: refresh_mu_ before state_mu_.
  Mutex refresh_mu_;  // serializes RefreshOnce
  std::string fingerprint_ ABSL_GUARDED_BY(refresh_mu_);
  std::string last_logged_error_ ABSL_GUARDED_BY(refresh_mu_);

  mutable Mutex state_mu_ ABSL_ACQUIRED_AFTER(refresh_mu_);
  int64_t last_success_nanos_ ABSL_GUARDED_BY(state_mu_) = 0;  // Clock::MonotonicNanos
  absl::Status last_error_ ABSL_GUARDED_BY(state_mu_);

  Mutex thread_mu_;
  CondVar thread_cv_;  // stop_ became true
  bool stop_ ABSL_GUARDED_BY(thread_mu_) = false;
  std::thread thread_;
};

}  // namespace tessera::serve
