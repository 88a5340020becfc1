// A small fixed pool of worker threads for the kernels. ark keeps its own pool (no OpenMP) so a process that
// also runs torch does not end up with two runtimes each spawning one thread per core; size it with
// set_default_num_threads() or ARK_NUM_THREADS.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace ark {

class ThreadPool {
 public:
  // num_threads counts the calling thread: a pool of n starts n - 1 workers. n must be >= 1.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const;

  // Calls fn(i) once for every i in [0, num_tasks), spread over at most max_threads threads (0: all), the
  // calling thread included; returns when all are done. Tasks are handed out in increasing order. When
  // another caller already has the pool, this caller runs its tasks itself rather than waiting (no
  // oversubscription, no blocking). fn must not throw.
  void parallel_for(int64_t num_tasks, const std::function<void(int64_t)>& fn, int max_threads = 0);

  // Which thread of the job runs the calling task: 0 for the thread that called parallel_for (also when it is
  // a worker of another pool), w + 1 on worker w; outside any task, 0 on threads that are no pool's worker. A
  // task can use it to keep to per-thread state, e.g. its own contiguous share of the work (QuantLinear's
  // decode split). A call the pool runs inline on a busy caller keeps the caller's index.
  static int current_thread_index();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The process-wide pool the layers use: ARK_NUM_THREADS threads if set, else one per hardware thread.
ThreadPool& default_thread_pool();
// Replaces the default pool with one of n threads (n >= 1). Not safe while forwards run.
void set_default_num_threads(int n);

}  // namespace ark
