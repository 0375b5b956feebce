#include "serve/db_follower.h"

#include <fmt/format.h>

#include <cstdio>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"
#include "engine/catalog_store.h"
#include "engine/retention.h"
#include "store/meta_keys.h"

namespace tessera::serve {

DbFollower::DbFollower(std::function<absl::Status()> catch_up, store::TileStore* store,
                       FeatureService* service, MetricsRegistry* metrics, const Clock* clock,
                       Options options)
    : catch_up_(std::move(catch_up)),
      store_(store),
      service_(service),
      clock_(clock),
      options_(options),
      metrics_(metrics) {
  failures_ = metrics_->GetCounter(
      "tessera_serve_catchup_failures_total",
      "Failed catch-ups with the DB writer (or failed catalog reloads) of a read-only server");
  reloads_ = metrics_->GetCounter("tessera_serve_catalog_reloads_total",
                                  "Catalogs reloaded because the DB writer changed the catalog");
  last_success_nanos_ = clock_->MonotonicNanos();
}

DbFollower::~DbFollower() { Stop(); }

absl::StatusOr<std::string> DbFollower::CatalogFingerprint() {
  // The catalog is a handful of small metadata entries: comparing them whole is exact and cheap.
  std::string fp;
  TESSERA_RETURN_IF_ERROR(store_->ScanMeta(store::meta::kCatalogPrefix,
                                           [&](std::string_view key, std::string_view value) {
                                             fp += fmt::format("{}:{}:", key.size(), value.size());
                                             fp += key;
                                             fp += value;
                                           }));
  return fp;
}

absl::Status DbFollower::Init() {
  {
    MutexLock lock(&refresh_mu_);
    TESSERA_ASSIGN_OR_RETURN(fingerprint_, CatalogFingerprint());
  }
  metrics_->AddCallbackGauge(
      "tessera_serve_catchup_age_seconds",
      "Seconds since a read-only server last caught up with the DB writer (its staleness, "
      "besides the writer's own flush interval)",
      {}, [this] { return SecondsSinceCatchUp(); });
  service_->SetReadinessCheck([this] { return Freshness(); });
  return absl::OkStatus();
}

absl::Status DbFollower::RefreshOnce() {
  MutexLock lock(&refresh_mu_);
  absl::Status s = catch_up_();
  if (s.ok()) {
    // The retention can only be lowered (engine/retention.h): reading it after the catch-up
    // never rounds less than the deletions need.
    absl::StatusOr<int64_t> retention = engine::LoadBaseRetention(store_);
    if (retention.ok()) {
      service_->set_base_retention_ms(*retention);
    } else {
      s = retention.status();
    }
  }
  if (s.ok()) {
    absl::StatusOr<std::string> fp = CatalogFingerprint();
    if (!fp.ok()) {
      s = fp.status();
    } else if (*fp != fingerprint_) {
      absl::StatusOr<std::unique_ptr<engine::CatalogStore>> loaded =
          engine::CatalogStore::Load(store_);
      if (loaded.ok()) {
        service_->SetCatalog(std::shared_ptr<const engine::CatalogStore>(std::move(*loaded)));
        fingerprint_ = std::move(*fp);
        reloads_->Inc();
      } else {
        s = Internal("reloading the catalog the writer changed: {}",
                     StatusMessage(loaded.status()));
      }
    }
  }
  {
    MutexLock state_lock(&state_mu_);
    if (s.ok()) {
      last_success_nanos_ = clock_->MonotonicNanos();
      last_error_ = absl::OkStatus();
    } else {
      last_error_ = s;
    }
  }
  if (!s.ok()) failures_->Inc();
  const std::string error = s.ok() ? "" : StatusMessage(s);
  if (error != last_logged_error_) {
    if (s.ok()) {
      std::fprintf(stderr, "tessera serve: caught up with the DB writer again\n");
    } else {
      std::fprintf(stderr, "tessera serve: catch-up with the DB writer failed: %s\n",
                   error.c_str());
    }
    last_logged_error_ = error;
  }
  return s;
}

void DbFollower::Start() {
  MutexLock lock(&thread_mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] {
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(thread_mu_) { return stop_; };
    MutexLock lock(&thread_mu_);
    while (!thread_cv_.WaitFor(&thread_mu_, options_.interval, stopping)) {
      lock.Unlock();
      RefreshOnce().IgnoreError();  // counted, logged and reflected in Freshness()
      service_->ReleaseIdleContexts();
      lock.Lock();
    }
  });
}

void DbFollower::Stop() {
  {
    MutexLock lock(&thread_mu_);
    stop_ = true;
  }
  thread_cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

double DbFollower::SecondsSinceCatchUp() const {
  MutexLock lock(&state_mu_);
  return static_cast<double>(clock_->MonotonicNanos() - last_success_nanos_) / 1e9;
}

absl::Status DbFollower::Freshness() const {
  MutexLock lock(&state_mu_);
  const int64_t age_nanos = clock_->MonotonicNanos() - last_success_nanos_;
  if (age_nanos <= std::chrono::nanoseconds(options_.stale_after).count()) {
    return absl::OkStatus();
  }
  return Unavailable(
      "stale: no successful catch-up with the DB writer for {:.1f}s (last error: {})",
      static_cast<double>(age_nanos) / 1e9, last_error_.ok() ? "none" : StatusMessage(last_error_));
}

}  // namespace tessera::serve
