#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>

// How the kube library's retry loops (Informer, LeaderElector) wait: through a SleepFn, so tests
// can substitute one that advances a FakeClock instead of sleeping.
namespace tessera::workspaces::kube {

// Waits `ms` milliseconds, returning early once `stop` is true.
using SleepFn = std::function<void(int64_t ms, const std::atomic<bool>& stop)>;

// Real-time SleepFn: sleeps in slices of at most 20 ms so `stop` is noticed promptly.
inline void SleepUnlessStopped(int64_t ms, const std::atomic<bool>& stop) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!stop.load()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        deadline - now, std::chrono::milliseconds(20)));
  }
}

}  // namespace tessera::workspaces::kube
