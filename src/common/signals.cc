#include "common/signals.h"

#include <pthread.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>

namespace tessera {

sigset_t BlockSignals(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

sigset_t BlockStopSignals() { return BlockSignals({SIGINT, SIGTERM}); }

int WaitForSignal(const sigset_t& set) {
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

int WaitForSignalFor(const sigset_t& set, int64_t timeout_ms) {
  timespec timeout{.tv_sec = static_cast<time_t>(timeout_ms / 1000),
                   .tv_nsec = static_cast<long>((timeout_ms % 1000) * 1'000'000)};
  const int sig = sigtimedwait(&set, nullptr, &timeout);
  return sig > 0 ? sig : 0;  // -1: timeout or EINTR, both "none yet"
}

const char* SignalName(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGCHLD:
      return "SIGCHLD";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGKILL:
      return "SIGKILL";
    default:
      return "signal";
  }
}

void ResetSignalsForExec() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int s : {SIGINT, SIGTERM, SIGCHLD, SIGPIPE, SIGHUP, SIGQUIT}) sigaction(s, &dfl, nullptr);
}

}  // namespace tessera
