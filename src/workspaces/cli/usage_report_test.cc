#include "workspaces/cli/usage_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace tessera::workspaces::cli {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kMetrics[] = R"(# HELP tessera_operator_is_leader 1 while this replica leads
tessera_operator_is_leader 1
tessera_workspace_user_active_seconds_total{team="team-a",user="alice@example.com"} 7200
tessera_workspace_user_active_seconds_total{team="team-b",user="bob \"the builder\""} 1800
tessera_workspace_user_starts_total{team="team-a",user="alice@example.com",kind="first"} 1
tessera_workspace_user_starts_total{team="team-a",user="alice@example.com",kind="resume"} 4
tessera_workspace_user_culls_total{team="team-a",user="alice@example.com"} 2
tessera_workspace_user_culls_avoided_total{team="team-a",user="alice@example.com"} 3
tessera_workspace_first_ready_seconds_bucket{team="team-a",le="60"} 1
tessera_workspace_first_ready_seconds_bucket{team="team-a",le="120"} 3
tessera_workspace_first_ready_seconds_bucket{team="team-a",le="+Inf"} 4
tessera_workspace_first_ready_seconds_sum{team="team-a"} 500
tessera_workspace_first_ready_seconds_count{team="team-a"} 4
)";

TEST(UsageReportTest, FromTheOperatorsMetrics) {
  absl::StatusOr<UsageReport> r = UsageFromMetricsText(kMetrics);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->users.size(), 2u);
  const UserUsage& alice = r->users[0];
  EXPECT_EQ(alice.team, "team-a");
  EXPECT_EQ(alice.active_seconds, 7200);
  EXPECT_EQ(alice.first_starts, 1);
  EXPECT_EQ(alice.resumes, 4);
  EXPECT_EQ(alice.culls, 2);
  EXPECT_EQ(alice.culls_avoided, 3);
  EXPECT_EQ(r->users[1].user, "bob \"the builder\"");
  ASSERT_EQ(r->teams.size(), 1u);
  // Median of 4: rank 2, in the (60, 120] bucket holding observations 2 and 3: 60 + 60/2.
  EXPECT_DOUBLE_EQ(r->teams[0].first_ready_median_s.value(), 90);
  EXPECT_FALSE(r->teams[0].first_ray_job_median_s.has_value());
  const std::string text = FormatUsage(*r);
  EXPECT_THAT(text, HasSubstr("since the operator started"));
  EXPECT_THAT(text, HasSubstr("alice@example.com"));
  EXPECT_THAT(text, HasSubstr("2.0h"));
  EXPECT_THAT(text, HasSubstr("2 users: 2.5h active, 1 first starts, 4 resumes, 2 culled, 3 "
                              "culls avoided by activity"));
  EXPECT_THAT(text, HasSubstr("90s"));
  EXPECT_FALSE(UsageFromMetricsText("some_other_metric 1\n").ok());
}

TEST(UsageReportTest, FromPrometheusOverAWindow) {
  std::map<std::string, json> answers;
  std::vector<std::string> asked;
  auto vec = [](std::vector<std::pair<json, std::string>> rows) {
    json result = json::array();
    for (auto& [metric, value] : rows)
      result.push_back({{"metric", metric}, {"value", {1, value}}});
    return json{{"status", "success"}, {"data", {{"resultType", "vector"}, {"result", result}}}};
  };
  const json alice = {{"team", "team-a"}, {"user", "alice"}};
  PromQuery query = [&](const std::string& promql) -> absl::StatusOr<json> {
    asked.push_back(promql);
    if (promql.find("active_seconds") != std::string::npos) return vec({{alice, "50400"}});
    if (promql.find("starts_total") != std::string::npos) {
      json resume = alice;
      resume["kind"] = "resume";
      return vec({{resume, "6"}});
    }
    if (promql.find("first_ready") != std::string::npos) {
      return vec({{{{"team", "team-a"}}, "250"}, {{{"team", "team-b"}}, "NaN"}});
    }
    return vec({});
  };
  absl::StatusOr<UsageReport> r = UsageFromPrometheus(query, 7 * 86'400'000LL);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->users.size(), 1u);
  EXPECT_EQ(r->users[0].resumes, 6);
  EXPECT_THAT(asked[0],
              HasSubstr("increase(tessera_workspace_user_active_seconds_total[604800s])"));
  EXPECT_THAT(asked.back(), HasSubstr("histogram_quantile(0.5"));
  const std::string text = FormatUsage(*r);
  EXPECT_THAT(text, HasSubstr("last 7d"));
  EXPECT_THAT(text, HasSubstr("ACTIVE/DAY"));
  EXPECT_THAT(text, HasSubstr("2.0h"));  // 14 h over 7 days
  EXPECT_THAT(text, HasSubstr("250s"));
  // Prometheus failing is an error, not an empty report.
  PromQuery broken = [](const std::string&) -> absl::StatusOr<json> {
    return json{{"status", "error"}, {"error", "bad query"}};
  };
  EXPECT_FALSE(UsageFromPrometheus(broken, 86'400'000).ok());
  EXPECT_FALSE(UsageFromPrometheus(query, 0).ok());
}

}  // namespace
}  // namespace tessera::workspaces::cli
