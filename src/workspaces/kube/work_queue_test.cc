#include "workspaces/kube/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace tessera::workspaces::kube {
namespace {

using std::chrono::milliseconds;

WorkQueue::Options WithClock(FakeClock* clock) {
  WorkQueue::Options options;
  options.clock = clock;
  return options;
}

TEST(KubeWorkQueueTest, AddDeduplicates) {
  FakeClock clock;
  WorkQueue q(WithClock(&clock));
  q.Add("ns/a");
  q.Add("ns/a");
  q.Add("ns/b");
  q.Add("ns/a");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(q.Get(milliseconds(0)), "ns/a");
  EXPECT_EQ(q.Get(milliseconds(0)), "ns/b");
  EXPECT_EQ(q.Get(milliseconds(0)), std::nullopt);
}

TEST(KubeWorkQueueTest, ProcessingKeyIsNotHandedOutTwiceAndDirtyAddRequeuesOnDone) {
  FakeClock clock;
  WorkQueue q(WithClock(&clock));
  q.Add("k");
  std::optional<std::string> key = q.Get(milliseconds(0));
  ASSERT_EQ(key, "k");
  q.Add("k");  // while processing: marked dirty, not queued
  q.Add("k");
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_EQ(q.Get(milliseconds(10)), std::nullopt);
  q.Done("k");
  EXPECT_EQ(q.Len(), 1u);
  EXPECT_EQ(q.Get(milliseconds(0)), "k");
  q.Done("k");
  EXPECT_EQ(q.Len(), 0u);  // not dirty any more: Done does not re-queue
}

TEST(KubeWorkQueueTest, RateLimitedBackoffDoublesAndForgetResets) {
  FakeClock clock(1'000'000);
  WorkQueue q(WithClock(&clock));
  const int64_t expected[] = {5, 10, 20, 40, 80};
  for (int64_t delay : expected) {
    EXPECT_EQ(q.NextDelayMillis("k"), delay);
    q.AddRateLimited("k");
    EXPECT_EQ(q.NumDelayed(), 1u);
    clock.AdvanceMillis(delay - 1);
    q.Tick();
    EXPECT_EQ(q.Get(milliseconds(0)), std::nullopt) << "ready before its " << delay << " ms";
    clock.AdvanceMillis(1);
    q.Tick();
    ASSERT_EQ(q.Get(milliseconds(0)), "k") << "not ready after " << delay << " ms";
    q.Done("k");
  }
  EXPECT_EQ(q.NumRequeues("k"), 5);
  q.Forget("k");
  EXPECT_EQ(q.NumRequeues("k"), 0);
  EXPECT_EQ(q.NextDelayMillis("k"), 5);
}

TEST(KubeWorkQueueTest, BackoffIsCapped) {
  FakeClock clock;
  WorkQueue::Options options = WithClock(&clock);
  options.max_delay_ms = 300'000;
  WorkQueue q(options);
  for (int i = 0; i < 40; ++i) q.AddRateLimited("k");
  EXPECT_EQ(q.NextDelayMillis("k"), 300'000);
  EXPECT_EQ(q.NumDelayed(), 1u);  // one key waiting once, with its earliest ready time
  clock.AdvanceMillis(5);
  q.Tick();
  EXPECT_EQ(q.Len(), 1u);
}

TEST(KubeWorkQueueTest, GetPromotesDueKeysItself) {
  FakeClock clock;
  WorkQueue q(WithClock(&clock));
  q.AddAfter("later", 100);
  q.AddAfter("sooner", 50);
  clock.AdvanceMillis(100);
  EXPECT_EQ(q.Get(milliseconds(0)), "sooner");
  EXPECT_EQ(q.Get(milliseconds(0)), "later");
}

TEST(KubeWorkQueueTest, DelayedAddWakesAWaiterOnARealClock) {
  WorkQueue q;  // system clock
  auto start = std::chrono::steady_clock::now();
  q.AddAfter("k", 30);
  EXPECT_EQ(q.Get(milliseconds(5000)), "k");
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, milliseconds(25));
  EXPECT_LT(waited, milliseconds(2000));
}

TEST(KubeWorkQueueTest, ShutDownWakesBlockedGetters) {
  FakeClock clock;
  WorkQueue q(WithClock(&clock));
  std::atomic<int> returned{0};
  std::vector<std::thread> workers;
  workers.reserve(3);
  for (int i = 0; i < 3; ++i) {
    workers.emplace_back([&] {
      if (!q.Get(milliseconds(60'000)).has_value()) ++returned;
    });
  }
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(returned.load(), 0);
  auto start = std::chrono::steady_clock::now();
  q.ShutDown();
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(returned.load(), 3);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(5000));
  q.Add("ignored");
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_TRUE(q.ShuttingDown());
}

TEST(KubeWorkQueueTest, ConcurrentWorkersNeverShareAKey) {
  WorkQueue q;
  std::atomic<bool> stop{false};
  std::atomic<int> in_flight{0};
  std::atomic<int> violations{0};
  std::atomic<int> processed{0};
  std::vector<std::thread> workers;
  workers.reserve(4);
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&] {
      while (std::optional<std::string> key = q.Get(milliseconds(200))) {
        if (in_flight.fetch_add(1) != 0) ++violations;  // only one key exists: "k"
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        in_flight.fetch_sub(1);
        ++processed;
        q.Done(*key);
      }
    });
  }
  for (int i = 0; i < 500; ++i) {
    q.Add("k");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  q.ShutDown();
  for (std::thread& t : workers) t.join();
  stop = true;
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(processed.load(), 0);
}

}  // namespace
}  // namespace tessera::workspaces::kube
