#include "workspaces/agent/activity_agent.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/clock.h"

namespace tessera::workspaces::agent {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1'760'000'000'000;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ws_agent_test_XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Sub(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

// A /proc of our own: /proc/PID/stat with utime/stime, /proc/PID/fd/N symlinks to "terminals"
// (plain files under a pts directory, whose atime stands for the last input read).
class FakeProc {
 public:
  FakeProc() : root_(tmp_.Sub("proc")), pts_(tmp_.Sub("pts") + "/") {
    fs::create_directories(root_);
    fs::create_directories(pts_);
  }
  void Process(int pid, uint64_t utime, uint64_t stime, const std::vector<int>& ttys = {},
               uint64_t children = 0, uint64_t start_time = 100) {
    const std::string dir = root_ + "/" + std::to_string(pid);
    fs::remove_all(dir + "/fd");
    fs::create_directories(dir + "/fd");
    // Field 2 holds spaces and a ')' on purpose.
    std::ofstream(dir + "/stat") << pid << " (my (odd) cmd) S 1 1 1 0 -1 4194560 100 0 0 0 "
                                 << utime << " " << stime << " " << children << " 0 20 0 1 0 "
                                 << start_time << " 0 0\n";
    int fd = 0;
    for (int tty : ttys) {
      const std::string target = pts_ + std::to_string(tty);
      if (!fs::exists(target)) std::ofstream(target) << "";
      fs::create_symlink(target, dir + "/fd/" + std::to_string(fd++));
    }
    if (!fs::exists(tmp_.Sub("not-a-tty"))) std::ofstream(tmp_.Sub("not-a-tty")) << "";
    fs::create_symlink(tmp_.Sub("not-a-tty"), dir + "/fd/" + std::to_string(fd++));
  }
  void Input(int tty, int64_t at_ms) {
    const std::string path = pts_ + std::to_string(tty);
    timespec times[2] = {{at_ms / 1000, (at_ms % 1000) * 1'000'000}, {0, UTIME_OMIT}};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  }
  std::string Read(int tty) {
    std::ifstream in(pts_ + std::to_string(tty));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  AgentOptions Options(const Clock* clock) {
    AgentOptions o;
    o.proc_root = root_;
    o.pts_prefix = pts_;
    o.clock = clock;
    o.self_pid = 999'999;
    return o;
  }
  std::string Sub(const std::string& name) { return tmp_.Sub(name); }

 private:
  TempDir tmp_;
  std::string root_;
  std::string pts_;
};

TEST(ActivityAgentTest, TerminalInputIsTheNewestAtimeOfTheTerminalsHeldOpen) {
  FakeProc proc;
  FakeClock clock(kT0);
  proc.Process(10, 0, 0, {3});
  proc.Process(11, 0, 0, {3, 4});  // the same terminal twice counts once
  proc.Input(3, kT0 - 60'000);
  proc.Input(4, kT0 - 30'000);
  ActivityAgent agent(proc.Options(&clock));
  agent.Sample();
  nlohmann::json a = agent.Activity();
  EXPECT_EQ(a["terminal"]["ttys"], 2);
  EXPECT_EQ(a["terminal"]["last_input_ms"], kT0 - 30'000);
  // Typing later; an atime in the future (clock skew) is capped at now.
  clock.AdvanceMillis(10'000);
  proc.Input(3, kT0 + 5'000);
  agent.Sample();
  EXPECT_EQ(agent.Activity()["terminal"]["last_input_ms"], kT0 + 5'000);
  proc.Input(4, kT0 + 999'000);
  agent.Sample();
  EXPECT_EQ(agent.Activity()["terminal"]["last_input_ms"], kT0 + 10'000);
}

TEST(ActivityAgentTest, CpuUseIsARateOverTheIntervalAndTheAgentItselfIsNotCounted) {
  FakeProc proc;
  FakeClock clock(kT0);
  const long hz = sysconf(_SC_CLK_TCK);
  proc.Process(10, 0, 0);
  proc.Process(999'999, 0, 0);  // the agent
  ActivityAgent agent(proc.Options(&clock));
  agent.Sample();
  // 10 s later: pid 10 used 0.01 cores (idle code-server), the agent 5 cores (ignored).
  clock.AdvanceMillis(10'000);
  proc.Process(10, static_cast<uint64_t>(hz / 10), 0);
  proc.Process(999'999, static_cast<uint64_t>(50 * hz), 0);
  agent.Sample();
  nlohmann::json a = agent.Activity();
  EXPECT_NEAR(a["cpu"]["cores"].get<double>(), 0.01, 1e-6);
  EXPECT_EQ(a["cpu"]["last_active_ms"], 0);  // never busy
  // Then 1.5 cores for 10 s (a training loop): active now.
  clock.AdvanceMillis(10'000);
  proc.Process(10, static_cast<uint64_t>(hz / 10 + 10 * hz), static_cast<uint64_t>(5 * hz));
  agent.Sample();
  a = agent.Activity();
  EXPECT_NEAR(a["cpu"]["cores"].get<double>(), 1.5, 1e-6);
  EXPECT_EQ(a["cpu"]["last_active_ms"], kT0 + 20'000);
  // A process that exits makes the sum shrink: no negative rate, no false activity.
  clock.AdvanceMillis(10'000);
  fs::remove_all(proc.Sub("proc") + "/10");
  agent.Sample();
  EXPECT_EQ(agent.Activity()["cpu"]["last_active_ms"], kT0 + 20'000);
  EXPECT_NEAR(agent.Activity()["cpu"]["cores"].get<double>(), 0, 1e-9);
  // A build: `make` (pid 20) reaps compilers that lived between two samples; their CPU time
  // arrives in its children's ticks.
  proc.Process(20, 1, 0);
  clock.AdvanceMillis(10'000);
  agent.Sample();
  clock.AdvanceMillis(10'000);
  proc.Process(20, 1, 0, {}, static_cast<uint64_t>(20 * hz));
  agent.Sample();
  EXPECT_NEAR(agent.Activity()["cpu"]["cores"].get<double>(), 2.0, 1e-6);
  EXPECT_EQ(agent.Activity()["cpu"]["last_active_ms"], kT0 + 50'000);
  // A pid reused by a new process is a new process, not a negative delta.
  clock.AdvanceMillis(10'000);
  proc.Process(20, static_cast<uint64_t>(hz), 0, {}, 0, /*start_time=*/999);
  agent.Sample();
  EXPECT_NEAR(agent.Activity()["cpu"]["cores"].get<double>(), 0.1, 1e-6);
}

TEST(ActivityAgentTest, GpuComesFromTheFileTheIdeWritesAndAStaleFileIsNoReading) {
  FakeProc proc;
  FakeClock clock(kT0);
  AgentOptions o = proc.Options(&clock);
  o.gpu_file = proc.Sub("gpu");
  ActivityAgent agent(o);
  agent.Sample();
  EXPECT_FALSE(agent.Activity()["gpu"]["available"].get<bool>());  // no file: no GPU
  std::ofstream(o.gpu_file) << "87\n";
  const timespec now[2] = {{kT0 / 1000, 0}, {kT0 / 1000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, o.gpu_file.c_str(), now, 0), 0);
  agent.Sample();
  nlohmann::json a = agent.Activity();
  EXPECT_TRUE(a["gpu"]["available"].get<bool>());
  EXPECT_EQ(a["gpu"]["utilization_percent"], 87);
  EXPECT_EQ(a["gpu"]["last_active_ms"], kT0);
  clock.AdvanceMillis(5 * 60'000);  // the IDE stopped writing it
  agent.Sample();
  EXPECT_FALSE(agent.Activity()["gpu"]["available"].get<bool>());
  EXPECT_EQ(agent.Activity()["gpu"]["last_active_ms"], kT0);
}

TEST(ActivityAgentTest, NoticeReachesEveryTerminalOnceWithoutControlCharacters) {
  FakeProc proc;
  FakeClock clock(kT0);
  proc.Process(10, 0, 0, {3});
  proc.Process(11, 0, 0, {3, 4});
  ActivityAgent agent(proc.Options(&clock));
  absl::StatusOr<int> n = agent.Notice(
      "stopping in 10m\x1b[2J\nbye\xc2\x9b"
      "1m é");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  for (int tty : {3, 4}) {
    const std::string got = proc.Read(tty);
    EXPECT_EQ(got, "\r\n\a[tessera] stopping in 10m [2J bye 1m é\r\n") << tty;
  }
  EXPECT_TRUE(agent.Notice(std::string(5000, 'x')).ok());
  EXPECT_LE(proc.Read(3).size(), 2 * 1100u);
}

}  // namespace
}  // namespace tessera::workspaces::agent
