// Read bandwidth: each thread sums its own slice with wide loads; the sum is kept so the loads are not
// removed. The buffer is written once first so its pages are mapped (a first-touch page fault is not a read).
#include "memory_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "ark/error.h"
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
  ARK_CHECK(bytes >= size_t{1} << 20, "read bandwidth probe: buffer must be at least 1 MiB, got ", bytes);
  s->threads = threads;
  s->slice = (bytes / static_cast<size_t>(threads)) & ~size_t{4095};
  s->total = s->slice * static_cast<size_t>(threads);
  // The same storage as packed weights (huge pages where the kernel allows them), so the figure is the
  // limit the kernels' reads can reach, not one handicapped by 4 KiB page walks.
  s->buf = AlignedBytes(s->total);
  s->avx2 = cpu_features().avx2 && cpu_features().os_avx;
  // Each thread writes its own slice once, so its pages are mapped (a first-touch fault is not a read).
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      uint8_t* p = s->buf.data() + s->slice * static_cast<size_t>(t);
      for (size_t i = 0; i < s->slice; ++i) p[i] = static_cast<uint8_t>(i * 131 + t);
    });
  for (auto& th : pool) th.join();
}

ReadBandwidthProbe::~ReadBandwidthProbe() = default;

double ReadBandwidthProbe::measure(int repeats) {
  ARK_CHECK(repeats >= 1, "read bandwidth probe: repeats must be >= 1, got ", repeats);
  State& s = *state_;
  using clock = std::chrono::steady_clock;
  const size_t n = static_cast<size_t>(s.threads);
  std::vector<uint64_t> sinks(n * 8);  // one cache line apart: no false sharing
  // Each reader takes its own clock right before and after its slice; a repeat lasts from the first start to
  // the last end. A clock read by a coordinating thread instead would count the time that thread was not
  // running as time the readers were not reading: with as many readers as cores it is often preempted right
  // after the start barrier, and the repeat then looks several times shorter than it was (probes of 300-800
  // GB/s on this 2-core VM).
  std::vector<clock::time_point> start(n * static_cast<size_t>(repeats)), end(start.size());
  std::barrier sync(s.threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < s.threads; ++t) {
    pool.emplace_back([&, t] {
      const uint8_t* p = s.buf.data() + s.slice * static_cast<size_t>(t);
      for (int r = 0; r < repeats; ++r) {
        const size_t i = static_cast<size_t>(r) * n + static_cast<size_t>(t);
        sync.arrive_and_wait();
        start[i] = clock::now();
        sinks[static_cast<size_t>(t) * 8] += s.avx2 ? sum_avx2(p, s.slice) : sum_scalar(p, s.slice);
        end[i] = clock::now();
      }
    });
  }
  for (auto& th : pool) th.join();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto first = start.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(r) * n);
    const auto last = end.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(r) * n);
    const auto t0 = *std::min_element(first, first + static_cast<std::ptrdiff_t>(n));
    const auto t1 = *std::max_element(last, last + static_cast<std::ptrdiff_t>(n));
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return static_cast<double>(s.total) / best / 1e9;
}

double measure_read_bandwidth_gbs(size_t bytes, int threads, int repeats) {
  ARK_CHECK(repeats >= 1, "measure_read_bandwidth_gbs: repeats must be >= 1, got ", repeats);
  ReadBandwidthProbe probe(bytes, threads);
  return probe.measure(repeats);
}

}  // namespace ark::bench
