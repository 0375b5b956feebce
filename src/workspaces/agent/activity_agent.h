#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/mutex.h"

// The activity agent: a sidecar of the IDE pod (`tessera ws agent`) that sees what code-server's
// heartbeat does not — typing in a terminal, programs using the CPU, the GPU — and tells the
// operator (`GET /activity`), and shows the operator's culling warning in the IDE's terminals
// (`POST /notice`).
//
// The pod shares one process namespace (shareProcessNamespace), so the agent reads the IDE's
// processes from /proc:
//   - terminal input: the newest access time of the pseudo-terminals (/dev/pts/N) that
//     processes hold open; the kernel updates a tty's atime when input is read from it, in
//     8-second steps (so typing is seen within 8 s, and keystroke timing is not exposed);
//   - CPU: the CPU time each process (but the agent) used since the previous sample, its reaped
//     children's included (so a build of short-lived compiler processes counts), as a rate over
//     the interval; "in use" at or above a threshold (code-server and the mesh sidecar idling
//     take ~0.01–0.05 cores);
//   - GPU: the IDE container cannot share its GPU with a sidecar, so the IDE writes the busiest
//     GPU's utilization (nvidia-smi, every 15 s) to a file on a shared emptyDir; the agent reads
//     it, and treats a file older than a minute as no reading.
// Timestamps are wall-clock epoch milliseconds from the injected clock.
namespace tessera::workspaces::agent {

struct AgentOptions {
  std::string proc_root = "/proc";
  std::string pts_prefix = "/dev/pts/";  // a tty held open is a symlink target under this
  std::string gpu_file;                  // "" = no GPU
  double cpu_active_cores = 0.2;
  double gpu_active_percent = 5;
  int64_t gpu_file_max_age_ms = 60'000;
  int self_pid = 0;  // excluded from the CPU sum; 0 = getpid()
  const Clock* clock = SystemClock::Default();
};

// Thread-safety: Sample() from one thread; Activity() and Notice() from any.
class ActivityAgent {
 public:
  explicit ActivityAgent(AgentOptions options);

  // Reads /proc (and the GPU file) once and updates the last-activity times.
  void Sample();

  // {"terminal": {"last_input_ms", "ttys"}, "cpu": {"last_active_ms", "cores"},
  //  "gpu": {"available", "last_active_ms", "utilization_percent"}, "sampled_at_ms"}
  nlohmann::json Activity() const;

  // Writes `message` (control characters removed, at most 1,000 bytes) on its own lines to every
  // terminal the IDE's processes hold open. Returns how many terminals got it.
  absl::StatusOr<int> Notice(std::string_view message) const;

 private:
  struct ProcSnapshot {
    // pid → (start time, CPU ticks of the process and its reaped children), but the agent's
    std::map<int, std::pair<uint64_t, uint64_t>> processes;
    int64_t newest_tty_input_ms = 0;
    int ttys = 0;
  };
  ProcSnapshot ReadProc() const;
  // One /proc/PID/fd/N path per distinct terminal the processes hold open.
  std::vector<std::string> TerminalFds() const;

  const AgentOptions options_;
  const int self_pid_;
  const long ticks_per_second_;  // NOLINT(google-runtime-int): sysconf's type

  mutable Mutex mu_;
  bool sampled_ ABSL_GUARDED_BY(mu_) = false;
  std::map<int, std::pair<uint64_t, uint64_t>> last_processes_ ABSL_GUARDED_BY(mu_);
  int64_t last_sample_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_input_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int ttys_ ABSL_GUARDED_BY(mu_) = 0;
  double cores_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t cpu_active_ms_ ABSL_GUARDED_BY(mu_) = 0;
  bool gpu_available_ ABSL_GUARDED_BY(mu_) = false;
  double gpu_percent_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t gpu_active_ms_ ABSL_GUARDED_BY(mu_) = 0;
};

struct AgentServerOptions {
  std::string address = "0.0.0.0";
  uint16_t port = 8090;
  int64_t interval_ms = 5'000;
};

// Serves the agent (GET /activity, POST /notice, GET /healthz) and samples every interval until
// SIGTERM/SIGINT. `on_listening` gets the bound port (tests bind port 0).
absl::Status RunAgent(const AgentOptions& options, const AgentServerOptions& server,
                      const std::function<void(uint16_t)>& on_listening);

}  // namespace tessera::workspaces::agent
