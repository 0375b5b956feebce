#include "workspaces/cli/usage_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace tessera::workspaces::cli {
namespace {

using nlohmann::json;
using LabelMap = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  LabelMap labels;
  double value = 0;
};

// One exposition line: name{k="v",…} value. Returns false for lines that are not samples.
bool ParseSample(std::string_view line, Sample* out) {
  if (line.empty() || line[0] == '#') return false;
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  out->name = std::string(line.substr(0, i));
  out->labels.clear();
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const size_t eq = line.find('=', i);
      if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
        return false;
      }
      std::string key(line.substr(i, eq - i));
      std::string value;
      size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) {
          ++j;
          value.push_back(line[j] == 'n' ? '\n' : line[j]);
        } else {
          value.push_back(line[j]);
        }
      }
      if (j >= line.size()) return false;
      out->labels[key] = std::move(value);
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  while (i < line.size() && line[i] == ' ') ++i;
  const std::string value(line.substr(i, line.find(' ', i) - i));
  if (value == "+Inf") {
    out->value = std::numeric_limits<double>::infinity();
    return true;
  }
  char* end = nullptr;
  out->value = std::strtod(value.c_str(), &end);
  return end != value.c_str();
}

// The median of a cumulative histogram ({upper bound, count}), interpolated within its bucket
// as Prometheus's histogram_quantile does; nullopt when it is empty.
std::optional<double> Median(std::vector<std::pair<double, double>> buckets) {
  std::sort(buckets.begin(), buckets.end());
  if (buckets.empty() || buckets.back().second <= 0) return std::nullopt;
  const double rank = buckets.back().second / 2;
  double lower = 0;
  double below = 0;
  for (const auto& [bound, count] : buckets) {
    if (count >= rank) {
      if (std::isinf(bound)) return lower;  // past the largest bound: the largest bound
      return lower + (bound - lower) * (count > below ? (rank - below) / (count - below) : 0);
    }
    lower = bound;
    below = count;
  }
  return lower;
}

UserUsage& UserRow(std::map<std::pair<std::string, std::string>, UserUsage>& rows,
                   const LabelMap& labels) {
  const std::string team = labels.count("team") ? labels.at("team") : "";
  const std::string user = labels.count("user") ? labels.at("user") : "";
  UserUsage& row = rows[{team, user}];
  row.team = team;
  row.user = user;
  return row;
}

void AddToUser(UserUsage& row, const std::string& metric, const LabelMap& labels, double v) {
  if (metric == "tessera_workspace_user_active_seconds_total") {
    row.active_seconds += v;
  } else if (metric == "tessera_workspace_user_starts_total") {
    (labels.count("kind") && labels.at("kind") == "resume" ? row.resumes : row.first_starts) += v;
  } else if (metric == "tessera_workspace_user_culls_total") {
    row.culls += v;
  } else if (metric == "tessera_workspace_user_culls_avoided_total") {
    row.culls_avoided += v;
  }
}

UsageReport Assemble(std::map<std::pair<std::string, std::string>, UserUsage> users,
                     std::map<std::string, TeamUsage> teams) {
  UsageReport report;
  for (auto& [key, row] : users) report.users.push_back(std::move(row));
  for (auto& [team, row] : teams) {
    row.team = team;
    report.teams.push_back(std::move(row));
  }
  return report;
}

std::string Hours(double seconds) { return fmt::format("{:.1f}h", seconds / 3600); }

std::string Count(double v) { return fmt::format("{:.0f}", v); }

}  // namespace

absl::StatusOr<UsageReport> UsageFromMetricsText(std::string_view text) {
  std::map<std::pair<std::string, std::string>, UserUsage> users;
  std::map<std::string, std::map<std::string, std::vector<std::pair<double, double>>>> hist;
  bool any_operator_metric = false;
  size_t start = 0;
  Sample s;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(start, nl - start);
    start = nl + 1;
    if (!ParseSample(line, &s)) continue;
    if (s.name.rfind("tessera_operator_", 0) == 0) any_operator_metric = true;
    if (s.name.rfind("tessera_workspace_user_", 0) == 0) {
      AddToUser(UserRow(users, s.labels), s.name, s.labels, s.value);
    }
    for (const char* h :
         {"tessera_workspace_first_ready_seconds", "tessera_workspace_first_ray_job_seconds"}) {
      if (s.name == std::string(h) + "_bucket" && s.labels.count("team") && s.labels.count("le")) {
        const std::string& le = s.labels.at("le");
        const double bound = le == "+Inf" ? std::numeric_limits<double>::infinity()
                                          : std::strtod(le.c_str(), nullptr);
        hist[h][s.labels.at("team")].emplace_back(bound, s.value);
      }
    }
  }
  if (!any_operator_metric) {
    return InvalidArgument(
        "these are not tessera-operator metrics (no tessera_operator_* series): check "
        "--metrics-url (the operator's --metrics-addr, path /metrics)");
  }
  std::map<std::string, TeamUsage> teams;
  for (const auto& [team, buckets] : hist["tessera_workspace_first_ready_seconds"]) {
    teams[team].first_ready_median_s = Median(buckets);
  }
  for (const auto& [team, buckets] : hist["tessera_workspace_first_ray_job_seconds"]) {
    teams[team].first_ray_job_median_s = Median(buckets);
  }
  return Assemble(std::move(users), std::move(teams));
}

absl::StatusOr<UsageReport> UsageFromPrometheus(const PromQuery& query, int64_t window_ms) {
  if (window_ms <= 0) return InvalidArgument("--since must be a positive duration");
  const std::string range = fmt::format("{}s", std::max<int64_t>(1, window_ms / 1000));
  // One instant vector per query: {metric: labels, value: [time, "number"]}.
  auto vector = [&](const std::string& promql) -> absl::StatusOr<std::vector<Sample>> {
    TESSERA_ASSIGN_OR_RETURN(json answer, query(promql));
    if (!answer.is_object() || answer.value("status", "") != "success" ||
        !answer.contains("data") || !answer["data"].contains("result") ||
        !answer["data"]["result"].is_array()) {
      return Unavailable("Prometheus answered {} to {}", answer.dump().substr(0, 300), promql);
    }
    std::vector<Sample> out;
    for (const json& r : answer["data"]["result"]) {
      Sample s;
      if (!r.is_object()) continue;
      const json metric = r.value("metric", json::object());
      if (!metric.is_object()) continue;
      for (auto it = metric.begin(); it != metric.end(); ++it) {
        if (it->is_string()) s.labels[it.key()] = it->get<std::string>();
      }
      const json value = r.value("value", json::array());
      if (!value.is_array() || value.size() != 2 || !value[1].is_string()) continue;
      s.value = std::strtod(value[1].get<std::string>().c_str(), nullptr);
      if (std::isnan(s.value)) continue;
      out.push_back(std::move(s));
    }
    return out;
  };
  std::map<std::pair<std::string, std::string>, UserUsage> users;
  for (const char* metric :
       {"tessera_workspace_user_active_seconds_total", "tessera_workspace_user_starts_total",
        "tessera_workspace_user_culls_total", "tessera_workspace_user_culls_avoided_total"}) {
    const std::string by = std::string(metric) == "tessera_workspace_user_starts_total"
                               ? "team, user, kind"
                               : "team, user";
    TESSERA_ASSIGN_OR_RETURN(
        std::vector<Sample> samples,
        vector(fmt::format("sum by ({}) (increase({}[{}]))", by, metric, range)));
    for (const Sample& s : samples) AddToUser(UserRow(users, s.labels), metric, s.labels, s.value);
  }
  std::map<std::string, TeamUsage> teams;
  for (const char* metric :
       {"tessera_workspace_first_ready_seconds", "tessera_workspace_first_ray_job_seconds"}) {
    TESSERA_ASSIGN_OR_RETURN(
        std::vector<Sample> samples,
        vector(fmt::format("histogram_quantile(0.5, sum by (team, le) (increase({}_bucket[{}])))",
                           metric, range)));
    for (const Sample& s : samples) {
      if (!s.labels.count("team") || std::isinf(s.value)) continue;
      TeamUsage& t = teams[s.labels.at("team")];
      (std::string(metric) == "tessera_workspace_first_ready_seconds" ? t.first_ready_median_s
                                                                      : t.first_ray_job_median_s) =
          s.value;
    }
  }
  UsageReport report = Assemble(std::move(users), std::move(teams));
  report.window_ms = window_ms;
  return report;
}

std::string FormatUsage(const UsageReport& report) {
  const double days = report.window_ms / 86'400'000.0;
  std::string out =
      report.window_ms > 0
          ? fmt::format("Workspaces, last {} ({})\n", FormatDurationMillis(report.window_ms),
                        report.source)
          : fmt::format("Workspaces since the operator started leading ({})\n", report.source);
  if (report.users.empty()) {
    out += "no workspace activity recorded yet\n";
    return out;
  }
  const std::string active = report.window_ms > 0 ? "ACTIVE/DAY" : "ACTIVE";
  size_t team_w = 4;
  size_t user_w = 4;
  for (const UserUsage& u : report.users) {
    team_w = std::max(team_w, u.team.size());
    user_w = std::max(user_w, u.user.size());
  }
  out += fmt::format("{:<{}}  {:<{}}  {:>10}  {:>6}  {:>7}  {:>6}  {:>13}\n", "TEAM", team_w,
                     "USER", user_w, active, "STARTS", "RESUMES", "CULLED", "CULLS AVOIDED");
  UserUsage total;
  for (const UserUsage& u : report.users) {
    const double active_s = report.window_ms > 0 ? u.active_seconds / days : u.active_seconds;
    out += fmt::format("{:<{}}  {:<{}}  {:>10}  {:>6}  {:>7}  {:>6}  {:>13}\n", u.team, team_w,
                       u.user, user_w, Hours(active_s), Count(u.first_starts), Count(u.resumes),
                       Count(u.culls), Count(u.culls_avoided));
    total.active_seconds += u.active_seconds;
    total.first_starts += u.first_starts;
    total.resumes += u.resumes;
    total.culls += u.culls;
    total.culls_avoided += u.culls_avoided;
  }
  out += fmt::format(
      "{} users: {} active, {} first starts, {} resumes, {} culled, {} culls avoided by "
      "activity\n",
      report.users.size(), Hours(total.active_seconds), Count(total.first_starts),
      Count(total.resumes), Count(total.culls), Count(total.culls_avoided));
  if (!report.teams.empty()) {
    out += fmt::format("\n{:<{}}  {:>22}  {:>24}\n", "TEAM", team_w, "FIRST READY (median)",
                       "FIRST RAY JOB (median)");
    auto duration = [](const std::optional<double>& s) {
      return s ? FormatDurationMillis(static_cast<int64_t>(*s * 1000)) : std::string("-");
    };
    for (const TeamUsage& t : report.teams) {
      out += fmt::format("{:<{}}  {:>22}  {:>24}\n", t.team, team_w,
                         duration(t.first_ready_median_s), duration(t.first_ray_job_median_s));
    }
  }
  return out;
}

}  // namespace tessera::workspaces::cli
