// The pool behind ark::ThreadPool. A forward on a decode-sized layer takes tens of microseconds, so waking
// workers through a condition variable (several microseconds each) would eat a visible share of it: idle
// workers spin on the job generation for a while before they sleep on it (C++20 atomic wait, a futex on
// Linux).
//
// Tasks are claimed through one 64-bit ticket = (generation << 32) | next task index. A worker claims a task
// by compare-and-swap on the ticket it read, so a claim can only succeed for the job that is still published;
// the caller closes the ticket before it rewrites the job for the next call. That keeps a late worker from
// running a task of a job that is already over, without a lock on the path.
#include "ark/thread_pool.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ark/error.h"

namespace ark {

namespace {

inline void cpu_relax() {
  __builtin_ia32_pause();
}

constexpr uint64_t kIndexMask = 0xffffffffull;
// How long an idle worker keeps spinning before it sleeps: long enough to cover the gap between the layers of
// one decode step, short enough not to burn a core between requests.
constexpr auto kSpinTime = std::chrono::microseconds(200);

thread_local int t_thread_index = 0;  // ThreadPool::current_thread_index()

}  // namespace

struct ThreadPool::State {
  int num_threads = 1;
  std::vector<std::thread> workers;
  std::atomic<bool> busy{false};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> generation{0};  // bumped when a job is published (or at stop)
  std::atomic<uint64_t> ticket{kIndexMask};
  std::atomic<int64_t> num_tasks{0};
  std::atomic<int64_t> done{0};
  std::atomic<const std::function<void(int64_t)>*> fn{nullptr};
  std::atomic<int> max_threads{0};

  // Runs tasks of job `gen` until none is left; returns how many it ran.
  int64_t work(uint64_t gen) {
    int64_t ran = 0;
    for (;;) {
      uint64_t t = ticket.load(std::memory_order_acquire);
      if ((t >> 32) != (gen & kIndexMask)) break;
      const int64_t index = static_cast<int64_t>(t & kIndexMask);
      if (index >= num_tasks.load(std::memory_order_acquire)) break;
      if (!ticket.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
      (*fn.load(std::memory_order_acquire))(index);
      ++ran;
      done.fetch_add(1, std::memory_order_acq_rel);
    }
    return ran;
  }

  void worker_loop(int worker_index) {
    t_thread_index = worker_index + 1;
    uint64_t seen = 0;
    for (;;) {
      uint64_t g = generation.load(std::memory_order_acquire);
      if (g == seen) {
        const auto until = std::chrono::steady_clock::now() + kSpinTime;
        for (int i = 0; g == seen; ++i) {
          cpu_relax();
          g = generation.load(std::memory_order_acquire);
          if ((i & 255) == 255 && std::chrono::steady_clock::now() > until) {
            generation.wait(seen, std::memory_order_acquire);
            g = generation.load(std::memory_order_acquire);
          }
        }
      }
      seen = g;
      if (stop.load(std::memory_order_acquire)) return;
      // Worker w is the (w+1)-th thread of a job; it stays out when the caller asked for fewer.
      if (worker_index + 1 < max_threads.load(std::memory_order_acquire)) work(g);
    }
  }
};

ThreadPool::ThreadPool(int num_threads) : state_(std::make_unique<State>()) {
  ARK_CHECK(num_threads >= 1, "thread pool: num_threads ", num_threads, " must be at least 1");
  state_->num_threads = num_threads;
  for (int w = 0; w + 1 < num_threads; ++w)
    state_->workers.emplace_back([this, w] { state_->worker_loop(w); });
}

ThreadPool::~ThreadPool() {
  state_->stop.store(true, std::memory_order_release);
  state_->generation.fetch_add(1, std::memory_order_acq_rel);
  state_->generation.notify_all();
  for (std::thread& t : state_->workers) t.join();
}

int ThreadPool::current_thread_index() {
  return t_thread_index;
}

int ThreadPool::num_threads() const {
  return state_->num_threads;
}

void ThreadPool::parallel_for(int64_t num_tasks, const std::function<void(int64_t)>& fn, int max_threads) {
  if (num_tasks <= 0) return;
  const int threads = max_threads <= 0 ? state_->num_threads : std::min(max_threads, state_->num_threads);
  State& s = *state_;
  if (threads <= 1 || num_tasks == 1 || s.busy.exchange(true, std::memory_order_acquire)) {
    // One thread wanted, or another caller holds the pool (or this is a nested call from a task): run here.
    for (int64_t i = 0; i < num_tasks; ++i) fn(i);
    return;
  }
  const uint64_t gen = s.generation.load(std::memory_order_relaxed) + 1;
  s.fn.store(&fn, std::memory_order_relaxed);
  s.num_tasks.store(num_tasks, std::memory_order_relaxed);
  s.done.store(0, std::memory_order_relaxed);
  s.max_threads.store(threads, std::memory_order_relaxed);
  s.ticket.store((gen & kIndexMask) << 32, std::memory_order_release);
  s.generation.store(gen, std::memory_order_release);
  s.generation.notify_all();
  // The caller is thread 0 of this job, even when it is a worker of another pool.
  const int outer_index = t_thread_index;
  t_thread_index = 0;
  const int64_t mine = s.work(gen);
  (void)mine;
  t_thread_index = outer_index;
  while (s.done.load(std::memory_order_acquire) < num_tasks) cpu_relax();
  // Close the ticket before anything of this job is rewritten by the next caller.
  s.ticket.store(((gen & kIndexMask) << 32) | kIndexMask, std::memory_order_release);
  s.busy.store(false, std::memory_order_release);
}

namespace {

int default_threads() {
  if (const char* env = std::getenv("ARK_NUM_THREADS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    ARK_CHECK(end != env && *end == '\0' && n >= 1 && n <= 1024, "ARK_NUM_THREADS='", env,
              "' must be an integer in [1, 1024]");
    return static_cast<int>(n);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// The default pool: created on first use, replaced by set_default_num_threads. Replaced pools are kept alive
// until exit, so a layer that fetched the old one mid-forward never touches freed memory.
std::mutex& default_pool_mutex() {
  static std::mutex m;
  return m;
}
std::vector<std::unique_ptr<ThreadPool>>& all_pools() {
  static std::vector<std::unique_ptr<ThreadPool>> pools;
  return pools;
}
std::atomic<ThreadPool*> g_default_pool{nullptr};

}  // namespace

ThreadPool& default_thread_pool() {
  if (ThreadPool* p = g_default_pool.load(std::memory_order_acquire)) return *p;
  std::lock_guard<std::mutex> lock(default_pool_mutex());
  if (ThreadPool* p = g_default_pool.load(std::memory_order_acquire)) return *p;
  all_pools().push_back(std::make_unique<ThreadPool>(default_threads()));
  g_default_pool.store(all_pools().back().get(), std::memory_order_release);
  return *all_pools().back();
}

void set_default_num_threads(int n) {
  ARK_CHECK(n >= 1, "set_default_num_threads: n = ", n, " must be at least 1");
  std::lock_guard<std::mutex> lock(default_pool_mutex());
  all_pools().push_back(std::make_unique<ThreadPool>(n));
  g_default_pool.store(all_pools().back().get(), std::memory_order_release);
}

}  // namespace ark
