// Per-core throughput of the AVX-512-BF16 prefill GEMM in thread CPU time, which a shared, loaded machine
// disturbs far less than wall-clock time (a descheduled thread's CPU clock stops). Work items are handed out
// the way QuantLinear::forward does (row blocks of m_block x N-tile ranges, a shared ticket), and the rows
// are rounded to bf16 once up front as forward does (--fp32-rows: hand the kernel fp32 rows instead, as the
// MoE does). Prints figures only; never passes or fails on time. Not part of the CMake build:
//
//   g++ -O2 -std=c++20 -Iinclude -Isrc bench/cpu_time/gemm_bf16_cpu_time.cpp build-<you>/libark_core.a
//       -lpthread -o /tmp/gemm_bf16_cpu_time      (one line)
//   /tmp/gemm_bf16_cpu_time [--threads 2] [--m 512] [--n 14336] [--k 4096] [--reps 5] [--fp32-rows]
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "ark/quantized_weight.h"
#include "kernels/cpu_features.h"
#include "kernels/dispatch.h"
#include "linear/packed_weight.h"

namespace ark {
extern const LinearImpl kGemmBf16Avx512Bf16;
}  // namespace ark

using namespace ark;

namespace {

double thread_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 5;
  int64_t M = 512, N = 14336, K = 4096;
  bool fp32_rows = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? std::atoll(argv[++i]) : 0; };
    if (!std::strcmp(argv[i], "--threads"))
      threads = static_cast<int>(next());
    else if (!std::strcmp(argv[i], "--m"))
      M = next();
    else if (!std::strcmp(argv[i], "--n"))
      N = next();
    else if (!std::strcmp(argv[i], "--k"))
      K = next();
    else if (!std::strcmp(argv[i], "--reps"))
      reps = static_cast<int>(next());
    else if (!std::strcmp(argv[i], "--fp32-rows"))
      fp32_rows = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (threads < 1 || reps < 1 || M < 1 || N < 1 || K < 128 || K % 128 != 0) {
    std::fprintf(stderr, "need threads, reps, M, N >= 1 and K a positive multiple of 128 (int4 g128)\n");
    return 2;
  }
  if (detected_isa_level() < IsaLevel::kAvx512Bf16) {
    std::printf("this CPU lacks AVX-512-BF16\n");
    return 0;
  }
  QuantizedWeight q;
  q.out_features = N;
  q.in_features = K;
  q.bits = 4;
  q.group_size = 128;
  q.sym = true;
  std::mt19937 rng(1);
  q.codes.resize(static_cast<size_t>(N * K));
  for (auto& c : q.codes) c = static_cast<uint8_t>(rng() & 15);
  q.scales.resize(static_cast<size_t>(N * q.num_groups()));
  for (auto& s : q.scales) s = 0.01f * static_cast<float>(1 + (rng() & 7));
  q.zeros.assign(q.scales.size(), 8);
  const PackedWeight w = pack_weight(q);
  std::vector<float> x(static_cast<size_t>(M * K)), y(static_cast<size_t>(M * N));
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
  const LinearImpl& impl = kGemmBf16Avx512Bf16;
  LinearArgs a;
  a.m = M;
  a.x = x.data();
  a.ldx = K;
  a.y = y.data();
  a.ldy = N;
  std::vector<uint16_t> xb;
  if (!fp32_rows && impl.prepare_bf16 != nullptr) {
    xb.resize(x.size());
    impl.prepare_bf16(x.data(), K, 0, M, K, xb.data(), K);
    a.xb = xb.data();
    a.ldxb = K;
  }
  const int64_t mb = impl.m_block > 0 ? impl.m_block : M, m_items = (M + mb - 1) / mb;
  const int64_t n_parts =
      threads == 1 ? 1 : std::clamp<int64_t>((4 * threads + m_items - 1) / m_items, 1, w.n_tiles);
  double best_cpu = 1e30, best_wall = 1e30;
  for (int r = 0; r <= reps; ++r) {  // the first pass warms up and is not counted
    std::atomic<int64_t> ticket{0};
    std::vector<double> cpu(static_cast<size_t>(threads));
    const auto w0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const double c0 = thread_cpu_seconds();
        for (int64_t it; (it = ticket.fetch_add(1)) < m_items * n_parts;) {
          const int64_t mi = it / n_parts, ni = it % n_parts;
          const int64_t t0 = w.n_tiles * ni / n_parts, t1 = w.n_tiles * (ni + 1) / n_parts;
          if (t0 < t1) impl.run(w, a, mi * mb, std::min(M, (mi + 1) * mb), t0, t1);
        }
        cpu[static_cast<size_t>(t)] = thread_cpu_seconds() - c0;
      });
    for (auto& th : pool) th.join();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    double total = 0;
    for (double c : cpu) total += c;
    if (r > 0) best_cpu = std::min(best_cpu, total), best_wall = std::min(best_wall, wall);
  }
  const double flop = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  std::printf(
      "%s M=%lld N=%lld K=%lld int4 g128, %s rows, %d thread(s), best of %d: %.1f GFLOP/s per core "
      "(thread CPU time; x%d = %.1f), wall %.1f GFLOP/s\n",
      impl.name, static_cast<long long>(M), static_cast<long long>(N), static_cast<long long>(K),
      a.xb ? "bf16 (prepared)" : "fp32", threads, reps, flop / best_cpu / 1e9, threads,
      flop / best_cpu * threads / 1e9, flop / best_wall / 1e9);
  return 0;
}
