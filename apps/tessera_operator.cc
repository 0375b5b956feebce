// tessera-operator: reconciles Workspace resources (see src/workspaces/operator/reconciler.h).
// Runs with 2+ replicas; with --leader-elect only the holder of the Lease acts. Serves
// /metrics, /healthz and /readyz on --metrics-addr. Exits 0 on SIGTERM/SIGINT (releasing the
// lease), 1 when leadership is lost (so Kubernetes restarts it clean, like client-go operators).
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/errors.h"
#include "common/metrics.h"
#include "common/net_util.h"
#include "common/signals.h"
#include "common/time_util.h"
#include "serve/http_server.h"
#include "workspaces/kube/cached_reader.h"
#include "workspaces/kube/curl_kube_client.h"
#include "workspaces/kube/kube_config.h"
#include "workspaces/kube/kube_http.h"
#include "workspaces/kube/leader_election.h"
#include "workspaces/operator/activity_signals.h"
#include "workspaces/operator/controller.h"
#include "workspaces/operator/kube_event_recorder.h"
#include "workspaces/operator/operator_metrics.h"
#include "workspaces/operator/reconciler.h"

namespace tessera::workspaces {
namespace {

using nlohmann::json;

// The oldest Kubernetes minor version (1.x) the operator runs against; tested on 1.20.2.
constexpr int kMinKubernetesMinor = 20;

struct Flags {
  std::string kubeconfig;
  std::string context;
  std::string ns;  // "" = all namespaces
  bool leader_elect = false;
  std::string lease_namespace;
  std::string lease_name = "tessera-operator";
  std::string identity;
  std::string lease_duration = "15s";
  std::string renew_deadline = "10s";
  std::string retry_period = "2s";
  std::string metrics_addr = "0.0.0.0:9090";
  std::string base_url = "https://workspaces.example.com";
  std::string gateway = "istio-system/tessera-gateway";
  std::string host = "*";
  std::string owner_header = "x-auth-request-email";
  std::string features_url = "http://tessera-features.tessera.svc:8080";
  std::string heartbeat_url = CodeServerHeartbeat::kDefaultUrl;
  std::string agent_image;  // off unless deployed with one (deploy/workspaces/operator.yaml)
  std::string agent_url = ActivityAgentSignal::kDefaultUrl;
  std::string ray_dashboard_url = RayActivitySignal::kDefaultUrl;
  std::string activity_check_interval = "1m";
  std::string idle_warning = "10m";
  std::string resync_period = "5m";
  int workers = 2;
};

int Fail(const std::string& what, const absl::Status& s) {
  fmt::print(stderr, "tessera-operator: {}: {}\n", what, StatusMessage(s));
  return 1;
}

std::string Env(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

int Run(const Flags& f) {
  const sigset_t signals = BlockStopSignals();

  int64_t lease_ms = 0, renew_ms = 0, retry_ms = 0, activity_ms = 0, resync_ms = 0;
  int64_t warning_ms = 0;
  for (auto [text, out, name] :
       {std::tuple{&f.lease_duration, &lease_ms, "--lease-duration"},
        std::tuple{&f.renew_deadline, &renew_ms, "--renew-deadline"},
        std::tuple{&f.retry_period, &retry_ms, "--retry-period"},
        std::tuple{&f.activity_check_interval, &activity_ms, "--activity-check-interval"},
        std::tuple{&f.resync_period, &resync_ms, "--resync-period"},
        std::tuple{&f.idle_warning, &warning_ms, "--idle-warning"}}) {
    absl::StatusOr<int64_t> ms = ParseDurationMillis(*text);
    if (!ms.ok()) return Fail(name, ms.status());
    *out = *ms;
  }
  char hostname[256] = {};
  ::gethostname(hostname, sizeof(hostname) - 1);
  const std::string identity = f.identity.empty() ? Env("POD_NAME", hostname) : f.identity;

  absl::StatusOr<kube::KubeConfig> config = f.kubeconfig.empty()
                                                ? kube::LoadDefault(f.context)
                                                : kube::LoadKubeconfig(f.kubeconfig, f.context);
  if (!config.ok()) return Fail("Kubernetes configuration", config.status());
  kube::CurlKubeClient::Options client_options;
  // The identity in the User-Agent attributes every request to its replica in API audit logs.
  client_options.user_agent = fmt::format("tessera-operator/{}", identity);
  absl::StatusOr<std::unique_ptr<kube::CurlKubeClient>> client =
      kube::CurlKubeClient::Create(*config, client_options);
  if (!client.ok()) return Fail("Kubernetes client", client.status());

  const Clock* clock = SystemClock::Default();
  MetricsRegistry registry;
  OperatorMetrics metrics(&registry, clock);
  HostPortOptions strict;
  strict.require_host = true;
  const absl::StatusOr<HostPort> metrics_addr = ParseHostPort(f.metrics_addr, strict);
  if (!metrics_addr.ok()) {
    return Fail("--metrics-addr",
                InvalidArgument("\"{}\" is not HOST:PORT (PORT 0-65535)", f.metrics_addr));
  }
  serve::HttpServerOptions http_options;
  http_options.address = metrics_addr->host;
  http_options.port = metrics_addr->port;
  http_options.threads = 1;
  serve::HttpServer http(http_options);
  http.Route("GET", "/metrics", [&](serve::HttpRequest&&, serve::Responder respond) {
    serve::HttpResponse r;
    r.content_type = MetricsRegistry::kContentType;
    r.body = registry.RenderPrometheus();
    respond(std::move(r));
  });
  for (const char* path : {"/healthz", "/readyz"}) {
    http.Route("GET", path, [](serve::HttpRequest&&, serve::Responder respond) {
      respond(serve::HttpResponse::Json(200, R"({"status":"ok"})"));
    });
  }
  if (absl::Status s = http.Start(); !s.ok()) return Fail("metrics server", s);
  fmt::print("tessera-operator {}: metrics on http://{}:{}/metrics\n", identity,
             http_options.address, http.port());
  std::fflush(stdout);

  // Supported: Kubernetes 1.20 and newer (docs/WORKSPACES.md). An unreachable server is not a
  // reason to exit: the informers retry; an older one is.
  if (absl::StatusOr<json> version = (*client)->ServerVersion(); version.ok()) {
    absl::StatusOr<std::pair<int, int>> v = kube::ParseServerVersion(*version);
    if (v.ok() && (v->first < 1 || (v->first == 1 && v->second < kMinKubernetesMinor))) {
      return Fail("Kubernetes version",
                  FailedPrecondition("the API server runs Kubernetes {}.{} ({}); tessera-operator "
                                     "needs 1.{} or newer",
                                     v->first, v->second, version->value("gitVersion", "?"),
                                     kMinKubernetesMinor));
    }
    fmt::print(stderr, "tessera-operator {}: Kubernetes {}\n", identity,
               version->value("gitVersion", "?"));
  } else {
    fmt::print(stderr, "tessera-operator {}: could not read the server version: {}\n", identity,
               StatusMessage(version.status()));
  }

  ReconcilerOptions options;
  options.render.base_url = f.base_url;
  options.render.gateway = f.gateway;
  options.render.host = f.host;
  options.render.owner_header = f.owner_header;
  options.render.tessera_features_url = f.features_url;
  options.activity_check_interval_ms = activity_ms;
  options.idle_warning_ms = warning_ms;
  options.render.agent_image = f.agent_image;
  KubeEventRecorder events(client->get(), clock, identity);
  // Evidence of use: code-server's heartbeat, the activity agent (terminal input, CPU, GPU) when
  // the IDE pods run it, and the workspace's Ray cluster (jobs, node CPU and GPU).
  CodeServerHeartbeat heartbeat(f.heartbeat_url);
  ActivityAgentSignal activity_agent(f.agent_url);
  RayActivitySignal ray_activity(f.ray_dashboard_url);
  std::vector<ActivitySignal*> activity_signals = {&heartbeat, &ray_activity};
  IdeNotifier* notifier = nullptr;
  if (!f.agent_image.empty()) {
    activity_signals.push_back(&activity_agent);
    notifier = &activity_agent;
  }
  kube::CachedReader reader(client->get());
  Reconciler reconciler(client->get(), clock, &events, activity_signals, notifier, &metrics,
                        options, &reader);
  Controller controller(client->get(), &reconciler,
                        ControllerOptions{.ns = f.ns,
                                          .workers = f.workers,
                                          .resync_period_ms = resync_ms,
                                          .clock = clock,
                                          .reader = &reader});

  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    const int sig = WaitForSignal(signals);
    fmt::print(stderr, "tessera-operator: {} received; stopping\n", SignalName(sig));
    stop.store(true);
  });
  signal_thread.detach();  // the process exits right after Run returns

  int code = 0;
  if (!f.leader_elect) {
    metrics.SetLeader(true);
    controller.Run(stop);
  } else {
    // Its own client, with requests bounded by half the renew deadline: a renewal stuck on a
    // hung connection must not outlast the deadline, or this replica would go on acting after
    // the standby took over.
    kube::CurlKubeClient::Options election_options = client_options;
    election_options.request_timeout_ms = std::max<int64_t>(200, renew_ms / 2);
    absl::StatusOr<std::unique_ptr<kube::CurlKubeClient>> election_client =
        kube::CurlKubeClient::Create(*config, election_options);
    if (!election_client.ok()) return Fail("Kubernetes client", election_client.status());
    kube::LeaderElector elector(
        **election_client,
        kube::LeaderElector::Options{.ns = f.lease_namespace.empty()
                                               ? Env("POD_NAMESPACE", "tessera-system")
                                               : f.lease_namespace,
                                     .lease_name = f.lease_name,
                                     .identity = identity,
                                     .lease_duration_ms = lease_ms,
                                     .renew_deadline_ms = renew_ms,
                                     .retry_period_ms = retry_ms,
                                     .clock = clock});
    std::atomic<bool> controller_stop{false};
    std::thread controller_thread;
    absl::Status s = elector.Run(
        stop,
        [&] {
          fmt::print(stderr, "tessera-operator {}: leading\n", identity);
          metrics.SetLeader(true);
          controller_thread = std::thread([&] { controller.Run(controller_stop); });
        },
        [&] {
          metrics.SetLeader(false);
          if (!stop.load()) {
            // Lost, not stopped: another replica may be leading already. Exit at once, in-flight
            // reconciles and all (they are idempotent; the new leader redoes them), and let
            // Kubernetes restart this replica clean, as client-go operators do.
            fmt::print(stderr, "tessera-operator {}: leadership lost; exiting\n", identity);
            std::fflush(stderr);
            std::_Exit(1);
          }
          // Stopped (SIGTERM): finish the reconciles in flight before the lease is released.
          controller_stop.store(true);
          if (controller_thread.joinable()) controller_thread.join();
        });
    controller_stop.store(true);
    if (controller_thread.joinable()) controller_thread.join();
    if (!s.ok()) {
      code = Fail("leader election", s);
    }
  }
  http.Stop();
  return code;
}

}  // namespace
}  // namespace tessera::workspaces

int main(int argc, char** argv) {
  tessera::workspaces::Flags f;
  CLI::App app{"tessera-operator: runs Tessera Workspaces (code-server + Ray) on Kubernetes"};
  app.add_option("--kubeconfig", f.kubeconfig,
                 "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)");
  app.add_option("--context", f.context, "kubeconfig context");
  app.add_option("--namespace", f.ns, "Only this namespace's workspaces (default: all)");
  app.add_flag("--leader-elect", f.leader_elect, "Act only while holding the leader Lease");
  app.add_option("--lease-namespace", f.lease_namespace,
                 "Namespace of the Lease (default: $POD_NAMESPACE or tessera-system)");
  app.add_option("--lease-name", f.lease_name, "Name of the Lease")->capture_default_str();
  app.add_option("--identity", f.identity, "This replica's identity (default: $POD_NAME)");
  app.add_option("--lease-duration", f.lease_duration, "How long a lease is valid")
      ->capture_default_str();
  app.add_option("--renew-deadline", f.renew_deadline, "Give up leading if not renewed within")
      ->capture_default_str();
  app.add_option("--retry-period", f.retry_period, "How often to renew or try to acquire")
      ->capture_default_str();
  app.add_option("--metrics-addr", f.metrics_addr, "HOST:PORT of /metrics and /healthz")
      ->capture_default_str();
  app.add_option("--base-url", f.base_url, "Workspace URLs start with this")->capture_default_str();
  app.add_option("--gateway", f.gateway, "Istio Gateway (namespace/name) of the routes")
      ->capture_default_str();
  app.add_option("--host", f.host, "VirtualService host")->capture_default_str();
  app.add_option("--owner-header", f.owner_header, "Header carrying the signed-in user")
      ->capture_default_str();
  app.add_option("--features-url", f.features_url, "TESSERA_URL inside workspaces")
      ->capture_default_str();
  app.add_option("--heartbeat-url", f.heartbeat_url,
                 "code-server /healthz URL template ({name}, {namespace})")
      ->capture_default_str();
  app.add_option("--agent-image", f.agent_image,
                 "Image of the activity agent sidecar in IDE pods (contains `tessera`); empty: "
                 "no agent (only code-server's heartbeat and Ray count as activity)")
      ->capture_default_str();
  app.add_option("--agent-url", f.agent_url,
                 "The activity agent's base URL template ({name}, {namespace})")
      ->capture_default_str();
  app.add_option("--ray-dashboard-url", f.ray_dashboard_url,
                 "The Ray dashboard's base URL template ({name}, {namespace}): jobs and node use")
      ->capture_default_str();
  app.add_option("--activity-check-interval", f.activity_check_interval,
                 "How often Ready workspaces are checked for idleness")
      ->capture_default_str();
  app.add_option("--idle-warning", f.idle_warning,
                 "Warn this long before an idle workspace is stopped (at most half its "
                 "idleTimeout; 0s: no warning)")
      ->capture_default_str();
  app.add_option("--resync-period", f.resync_period, "Reconcile everything this often")
      ->capture_default_str();
  app.add_option("--workers", f.workers, "Concurrent reconciles")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return tessera::workspaces::Run(f);
}
