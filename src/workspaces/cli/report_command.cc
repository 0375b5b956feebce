#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <memory>

#include "common/errors.h"
#include "common/time_util.h"
#include "workspaces/cli/usage_report.h"
#include "workspaces/cli/ws_cli.h"
#include "workspaces/kube/kube_http.h"
#include "workspaces/operator/http_json.h"

// `tessera ws report`: a short human summary of how workspaces are used, per team and user,
// from Prometheus (--prometheus, over --since) or the operator's own /metrics (--metrics-url).
namespace tessera::workspaces::cli {

void AddReportCommand(CLI::App* ws, Action* action) {
  struct Flags {
    std::string since = "7d";
    std::string prometheus;
    std::string metrics_url;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = ws->add_subcommand(
      "report",
      "How workspaces are used, per team and user: active hours, starts and resumes, culls and "
      "culls avoided, time to first ready and to the first Ray job");
  cmd->add_option("--since", flags->since, "Window, with --prometheus (e.g. 24h, 7d, 30d)")
      ->capture_default_str();
  auto* prom =
      cmd->add_option("--prometheus", flags->prometheus,
                      "Prometheus that scrapes tessera-operator (default $TESSERA_PROMETHEUS_URL)");
  auto* metrics = cmd->add_option(
      "--metrics-url", flags->metrics_url,
      "The leading operator's /metrics instead: totals since it started leading (no --since)");
  prom->excludes(metrics);
  cmd->callback([action, flags, cmd] {
    *action = [flags, cmd]() -> int {
      const auto timeout = std::chrono::seconds(30);
      std::string prometheus = flags->prometheus;
      if (prometheus.empty() && flags->metrics_url.empty()) {
        if (const char* env = std::getenv("TESSERA_PROMETHEUS_URL"); env != nullptr) {
          prometheus = env;
        }
      }
      absl::StatusOr<UsageReport> report;
      if (!flags->metrics_url.empty()) {
        if (cmd->count("--since") > 0) {
          fmt::print(stderr,
                     "tessera ws report: --since needs --prometheus: the operator's /metrics "
                     "only has totals since it started\n");
          return 2;
        }
        absl::StatusOr<std::string> text = HttpGetText(flags->metrics_url, timeout);
        report =
            text.ok() ? UsageFromMetricsText(*text) : absl::StatusOr<UsageReport>(text.status());
        if (report.ok()) report->source = "tessera-operator at " + flags->metrics_url;
      } else if (!prometheus.empty()) {
        absl::StatusOr<int64_t> window = ParseDurationMillis(flags->since);
        if (!window.ok()) {
          fmt::print(stderr, "tessera ws report: --since \"{}\": {}\n", flags->since,
                     StatusMessage(window.status()));
          return 2;
        }
        while (!prometheus.empty() && prometheus.back() == '/') prometheus.pop_back();
        auto query = [&](const std::string& promql) {
          return HttpGetJson(prometheus + "/api/v1/query?query=" + kube::UrlEscape(promql),
                             timeout);
        };
        report = UsageFromPrometheus(query, *window);
        if (report.ok()) report->source = "Prometheus at " + prometheus;
      } else {
        fmt::print(stderr,
                   "tessera ws report: say where the operator's metrics are: --prometheus URL "
                   "(or $TESSERA_PROMETHEUS_URL), or --metrics-url http://OPERATOR:9090/metrics\n");
        return 2;
      }
      if (!report.ok()) {
        fmt::print(stderr, "tessera ws report: {}\n", StatusMessage(report.status()));
        return 1;
      }
      fmt::print("{}", FormatUsage(*report));
      return 0;
    };
  });
}

}  // namespace tessera::workspaces::cli
