#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "workspaces/api/workspace.h"
#include "workspaces/kube/cached_reader.h"
#include "workspaces/kube/kube_client.h"
#include "workspaces/operator/activity.h"
#include "workspaces/operator/operator_metrics.h"
#include "workspaces/operator/render.h"
#include "workspaces/operator/workspace_status.h"

namespace tessera::workspaces {

// Kubernetes Events on a Workspace ("Normal"/"Warning", a CamelCase reason, a sentence).
// Best effort: a failure to record is logged, never fails a reconcile. Thread-safe.
class EventRecorder {
 public:
  virtual ~EventRecorder() = default;
  virtual void Record(const Workspace& ws, std::string_view type, std::string_view reason,
                      std::string_view message) = 0;
};

inline constexpr char kFinalizer[] = "workspaces.tessera.dev/cleanup";
inline constexpr char kCulledAtAnnotation[] = "workspaces.tessera.dev/culled-at";
inline constexpr char kCullReasonAnnotation[] = "workspaces.tessera.dev/cull-reason";
// On every child: the digest of what the operator last applied (kube::IntentDigest).
inline constexpr char kIntentAnnotation[] = "workspaces.tessera.dev/intent";
// Conditions of idle culling: IdleWarning True while a workspace is idle and about to be
// stopped; Culled True (the evidence in its message) while a culled workspace stays stopped.
inline constexpr char kCondIdleWarning[] = "IdleWarning";
inline constexpr char kCondCulled[] = "Culled";

struct ReconcilerOptions {
  RenderOptions render;
  kube::ApplyOptions apply;  // field manager of every child and of the status
  // How often a Ready workspace's activity is checked (it is also re-checked exactly when its
  // idle timeout would run out, and when its warning is due).
  int64_t activity_check_interval_ms = 60'000;
  // How long before culling the person is warned (condition IdleWarning, Event IdleSoon, a
  // notice in the IDE); at most half the idle timeout. 0: no warning.
  int64_t idle_warning_ms = 10 * 60'000;
  // Retry interval while a workspace waits for something outside the operator (its template,
  // its children's deletion).
  int64_t wait_retry_ms = 10'000;
  // Reconciles of one workspace that keep failing (any error, transient ones included: a 500
  // on every apply) are surfaced once both limits are reached: phase Failed, condition Ready
  // False with reason ReconcileFailing and the error, and a Warning Event. Retries go on.
  int report_failures_after_attempts = 3;
  int64_t report_failures_after_ms = 30'000;
};

struct ReconcileResult {
  int64_t requeue_after_ms = 0;  // 0: only when something changes
};

// Level-triggered, idempotent reconcile of one Workspace: whatever happened before, one call
// makes the children match the spec (server-side apply; the operator's field manager owns what
// it sets), writes the status only if it changed, and says when to look again. Reads (the
// workspace, its template, its children) go through a CachedReader, and a child is applied only
// when the live object does not already hold the rendered intent (kube::LiveSatisfiesIntent):
// a reconcile that finds nothing to change makes no request. An apply the server refuses as
// invalid (422) for a child that exists — another manager's edit of a list entry under another
// key, e.g. a Service port renumbered but still named "http" — is recovered by replacing the
// child's spec lists with the operator's (a merge patch with the resourceVersion as
// precondition) and applying again, with a Warning Event "ChildReplaced". Deletion runs
// through a finalizer: children are deleted explicitly and the finalizer is removed once they
// are gone. A workspace whose IDE is up and whose every activity signal has been quiet for
// spec.idleTimeout is stopped (spec.stopped = true, annotation culled-at, condition Culled and
// Event "Culled" naming each signal's last activity); idle_warning_ms before that it is warned.
// `tessera ws start` clears stopped again.
//
// Errors (transient API failures, conflicts) are returned; the controller requeues with
// backoff. Invalid specs and missing templates are not errors: they become status conditions
// and Events. Thread-safe: different keys may be reconciled concurrently; one key at a time
// (the work queue guarantees it).
class Reconciler {
 public:
  // `reader` serves the reads (the controller registers its informers there); nullptr: every
  // read goes to the API server.
  // `signals`: the evidence of activity (at least code-server's heartbeat); `notifier` (may be
  // null) shows the culling warning inside the IDE.
  Reconciler(kube::KubeClient* client, const Clock* clock, EventRecorder* events,
             std::vector<ActivitySignal*> signals, IdeNotifier* notifier, OperatorMetrics* metrics,
             ReconcilerOptions options, kube::CachedReader* reader = nullptr);

  absl::StatusOr<ReconcileResult> Reconcile(const std::string& ns, const std::string& name);

 private:
  absl::StatusOr<ReconcileResult> Finalize(const Workspace& ws);
  // Adds the finalizer if missing; then *resource_version is the workspace's new version.
  absl::Status EnsureFinalizer(const Workspace& ws, std::string* resource_version);
  absl::StatusOr<ReconcileResult> ReconcileInvalid(const nlohmann::json& object,
                                                   const absl::Status& error);
  // KubeRay's autoscaler owns workerGroupSpecs[].replicas once the cluster runs: the rendered
  // RayCluster takes each group's live replicas (clamped to its min/max) so a re-apply does not
  // scale away workers the autoscaler added. (workerGroupSpecs is an atomic list: server-side
  // apply cannot leave one field of it to another manager.)
  static void KeepAutoscaledReplicas(const nlohmann::json& live, nlohmann::json* ray_cluster);
  // Applies the children that differ from their intent; fills obs from the apply responses or,
  // for children left alone, from the live objects.
  absl::Status ApplyChildren(const Workspace& ws, const WorkspaceTemplate& tmpl, Observation* obs);
  // Server-side apply of one child; on a 422 for a child that exists (`live`), the recovery
  // described above.
  absl::StatusOr<nlohmann::json> ApplyChild(const Workspace& ws, const kube::ResourceType& type,
                                            const nlohmann::json& intent,
                                            const absl::StatusOr<nlohmann::json>& live);
  // Counts a failed reconcile of `ws` (or forgets the streak when `result` is OK) and, once the
  // streak reaches the limits in the options, writes FailingStatus and a Warning Event.
  void TrackFailures(const Workspace* ws, const std::string& key,
                     const absl::StatusOr<ReconcileResult>& result);
  // Idle check for a workspace whose IDE is up: updates status->last_activity_time and the
  // idle conditions, warns, culls when idle (then *resource_version is the culled workspace's,
  // for the status write that follows).
  absl::StatusOr<ReconcileResult> CheckActivity(const Workspace& ws, WorkspaceStatus* status,
                                                std::string* resource_version,
                                                std::vector<std::function<void()>>* after_status);
  void RecordTransition(const Workspace& ws, const WorkspaceStatus& next);

  struct FailureStreak {
    int64_t since_ms = 0;
    int attempts = 0;
    bool reported = false;
  };

  kube::KubeClient* client_;
  std::unique_ptr<kube::CachedReader> own_reader_;  // when none was given
  kube::CachedReader* reader_;
  const Clock* clock_;
  EventRecorder* events_;
  std::vector<ActivitySignal*> signals_;
  IdeNotifier* notifier_;
  OperatorMetrics* metrics_;
  ReconcilerOptions options_;
  Mutex failures_mu_;
  std::map<std::string, FailureStreak> failures_ ABSL_GUARDED_BY(failures_mu_);
};

}  // namespace tessera::workspaces
