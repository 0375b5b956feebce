#include <fmt/format.h>

#include <memory>

#include "common/errors.h"
#include "workspaces/cli/ws_cli.h"
#include "workspaces/local/local_workspace.h"

// `tessera ws up --local [DIR]`: a workspace on this machine (see local/local_workspace.h).
namespace tessera::workspaces::cli {

void AddLocalCommands(CLI::App* ws, Action* action) {
  // Owned by the callback, which CLI11 keeps for as long as `ws` (and so the parse) lives.
  auto options = std::make_shared<local::LocalOptions>();
  auto local = std::make_shared<bool>(false);

  CLI::App* up = ws->add_subcommand(
      "up",
      "Run a workspace on this machine: VS Code in the browser (code-server) on loopback, "
      "behind a generated password, until Ctrl-C");
  up->add_flag("--local", *local,
               "Run it on this machine (required: on a cluster, use `tessera ws create`)");
  up->add_option("DIR", options->dir, "The folder the IDE opens (created if missing)")
      ->capture_default_str();
  up->add_option("--template", options->template_file,
                 "A WorkspaceTemplate YAML file (the cluster format): env, initCommands and "
                 "extensions apply locally")
      ->check(CLI::ExistingFile);
  up->add_option("--port", options->port, "code-server's port on 127.0.0.1 (default: a free one)")
      ->check(CLI::Range(0, 65535));
  auto* features = up->add_option("--features", options->features_url,
                                  "URL of a running features engine (TESSERA_URL in the IDE)");
  auto* sql = up->add_option("--sql", options->sql_file,
                             "Start `tessera run --sql FILE` for the workspace and use it")
                  ->check(CLI::ExistingFile);
  features->excludes(sql);
  up->add_option("--code-server-prefix", options->code_server_prefix,
                 "Where scripts/install-code-server.sh installed code-server (default: "
                 "$TESSERA_CODE_SERVER_PREFIX, else out/tools/ of this repository)");
  up->add_flag("--open", options->open_browser, "Open the URL in a browser when ready");

  up->callback([action, options, local] {
    *action = [options, local]() -> int {
      if (!*local) {
        fmt::print(stderr,
                   "tessera ws up: only --local is supported: `tessera ws up --local [DIR]` runs "
                   "a workspace on this machine. For a workspace on the cluster, use `tessera ws "
                   "create NAME` (see `tessera ws --help`).\n");
        return 2;
      }
      absl::Status s = local::RunLocalWorkspace(*options);
      if (!s.ok()) {
        fmt::print(stderr, "tessera ws up: error: {}\n", StatusMessage(s));
        return 1;
      }
      return 0;
    };
  });
}

}  // namespace tessera::workspaces::cli
