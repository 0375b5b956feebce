#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "absl/base/thread_annotations.h"
#include "common/clock.h"
#include "common/mutex.h"

// A de-duplicating, rate-limited work queue of string keys ("namespace/name") with client-go's
// workqueue semantics, for controllers whose workers reconcile one key at a time:
//
//   - Add(key) queues a key at most once, however many times it is added before a worker gets it.
//   - A key handed to a worker by Get() is "processing" until Done(key): it is never handed to a
//     second worker meanwhile. Adding it during processing marks it dirty; Done() re-queues it.
//   - AddRateLimited(key) re-adds after a per-key exponential backoff (base · 2^failures, capped);
//     Forget(key) resets the key's failure count (call it after a successful reconcile).
//
// Delays are measured with the injected Clock. Get() promotes due delayed keys itself; with a
// FakeClock, advance the clock and call Tick() (or Get()) to promote them.
//
// Thread-safety: all methods may be called from any thread. Ownership: the queue does not own
// the Clock, which must outlive it.
namespace tessera::workspaces::kube {

class WorkQueue {
 public:
  struct Options {
    int64_t base_delay_ms = 5;       // first AddRateLimited delay
    int64_t max_delay_ms = 300'000;  // backoff cap (5 minutes)
    const Clock* clock = SystemClock::Default();
  };

  WorkQueue();
  explicit WorkQueue(Options options);
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `key` unless it is already queued (or, while processing, marks it dirty). Ignored
  // after ShutDown().
  void Add(const std::string& key);
  // Adds `key` once `delay_ms` has passed on the clock (immediately when <= 0). A key already
  // waiting keeps the earlier of its two ready times.
  void AddAfter(const std::string& key, int64_t delay_ms);
  // AddAfter with the key's backoff, then counts one more failure for it.
  void AddRateLimited(const std::string& key);
  // Resets the key's backoff (does not remove it from the queue).
  void Forget(const std::string& key);
  // How many AddRateLimited calls since the last Forget.
  int NumRequeues(const std::string& key) const;
  // The backoff the next AddRateLimited(key) would use.
  int64_t NextDelayMillis(const std::string& key) const;

  // Waits up to `wait` (real time) for a key. Returns nullopt on timeout, or once the queue is
  // shut down and drained. The caller must call Done(key) when finished with it.
  std::optional<std::string> Get(std::chrono::milliseconds wait);
  void Done(const std::string& key);

  // Promotes delayed keys that are due and wakes waiters; for clocks that move by themselves
  // Get() does this too.
  void Tick();

  // Stops accepting keys and wakes every Get(); queued keys are still handed out.
  void ShutDown();
  bool ShuttingDown() const;

  // Keys ready to be handed out (not counting delayed or processing ones).
  size_t Len() const;
  // Keys waiting for their delay.
  size_t NumDelayed() const;

 private:
  void AddLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves due delayed keys to the queue; returns how many.
  size_t PromoteDueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable Mutex mu_;
  CondVar cv_;  // a key became ready, a delay was added, or shutdown
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  // Queued or to be re-queued after Done.
  std::unordered_set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  // Handed out, Done not yet called.
  std::unordered_set<std::string> processing_ ABSL_GUARDED_BY(mu_);
  // Ready time (clock ms) → key.
  std::multimap<int64_t, std::string> delayed_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::multimap<int64_t, std::string>::iterator> delayed_index_
      ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tessera::workspaces::kube
