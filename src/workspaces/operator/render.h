#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "workspaces/api/workspace.h"

// What a Workspace (with its WorkspaceTemplate) becomes in the cluster: the child objects the
// operator server-side-applies. Pure functions, no I/O: the same inputs always give the same
// objects (nlohmann::json keeps keys sorted), so the output is golden-tested.
//
// The children, in apply order:
//   1. AuthorizationPolicy ws-{name} (security.istio.io/v1beta1): only the owner, as named by the
//      auth proxy's header on requests that came through the ingress gateway, reaches the IDE;
//      the operator's culler may GET /healthz. First, so that no IDE pod ever runs unprotected.
//   2. Service ws-{name}: port 80 → code-server.
//   3. RayCluster ws-{name} (ray.io/v1, only when spec.ray.enabled): suspended when stopped.
//   4. StatefulSet ws-{name}: one code-server pod (0 when stopped) with the home volume.
//   5. VirtualService ws-{name} (networking.istio.io/v1beta1): PathPrefix(ws) on the shared
//      gateway → the Service. Last, so the route appears once everything behind it exists.
// Every child carries an ownerReference to the Workspace (controller, blockOwnerDeletion), so
// deleting the Workspace garbage-collects them.
//
// Identity and access: the IDE runs code-server with --auth none. Authentication is the auth
// proxy's (oauth2-proxy as Istio ext_authz at the gateway, deploy/workspaces/gateway.yaml), which
// overwrites `owner_header` with the signed-in user's e-mail; authorization is the per-workspace
// AuthorizationPolicy, enforced by the Istio sidecar the IDE pod is labelled to get. The pod
// label workspaces.tessera.dev/owner (OwnerLabelValue) is for selection and display only.
namespace tessera::workspaces {

// Label keys. Every child: part-of, managed-by, workspace, owner. IDE pods: those plus name and
// instance (their selector) and component=ide. Ray pods: workspace, owner, component=ray.
inline constexpr char kAppNameLabel[] = "app.kubernetes.io/name";
inline constexpr char kAppInstanceLabel[] = "app.kubernetes.io/instance";
inline constexpr char kManagedByLabel[] = "app.kubernetes.io/managed-by";
inline constexpr char kPartOfLabel[] = "app.kubernetes.io/part-of";
inline constexpr char kOwnerLabel[] = "workspaces.tessera.dev/owner";
inline constexpr char kWorkspaceLabel[] = "workspaces.tessera.dev/workspace";
inline constexpr char kComponentLabel[] = "workspaces.tessera.dev/component";  // "ide" | "ray"
// Values.
inline constexpr char kWorkspaceAppName[] = "tessera-workspace";  // the IDE pods' app name
inline constexpr char kManagedBy[] = "tessera-operator";

struct RenderOptions {
  // The shared Istio Gateway ("namespace/name") every VirtualService binds to. The gateway's
  // Deployment is replicated by the Istio install; there is no single reverse proxy.
  std::string gateway = "istio-system/tessera-gateway";
  // VirtualService hosts.
  std::string host = "*";
  // status.url = base_url + PathPrefix(ws); no trailing slash.
  std::string base_url = "https://workspaces.example.com";
  // Header the auth proxy (oauth2-proxy) sets to the signed-in user's identity; the
  // AuthorizationPolicy admits only requests whose value is exactly spec.owner. Lower case.
  std::string owner_header = "x-auth-request-email";
  // mTLS identity of the ingress gateway pods: owner requests are admitted only from it, so a
  // pod inside the mesh cannot reach an IDE directly with a forged header. Empty: any source
  // (then the header check alone guards the IDE).
  std::string gateway_principal =
      "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
  // mTLS identity of the operator, allowed to GET /healthz (idle culling).
  std::string operator_principal = "cluster.local/ns/tessera-system/sa/tessera-operator";
  // Ray head and worker image when the template has no rayImage.
  std::string default_ray_image = "rayproject/ray:2.40.0-py311-gpu";
  // Server-side apply field manager (not rendered; the reconciler applies with it).
  std::string field_manager = "tessera-operator";
  std::string code_server_port_name = "http";
  int code_server_port = 8080;
  // The activity agent sidecar (`tessera ws agent`: terminal input, CPU and GPU use for idle
  // culling) runs this image, which must contain the `tessera` binary; "" leaves it out (then
  // only code-server's heartbeat and Ray count as activity). The operator's --agent-image; the
  // deployment in deploy/workspaces sets it.
  std::string agent_image = "tessera/tessera:dev";
  int agent_port = 8090;
  // Env TESSERA_URL in the IDE, so the engine is reachable from notebooks and the terminal.
  // A template env entry TESSERA_URL overrides it.
  std::string tessera_features_url = "http://tessera-features.tessera.svc:8080";
  // Cluster DNS domain, for the VirtualService destination's fully-qualified host.
  std::string cluster_domain = "cluster.local";
  // Ray head (coordination only: it advertises no CPUs when workers may exist) and the worker
  // shape when spec.ray.workers leaves cpu / memory unset.
  std::string ray_head_cpu = "1";
  std::string ray_head_memory = "4Gi";
  std::string ray_worker_cpu = "4";
  std::string ray_worker_memory = "16Gi";
};

// Children of `ws` (see above), each a complete server-side-apply intent: apiVersion, kind,
// metadata (name, namespace, labels, ownerReferences) and spec.
//
// InvalidArgument (not retryable; the spec or template must change) when:
//   - ws has no namespace or uid (an ownerReference needs the uid);
//   - "ws-{name}" is longer than 52 characters (the StatefulSet controller labels pods with
//     "{statefulset}-{10-character hash}", a label value of at most 63), or, with Ray, the
//     RayCluster's head Service "ws-{name}-head-svc" would exceed the 50 characters KubeRay
//     keeps before it silently truncates the name (RAY_ADDRESS would then be wrong): so a
//     workspace name has at most 49 characters, 38 with Ray;
//   - spec.owner cannot be matched exactly by Istio (contains '*', which Istio reads as a
//     wildcard, control characters, or leading/trailing blanks);
//   - the template's env repeats a name or sets one the operator owns (HOME, WORKSPACE_OWNER,
//     RAY_ADDRESS), or its extraContainers repeat a name or use "ide" / "init".
//
// Notes for the caller:
//   - StatefulSet volumeClaimTemplates are immutable, so the CRD makes spec.home immutable too
//     (resize the PVC instead).
//   - Workers' replicas are rendered as spec.ray.workers.replicas (clamped to [minReplicas,
//     maxReplicas]); KubeRay's autoscaler changes them later, and workerGroupSpecs is an atomic
//     list, so the caller carries the live values over before re-applying
//     (Reconciler::KeepAutoscaledReplicas).
//   - When ray is disabled no RayCluster is rendered; pruning an earlier one is the caller's job.
absl::StatusOr<std::vector<nlohmann::json>> RenderChildren(const Workspace& ws,
                                                           const WorkspaceTemplate& tmpl,
                                                           const RenderOptions& options);

// "/ws/{namespace}/{name}/": the workspace's path on the gateway.
std::string PathPrefix(const Workspace& ws);
// options.base_url + PathPrefix(ws).
std::string WorkspaceUrl(const Workspace& ws, const RenderOptions& options);
// "ws-{name}": the name of every child.
std::string WorkspaceChildName(const Workspace& ws);
// "home-ws-{name}-0": the home volume's PersistentVolumeClaim (the StatefulSet controller names
// it "{volumeClaimTemplate}-{statefulset}-{ordinal}").
std::string HomeClaimName(const Workspace& ws);
// "ws-{name}-0": the IDE pod (the StatefulSet's only ordinal).
std::string IdePodName(const Workspace& ws);
// "ws-{name}-head-svc": the Ray head Service KubeRay creates for the RayCluster.
std::string RayHeadServiceName(const Workspace& ws);

// spec.owner as a label value (at most 63 of [A-Za-z0-9._-], alphanumeric at both ends).
// An owner that already is one is used as is; otherwise every other character becomes '_', the
// ends are trimmed, the rest cut to 54 characters, and "-" + 8 hex digits of the owner's 32-bit
// FNV-1a hash are appended, so different owners keep different labels:
// "alice@example.com" → "alice_example.com-<hash>". For selection only, never for access.
std::string OwnerLabelValue(std::string_view owner);

// The IDE pods' selector (app name + instance): StatefulSet, Service and AuthorizationPolicy.
nlohmann::json IdePodSelector(const Workspace& ws);

}  // namespace tessera::workspaces
