#include "workspaces/local/child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <thread>

#include "common/errors.h"
#include "common/signals.h"

namespace tessera::workspaces::local {
namespace {

// What the child reports through the close-on-exec pipe when it cannot get to exec.
struct ChildFailure {
  int stage;  // kStage*
  int error;  // errno
};
constexpr int kStageChdir = 1;
constexpr int kStageOutput = 2;
constexpr int kStageExec = 3;

std::string EnvValue(const std::vector<std::string>& env, std::string_view name) {
  for (const std::string& e : env) {
    if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
      return e.substr(name.size() + 1);
    }
  }
  return "";
}

// execve does not search PATH, and execvpe would search the parent's PATH: look the program up
// in the child's PATH here, before fork.
absl::StatusOr<std::string> ResolveProgram(const std::string& program,
                                           const std::vector<std::string>& env) {
  if (program.find('/') != std::string::npos) return program;
  std::string path = EnvValue(env, "PATH");
  if (path.empty()) path = "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    // An empty PATH entry means the current directory.
    const std::string_view dir =
        end > start ? std::string_view(path).substr(start, end - start) : std::string_view(".");
    std::string candidate = fmt::format("{}/{}", dir, program);  // GCC 12: no false -Wrestrict
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return NotFound("cannot start {}: not found in PATH ({})", program, path);
}

int StatusFromWait(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return 255;
}

// Only async-signal-safe calls from here to exec: the parent may have other threads.
[[noreturn]] void RunChild(const SpawnOptions& o, const char* program, char* const* argv,
                           char* const* envp, int report_fd) {
  auto fail = [report_fd](int stage) {
    ChildFailure f{stage, errno};
    ssize_t ignored = write(report_fd, &f, sizeof(f));
    (void)ignored;
    _exit(127);
  };
  ResetSignalsForExec();
  if (o.new_process_group) setpgid(0, 0);
  if (o.parent_death_signal != 0) prctl(PR_SET_PDEATHSIG, o.parent_death_signal);
  if (!o.cwd.empty() && chdir(o.cwd.c_str()) != 0) fail(kStageChdir);
  if (!o.output_path.empty()) {
    int fd = open(o.output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) fail(kStageOutput);
    if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) fail(kStageOutput);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
  } else if (o.stdout_to_stderr) {
    if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) fail(kStageOutput);
  }
  execve(program, argv, envp);
  fail(kStageExec);
  _exit(127);  // not reached
}

}  // namespace

ChildProcess::~ChildProcess() {
  if (started() && !exit_status_.has_value()) Stop(/*grace_ms=*/2000);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), own_group_(other.own_group_), exit_status_(other.exit_status_) {
  other.Release();
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (started() && !exit_status_.has_value()) Stop(/*grace_ms=*/2000);
    pid_ = other.pid_;
    own_group_ = other.own_group_;
    exit_status_ = other.exit_status_;
    other.Release();
  }
  return *this;
}

void ChildProcess::Release() {
  pid_ = -1;
  own_group_ = false;
  exit_status_.reset();
}

absl::Status ChildProcess::Start(const SpawnOptions& options) {
  if (started()) return FailedPrecondition("child process already started (pid {})", pid_);
  if (options.argv.empty()) return InvalidArgument("no program to start");
  absl::StatusOr<std::string> program = ResolveProgram(options.argv[0], options.env);
  if (!program.ok()) return program.status();

  // Everything the child needs is built before fork: it must not allocate.
  std::vector<char*> argv;
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    return Internal("cannot start {}: pipe: {}", options.argv[0], strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(report[0]);
    close(report[1]);
    return ResourceExhausted("cannot start {}: fork: {}", options.argv[0], strerror(e));
  }
  if (pid == 0) {
    close(report[0]);
    RunChild(options, program->c_str(), argv.data(), envp.data(), report[1]);
  }
  close(report[1]);
  // Also set the group from the parent: whichever runs first, the group exists before Stop().
  if (options.new_process_group) setpgid(pid, pid);
  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(report[0], &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  pid_ = pid;
  own_group_ = options.new_process_group;
  if (n == static_cast<ssize_t>(sizeof(failure))) {
    Wait();
    const char* what = failure.stage == kStageChdir    ? "cannot enter the working directory"
                       : failure.stage == kStageOutput ? "cannot open its output file"
                                                       : "exec failed";
    std::string detail = failure.stage == kStageChdir    ? options.cwd
                         : failure.stage == kStageOutput ? options.output_path
                                                         : *program;
    return FailedPrecondition("cannot start {}: {} ({}): {}", options.argv[0], what, detail,
                              strerror(failure.error));
  }
  return absl::OkStatus();
}

bool ChildProcess::Reap(bool block) {
  if (!started()) return true;
  if (exit_status_.has_value()) return true;
  int wstatus = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &wstatus, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_status_ = StatusFromWait(wstatus);
    return true;
  }
  if (r < 0) {
    // ECHILD: someone else reaped it; treat it as gone with an unknown status.
    exit_status_ = 255;
    return true;
  }
  return false;
}

bool ChildProcess::IsRunning() { return started() && !Reap(/*block=*/false); }

int ChildProcess::Wait() {
  Reap(/*block=*/true);
  return exit_status_.value_or(255);
}

std::optional<int> ChildProcess::WaitFor(int64_t timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto pause = std::chrono::milliseconds(1);
  while (!Reap(/*block=*/false)) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  return exit_status_;
}

void ChildProcess::Signal(int signal) {
  if (!started() || exit_status_.has_value()) return;
  if (own_group_) {
    kill(-pid_, signal);
  } else {
    kill(pid_, signal);
  }
}

int ChildProcess::Stop(int64_t grace_ms) {
  if (!started()) return 0;
  if (!exit_status_.has_value()) {
    Signal(SIGTERM);
    if (!WaitFor(grace_ms).has_value()) {
      Signal(SIGKILL);
      Wait();
    }
  }
  // The leader is gone; anything left in its group already had SIGTERM (and as long as the leader
  // took to exit): end it now rather than leave it orphaned.
  if (own_group_) kill(-pid_, SIGKILL);
  return *exit_status_;
}

std::string ChildProcess::DescribeExit() const {
  if (!exit_status_.has_value()) return "is still running";
  int s = *exit_status_;
  if (s > 128 && s < 128 + NSIG) {
    return fmt::format("was killed by signal {} ({})", s - 128, strsignal(s - 128));
  }
  return fmt::format("exited with code {}", s);
}

std::string TailOfFile(const std::string& path, int max_lines) {
  std::ifstream in(path);
  if (!in) return "";
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(std::move(line));
    if (static_cast<int>(lines.size()) > max_lines) lines.pop_front();
  }
  std::string out;
  for (const std::string& l : lines) {
    out += l;
    out += '\n';
  }
  return out;
}

}  // namespace tessera::workspaces::local
