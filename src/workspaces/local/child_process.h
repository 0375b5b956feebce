#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// One child process started with fork + exec, for local workspaces: code-server, the features
// engine (`tessera run`), init commands and extension installs.
namespace tessera::workspaces::local {

struct SpawnOptions {
  // argv[0] is the program: an absolute path, or a name looked up in the child's PATH.
  std::vector<std::string> argv;
  // The child's whole environment, as "NAME=value" entries.
  std::vector<std::string> env;
  // Working directory of the child; empty: the parent's.
  std::string cwd;
  // When set, the child's stdout and stderr are appended to this file (created 0600 if missing);
  // otherwise both are inherited.
  std::string output_path;
  // With an inherited output, send the child's stdout to the parent's stderr (keeps the parent's
  // stdout for its own machine-readable lines).
  bool stdout_to_stderr = false;
  // Put the child in a process group of its own: a terminal's Ctrl-C then reaches only the
  // parent, which stops its children in order, and Stop() reaches the child's own children too.
  bool new_process_group = true;
  // The signal the child gets when the thread that started it exits (PR_SET_PDEATHSIG), so a
  // parent killed with SIGKILL does not leave an orphaned server behind. 0: none.
  int parent_death_signal = 0;
};

// Not thread-safe: one owner thread calls every method. The child's signal mask is cleared and
// SIGINT, SIGTERM, SIGCHLD and SIGPIPE get their default actions, whatever the parent blocked or
// ignored. The destructor stops a child that is still running (Stop with a short grace).
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& other) noexcept;
  // Stops this object's child (if running) before taking over `other`'s.
  ChildProcess& operator=(ChildProcess&& other) noexcept;

  // Starts the child. Fails (without leaving a child behind) when fork fails, the output file or
  // the working directory cannot be opened, or exec fails (the message names the program and the
  // errno text). REQUIRES: not started before.
  absl::Status Start(const SpawnOptions& options);

  // True while the child has not exited. Reaps it when it has (then exit_status() is set).
  bool IsRunning();

  // Blocks until the child exits; returns its exit status (see exit_status()).
  // REQUIRES: started.
  int Wait();

  // Waits at most `timeout_ms`; nullopt if the child is still running then.
  std::optional<int> WaitFor(int64_t timeout_ms);

  // Sends SIGTERM (to the child's process group when it has one), waits up to `grace_ms` for the
  // child to exit, then sends SIGKILL; finally SIGKILLs what is left of the group, so helper
  // processes the child started do not outlive it. Returns the exit status. A no-op returning
  // the known status when the child already exited.
  int Stop(int64_t grace_ms);

  // Sends `signal` to the child (its group when it has one). No-op once it exited.
  void Signal(int signal);

  // Forgets the child without stopping it: it keeps running, and nobody reaps it.
  void Release();

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }
  // The exit code when the child exited normally, 128 + N when signal N killed it; nullopt while
  // it runs.
  std::optional<int> exit_status() const { return exit_status_; }
  // Describes how the child ended: "exited with code 3", "was killed by signal 9 (Killed)".
  std::string DescribeExit() const;

 private:
  bool Reap(bool block);

  pid_t pid_ = -1;
  bool own_group_ = false;
  std::optional<int> exit_status_;
};

// The last `max_lines` lines of a text file (for error messages quoting a child's log); empty
// when the file cannot be read.
std::string TailOfFile(const std::string& path, int max_lines);

}  // namespace tessera::workspaces::local
