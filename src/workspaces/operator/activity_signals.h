#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "workspaces/operator/activity.h"

// The operator's sources of activity evidence, each an HTTP call into the workspace (URLs are
// templates with {name} and {namespace}; the defaults reach the workspace's Services from
// inside the cluster), plus the pure parsers they use (tested without a network).
namespace tessera::workspaces {

// code-server's `GET /healthz` → {"lastHeartbeat": <epoch ms>}. code-server beats on every HTTP
// request but /healthz itself (so probing does not keep a workspace alive), not on keystrokes
// inside an open terminal: that is what the agent's terminal signal is for.
class CodeServerHeartbeat final : public ActivitySignal {
 public:
  static constexpr char kDefaultUrl[] = "http://ws-{name}.{namespace}.svc.cluster.local/healthz";
  explicit CodeServerHeartbeat(std::string url_template = kDefaultUrl,
                               std::chrono::milliseconds timeout = std::chrono::seconds(3));
  absl::StatusOr<std::vector<ActivityEvidence>> Read(const Workspace& ws, int64_t now_ms) override;

 private:
  std::string url_template_;
  std::chrono::milliseconds timeout_;
};

// The activity agent in the IDE pod (`tessera ws agent`, src/workspaces/agent/): `GET /activity`
// → terminal input, CPU and GPU use of the IDE's processes. Its `POST /notice` shows a message
// in the IDE's open terminals (the IdeNotifier).
class ActivityAgentSignal final : public ActivitySignal, public IdeNotifier {
 public:
  static constexpr char kDefaultUrl[] = "http://ws-{name}.{namespace}.svc.cluster.local:8090";
  explicit ActivityAgentSignal(std::string base_url_template = kDefaultUrl,
                               std::chrono::milliseconds timeout = std::chrono::seconds(3));
  absl::StatusOr<std::vector<ActivityEvidence>> Read(const Workspace& ws, int64_t now_ms) override;
  absl::Status Notify(const Workspace& ws, std::string_view message) override;

 private:
  std::string base_url_template_;
  std::chrono::milliseconds timeout_;
};

// The workspace's Ray cluster, through the Ray dashboard on its head Service: running or pending
// jobs (the Ray job API, `GET /api/jobs/`) and CPU/GPU use of its nodes (`GET
// /nodes?view=summary`). Nothing is read while Ray is off or its head is not ready (no Ray, no
// Ray activity); an unreachable dashboard of a ready head is an error (no cull).
class RayActivitySignal final : public ActivitySignal {
 public:
  static constexpr char kDefaultUrl[] =
      "http://ws-{name}-head-svc.{namespace}.svc.cluster.local:8265";
  struct Thresholds {
    double node_cpu_percent = 10;  // a node this busy counts as use (Ray's own idle load: ~1–5 %)
    double gpu_percent = 5;
  };
  explicit RayActivitySignal(std::string base_url_template = kDefaultUrl,
                             std::chrono::milliseconds timeout = std::chrono::seconds(3));
  RayActivitySignal(std::string base_url_template, std::chrono::milliseconds timeout,
                    Thresholds thresholds);
  absl::StatusOr<std::vector<ActivityEvidence>> Read(const Workspace& ws, int64_t now_ms) override;

 private:
  std::string base_url_template_;
  std::chrono::milliseconds timeout_;
  Thresholds thresholds_;
};

// Parsers (pure). The agent's /activity answer → evidence "terminal", "cpu", "gpu".
absl::StatusOr<std::vector<ActivityEvidence>> ParseAgentActivity(const nlohmann::json& answer);
// The Ray job API's job list → evidence "ray-jobs": now while any job is PENDING or RUNNING,
// else the latest end_time; first_ms: the earliest start_time.
absl::StatusOr<ActivityEvidence> ParseRayJobs(const nlohmann::json& jobs, int64_t now_ms);
// The dashboard's node summary → evidence "ray-cpu" and "ray-gpu": now when any node is busier
// than the thresholds, else 0 (the stored last activity keeps earlier use).
absl::StatusOr<std::vector<ActivityEvidence>> ParseRayNodes(const nlohmann::json& summary,
                                                            int64_t now_ms,
                                                            const RayActivitySignal::Thresholds& t);

}  // namespace tessera::workspaces
