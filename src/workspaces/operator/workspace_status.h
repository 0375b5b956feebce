#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "workspaces/api/workspace.h"

// What a reconcile saw, and the status it implies: pure functions, so every phase transition is
// unit-tested without a cluster.
namespace tessera::workspaces {

// Condition types the operator maintains on a Workspace.
inline constexpr char kCondTemplateResolved[] = "TemplateResolved";
inline constexpr char kCondChildrenApplied[] = "ChildrenApplied";
inline constexpr char kCondIdeReady[] = "IDEReady";
inline constexpr char kCondRayReady[] = "RayReady";
inline constexpr char kCondReady[] = "Ready";

struct Observation {
  // The template was found and parsed; otherwise why not (reason, message).
  bool template_ok = true;
  std::string template_reason;
  std::string template_message;
  // Every child was applied; otherwise the error.
  bool applied = true;
  std::string apply_message;
  // The StatefulSet as last seen (absent: not created yet or already deleted).
  bool ide_exists = false;
  int ide_replicas = 0;        // status.replicas: pods that exist
  int ide_ready_replicas = 0;  // status.readyReplicas
  // The RayCluster (only meaningful when spec.ray.enabled).
  bool ray_exists = false;
  bool ray_ready = false;
  std::string ray_state;  // KubeRay's status.state, for messages
};

// Facts read off the children's JSON.
void ObserveStatefulSet(const nlohmann::json& sts, Observation* obs);
void ObserveRayCluster(const nlohmann::json& ray, Observation* obs);

// The status the workspace should have now. Keeps lastTransitionTime of conditions whose status
// did not change, sets readySince when the phase becomes Ready (startingSince while it is
// Starting) and firstReadyTime the first time it is Ready, and carries lastActivityTime and
// firstRayJobTime over from `ws.status` (the culler updates them). `url` is the workspace's
// address.
WorkspaceStatus ComputeStatus(const Workspace& ws, const Observation& obs, const std::string& url,
                              int64_t now_ms);

// The status of a workspace whose reconciles keep failing (e.g. every apply answered with a 500):
// its last status, but phase Failed and condition Ready False with reason ReconcileFailing and
// `message`. The next reconcile that succeeds computes the status afresh.
WorkspaceStatus FailingStatus(const Workspace& ws, const std::string& message, int64_t now_ms);

// The status as the JSON the status subresource takes.
nlohmann::json StatusToJson(const WorkspaceStatus& status);

// True when the two statuses differ in anything that is written (so a no-op reconcile writes
// nothing and does not wake its own watch).
bool StatusDiffers(const WorkspaceStatus& a, const WorkspaceStatus& b);

const Condition* FindCondition(const WorkspaceStatus& status, std::string_view type);

}  // namespace tessera::workspaces
