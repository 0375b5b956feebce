#include "workspaces/cli/ws_cli.h"

namespace tessera::workspaces::cli {

void AddLocalCommands(CLI::App* ws, Action* action) {}

}  // namespace tessera::workspaces::cli
