#include "workspaces/operator/activity_signals.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/errors.h"
#include "common/status_macros.h"
#include "workspaces/operator/http_json.h"
#include "workspaces/operator/workspace_status.h"

namespace tessera::workspaces {
namespace {

using nlohmann::json;

// The accessors below never throw: what a workspace answers is the workspace's (its user can
// replace the agent or the Ray dashboard), so every field is checked for its type and range.
int64_t IntOr(const json& obj, const char* key, int64_t fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return fallback;
  const double v = it->get<double>();
  if (!(v >= 0 && v < 9.2e18)) return fallback;  // NaN, negative or out of range
  return it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(v);
}

double DoubleOr(const json& obj, const char* key, double fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return fallback;
  const double v = it->get<double>();
  return std::isfinite(v) ? v : fallback;
}

std::string StringOr(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

bool BoolOr(const json& obj, const char* key) {
  if (!obj.is_object()) return false;
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() && it->get<bool>();
}

// For messages: the JSON type, never a dump (a hostile answer may be nested deep enough to
// exhaust the stack of a recursive dump).
const char* TypeOf(const json& j) { return j.type_name(); }

}  // namespace

absl::StatusOr<std::vector<ActivityEvidence>> ParseAgentActivity(const json& answer) {
  if (!answer.is_object() || !answer.contains("terminal") || !answer.contains("cpu")) {
    return Unavailable("the activity agent's answer has no terminal and cpu (a JSON {})",
                       TypeOf(answer));
  }
  std::vector<ActivityEvidence> out;
  const json& terminal = answer["terminal"];
  out.push_back({"terminal", IntOr(terminal, "last_input_ms", 0),
                 fmt::format("{} open", IntOr(terminal, "ttys", 0))});
  const json& cpu = answer["cpu"];
  out.push_back({"cpu", IntOr(cpu, "last_active_ms", 0),
                 fmt::format("{:.2f} cores now", DoubleOr(cpu, "cores", 0))});
  if (answer.contains("gpu") && BoolOr(answer["gpu"], "available")) {
    const json& gpu = answer["gpu"];
    out.push_back({"gpu", IntOr(gpu, "last_active_ms", 0),
                   fmt::format("{:.0f}% now", DoubleOr(gpu, "utilization_percent", 0))});
  }
  return out;
}

absl::StatusOr<ActivityEvidence> ParseRayJobs(const json& jobs, int64_t now_ms) {
  if (!jobs.is_array()) {
    return Unavailable("the Ray job API answered a JSON {}, not a job list", TypeOf(jobs));
  }
  ActivityEvidence e{"ray-jobs", 0, ""};
  int running = 0;
  for (const json& job : jobs) {
    const int64_t start = IntOr(job, "start_time", 0);
    if (start > 0 && (e.first_ms == 0 || start < e.first_ms)) e.first_ms = std::min(start, now_ms);
    const std::string status = StringOr(job, "status");
    if (status == "RUNNING" || status == "PENDING") {
      ++running;
      e.last_active_ms = now_ms;
    } else {
      e.last_active_ms = std::max(e.last_active_ms, std::min(IntOr(job, "end_time", 0), now_ms));
    }
  }
  e.detail = fmt::format("{} running of {}", running, jobs.size());
  return e;
}

absl::StatusOr<std::vector<ActivityEvidence>> ParseRayNodes(
    const json& summary, int64_t now_ms, const RayActivitySignal::Thresholds& t) {
  const json* nodes = nullptr;
  if (summary.is_object() && summary.contains("data") && summary["data"].is_object() &&
      summary["data"].contains("summary") && summary["data"]["summary"].is_array()) {
    nodes = &summary["data"]["summary"];
  }
  if (nodes == nullptr) {
    return Unavailable("the Ray dashboard's node summary has no data.summary list (a JSON {})",
                       TypeOf(summary));
  }
  double max_cpu = 0;
  double max_gpu = -1;  // -1: no GPU anywhere
  for (const json& node : *nodes) {
    max_cpu = std::max(max_cpu, DoubleOr(node, "cpu", 0));
    if (node.is_object() && node.contains("gpus") && node["gpus"].is_array()) {
      for (const json& gpu : node["gpus"])
        max_gpu = std::max(max_gpu, DoubleOr(gpu, "utilizationGpu", 0));
    }
  }
  std::vector<ActivityEvidence> out;
  out.push_back({"ray-cpu", max_cpu >= t.node_cpu_percent ? now_ms : 0,
                 fmt::format("busiest of {} nodes {:.0f}%", nodes->size(), max_cpu)});
  if (max_gpu >= 0) {
    out.push_back({"ray-gpu", max_gpu >= t.gpu_percent ? now_ms : 0,
                   fmt::format("busiest GPU {:.0f}%", max_gpu)});
  }
  return out;
}

CodeServerHeartbeat::CodeServerHeartbeat(std::string url_template,
                                         std::chrono::milliseconds timeout)
    : url_template_(std::move(url_template)), timeout_(timeout) {}

absl::StatusOr<std::vector<ActivityEvidence>> CodeServerHeartbeat::Read(const Workspace& ws,
                                                                        int64_t /*now_ms*/) {
  const std::string url = ExpandUrlTemplate(url_template_, ws);
  TESSERA_ASSIGN_OR_RETURN(json j, HttpGetJson(url, timeout_, 64 << 10));
  const int64_t beat = IntOr(j, "lastHeartbeat", -1);
  if (beat < 0) {
    return Unavailable("heartbeat {}: expected {{\"lastHeartbeat\": <epoch ms>}}, got a JSON {}",
                       url, TypeOf(j));
  }
  return std::vector<ActivityEvidence>{{"heartbeat", beat, "code-server"}};
}

ActivityAgentSignal::ActivityAgentSignal(std::string base_url_template,
                                         std::chrono::milliseconds timeout)
    : base_url_template_(std::move(base_url_template)), timeout_(timeout) {}

absl::StatusOr<std::vector<ActivityEvidence>> ActivityAgentSignal::Read(const Workspace& ws,
                                                                        int64_t /*now_ms*/) {
  const std::string url = ExpandUrlTemplate(base_url_template_, ws) + "/activity";
  TESSERA_ASSIGN_OR_RETURN(json j, HttpGetJson(url, timeout_, 64 << 10));
  absl::StatusOr<std::vector<ActivityEvidence>> parsed = ParseAgentActivity(j);
  if (!parsed.ok()) return Annotate(parsed.status(), url);
  return parsed;
}

absl::Status ActivityAgentSignal::Notify(const Workspace& ws, std::string_view message) {
  const std::string url = ExpandUrlTemplate(base_url_template_, ws) + "/notice";
  return HttpPostJson(url, json{{"message", std::string(message)}}, timeout_);
}

RayActivitySignal::RayActivitySignal(std::string base_url_template,
                                     std::chrono::milliseconds timeout)
    : RayActivitySignal(std::move(base_url_template), timeout, Thresholds{}) {}

RayActivitySignal::RayActivitySignal(std::string base_url_template,
                                     std::chrono::milliseconds timeout, Thresholds thresholds)
    : base_url_template_(std::move(base_url_template)),
      timeout_(timeout),
      thresholds_(thresholds) {}

absl::StatusOr<std::vector<ActivityEvidence>> RayActivitySignal::Read(const Workspace& ws,
                                                                      int64_t now_ms) {
  if (!ws.spec.ray.enabled) return std::vector<ActivityEvidence>{};
  const Condition* ray = FindCondition(ws.status, kCondRayReady);
  if (ray == nullptr || ray->status != "True" || ray->reason != "HeadReady") {
    return std::vector<ActivityEvidence>{};  // no Ray head running: no Ray activity
  }
  const std::string base = ExpandUrlTemplate(base_url_template_, ws);
  TESSERA_ASSIGN_OR_RETURN(json jobs, HttpGetJson(base + "/api/jobs/", timeout_));
  TESSERA_ASSIGN_OR_RETURN(ActivityEvidence job_evidence, ParseRayJobs(jobs, now_ms));
  TESSERA_ASSIGN_OR_RETURN(json nodes, HttpGetJson(base + "/nodes?view=summary", timeout_));
  TESSERA_ASSIGN_OR_RETURN(std::vector<ActivityEvidence> out,
                           ParseRayNodes(nodes, now_ms, thresholds_));
  out.insert(out.begin(), std::move(job_evidence));
  return out;
}

}  // namespace tessera::workspaces
