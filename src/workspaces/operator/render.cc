#include "workspaces/operator/render.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <utility>

#include "common/errors.h"
#include "common/status_macros.h"

namespace tessera::workspaces {
namespace {

using nlohmann::json;

constexpr char kGpuResource[] = "nvidia.com/gpu";
constexpr char kHomeVolume[] = "home";
constexpr char kHomeDir[] = "/home/coder";
constexpr char kIdeContainer[] = "ide";
constexpr char kInitContainer[] = "init";
constexpr char kRayWorkerGroup[] = "gpu-workers";
constexpr int kUserId = 1000;  // code-server images run as "coder" (1000), Ray images as "ray"
constexpr int kRayDashboardPort = 8265;

// The StatefulSet controller labels pods controller-revision-hash={name}-{hash of up to 10
// characters}; label values are at most 63 characters.
constexpr size_t kMaxStatefulSetName = 52;
// KubeRay passes Service names through CheckName, which cuts names longer than 50 characters
// from the front, and limits RayCluster names to 53 characters.
constexpr size_t kMaxKubeRayServiceName = 50;

uint32_t Fnv1a32(std::string_view s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsLabelValue(std::string_view v) {
  if (v.size() > 63) return false;
  if (v.empty()) return true;
  if (!IsAlnum(v.front()) || !IsAlnum(v.back())) return false;
  return std::all_of(v.begin(), v.end(),
                     [](char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

// Istio matches AuthorizationPolicy `when` values exactly unless they contain '*' (prefix,
// suffix or presence match), so an owner with '*' would admit other users.
absl::Status CheckOwner(const Workspace& ws) {
  const std::string& owner = ws.spec.owner;
  if (owner.empty()) {
    return InvalidArgument("Workspace {}/{}: spec.owner is empty", ws.metadata.namespace_,
                           ws.metadata.name);
  }
  for (char c : owner) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '*' || u < 0x20 || u == 0x7f) {
      return InvalidArgument(
          "Workspace {}/{}: spec.owner \"{}\" contains '*' or a control character; the "
          "AuthorizationPolicy must match the owner exactly",
          ws.metadata.namespace_, ws.metadata.name, owner);
    }
  }
  if (owner.front() == ' ' || owner.back() == ' ') {
    return InvalidArgument(
        "Workspace {}/{}: spec.owner \"{}\" has leading or trailing blanks (header values are "
        "trimmed, so it could never match)",
        ws.metadata.namespace_, ws.metadata.name, owner);
  }
  return absl::OkStatus();
}

absl::Status CheckNames(const Workspace& ws) {
  const ObjectMeta& m = ws.metadata;
  if (m.namespace_.empty()) return InvalidArgument("Workspace {}: no metadata.namespace", m.name);
  if (m.uid.empty()) {
    return InvalidArgument("Workspace {}/{}: no metadata.uid (children need it as owner)",
                           m.namespace_, m.name);
  }
  const std::string child = WorkspaceChildName(ws);
  if (!IsDnsLabel(m.name) || !IsDnsLabel(child) || child.size() > kMaxStatefulSetName) {
    return InvalidArgument(
        "Workspace {}/{}: the name must be a DNS label of at most {} characters (its "
        "StatefulSet \"{}\" labels pods with its name plus a hash, at most 63 characters)",
        m.namespace_, m.name, kMaxStatefulSetName - 3, child);
  }
  if (ws.spec.ray.enabled && RayHeadServiceName(ws).size() > kMaxKubeRayServiceName) {
    return InvalidArgument(
        "Workspace {}/{}: with Ray the name must have at most {} characters (KubeRay truncates "
        "the head Service name \"{}\" beyond {}); rename it or set spec.ray.enabled: false",
        m.namespace_, m.name, kMaxKubeRayServiceName - 12, RayHeadServiceName(ws),
        kMaxKubeRayServiceName);
  }
  return absl::OkStatus();
}

json OwnerReference(const Workspace& ws) {
  return {{"apiVersion", kApiVersion}, {"kind", "Workspace"}, {"name", ws.metadata.name},
          {"uid", ws.metadata.uid},    {"controller", true},  {"blockOwnerDeletion", true}};
}

// Labels of the children themselves (list them with workspaces.tessera.dev/workspace={name}).
// Not the IDE pods' selector pair: should a controller copy its object's labels onto its pods
// (KubeRay, say), those pods must not join the IDE's Service.
json ObjectLabels(const Workspace& ws) {
  return {{kPartOfLabel, kWorkspaceAppName},
          {kManagedByLabel, kManagedBy},
          {kWorkspaceLabel, ws.metadata.name},
          {kOwnerLabel, OwnerLabelValue(ws.spec.owner)}};
}

json Metadata(const Workspace& ws) {
  return {{"name", WorkspaceChildName(ws)},
          {"namespace", ws.metadata.namespace_},
          {"labels", ObjectLabels(ws)},
          {"ownerReferences", json::array({OwnerReference(ws)})}};
}

json Object(const char* api_version, const char* kind, const Workspace& ws, json spec) {
  return {{"apiVersion", api_version},
          {"kind", kind},
          {"metadata", Metadata(ws)},
          {"spec", std::move(spec)}};
}

// requests == limits for cpu and memory; GPUs as limits (requests default to them).
json Resources(const std::string& cpu, const std::string& memory, int gpus) {
  json requests = json::object();
  if (!cpu.empty()) requests["cpu"] = cpu;
  if (!memory.empty()) requests["memory"] = memory;
  json limits = requests;
  if (gpus > 0) limits[kGpuResource] = fmt::format("{}", gpus);
  json r = json::object();
  if (!requests.empty()) r["requests"] = requests;
  if (!limits.empty()) r["limits"] = limits;
  return r;
}

json GpuTolerations() {
  return json::array({{{"key", kGpuResource}, {"operator", "Exists"}, {"effect", "NoSchedule"}}});
}

json ContainerSecurityContext() {
  return {{"allowPrivilegeEscalation", false}, {"capabilities", {{"drop", json::array({"ALL"})}}}};
}

json EnvEntry(const std::string& name, const std::string& value) {
  return {{"name", name}, {"value", value}};
}

// The operator's variables first, so template values can refer to them as $(NAME).
absl::StatusOr<json> IdeEnv(const Workspace& ws, const WorkspaceTemplate& tmpl,
                            const RenderOptions& options) {
  static const std::set<std::string> kReserved = {"HOME", "WORKSPACE_OWNER", "RAY_ADDRESS"};
  std::set<std::string> seen;
  bool template_sets_tessera_url = false;
  for (const EnvVar& e : tmpl.spec.env) {
    if (kReserved.contains(e.name)) {
      return InvalidArgument(
          "WorkspaceTemplate {}/{}: spec.env sets {}, which the operator sets for every "
          "workspace",
          tmpl.metadata.namespace_, tmpl.metadata.name, e.name);
    }
    if (!seen.insert(e.name).second) {
      return InvalidArgument("WorkspaceTemplate {}/{}: spec.env sets {} twice",
                             tmpl.metadata.namespace_, tmpl.metadata.name, e.name);
    }
    if (e.name == "TESSERA_URL") template_sets_tessera_url = true;
  }
  json env = json::array();
  env.push_back(EnvEntry("HOME", kHomeDir));
  env.push_back(EnvEntry("WORKSPACE_OWNER", ws.spec.owner));
  if (ws.spec.ray.enabled) {
    env.push_back(EnvEntry("RAY_ADDRESS",
                           fmt::format("http://{}:{}", RayHeadServiceName(ws), kRayDashboardPort)));
  }
  if (!template_sets_tessera_url)
    env.push_back(EnvEntry("TESSERA_URL", options.tessera_features_url));
  for (const EnvVar& e : tmpl.spec.env) env.push_back(EnvEntry(e.name, e.value));
  return env;
}

// Extension ids are checked by the API (letters, digits, '.', '-', '@', '+'); quoted anyway.
std::string InitScript(const WorkspaceTemplateSpec& t) {
  std::string script = "set -e\n";
  for (const std::string& command : t.init_commands) {
    script += command;
    script += '\n';
  }
  if (!t.extensions.empty()) {
    script += "code-server";
    for (const std::string& ext : t.extensions) {
      script += fmt::format(" --install-extension '{}'", ext);
    }
    script += '\n';
  }
  return script;
}

json HomeMount() { return json::array({{{"name", kHomeVolume}, {"mountPath", kHomeDir}}}); }

// The IDE writes its busiest GPU's utilization here for the agent (a shared emptyDir).
constexpr char kRunVolume[] = "tessera-run";
constexpr char kRunDir[] = "/run/tessera";
constexpr char kAgentContainer[] = "activity";

// code-server, preceded (with GPUs and the agent) by a loop reporting GPU utilization: the GPU
// cannot be shared with the agent's container, but nvidia-smi runs in the IDE's.
json IdeCommand(const std::vector<std::string>& code_server_args, bool gpu_loop) {
  if (!gpu_loop) {
    json args = json::array();
    for (const std::string& a : code_server_args) args.push_back(a);
    return json{{"command", json::array({"code-server"})}, {"args", args}};
  }
  json args = json::array(
      {"-c",
       fmt::format("(while :; do nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,"
                   "nounits 2>/dev/null | sort -n | tail -n 1 > {0}/gpu.tmp && mv {0}/gpu.tmp "
                   "{0}/gpu; sleep 15; done) & exec code-server \"$@\"",
                   kRunDir),
       "code-server"});
  for (const std::string& a : code_server_args) args.push_back(a);
  return json{{"command", json::array({"sh"})}, {"args", args}};
}

json IdePodLabels(const Workspace& ws) {
  json labels = ObjectLabels(ws);
  labels.update(IdePodSelector(ws));
  labels[kComponentLabel] = "ide";
  // The AuthorizationPolicy is enforced by the sidecar: without one the IDE would be open.
  labels["sidecar.istio.io/inject"] = "true";
  return labels;
}

absl::StatusOr<json> RenderStatefulSet(const Workspace& ws, const WorkspaceTemplate& tmpl,
                                       const EffectiveSpec& eff, const RenderOptions& options) {
  TESSERA_ASSIGN_OR_RETURN(json env, IdeEnv(ws, tmpl, options));
  std::string base_path = PathPrefix(ws);
  base_path.pop_back();  // code-server wants it without the trailing slash
  const bool agent = !options.agent_image.empty();
  const json command =
      IdeCommand({"--bind-addr", fmt::format("0.0.0.0:{}", options.code_server_port), "--auth",
                  "none", "--disable-telemetry", "--disable-update-check", "--abs-proxy-base-path",
                  base_path, kHomeDir},
                 agent && eff.gpus > 0);
  json mounts = HomeMount();
  if (agent) mounts.push_back({{"name", kRunVolume}, {"mountPath", kRunDir}});
  json ide = {
      {"name", kIdeContainer},
      {"image", eff.image},
      {"command", command["command"]},
      {"args", command["args"]},
      {"env", env},
      {"ports", json::array({{{"name", options.code_server_port_name},
                              {"containerPort", options.code_server_port},
                              {"protocol", "TCP"}}})},
      {"readinessProbe",
       {{"httpGet", {{"path", "/healthz"}, {"port", options.code_server_port}}},
        {"periodSeconds", 10},
        {"failureThreshold", 3}}},
      {"resources", Resources(eff.cpu, eff.memory, eff.gpus)},
      {"securityContext", ContainerSecurityContext()},
      {"volumeMounts", mounts},
      {"workingDir", kHomeDir},
  };

  std::set<std::string> names = {kIdeContainer, kInitContainer};
  if (agent) names.insert(kAgentContainer);
  json containers = json::array({ide});
  if (agent) {
    // Same user as the IDE: it reads the IDE's processes in the shared process namespace.
    json agent_args =
        json::array({"ws", "agent", "--listen", fmt::format("0.0.0.0:{}", options.agent_port)});
    if (eff.gpus > 0) {
      agent_args.push_back("--gpu-file");
      agent_args.push_back(fmt::format("{}/gpu", kRunDir));
    }
    containers.push_back({
        {"name", kAgentContainer},
        {"image", options.agent_image},
        {"command", json::array({"tessera"})},
        {"args", agent_args},
        {"ports",
         json::array(
             {{{"name", "activity"}, {"containerPort", options.agent_port}, {"protocol", "TCP"}}})},
        // No readiness probe: an agent that is down must not take the IDE out of its Service
        // (the operator then just cannot read its signals, and does not cull).
        {"resources",
         {{"requests", {{"cpu", "10m"}, {"memory", "16Mi"}}},
          {"limits", {{"cpu", "100m"}, {"memory", "64Mi"}}}}},
        {"securityContext", ContainerSecurityContext()},
        {"volumeMounts", json::array({{{"name", kRunVolume}, {"mountPath", kRunDir}}})},
    });
  }
  for (const json& extra : tmpl.spec.extra_containers) {
    const std::string name = extra.value("name", "");
    if (!names.insert(name).second) {
      return InvalidArgument(
          "WorkspaceTemplate {}/{}: extraContainers name \"{}\" is repeated or reserved (ide, "
          "init, and activity when the agent runs)",
          tmpl.metadata.namespace_, tmpl.metadata.name, name);
    }
    containers.push_back(extra);  // verbatim: the template author owns the sidecar
  }

  json pod = {
      // User code runs here: no Kubernetes API credentials, no service-link env clutter.
      {"automountServiceAccountToken", false},
      {"enableServiceLinks", false},
      {"securityContext",
       {{"runAsNonRoot", true},
        {"runAsUser", kUserId},
        {"runAsGroup", kUserId},
        {"fsGroup", kUserId},
        {"fsGroupChangePolicy", "OnRootMismatch"},
        {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
      {"containers", containers},
  };
  if (agent) {
    // The agent sees the IDE's processes (terminals, CPU time) through one process namespace.
    pod["shareProcessNamespace"] = true;
    pod["volumes"] = json::array(
        {{{"name", kRunVolume}, {"emptyDir", {{"medium", "Memory"}, {"sizeLimit", "1Mi"}}}}});
  }
  if (!tmpl.spec.init_commands.empty() || !tmpl.spec.extensions.empty()) {
    // Same image (it has code-server), env and home volume as the IDE; no GPUs needed.
    pod["initContainers"] = json::array({{
        {"name", kInitContainer},
        {"image", eff.image},
        {"command", json::array({"sh", "-c", InitScript(tmpl.spec)})},
        {"env", env},
        {"resources", Resources(eff.cpu, eff.memory, 0)},
        {"securityContext", ContainerSecurityContext()},
        {"volumeMounts", HomeMount()},
        {"workingDir", kHomeDir},
    }});
  }
  if (eff.gpus > 0) pod["tolerations"] = GpuTolerations();

  json pvc_spec = {{"accessModes", json::array({"ReadWriteOnce"})},
                   {"resources", {{"requests", {{"storage", ws.spec.home.size}}}}}};
  if (!ws.spec.home.storage_class_name.empty()) {
    pvc_spec["storageClassName"] = ws.spec.home.storage_class_name;
  }

  json spec = {
      {"replicas", ws.spec.stopped ? 0 : 1},
      {"serviceName", WorkspaceChildName(ws)},
      {"selector", {{"matchLabels", IdePodSelector(ws)}}},
      // Stopping scales to 0 and keeps the home volume; deleting the StatefulSet keeps it too:
      // a StatefulSet deleted by hand is recreated by the operator and finds the user's files.
      // Deleting the Workspace deletes the volume (the operator's finalizer, once the pod is
      // gone). That is the StatefulSet's default on every version (1.23+ defaults
      // persistentVolumeClaimRetentionPolicy to Retain/Retain; older servers have no such field
      // and always retain), so the field is not sent: a 1.20–1.22 server rejects it in an apply.
      {"template",
       {{"metadata",
         {{"labels", IdePodLabels(ws)},
          {"annotations",
           {{"kubectl.kubernetes.io/default-container", kIdeContainer},
            // The proxy starts before the init container, which downloads extensions.
            {"sidecar.istio.io/nativeSidecar", "true"}}}}},
        {"spec", pod}}},
      // Immutable once created; the labels are the (equally immutable) selector's.
      {"volumeClaimTemplates",
       json::array({{{"metadata", {{"name", kHomeVolume}, {"labels", IdePodSelector(ws)}}},
                     {"spec", pvc_spec}}})},
  };
  return Object("apps/v1", "StatefulSet", ws, std::move(spec));
}

json RenderService(const Workspace& ws, const RenderOptions& options) {
  json ports = json::array({{{"name", "http"},
                             {"port", 80},
                             {"targetPort", options.code_server_port},
                             {"protocol", "TCP"},
                             {"appProtocol", "http"}}});
  if (!options.agent_image.empty()) {
    ports.push_back({{"name", "activity"},
                     {"port", options.agent_port},
                     {"targetPort", options.agent_port},
                     {"protocol", "TCP"},
                     {"appProtocol", "http"}});
  }
  return Object("v1", "Service", ws,
                {{"type", "ClusterIP"}, {"selector", IdePodSelector(ws)}, {"ports", ports}});
}

json RenderVirtualService(const Workspace& ws, const RenderOptions& options) {
  const std::string prefix = PathPrefix(ws);
  const std::string host = fmt::format("{}.{}.svc.{}", WorkspaceChildName(ws),
                                       ws.metadata.namespace_, options.cluster_domain);
  // No route timeout: Istio's default is none, which long-lived websockets need.
  json http = json::array({
      {{"name", "add-trailing-slash"},
       {"match", json::array({{{"uri", {{"exact", prefix.substr(0, prefix.size() - 1)}}}}})},
       {"redirect", {{"uri", prefix}}}},
      {{"name", "ide"},
       {"match", json::array({{{"uri", {{"prefix", prefix}}}}})},
       {"rewrite", {{"uri", "/"}}},
       {"route", json::array({{{"destination", {{"host", host}, {"port", {{"number", 80}}}}}}})}},
  });
  return Object("networking.istio.io/v1beta1", "VirtualService", ws,
                {{"gateways", json::array({options.gateway})},
                 {"hosts", json::array({options.host})},
                 {"http", http}});
}

json RenderAuthorizationPolicy(const Workspace& ws, const RenderOptions& options) {
  json owner_rule = {
      {"when", json::array({{{"key", fmt::format("request.headers[{}]", options.owner_header)},
                             {"values", json::array({ws.spec.owner})}}})}};
  if (!options.gateway_principal.empty()) {
    owner_rule["from"] =
        json::array({{{"source", {{"principals", json::array({options.gateway_principal})}}}}});
  }
  // The operator: code-server's heartbeat; the agent's activity and notices.
  json culler_to = json::array(
      {{{"operation", {{"methods", json::array({"GET"})}, {"paths", json::array({"/healthz"})}}}}});
  if (!options.agent_image.empty()) {
    const std::string port = std::to_string(options.agent_port);
    culler_to.push_back({{"operation",
                          {{"ports", json::array({port})},
                           {"methods", json::array({"GET"})},
                           {"paths", json::array({"/activity"})}}}});
    culler_to.push_back({{"operation",
                          {{"ports", json::array({port})},
                           {"methods", json::array({"POST"})},
                           {"paths", json::array({"/notice"})}}}});
  }
  json culler_rule = {
      {"from",
       json::array({{{"source", {{"principals", json::array({options.operator_principal})}}}}})},
      {"to", culler_to}};
  return Object("security.istio.io/v1beta1", "AuthorizationPolicy", ws,
                {{"selector", {{"matchLabels", IdePodSelector(ws)}}},
                 {"action", "ALLOW"},
                 {"rules", json::array({owner_rule, culler_rule})}});
}

// "rayproject/ray:2.40.0-py311-gpu" → "2.40.0"; "" when the tag does not start with x.y.z.
std::string RayVersionFromImage(const std::string& image) {
  const size_t colon = image.rfind(':');
  if (colon == std::string::npos || image.find('/', colon) != std::string::npos) return "";
  const std::string tag = image.substr(colon + 1);
  size_t i = 0;
  int dots = 0;
  while (i < tag.size() && ((tag[i] >= '0' && tag[i] <= '9') || tag[i] == '.')) {
    if (tag[i] == '.') ++dots;
    ++i;
  }
  std::string version = tag.substr(0, i);
  if (dots != 2 || version.front() == '.' || version.back() == '.' ||
      version.find("..") != std::string::npos) {
    return "";
  }
  return version;
}

json RayPodLabels(const Workspace& ws) {
  // KubeRay adds ray.io/* and may override app.kubernetes.io/name, so Tessera's own keys.
  return {{kWorkspaceLabel, ws.metadata.name},
          {kComponentLabel, "ray"},
          {kOwnerLabel, OwnerLabelValue(ws.spec.owner)},
          // Ray's many dynamic ports between its pods do not go through sidecars; the
          // namespace's NetworkPolicies isolate Ray pods instead.
          {"sidecar.istio.io/inject", "false"}};
}

json RayPodSecurityContext() {
  return {{"runAsNonRoot", true},
          {"runAsUser", kUserId},
          {"seccompProfile", {{"type", "RuntimeDefault"}}}};
}

json RenderRayCluster(const Workspace& ws, const EffectiveSpec& eff, const RenderOptions& options) {
  const RayWorkers& w = ws.spec.ray.workers;
  const std::string image = eff.ray_image.empty() ? options.default_ray_image : eff.ray_image;

  json head_params = {{"dashboard-host", "0.0.0.0"}};
  // Tasks go to the workers (a busy head loses the whole cluster); with no workers possible
  // the head has to run them.
  if (w.max_replicas > 0) head_params["num-cpus"] = "0";
  json head_container = {
      {"name", "ray-head"},
      {"image", image},
      {"ports", json::array({{{"name", "gcs-server"}, {"containerPort", 6379}},
                             {{"name", "dashboard"}, {"containerPort", kRayDashboardPort}},
                             {{"name", "client"}, {"containerPort", 10001}}})},
      {"resources", Resources(options.ray_head_cpu, options.ray_head_memory, 0)},
  };
  json head = {
      {"rayStartParams", head_params},
      {"template",
       {{"metadata", {{"labels", RayPodLabels(ws)}}},
        // The head keeps its service account token: KubeRay's autoscaler sidecar needs it.
        {"spec",
         {{"securityContext", RayPodSecurityContext()},
          {"containers", json::array({head_container})}}}}},
  };

  const int worker_gpus = w.resources.gpus.value_or(0);
  json worker_pod = {
      {"automountServiceAccountToken", false},
      {"securityContext", RayPodSecurityContext()},
      {"containers",
       json::array(
           {{{"name", "ray-worker"},
             {"image", image},
             {"resources",
              Resources(w.resources.cpu.empty() ? options.ray_worker_cpu : w.resources.cpu,
                        w.resources.memory.empty() ? options.ray_worker_memory : w.resources.memory,
                        worker_gpus)}}})},
  };
  if (worker_gpus > 0) worker_pod["tolerations"] = GpuTolerations();
  json workers = {
      {"groupName", kRayWorkerGroup},
      {"replicas",
       std::clamp(w.replicas, w.min_replicas, std::max(w.min_replicas, w.max_replicas))},
      {"minReplicas", w.min_replicas},
      {"maxReplicas", w.max_replicas},
      {"rayStartParams", json::object()},
      {"template", {{"metadata", {{"labels", RayPodLabels(ws)}}}, {"spec", worker_pod}}},
  };

  json spec = {
      {"enableInTreeAutoscaling", true},
      // Stopped: KubeRay deletes the head and worker pods and keeps the spec for the restart.
      {"suspend", ws.spec.stopped},
      {"headGroupSpec", head},
      {"workerGroupSpecs", json::array({workers})},
  };
  const std::string version = RayVersionFromImage(image);
  if (!version.empty()) spec["rayVersion"] = version;
  return Object("ray.io/v1", "RayCluster", ws, std::move(spec));
}

}  // namespace

std::string PathPrefix(const Workspace& ws) {
  return fmt::format("/ws/{}/{}/", ws.metadata.namespace_, ws.metadata.name);
}

std::string WorkspaceUrl(const Workspace& ws, const RenderOptions& options) {
  return options.base_url + PathPrefix(ws);
}

std::string WorkspaceChildName(const Workspace& ws) {
  return fmt::format("ws-{}", ws.metadata.name);
}

std::string HomeClaimName(const Workspace& ws) {
  return fmt::format("{}-{}-0", kHomeVolume, WorkspaceChildName(ws));
}

std::string IdePodName(const Workspace& ws) { return WorkspaceChildName(ws) + "-0"; }

std::string RayHeadServiceName(const Workspace& ws) {
  return fmt::format("ws-{}-head-svc", ws.metadata.name);
}

std::string OwnerLabelValue(std::string_view owner) {
  if (IsLabelValue(owner)) return std::string(owner);
  std::string s;
  for (char c : owner) s += (IsAlnum(c) || c == '-' || c == '_' || c == '.') ? c : '_';
  auto trim = [&s] {
    while (!s.empty() && !IsAlnum(s.back())) s.pop_back();
  };
  size_t start = 0;
  while (start < s.size() && !IsAlnum(s[start])) ++start;
  s.erase(0, start);
  trim();
  if (s.size() > 54) s.resize(54);
  trim();
  const std::string hash = fmt::format("{:08x}", Fnv1a32(owner));
  return s.empty() ? hash : fmt::format("{}-{}", s, hash);
}

json IdePodSelector(const Workspace& ws) {
  return {{kAppNameLabel, kWorkspaceAppName}, {kAppInstanceLabel, ws.metadata.name}};
}

absl::StatusOr<std::vector<json>> RenderChildren(const Workspace& ws, const WorkspaceTemplate& tmpl,
                                                 const RenderOptions& options) {
  TESSERA_RETURN_IF_ERROR(CheckNames(ws));
  TESSERA_RETURN_IF_ERROR(CheckOwner(ws));
  if (options.code_server_port <= 0 || options.code_server_port > 65535) {
    return InvalidArgument("RenderOptions: code_server_port {} is not a port",
                           options.code_server_port);
  }
  const EffectiveSpec eff = Resolve(ws.spec, tmpl.spec);
  if (eff.image.empty()) {
    return InvalidArgument("Workspace {}/{}: no IDE image (neither spec.image nor the template's)",
                           ws.metadata.namespace_, ws.metadata.name);
  }
  std::vector<json> children;
  children.push_back(RenderAuthorizationPolicy(ws, options));
  children.push_back(RenderService(ws, options));
  if (ws.spec.ray.enabled) children.push_back(RenderRayCluster(ws, eff, options));
  TESSERA_ASSIGN_OR_RETURN(json sts, RenderStatefulSet(ws, tmpl, eff, options));
  children.push_back(std::move(sts));
  children.push_back(RenderVirtualService(ws, options));
  return children;
}

}  // namespace tessera::workspaces
