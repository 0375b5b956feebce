#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "workspaces/kube/kube_client.h"
#include "workspaces/kube/sleep.h"

// Leader election on a coordination.k8s.io/v1 Lease, with client-go's algorithm, so that of the
// operator's replicas exactly one acts at a time.
//
//   - Acquire: create the Lease when absent; otherwise take it over (Update with the observed
//     resourceVersion: a conflict means another candidate won) when spec.holderIdentity is empty
//     or the record has not changed for leaseDurationSeconds. "Not changed" is judged by when
//     THIS process last saw the record change (its own clock), never by comparing renewTime
//     with the local clock, so clock skew between nodes does not matter.
//   - Renew every retry_period. If no renewal succeeds for renew_deadline, leadership is lost:
//     IsLeader() turns false and on_stopped_leading runs (the operator must stop acting).
//   - On a graceful stop the lease is released (holderIdentity "" and leaseDurationSeconds 1) so
//     another replica takes over at once (client-go's ReleaseOnCancel) — after
//     on_stopped_leading has returned, so the caller can finish its work before anyone else
//     starts. Each renewal must finish within the renew deadline for leadership to be given up
//     in time: give the elector a client whose request timeout is at most half of it.
//
// Lease fields written: spec.holderIdentity, leaseDurationSeconds, acquireTime, renewTime
// (RFC 3339 with microseconds, "2026-11-24T10:00:00.000000Z"), leaseTransitions (incremented
// on every change of holder).
//
// Thread-safety: Run() on one thread; IsLeader()/Holder() from any. TryAcquireOrRenew() and
// Release() are for tests and must not be called while Run() runs. Ownership: the client and
// the clock are not owned and must outlive the elector.
namespace tessera::workspaces::kube {

class LeaderElector {
 public:
  struct Options {
    std::string ns;
    std::string lease_name;
    std::string identity;  // unique per replica, e.g. the pod name
    int64_t lease_duration_ms = 15'000;
    int64_t renew_deadline_ms = 10'000;
    int64_t retry_period_ms = 2'000;
    // While not leading, attempts are retry_period · (1 + jitter · U[0,1)) apart (client-go's
    // JitterFactor), so candidates that started together do not keep colliding.
    double acquire_jitter = 1.2;
    bool release_on_cancel = true;
    const Clock* clock = SystemClock::Default();
    SleepFn sleep = SleepUnlessStopped;
  };

  LeaderElector(KubeClient& client, Options options);
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // InvalidArgument unless lease_duration > renew_deadline > retry_period > 0, and the names are
  // set.
  absl::Status Validate() const;

  // Campaigns until it leads, then renews until `stop` or until leadership is lost; calls
  // on_started_leading (on this thread, before renewing starts: it must return promptly, e.g.
  // start workers) and on_stopped_leading once leadership ends. Returns OK after `stop`,
  // Aborted when leadership was lost (the caller usually exits so that it restarts clean),
  // or the Validate() error.
  absl::Status Run(const std::atomic<bool>& stop, const std::function<void()>& on_started_leading,
                   const std::function<void()>& on_stopped_leading);

  bool IsLeader() const { return is_leader_.load(); }
  // The holder in the last record observed ("" when none yet).
  std::string Holder() const;

  // One attempt of the algorithm: true when this candidate holds the lease afterwards.
  absl::StatusOr<bool> TryAcquireOrRenew();
  // Gives the lease up if this candidate holds it.
  absl::Status Release();

 private:
  nlohmann::json Spec(int64_t now_ms, int64_t acquire_ms, int64_t transitions) const;
  void Observe(const nlohmann::json& spec);

  KubeClient& client_;
  const Options options_;
  std::atomic<bool> is_leader_{false};

  mutable Mutex mu_;
  // The Lease spec last seen (or written).
  nlohmann::json observed_spec_ ABSL_GUARDED_BY(mu_);
  // clock.MonotonicNanos()/1e6 when observed_spec_ last changed.
  int64_t observed_mono_ms_ ABSL_GUARDED_BY(mu_) = 0;
};

// "2026-11-24T10:00:00.000000Z" (UTC, microseconds) for epoch milliseconds.
std::string FormatMicroTime(int64_t epoch_ms);

}  // namespace tessera::workspaces::kube
