#include "workspaces/operator/activity_signals.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tessera::workspaces {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1'760'000'000'000;

TEST(ActivitySignalsTest, AgentAnswer) {
  absl::StatusOr<std::vector<ActivityEvidence>> e = ParseAgentActivity(json::parse(R"({
    "terminal": {"last_input_ms": 100, "ttys": 2},
    "cpu": {"last_active_ms": 200, "cores": 1.5},
    "gpu": {"available": true, "last_active_ms": 300, "utilization_percent": 87},
    "sampled_at_ms": 400})"));
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 3u);
  EXPECT_EQ((*e)[0].signal, "terminal");
  EXPECT_EQ((*e)[0].last_active_ms, 100);
  EXPECT_EQ((*e)[1].signal, "cpu");
  EXPECT_EQ((*e)[1].detail, "1.50 cores now");
  EXPECT_EQ((*e)[2].signal, "gpu");
  EXPECT_EQ((*e)[2].last_active_ms, 300);
  // No GPU: no GPU evidence.
  e = ParseAgentActivity(
      json::parse(R"({"terminal": {}, "cpu": {}, "gpu": {"available": false}})"));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].last_active_ms, 0);
  EXPECT_FALSE(ParseAgentActivity(json::parse(R"({"status": "ok"})")).ok());
  EXPECT_FALSE(ParseAgentActivity(json::array()).ok());
}

TEST(ActivitySignalsTest, RayJobs) {
  absl::StatusOr<ActivityEvidence> e = ParseRayJobs(json::parse(R"([
    {"job_id": "a", "status": "SUCCEEDED", "start_time": 1, "end_time": 5000},
    {"job_id": "b", "status": "FAILED", "end_time": 7000},
    {"job_id": "c", "status": "STOPPED", "end_time": null}])"),
                                                    kNow);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->last_active_ms, 7000);
  EXPECT_EQ(e->detail, "0 running of 3");
  e = ParseRayJobs(json::parse(R"([{"status": "SUCCEEDED", "end_time": 5000},
                                   {"status": "RUNNING", "start_time": 6000}])"),
                   kNow);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->last_active_ms, kNow);
  EXPECT_EQ(e->detail, "1 running of 2");
  // An end time in the future (clock skew) is capped at now; no jobs: never active.
  e = ParseRayJobs(json::parse(R"([{"status": "SUCCEEDED", "end_time": 9999999999999}])"), kNow);
  EXPECT_EQ(e->last_active_ms, kNow);
  EXPECT_EQ(ParseRayJobs(json::array(), kNow)->last_active_ms, 0);
  EXPECT_FALSE(ParseRayJobs(json::object(), kNow).ok());
}

TEST(ActivitySignalsTest, RayNodes) {
  const RayActivitySignal::Thresholds t;
  absl::StatusOr<std::vector<ActivityEvidence>> e = ParseRayNodes(json::parse(R"({
    "result": true, "data": {"summary": [
      {"hostname": "head", "cpu": 3.0, "gpus": []},
      {"hostname": "w1", "cpu": 2.0, "gpus": [{"utilizationGpu": 1}, {"utilizationGpu": 3}]}]}})"),
                                                                  kNow, t);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].signal, "ray-cpu");
  EXPECT_EQ((*e)[0].last_active_ms, 0);  // Ray idling
  EXPECT_EQ((*e)[1].signal, "ray-gpu");
  EXPECT_EQ((*e)[1].last_active_ms, 0);
  e = ParseRayNodes(json::parse(R"({"data": {"summary": [
      {"cpu": 2.0}, {"cpu": 95.0, "gpus": [{"utilizationGpu": 80}]}]}})"),
                    kNow, t);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e)[0].last_active_ms, kNow);
  EXPECT_THAT((*e)[0].detail, HasSubstr("95%"));
  EXPECT_EQ((*e)[1].last_active_ms, kNow);
  // No GPUs anywhere: no GPU evidence.
  e = ParseRayNodes(json::parse(R"({"data": {"summary": [{"cpu": 50}]}})"), kNow, t);
  ASSERT_EQ(e->size(), 1u);
  EXPECT_EQ((*e)[0].last_active_ms, kNow);
  EXPECT_FALSE(ParseRayNodes(json::parse(R"({"result": false})"), kNow, t).ok());
}

}  // namespace
}  // namespace tessera::workspaces
