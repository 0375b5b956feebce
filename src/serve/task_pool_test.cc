#include "serve/task_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace tessera::serve {
namespace {

TEST(TaskPoolTest, RunsTasksInOrderSurvivesExceptionsAndRefusesAfterStop) {
  std::vector<int> ran;  // one thread: tasks run in posting order, one at a time
  {
    TaskPool pool(1);
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE(pool.Post([&ran, i] {
        if (i % 10 == 3) throw std::runtime_error("task failed");
        if (i % 10 == 7) throw 42;
        ran.push_back(i);
      }));
    }
    pool.Stop();  // runs what is queued first
    EXPECT_FALSE(pool.Post([&ran] { ran.push_back(-1); }));
    pool.Stop();  // idempotent
  }
  ASSERT_EQ(ran.size(), 80u);
  for (size_t i = 1; i < ran.size(); ++i) EXPECT_LT(ran[i - 1], ran[i]);
}

TEST(TaskPoolTest, ManyThreadsRunEveryTask) {
  std::atomic<int> sum{0};
  {
    TaskPool pool(4);
    for (int i = 1; i <= 1000; ++i) ASSERT_TRUE(pool.Post([&sum, i] { sum += i; }));
  }  // the destructor stops the pool after the queued tasks
  EXPECT_EQ(sum.load(), 500500);
}

// PostWithin releases a task's bytes once it has run, also when it throws, and at once when the
// pool refuses it; a task over the budget is not queued.
TEST(TaskPoolTest, PostWithinHoldsTheBytesUntilTheTaskHasRun) {
  ByteBudget budget(100);
  TaskPool pool(1);
  std::mutex gate;
  gate.lock();  // holds the first task (and so the pool's one thread)
  std::atomic<int> ran{0};
  EXPECT_EQ(pool.PostWithin(&budget, 60,
                            [&] {
                              std::lock_guard hold(gate);
                              ++ran;
                              throw std::runtime_error("after running");
                            }),
            TaskPool::Posted::kYes);
  size_t pending = 0;
  EXPECT_EQ(pool.PostWithin(
                &budget, 50, [&] { ++ran; }, &pending),
            TaskPool::Posted::kOverBudget);
  EXPECT_EQ(pending, 60u);
  EXPECT_EQ(pool.PostWithin(&budget, 40, [&] { ++ran; }), TaskPool::Posted::kYes);
  gate.unlock();
  bool all_released = false;  // the 100 bytes fit again only when both tasks released theirs
  for (int i = 0; i < 1000 && !(all_released = budget.TryAdmit(100)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(all_released);
  EXPECT_EQ(ran.load(), 2);
  budget.Release(100);
  pool.Stop();
  EXPECT_EQ(pool.PostWithin(&budget, 10, [&] { ++ran; }), TaskPool::Posted::kStopped);
  EXPECT_TRUE(budget.TryAdmit(100));  // the refused task's bytes were released
  EXPECT_EQ(ran.load(), 2);
}

TEST(ByteBudgetTest, AdmitsWithinTheLimitAndOneOversizedBodyAlone) {
  ByteBudget budget(100);
  size_t pending = 7;
  EXPECT_TRUE(budget.TryAdmit(60, &pending));
  EXPECT_EQ(pending, 0u);
  EXPECT_TRUE(budget.TryAdmit(40, &pending));
  EXPECT_EQ(pending, 60u);
  EXPECT_FALSE(budget.TryAdmit(1, &pending));
  EXPECT_EQ(pending, 100u);
  budget.Release(60);
  EXPECT_FALSE(budget.TryAdmit(61));
  EXPECT_TRUE(budget.TryAdmit(60));
  budget.Release(60);
  budget.Release(40);
  // Nothing pending: a body over the limit is admitted, alone.
  EXPECT_TRUE(budget.TryAdmit(1000));
  EXPECT_FALSE(budget.TryAdmit(1));
  EXPECT_FALSE(budget.TryAdmit(std::numeric_limits<size_t>::max()));  // no overflow
  budget.Release(1000);
  EXPECT_TRUE(budget.TryAdmit(std::numeric_limits<size_t>::max()));
}

}  // namespace
}  // namespace tessera::serve
