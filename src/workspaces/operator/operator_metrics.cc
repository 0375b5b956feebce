#include "workspaces/operator/operator_metrics.h"

#include <set>

namespace tessera::workspaces {

OperatorMetrics::OperatorMetrics(MetricsRegistry* registry, const Clock* clock,
                                 int64_t active_window_ms)
    : clock_(clock), active_window_ms_(active_window_ms) {
  time_to_ready_ = registry->GetHistogram(
      "tessera_workspace_time_to_ready_seconds",
      "Time from a workspace entering Starting to Ready (IDE pod and Ray head ready)", {},
      {1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800});
  starts_ = registry->GetCounter("tessera_workspace_starts_total",
                                 "Workspaces that entered Starting (created or started again)");
  stops_ = registry->GetCounter("tessera_workspace_stops_total",
                                "Workspaces that reached Stopped (by the user or culled)");
  culls_ = registry->GetCounter("tessera_workspace_culls_total",
                                "Workspaces stopped by the operator for being idle");
  culls_avoided_ =
      registry->GetCounter("tessera_workspace_culls_avoided_total",
                           "Workspaces warned of an idle stop that were used again before it");
  reconcile_seconds_ = registry->GetHistogram("tessera_operator_reconcile_seconds",
                                              "Latency of one workspace reconcile");
  reconcile_errors_ = registry->GetCounter("tessera_operator_reconcile_errors_total",
                                           "Reconciles that failed and were requeued");
  leader_ = registry->GetGauge("tessera_operator_is_leader",
                               "1 while this replica holds the leader lease");
  for (Phase p : {Phase::kPending, Phase::kStarting, Phase::kReady, Phase::kStopping,
                  Phase::kStopped, Phase::kFailed}) {
    registry->AddCallbackGauge("tessera_workspaces", "Workspaces by phase",
                               {{"phase", PhaseName(p)}},
                               [this, p] { return static_cast<double>(CountInPhase(p)); });
  }
  registry->AddCallbackGauge("tessera_workspace_active_users",
                             "Distinct owners with a Ready workspace used within the active window",
                             {}, [this] { return static_cast<double>(ActiveUsers()); });
}

void OperatorMetrics::SetWorkspace(const std::string& key, std::optional<Phase> phase,
                                   const std::string& owner, int64_t last_activity_ms) {
  MutexLock lock(&mu_);
  if (!phase) {
    workspaces_.erase(key);
    return;
  }
  workspaces_[key] = Entry{*phase, owner, last_activity_ms};
}

void OperatorMetrics::ObserveReconcile(double seconds, bool ok) {
  reconcile_seconds_->Observe(seconds);
  if (!ok) reconcile_errors_->Inc();
}

int64_t OperatorMetrics::CountInPhase(Phase phase) const {
  MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [key, e] : workspaces_) n += e.phase == phase ? 1 : 0;
  return n;
}

int64_t OperatorMetrics::ActiveUsers() const {
  const int64_t now = clock_->NowMillis();
  MutexLock lock(&mu_);
  std::set<std::string> owners;
  for (const auto& [key, e] : workspaces_) {
    if (e.phase == Phase::kReady && now - e.last_activity_ms <= active_window_ms_) {
      owners.insert(e.owner);
    }
  }
  return static_cast<int64_t>(owners.size());
}

}  // namespace tessera::workspaces
