// Per-core throughput of one CPU linear kernel (the AVX-512 F exact GEMM, the AVX-512 VNNI int8 GEMM, the
// AVX-512-BF16 exact GEMM, the AVX-512 decode kernels, or their AVX2 counterparts) in thread CPU time, which
// a shared, loaded machine disturbs far less than wall-clock time (a descheduled thread's CPU clock stops).
// Work is handed out as QuantLinear::forward does (row blocks of the kernel's m_block x N-tile ranges, a
// shared ticket); int8 kernels get rows quantized by the layer's own quantizer; the bf16 GEMM gets rows
// rounded to bf16 once up front as forward does (--fp32-rows: fp32 rows instead, as the MoE's decode runs
// hand it). Use it to compare builds of a kernel: run the old and the new binary alternately. Prints figures
// only; never passes or fails on time. Not part of the CMake build:
//
//   g++ -O2 -std=c++20 -Iinclude -Isrc bench/cpu_time/linear_kernel_cpu_time.cpp build-<you>/libark_core.a
//       -lpthread $(pkg-config --libs libpcre2-8 libutf8proc) -o /tmp/linear_kernel_cpu_time   (one line)
//   /tmp/linear_kernel_cpu_time --kernel f32|vnni|bf16|gemv-f32|gemv-vnni|avx2-f32|avx2-qd8|avx2-gemv-f32|
//       avx2-gemv-qd8 [--threads 1] [--m 512] [--n 14336]
//       [--k 4096] [--bits 4] [--group 128] [--asym] [--reps 5] [--fp32-rows] [--no-scratch]
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ark/quantized_weight.h"
#include "kernels/cpu_features.h"
#include "kernels/dispatch.h"
#include "linear/activations.h"
#include "linear/packed_weight.h"

namespace ark {
extern const LinearImpl kGemmF32Avx512;
extern const LinearImpl kGemmQd8Avx512Vnni;
extern const LinearImpl kGemmBf16Avx512Bf16;
extern const LinearImpl kGemvF32Avx512;
extern const LinearImpl kGemvQd8Avx512Vnni;
extern const LinearImpl kGemmF32Avx2;
extern const LinearImpl kGemmQd8Avx2;
extern const LinearImpl kGemvF32Avx2;
extern const LinearImpl kGemvQd8Avx2;
}  // namespace ark

using namespace ark;

namespace {

double thread_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

struct Kernel {
  const char* flag;
  const LinearImpl* impl;
  IsaLevel needs;
  bool int8;
};

}  // namespace

int main(int argc, char** argv) {
  const Kernel kernels[] = {{"f32", &kGemmF32Avx512, IsaLevel::kAvx512, false},
                            {"vnni", &kGemmQd8Avx512Vnni, IsaLevel::kAvx512Vnni, true},
                            {"bf16", &kGemmBf16Avx512Bf16, IsaLevel::kAvx512Bf16, false},
                            {"gemv-f32", &kGemvF32Avx512, IsaLevel::kAvx512, false},
                            {"gemv-vnni", &kGemvQd8Avx512Vnni, IsaLevel::kAvx512Vnni, true},
                            {"avx2-f32", &kGemmF32Avx2, IsaLevel::kAvx2, false},
                            {"avx2-qd8", &kGemmQd8Avx2, IsaLevel::kAvx2, true},
                            {"avx2-gemv-f32", &kGemvF32Avx2, IsaLevel::kAvx2, false},
                            {"avx2-gemv-qd8", &kGemvQd8Avx2, IsaLevel::kAvx2, true}};
  std::string which = "vnni";
  int threads = 1, reps = 5, bits = 4;
  int64_t M = 512, N = 14336, K = 4096, group = 128;
  bool sym = true, fp32_rows = false, no_scratch = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? std::atoll(argv[++i]) : 0; };
    if (!std::strcmp(argv[i], "--kernel") && i + 1 < argc)
      which = argv[++i];
    else if (!std::strcmp(argv[i], "--threads"))
      threads = static_cast<int>(next());
    else if (!std::strcmp(argv[i], "--m"))
      M = next();
    else if (!std::strcmp(argv[i], "--n"))
      N = next();
    else if (!std::strcmp(argv[i], "--k"))
      K = next();
    else if (!std::strcmp(argv[i], "--bits"))
      bits = static_cast<int>(next());
    else if (!std::strcmp(argv[i], "--group"))
      group = next();
    else if (!std::strcmp(argv[i], "--reps"))
      reps = static_cast<int>(next());
    else if (!std::strcmp(argv[i], "--asym"))
      sym = false;
    else if (!std::strcmp(argv[i], "--fp32-rows"))
      fp32_rows = true;
    else if (!std::strcmp(argv[i], "--no-scratch"))
      no_scratch = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  const Kernel* kernel = nullptr;
  for (const Kernel& k : kernels)
    if (which == k.flag) kernel = &k;
  if (kernel == nullptr) {
    std::fprintf(stderr,
                 "--kernel must be f32, vnni, bf16, gemv-f32, gemv-vnni, avx2-f32, avx2-qd8, avx2-gemv-f32 "
                 "or avx2-gemv-qd8 (got %s)\n",
                 which.c_str());
    return 2;
  }
  if (threads < 1 || reps < 1 || M < 1 || N < 1 || K < 1 || group < 32 || group % 32 != 0 || K % group != 0 ||
      (bits != 2 && bits != 3 && bits != 4 && bits != 8)) {
    std::fprintf(stderr,
                 "need threads, reps, M, N, K >= 1, bits 2/3/4/8, group a multiple of 32 dividing K\n");
    return 2;
  }
  if (detected_isa_level() < kernel->needs) {
    std::printf("this CPU lacks %s\n", std::string(isa_level_name(kernel->needs)).c_str());
    return 0;
  }
  QuantizedWeight q;
  q.out_features = N;
  q.in_features = K;
  q.bits = bits;
  q.group_size = static_cast<int>(group);
  q.sym = sym;
  std::mt19937 rng(1);
  q.codes.resize(static_cast<size_t>(N * K));
  for (auto& c : q.codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
  q.scales.resize(static_cast<size_t>(N * q.num_groups()));
  for (auto& s : q.scales) s = 0.01f * static_cast<float>(1 + (rng() & 7));
  q.zeros.resize(q.scales.size());
  for (auto& z : q.zeros) z = sym ? 1 << (bits - 1) : static_cast<int>(rng() & ((1u << bits) - 1));
  const PackedWeight w = pack_weight(q);
  const int64_t kp = w.k_padded(), G = w.num_groups;
  std::vector<float> x(static_cast<size_t>(M * kp), 0.0f), y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k)
      x[static_cast<size_t>(m * kp + k)] = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
  const LinearImpl& impl = *kernel->impl;
  LinearArgs a;
  a.m = M;
  a.x = x.data();
  a.ldx = kp;
  a.y = y.data();
  a.ldy = N;
  std::vector<int8_t> xq;
  std::vector<float> x_scale;
  std::vector<int32_t> xq_sum;
  if (kernel->int8) {
    xq.resize(static_cast<size_t>(M * kp));
    x_scale.resize(static_cast<size_t>(M * G));
    xq_sum.resize(static_cast<size_t>(M * G));
    select_quantize_rows(detected_isa_level())(w, x.data(), kp, 0, M, xq.data(), kp, x_scale.data(),
                                               xq_sum.data());
    a.xq = xq.data();
    a.ldxq = kp;
    a.x_scale = x_scale.data();
    a.xq_sum = xq_sum.data();
  }
  std::vector<uint16_t> xb;
  if (!fp32_rows && impl.prepare_bf16 != nullptr) {
    xb.resize(x.size());
    impl.prepare_bf16(x.data(), kp, 0, M, kp, xb.data(), kp);
    a.xb = xb.data();
    a.ldxb = kp;
  }
  // Per-thread scratch slices, as QuantLinear::forward hands them (LinearImpl::scratch_bytes), allocated
  // once here; --no-scratch runs such a kernel in its stack budget instead.
  const size_t slice_bytes = impl.scratch_bytes && !no_scratch ? (impl.scratch_bytes(w) + 63) / 64 * 64 : 0;
  std::vector<uint8_t> scratch_store(slice_bytes * static_cast<size_t>(threads) + 64);
  uint8_t* const slices =
      reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(scratch_store.data()) + 63) / 64 * 64);
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
        LinearArgs own = a;
        if (slice_bytes > 0) own.scratch = slices + static_cast<size_t>(t) * slice_bytes;
        for (int64_t it; (it = ticket.fetch_add(1)) < m_items * n_parts;) {
          const int64_t mi = it / n_parts, ni = it % n_parts;
          const int64_t t0 = w.n_tiles * ni / n_parts, t1 = w.n_tiles * (ni + 1) / n_parts;
          if (t0 < t1) impl.run(w, own, mi * mb, std::min(M, (mi + 1) * mb), t0, t1);
        }
        cpu[static_cast<size_t>(t)] = thread_cpu_seconds() - c0;
      });
    for (auto& th : pool) th.join();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    double total = 0;
    for (double c : cpu) total += c;
    if (r > 0) best_cpu = std::min(best_cpu, total), best_wall = std::min(best_wall, wall);
  }
  // A checksum of y, so two builds that should agree bit for bit can be compared from their output.
  uint64_t hash = 1469598103934665603ull;
  for (float v : y) {
    uint32_t bits32;
    std::memcpy(&bits32, &v, 4);
    hash = (hash ^ bits32) * 1099511628211ull;
  }
  const double flop = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  std::printf(
      "%s%s M=%lld N=%lld K=%lld int%d g%lld %s, %d thread(s), best of %d: %.1f GFLOP/s per core "
      "(thread CPU time; x%d = %.1f), wall %.1f GFLOP/s, y hash %016llx\n",
      impl.name, slice_bytes > 0 ? " (scratch)" : "", static_cast<long long>(M), static_cast<long long>(N),
      static_cast<long long>(K), bits, static_cast<long long>(group), sym ? "sym" : "asym", threads, reps,
      flop / best_cpu / 1e9, threads, flop / best_cpu * threads / 1e9, flop / best_wall / 1e9,
      static_cast<unsigned long long>(hash));
  return 0;
}
