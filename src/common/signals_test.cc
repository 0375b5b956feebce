#include "common/signals.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace tessera {
namespace {

TEST(SignalsTest, BlockedSignalsAreReceivedSynchronously) {
  const sigset_t set = BlockSignals({SIGUSR1, SIGUSR2});
  EXPECT_EQ(sigismember(&set, SIGUSR1), 1);
  EXPECT_EQ(sigismember(&set, SIGINT), 0);
  EXPECT_EQ(WaitForSignalFor(set, 10), 0);  // nothing pending
  ASSERT_EQ(pthread_kill(pthread_self(), SIGUSR2), 0);
  EXPECT_EQ(WaitForSignalFor(set, 1000), SIGUSR2);
  // A thread started after the block inherits it: a process-directed signal waits for us.
  std::thread sender([] { ::kill(::getpid(), SIGUSR1); });
  EXPECT_EQ(WaitForSignal(set), SIGUSR1);
  sender.join();
}

TEST(SignalsTest, StopSignalsAndNames) {
  const sigset_t set = BlockStopSignals();
  EXPECT_EQ(sigismember(&set, SIGINT), 1);
  EXPECT_EQ(sigismember(&set, SIGTERM), 1);
  EXPECT_EQ(sigismember(&set, SIGCHLD), 0);
  EXPECT_STREQ(SignalName(SIGINT), "SIGINT");
  EXPECT_STREQ(SignalName(SIGTERM), "SIGTERM");
  EXPECT_STREQ(SignalName(SIGUSR1), "signal");
}

TEST(SignalsTest, ResetSignalsForExecRestoresDefaults) {
  BlockStopSignals();
  ::signal(SIGPIPE, SIG_IGN);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ResetSignalsForExec();
    sigset_t mask;
    sigprocmask(SIG_SETMASK, nullptr, &mask);
    struct sigaction pipe_action;
    sigaction(SIGPIPE, nullptr, &pipe_action);
    const bool ok = sigismember(&mask, SIGTERM) == 0 && sigismember(&mask, SIGINT) == 0 &&
                    pipe_action.sa_handler == SIG_DFL;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::signal(SIGPIPE, SIG_DFL);
}

}  // namespace
}  // namespace tessera
