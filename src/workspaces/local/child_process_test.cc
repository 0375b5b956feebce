#include "workspaces/local/child_process.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "common/errors.h"

namespace tessera::workspaces::local {
namespace {

using ::testing::HasSubstr;

std::string MakeTempDir() {
  std::string templ = ::testing::TempDir() + "/child_process_test.XXXXXX";
  char* dir = mkdtemp(templ.data());
  EXPECT_NE(dir, nullptr);
  return templ;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

SpawnOptions Sh(const std::string& script) {
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", script};
  o.env = {"PATH=/usr/bin:/bin"};
  return o;
}

// Alive and not a zombie (an orphan reparented to a PID 1 that does not reap stays a zombie).
bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

int64_t MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

TEST(ChildProcessTest, ExitCodeEnvironmentAndWorkingDirectory) {
  std::string dir = MakeTempDir();
  SpawnOptions o = Sh("echo \"$FOO\" > out.txt; pwd >> out.txt; exit 3");
  o.env.push_back("FOO=bar");
  o.cwd = dir;
  ChildProcess child;
  ASSERT_TRUE(child.Start(o).ok());
  EXPECT_GT(child.pid(), 0);
  EXPECT_EQ(child.Wait(), 3);
  EXPECT_EQ(child.exit_status(), 3);
  EXPECT_EQ(child.DescribeExit(), "exited with code 3");
  EXPECT_FALSE(child.IsRunning());
  EXPECT_EQ(ReadAll(dir + "/out.txt"), "bar\n" + std::filesystem::canonical(dir).string() + "\n");
}

TEST(ChildProcessTest, OutputFileGetsStdoutAndStderrAndIsPrivate) {
  std::string log = MakeTempDir() + "/child.log";
  SpawnOptions o = Sh("echo out; echo err >&2");
  o.output_path = log;
  ChildProcess child;
  ASSERT_TRUE(child.Start(o).ok());
  EXPECT_EQ(child.Wait(), 0);
  EXPECT_EQ(ReadAll(log), "out\nerr\n");
  struct stat st;
  ASSERT_EQ(stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(TailOfFile(log, 1), "err\n");
  EXPECT_EQ(TailOfFile(log, 5), "out\nerr\n");
  EXPECT_EQ(TailOfFile(log + ".missing", 5), "");
}

TEST(ChildProcessTest, ProgramIsLookedUpInTheChildsPath) {
  ChildProcess child;
  SpawnOptions o;
  o.argv = {"sh", "-c", "exit 0"};
  o.env = {"PATH=/nonexistent:/bin"};
  ASSERT_TRUE(child.Start(o).ok());
  EXPECT_EQ(child.Wait(), 0);

  ChildProcess missing;
  o.argv = {"no-such-program-tessera"};
  absl::Status s = missing.Start(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(StatusMessage(s), HasSubstr("no-such-program-tessera: not found in PATH"));
  EXPECT_FALSE(missing.started());
}

TEST(ChildProcessTest, ExecAndChdirFailuresAreErrorsNotChildren) {
  ChildProcess bad_exec;
  SpawnOptions o;
  o.argv = {"/nonexistent/program"};
  absl::Status s = bad_exec.Start(o);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(StatusMessage(s), HasSubstr("exec failed (/nonexistent/program)"));
  EXPECT_THAT(StatusMessage(s), HasSubstr("No such file or directory"));

  ChildProcess bad_cwd;
  o = Sh("exit 0");
  o.cwd = "/nonexistent/folder";
  s = bad_cwd.Start(o);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(StatusMessage(s), HasSubstr("cannot enter the working directory"));
}

TEST(ChildProcessTest, StopEndsAChildWithSigterm) {
  ChildProcess child;
  ASSERT_TRUE(child.Start(Sh("sleep 30")).ok());
  EXPECT_TRUE(child.IsRunning());
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(child.Stop(5000), 128 + SIGTERM);
  EXPECT_LT(MillisSince(start), 4000);
  EXPECT_FALSE(child.IsRunning());
  EXPECT_THAT(child.DescribeExit(), HasSubstr("killed by signal 15"));
  EXPECT_EQ(child.Stop(5000), 128 + SIGTERM);  // again: a no-op
}

TEST(ChildProcessTest, StopEscalatesToSigkillAfterTheGrace) {
  ChildProcess child;
  ASSERT_TRUE(child.Start(Sh("trap '' TERM; echo > started; while :; do sleep 0.05; done")).ok());
  // Let the shell install its trap before the signal comes.
  ASSERT_FALSE(child.WaitFor(300).has_value());
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(child.Stop(300), 128 + SIGKILL);
  EXPECT_GE(MillisSince(start), 290);
}

TEST(ChildProcessTest, StopAlsoEndsTheChildsOwnChildren) {
  std::string dir = MakeTempDir();
  // The grandchild ignores SIGTERM: only the final SIGKILL to the group ends it.
  SpawnOptions o =
      Sh("trap 'exit 0' TERM; (trap '' TERM; exec sleep 30) & echo $! > grandchild; wait");
  o.cwd = dir;
  ChildProcess child;
  ASSERT_TRUE(child.Start(o).ok());
  pid_t grandchild = 0;
  for (int i = 0; i < 200 && grandchild == 0; ++i) {
    std::ifstream(dir + "/grandchild") >> grandchild;
    if (grandchild == 0) child.WaitFor(10);
  }
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(Alive(grandchild));
  child.Stop(5000);
  for (int i = 0; i < 200 && Alive(grandchild); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(Alive(grandchild));
}

TEST(ChildProcessTest, TheParentsBlockedSignalsAreNotInherited) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  ChildProcess child;
  ASSERT_TRUE(child.Start(Sh("sleep 30")).ok());
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(child.Stop(10'000), 128 + SIGTERM);
  EXPECT_LT(MillisSince(start), 5000);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

TEST(ChildProcessTest, WaitForTimesOutThenSeesTheExit) {
  ChildProcess child;
  ASSERT_TRUE(child.Start(Sh("sleep 0.3")).ok());
  EXPECT_FALSE(child.WaitFor(20).has_value());
  EXPECT_EQ(child.WaitFor(10'000), 0);
}

TEST(ChildProcessTest, MovingTransfersTheChildAndAssigningStopsTheOldOne) {
  ChildProcess a;
  ASSERT_TRUE(a.Start(Sh("sleep 30")).ok());
  pid_t first = a.pid();
  ChildProcess b(std::move(a));
  EXPECT_FALSE(a.started());  // NOLINT(bugprone-use-after-move): the moved-from state is defined
  EXPECT_EQ(b.pid(), first);
  EXPECT_TRUE(b.IsRunning());
  ChildProcess c;
  ASSERT_TRUE(c.Start(Sh("exit 0")).ok());
  b = std::move(c);  // stops `first`
  EXPECT_FALSE(Alive(first));
  EXPECT_EQ(b.Wait(), 0);
}

}  // namespace
}  // namespace tessera::workspaces::local
