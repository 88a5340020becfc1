// Helpers for the QuantLinear tests: a per-run seed (printed; ARK_TEST_SEED replays it), random canonical
// weights, the fp64 oracle, the documented error bounds of the two compute modes (docs/KERNELS.md), NaN
// poisoning and the ISA levels this machine can run.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "ark/dtype.h"
#include "ark/quant_linear.h"
#include "ark/quantized_weight.h"
#include "kernels/cpu_features.h"

namespace ark::ql_test {

inline uint64_t run_seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("ARK_TEST_SEED");
    const uint64_t s = (env && *env) ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    std::printf("quant_linear tests: seed %llu (replay with ARK_TEST_SEED=%llu)\n",
                static_cast<unsigned long long>(s), static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

// A generator per test case, derived from the run seed and a case id so cases do not depend on each other.
inline std::mt19937_64 rng_for(uint64_t case_id) {
  return std::mt19937_64(run_seed() * 0x9e3779b97f4a7c15ull + case_id);
}

struct WeightConfig {
  int64_t n = 40, k = 96;
  int bits = 4;
  int64_t group_size = 32;  // -1: per-channel
  bool sym = true;
  bool act_order = false;
};

// Random codes over the full range, scales of both signs that fp16 represents (as checkpoints hold; set
// f32_scales for values it does not), zero points over [0, 2^bits] for asym (2^bits is GPTQ v1's borrow).
inline QuantizedWeight random_weight(const WeightConfig& c, std::mt19937_64& rng, bool f32_scales = false) {
  QuantizedWeight w;
  w.out_features = c.n;
  w.in_features = c.k;
  w.bits = c.bits;
  w.group_size = c.group_size == -1 ? c.k : c.group_size;
  w.sym = c.sym;
  const int64_t G = w.num_groups();
  std::uniform_int_distribution<int> code(0, (1 << c.bits) - 1);
  std::uniform_int_distribution<int> zero(0, 1 << c.bits);
  std::uniform_real_distribution<float> mag(0.002f, 0.05f);
  w.codes.resize(static_cast<size_t>(c.n * c.k));
  for (auto& q : w.codes) q = static_cast<uint8_t>(code(rng));
  w.scales.resize(static_cast<size_t>(c.n * G));
  w.zeros.resize(static_cast<size_t>(c.n * G));
  for (int64_t i = 0; i < c.n * G; ++i) {
    float s = mag(rng) * ((rng() & 1) ? -1.0f : 1.0f);
    w.scales[i] = f32_scales ? s * 1.00001f : fp16_to_float(float_to_fp16(s));
    w.zeros[i] = c.sym ? (1 << (c.bits - 1)) : zero(rng);
  }
  if (c.act_order) {
    // As GPTQ with desc_act: channels are quantized in a permuted order, g_idx[perm[i]] = i / group_size.
    std::vector<int32_t> perm(c.k);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    w.g_idx.resize(c.k);
    for (int64_t i = 0; i < c.k; ++i) w.g_idx[perm[i]] = static_cast<int32_t>(i / w.group_size);
  }
  return w;
}

inline std::vector<float> random_activations(int64_t m, int64_t k, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m * k));
  for (auto& v : x) v = nd(rng);
  // An outlier channel per row, as LLM activations have: it stretches the int8 group scale.
  for (int64_t r = 0; r < m; ++r) x[r * k + (r * 7) % k] *= 8.0f;
  return x;
}

inline double dequant64(const QuantizedWeight& w, int64_t n, int64_t k) {
  const int64_t ng = n * w.num_groups() + w.group_of(k);
  return static_cast<double>(w.scales[ng]) *
         (static_cast<double>(w.codes[n * w.in_features + k]) - w.zeros[ng]);
}

// The oracle: fp64 sums of the canonical weight, straight from its definition. Also returns, per output, the
// error bound of the compute mode (docs/KERNELS.md):
//   exact: (L + G + 4) * u * sum_k |x_k w_k|, u = 2^-24, L = longest group (fp32 sums of L terms per group,
//          then G fp32 additions of scaled group sums);
//   int8:  sum_k |w_k| * (d_g / 2 + (L + G + 8) * u * (|x_k| + d_g)), d_g = max|x| / 127 over k's group
//          (rounding x to the int8 grid moves each x_k by at most d_g / 2; the rest is fp32 epilogue
//          rounding).
struct Oracle {
  std::vector<double> y;      // [M][N]
  std::vector<double> bound;  // [M][N]
};

inline Oracle oracle(const QuantizedWeight& w, const std::vector<float>& bias, const std::vector<float>& x,
                     int64_t m, bool int8, bool bf16_operands = false) {
  const int64_t N = w.out_features, K = w.in_features, G = w.num_groups();
  std::vector<int64_t> len(G, 0);
  for (int64_t k = 0; k < K; ++k) ++len[w.group_of(k)];
  const int64_t L = *std::max_element(len.begin(), len.end());
  const double u = std::ldexp(1.0, -24);
  Oracle o;
  o.y.assign(static_cast<size_t>(m * N), 0.0);
  o.bound.assign(static_cast<size_t>(m * N), 0.0);
  std::vector<double> d(G);
  for (int64_t r = 0; r < m; ++r) {
    std::fill(d.begin(), d.end(), 0.0);
    for (int64_t k = 0; k < K; ++k)
      d[w.group_of(k)] = std::max(d[w.group_of(k)], std::fabs(static_cast<double>(x[r * K + k])) / 127.0);
    for (int64_t n = 0; n < N; ++n) {
      double acc = bias.empty() ? 0.0 : bias[n], b = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double wv = dequant64(w, n, k), xv = x[r * K + k];
        acc += wv * xv;
        if (int8) {
          const double dg = d[w.group_of(k)];
          b += std::fabs(wv) * (dg / 2 + (L + G + 8) * u * (std::fabs(xv) + dg));
        } else {
          b += ((L + G + 4) * u + (bf16_operands ? std::ldexp(1.0, -8) + std::ldexp(1.0, -17) : 0.0)) *
               std::fabs(wv * xv);
        }
      }
      o.y[r * N + n] = acc;
      o.bound[r * N + n] = b + 4 * u * std::fabs(acc);  // + bias addition and the last rounding
    }
  }
  return o;
}

// ISA levels this machine runs, lowest first.
inline std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (int l = 0; l <= static_cast<int>(detected_isa_level()); ++l)
    out.emplace_back(isa_level_name(static_cast<IsaLevel>(l)));
  return out;
}

inline std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::nanf(""));
}

// The spec of a layer holding `c`, in `mode`, capped at ISA level `isa` ("" = the machine's), on `threads`
// threads (0 = the default).
inline QuantLinearSpec spec_for(const WeightConfig& c, ComputeMode mode, const std::string& isa = "",
                                int threads = 0) {
  QuantLinearSpec s;
  s.in_features = c.k;
  s.out_features = c.n;
  s.bits = c.bits;
  s.group_size = c.group_size;
  s.sym = c.sym;
  s.act_order = c.act_order;
  s.mode = mode;
  s.max_isa = isa;
  s.num_threads = threads;
  return s;
}

inline bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace ark::ql_test
