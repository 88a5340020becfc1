// Times the large-M GEMM kernels that this CPU can run on one layer (default 4096 x 14336, int4 g128 sym,
// M = 512), on 1 thread and on every hardware thread, handing out (row block x N-tile range) work items the
// way QuantLinear does. Built and run by scripts/device_amx_check.sh on the device machine, whose Intel host
// CPU has AMX; it prints figures and never passes or fails on time.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "ark/quantized_weight.h"
#include "kernels/cpu_features.h"
#include "kernels/dispatch.h"
#include "linear/packed_weight.h"

namespace ark {
extern const LinearImpl kGemmBf16Amx;
extern const LinearImpl kGemmQd8Amx;
extern const LinearImpl kGemmBf16Avx512Bf16;
extern const LinearImpl kGemmQd8Avx512Vnni;
extern const LinearImpl kGemmF32Avx512;
extern const LinearImpl kGemmQd8AvxVnni;
extern const LinearImpl kGemmQd8Avx2;
extern const LinearImpl kGemmF32Avx2;
}  // namespace ark

using namespace ark;

int main(int argc, char** argv) {
  const int64_t K = argc > 1 ? std::atoll(argv[1]) : 4096, N = argc > 2 ? std::atoll(argv[2]) : 14336;
  const int64_t M = argc > 3 ? std::atoll(argv[3]) : 512, g = 128;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line even into a pipe (tee), so a cut-off run still shows
  const CpuFeatures& f = cpu_features();
  std::printf("cpu: %s; amx tile %d int8 %d bf16 %d, os permission %d; detected isa %s\n", f.brand.c_str(),
              f.amx_tile, f.amx_int8, f.amx_bf16, f.os_amx,
              std::string(isa_level_name(detected_isa_level())).c_str());

  QuantizedWeight w;
  w.out_features = N;
  w.in_features = K;
  w.bits = 4;
  w.group_size = g;
  w.sym = true;
  std::mt19937 rng(7);
  w.codes.resize(static_cast<size_t>(N * K));
  for (auto& c : w.codes) c = static_cast<uint8_t>(rng() & 15);
  w.scales.assign(static_cast<size_t>(N * (K / g)), 0.01f);
  w.zeros.assign(w.scales.size(), 8);
  const PackedWeight p = pack_weight(w);
  const int64_t G = p.num_groups, kp = p.k_padded();
  std::vector<float> x(static_cast<size_t>(M * kp));
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
  std::vector<int8_t> xq(static_cast<size_t>(M * kp));
  for (auto& v : xq) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  std::vector<float> xs(static_cast<size_t>(M * G), 0.01f);
  std::vector<int32_t> xsum(static_cast<size_t>(M * G), 3);
  std::vector<float> y(static_cast<size_t>(M * N));
  LinearArgs a;
  a.m = M;
  a.x = x.data();
  a.ldx = kp;
  a.xq = xq.data();
  a.ldxq = kp;
  a.x_scale = xs.data();
  a.xq_sum = xsum.data();
  a.y = y.data();
  a.ldy = N;

  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (const LinearImpl* impl : {&kGemmBf16Amx, &kGemmQd8Amx, &kGemmBf16Avx512Bf16, &kGemmQd8Avx512Vnni,
                                 &kGemmF32Avx512, &kGemmQd8AvxVnni, &kGemmQd8Avx2, &kGemmF32Avx2}) {
    LinearProblem prob;
    prob.bits = 4;
    prob.n = N;
    prob.k = K;
    prob.num_groups = G;
    prob.isa = detected_isa_level();
    prob.avx_vnni = f.avx_vnni;
    const bool int8 = impl == &kGemmQd8Amx || impl == &kGemmQd8Avx512Vnni || impl == &kGemmQd8AvxVnni ||
                      impl == &kGemmQd8Avx2;
    prob.mode = int8 ? ComputeMode::kInt8 : ComputeMode::kExact;
    if (!impl->accepts(prob)) {
      std::printf("%-40s skipped: this CPU lacks its ISA\n", impl->name);
      continue;
    }
    // As QuantLinear::forward does: a kernel with prepare_bf16 reads the rows rounded to bf16 once.
    LinearArgs ai = a;
    std::vector<uint16_t> xb;
    if (impl->prepare_bf16 != nullptr && !int8) {
      xb.resize(x.size());
      impl->prepare_bf16(x.data(), kp, 0, M, kp, xb.data(), kp);
      ai.xb = xb.data();
      ai.ldxb = kp;
    }
    // And, as forward does, one heap scratch slice per thread for a kernel that asks for one.
    const size_t slice = impl->scratch_bytes ? (impl->scratch_bytes(p) + 63) / 64 * 64 : 0;
    std::vector<uint8_t> slices(slice * static_cast<size_t>(hw) + 64);
    uint8_t* const slice0 = slices.data() + (64 - reinterpret_cast<uintptr_t>(slices.data()) % 64) % 64;
    for (int threads : {1, hw}) {
      const int64_t mb = impl->m_block;
      const int64_t m_items = (M + mb - 1) / mb;
      const int64_t n_parts = std::max<int64_t>(1, (4 * threads + m_items - 1) / m_items);
      auto pass = [&] {
        std::atomic<int64_t> next{0};
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
          pool.emplace_back([&, t] {
            LinearArgs own = ai;
            if (slice > 0) own.scratch = slice0 + static_cast<size_t>(t) * slice;
            for (int64_t it; (it = next.fetch_add(1)) < m_items * n_parts;) {
              const int64_t mi = it / n_parts, ni = it % n_parts;
              const int64_t t0 = p.n_tiles * ni / n_parts, t1 = p.n_tiles * (ni + 1) / n_parts;
              if (t0 < t1) impl->run(p, own, mi * mb, std::min(M, (mi + 1) * mb), t0, t1);
            }
          });
        for (auto& th : pool) th.join();
      };
      pass();
      std::vector<double> times;
      for (int r = 0; r < 5; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        pass();
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(times.begin(), times.end());
      const double t = times[times.size() / 2];
      std::printf("%-40s M=%lld %lldx%lld int4 g128 threads=%2d: %8.2f ms  %8.1f GFLOP/s\n", impl->name,
                  static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N), threads,
                  t * 1e3, 2.0 * M * N * K / t / 1e9);
    }
  }
  return 0;
}
