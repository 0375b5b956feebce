#include "workspaces/kube/work_queue.h"

#include <algorithm>
#include <utility>

namespace tessera::workspaces::kube {

WorkQueue::WorkQueue() : WorkQueue(Options{}) {}

WorkQueue::WorkQueue(Options options) : options_(options) {}

void WorkQueue::AddLocked(const std::string& key) {
  if (shutting_down_) return;
  if (dirty_.count(key) > 0) return;
  dirty_.insert(key);
  if (processing_.count(key) > 0) return;  // re-queued by Done()
  queue_.push_back(key);
  cv_.NotifyOne();
}

void WorkQueue::Add(const std::string& key) {
  MutexLock lock(&mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, int64_t delay_ms) {
  MutexLock lock(&mu_);
  if (shutting_down_) return;
  if (delay_ms <= 0) {
    AddLocked(key);
    return;
  }
  int64_t ready = options_.clock->NowMillis() + delay_ms;
  auto it = delayed_index_.find(key);
  if (it != delayed_index_.end()) {
    if (it->second->first <= ready) return;
    delayed_.erase(it->second);
    delayed_index_.erase(it);
  }
  delayed_index_[key] = delayed_.emplace(ready, key);
  cv_.NotifyAll();  // a waiter may need to shorten its wait
}

int64_t WorkQueue::NextDelayMillis(const std::string& key) const {
  MutexLock lock(&mu_);
  auto it = failures_.find(key);
  int exp = it == failures_.end() ? 0 : it->second;
  int64_t delay = options_.base_delay_ms;
  for (int i = 0; i < exp && delay < options_.max_delay_ms; ++i) delay *= 2;
  return std::min(delay, options_.max_delay_ms);
}

void WorkQueue::AddRateLimited(const std::string& key) {
  int64_t delay = NextDelayMillis(key);
  {
    MutexLock lock(&mu_);
    ++failures_[key];
  }
  AddAfter(key, delay);
}

void WorkQueue::Forget(const std::string& key) {
  MutexLock lock(&mu_);
  failures_.erase(key);
}

int WorkQueue::NumRequeues(const std::string& key) const {
  MutexLock lock(&mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

size_t WorkQueue::PromoteDueLocked() {
  if (delayed_.empty()) return 0;
  int64_t now = options_.clock->NowMillis();
  size_t n = 0;
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    std::string key = std::move(delayed_.begin()->second);
    delayed_index_.erase(key);
    delayed_.erase(delayed_.begin());
    AddLocked(key);
    ++n;
  }
  return n;
}

void WorkQueue::Tick() {
  MutexLock lock(&mu_);
  if (PromoteDueLocked() > 0) cv_.NotifyAll();
}

std::optional<std::string> WorkQueue::Get(std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  MutexLock lock(&mu_);
  while (true) {
    PromoteDueLocked();
    if (!queue_.empty()) break;
    if (shutting_down_) return std::nullopt;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    auto until = deadline;
    if (!delayed_.empty()) {
      int64_t ms = std::max<int64_t>(0, delayed_.begin()->first - options_.clock->NowMillis());
      until = std::min(until, now + std::chrono::milliseconds(ms));
    }
    cv_.WaitUntil(&mu_, until);
  }
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  return key;
}

void WorkQueue::Done(const std::string& key) {
  MutexLock lock(&mu_);
  processing_.erase(key);
  if (dirty_.count(key) > 0) {
    queue_.push_back(key);
    cv_.NotifyOne();
  }
}

void WorkQueue::ShutDown() {
  MutexLock lock(&mu_);
  shutting_down_ = true;
  cv_.NotifyAll();
}

bool WorkQueue::ShuttingDown() const {
  MutexLock lock(&mu_);
  return shutting_down_;
}

size_t WorkQueue::Len() const {
  MutexLock lock(&mu_);
  return queue_.size();
}

size_t WorkQueue::NumDelayed() const {
  MutexLock lock(&mu_);
  return delayed_.size();
}

}  // namespace tessera::workspaces::kube
