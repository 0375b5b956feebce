#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/errors.h"
#include "workspaces/cli/workspace_commands.h"
#include "workspaces/cli/ws_cli.h"
#include "workspaces/kube/curl_kube_client.h"
#include "workspaces/kube/kube_config.h"

namespace tessera::workspaces::cli {
namespace {

// Flags every cluster command shares; filled by CLI11, read when the action runs.
struct ClusterFlags {
  std::string kubeconfig;  // default: $KUBECONFIG, ~/.kube/config, in-cluster
  std::string context;
  std::string ns;  // default: the context's namespace
};

int Report(const absl::Status& s) {
  if (s.ok()) return 0;
  fmt::print(stderr, "tessera ws: {}\n", StatusMessage(s));
  return 1;
}

// Connects with the user's kubeconfig and runs `fn` on the commands object.
int WithCommands(const ClusterFlags& flags,
                 const std::function<absl::Status(WorkspaceCommands&)>& fn) {
  absl::StatusOr<kube::KubeConfig> config =
      flags.kubeconfig.empty() ? kube::LoadDefault(flags.context)
                               : kube::LoadKubeconfig(flags.kubeconfig, flags.context);
  if (!config.ok()) return Report(config.status());
  absl::StatusOr<std::unique_ptr<kube::CurlKubeClient>> client =
      kube::CurlKubeClient::Create(*config);
  if (!client.ok()) return Report(client.status());
  const std::string ns = flags.ns.empty() ? config->default_namespace : flags.ns;
  const std::string cluster = fmt::format("the cluster at {} ({})", config->server, config->source);
  WorkspaceCommands commands(client->get(), ns, cluster, SystemClock::Default(), &std::cout);
  return Report(fn(commands));
}

std::string DefaultOwner() {
  for (const char* var : {"TESSERA_OWNER", "USER", "LOGNAME"}) {
    if (const char* v = std::getenv(var); v != nullptr && *v != '\0') return v;
  }
  return "";
}

}  // namespace

void AddClusterCommands(CLI::App* ws, Action* action) {
  auto flags = std::make_shared<ClusterFlags>();
  auto add_common = [flags](CLI::App* cmd) {
    cmd->add_option("-n,--namespace", flags->ns,
                    "Namespace of your workspaces (default: your kubeconfig's)");
    cmd->add_option("--context", flags->context, "kubeconfig context (default: current)");
    cmd->add_option("--kubeconfig", flags->kubeconfig,
                    "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)");
  };
  auto name = std::make_shared<std::string>();

  auto create = std::make_shared<CreateArgs>();
  create->owner = DefaultOwner();
  CLI::App* c = ws->add_subcommand("create", "Create a workspace on the cluster");
  c->add_option("name", create->name, "Workspace name (lower-case letters, digits, '-')")
      ->required();
  c->add_option("--template", create->template_name, "WorkspaceTemplate (default: default)");
  c->add_option("--gpus", create->gpus, "GPUs for the IDE (0-16)");
  c->add_option("--ray-workers", create->ray_workers, "Ray GPU workers to start with");
  c->add_flag("--no-ray", create->no_ray, "No Ray cluster");
  c->add_option("--cpu", create->cpu, "CPU for the IDE, e.g. 4 or 500m");
  c->add_option("--memory", create->memory, "Memory for the IDE, e.g. 16Gi");
  c->add_option("--idle-timeout", create->idle_timeout, "Stop after this long unused (2h)");
  c->add_option("--owner", create->owner, "Your identity (default: $TESSERA_OWNER or $USER)")
      ->capture_default_str();
  add_common(c);
  c->callback([=] {
    *action = [=] { return WithCommands(*flags, [&](auto& cmd) { return cmd.Create(*create); }); };
  });

  CLI::App* l = ws->add_subcommand("list", "List your workspaces");
  add_common(l);
  l->callback([=] {
    *action = [=] { return WithCommands(*flags, [](auto& cmd) { return cmd.List(); }); };
  });

  CLI::App* d = ws->add_subcommand("describe", "Status, conditions and recent events");
  d->add_option("name", *name, "Workspace name")->required();
  add_common(d);
  d->callback([=] {
    *action = [=] { return WithCommands(*flags, [&](auto& cmd) { return cmd.Describe(*name); }); };
  });

  auto wait = std::make_shared<bool>(false);
  auto wait_timeout = std::make_shared<int>(600);
  CLI::App* o = ws->add_subcommand("open", "Print the workspace's URL");
  o->add_option("name", *name, "Workspace name")->required();
  o->add_flag("--wait", *wait, "Wait until it is ready");
  o->add_option("--timeout", *wait_timeout, "Seconds to wait with --wait")->capture_default_str();
  add_common(o);
  o->callback([=] {
    *action = [=] {
      const int64_t wait_ms = *wait ? int64_t{*wait_timeout} * 1000 : 0;
      return WithCommands(*flags, [&](auto& cmd) { return cmd.Open(*name, wait_ms); });
    };
  });

  CLI::App* stop = ws->add_subcommand("stop", "Stop the IDE and Ray (the home volume is kept)");
  stop->add_option("name", *name, "Workspace name")->required();
  add_common(stop);
  stop->callback([=] {
    *action = [=] { return WithCommands(*flags, [&](auto& cmd) { return cmd.Stop(*name); }); };
  });

  CLI::App* start = ws->add_subcommand("start", "Start a stopped workspace");
  start->add_option("name", *name, "Workspace name")->required();
  add_common(start);
  start->callback([=] {
    *action = [=] { return WithCommands(*flags, [&](auto& cmd) { return cmd.Start(*name); }); };
  });

  auto yes = std::make_shared<bool>(false);
  CLI::App* del = ws->add_subcommand("delete", "Delete a workspace and its home volume");
  del->add_option("name", *name, "Workspace name")->required();
  del->add_flag("-y,--yes", *yes, "Do not ask for confirmation");
  add_common(del);
  del->callback([=] {
    *action = [=] {
      if (!*yes) {
        if (!::isatty(STDIN_FILENO)) {
          fmt::print(stderr,
                     "tessera ws: deleting \"{}\" also deletes its home volume; pass --yes to "
                     "confirm\n",
                     *name);
          return 2;
        }
        fmt::print("Delete workspace \"{}\" and its home volume? Type its name to confirm: ",
                   *name);
        std::fflush(stdout);
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != *name) {
          fmt::print(stderr, "tessera ws: not deleted\n");
          return 1;
        }
      }
      return WithCommands(*flags, [&](auto& cmd) { return cmd.Delete(*name); });
    };
  });
}

}  // namespace tessera::workspaces::cli
