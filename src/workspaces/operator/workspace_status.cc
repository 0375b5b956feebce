#include "workspaces/operator/workspace_status.h"

#include <fmt/format.h>

#include "common/time_util.h"

namespace tessera::workspaces {
namespace {

using nlohmann::json;

int IntAt(const json& obj, const json::json_pointer& ptr) {
  if (!obj.contains(ptr)) return 0;
  const json& v = obj.at(ptr);
  return v.is_number_integer() ? v.get<int>() : 0;
}

struct CondSpec {
  const char* type;
  bool ok;
  std::string reason;
  std::string message;
};

void SetCondition(const WorkspaceStatus& old, const CondSpec& spec, int64_t generation,
                  int64_t now_ms, WorkspaceStatus* out) {
  Condition c;
  c.type = spec.type;
  c.status = spec.ok ? "True" : "False";
  c.reason = spec.reason;
  c.message = spec.message;
  c.observed_generation = generation;
  const Condition* before = FindCondition(old, spec.type);
  c.last_transition_time = before != nullptr && before->status == c.status
                               ? before->last_transition_time
                               : FormatRfc3339Millis(now_ms);
  out->conditions.push_back(std::move(c));
}

}  // namespace

void ObserveStatefulSet(const json& sts, Observation* obs) {
  obs->ide_exists = sts.is_object();
  if (!obs->ide_exists) return;
  obs->ide_replicas = IntAt(sts, "/status/replicas"_json_pointer);
  obs->ide_ready_replicas = IntAt(sts, "/status/readyReplicas"_json_pointer);
}

void ObserveRayCluster(const json& ray, Observation* obs) {
  obs->ray_exists = ray.is_object();
  if (!obs->ray_exists) return;
  const json status = ray.value("status", json::object());
  obs->ray_state = status.is_object() ? status.value("state", "") : "";
  obs->ray_ready = obs->ray_state == "ready";
  // KubeRay ≥ 1.2 also reports conditions; HeadPodReady is what the IDE needs to connect.
  if (status.is_object() && status.contains("conditions") && status["conditions"].is_array()) {
    for (const json& c : status["conditions"]) {
      if (c.is_object() && c.value("type", "") == "HeadPodReady" &&
          c.value("status", "") == "True") {
        obs->ray_ready = true;
      }
    }
  }
}

const Condition* FindCondition(const WorkspaceStatus& status, std::string_view type) {
  for (const Condition& c : status.conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

WorkspaceStatus ComputeStatus(const Workspace& ws, const Observation& obs, const std::string& url,
                              int64_t now_ms) {
  const WorkspaceStatus& old = ws.status;
  const int64_t gen = ws.metadata.generation;
  WorkspaceStatus s;
  s.url = url;
  s.observed_generation = gen;
  s.last_activity_time = old.last_activity_time;
  s.first_ray_job_time = old.first_ray_job_time;

  SetCondition(
      old,
      {kCondTemplateResolved, obs.template_ok, obs.template_ok ? "Found" : obs.template_reason,
       obs.template_ok ? fmt::format("WorkspaceTemplate {}", ws.spec.template_name)
                       : obs.template_message},
      gen, now_ms, &s);
  SetCondition(old,
               {kCondChildrenApplied, obs.applied, obs.applied ? "Applied" : "ApplyFailed",
                obs.applied ? "StatefulSet, Service, VirtualService, AuthorizationPolicy" +
                                  std::string(ws.spec.ray.enabled ? ", RayCluster" : "")
                            : obs.apply_message},
               gen, now_ms, &s);

  const bool stopped = ws.spec.stopped;
  const bool ide_ready = !stopped && obs.ide_ready_replicas >= 1;
  std::string ide_reason = stopped            ? "Stopped"
                           : ide_ready        ? "PodReady"
                           : !obs.ide_exists  ? "NotCreated"
                           : obs.ide_replicas ? "PodNotReady"
                                              : "PodPending";
  SetCondition(
      old,
      {kCondIdeReady, ide_ready, ide_reason,
       fmt::format("{}/{} code-server pods ready", obs.ide_ready_replicas, stopped ? 0 : 1)},
      gen, now_ms, &s);

  const bool ray_wanted = ws.spec.ray.enabled && !stopped;
  const bool ray_ok = !ray_wanted || obs.ray_ready;
  std::string ray_reason = !ws.spec.ray.enabled ? "Disabled"
                           : stopped            ? "Suspended"
                           : obs.ray_ready      ? "HeadReady"
                           : obs.ray_exists     ? "HeadNotReady"
                                                : "NotCreated";
  SetCondition(old,
               {kCondRayReady, ray_ok, ray_reason,
                obs.ray_state.empty() ? std::string() : "KubeRay state " + obs.ray_state},
               gen, now_ms, &s);

  Phase phase;
  if (!obs.template_ok) {
    phase = Phase::kPending;
  } else if (!obs.applied) {
    phase = Phase::kFailed;
  } else if (stopped) {
    phase = obs.ide_replicas == 0 ? Phase::kStopped : Phase::kStopping;
  } else {
    phase = ide_ready && ray_ok ? Phase::kReady : Phase::kStarting;
  }
  s.phase = phase;
  const bool ready = phase == Phase::kReady;
  SetCondition(
      old,
      {kCondReady, ready, PhaseName(phase),
       ready ? "the IDE is up" + std::string(ray_wanted ? " and its Ray head is ready" : "")
             : fmt::format("phase {}", PhaseName(phase))},
      gen, now_ms, &s);
  // Kept in the status (not in the operator's memory) so time-to-ready survives a change of
  // leader while a workspace starts.
  s.starting_since = phase == Phase::kStarting
                         ? (old.phase == Phase::kStarting && !old.starting_since.empty()
                                ? old.starting_since
                                : FormatRfc3339Millis(now_ms))
                         : std::string();
  s.ready_since =
      ready ? (old.phase == Phase::kReady && !old.ready_since.empty() ? old.ready_since
                                                                      : FormatRfc3339Millis(now_ms))
            : std::string();
  s.first_ready_time = !old.first_ready_time.empty() ? old.first_ready_time
                       : ready                       ? FormatRfc3339Millis(now_ms)
                                                     : std::string();
  return s;
}

WorkspaceStatus FailingStatus(const Workspace& ws, const std::string& message, int64_t now_ms) {
  const WorkspaceStatus& old = ws.status;
  WorkspaceStatus s = old;
  s.phase = Phase::kFailed;
  s.ready_since.clear();
  s.conditions.clear();
  for (const Condition& c : old.conditions) {
    if (c.type != kCondReady) s.conditions.push_back(c);
  }
  SetCondition(old, {kCondReady, false, "ReconcileFailing", message}, ws.metadata.generation,
               now_ms, &s);
  return s;
}

json StatusToJson(const WorkspaceStatus& status) {
  json j = json::object();
  if (status.phase) j["phase"] = PhaseName(*status.phase);
  if (!status.url.empty()) j["url"] = status.url;
  j["observedGeneration"] = status.observed_generation;
  if (!status.last_activity_time.empty()) j["lastActivityTime"] = status.last_activity_time;
  j["readySince"] = status.ready_since.empty() ? json() : json(status.ready_since);
  j["startingSince"] = status.starting_since.empty() ? json() : json(status.starting_since);
  if (!status.first_ready_time.empty()) j["firstReadyTime"] = status.first_ready_time;
  if (!status.first_ray_job_time.empty()) j["firstRayJobTime"] = status.first_ray_job_time;
  json conditions = json::array();
  for (const Condition& c : status.conditions) {
    json cj = {
        {"type", c.type}, {"status", c.status}, {"observedGeneration", c.observed_generation}};
    if (!c.reason.empty()) cj["reason"] = c.reason;
    if (!c.message.empty()) cj["message"] = c.message;
    if (!c.last_transition_time.empty()) cj["lastTransitionTime"] = c.last_transition_time;
    conditions.push_back(std::move(cj));
  }
  j["conditions"] = std::move(conditions);
  return j;
}

bool StatusDiffers(const WorkspaceStatus& a, const WorkspaceStatus& b) {
  json ja = StatusToJson(a);
  json jb = StatusToJson(b);
  return ja != jb;
}

}  // namespace tessera::workspaces
