// ThreadPool::current_thread_index(): 0 on callers, w + 1 on worker w, the same for every task a thread runs
// (QuantLinear's decode split keys each thread's contiguous range on it).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ark/thread_pool.h"

namespace ark {
namespace {

TEST(ThreadPool, CurrentThreadIndexNamesTheThread) {
  EXPECT_EQ(ThreadPool::current_thread_index(), 0);
  ThreadPool pool(3);
  const std::thread::id caller = std::this_thread::get_id();
  std::mutex m;
  std::map<std::thread::id, std::set<int>> seen;
  for (int rep = 0; rep < 50; ++rep)
    pool.parallel_for(64, [&](int64_t) {
      const int index = ThreadPool::current_thread_index();
      std::lock_guard<std::mutex> lock(m);
      seen[std::this_thread::get_id()].insert(index);
    });
  std::set<int> indexes;
  for (const auto& [id, set] : seen) {
    ASSERT_EQ(set.size(), 1u) << "one thread reported several indexes";
    const int index = *set.begin();
    EXPECT_EQ(index == 0, id == caller) << "index " << index;
    EXPECT_GE(index, 0);
    EXPECT_LT(index, 3);
    EXPECT_TRUE(indexes.insert(index).second) << "two threads share index " << index;
  }
  // A task that calls parallel_for again runs it on its own thread (the pool is busy): same index there.
  pool.parallel_for(4, [&](int64_t) {
    const int outer = ThreadPool::current_thread_index();
    pool.parallel_for(3, [&](int64_t) { EXPECT_EQ(ThreadPool::current_thread_index(), outer); });
  });
}

// A worker of one pool that calls parallel_for on another is thread 0 of that job, so it owns the first share
// of the work rather than sharing a worker's.
TEST(ThreadPool, CallerIsThreadZeroOfItsJob) {
  ThreadPool outer(3), inner(2);
  std::atomic<int> wrong{0};
  outer.parallel_for(3, [&](int64_t) {
    const int mine = ThreadPool::current_thread_index();
    const std::thread::id me = std::this_thread::get_id();
    inner.parallel_for(8, [&](int64_t) {
      // Tasks this thread runs itself see 0 (inner is free) or its own index (inner busy: run inline).
      if (std::this_thread::get_id() == me && ThreadPool::current_thread_index() != 0 &&
          ThreadPool::current_thread_index() != mine)
        wrong.fetch_add(1);
    });
    if (ThreadPool::current_thread_index() != mine) wrong.fetch_add(1);  // restored after the inner call
  });
  EXPECT_EQ(wrong.load(), 0);
  // A worker of `outer` calling `inner` while inner is free runs its own share of that job as index 0.
  std::atomic<int> arrived{0}, worker_tasks{0}, worker_not_zero{0};
  outer.parallel_for(2, [&](int64_t) {
    arrived.fetch_add(1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    if (ThreadPool::current_thread_index() == 0) return;  // the caller's task; the worker's calls inner
    const std::thread::id me = std::this_thread::get_id();
    inner.parallel_for(16, [&](int64_t) {
      if (std::this_thread::get_id() != me) return;
      worker_tasks.fetch_add(1);
      if (ThreadPool::current_thread_index() != 0) worker_not_zero.fetch_add(1);
    });
  });
  if (worker_tasks.load() == 0) GTEST_SKIP() << "no worker of the outer pool ran a task (a busy machine)";
  EXPECT_EQ(worker_not_zero.load(), 0) << "of " << worker_tasks.load() << " tasks";
}

}  // namespace
}  // namespace ark
