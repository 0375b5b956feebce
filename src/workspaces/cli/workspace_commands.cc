#include "workspaces/cli/workspace_commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/errors.h"
#include "common/time_util.h"
#include "workspaces/api/workspace.h"

namespace tessera::workspaces::cli {
namespace {

using nlohmann::json;

std::string Str(const json& obj, const json::json_pointer& ptr, std::string fallback = "") {
  if (!obj.contains(ptr) || !obj.at(ptr).is_string()) return fallback;
  return obj.at(ptr).get<std::string>();
}

std::string Age(const json& obj, int64_t now_ms) {
  std::optional<int64_t> created =
      ParseRfc3339Millis(Str(obj, "/metadata/creationTimestamp"_json_pointer));
  if (!created) return "?";
  const int64_t s = std::max<int64_t>(0, (now_ms - *created) / 1000);
  if (s < 120) return fmt::format("{}s", s);
  if (s < 2 * 3600) return fmt::format("{}m", s / 60);
  if (s < 2 * 86400) return fmt::format("{}h", s / 3600);
  return fmt::format("{}d", s / 86400);
}

std::string Phase(const json& obj) {
  std::string phase = Str(obj, "/status/phase"_json_pointer);
  if (!phase.empty()) return phase;
  return "Pending";  // not reconciled yet
}

}  // namespace

WorkspaceCommands::WorkspaceCommands(kube::KubeClient* client, std::string ns, std::string cluster,
                                     const Clock* clock, std::ostream* out)
    : client_(client), ns_(std::move(ns)), cluster_(std::move(cluster)), clock_(clock), out_(out) {}

absl::Status WorkspaceCommands::Explain(const absl::Status& s, const std::string& action,
                                        const std::string& name) const {
  const std::string detail = StatusMessage(s);
  std::string sentence;
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      if (detail.find("the server could not find the requested resource") != std::string::npos ||
          detail.find("404 page not found") != std::string::npos) {
        sentence = fmt::format(
            "could not {}: the Tessera workspaces API is not installed on {} (an administrator "
            "runs `kubectl apply -k deploy/workspaces`)",
            action, cluster_);
      } else {
        sentence = fmt::format(
            "could not {}: there is no workspace \"{}\" in namespace {} (see `tessera ws list`)",
            action, name, ns_);
      }
      break;
    case absl::StatusCode::kAlreadyExists:
      sentence = fmt::format(
          "could not {}: a workspace named \"{}\" already exists in namespace {} (pick another "
          "name, or `tessera ws open {}`)",
          action, name, ns_, name);
      break;
    case absl::StatusCode::kUnauthenticated:
      sentence = fmt::format(
          "could not {}: {} did not accept your credentials; your login may have expired (get "
          "a fresh kubeconfig from your platform team)",
          action, cluster_);
      break;
    case absl::StatusCode::kPermissionDenied:
      sentence = fmt::format(
          "could not {}: you are not allowed to do that in namespace {} (ask your platform team "
          "for access, or pass --namespace)",
          action, ns_);
      break;
    case absl::StatusCode::kUnavailable:
      sentence = fmt::format(
          "could not {}: cannot reach {} (check your network or VPN; `tessera ws up --local` "
          "works without a cluster)",
          action, cluster_);
      break;
    case absl::StatusCode::kInvalidArgument:
      sentence = fmt::format("could not {}: the cluster rejected it as invalid", action);
      break;
    case absl::StatusCode::kAborted:
      sentence = fmt::format(
          "could not {}: the workspace changed at the same moment; run the command again", action);
      break;
    default:
      sentence = fmt::format("could not {}", action);
  }
  return absl::Status(s.code(), fmt::format("{}\n  details: {}", sentence, detail));
}

absl::Status WorkspaceCommands::Create(const CreateArgs& args) {
  const std::string action = fmt::format("create workspace \"{}\"", args.name);
  if (!IsDnsLabel(args.name)) {
    return InvalidArgument(
        "could not {}: a workspace name is 1-63 lower-case letters, digits and '-', starting "
        "and ending with a letter or digit (for example \"alice-gpu\")",
        action);
  }
  if (args.owner.empty()) {
    return InvalidArgument("could not {}: no owner; pass --owner you@example.com", action);
  }
  json spec = {{"owner", args.owner}};
  if (!args.template_name.empty()) spec["template"] = args.template_name;
  if (!args.cpu.empty()) spec["resources"]["cpu"] = args.cpu;
  if (!args.memory.empty()) spec["resources"]["memory"] = args.memory;
  if (args.gpus) {
    if (*args.gpus < 0 || *args.gpus > 16) {
      return InvalidArgument("could not {}: --gpus must be from 0 to 16", action);
    }
    spec["resources"]["gpus"] = *args.gpus;
  }
  if (args.no_ray) spec["ray"]["enabled"] = false;
  if (args.ray_workers) {
    if (args.no_ray) {
      return InvalidArgument("could not {}: --ray-workers and --no-ray contradict", action);
    }
    if (*args.ray_workers < 0) {
      return InvalidArgument("could not {}: --ray-workers must be 0 or more", action);
    }
    const int n = *args.ray_workers;
    spec["ray"]["workers"] = {{"replicas", n}, {"minReplicas", 0}, {"maxReplicas", std::max(n, 4)}};
  }
  if (!args.idle_timeout.empty()) {
    if (!ParseDuration(args.idle_timeout).ok()) {
      return InvalidArgument(
          "could not {}: --idle-timeout \"{}\" is not a duration like 2h, 90m or 1h30m", action,
          args.idle_timeout);
    }
    spec["idleTimeout"] = args.idle_timeout;
  }
  json object = {{"apiVersion", kApiVersion},
                 {"kind", "Workspace"},
                 {"metadata", {{"name", args.name}, {"namespace", ns_}}},
                 {"spec", spec}};
  // Check locally what the API server's schema would reject, with our wording.
  if (absl::StatusOr<Workspace> ws = ParseWorkspace(object); !ws.ok()) {
    return InvalidArgument("could not {}: {}", action, StatusMessage(ws.status()));
  }
  absl::StatusOr<json> created = client_->Create(kube::WorkspaceType(), ns_, object);
  if (!created.ok()) return Explain(created.status(), action, args.name);
  *out_ << fmt::format(
      "workspace \"{}\" created in namespace {}; it is starting.\n"
      "  tessera ws open {} --wait   prints its address when it is ready\n",
      args.name, ns_, args.name);
  return absl::OkStatus();
}

absl::Status WorkspaceCommands::List() {
  absl::StatusOr<kube::ListResult> list = client_->List(kube::WorkspaceType(), ns_);
  if (!list.ok()) return Explain(list.status(), "list workspaces", "");
  if (list->items.empty()) {
    *out_ << fmt::format("no workspaces in namespace {} (create one: tessera ws create NAME)\n",
                         ns_);
    return absl::OkStatus();
  }
  const int64_t now = clock_->NowMillis();
  *out_ << fmt::format("{:<24} {:<9} {:>4} {:>5}  {:<24} {:<5} {}\n", "NAME", "PHASE", "GPUS",
                       "RAY", "OWNER", "AGE", "URL");
  for (const json& item : list->items) {
    const json spec = item.value("spec", json::object());
    const json resources = spec.value("resources", json::object());
    const json ray = spec.value("ray", json::object());
    const bool ray_on = ray.value("enabled", true);
    const int workers = ray.value("workers", json::object()).value("replicas", 0);
    *out_ << fmt::format(
        "{:<24} {:<9} {:>4} {:>5}  {:<24} {:<5} {}\n", Str(item, "/metadata/name"_json_pointer),
        Phase(item), resources.value("gpus", 0),
        ray_on ? fmt::format("{}w", workers) : std::string("off"), spec.value("owner", ""),
        Age(item, now), Str(item, "/status/url"_json_pointer, "-"));
  }
  return absl::OkStatus();
}

absl::Status WorkspaceCommands::Describe(const std::string& name) {
  const std::string action = fmt::format("describe workspace \"{}\"", name);
  absl::StatusOr<json> object = client_->Get(kube::WorkspaceType(), ns_, name);
  if (!object.ok()) return Explain(object.status(), action, name);
  const json& o = *object;
  const json spec = o.value("spec", json::object());
  const json status = o.value("status", json::object());
  *out_ << fmt::format("Name:       {}\nNamespace:  {}\nOwner:      {}\nTemplate:   {}\n", name,
                       ns_, spec.value("owner", ""), spec.value("template", "default"));
  *out_ << fmt::format(
      "Phase:      {}{}\n", Phase(o),
      spec.value("stopped", false) ? " (stopped; `tessera ws start` resumes)" : "");
  *out_ << fmt::format("URL:        {}\n", status.value("url", "-"));
  const json resources = spec.value("resources", json::object());
  const json gpus = resources.value("gpus", json());
  *out_ << fmt::format("Resources:  cpu {}, memory {}, gpus {} (unset: from the template)\n",
                       resources.value("cpu", "-"), resources.value("memory", "-"),
                       gpus.is_number() ? gpus.dump() : std::string("-"));
  const json ray = spec.value("ray", json::object());
  const json workers = ray.value("workers", json::object());
  *out_ << fmt::format(
      "Ray:        {}\n",
      ray.value("enabled", true)
          ? fmt::format("{} workers (autoscaling {}..{})", workers.value("replicas", 0),
                        workers.value("minReplicas", 0), workers.value("maxReplicas", 4))
          : std::string("off"));
  *out_ << fmt::format(
      "Idle stop:  after {}{}\n", spec.value("idleTimeout", "2h"),
      status.contains("lastActivityTime")
          ? fmt::format(" (last activity {})", status.value("lastActivityTime", ""))
          : std::string());
  *out_ << "Conditions:\n";
  const json conditions = status.value("conditions", json::array());
  if (conditions.empty()) *out_ << "  (none yet: the operator has not reconciled it)\n";
  for (const json& c : conditions) {
    *out_ << fmt::format("  {:<17} {:<6} {:<18} {}\n", c.value("type", ""), c.value("status", ""),
                         c.value("reason", ""), c.value("message", ""));
  }
  *out_ << "Recent events:\n";
  absl::StatusOr<kube::ListResult> events = client_->List(kube::EventType(), ns_);
  if (!events.ok()) {
    *out_ << fmt::format("  (could not read events: {})\n", StatusMessage(events.status()));
    return absl::OkStatus();
  }
  // This workspace's events only: not those of an earlier workspace of the same name (deleted
  // and created again), which Kubernetes keeps for an hour.
  const std::string uid = Str(o, "/metadata/uid"_json_pointer);
  std::vector<const json*> mine;
  for (const json& e : events->items) {
    const json involved = e.value("involvedObject", json::object());
    const std::string event_uid = involved.value("uid", "");
    if (involved.value("kind", "") == "Workspace" && involved.value("name", "") == name &&
        (uid.empty() || event_uid.empty() || event_uid == uid)) {
      mine.push_back(&e);
    }
  }
  auto time_of = [](const json* e) {
    return e->value("lastTimestamp", json("")).is_string() ? e->value("lastTimestamp", "")
                                                           : std::string();
  };
  std::stable_sort(mine.begin(), mine.end(),
                   [&](const json* a, const json* b) { return time_of(a) < time_of(b); });
  if (mine.size() > 10) mine.erase(mine.begin(), mine.end() - 10);
  if (mine.empty()) *out_ << "  (none)\n";
  for (const json* e : mine) {
    *out_ << fmt::format("  {}  {:<7} {:<12} {}\n", time_of(e), e->value("type", ""),
                         e->value("reason", ""), e->value("message", ""));
  }
  return absl::OkStatus();
}

absl::Status WorkspaceCommands::Open(const std::string& name, int64_t wait_ms) {
  const std::string action = fmt::format("open workspace \"{}\"", name);
  const int64_t deadline = clock_->NowMillis() + wait_ms;
  while (true) {
    absl::StatusOr<json> object = client_->Get(kube::WorkspaceType(), ns_, name);
    if (!object.ok()) return Explain(object.status(), action, name);
    const json& o = *object;
    const std::string phase = Phase(o);
    const std::string url = Str(o, "/status/url"_json_pointer);
    // The status speaks for the current spec only once the operator has seen it (right after
    // `tessera ws start` it still says Stopped): until then the phase is "Updating".
    const json generation = o["metadata"].value("generation", json());
    const bool current =
        o.value("status", json::object()).value("observedGeneration", json()) == generation;
    if (o.value("spec", json::object()).value("stopped", false) ||
        (current && (phase == "Stopped" || phase == "Stopping"))) {
      return FailedPrecondition("workspace \"{}\" is {}; start it with `tessera ws start {}`", name,
                                phase == "Stopped" ? "stopped" : "stopping", name);
    }
    if (current && phase == "Ready" && !url.empty()) {
      *out_ << url << "\n";
      return absl::OkStatus();
    }
    if (current && phase == "Failed") {
      return FailedPrecondition("workspace \"{}\" failed; `tessera ws describe {}` says why", name,
                                name);
    }
    if (current && phase == "Pending") {
      // Waiting for something only an administrator can fix: say what, do not wait for it.
      for (const json& c : o["status"].value("conditions", json::array())) {
        if (c.value("type", "") == "TemplateResolved" && c.value("status", "") == "False") {
          return FailedPrecondition("workspace \"{}\" cannot start: {}", name,
                                    c.value("message", ""));
        }
      }
    }
    const int64_t left = deadline - clock_->NowMillis();
    if (left <= 0) {
      // Never reconciled: Pending, as `list` and `describe` say; reconciled, but not since the
      // latest spec change: Updating.
      const bool reconciled = !Str(o, "/status/phase"_json_pointer).empty();
      return Unavailable(
          "workspace \"{}\" is not ready yet (phase {}); wait with `tessera ws open {} --wait`, "
          "or see `tessera ws describe {}`",
          name, current || !reconciled ? phase : "Updating", name, name);
    }
    // Wait for the next change of this workspace (or the deadline), then look again.
    kube::WatchOptions watch;
    watch.resource_version = Str(*object, "/metadata/resourceVersion"_json_pointer);
    watch.timeout_seconds =
        static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(left / 1000, 60)));
    absl::Status s =
        client_->Watch(kube::WorkspaceType(), ns_, watch, [&](const kube::WatchEvent& e) {
          return e.type == kube::WatchEvent::Type::kBookmark ||
                 Str(e.object, "/metadata/name"_json_pointer) != name;
        });
    if (!s.ok() && !kube::IsGone(s)) return Explain(s, action, name);
  }
}

absl::Status WorkspaceCommands::SetStopped(const std::string& name, bool stopped) {
  const std::string action = fmt::format("{} workspace \"{}\"", stopped ? "stop" : "start", name);
  json patch = {{"spec", {{"stopped", stopped}}}};
  // Starting again also clears the culler's mark, so `describe` no longer says it was culled.
  if (!stopped) {
    patch["metadata"]["annotations"]["workspaces.tessera.dev/culled-at"] = nullptr;
    patch["metadata"]["annotations"]["workspaces.tessera.dev/cull-reason"] = nullptr;
  }
  absl::StatusOr<json> patched = client_->MergePatch(kube::WorkspaceType(), ns_, name, patch);
  if (!patched.ok()) return Explain(patched.status(), action, name);
  *out_ << (stopped ? fmt::format("workspace \"{}\" is stopping; its home volume is kept "
                                  "(`tessera ws start {}` resumes it)\n",
                                  name, name)
                    : fmt::format("workspace \"{}\" is starting (`tessera ws open {} --wait`)\n",
                                  name, name));
  return absl::OkStatus();
}

absl::Status WorkspaceCommands::Stop(const std::string& name) { return SetStopped(name, true); }
absl::Status WorkspaceCommands::Start(const std::string& name) { return SetStopped(name, false); }

absl::Status WorkspaceCommands::Delete(const std::string& name) {
  const std::string action = fmt::format("delete workspace \"{}\"", name);
  absl::Status s = client_->Delete(kube::WorkspaceType(), ns_, name);
  if (!s.ok()) return Explain(s, action, name);
  *out_ << fmt::format("workspace \"{}\" is being deleted, with its home volume and Ray cluster\n",
                       name);
  return absl::OkStatus();
}

}  // namespace tessera::workspaces::cli
