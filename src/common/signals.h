#pragma once

#include <csignal>
#include <cstdint>
#include <initializer_list>

// Process signal handling for the binaries: the stop signals are blocked in every thread and
// received synchronously by one waiting thread (sigwait), so no async handler runs.
namespace tessera {

// Blocks `signals` in the calling thread and returns them as a set for the waits below. Threads
// started afterwards inherit the mask: call it in main() before any thread starts.
sigset_t BlockSignals(std::initializer_list<int> signals);
// BlockSignals({SIGINT, SIGTERM}).
sigset_t BlockStopSignals();

// Waits for one of `set` (which the caller blocked) and returns it.
int WaitForSignal(const sigset_t& set);
// Like WaitForSignal, for at most `timeout_ms`; 0 when none arrived.
int WaitForSignalFor(const sigset_t& set, int64_t timeout_ms);

// "SIGINT", "SIGTERM", … (for messages); "signal" for one not listed.
const char* SignalName(int sig);

// For a forked child before exec: empties the signal mask and restores the default action of
// SIGINT, SIGTERM, SIGCHLD, SIGPIPE, SIGHUP and SIGQUIT, whatever the parent blocked or ignored.
// Async-signal-safe.
void ResetSignalsForExec();

}  // namespace tessera
