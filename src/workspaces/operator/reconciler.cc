#include "workspaces/operator/reconciler.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "workspaces/kube/intent.h"

namespace tessera::workspaces {
namespace {

using nlohmann::json;

const kube::ResourceType& TypeOfChild(const json& child) {
  const std::string kind = child.value("kind", "");
  for (const kube::ResourceType* t :
       {&kube::StatefulSetType(), &kube::ServiceType(), &kube::VirtualServiceType(),
        &kube::AuthorizationPolicyType(), &kube::RayClusterType()}) {
    if (t->kind == kind) return *t;
  }
  return kube::StatefulSetType();  // RenderChildren renders only the kinds above
}

std::string Key(const Workspace& ws) {
  return fmt::format("{}/{}", ws.metadata.namespace_, ws.metadata.name);
}

// Failures that say nothing about the workspace and may pass by themselves.
bool IsTransient(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

int64_t ParseTimeOr(const std::string& rfc3339, int64_t fallback) {
  if (rfc3339.empty()) return fallback;
  return ParseRfc3339Millis(rfc3339).value_or(fallback);
}

// A coarse age for people: "45s", "12m", "3h5m", "2d4h".
std::string Ago(int64_t ms) {
  const int64_t s = std::max<int64_t>(0, ms) / 1000;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m", s / 60);
  if (s < 2 * 86400) return fmt::format("{}h{}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{}h", s / 86400, s % 86400 / 3600);
}

// "heartbeat 2h0m ago, terminal never, ray-jobs 3m ago (1 running)" for Events and conditions.
std::string DescribeEvidence(const std::vector<ActivityEvidence>& evidence, int64_t now) {
  std::string out;
  for (const ActivityEvidence& e : evidence) {
    if (!out.empty()) out += ", ";
    out += e.signal;
    out +=
        e.last_active_ms <= 0 ? std::string(" never") : " " + Ago(now - e.last_active_ms) + " ago";
    if (!e.detail.empty()) out += fmt::format(" ({})", e.detail);
  }
  return out.empty() ? "no signals" : out;
}

// Sets (or replaces) one idle condition, keeping its transition time while its status holds.
void SetIdleCondition(WorkspaceStatus* status, const char* type, bool value,
                      const std::string& reason, const std::string& message, int64_t now) {
  const int64_t generation = status->observed_generation;
  const std::string value_text = value ? "True" : "False";
  for (Condition& c : status->conditions) {
    if (c.type != type) continue;
    if (c.status != value_text) c.last_transition_time = FormatRfc3339Millis(now);
    c.status = value_text;
    c.reason = reason;
    c.message = message;
    c.observed_generation = generation;
    return;
  }
  Condition c;
  c.type = type;
  c.observed_generation = generation;
  c.status = value_text;
  c.reason = reason;
  c.message = message;
  c.last_transition_time = FormatRfc3339Millis(now);
  status->conditions.push_back(std::move(c));
}

// ComputeStatus knows nothing of culling: carry its conditions over from the stored status.
// Culled stays while the workspace stays stopped; IdleWarning while the IDE is up.
void CarryIdleConditions(const Workspace& ws, WorkspaceStatus* next) {
  const Condition* ide_ready = FindCondition(*next, kCondIdeReady);
  const bool ide_up = ide_ready != nullptr && ide_ready->status == "True";
  for (const Condition& c : ws.status.conditions) {
    const bool keep =
        (c.type == kCondCulled && ws.spec.stopped) || (c.type == kCondIdleWarning && ide_up);
    if (keep && FindCondition(*next, c.type) == nullptr) {
      Condition copy = c;
      copy.observed_generation = ws.metadata.generation;
      next->conditions.push_back(std::move(copy));
    }
  }
  // Culled, but the status write that said so was lost: the annotations the cull wrote with the
  // stop itself still say why.
  if (ws.spec.stopped && FindCondition(*next, kCondCulled) == nullptr) {
    std::string at;
    std::string reason;
    for (const auto& [k, v] : ws.metadata.annotations) {
      if (k == kCulledAtAnnotation) at = v;
      if (k == kCullReasonAnnotation) reason = v;
    }
    if (!at.empty()) {
      Condition c;
      c.type = kCondCulled;
      c.status = "True";
      c.reason = "IdleTimeout";
      c.message = reason.empty() ? "stopped for being idle" : reason;
      c.observed_generation = ws.metadata.generation;
      c.last_transition_time = at;
      next->conditions.push_back(std::move(c));
    }
  }
}

}  // namespace

Reconciler::Reconciler(kube::KubeClient* client, const Clock* clock, EventRecorder* events,
                       std::vector<ActivitySignal*> signals, IdeNotifier* notifier,
                       OperatorMetrics* metrics, ReconcilerOptions options,
                       kube::CachedReader* reader)
    : client_(client),
      own_reader_(reader == nullptr ? std::make_unique<kube::CachedReader>(client) : nullptr),
      reader_(reader == nullptr ? own_reader_.get() : reader),
      clock_(clock),
      events_(events),
      signals_(std::move(signals)),
      notifier_(notifier),
      metrics_(metrics),
      options_(std::move(options)) {}

absl::StatusOr<ReconcileResult> Reconciler::Reconcile(const std::string& ns,
                                                      const std::string& name) {
  const int64_t start_ns = clock_->MonotonicNanos();
  const std::string key = ns + "/" + name;
  // Set once parsed, and while its status does not already say why it fails: repeated failures
  // are then reported on it (one status saying so, not two alternating).
  const Workspace* tracked = nullptr;
  auto done = [&](absl::StatusOr<ReconcileResult> r) {
    metrics_->ObserveReconcile((clock_->MonotonicNanos() - start_ns) / 1e9, r.ok());
    TrackFailures(tracked, key, r);
    return r;
  };
  absl::StatusOr<json> object = reader_->Get(kube::WorkspaceType(), ns, name);
  if (absl::IsNotFound(object.status())) {
    metrics_->SetWorkspace(key, std::nullopt, "", 0);
    return done(ReconcileResult{});
  }
  if (!object.ok()) return done(object.status());
  absl::StatusOr<Workspace> parsed = ParseWorkspace(*object);
  if (!parsed.ok()) {
    absl::StatusOr<ObjectMeta> meta = ParseObjectMeta(*object);
    if (meta.ok() && meta->deleting) {
      // A workspace that cannot be parsed can still be deleted: run the cleanup with what the
      // metadata says (the children's names only need the workspace's name).
      Workspace minimal;
      minimal.metadata = *meta;
      return done(Finalize(minimal));
    }
    return done(ReconcileInvalid(*object, parsed.status()));
  }
  const Workspace& ws = *parsed;
  if (ws.metadata.deleting) return done(Finalize(ws));
  tracked = &ws;
  // The version the status write is conditioned on: the workspace as read, or as this reconcile
  // last wrote it (finalizer, cull).
  std::string status_rv = ws.metadata.resource_version;
  if (absl::Status s = EnsureFinalizer(ws, &status_rv); !s.ok()) return done(s);

  Observation obs;
  WorkspaceTemplate tmpl;
  absl::StatusOr<json> tmpl_object =
      reader_->Get(kube::WorkspaceTemplateType(), ns, ws.spec.template_name);
  if (tmpl_object.ok()) {
    absl::StatusOr<WorkspaceTemplate> t = ParseWorkspaceTemplate(*tmpl_object);
    if (t.ok()) {
      tmpl = *std::move(t);
    } else {
      obs.template_ok = false;
      obs.template_reason = "InvalidTemplate";
      obs.template_message = StatusMessage(t.status());
    }
  } else if (absl::IsNotFound(tmpl_object.status())) {
    obs.template_ok = false;
    obs.template_reason = "TemplateNotFound";
    obs.template_message = fmt::format(
        "WorkspaceTemplate \"{}\" does not exist in namespace {}; create it or set spec.template",
        ws.spec.template_name, ns);
  } else {
    return done(tmpl_object.status());
  }

  absl::Status apply_status;
  if (obs.template_ok) {
    apply_status = ApplyChildren(ws, tmpl, &obs);
    if (!apply_status.ok()) {
      if (IsTransient(apply_status)) {
        // An API server or webhook hiccup says nothing about the workspace: keep its status
        // (a Ready workspace stays Ready, its idle clock untouched) and retry with backoff.
        return done(apply_status);
      }
      obs.applied = false;
      obs.apply_message = StatusMessage(apply_status);
      tracked = nullptr;  // the status written below (Failed, ChildrenApplied) says why
    }
  }

  const std::string url = WorkspaceUrl(ws, options_.render);
  WorkspaceStatus next = ComputeStatus(ws, obs, url, clock_->NowMillis());
  CarryIdleConditions(ws, &next);
  ReconcileResult result;
  // The IDE may be in use (and hold its GPU) while Ray is still not ready: activity is checked
  // whenever the IDE is up, not only in phase Ready.
  const Condition* ide_ready = FindCondition(next, kCondIdeReady);
  // What the idle check tells people (Events, the IDE notice, counters) once the status that
  // records it is written: a write that fails (a stale read) must not repeat them.
  std::vector<std::function<void()>> after_status;
  if (ide_ready != nullptr && ide_ready->status == "True") {
    absl::StatusOr<ReconcileResult> activity = CheckActivity(ws, &next, &status_rv, &after_status);
    if (!activity.ok()) return done(activity.status());
    result = *activity;
  } else if (!obs.template_ok) {
    result.requeue_after_ms = options_.wait_retry_ms;
  }

  if (StatusDiffers(ws.status, next)) {
    // The status is computed from the workspace as read (from a cache that may lag): the
    // resourceVersion makes the write fail (409, retried) rather than overwrite a newer status.
    absl::StatusOr<json> written = client_->MergePatch(
        kube::WorkspaceType(), ns, name,
        json{{"metadata", {{"resourceVersion", status_rv}}}, {"status", StatusToJson(next)}},
        /*status=*/true);
    if (!written.ok()) return done(Annotate(written.status(), "writing the workspace status"));
  }
  for (const auto& action : after_status) action();
  RecordTransition(ws, next);
  metrics_->SetWorkspace(Key(ws), next.phase, ws.spec.owner,
                         ParseTimeOr(next.last_activity_time, 0));
  // A failed apply is retried with backoff after its status (why it failed) is written; an
  // invalid render or object (a name too long, a 422 from the API server) will not heal by
  // retrying: only a spec or template change (which wakes the workspace) does.
  if (!apply_status.ok() && apply_status.code() != absl::StatusCode::kInvalidArgument) {
    return done(apply_status);
  }
  return done(result);
}

void Reconciler::TrackFailures(const Workspace* ws, const std::string& key,
                               const absl::StatusOr<ReconcileResult>& result) {
  const int64_t now = clock_->NowMillis();
  FailureStreak streak;
  {
    MutexLock lock(&failures_mu_);
    if (result.ok() || ws == nullptr) {
      failures_.erase(key);
      return;
    }
    FailureStreak& s = failures_[key];
    if (s.attempts == 0) s.since_ms = now;
    ++s.attempts;
    if (s.attempts < options_.report_failures_after_attempts ||
        now - s.since_ms < options_.report_failures_after_ms) {
      return;
    }
    streak = s;
    s.reported = true;
  }
  const std::string message =
      fmt::format("{} (failing since {}; retrying with backoff)", StatusMessage(result.status()),
                  FormatRfc3339Millis(streak.since_ms));
  const WorkspaceStatus next = FailingStatus(*ws, message, now);
  if (StatusDiffers(ws->status, next)) {
    absl::StatusOr<json> written =
        client_->MergePatch(kube::WorkspaceType(), ws->metadata.namespace_, ws->metadata.name,
                            json{{"metadata", {{"resourceVersion", ws->metadata.resource_version}}},
                                 {"status", StatusToJson(next)}},
                            /*status=*/true);
    if (!written.ok()) {
      fmt::print(stderr, "tessera-operator: {}: could not report its failures in the status: {}\n",
                 key, StatusMessage(written.status()));
    }
    metrics_->SetWorkspace(key, Phase::kFailed, ws->spec.owner,
                           ParseTimeOr(ws->status.last_activity_time, 0));
  }
  if (!streak.reported) {
    events_->Record(
        *ws, "Warning", "ReconcileFailing",
        fmt::format("{} attempts since {} failed: {}", streak.attempts,
                    FormatRfc3339Millis(streak.since_ms), StatusMessage(result.status())));
  }
}

absl::Status Reconciler::EnsureFinalizer(const Workspace& ws, std::string* resource_version) {
  const auto& f = ws.metadata.finalizers;
  if (std::find(f.begin(), f.end(), kFinalizer) != f.end()) return absl::OkStatus();
  json finalizers = json::array();
  for (const std::string& existing : f) finalizers.push_back(existing);
  finalizers.push_back(kFinalizer);
  // The resourceVersion makes this a compare-and-swap: the finalizer list is replaced whole.
  absl::StatusOr<json> patched = client_->MergePatch(
      kube::WorkspaceType(), ws.metadata.namespace_, ws.metadata.name,
      json{{"metadata",
            {{"finalizers", finalizers}, {"resourceVersion", ws.metadata.resource_version}}}});
  if (!patched.ok()) return Annotate(patched.status(), "adding the cleanup finalizer");
  if (patched->contains("metadata")) {
    *resource_version = (*patched)["metadata"].value("resourceVersion", *resource_version);
  }
  return absl::OkStatus();
}

absl::StatusOr<ReconcileResult> Reconciler::Finalize(const Workspace& ws) {
  const auto& f = ws.metadata.finalizers;
  const std::string& ns = ws.metadata.namespace_;
  if (std::find(f.begin(), f.end(), kFinalizer) == f.end()) return ReconcileResult{};
  // Children go in dependency order: Ray, the route and the IDE first; the home volume once
  // the IDE pod is gone (the StatefulSet retains it, so that deleting only the StatefulSet by
  // hand never loses a user's files); the AuthorizationPolicy last, so no IDE pod is ever
  // reachable without it.
  const std::string child = WorkspaceChildName(ws);
  const std::string home = HomeClaimName(ws);
  struct Step {
    const kube::ResourceType* type;
    std::string name;
    bool after_the_rest;  // deleted only once every earlier step's object is gone
  };
  // The IDE pod is its own step: the StatefulSet object can be gone (background deletion, or
  // deleted by hand with its pod orphaned) while its pod still serves. The garbage collector
  // deletes an owned pod; an orphaned one is deleted here.
  const Step steps[] = {{&kube::RayClusterType(), child, false},
                        {&kube::VirtualServiceType(), child, false},
                        {&kube::ServiceType(), child, false},
                        {&kube::StatefulSetType(), child, false},
                        {&kube::PodType(), IdePodName(ws), true},
                        {&kube::PersistentVolumeClaimType(), home, true},
                        {&kube::AuthorizationPolicyType(), child, true}};
  int remaining = 0;
  for (const Step& step : steps) {
    absl::StatusOr<json> object = client_->Get(*step.type, ns, step.name);
    if (absl::IsNotFound(object.status())) continue;
    if (!object.ok()) {
      return Annotate(object.status(), fmt::format("looking up {} {}", step.type->kind, step.name));
    }
    const bool wait = step.after_the_rest && remaining > 0;
    ++remaining;
    const bool already_deleting =
        object->contains("metadata") && (*object)["metadata"].contains("deletionTimestamp");
    if (wait || already_deleting) continue;
    if (step.type == &kube::PodType()) {
      // Only the workspace's own IDE pod (its labels say so) is deleted; anything else by that
      // name is waited for, not touched.
      const json labels = (*object)["metadata"].value("labels", json::object());
      if (!labels.is_object() || !labels.contains(kWorkspaceLabel) ||
          labels[kWorkspaceLabel] != ws.metadata.name) {
        continue;
      }
    }
    absl::Status s = client_->Delete(*step.type, ns, step.name);
    if (!s.ok() && !absl::IsNotFound(s)) {
      return Annotate(s, fmt::format("deleting {} {}", step.type->kind, step.name));
    }
  }
  if (remaining > 0) {
    return ReconcileResult{.requeue_after_ms = std::min<int64_t>(options_.wait_retry_ms, 2000)};
  }
  json finalizers = json::array();
  for (const std::string& existing : f) {
    if (existing != kFinalizer) finalizers.push_back(existing);
  }
  absl::StatusOr<json> patched = client_->MergePatch(
      kube::WorkspaceType(), ns, ws.metadata.name,
      json{{"metadata",
            {{"finalizers", finalizers}, {"resourceVersion", ws.metadata.resource_version}}}});
  if (!patched.ok() && !absl::IsNotFound(patched.status())) {
    return Annotate(patched.status(), "removing the cleanup finalizer");
  }
  events_->Record(ws, "Normal", "Deleted", "children deleted; workspace removed");
  metrics_->SetWorkspace(Key(ws), std::nullopt, "", 0);
  return ReconcileResult{};
}

absl::StatusOr<ReconcileResult> Reconciler::ReconcileInvalid(const json& object,
                                                             const absl::Status& error) {
  absl::StatusOr<ObjectMeta> meta = ParseObjectMeta(object);
  if (!meta.ok()) return ReconcileResult{};  // nothing addressable; nothing to do
  Workspace ws;
  ws.metadata = *meta;
  const json old_status = object.value("status", json::object());
  const std::string message = StatusMessage(error);
  json status = {
      {"phase", "Failed"},
      {"observedGeneration", meta->generation},
      {"conditions",
       json::array({{{"type", kCondReady},
                     {"status", "False"},
                     {"reason", "InvalidSpec"},
                     {"message", message},
                     {"observedGeneration", meta->generation},
                     {"lastTransitionTime", FormatRfc3339Millis(clock_->NowMillis())}}})}};
  const bool same = old_status.is_object() && old_status.value("phase", "") == "Failed" &&
                    old_status.value("observedGeneration", int64_t{-1}) == meta->generation;
  if (!same) {
    absl::StatusOr<json> written = client_->MergePatch(kube::WorkspaceType(), meta->namespace_,
                                                       meta->name, json{{"status", status}}, true);
    if (!written.ok()) return Annotate(written.status(), "writing the workspace status");
    events_->Record(ws, "Warning", "InvalidSpec", message);
  }
  metrics_->SetWorkspace(Key(ws), Phase::kFailed, "", 0);
  return ReconcileResult{};
}

void Reconciler::KeepAutoscaledReplicas(const json& live, json* ray_cluster) {
  const json live_groups = live.value("spec", json::object()).value("workerGroupSpecs", json());
  if (!live_groups.is_array()) return;
  for (json& group : (*ray_cluster)["spec"]["workerGroupSpecs"]) {
    for (const json& current : live_groups) {
      if (!current.is_object() || current.value("groupName", "") != group.value("groupName", "") ||
          !current.contains("replicas") || !current["replicas"].is_number_integer()) {
        continue;
      }
      const int64_t lo = group.value("minReplicas", int64_t{0});
      const int64_t hi = group.value("maxReplicas", lo);
      group["replicas"] = std::clamp(current["replicas"].get<int64_t>(), lo, std::max(lo, hi));
    }
  }
}

absl::StatusOr<json> Reconciler::ApplyChild(const Workspace& ws, const kube::ResourceType& type,
                                            const json& intent, const absl::StatusOr<json>& live) {
  const std::string& ns = ws.metadata.namespace_;
  const std::string name = intent["metadata"].value("name", "");
  absl::StatusOr<json> applied = client_->Apply(type, ns, intent, options_.apply);
  if (applied.ok() || applied.status().code() != absl::StatusCode::kInvalidArgument || !live.ok()) {
    return applied;
  }
  // The merged object is invalid although the intent alone is valid (it was valid when the
  // child was created): another manager's fields collide with ours. Take the spec back — a
  // JSON merge patch replaces every list in it with the operator's and merges maps — then
  // apply again so the operator's field manager owns its fields as an applier.
  const std::string rv = (*live)["metadata"].value("resourceVersion", "");
  absl::StatusOr<json> replaced =
      client_->MergePatch(type, ns, name,
                          json{{"metadata", {{"resourceVersion", rv}}},
                               {"spec", intent.value("spec", json::object())}});
  if (!replaced.ok()) {
    // A conflict (the cached resourceVersion was stale) or a server hiccup is retried as such;
    // only a refusal of the replacement itself is as final as the apply's.
    const absl::StatusCode code = replaced.status().code() == absl::StatusCode::kInvalidArgument
                                      ? applied.status().code()
                                      : replaced.status().code();
    return absl::Status(
        code, fmt::format("{}; replacing its spec did not help either: {}",
                          StatusMessage(applied.status()), StatusMessage(replaced.status())));
  }
  events_->Record(ws, "Warning", "ChildReplaced",
                  fmt::format("{} {}: the server refused the apply ({}); replaced its spec with "
                              "the operator's and applied again",
                              type.kind, name, StatusMessage(applied.status())));
  return client_->Apply(type, ns, intent, options_.apply);
}

absl::Status Reconciler::ApplyChildren(const Workspace& ws, const WorkspaceTemplate& tmpl,
                                       Observation* obs) {
  TESSERA_ASSIGN_OR_RETURN(std::vector<json> children, RenderChildren(ws, tmpl, options_.render));
  const std::string& ns = ws.metadata.namespace_;
  for (json& child : children) {
    const kube::ResourceType& type = TypeOfChild(child);
    const std::string child_name = child["metadata"].value("name", "");
    absl::StatusOr<json> live = reader_->Get(type, ns, child_name);
    if (!live.ok() && !absl::IsNotFound(live.status())) {
      return Annotate(live.status(), fmt::format("reading {} {}", type.kind, child_name));
    }
    if (&type == &kube::RayClusterType() && live.ok()) KeepAutoscaledReplicas(*live, &child);
    // The digest of the whole intent rides along: a field dropped from the intent (a GPU
    // limit when gpus goes to 0) changes it, so the child is applied and SSA removes the field.
    child["metadata"]["annotations"][kIntentAnnotation] = kube::IntentDigest(child);
    const json* seen = nullptr;
    absl::StatusOr<json> applied = absl::UnknownError("not applied");
    if (live.ok() && kube::LiveSatisfiesIntent(*live, child)) {
      seen = &*live;  // nothing to change
    } else {
      applied = ApplyChild(ws, type, child, live);
      if (!applied.ok()) {
        return Annotate(applied.status(), fmt::format("applying {} {}", type.kind, child_name));
      }
      seen = &*applied;
    }
    if (&type == &kube::StatefulSetType()) ObserveStatefulSet(*seen, obs);
    if (&type == &kube::RayClusterType()) ObserveRayCluster(*seen, obs);
  }
  if (!ws.spec.ray.enabled) {
    // Ray switched off: prune the cluster this operator created earlier, if there is one.
    absl::StatusOr<json> ray = reader_->Get(kube::RayClusterType(), ns, WorkspaceChildName(ws));
    if (ray.ok()) {
      absl::Status s = client_->Delete(kube::RayClusterType(), ns, WorkspaceChildName(ws));
      if (!s.ok() && !absl::IsNotFound(s)) return Annotate(s, "deleting the RayCluster");
    } else if (!absl::IsNotFound(ray.status())) {
      return Annotate(ray.status(), "reading the RayCluster");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ReconcileResult> Reconciler::CheckActivity(
    const Workspace& ws, WorkspaceStatus* status, std::string* resource_version,
    std::vector<std::function<void()>>* after_status) {
  const int64_t now = clock_->NowMillis();
  const int64_t interval = options_.activity_check_interval_ms;
  // Used at least since the IDE became ready (or the whole workspace, whichever is later).
  const Condition* ide_ready = FindCondition(*status, kCondIdeReady);
  const int64_t ide_since =
      ide_ready != nullptr ? ParseTimeOr(ide_ready->last_transition_time, now) : now;
  const int64_t ready_since = ParseTimeOr(status->ready_since, 0);
  const int64_t stored = ParseTimeOr(status->last_activity_time, 0);
  int64_t activity = std::max({ide_since, ready_since, stored});
  std::vector<ActivityEvidence> evidence;
  for (ActivitySignal* signal : signals_) {
    absl::StatusOr<std::vector<ActivityEvidence>> read = absl::UnknownError("not read");
    try {
      read = signal->Read(ws, now);
    } catch (const std::exception& e) {  // a signal's parser must not take the operator down
      read = absl::UnavailableError(fmt::format("activity signal failed: {}", e.what()));
    }
    if (!read.ok()) {
      // A source that cannot be read: never cull on missing evidence; look again soon.
      return ReconcileResult{.requeue_after_ms = interval};
    }
    for (ActivityEvidence& e : *read) {
      activity = std::max(activity, std::min(e.last_active_ms, now));
      if (e.first_ms > 0 && status->first_ray_job_time.empty()) {
        // The workspace's first Ray job: how long from creation until someone used Ray.
        status->first_ray_job_time = FormatRfc3339Millis(e.first_ms);
        const int64_t created = ParseTimeOr(ws.metadata.creation_timestamp, 0);
        if (created > 0 && e.first_ms >= created) {
          after_status->push_back([this, ns = ws.metadata.namespace_, s = e.first_ms - created] {
            metrics_->ObserveFirstRayJob(ns, s / 1000.0);
          });
        }
      }
      evidence.push_back(std::move(e));
    }
  }
  metrics_->ObserveActivityCheck(Key(ws), ws.metadata.namespace_, ws.spec.owner, activity);
  // Stored at minute resolution at most once a minute, so a busy IDE does not rewrite its
  // status on every check.
  if (activity - stored >= 60'000 || stored == 0) {
    status->last_activity_time = FormatRfc3339Millis(activity);
  }
  const int64_t timeout_ms = ws.spec.idle_timeout_seconds * 1000;
  if (timeout_ms <= 0) {
    if (FindCondition(*status, kCondIdleWarning) != nullptr) {
      SetIdleCondition(status, kCondIdleWarning, false, "Disabled", "idleTimeout is 0", now);
    }
    return ReconcileResult{.requeue_after_ms = interval};
  }
  const int64_t idle = now - activity;
  const int64_t warning_ms = std::min(options_.idle_warning_ms, timeout_ms / 2);
  const Condition* warned = FindCondition(*status, kCondIdleWarning);
  const bool was_warned = warned != nullptr && warned->status == "True";
  const std::string seen = DescribeEvidence(evidence, now);
  const int64_t warn_at = timeout_ms - std::max<int64_t>(0, warning_ms);  // idle time
  if (idle < warn_at) {
    if (was_warned) {
      // Used again after the warning: the cull it announced is avoided. (The condition stays,
      // False, with a message that does not change, so later checks write nothing.)
      after_status->push_back([this, ws, seen] {
        metrics_->CountCullAvoided();
        metrics_->CountUserCullAvoided(ws.metadata.namespace_, ws.spec.owner);
        events_->Record(ws, "Normal", "ActivityResumed",
                        fmt::format("in use again; not stopping it ({})", seen));
      });
      SetIdleCondition(status, kCondIdleWarning, false, "Active",
                       "in use again after the idle warning", now);
    }
    return ReconcileResult{.requeue_after_ms =
                               std::max<int64_t>(1, std::min(interval, warn_at - idle))};
  }
  if (idle < timeout_ms) {
    const int64_t stop_at = activity + timeout_ms;
    const std::string message =
        fmt::format("no activity for {}; it will be stopped at {} (in {}) unless used ({})",
                    FormatDurationMillis(idle), FormatRfc3339Millis(stop_at),
                    FormatDurationMillis(stop_at - now), seen);
    if (!was_warned) {
      const std::string notice = fmt::format(
          "This workspace has been idle for {} and will be stopped in {} unless you "
          "use it. Your files are kept.",
          FormatDurationMillis(idle), FormatDurationMillis(stop_at - now));
      after_status->push_back([this, ws, message, notice] {
        events_->Record(ws, "Warning", "IdleSoon", message);
        if (notifier_ == nullptr) return;
        absl::Status s = notifier_->Notify(ws, notice);
        if (!s.ok()) {
          fmt::print(stderr, "tessera-operator: {}: the idle notice did not reach the IDE: {}\n",
                     Key(ws), StatusMessage(s));
        }
      });
      SetIdleCondition(status, kCondIdleWarning, true, "IdleSoon", message, now);
    }
    return ReconcileResult{.requeue_after_ms =
                               std::max<int64_t>(1, std::min(interval, timeout_ms - idle))};
  }
  // Idle: stop it. The spec change (with a resourceVersion precondition, so a user's concurrent
  // edit wins) wakes the next reconcile, which scales the IDE and Ray to zero.
  const std::string reason =
      fmt::format("no activity for {} (idleTimeout {}): {}; stopped, home volume kept",
                  FormatDurationMillis(idle), FormatDurationMillis(timeout_ms), seen);
  absl::StatusOr<json> patched =
      client_->MergePatch(kube::WorkspaceType(), ws.metadata.namespace_, ws.metadata.name,
                          json{{"metadata",
                                {{"resourceVersion", ws.metadata.resource_version},
                                 {"annotations",
                                  {{kCulledAtAnnotation, FormatRfc3339Millis(now)},
                                   {kCullReasonAnnotation, reason.substr(0, 1000)}}}}},
                               {"spec", {{"stopped", true}}}});
  if (!patched.ok()) return Annotate(patched.status(), "stopping the idle workspace");
  if (patched->contains("metadata")) {
    *resource_version = (*patched)["metadata"].value("resourceVersion", *resource_version);
  }
  metrics_->CountCull();
  metrics_->CountUserCull(ws.metadata.namespace_, ws.spec.owner);
  events_->Record(ws, "Normal", "Culled", reason);
  SetIdleCondition(status, kCondIdleWarning, false, "Culled", "stopped", now);
  SetIdleCondition(status, kCondCulled, true, "IdleTimeout", reason, now);
  return ReconcileResult{};
}

void Reconciler::RecordTransition(const Workspace& ws, const WorkspaceStatus& next) {
  const std::optional<Phase> before = ws.status.phase;
  if (before == next.phase || !next.phase) return;
  const Phase phase = *next.phase;
  const Condition* ready = FindCondition(next, kCondReady);
  std::string message = ready != nullptr ? ready->message : "";
  const int64_t now = clock_->NowMillis();
  switch (phase) {
    case Phase::kStarting:
      metrics_->CountStart();
      // A resume: started again after a stop; otherwise its first start.
      metrics_->CountUserStart(ws.metadata.namespace_, ws.spec.owner,
                               before == Phase::kStopped || before == Phase::kStopping);
      break;
    case Phase::kReady: {
      if (ws.status.first_ready_time.empty()) {
        const int64_t created = ParseTimeOr(ws.metadata.creation_timestamp, 0);
        if (created > 0 && created <= now) {
          metrics_->ObserveFirstReady(ws.metadata.namespace_, (now - created) / 1000.0);
        }
      }
      // From when the workspace entered Starting (recorded in its status by whichever replica
      // led then) to now; nothing when it never was Starting.
      const int64_t since = ParseTimeOr(ws.status.starting_since, 0);
      if (ws.status.phase == Phase::kStarting && since > 0 && since <= now) {
        const int64_t ms = now - since;
        metrics_->ObserveTimeToReady(ms / 1000.0);
        message = fmt::format("ready after {} at {}", FormatDurationMillis(ms), next.url);
      }
      break;
    }
    case Phase::kStopped:
      metrics_->CountStop();
      message = "the IDE and Ray are scaled to zero; the home volume is kept";
      break;
    case Phase::kPending: {
      const Condition* t = FindCondition(next, kCondTemplateResolved);
      if (t != nullptr && t->status == "False") message = t->message;
      break;
    }
    case Phase::kFailed: {
      const Condition* a = FindCondition(next, kCondChildrenApplied);
      if (a != nullptr && a->status == "False") message = a->message;
      break;
    }
    case Phase::kStopping:
      break;
  }
  const bool warning = phase == Phase::kFailed || phase == Phase::kPending;
  events_->Record(ws, warning ? "Warning" : "Normal", PhaseName(phase), message);
}

}  // namespace tessera::workspaces
