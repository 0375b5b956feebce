#include "store/bigtable/bigtable_emulator.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "common/errors.h"

namespace tessera::store {

namespace {

constexpr char kSdkBinary[] = "/usr/lib/google-cloud-sdk/platform/bigtable-emulator/cbtemulator";
constexpr char kReady[] = "running on ";

bool Executable(const std::string& path) {
  return !path.empty() && ::access(path.c_str(), X_OK) == 0 &&
         std::filesystem::is_regular_file(path);
}

}  // namespace

std::string BigtableEmulator::FindBinary() {
  if (const char* env = std::getenv("TESSERA_CBTEMULATOR"); env != nullptr && Executable(env)) {
    return env;
  }
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::istringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (!dir.empty() && Executable(dir + "/cbtemulator")) return dir + "/cbtemulator";
    }
  }
  return Executable(kSdkBinary) ? kSdkBinary : "";
}

absl::StatusOr<std::unique_ptr<BigtableEmulator>> BigtableEmulator::Start(uint16_t port) {
  const std::string binary = FindBinary();
  if (binary.empty()) {
    return NotFound(
        "cbtemulator not found (install google-cloud-cli-bigtable-emulator, or set "
        "TESSERA_CBTEMULATOR)");
  }
  static std::atomic<int> counter{0};
  std::unique_ptr<BigtableEmulator> e(new BigtableEmulator());
  e->log_path_ = (std::filesystem::temp_directory_path() /
                  fmt::format("cbtemulator_{}_{}.log", ::getpid(), counter.fetch_add(1)))
                     .string();
  // Everything the child needs is built before fork (only async-signal-safe calls after it).
  std::string address = fmt::format("127.0.0.1:{}", port);
  std::string flag = "-address";
  std::string exe = binary;
  std::vector<char*> argv = {exe.data(), flag.data(), address.data(), nullptr};
  const int log_fd = ::open(e->log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return Internal("cannot create {}", e->log_path_);
  const pid_t parent = ::getpid();
  e->pid_ = ::fork();
  if (e->pid_ < 0) {
    ::close(log_fd);
    return Internal("fork failed");
  }
  if (e->pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the parent died before prctl
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string out = e->Output();
    if (size_t at = out.find(kReady); at != std::string::npos) {
      const size_t end = out.find('\n', at);
      if (end != std::string::npos) {
        e->host_port_ = out.substr(at + sizeof(kReady) - 1, end - at - (sizeof(kReady) - 1));
        const size_t colon = e->host_port_.rfind(':');
        e->port_ = static_cast<uint16_t>(std::atoi(e->host_port_.c_str() + colon + 1));
        return e;
      }
    }
    int status = 0;
    if (::waitpid(e->pid_, &status, WNOHANG) == e->pid_) {
      e->pid_ = -1;
      return Unavailable("cbtemulator on {} exited (status {}): {}", address, status, out);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string out = e->Output();
  e->Kill();
  return Unavailable("cbtemulator on {} did not start within 20 s: {}", address, out);
}

BigtableEmulator::~BigtableEmulator() {
  Kill();
  if (!log_path_.empty()) {
    std::error_code ec;
    std::filesystem::remove(log_path_, ec);
  }
}

void BigtableEmulator::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string BigtableEmulator::Output() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace tessera::store
