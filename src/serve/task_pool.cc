#include "serve/task_pool.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <utility>

#include "absl/cleanup/cleanup.h"

namespace tessera::serve {

TaskPool::TaskPool(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    threads_.emplace_back([this] {
      while (true) {
        std::function<void()> task;
        {
          MutexLock lock(&mu_);
          cv_.Wait(&mu_,
                   [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !tasks_.empty(); });
          if (tasks_.empty()) return;
          task = std::move(tasks_.front());
          tasks_.pop_front();
        }
        try {
          task();
        } catch (const std::exception& e) {  // the thread must survive to run the next tasks
          std::fprintf(stderr, "tessera: exception escaped a pool task: %s\n", e.what());
        } catch (...) {
          std::fprintf(stderr, "tessera: unknown exception escaped a pool task\n");
        }
      }
    });
  }
}

bool TaskPool::Post(std::function<void()> task) {
  {
    MutexLock lock(&mu_);
    if (stop_) return false;
    tasks_.push_back(std::move(task));
  }
  cv_.NotifyOne();
  return true;
}

TaskPool::Posted TaskPool::PostWithin(ByteBudget* budget, size_t bytes, std::function<void()> task,
                                      size_t* pending) {
  if (!budget->TryAdmit(bytes, pending)) return Posted::kOverBudget;
  const bool posted = Post([budget, bytes, task = std::move(task)] {
    absl::Cleanup release = [&] { budget->Release(bytes); };
    task();
  });
  if (posted) return Posted::kYes;
  budget->Release(bytes);
  return Posted::kStopped;
}

void TaskPool::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

bool ByteBudget::TryAdmit(size_t bytes, size_t* pending) {
  MutexLock lock(&mu_);
  if (pending != nullptr) *pending = pending_;
  if (pending_ != 0 && (bytes > limit_ || pending_ > limit_ - bytes)) return false;
  pending_ += bytes;
  return true;
}

void ByteBudget::Release(size_t bytes) {
  MutexLock lock(&mu_);
  pending_ -= bytes;
}

}  // namespace tessera::serve
