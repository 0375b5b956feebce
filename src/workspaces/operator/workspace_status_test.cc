#include "workspaces/operator/workspace_status.h"

#include <gtest/gtest.h>

#include "common/time_util.h"

namespace tessera::workspaces {
namespace {

using nlohmann::json;

Workspace MakeWorkspace() {
  Workspace ws;
  ws.metadata.name = "alice";
  ws.metadata.namespace_ = "team-a";
  ws.metadata.generation = 2;
  ws.spec.owner = "alice@example.com";
  return ws;
}

Observation Running(bool ide_ready, bool ray_ready) {
  Observation obs;
  obs.ide_exists = true;
  obs.ide_replicas = 1;
  obs.ide_ready_replicas = ide_ready ? 1 : 0;
  obs.ray_exists = true;
  obs.ray_ready = ray_ready;
  return obs;
}

constexpr int64_t kT0 = 1'790'000'000'000;

TEST(WorkspaceStatusTest, PhaseFollowsTheChildren) {
  Workspace ws = MakeWorkspace();
  EXPECT_EQ(ComputeStatus(ws, Running(false, false), "u", kT0).phase, Phase::kStarting);
  EXPECT_EQ(ComputeStatus(ws, Running(true, false), "u", kT0).phase, Phase::kStarting);
  EXPECT_EQ(ComputeStatus(ws, Running(false, true), "u", kT0).phase, Phase::kStarting);
  EXPECT_EQ(ComputeStatus(ws, Running(true, true), "u", kT0).phase, Phase::kReady);
  ws.spec.ray.enabled = false;  // Ray not wanted: the IDE alone decides
  EXPECT_EQ(ComputeStatus(ws, Running(true, false), "u", kT0).phase, Phase::kReady);

  ws.spec.stopped = true;
  EXPECT_EQ(ComputeStatus(ws, Running(true, true), "u", kT0).phase, Phase::kStopping);
  Observation gone;
  gone.ide_exists = true;
  EXPECT_EQ(ComputeStatus(ws, gone, "u", kT0).phase, Phase::kStopped);

  Observation no_template;
  no_template.template_ok = false;
  no_template.template_reason = "TemplateNotFound";
  no_template.template_message = "WorkspaceTemplate \"x\" does not exist";
  WorkspaceStatus s = ComputeStatus(MakeWorkspace(), no_template, "u", kT0);
  EXPECT_EQ(s.phase, Phase::kPending);
  ASSERT_NE(FindCondition(s, kCondTemplateResolved), nullptr);
  EXPECT_EQ(FindCondition(s, kCondTemplateResolved)->reason, "TemplateNotFound");

  Observation failed = Running(true, true);
  failed.applied = false;
  failed.apply_message = "applying StatefulSet ws-alice: denied";
  s = ComputeStatus(MakeWorkspace(), failed, "u", kT0);
  EXPECT_EQ(s.phase, Phase::kFailed);
  EXPECT_EQ(FindCondition(s, kCondChildrenApplied)->message, failed.apply_message);
}

TEST(WorkspaceStatusTest, TransitionTimesMoveOnlyWhenAConditionFlips) {
  Workspace ws = MakeWorkspace();
  WorkspaceStatus starting = ComputeStatus(ws, Running(false, false), "u", kT0);
  ws.status = starting;
  WorkspaceStatus still = ComputeStatus(ws, Running(false, false), "u", kT0 + 5000);
  EXPECT_FALSE(StatusDiffers(starting, still));  // nothing changed: nothing to write
  WorkspaceStatus ready = ComputeStatus(ws, Running(true, true), "u", kT0 + 9000);
  EXPECT_TRUE(StatusDiffers(starting, ready));
  EXPECT_EQ(FindCondition(ready, kCondReady)->last_transition_time,
            FormatRfc3339Millis(kT0 + 9000));
  EXPECT_EQ(FindCondition(ready, kCondTemplateResolved)->last_transition_time,
            FormatRfc3339Millis(kT0));
  EXPECT_EQ(ready.ready_since, FormatRfc3339Millis(kT0 + 9000));
  ws.status = ready;
  EXPECT_EQ(ComputeStatus(ws, Running(true, true), "u", kT0 + 60'000).ready_since,
            ready.ready_since);
  EXPECT_EQ(ready.observed_generation, 2);
}

TEST(WorkspaceStatusTest, ObservesKubeRayAndStatefulSetStatus) {
  Observation obs;
  ObserveStatefulSet(json::parse(R"({"status": {"replicas": 1, "readyReplicas": 1}})"), &obs);
  EXPECT_TRUE(obs.ide_exists);
  EXPECT_EQ(obs.ide_ready_replicas, 1);
  ObserveRayCluster(json::parse(R"({"status": {"state": "ready"}})"), &obs);
  EXPECT_TRUE(obs.ray_ready);
  Observation by_condition;
  ObserveRayCluster(json::parse(R"({"status": {"conditions": [
      {"type": "HeadPodReady", "status": "True"}]}})"),
                    &by_condition);
  EXPECT_TRUE(by_condition.ray_ready);
  Observation not_ready;
  ObserveRayCluster(json::parse(R"({"status": {"state": "suspended"}})"), &not_ready);
  EXPECT_FALSE(not_ready.ray_ready);
  EXPECT_EQ(not_ready.ray_state, "suspended");
}

TEST(WorkspaceStatusTest, JsonRoundTripsThroughTheParser) {
  Workspace ws = MakeWorkspace();
  WorkspaceStatus s = ComputeStatus(ws, Running(true, true), "https://x/ws/team-a/alice/", kT0);
  json object = {{"apiVersion", kApiVersion},
                 {"kind", "Workspace"},
                 {"metadata", {{"name", "alice"}, {"namespace", "team-a"}}},
                 {"spec", {{"owner", "a"}}},
                 {"status", StatusToJson(s)}};
  absl::StatusOr<Workspace> parsed = ParseWorkspace(object);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(StatusDiffers(parsed->status, s));
}

}  // namespace
}  // namespace tessera::workspaces
