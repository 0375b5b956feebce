#include "workspaces/cli/ws_cli.h"

namespace tessera::workspaces::cli {

void AddClusterCommands(CLI::App* ws, Action* action) {}

}  // namespace tessera::workspaces::cli
