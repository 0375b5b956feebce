#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

// `tessera ws report`: whether workspaces make people productive, per team (namespace) and user
// (owner), from the operator's metrics (docs/WORKSPACES.md, "Telemetry"). Two sources:
//   - Prometheus (`--prometheus URL`): increases over a window (`--since 7d`);
//   - the operator's own /metrics (`--metrics-url URL`): totals since that replica started
//     leading (a counter's history is Prometheus's job, not the operator's).
// Pure functions, apart from the fetch callbacks.
namespace tessera::workspaces::cli {

struct UserUsage {
  std::string team;
  std::string user;
  double active_seconds = 0;
  double first_starts = 0;
  double resumes = 0;
  double culls = 0;
  double culls_avoided = 0;
};

struct TeamUsage {
  std::string team;
  std::optional<double> first_ready_median_s;    // creation → first Ready
  std::optional<double> first_ray_job_median_s;  // creation → first Ray job
};

struct UsageReport {
  std::string source;            // "Prometheus at …" / "tessera-operator at …"
  int64_t window_ms = 0;         // the window; 0: since the operator started
  std::vector<UserUsage> users;  // sorted by team, then user
  std::vector<TeamUsage> teams;
};

// From the operator's Prometheus text (exposition format 0.0.4).
absl::StatusOr<UsageReport> UsageFromMetricsText(std::string_view text);

// From Prometheus: `query` runs one instant PromQL query and returns the JSON answer of
// /api/v1/query.
using PromQuery = std::function<absl::StatusOr<nlohmann::json>(const std::string& promql)>;
absl::StatusOr<UsageReport> UsageFromPrometheus(const PromQuery& query, int64_t window_ms);

// The human summary: a table of users, one of teams, and totals.
std::string FormatUsage(const UsageReport& report);

}  // namespace tessera::workspaces::cli
