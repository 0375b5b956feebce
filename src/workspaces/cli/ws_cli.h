#pragma once

#include <CLI/CLI.hpp>
#include <functional>

// `tessera ws …`: workspaces for users who should never need kubectl.
//   cluster mode (cluster_commands.cc): create, list, describe, open, stop, start, delete — on
//     the cluster of the user's kubeconfig;
//   local mode (local_commands.cc): `up --local [DIR]` runs code-server on this machine;
//   `agent` (agent_command.cc): the activity agent the operator runs beside each IDE.
namespace tessera::workspaces::cli {

// What a parsed command does; returns the process exit code (0 ok, 1 failed, 2 usage).
using Action = std::function<int()>;

// Adds the `ws` subcommand tree to `app`. When one of its commands is parsed, *action is set;
// the caller runs it after CLI11_PARSE. `action` must outlive parsing.
void AddWsCommands(CLI::App* app, Action* action);

// The two halves, each in its own file.
void AddClusterCommands(CLI::App* ws, Action* action);
void AddLocalCommands(CLI::App* ws, Action* action);
void AddAgentCommand(CLI::App* ws, Action* action);
void AddReportCommand(CLI::App* ws, Action* action);

}  // namespace tessera::workspaces::cli
