#include "workspaces/operator/render.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.h"

// Golden files: testdata/<case>.json hold RenderChildren's output (a JSON array, dump(2)) for
// the cases below. After an intended change, regenerate them and review the diff by eye:
//   TESSERA_UPDATE_GOLDEN=1 build/render/src/workspaces/operator/ws_render_test
// The targeted tests further down check the properties that matter one by one, so a wrong
// golden cannot hide them.
namespace tessera::workspaces {
namespace {

using ::testing::HasSubstr;

namespace fs = std::filesystem;
using nlohmann::json;

json WorkspaceJson(const std::string& name = "alice") {
  return {{"apiVersion", kApiVersion},
          {"kind", "Workspace"},
          {"metadata", {{"name", name}, {"namespace", "team-a"}, {"uid", "uid-" + name}}},
          {"spec", {{"owner", "alice@example.com"}}}};
}

json DefaultTemplateJson() {
  return json::parse(R"({
    "apiVersion": "workspaces.tessera.dev/v1alpha1", "kind": "WorkspaceTemplate",
    "metadata": {"name": "default", "namespace": "team-a"},
    "spec": {"image": "codercom/code-server:4.96.4"}
  })");
}

json FullTemplateJson() {
  return json::parse(R"({
    "apiVersion": "workspaces.tessera.dev/v1alpha1", "kind": "WorkspaceTemplate",
    "metadata": {"name": "gpu-team", "namespace": "team-a"},
    "spec": {
      "image": "registry.example.com/ide:3",
      "resources": {"cpu": "4", "memory": "16Gi", "gpus": 1},
      "rayImage": "rayproject/ray:2.41.0-py311-cu121",
      "initCommands": ["pip install --user -r ~/requirements.txt",
                       "git config --global pull.rebase true"],
      "extensions": ["ms-python.python", "ms-toolsai.jupyter@2024.11.0"],
      "env": [{"name": "PIP_INDEX_URL", "value": "https://pypi.example.com/simple"},
              {"name": "TEAM", "value": "gpu"}],
      "extraContainers": [{"name": "docs", "image": "registry.example.com/docs:1",
                           "ports": [{"containerPort": 8081}]}]
    }
  })");
}

json FullWorkspaceJson() {
  json ws = WorkspaceJson("bob");
  ws["spec"] = json::parse(R"({
    "owner": "bob@example.com", "template": "gpu-team", "image": "registry.example.com/ide:4",
    "resources": {"gpus": 2},
    "ray": {"enabled": true, "workers": {"replicas": 2, "minReplicas": 1, "maxReplicas": 8,
            "cpu": "8", "memory": "32Gi", "gpus": 1}},
    "home": {"size": "100Gi", "storageClassName": "fast-ssd"},
    "idleTimeout": "4h"})");
  return ws;
}

Workspace ParseWs(const json& j) {
  absl::StatusOr<Workspace> ws = ParseWorkspace(j);
  EXPECT_TRUE(ws.ok()) << ws.status();
  return ws.ok() ? *ws : Workspace{};
}

WorkspaceTemplate ParseTmpl(const json& j) {
  absl::StatusOr<WorkspaceTemplate> t = ParseWorkspaceTemplate(j);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : WorkspaceTemplate{};
}

std::vector<json> Render(const json& ws, const json& tmpl, const RenderOptions& options = {}) {
  absl::StatusOr<std::vector<json>> children =
      RenderChildren(ParseWs(ws), ParseTmpl(tmpl), options);
  EXPECT_TRUE(children.ok()) << children.status();
  return children.ok() ? *children : std::vector<json>{};
}

absl::Status RenderError(const json& ws, const json& tmpl) {
  absl::StatusOr<std::vector<json>> children =
      RenderChildren(ParseWs(ws), ParseTmpl(tmpl), RenderOptions{});
  return children.status();
}

const json* Find(const std::vector<json>& children, const std::string& kind) {
  for (const json& c : children) {
    if (c.value("kind", "") == kind) return &c;
  }
  return nullptr;
}

const json& Get(const std::vector<json>& children, const std::string& kind) {
  const json* c = Find(children, kind);
  if (c == nullptr) {
    ADD_FAILURE() << "no " << kind;
    static const json kNull;
    return kNull;
  }
  return *c;
}

const json& IdeContainer(const std::vector<json>& children) {
  return Get(children, "StatefulSet")["spec"]["template"]["spec"]["containers"][0];
}

std::string EnvValue(const json& container, const std::string& name) {
  for (const json& e : container["env"]) {
    if (e["name"] == name) return e["value"].get<std::string>();
  }
  return "<unset>";
}

// ---- Golden files -------------------------------------------------------------------------

struct GoldenCase {
  std::string name;
  json workspace;
  json tmpl;
};

std::vector<GoldenCase> GoldenCases() {
  json stopped = WorkspaceJson();
  stopped["spec"]["stopped"] = true;
  json no_ray = WorkspaceJson();
  no_ray["spec"]["ray"] = {{"enabled", false}};
  return {
      {"minimal", WorkspaceJson(), DefaultTemplateJson()},
      {"gpu_ray_full", FullWorkspaceJson(), FullTemplateJson()},
      {"stopped", stopped, DefaultTemplateJson()},
      {"ray_disabled", no_ray, DefaultTemplateJson()},
  };
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(RenderGoldenTest, MatchesTestdata) {
  const char* update_env = std::getenv("TESSERA_UPDATE_GOLDEN");
  const bool update = update_env != nullptr && std::string(update_env) == "1";
  for (const GoldenCase& c : GoldenCases()) {
    SCOPED_TRACE(c.name);
    const std::string actual = json(Render(c.workspace, c.tmpl)).dump(2) + "\n";
    const fs::path path = fs::path(TESSERA_WS_RENDER_TESTDATA_DIR) / (c.name + ".json");
    if (update) {
      std::ofstream(path, std::ios::binary) << actual;
      continue;
    }
    ASSERT_TRUE(fs::exists(path)) << path
                                  << " is missing; run with TESSERA_UPDATE_GOLDEN=1 to create it";
    EXPECT_EQ(ReadFile(path), actual)
        << "rendered children differ from " << path
        << "; if intended, rerun with TESSERA_UPDATE_GOLDEN=1 and review the diff";
  }
}

TEST(RenderGoldenTest, IsDeterministic) {
  for (const GoldenCase& c : GoldenCases()) {
    EXPECT_EQ(json(Render(c.workspace, c.tmpl)).dump(), json(Render(c.workspace, c.tmpl)).dump())
        << c.name;
  }
}

// ---- Targeted properties ------------------------------------------------------------------

TEST(RenderTest, ChildrenInApplyOrderWithOwnerReferences) {
  std::vector<json> children = Render(WorkspaceJson(), DefaultTemplateJson());
  std::vector<std::string> kinds;
  for (const json& c : children) {
    kinds.push_back(c["kind"]);
    SCOPED_TRACE(c["kind"].get<std::string>());
    EXPECT_EQ(c["metadata"]["name"], "ws-alice");
    EXPECT_EQ(c["metadata"]["namespace"], "team-a");
    ASSERT_EQ(c["metadata"]["ownerReferences"].size(), 1u);
    const json& ref = c["metadata"]["ownerReferences"][0];
    EXPECT_EQ(ref["apiVersion"], "workspaces.tessera.dev/v1alpha1");
    EXPECT_EQ(ref["kind"], "Workspace");
    EXPECT_EQ(ref["name"], "alice");
    EXPECT_EQ(ref["uid"], "uid-alice");
    EXPECT_EQ(ref["controller"], true);
    EXPECT_EQ(ref["blockOwnerDeletion"], true);
    EXPECT_EQ(c["metadata"]["labels"]["app.kubernetes.io/managed-by"], "tessera-operator");
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"AuthorizationPolicy", "Service", "RayCluster",
                                             "StatefulSet", "VirtualService"}));
  EXPECT_EQ(Get(children, "RayCluster")["apiVersion"], "ray.io/v1");
  EXPECT_EQ(Get(children, "VirtualService")["apiVersion"], "networking.istio.io/v1beta1");
  EXPECT_EQ(Get(children, "AuthorizationPolicy")["apiVersion"], "security.istio.io/v1beta1");
  EXPECT_EQ(Get(children, "StatefulSet")["apiVersion"], "apps/v1");
}

TEST(RenderTest, StoppedScalesToZeroKeepsHomeAndSuspendsRay) {
  json ws = WorkspaceJson();
  std::vector<json> running = Render(ws, DefaultTemplateJson());
  EXPECT_EQ(Get(running, "StatefulSet")["spec"]["replicas"], 1);
  EXPECT_EQ(Get(running, "RayCluster")["spec"]["suspend"], false);

  ws["spec"]["stopped"] = true;
  std::vector<json> stopped = Render(ws, DefaultTemplateJson());
  const json& sts = Get(stopped, "StatefulSet")["spec"];
  EXPECT_EQ(sts["replicas"], 0);
  // Retained by the StatefulSet's default policy; the field itself is unknown before 1.23.
  EXPECT_FALSE(sts.contains("persistentVolumeClaimRetentionPolicy"));
  ASSERT_EQ(sts["volumeClaimTemplates"].size(), 1u);
  EXPECT_EQ(sts["volumeClaimTemplates"][0]["metadata"]["name"], "home");
  EXPECT_EQ(Get(stopped, "RayCluster")["spec"]["suspend"], true);
  // Stopping changes nothing else about the cluster, so a restart brings back the same one.
  json a = Get(running, "RayCluster");
  json b = Get(stopped, "RayCluster");
  a["spec"].erase("suspend");
  b["spec"].erase("suspend");
  EXPECT_EQ(a, b);
}

TEST(RenderTest, GpusBecomeLimitsAndTolerations) {
  std::vector<json> children = Render(FullWorkspaceJson(), FullTemplateJson());
  const json& ide = IdeContainer(children);
  EXPECT_EQ(ide["resources"]["limits"]["nvidia.com/gpu"], "2");  // the workspace's override
  EXPECT_EQ(ide["resources"]["requests"]["cpu"], "4");           // the template's
  EXPECT_EQ(ide["resources"]["limits"]["memory"], "16Gi");
  const json& pod = Get(children, "StatefulSet")["spec"]["template"]["spec"];
  ASSERT_TRUE(pod.contains("tolerations"));
  EXPECT_EQ(pod["tolerations"][0]["key"], "nvidia.com/gpu");
  // The init container installs extensions; it gets no GPU.
  EXPECT_FALSE(pod["initContainers"][0]["resources"]["limits"].contains("nvidia.com/gpu"));

  const json& worker = Get(children, "RayCluster")["spec"]["workerGroupSpecs"][0];
  EXPECT_EQ(worker["groupName"], "gpu-workers");
  EXPECT_EQ(worker["replicas"], 2);
  EXPECT_EQ(worker["minReplicas"], 1);
  EXPECT_EQ(worker["maxReplicas"], 8);
  const json& wc = worker["template"]["spec"]["containers"][0];
  EXPECT_EQ(wc["resources"]["limits"]["nvidia.com/gpu"], "1");
  EXPECT_EQ(wc["resources"]["limits"]["cpu"], "8");
  EXPECT_EQ(worker["template"]["spec"]["tolerations"][0]["key"], "nvidia.com/gpu");

  std::vector<json> cpu_only = Render(WorkspaceJson(), DefaultTemplateJson());
  EXPECT_FALSE(IdeContainer(cpu_only)["resources"]["limits"].contains("nvidia.com/gpu"));
  EXPECT_FALSE(Get(cpu_only, "StatefulSet")["spec"]["template"]["spec"].contains("tolerations"));
}

TEST(RenderTest, AuthorizationPolicyAdmitsOnlyTheOwnerThroughTheGateway) {
  RenderOptions options;
  options.owner_header = "x-forwarded-email";
  std::vector<json> children = Render(WorkspaceJson(), DefaultTemplateJson(), options);
  const json& spec = Get(children, "AuthorizationPolicy")["spec"];
  EXPECT_EQ(spec["action"], "ALLOW");
  ASSERT_EQ(spec["rules"].size(), 2u);
  const json& owner = spec["rules"][0];
  EXPECT_EQ(owner["when"][0]["key"], "request.headers[x-forwarded-email]");
  EXPECT_EQ(owner["when"][0]["values"], json::array({"alice@example.com"}));
  EXPECT_EQ(owner["from"][0]["source"]["principals"], json::array({options.gateway_principal}));
  const json& culler = spec["rules"][1];
  EXPECT_EQ(culler["from"][0]["source"]["principals"],
            json::array({"cluster.local/ns/tessera-system/sa/tessera-operator"}));
  EXPECT_EQ(culler["to"][0]["operation"]["paths"], json::array({"/healthz"}));
  EXPECT_FALSE(culler.contains("when"));

  // It selects exactly the IDE pods.
  const json& pod_labels = Get(children, "StatefulSet")["spec"]["template"]["metadata"]["labels"];
  for (const auto& [k, v] : spec["selector"]["matchLabels"].items()) {
    EXPECT_EQ(pod_labels[k], v) << k;
  }
  EXPECT_EQ(pod_labels["sidecar.istio.io/inject"], "true");

  options.gateway_principal = "";
  children = Render(WorkspaceJson(), DefaultTemplateJson(), options);
  EXPECT_FALSE(Get(children, "AuthorizationPolicy")["spec"]["rules"][0].contains("from"));
}

TEST(RenderTest, OwnersIstioWouldReadAsPatternsAreRejected) {
  for (const char* owner : {"*", "*@example.com", "alice@*", " alice", "alice\n"}) {
    json ws = WorkspaceJson();
    ws["spec"]["owner"] = owner;
    absl::Status s = RenderError(ws, DefaultTemplateJson());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << owner;
  }
}

TEST(RenderTest, RayAddressAndEnvironment) {
  std::vector<json> children = Render(FullWorkspaceJson(), FullTemplateJson());
  const json& ide = IdeContainer(children);
  EXPECT_EQ(EnvValue(ide, "RAY_ADDRESS"), "http://ws-bob-head-svc:8265");
  EXPECT_EQ(EnvValue(ide, "WORKSPACE_OWNER"), "bob@example.com");
  EXPECT_EQ(EnvValue(ide, "TESSERA_URL"), "http://tessera-features.tessera.svc:8080");
  EXPECT_EQ(EnvValue(ide, "PIP_INDEX_URL"), "https://pypi.example.com/simple");
  EXPECT_EQ(EnvValue(ide, "HOME"), "/home/coder");
  EXPECT_EQ(RayHeadServiceName(ParseWs(FullWorkspaceJson())), "ws-bob-head-svc");
  // The head exposes the dashboard port RAY_ADDRESS points at.
  const json& head =
      Get(children, "RayCluster")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(head["name"], "ray-head");
  EXPECT_EQ(head["image"], "rayproject/ray:2.41.0-py311-cu121");
  EXPECT_EQ(head["ports"][1]["containerPort"], 8265);
  EXPECT_EQ(Get(children, "RayCluster")["spec"]["rayVersion"], "2.41.0");
  EXPECT_EQ(Get(children, "RayCluster")["spec"]["enableInTreeAutoscaling"], true);

  json no_ray = WorkspaceJson();
  no_ray["spec"]["ray"] = {{"enabled", false}};
  std::vector<json> plain = Render(no_ray, DefaultTemplateJson());
  EXPECT_EQ(Find(plain, "RayCluster"), nullptr);
  EXPECT_EQ(EnvValue(IdeContainer(plain), "RAY_ADDRESS"), "<unset>");
  EXPECT_EQ(plain.size(), 4u);
}

TEST(RenderTest, DefaultRayImageAndTemplateTesseraUrl) {
  json tmpl = DefaultTemplateJson();
  tmpl["spec"]["env"] = json::array({{{"name", "TESSERA_URL"}, {"value", "http://mine:1"}}});
  std::vector<json> children = Render(WorkspaceJson(), tmpl);
  EXPECT_EQ(EnvValue(IdeContainer(children), "TESSERA_URL"), "http://mine:1");
  size_t n = 0;
  for (const json& e : IdeContainer(children)["env"]) n += e["name"] == "TESSERA_URL";
  EXPECT_EQ(n, 1u);  // server-side apply rejects duplicate env names
  const json& head =
      Get(children, "RayCluster")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(head["image"], RenderOptions{}.default_ray_image);
}

TEST(RenderTest, TemplateEnvAndContainersThatWouldClashAreRejected) {
  for (const char* name : {"HOME", "WORKSPACE_OWNER", "RAY_ADDRESS"}) {
    json tmpl = DefaultTemplateJson();
    tmpl["spec"]["env"] = json::array({{{"name", name}, {"value", "x"}}});
    EXPECT_EQ(RenderError(WorkspaceJson(), tmpl).code(), absl::StatusCode::kInvalidArgument)
        << name;
  }
  json dup = DefaultTemplateJson();
  dup["spec"]["env"] =
      json::array({{{"name", "A"}, {"value", "1"}}, {{"name", "A"}, {"value", "2"}}});
  EXPECT_EQ(RenderError(WorkspaceJson(), dup).code(), absl::StatusCode::kInvalidArgument);
  for (const char* name : {"ide", "init"}) {
    json tmpl = DefaultTemplateJson();
    tmpl["spec"]["extraContainers"] = json::array({{{"name", name}, {"image", "x"}}});
    EXPECT_EQ(RenderError(WorkspaceJson(), tmpl).code(), absl::StatusCode::kInvalidArgument)
        << name;
  }
}

TEST(RenderTest, PathPrefixRoutesAndUrl) {
  Workspace ws = ParseWs(WorkspaceJson());
  EXPECT_EQ(PathPrefix(ws), "/ws/team-a/alice/");
  RenderOptions options;
  options.base_url = "https://ide.corp.example";
  EXPECT_EQ(WorkspaceUrl(ws, options), "https://ide.corp.example/ws/team-a/alice/");
  options.gateway = "istio-ingress/corp-gw";
  options.host = "ide.corp.example";
  std::vector<json> children = Render(WorkspaceJson(), DefaultTemplateJson(), options);
  const json& vs = Get(children, "VirtualService")["spec"];
  EXPECT_EQ(vs["gateways"], json::array({"istio-ingress/corp-gw"}));
  EXPECT_EQ(vs["hosts"], json::array({"ide.corp.example"}));
  const json& route = vs["http"][1];
  EXPECT_EQ(route["match"][0]["uri"]["prefix"], "/ws/team-a/alice/");
  EXPECT_EQ(route["rewrite"]["uri"], "/");
  EXPECT_EQ(route["route"][0]["destination"]["host"], "ws-alice.team-a.svc.cluster.local");
  EXPECT_EQ(route["route"][0]["destination"]["port"]["number"], 80);
  EXPECT_FALSE(route.contains("timeout"));  // websockets live for hours
  EXPECT_EQ(vs["http"][0]["match"][0]["uri"]["exact"], "/ws/team-a/alice");
  EXPECT_EQ(vs["http"][0]["redirect"]["uri"], "/ws/team-a/alice/");
  // code-server learns its base path; the Service forwards 80 to its port.
  const json& args = IdeContainer(children)["args"];
  EXPECT_NE(std::find(args.begin(), args.end(), "/ws/team-a/alice"), args.end());
  const json& port = Get(children, "Service")["spec"]["ports"][0];
  EXPECT_EQ(port["name"], "http");
  EXPECT_EQ(port["port"], 80);
  EXPECT_EQ(port["targetPort"], 8080);
  EXPECT_EQ(IdeContainer(children)["readinessProbe"]["httpGet"]["path"], "/healthz");
}

TEST(RenderTest, SelectorsMatchPodLabels) {
  std::vector<json> children = Render(WorkspaceJson(), DefaultTemplateJson());
  const json& sts = Get(children, "StatefulSet")["spec"];
  const json& labels = sts["template"]["metadata"]["labels"];
  EXPECT_EQ(sts["selector"]["matchLabels"], Get(children, "Service")["spec"]["selector"]);
  for (const auto& [k, v] : sts["selector"]["matchLabels"].items()) EXPECT_EQ(labels[k], v);
  EXPECT_EQ(labels["app.kubernetes.io/name"], "tessera-workspace");
  EXPECT_EQ(labels["app.kubernetes.io/instance"], "alice");
  EXPECT_EQ(labels["workspaces.tessera.dev/owner"], OwnerLabelValue("alice@example.com"));
  EXPECT_EQ(sts["serviceName"], "ws-alice");
  // The owner is not in the (immutable) selector.
  EXPECT_FALSE(sts["selector"]["matchLabels"].contains("workspaces.tessera.dev/owner"));
  const json& ray_labels =
      Get(children, "RayCluster")["spec"]["headGroupSpec"]["template"]["metadata"]["labels"];
  EXPECT_EQ(ray_labels["workspaces.tessera.dev/component"], "ray");
  EXPECT_EQ(ray_labels["workspaces.tessera.dev/workspace"], "alice");
  // Neither the Ray pods nor the children's own labels (in case a controller copies them onto
  // its pods) match the IDE selector.
  auto matches_ide = [&](const json& l) {
    for (const auto& [k, v] : sts["selector"]["matchLabels"].items()) {
      if (!l.contains(k) || l[k] != v) return false;
    }
    return true;
  };
  EXPECT_FALSE(matches_ide(ray_labels));
  for (const json& c : children) EXPECT_FALSE(matches_ide(c["metadata"]["labels"])) << c["kind"];
  EXPECT_TRUE(matches_ide(labels));
}

TEST(RenderTest, InitContainerRunsCommandsInOrderThenInstallsExtensions) {
  std::vector<json> children = Render(FullWorkspaceJson(), FullTemplateJson());
  const json& pod = Get(children, "StatefulSet")["spec"]["template"]["spec"];
  ASSERT_EQ(pod["initContainers"].size(), 1u);
  const json& init = pod["initContainers"][0];
  EXPECT_EQ(init["command"][0], "sh");
  EXPECT_EQ(init["command"][1], "-c");
  EXPECT_EQ(init["command"][2],
            "set -e\n"
            "pip install --user -r ~/requirements.txt\n"
            "git config --global pull.rebase true\n"
            "code-server --install-extension 'ms-python.python' --install-extension "
            "'ms-toolsai.jupyter@2024.11.0'\n");
  EXPECT_EQ(init["image"], "registry.example.com/ide:4");
  EXPECT_EQ(init["volumeMounts"][0]["mountPath"], "/home/coder");
  ASSERT_EQ(pod["containers"].size(), 3u);  // the IDE, the activity agent, the template's sidecar
  EXPECT_EQ(pod["containers"][1]["name"], "activity");
  EXPECT_EQ(pod["containers"][2], FullTemplateJson()["spec"]["extraContainers"][0]);
  EXPECT_EQ(pod["securityContext"]["fsGroup"], 1000);
  EXPECT_EQ(pod["securityContext"]["runAsNonRoot"], true);

  std::vector<json> plain = Render(WorkspaceJson(), DefaultTemplateJson());
  EXPECT_FALSE(Get(plain, "StatefulSet")["spec"]["template"]["spec"].contains("initContainers"));
}

TEST(RenderTest, ActivityAgentSidecarSharesTheProcessNamespaceAndOnlyTheOperatorReachesIt) {
  std::vector<json> children = Render(FullWorkspaceJson(), FullTemplateJson());  // with GPUs
  const json& pod = Get(children, "StatefulSet")["spec"]["template"]["spec"];
  EXPECT_EQ(pod["shareProcessNamespace"], true);
  const json& ide = pod["containers"][0];
  const json& agent = pod["containers"][1];
  EXPECT_EQ(agent["command"], json::array({"tessera"}));
  EXPECT_EQ(agent["args"], json::array({"ws", "agent", "--listen", "0.0.0.0:8090", "--gpu-file",
                                        "/run/tessera/gpu"}));
  EXPECT_EQ(agent["securityContext"], ide["securityContext"]);  // the same user reads /proc
  // With GPUs the IDE reports nvidia-smi's reading for the agent, then execs code-server.
  EXPECT_EQ(ide["command"], json::array({"sh"}));
  EXPECT_THAT(ide["args"][1].get<std::string>(), HasSubstr("nvidia-smi"));
  EXPECT_THAT(ide["args"][1].get<std::string>(), HasSubstr("exec code-server \"$@\""));
  // Only the operator's identity may read /activity and post /notice on the agent's port.
  const json& rules = Get(children, "AuthorizationPolicy")["spec"]["rules"];
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].value("to", json()), json());  // the owner's rule: via the gateway only
  const json& culler = rules[1];
  EXPECT_EQ(culler["to"].size(), 3u);
  EXPECT_EQ(culler["to"][1]["operation"]["ports"], json::array({"8090"}));
  EXPECT_EQ(Get(children, "Service")["spec"]["ports"][1]["port"], 8090);

  // Without GPUs: code-server directly, no GPU file.
  std::vector<json> plain = Render(WorkspaceJson(), DefaultTemplateJson());
  const json& plain_pod = Get(plain, "StatefulSet")["spec"]["template"]["spec"];
  EXPECT_EQ(plain_pod["containers"][0]["command"], json::array({"code-server"}));
  EXPECT_EQ(plain_pod["containers"][1]["args"].size(), 4u);

  // No agent image: no sidecar, no shared namespace, no extra port or rule.
  RenderOptions options;
  options.agent_image = "";
  std::vector<json> bare = Render(FullWorkspaceJson(), FullTemplateJson(), options);
  const json& bare_pod = Get(bare, "StatefulSet")["spec"]["template"]["spec"];
  EXPECT_FALSE(bare_pod.contains("shareProcessNamespace"));
  EXPECT_EQ(bare_pod["containers"].size(), 2u);
  EXPECT_EQ(bare_pod["containers"][0]["command"], json::array({"code-server"}));
  EXPECT_EQ(Get(bare, "Service")["spec"]["ports"].size(), 1u);
  EXPECT_EQ(Get(bare, "AuthorizationPolicy")["spec"]["rules"][1]["to"].size(), 1u);
}

TEST(RenderTest, HomeVolumeFromSpec) {
  std::vector<json> children = Render(FullWorkspaceJson(), FullTemplateJson());
  const json& vct = Get(children, "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"];
  EXPECT_EQ(vct["resources"]["requests"]["storage"], "100Gi");
  EXPECT_EQ(vct["storageClassName"], "fast-ssd");
  std::vector<json> plain = Render(WorkspaceJson(), DefaultTemplateJson());
  const json& d = Get(plain, "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"];
  EXPECT_EQ(d["resources"]["requests"]["storage"], "20Gi");
  EXPECT_FALSE(d.contains("storageClassName"));
}

TEST(RenderTest, NamesTooLongForTheirChildrenAreRejected) {
  json no_ray = WorkspaceJson(std::string(49, 'a'));
  no_ray["spec"]["ray"] = {{"enabled", false}};
  EXPECT_EQ(Render(no_ray, DefaultTemplateJson()).size(), 4u);
  no_ray["metadata"]["name"] = std::string(50, 'a');
  absl::Status s = RenderError(no_ray, DefaultTemplateJson());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(StatusMessage(s).find("49"), std::string::npos) << s;

  EXPECT_EQ(Render(WorkspaceJson(std::string(38, 'b')), DefaultTemplateJson()).size(), 5u);
  s = RenderError(WorkspaceJson(std::string(39, 'b')), DefaultTemplateJson());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(StatusMessage(s).find("ray.enabled"), std::string::npos) << s;

  Workspace ws = ParseWs(WorkspaceJson());
  WorkspaceTemplate tmpl = ParseTmpl(DefaultTemplateJson());
  ws.metadata.uid.clear();
  EXPECT_EQ(RenderChildren(ws, tmpl, {}).status().code(), absl::StatusCode::kInvalidArgument);
  ws = ParseWs(WorkspaceJson());
  ws.metadata.namespace_.clear();
  EXPECT_EQ(RenderChildren(ws, tmpl, {}).status().code(), absl::StatusCode::kInvalidArgument);
  ws = ParseWs(WorkspaceJson());
  ws.metadata.name = "Not_A_Label";
  EXPECT_EQ(RenderChildren(ws, tmpl, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RenderTest, OwnerLabelValues) {
  const std::regex label("([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]");
  EXPECT_EQ(OwnerLabelValue("alice"), "alice");
  EXPECT_EQ(OwnerLabelValue("alice.smith_1"), "alice.smith_1");
  const std::string email = OwnerLabelValue("alice@example.com");
  EXPECT_TRUE(std::regex_match(email, std::regex("alice_example\\.com-[0-9a-f]{8}"))) << email;
  EXPECT_NE(email, OwnerLabelValue("alice@example_com"));  // same sanitized text, other owner
  for (const std::string& owner :
       {std::string(253, 'x') + "@example.com", std::string("@@@"), std::string("-a-"),
        std::string("ünïcödé@example.com"), std::string(63, 'y') + "z"}) {
    const std::string v = OwnerLabelValue(owner);
    EXPECT_LE(v.size(), 63u) << owner;
    EXPECT_TRUE(std::regex_match(v, label)) << owner << " -> " << v;
    EXPECT_EQ(v, OwnerLabelValue(owner));
  }
}

TEST(RenderTest, RayVersionOnlyFromVersionedTags) {
  json tmpl = DefaultTemplateJson();
  tmpl["spec"]["rayImage"] = "registry:5000/ray/custom:latest";
  std::vector<json> children = Render(WorkspaceJson(), tmpl);
  EXPECT_FALSE(Get(children, "RayCluster")["spec"].contains("rayVersion"));
  EXPECT_EQ(
      Get(children,
          "RayCluster")["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"],
      "registry:5000/ray/custom:latest");
}

TEST(RenderTest, HeadRunsTasksOnlyWhenNoWorkerCanExist) {
  std::vector<json> children = Render(WorkspaceJson(), DefaultTemplateJson());
  EXPECT_EQ(Get(children, "RayCluster")["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"],
            "0");
  json ws = WorkspaceJson();
  ws["spec"]["ray"] = {{"workers", {{"maxReplicas", 0}}}};
  children = Render(ws, DefaultTemplateJson());
  const json& params = Get(children, "RayCluster")["spec"]["headGroupSpec"]["rayStartParams"];
  EXPECT_FALSE(params.contains("num-cpus"));
  EXPECT_EQ(params["dashboard-host"], "0.0.0.0");
}

}  // namespace
}  // namespace tessera::workspaces
