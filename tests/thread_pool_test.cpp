// ThreadPool::current_thread_index(): 0 on callers, w + 1 on worker w, the same for every task a thread runs
// (QuantLinear's decode split keys each thread's contiguous range on it).
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ark
