#pragma once

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"

// A template's initCommands in local mode: run once per workspace folder, in order, in the
// folder, each as `sh -c 'set -e; <command>'`, with their output shown on the terminal. The
// folder's ledger (.tessera-workspace/init-commands.done) records each command that succeeded,
// by a hash of its text, so running `tessera ws up` again runs only commands not yet recorded:
// new ones, and edited ones (an edit changes the hash). A failed command is not recorded and
// stops the start; the next `up` retries it (and runs nothing before it again).
namespace tessera::workspaces::local {

class InitCommandLedger {
 public:
  explicit InitCommandLedger(std::string path) : path_(std::move(path)) {}

  // Reads the ledger; a missing file is an empty ledger.
  absl::Status Load();
  bool Done(std::string_view command) const;
  // Appends the command to the ledger file (and flushes it to disk) and to the loaded set.
  absl::Status Record(std::string_view command);

  // The ledger's key for a command: 16 hex digits of its 64-bit XXH3 hash.
  static std::string Key(std::string_view command);

 private:
  std::string path_;
  std::unordered_set<std::string> done_;
};

struct InitCommandOptions {
  std::string dir;               // the workspace folder: the commands' working directory
  std::string ledger_path;       // usually dir/.tessera-workspace/init-commands.done
  std::vector<std::string> env;  // the commands' whole environment ("NAME=value")
  std::string shell = "/bin/sh";
};

// Runs the commands the ledger does not hold yet. Progress lines and the commands' output
// (stdout and stderr) go to stderr. Returns FailedPrecondition naming the command's index, its
// text and how it ended when one fails.
absl::Status RunInitCommands(const std::vector<std::string>& commands,
                             const InitCommandOptions& options);

}  // namespace tessera::workspaces::local
