#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "workspaces/api/workspace.h"

namespace tessera::workspaces {

// The operator's Prometheus telemetry, on a MetricsRegistry:
//   tessera_workspaces{phase}                     gauge: workspaces by phase (as last reconciled)
//   tessera_workspace_time_to_ready_seconds        histogram: Starting → Ready
//   tessera_workspace_starts_total / _stops_total / _culls_total
//   tessera_operator_reconcile_seconds             histogram: one Reconcile call
//   tessera_operator_reconcile_errors_total        counter
//   tessera_workspace_active_users                 gauge: distinct owners with a Ready
//                                                  workspace used within active_window_ms
//   tessera_operator_is_leader                     gauge: 1 while this replica leads
// Thread-safe.
class OperatorMetrics {
 public:
  OperatorMetrics(MetricsRegistry* registry, const Clock* clock,
                  int64_t active_window_ms = 15 * 60'000, size_t max_users = 2000);

  // The state of one workspace after a reconcile (phase nullopt: it is gone).
  void SetWorkspace(const std::string& key, std::optional<Phase> phase, const std::string& owner,
                    int64_t last_activity_ms);

  // Per team (the namespace) and user (the owner): what tells whether workspaces make people
  // productive. Label sets are bounded: at most `max_users` distinct (team, user) pairs get
  // series of their own; later ones are counted as team "__other__", user "__other__".
  // A start: the first one of a workspace, or a resume (started again after a stop).
  void CountUserStart(const std::string& team, const std::string& user, bool resume);
  void CountUserCull(const std::string& team, const std::string& user);
  void CountUserCullAvoided(const std::string& team, const std::string& user);
  // Creation to first Ready; creation to the first Ray job's start.
  void ObserveFirstReady(const std::string& team, double seconds);
  void ObserveFirstRayJob(const std::string& team, double seconds);
  // One activity check of workspace `key`: the time since its previous check counts as active
  // when it was used within the active window (capped at that window, so a gap between
  // checks — a change of leader — is not counted as use).
  void ObserveActivityCheck(const std::string& key, const std::string& team,
                            const std::string& user, int64_t last_activity_ms);
  void ObserveTimeToReady(double seconds) { time_to_ready_->Observe(seconds); }
  void CountStart() { starts_->Inc(); }
  void CountStop() { stops_->Inc(); }
  void CountCull() { culls_->Inc(); }
  void CountCullAvoided() { culls_avoided_->Inc(); }
  void ObserveReconcile(double seconds, bool ok);
  void SetLeader(bool leader) { leader_->Set(leader ? 1 : 0); }

  // For tests and the CLI's describe: the number of workspaces in `phase`, distinct active owners.
  int64_t CountInPhase(Phase phase) const;
  int64_t ActiveUsers() const;

 private:
  struct Entry {
    Phase phase;
    std::string owner;
    int64_t last_activity_ms;
  };

  // The (team, user) labels to count under, bounded as described above.
  Labels UserLabels(const std::string& team, const std::string& user)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  MetricsRegistry* registry_;
  const Clock* clock_;
  const int64_t active_window_ms_;
  const size_t max_users_;
  Histogram* time_to_ready_;
  Counter* starts_;
  Counter* stops_;
  Counter* culls_;
  Counter* culls_avoided_;
  Histogram* reconcile_seconds_;
  Counter* reconcile_errors_;
  Gauge* leader_;
  mutable Mutex mu_;
  std::map<std::string, Entry> workspaces_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<std::string, std::string>> users_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> last_check_ms_ ABSL_GUARDED_BY(mu_);  // by workspace key
  std::map<std::pair<std::string, std::string>, int64_t> active_remainder_ms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::workspaces
