#include "workspaces/kube/kube_cluster_process.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "common/status_macros.h"

#ifndef TESSERA_SOURCE_DIR
#error "TESSERA_SOURCE_DIR must be defined"
#endif

namespace tessera::workspaces::kube {

KubeClusterProcess::~KubeClusterProcess() { Stop(); }

absl::Status KubeClusterProcess::ReadLine(std::string* line, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (pending_.find('\n') == std::string::npos) {
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          deadline - std::chrono::steady_clock::now())
                                          .count());
    if (left <= 0) return Unavailable("tests/kube/cluster.py said nothing in {} ms", timeout_ms);
    pollfd pfd{stdout_fd_, POLLIN, 0};
    if (poll(&pfd, 1, left) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(stdout_fd_, buf, sizeof(buf));
    if (n <= 0) return Unavailable("tests/kube/cluster.py exited (it printed \"{}\")", pending_);
    pending_.append(buf, static_cast<size_t>(n));
  }
  const size_t nl = pending_.find('\n');
  *line = pending_.substr(0, nl);
  pending_.erase(0, nl + 1);
  return absl::OkStatus();
}

absl::Status KubeClusterProcess::Start() {
  int in[2];
  int out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return Internal("pipe failed");
  std::vector<std::string> args = {
      "python3", std::string(TESSERA_SOURCE_DIR) + "/tests/kube/cluster.py", "--crds"};
  pid_ = fork();
  if (pid_ < 0) return Internal("fork failed");
  if (pid_ == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("python3", argv.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  stdin_fd_ = in[1];
  stdout_fd_ = out[0];
  std::string line;
  if (absl::Status s = ReadLine(&line, 120'000); !s.ok()) {
    Stop();
    return s;
  }
  if (line.rfind("skip: ", 0) == 0) {
    Stop();
    return FailedPrecondition("{}", line.substr(6));
  }
  if (line.rfind("ready ", 0) != 0) {
    Stop();
    return Unavailable("tests/kube/cluster.py did not start (printed \"{}\")", line);
  }
  const nlohmann::json info = nlohmann::json::parse(line.substr(6), nullptr, false);
  if (!info.is_object()) return Unavailable("tests/kube/cluster.py printed \"{}\"", line);
  url_ = info.value("url", "");
  const nlohmann::json kubeconfigs = info.value("kubeconfigs", nlohmann::json::object());
  for (auto it = kubeconfigs.begin(); it != kubeconfigs.end(); ++it) {
    if (it->is_string()) kubeconfigs_[it.key()] = it->get<std::string>();
  }
  return absl::OkStatus();
}

absl::Status KubeClusterProcess::RestartApiServer() {
  const char command[] = "restart-apiserver\n";
  if (write(stdin_fd_, command, sizeof(command) - 1) != sizeof(command) - 1) {
    return Unavailable("cannot write to tests/kube/cluster.py");
  }
  std::string line;
  TESSERA_RETURN_IF_ERROR(ReadLine(&line, 90'000));
  if (line != "restarted") return Unavailable("cluster.py answered \"{}\" to a restart", line);
  return absl::OkStatus();
}

std::string KubeClusterProcess::KubeconfigPath(const std::string& user) const {
  auto it = kubeconfigs_.find(user);
  return it == kubeconfigs_.end() ? "" : it->second;
}

void KubeClusterProcess::Stop() {
  if (stdin_fd_ >= 0) {
    close(stdin_fd_);  // cluster.py stops everything and removes its directory
    stdin_fd_ = -1;
  }
  if (pid_ > 0) {
    bool exited = false;
    for (int i = 0; i < 1000 && !exited; ++i) {  // up to 20 s for a clean stop
      exited = waitpid(pid_, nullptr, WNOHANG) == pid_;
      if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (i == 500) kill(pid_, SIGTERM);
    }
    if (!exited) {
      kill(pid_, SIGKILL);  // its children die with it (PR_SET_PDEATHSIG)
      waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }
  if (stdout_fd_ >= 0) {
    close(stdout_fd_);
    stdout_fd_ = -1;
  }
}

}  // namespace tessera::workspaces::kube
