#include <fmt/format.h>

#include <memory>

#include "common/errors.h"
#include "common/net_util.h"
#include "workspaces/agent/activity_agent.h"
#include "workspaces/cli/ws_cli.h"

// `tessera ws agent`: the activity agent (workspaces/agent/activity_agent.h). The operator runs
// it as a sidecar of every IDE pod; people do not run it by hand.
namespace tessera::workspaces::cli {

void AddAgentCommand(CLI::App* ws, Action* action) {
  auto options = std::make_shared<agent::AgentOptions>();
  auto listen = std::make_shared<std::string>("0.0.0.0:8090");
  auto interval_ms = std::make_shared<int64_t>(5'000);
  CLI::App* cmd = ws->add_subcommand(
      "agent",
      "The activity agent of an IDE pod (run by the operator as a sidecar): serves terminal "
      "input, CPU and GPU use on GET /activity and shows notices in the IDE's terminals");
  cmd->group("");  // not for people: hidden from `tessera ws --help`
  cmd->add_option("--listen", *listen, "HOST:PORT to serve on")->capture_default_str();
  cmd->add_option("--interval-ms", *interval_ms, "Sampling interval")
      ->check(CLI::Range(int64_t{100}, int64_t{600'000}))
      ->capture_default_str();
  cmd->add_option("--proc", options->proc_root, "The process table (shared with the IDE)")
      ->capture_default_str();
  cmd->add_option("--gpu-file", options->gpu_file,
                  "File the IDE writes its busiest GPU's utilization (%) to; empty: no GPU");
  cmd->add_option("--cpu-active-cores", options->cpu_active_cores,
                  "CPU use (cores) that counts as activity")
      ->capture_default_str();
  cmd->callback([action, options, listen, interval_ms] {
    *action = [options, listen, interval_ms]() -> int {
      HostPortOptions strict;
      strict.require_host = true;
      absl::StatusOr<HostPort> hp = ParseHostPort(*listen, strict);
      if (!hp.ok()) {
        fmt::print(stderr, "tessera ws agent: --listen \"{}\" is not HOST:PORT\n", *listen);
        return 2;
      }
      agent::AgentServerOptions server{
          .address = hp->host, .port = hp->port, .interval_ms = *interval_ms};
      absl::Status s = agent::RunAgent(*options, server, [&](uint16_t port) {
        fmt::print("tessera ws agent: listening on http://{}:{}\n", hp->host, port);
        std::fflush(stdout);
      });
      if (!s.ok()) {
        fmt::print(stderr, "tessera ws agent: error: {}\n", StatusMessage(s));
        return 1;
      }
      return 0;
    };
  });
}

}  // namespace tessera::workspaces::cli
