#include "workspaces/api/workspace.h"

#include <gtest/gtest.h>

#include "common/errors.h"

namespace tessera::workspaces {
namespace {

using nlohmann::json;

json MinimalWorkspace() {
  return json::parse(R"({
    "apiVersion": "workspaces.tessera.dev/v1alpha1", "kind": "Workspace",
    "metadata": {"name": "alice", "namespace": "team-a", "uid": "u1", "generation": 3,
                 "resourceVersion": "17", "finalizers": ["workspaces.tessera.dev/cleanup"]},
    "spec": {"owner": "alice@example.com"}
  })");
}

TEST(WorkspaceTest, DefaultsAreTheCrdDefaults) {
  absl::StatusOr<Workspace> ws = ParseWorkspace(MinimalWorkspace());
  ASSERT_TRUE(ws.ok()) << ws.status();
  EXPECT_EQ(ws->metadata.name, "alice");
  EXPECT_EQ(ws->metadata.namespace_, "team-a");
  EXPECT_EQ(ws->metadata.generation, 3);
  EXPECT_EQ(ws->metadata.finalizers, std::vector<std::string>{"workspaces.tessera.dev/cleanup"});
  EXPECT_FALSE(ws->metadata.deleting);
  EXPECT_EQ(ws->spec.template_name, "default");
  EXPECT_TRUE(ws->spec.ray.enabled);
  EXPECT_EQ(ws->spec.ray.workers.max_replicas, 4);
  EXPECT_EQ(ws->spec.home.size, "20Gi");
  EXPECT_EQ(ws->spec.idle_timeout_seconds, 7200);
  EXPECT_FALSE(ws->spec.stopped);
  EXPECT_FALSE(ws->status.phase.has_value());
}

TEST(WorkspaceTest, ParsesEveryField) {
  json j = MinimalWorkspace();
  j["metadata"]["deletionTimestamp"] = "2026-11-24T10:00:00Z";
  j["spec"] = json::parse(R"({
    "owner": "bob", "template": "gpu-team", "image": "img:1",
    "resources": {"cpu": "500m", "memory": "16Gi", "gpus": 2},
    "ray": {"enabled": false, "workers": {"replicas": 2, "minReplicas": 1, "maxReplicas": 8,
            "cpu": "4", "memory": "32Gi", "gpus": 1}},
    "home": {"size": "100Gi", "storageClassName": "fast"},
    "idleTimeout": "1h30m", "stopped": true})");
  j["status"] = json::parse(R"({"phase": "Ready", "url": "https://x/ws/team-a/alice/",
    "observedGeneration": 3, "conditions": [{"type": "Ready", "status": "True",
    "reason": "PodsReady", "observedGeneration": 3}]})");
  absl::StatusOr<Workspace> ws = ParseWorkspace(j);
  ASSERT_TRUE(ws.ok()) << ws.status();
  EXPECT_TRUE(ws->metadata.deleting);
  EXPECT_EQ(ws->spec.owner, "bob");
  EXPECT_EQ(ws->spec.template_name, "gpu-team");
  EXPECT_EQ(ws->spec.resources.cpu, "500m");
  EXPECT_EQ(ws->spec.resources.gpus, 2);
  EXPECT_FALSE(ws->spec.ray.enabled);
  EXPECT_EQ(ws->spec.ray.workers.min_replicas, 1);
  EXPECT_EQ(ws->spec.ray.workers.max_replicas, 8);
  EXPECT_EQ(ws->spec.ray.workers.resources.gpus, 1);
  EXPECT_EQ(ws->spec.home.storage_class_name, "fast");
  EXPECT_EQ(ws->spec.idle_timeout_seconds, 5400);
  EXPECT_TRUE(ws->spec.stopped);
  EXPECT_EQ(ws->status.phase, Phase::kReady);
  ASSERT_EQ(ws->status.conditions.size(), 1u);
  EXPECT_EQ(ws->status.conditions[0].reason, "PodsReady");
}

TEST(WorkspaceTest, ErrorsNameTheFieldTheValueAndWhatWasExpected) {
  struct Case {
    const char* patch;
    const char* expected;
  };
  for (const Case& c : {
           Case{R"({"spec": {"resources": {"gpus": -1}}})",
                "Workspace team-a/alice: spec.resources.gpus is -1; expected an integer from 0 "
                "to 16"},
           Case{R"({"spec": {"resources": {"cpu": "two"}}})", "spec.resources.cpu is \"two\""},
           Case{R"({"spec": {"ray": {"workers": {"minReplicas": 5, "maxReplicas": 2}}}})",
                "minReplicas (5) exceeds maxReplicas (2)"},
           Case{R"({"spec": {"idleTimeout": "2 hours"}})", "spec.idleTimeout is \"2 hours\""},
           Case{R"({"spec": {"owner": ""}})", "spec.owner is missing"},
           Case{R"({"spec": {"stopped": "yes"}})", "spec.stopped is \"yes\"; expected true"},
           Case{R"({"metadata": {"name": "Alice"}})", "the name must be"},
           Case{R"({"kind": "Pod"})", "expected apiVersion workspaces.tessera.dev/v1alpha1 kind"},
           Case{R"({"status": {"phase": "Running"}})", "status.phase is \"Running\""},
       }) {
    json j = MinimalWorkspace();
    j.merge_patch(json::parse(c.patch));
    absl::StatusOr<Workspace> ws = ParseWorkspace(j);
    ASSERT_FALSE(ws.ok()) << c.patch;
    EXPECT_EQ(ws.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(StatusMessage(ws.status()).find(c.expected), std::string::npos)
        << c.patch << " gave: " << ws.status();
  }
}

TEST(WorkspaceTemplateTest, ParsesAndResolvesWithOverrides) {
  absl::StatusOr<WorkspaceTemplate> t = ParseWorkspaceTemplate(json::parse(R"({
    "apiVersion": "workspaces.tessera.dev/v1alpha1", "kind": "WorkspaceTemplate",
    "metadata": {"name": "default", "namespace": "team-a"},
    "spec": {"image": "ide:1", "resources": {"memory": "4Gi"}, "rayImage": "ray:2",
             "initCommands": ["pip list"], "extensions": ["ms-python.python@2024.1.0"],
             "env": [{"name": "A", "value": "1"}],
             "extraContainers": [{"name": "proxy", "image": "envoy:1", "ports": []}]}})"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->spec.resources.cpu, "2");  // CRD default kept where the template is silent
  EXPECT_EQ(t->spec.resources.memory, "4Gi");
  EXPECT_EQ(t->spec.extra_containers.size(), 1u);
  WorkspaceSpec ws;
  ws.resources.gpus = 1;
  ws.resources.cpu = "8";
  EffectiveSpec e = Resolve(ws, t->spec);
  EXPECT_EQ(e.image, "ide:1");
  EXPECT_EQ(e.cpu, "8");
  EXPECT_EQ(e.memory, "4Gi");
  EXPECT_EQ(e.gpus, 1);
  EXPECT_EQ(e.ray_image, "ray:2");
  ws.image = "mine:2";
  EXPECT_EQ(Resolve(ws, t->spec).image, "mine:2");
}

TEST(WorkspaceTemplateTest, RejectsBadFields) {
  for (const char* spec : {R"({})", R"({"image": "x", "extensions": ["not an id"]})",
                           R"({"image": "x", "env": [{"name": "1BAD"}]})",
                           R"({"image": "x", "extraContainers": [{"name": "c"}]})",
                           R"({"image": "x", "initCommands": "echo hi"})"}) {
    json j = {{"apiVersion", kApiVersion},
              {"kind", "WorkspaceTemplate"},
              {"metadata", {{"name", "t"}}},
              {"spec", json::parse(spec)}};
    absl::StatusOr<WorkspaceTemplate> t = ParseWorkspaceTemplate(j);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << spec;
  }
}

TEST(DurationTest, ParsesTheCrdPattern) {
  EXPECT_EQ(ParseDuration("2h").value(), 7200);
  EXPECT_EQ(ParseDuration("1h30m15s").value(), 5415);
  EXPECT_EQ(ParseDuration("0s").value(), 0);
  EXPECT_EQ(ParseDuration("87600h").value(), 87600 * 3600);
  for (const char* bad : {"", "h", "5", "5d", "1.5h", "-1h", "99999999999999999999h", "87601h",
                          "87600h1s", "3000000000000h"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace tessera::workspaces
