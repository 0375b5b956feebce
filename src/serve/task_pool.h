#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"

namespace tessera::serve {

// Bytes of queued work (request bodies) admitted and not yet released: at most `limit`, except
// that work is always admitted when nothing is pending (one body larger than the limit still
// runs, alone). Thread-safe.
class ByteBudget {
 public:
  explicit ByteBudget(size_t limit) : limit_(limit) {}

  // True, with `bytes` counted, when they fit; false otherwise. *pending (optional) receives
  // the bytes pending before the call.
  bool TryAdmit(size_t bytes, size_t* pending = nullptr);
  // Returns bytes admitted by TryAdmit.
  void Release(size_t bytes);

 private:
  const size_t limit_;
  Mutex mu_;
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;
};

// A fixed set of threads running posted tasks in posting order. A task's exception is logged to
// stderr and does not stop its thread. Thread-safe.
class TaskPool {
 public:
  explicit TaskPool(int threads);
  ~TaskPool() { Stop(); }
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  // Queues `task`; false (and `task` dropped unrun) once Stop() has begun.
  bool Post(std::function<void()> task);

  enum class Posted { kYes, kOverBudget, kStopped };
  // Queues `task`, which holds `bytes` of queued work (a request body), when `budget` admits
  // them: they are released once the task has run (exception or not) or at once when the pool
  // refuses it. kOverBudget: not admitted, *pending (optional) says how many bytes are. In
  // every other case than kYes, `task` is dropped unrun.
  Posted PostWithin(ByteBudget* budget, size_t bytes, std::function<void()> task,
                    size_t* pending = nullptr);
  // Runs the tasks already queued, then joins the threads. Idempotent. REQUIRES: not called
  // from one of the pool's tasks.
  void Stop();

 private:
  Mutex mu_;
  CondVar cv_;  // a task was queued, or stop_
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace tessera::serve
