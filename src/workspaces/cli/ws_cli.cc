#include "workspaces/cli/ws_cli.h"

namespace tessera::workspaces::cli {

void AddWsCommands(CLI::App* app, Action* action) {
  CLI::App* ws = app->add_subcommand(
      "ws", "Workspaces: VS Code in the browser with a Ray cluster (cluster or --local)");
  ws->require_subcommand(1);
  AddClusterCommands(ws, action);
  AddLocalCommands(ws, action);
  AddAgentCommand(ws, action);
  AddReportCommand(ws, action);
}

}  // namespace tessera::workspaces::cli
