#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/mutex.h"

namespace tessera::serve {

// A fixed set of threads running posted tasks in posting order. Thread-safe.
class TaskPool {
 public:
  explicit TaskPool(int threads);
  ~TaskPool() { Stop(); }
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  // Queues `task`; false (and `task` dropped unrun) once Stop() has begun.
  bool Post(std::function<void()> task);
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
