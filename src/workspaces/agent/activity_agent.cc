#include "workspaces/agent/activity_agent.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "common/signals.h"
#include "serve/http_server.h"

namespace tessera::workspaces::agent {
namespace {

using nlohmann::json;

bool IsNumber(const char* s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

std::vector<std::string> NumericEntries(const std::string& dir, size_t limit) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (IsNumber(e->d_name)) out.emplace_back(e->d_name);
    if (out.size() >= limit) break;
  }
  closedir(d);
  return out;
}

struct ProcTicks {
  uint64_t start_time = 0;  // field 22: tells a reused pid from the process it had before
  uint64_t ticks = 0;       // utime + stime + cutime + cstime (14–17): reaped children count too
};

// From /proc/PID/stat (the command name in field 2 may hold spaces and parentheses, so fields
// are counted after its last ')').
std::optional<ProcTicks> ReadTicks(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 1));
  std::string field;
  ProcTicks out;
  int i = 3;
  for (; i <= 22 && fields >> field; ++i) {
    const uint64_t v = std::strtoull(field.c_str(), nullptr, 10);
    if (i >= 14 && i <= 17) out.ticks += v;
    if (i == 22) out.start_time = v;
  }
  if (i <= 22) return std::nullopt;  // truncated
  return out;
}

std::string ReadLink(const std::string& path) {
  char buf[512];
  const ssize_t n = readlink(path.c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Control characters become spaces — C0, DEL, and the C1 controls U+0080–U+009F (UTF-8
// C2 80–C2 9F), which terminals read as CSI/OSC; at most 1,000 bytes, cut at a UTF-8
// character boundary.
std::string Sanitize(std::string_view message) {
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {
    const auto u = static_cast<unsigned char>(message[i]);
    if (u == 0xC2 && i + 1 < message.size() && static_cast<unsigned char>(message[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(message[i + 1]) <= 0x9F) {
      out.push_back(' ');
      ++i;
      continue;
    }
    out.push_back(u < 0x20 || u == 0x7f ? ' ' : message[i]);
  }
  if (out.size() > 1000) {
    size_t cut = 1000;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
  return out;
}

}  // namespace

ActivityAgent::ActivityAgent(AgentOptions options)
    : options_(std::move(options)),
      self_pid_(options_.self_pid != 0 ? options_.self_pid : static_cast<int>(getpid())),
      ticks_per_second_(std::max(1L, sysconf(_SC_CLK_TCK))) {}

std::vector<std::string> ActivityAgent::TerminalFds() const {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& pid : NumericEntries(options_.proc_root, 100'000)) {
    if (pid == std::to_string(self_pid_)) continue;
    const std::string fd_dir = fmt::format("{}/{}/fd", options_.proc_root, pid);
    for (const std::string& fd : NumericEntries(fd_dir, 256)) {
      const std::string fd_path = fmt::format("{}/{}", fd_dir, fd);
      const std::string target = ReadLink(fd_path);
      if (target.rfind(options_.pts_prefix, 0) != 0) continue;
      if (target.size() > options_.pts_prefix.size() &&
          IsNumber(target.c_str() + options_.pts_prefix.size()) && seen.insert(target).second) {
        out.push_back(fd_path);
      }
    }
  }
  return out;
}

ActivityAgent::ProcSnapshot ActivityAgent::ReadProc() const {
  ProcSnapshot snap;
  for (const std::string& pid : NumericEntries(options_.proc_root, 100'000)) {
    if (pid == std::to_string(self_pid_)) continue;
    std::optional<ProcTicks> t = ReadTicks(fmt::format("{}/{}/stat", options_.proc_root, pid));
    if (t) snap.processes[std::atoi(pid.c_str())] = {t->start_time, t->ticks};
  }
  for (const std::string& fd_path : TerminalFds()) {
    struct stat st {};
    if (stat(fd_path.c_str(), &st) != 0) continue;  // the process or terminal just went away
    ++snap.ttys;
    const int64_t atime_ms = int64_t{st.st_atim.tv_sec} * 1000 + st.st_atim.tv_nsec / 1'000'000;
    snap.newest_tty_input_ms = std::max(snap.newest_tty_input_ms, atime_ms);
  }
  return snap;
}

void ActivityAgent::Sample() {
  ProcSnapshot snap = ReadProc();
  const int64_t now = options_.clock->NowMillis();
  std::optional<double> gpu;
  if (!options_.gpu_file.empty()) {
    // The IDE's user owns the directory: only a regular file is read (not a FIFO that would
    // block, not a symlink elsewhere), and only its first bytes.
    const int fd = open(options_.gpu_file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      const int64_t mtime_ms = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1'000'000;
      char buf[32] = {};
      const ssize_t n = read(fd, buf, sizeof(buf) - 1);
      char* end = nullptr;
      const double percent = n > 0 ? std::strtod(buf, &end) : 0;
      if (n > 0 && end != buf && std::isfinite(percent) &&
          now - mtime_ms <= options_.gpu_file_max_age_ms) {
        gpu = std::clamp(percent, 0.0, 100.0);
      }
    }
    if (fd >= 0) close(fd);
  }
  MutexLock lock(&mu_);
  if (sampled_ && now > last_sample_ms_) {
    // Per process: what it used since the last sample (all of it for a process that is new, or
    // whose pid was reused); processes that exited since are gone from both sides.
    uint64_t used = 0;
    for (const auto& [pid, now_t] : snap.processes) {
      auto before = last_processes_.find(pid);
      if (before == last_processes_.end() || before->second.first != now_t.first) {
        used += now_t.second;
      } else if (now_t.second > before->second.second) {
        used += now_t.second - before->second.second;
      }
    }
    const double seconds = (now - last_sample_ms_) / 1000.0;
    cores_ = static_cast<double>(used) / ticks_per_second_ / seconds;
    if (cores_ >= options_.cpu_active_cores) cpu_active_ms_ = now;
  }
  sampled_ = true;
  last_processes_ = std::move(snap.processes);
  last_sample_ms_ = now;
  ttys_ = snap.ttys;
  last_input_ms_ = std::max(last_input_ms_, std::min(snap.newest_tty_input_ms, now));
  gpu_available_ = gpu.has_value();
  gpu_percent_ = gpu.value_or(0);
  if (gpu && *gpu >= options_.gpu_active_percent) gpu_active_ms_ = now;
}

json ActivityAgent::Activity() const {
  MutexLock lock(&mu_);
  return json{{"terminal", {{"last_input_ms", last_input_ms_}, {"ttys", ttys_}}},
              {"cpu", {{"last_active_ms", cpu_active_ms_}, {"cores", cores_}}},
              {"gpu",
               {{"available", gpu_available_},
                {"last_active_ms", gpu_active_ms_},
                {"utilization_percent", gpu_percent_}}},
              {"sampled_at_ms", last_sample_ms_}};
}

absl::StatusOr<int> ActivityAgent::Notice(std::string_view message) const {
  const std::string text = fmt::format("\r\n\a[tessera] {}\r\n", Sanitize(message));
  int reached = 0;
  for (const std::string& fd_path : TerminalFds()) {
    const int fd = open(fd_path.c_str(), O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    if (write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size())) ++reached;
    close(fd);
  }
  return reached;
}

absl::Status RunAgent(const AgentOptions& options, const AgentServerOptions& server_options,
                      const std::function<void(uint16_t)>& on_listening) {
  const sigset_t signals = BlockStopSignals();
  ActivityAgent agent(options);
  agent.Sample();
  serve::HttpServerOptions http_options;
  http_options.address = server_options.address;
  http_options.port = server_options.port;
  http_options.threads = 1;
  serve::HttpServer http(http_options);
  http.Route("GET", "/activity", [&](serve::HttpRequest&&, serve::Responder respond) {
    respond(serve::HttpResponse::Json(200, agent.Activity().dump()));
  });
  http.Route("GET", "/healthz", [](serve::HttpRequest&&, serve::Responder respond) {
    respond(serve::HttpResponse::Json(200, R"({"status":"ok"})"));
  });
  http.Route("POST", "/notice", [&](serve::HttpRequest&& request, serve::Responder respond) {
    const json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || !body.contains("message") || !body["message"].is_string()) {
      respond(serve::HttpResponse::Error(400, "expected {\"message\": \"…\"}"));
      return;
    }
    absl::StatusOr<int> reached = agent.Notice(body["message"].get<std::string>());
    respond(serve::HttpResponse::Json(200, json{{"terminals", reached.value_or(0)}}.dump()));
  });
  if (absl::Status s = http.Start(); !s.ok()) return s;
  on_listening(http.port());
  while (true) {
    const int sig = WaitForSignalFor(signals, server_options.interval_ms);
    if (sig > 0) break;
    agent.Sample();
  }
  http.Stop();
  return absl::OkStatus();
}

}  // namespace tessera::workspaces::agent
