#include "workspaces/operator/operator_metrics.h"

#include <algorithm>
#include <set>
#include <vector>

namespace tessera::workspaces {

namespace {

// Histogram bounds for creation → first Ready and → first Ray job: seconds to a day.
std::vector<double> FirstTimeBuckets() {
  return {10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400};
}

constexpr char kOther[] = "__other__";
constexpr size_t kMaxLabelBytes = 128;

}  // namespace

OperatorMetrics::OperatorMetrics(MetricsRegistry* registry, const Clock* clock,
                                 int64_t active_window_ms, size_t max_users)
    : registry_(registry),
      clock_(clock),
      active_window_ms_(active_window_ms),
      max_users_(max_users) {
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
    last_check_ms_.erase(key);
    return;
  }
  workspaces_[key] = Entry{*phase, owner, last_activity_ms};
}

Labels OperatorMetrics::UserLabels(const std::string& team, const std::string& user) {
  std::pair<std::string, std::string> key(team.substr(0, kMaxLabelBytes),
                                          user.substr(0, kMaxLabelBytes));
  if (users_.count(key) == 0) {
    if (users_.size() >= max_users_) key = {kOther, kOther};
    users_.insert(key);
  }
  return {{"team", key.first}, {"user", key.second}};
}

// The registry is only called with mu_ released: it calls the phase gauges (which take mu_)
// while it renders, so holding mu_ across a registry call would invert the lock order.

void OperatorMetrics::CountUserStart(const std::string& team, const std::string& user,
                                     bool resume) {
  Labels labels;
  {
    MutexLock lock(&mu_);
    labels = UserLabels(team, user);
  }
  labels.emplace_back("kind", resume ? "resume" : "first");
  registry_
      ->GetCounter("tessera_workspace_user_starts_total",
                   "Workspace starts by team and user: the first start, or a resume after a stop",
                   labels)
      ->Inc();
}

void OperatorMetrics::CountUserCull(const std::string& team, const std::string& user) {
  Labels labels;
  {
    MutexLock lock(&mu_);
    labels = UserLabels(team, user);
  }
  registry_
      ->GetCounter("tessera_workspace_user_culls_total",
                   "Workspaces stopped for being idle, by team and user", labels)
      ->Inc();
}

void OperatorMetrics::CountUserCullAvoided(const std::string& team, const std::string& user) {
  Labels labels;
  {
    MutexLock lock(&mu_);
    labels = UserLabels(team, user);
  }
  registry_
      ->GetCounter("tessera_workspace_user_culls_avoided_total",
                   "Idle warnings followed by use before the stop, by team and user", labels)
      ->Inc();
}

void OperatorMetrics::ObserveFirstReady(const std::string& team, double seconds) {
  std::string label;
  {
    MutexLock lock(&mu_);
    label = UserLabels(team, "")[0].second;
  }
  registry_
      ->GetHistogram("tessera_workspace_first_ready_seconds",
                     "Time from a workspace's creation to its first Ready, by team",
                     {{"team", label}}, FirstTimeBuckets())
      ->Observe(seconds);
}

void OperatorMetrics::ObserveFirstRayJob(const std::string& team, double seconds) {
  std::string label;
  {
    MutexLock lock(&mu_);
    label = UserLabels(team, "")[0].second;
  }
  registry_
      ->GetHistogram("tessera_workspace_first_ray_job_seconds",
                     "Time from a workspace's creation to the start of its first Ray job, by team",
                     {{"team", label}}, FirstTimeBuckets())
      ->Observe(seconds);
}

void OperatorMetrics::ObserveActivityCheck(const std::string& key, const std::string& team,
                                           const std::string& user, int64_t last_activity_ms) {
  const int64_t now = clock_->NowMillis();
  Labels labels;
  int64_t seconds = 0;
  {
    MutexLock lock(&mu_);
    auto [it, first] = last_check_ms_.emplace(key, now);
    const int64_t since = first ? now : it->second;
    it->second = now;
    if (first || now - last_activity_ms > active_window_ms_ || now <= since) return;
    labels = UserLabels(team, user);
    // Whole seconds are counted; the rest is carried to the next check.
    int64_t& ms = active_remainder_ms_[{labels[0].second, labels[1].second}];
    ms += std::min(now - since, active_window_ms_);
    seconds = ms / 1000;
    ms %= 1000;
  }
  registry_
      ->GetCounter("tessera_workspace_user_active_seconds_total",
                   "Time workspaces were in use (activity within the active window), by team and "
                   "user; its rate is active hours per hour",
                   labels)
      ->Inc(seconds);
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
