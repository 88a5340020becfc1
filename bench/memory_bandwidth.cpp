// Read bandwidth, measured the way the benchmarks time a kernel: the buffer is read in calls of kCallBytes,
// each call split into one contiguous slice per thread and run on the process's thread pool (the threads,
// fork and join the kernels use), timed by the calling thread, consecutive calls reading consecutive parts of
// the buffer; the figure is the median call's. Each slice is summed with wide loads and the sum kept so the
// loads are not removed. The buffer is written once first so its pages are mapped (a first-touch page fault
// is not a read).
//
// Why not one long read per thread, best of a few: on a 2-core VM shared with other work, a read of a few
// hundred MiB per thread is often interrupted (a thread preempted, the other waiting at the end) while a
// kernel's median call of 0.05-30 MB is not; and a version that read the clock on a separate coordinating
// thread counted that thread's preemption as time the readers were not reading, reporting 66-1300 GB/s where
// the readers had streamed ~30. A probe taken exactly as the kernels are timed makes %bw a like-for-like
// ratio.
#include "memory_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "ark/error.h"
#include "ark/thread_pool.h"
#include "common/aligned_bytes.h"
#include "kernels/cpu_features.h"

namespace ark::bench {

namespace {

// Four independent accumulators keep several loads in flight per thread; 256-bit loads are enough to saturate
// DRAM from one core, and every x86-64 CPU ark supports beyond the reference level has AVX2.
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  return static_cast<uint64_t>(_mm256_extract_epi64(a, 0) ^ _mm256_extract_epi64(a, 3));
}

uint64_t sum_scalar(const uint8_t* p, size_t n) {
  uint64_t a = 0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    a ^= v;
  }
  return a;
}

// Bytes one timed call reads, over all threads: as large as the kernels' big layers (4096x14336 int4 is 29
// MB) to keep the fork and join a small part, far below the buffer so the calls move through DRAM, not the
// cache.
constexpr size_t kCallBytes = size_t{8} << 20;

}  // namespace

struct ReadBandwidthProbe::State {
  size_t slice = 0, total = 0;
  int threads = 1;
  AlignedBytes buf;
  bool avx2 = false;
};

ReadBandwidthProbe::ReadBandwidthProbe(size_t bytes, int threads) : state_(std::make_unique<State>()) {
  State* s = state_.get();
  ARK_CHECK(threads >= 1, "read bandwidth probe: threads must be >= 1, got ", threads);
  ARK_CHECK(bytes >= 4 * kCallBytes, "read bandwidth probe: buffer must be at least ", 4 * kCallBytes >> 20,
            " MiB (well above the last-level cache), got ", bytes);
  s->threads = threads;
  s->slice = (kCallBytes / static_cast<size_t>(threads)) & ~size_t{4095};  // one thread's part of a call
  s->total = bytes / kCallBytes * kCallBytes;
  // The same storage as packed weights (huge pages where the kernel allows them), so the figure is the
  // limit the kernels' reads can reach, not one handicapped by 4 KiB page walks.
  s->buf = AlignedBytes(s->total);
  s->avx2 = cpu_features().avx2 && cpu_features().os_avx;
  // Each thread writes a part once, so the pages are mapped (a first-touch fault is not a read).
  const size_t part = s->total / static_cast<size_t>(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const size_t begin = part * static_cast<size_t>(t);
      const size_t end = t + 1 == threads ? s->total : begin + part;
      for (size_t i = begin; i < end; ++i) s->buf.data()[i] = static_cast<uint8_t>(i * 131 + t);
    });
  for (auto& th : pool) th.join();
}

ReadBandwidthProbe::~ReadBandwidthProbe() = default;

double ReadBandwidthProbe::measure(int passes) {
  ARK_CHECK(passes >= 1, "read bandwidth probe: passes must be >= 1, got ", passes);
  State& s = *state_;
  using clock = std::chrono::steady_clock;
  const size_t calls_per_pass = s.total / kCallBytes;
  const size_t call_bytes = s.slice * static_cast<size_t>(s.threads);
  std::vector<uint64_t> sinks(static_cast<size_t>(s.threads) * 8);  // one cache line apart: no false sharing
  std::vector<double> seconds;
  seconds.reserve(calls_per_pass * static_cast<size_t>(passes));
  ThreadPool& pool = default_thread_pool();
  for (int pass = 0; pass < passes; ++pass) {
    for (size_t c = 0; c < calls_per_pass; ++c) {
      const uint8_t* call = s.buf.data() + c * kCallBytes;
      const auto t0 = clock::now();
      pool.parallel_for(
          s.threads,
          [&](int64_t t) {
            const uint8_t* p = call + s.slice * static_cast<size_t>(t);
            sinks[static_cast<size_t>(t) * 8] += s.avx2 ? sum_avx2(p, s.slice) : sum_scalar(p, s.slice);
          },
          s.threads);
      seconds.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    }
  }
  std::nth_element(seconds.begin(), seconds.begin() + static_cast<std::ptrdiff_t>(seconds.size() / 2),
                   seconds.end());
  return static_cast<double>(call_bytes) / seconds[seconds.size() / 2] / 1e9;
}

double measure_read_bandwidth_gbs(size_t bytes, int threads, int passes) {
  ARK_CHECK(passes >= 1, "measure_read_bandwidth_gbs: passes must be >= 1, got ", passes);
  ReadBandwidthProbe probe(bytes, threads);
  return probe.measure(passes);
}

}  // namespace ark::bench
