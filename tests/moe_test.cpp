// QuantMoE against a float64 reference built per expert from the dequantized canonical weights, with an error
// bound carried through every step (gate/up as in docs/KERNELS.md, then silu·up, then down with its input's
// error, then the routing-weighted sum). Routing variants, T over both kernel regimes, tokens on one expert
// or spread over all, idle experts, shared expert with and without its gate, mixed schemes across experts
// (bits 2/3/4/8, group sizes, sym/asym, act-order, fused and unfused gate/up), compute modes exact and int8
// at every ISA level this machine runs, thread-count independence, forward vs forward_routed, ties, bad
// input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <sstream>
#include <thread>

#include "ark/moe.h"
#include "ark/thread_pool.h"
#include "quant_linear_test_util.h"

namespace ark {
namespace {

using ql_test::WeightConfig;

constexpr double kU = 1.0 / 16777216.0;  // 2^-24, fp32 unit roundoff

// One linear's canonical weight with what the reference needs: the dense fp64 matrix and its group facts.
struct RefLinear {
  QuantizedWeight q;
  std::vector<double> w;  // [N][K]
  int64_t L = 0, G = 0;   // longest group, number of groups
  explicit RefLinear(QuantizedWeight qw) : q(std::move(qw)) {
    const int64_t N = q.out_features, K = q.in_features;
    G = q.num_groups();
    w.resize(static_cast<size_t>(N * K));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) w[n * K + k] = ql_test::dequant64(q, n, k);
    std::vector<int64_t> len(G, 0);
    for (int64_t k = 0; k < K; ++k) ++len[q.group_of(k)];
    L = *std::max_element(len.begin(), len.end());
  }

  // y = W·x for an input known up to ex (|x̂ - x| <= ex), with the bound on |ŷ - y| of the kernel that runs
  // on x̂ (docs/KERNELS.md), |x̂| <= |x| + ex used wherever the bound needs |x̂|.
  void apply(const std::vector<double>& x, const std::vector<double>& ex, bool int8, bool bf16,
             std::vector<double>& y, std::vector<double>& ey) const {
    const int64_t N = q.out_features, K = q.in_features;
    std::vector<double> d(G, 0.0);
    for (int64_t k = 0; k < K; ++k)
      d[q.group_of(k)] = std::max(d[q.group_of(k)], (std::fabs(x[k]) + ex[k]) / 127.0);
    y.assign(N, 0.0);
    ey.assign(N, 0.0);
    const double bf = bf16 ? std::ldexp(1.0, -8) + std::ldexp(1.0, -17) : 0.0;
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0, b = 0;
      const double* wr = w.data() + n * K;
      for (int64_t k = 0; k < K; ++k) {
        const double wv = wr[k], ax = std::fabs(x[k]) + ex[k];
        acc += wv * x[k];
        b += std::fabs(wv) * ex[k];
        if (int8) {
          const double dg = d[q.group_of(k)];
          b += std::fabs(wv) * (dg / 2 + (L + G + 8) * kU * (ax + dg));
        } else {
          b += ((L + G + 4) * kU + bf) * std::fabs(wv) * ax;
        }
      }
      y[n] = acc;
      ey[n] = b + 4 * kU * (std::fabs(acc) + b);
    }
  }
};

struct RefExpert {
  RefLinear gate, up, down;
};

struct ExpertConfig {
  WeightConfig gate, up, down;  // n and k are filled in from the spec
  bool same_act_order = false;  // give up the gate's g_idx (then gate/up fuse with act-order)
};

// Whether exact mode's GEMM at this ISA level rounds operands to bf16 (the bound then has a bf16 term).
bool gemm_is_bf16(const std::string& isa) {
  QuantLinearSpec s;
  s.in_features = 64;
  s.out_features = 16;
  s.group_size = 32;
  s.mode = ComputeMode::kExact;
  s.max_isa = isa;
  QuantLinear l(s);
  std::mt19937_64 rng(1);
  l.load(ql_test::random_weight({16, 64, 4, 32, true, false}, rng));
  l.post_init();
  return l.kernel_name(s.kernel_switch_threshold).find("bf16") != std::string::npos;
}

// A MoE built from random weights, with its reference.
struct Fixture {
  QuantMoESpec spec;
  QuantMoE moe;
  std::vector<RefExpert> ref;  // E, then the shared expert
  std::vector<float> shared_gate;
  bool bf16_gemm = false;

  Fixture(const QuantMoESpec& s, const std::vector<ExpertConfig>& configs, bool with_shared_gate,
          std::mt19937_64& rng)
      : spec(s), moe(s) {
    const int S = s.num_experts + (s.shared_intermediate_size > 0 ? 1 : 0);
    for (int e = 0; e < S; ++e) {
      ExpertConfig c = configs[e % configs.size()];
      const int64_t I = e < s.num_experts ? s.intermediate_size : s.shared_intermediate_size;
      c.gate.n = c.up.n = I;
      c.gate.k = c.up.k = s.hidden_size;
      c.down.n = s.hidden_size;
      c.down.k = I;
      QuantizedWeight g = ql_test::random_weight(c.gate, rng), u = ql_test::random_weight(c.up, rng),
                      d = ql_test::random_weight(c.down, rng);
      if (c.same_act_order) u.g_idx = g.g_idx;
      ref.push_back({RefLinear(g), RefLinear(u), RefLinear(d)});
      if (e < s.num_experts) {
        moe.load_expert(e, std::move(g), std::move(u), std::move(d));
      } else {
        if (with_shared_gate) {
          std::normal_distribution<float> nd(0.0f, 0.1f);
          shared_gate.resize(s.hidden_size);
          for (float& v : shared_gate) v = nd(rng);
        }
        moe.load_shared_expert(std::move(g), std::move(u), std::move(d), shared_gate);
      }
    }
    moe.post_init();
    bf16_gemm = s.mode == ComputeMode::kExact && gemm_is_bf16(s.max_isa);
  }

  bool int8() const { return spec.mode == ComputeMode::kInt8; }

  // One expert on one token: output and error bound. rows: the expert's row count in this call (which
  // kernel regime ran).
  void expert(int e, const float* x, int64_t rows, std::vector<double>& o, std::vector<double>& eo) const {
    const RefExpert& r = ref[e];
    const int64_t H = spec.hidden_size, I = r.gate.q.out_features;
    const int64_t threshold = spec.kernel_switch_threshold > 0 ? spec.kernel_switch_threshold : 128;
    const bool bf16 = bf16_gemm && rows >= threshold;
    std::vector<double> xd(x, x + H), ex(H, 0.0), g, eg, u, eu;
    r.gate.apply(xd, ex, int8(), bf16, g, eg);
    r.up.apply(xd, ex, int8(), bf16, u, eu);
    std::vector<double> h(I), eh(I);
    for (int64_t i = 0; i < I; ++i) {
      const double s = g[i] / (1.0 + std::exp(-g[i]));
      // |silu'| < 1.1; fp32 silu (exp, add, divide) and the product add a few roundings.
      h[i] = s * u[i];
      eh[i] = 1.1 * eg[i] * (std::fabs(u[i]) + eu[i]) + std::fabs(s) * eu[i] +
              8 * kU * (std::fabs(s) + 1.1 * eg[i]) * (std::fabs(u[i]) + eu[i]);
    }
    r.down.apply(h, eh, int8(), bf16, o, eo);
  }

  // The reference of a whole call with the routing given (weights known to within ew).
  void reference(const std::vector<float>& x, const std::vector<int32_t>& ids, const std::vector<double>& w,
                 const std::vector<double>& ew, int64_t T, std::vector<double>& y,
                 std::vector<double>& ey) const {
    const int E = spec.num_experts, k = spec.top_k;
    const int64_t H = spec.hidden_size;
    std::vector<int64_t> rows(E, 0);
    for (int32_t id : ids) ++rows[id];
    y.assign(static_cast<size_t>(T * H), 0.0);
    ey.assign(static_cast<size_t>(T * H), 0.0);
    std::vector<double> o, eo, mag(H);
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x.data() + t * H;
      std::fill(mag.begin(), mag.end(), 0.0);
      double* yt = y.data() + t * H;
      double* et = ey.data() + t * H;
      for (int j = 0; j < k; ++j) {
        const int e = ids[t * k + j];
        expert(e, xt, rows[e], o, eo);
        for (int64_t h = 0; h < H; ++h) {
          yt[h] += w[t * k + j] * o[h];
          et[h] += std::fabs(w[t * k + j]) * eo[h] + ew[t * k + j] * (std::fabs(o[h]) + eo[h]);
          mag[h] += std::fabs(w[t * k + j] * o[h]);
        }
      }
      if (spec.shared_intermediate_size > 0) {
        double sg = 1.0, esg = 0.0;
        if (!shared_gate.empty()) {
          double dot = 0, adot = 0;
          for (int64_t h = 0; h < H; ++h) {
            dot += static_cast<double>(xt[h]) * shared_gate[h];
            adot += std::fabs(static_cast<double>(xt[h]) * shared_gate[h]);
          }
          sg = 1.0 / (1.0 + std::exp(-dot));
          esg = 0.25 * (H + 2) * kU * adot + 4 * kU;
        }
        expert(E, xt, T, o, eo);
        for (int64_t h = 0; h < H; ++h) {
          yt[h] += sg * o[h];
          et[h] += sg * eo[h] + esg * (std::fabs(o[h]) + eo[h]);
          mag[h] += std::fabs(sg * o[h]);
        }
      }
      for (int64_t h = 0; h < H; ++h) et[h] += (k + 3) * kU * (mag[h] + et[h]);
    }
  }

  // transformers' routing in fp64 (ties: lower expert id first), with the error of the fp32 weights.
  void route(const std::vector<float>& logits, int64_t T, std::vector<int32_t>& ids, std::vector<double>& w,
             std::vector<double>& ew) const {
    const int E = spec.num_experts, k = spec.top_k;
    ids.resize(T * k);
    w.resize(T * k);
    ew.resize(T * k);
    for (int64_t t = 0; t < T; ++t) {
      const float* r = logits.data() + t * E;
      std::vector<double> p(r, r + E);
      if (spec.routing == MoeRouting::kSoftmaxThenTopK) {
        const double mx = *std::max_element(p.begin(), p.end());
        double s = 0;
        for (double& v : p) s += (v = std::exp(v - mx));
        for (double& v : p) v /= s;
      }
      std::vector<int32_t> order(E);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
      double s = 0;
      for (int j = 0; j < k; ++j) s += p[order[j]];
      for (int j = 0; j < k; ++j) {
        ids[t * k + j] = order[j];
        double v = p[order[j]];
        if (spec.routing == MoeRouting::kTopKThenSoftmax) {
          double z = 0;
          for (int i = 0; i < k; ++i) z += std::exp(p[order[i]] - p[order[0]]);
          v = std::exp(v - p[order[0]]) / z;
        } else if (spec.norm_topk_prob) {
          v /= s;
        }
        w[t * k + j] = v;
        ew[t * k + j] = (E + k + 12) * kU * v;
      }
    }
  }
};

std::vector<float> separated_logits(int64_t T, int E, std::mt19937_64& rng) {
  // Distinct logits at least 0.1 apart per token, so fp32 and fp64 pick the same top-k.
  std::vector<float> out(static_cast<size_t>(T * E));
  std::vector<int> perm(E);
  std::uniform_real_distribution<float> jitter(-0.1f, 0.1f);
  for (int64_t t = 0; t < T; ++t) {
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int e = 0; e < E; ++e) out[t * E + e] = 0.3f * perm[e] - 1.0f + jitter(rng);
  }
  return out;
}

std::string describe_call(const QuantMoESpec& s, int64_t T, const char* what) {
  std::ostringstream o;
  o << what << ": T " << T << " E " << s.num_experts << " top-" << s.top_k << " routing "
    << (s.routing == MoeRouting::kSoftmaxThenTopK ? "softmax-topk" : "topk-softmax")
    << (s.norm_topk_prob ? " norm" : "") << " mode " << compute_mode_name(s.mode) << " isa '" << s.max_isa
    << "' shared I " << s.shared_intermediate_size;
  return o.str();
}

void expect_within(const std::vector<float>& y, const std::vector<double>& ref,
                   const std::vector<double>& bound, const std::string& what, const QuantMoE& moe) {
  int failures = 0;
  for (size_t i = 0; i < y.size() && failures < 3; ++i) {
    const double err = std::fabs(static_cast<double>(y[i]) - ref[i]);
    if (!(err <= bound[i])) {  // NaN (an unwritten output) fails too
      ADD_FAILURE() << what << ": y[" << i << "] = " << y[i] << ", reference " << ref[i] << ", error " << err
                    << " > bound " << bound[i] << "\n  " << moe.describe();
      ++failures;
    }
  }
}

// Runs forward (routing from logits) and checks it against the reference.
void check_forward(const Fixture& f, int64_t T, std::mt19937_64& rng, const char* what) {
  const std::vector<float> x = ql_test::random_activations(T, f.spec.hidden_size, rng);
  const std::vector<float> logits = separated_logits(T, f.spec.num_experts, rng);
  std::vector<int32_t> ids;
  std::vector<double> w, ew, ref, bound;
  f.route(logits, T, ids, w, ew);
  f.reference(x, ids, w, ew, T, ref, bound);
  std::vector<float> y = ql_test::poisoned(static_cast<size_t>(T * f.spec.hidden_size));
  f.moe.forward(x.data(), logits.data(), y.data(), T);
  expect_within(y, ref, bound, describe_call(f.spec, T, what), f.moe);
}

// Runs forward_routed with the given ids and random weights.
void check_routed(const Fixture& f, const std::vector<int32_t>& ids, int64_t T, std::mt19937_64& rng,
                  const char* what) {
  const std::vector<float> x = ql_test::random_activations(T, f.spec.hidden_size, rng);
  std::uniform_real_distribution<float> uw(0.05f, 1.0f);
  std::vector<float> wf(ids.size());
  for (float& v : wf) v = uw(rng);
  std::vector<double> w(wf.begin(), wf.end()), ew(wf.size(), 0.0), ref, bound;
  f.reference(x, ids, w, ew, T, ref, bound);
  std::vector<float> y = ql_test::poisoned(static_cast<size_t>(T * f.spec.hidden_size));
  f.moe.forward_routed(x.data(), ids.data(), wf.data(), y.data(), T);
  expect_within(y, ref, bound, describe_call(f.spec, T, what), f.moe);
}

// H and I off the tile sizes (136 = 4.25 k-blocks, 72 = 2.25); schemes vary across experts: bits 2/3/4/8,
// group sizes (one k-block, a non-power-of-two, per-channel), sym/asym, act-order, gate/up fused or not.
constexpr int64_t kH = 136, kI = 72;
std::vector<ExpertConfig> mixed_configs() {
  return {
      {{0, 0, 4, 32, true, false}, {0, 0, 4, 32, true, false}, {0, 0, 4, 32, true, false}, false},
      {{0, 0, 2, 64, false, false}, {0, 0, 2, 64, false, false}, {0, 0, 3, 24, false, false}, false},
      {{0, 0, 8, -1, false, false},
       {0, 0, 4, 48, true, false},
       {0, 0, 8, -1, true, false},
       false},  // unfused
      {{0, 0, 3, 32, false, true},
       {0, 0, 3, 32, true, false},
       {0, 0, 2, 32, false, true},
       false},  // act-order
      {{0, 0, 4, 64, false, true},
       {0, 0, 4, 64, false, true},
       {0, 0, 4, -1, false, false},
       true},  // fused act-order
      {{0, 0, 8, 32, true, false}, {0, 0, 8, 32, false, false}, {0, 0, 8, 72, false, false}, false},
  };
}

QuantMoESpec base_spec(int E, int top_k, ComputeMode mode) {
  QuantMoESpec s;
  s.hidden_size = kH;
  s.intermediate_size = kI;
  s.num_experts = E;
  s.top_k = top_k;
  s.mode = mode;
  return s;
}

TEST(QuantMoE, RoutingVariantsAgainstReference) {
  std::mt19937_64 rng = ql_test::rng_for(8001);
  struct Variant {
    MoeRouting routing;
    bool norm;
  };
  for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8})
    for (Variant v :
         {Variant{MoeRouting::kSoftmaxThenTopK, false}, Variant{MoeRouting::kSoftmaxThenTopK, true},
          Variant{MoeRouting::kTopKThenSoftmax, false}}) {
      QuantMoESpec s = base_spec(6, 2, mode);
      s.routing = v.routing;
      s.norm_topk_prob = v.norm;
      Fixture f(s, mixed_configs(), false, rng);
      for (int64_t T : {1, 2, 7, 64, 300}) check_forward(f, T, rng, "routing variant");
    }
}

TEST(QuantMoE, SharedExpertWithAndWithoutGate) {
  std::mt19937_64 rng = ql_test::rng_for(8002);
  for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8})
    for (bool gated : {true, false}) {
      QuantMoESpec s = base_spec(4, 2, mode);
      s.shared_intermediate_size = 104;  // Qwen2-MoE's shared expert is wider than a routed one
      Fixture f(s, mixed_configs(), gated, rng);
      EXPECT_NE(f.moe.describe().find(gated ? "sigmoid gate" : "no gate"), std::string::npos)
          << f.moe.describe();
      for (int64_t T : {1, 7, 130})
        check_forward(f, T, rng, gated ? "shared expert, gated" : "shared expert");
    }
}

TEST(QuantMoE, TokensAllOnOneExpertSpreadAndIdle) {
  std::mt19937_64 rng = ql_test::rng_for(8003);
  for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8}) {
    Fixture f(base_spec(8, 2, mode), mixed_configs(), false, rng);
    for (int64_t T : {1, 7, 64, 300}) {
      // Every token on experts 3 and 5 (300 rows each: the GEMM regime); the other six idle.
      std::vector<int32_t> same(T * 2);
      for (int64_t t = 0; t < T; ++t) same[2 * t] = 3, same[2 * t + 1] = 5;
      check_routed(f, same, T, rng, "all tokens on experts 3 and 5");
      // Spread round-robin over all eight.
      std::vector<int32_t> spread(T * 2);
      for (int64_t i = 0; i < T * 2; ++i) spread[i] = static_cast<int32_t>(i % 8);
      check_routed(f, spread, T, rng, "tokens spread over all experts");
    }
    // top-1 routing with one expert winning every token.
    QuantMoESpec s1 = base_spec(5, 1, mode);
    s1.routing = MoeRouting::kTopKThenSoftmax;
    Fixture g(s1, mixed_configs(), false, rng);
    for (int64_t T : {2, 300}) {
      const std::vector<float> x = ql_test::random_activations(T, kH, rng);
      std::vector<float> logits = separated_logits(T, 5, rng);
      for (int64_t t = 0; t < T; ++t) logits[t * 5 + 4] = 5.0f;
      std::vector<int32_t> ids;
      std::vector<double> w, ew, ref, bound;
      g.route(logits, T, ids, w, ew);
      for (int32_t id : ids) ASSERT_EQ(id, 4);
      g.reference(x, ids, w, ew, T, ref, bound);
      std::vector<float> y = ql_test::poisoned(static_cast<size_t>(T * kH));
      g.moe.forward(x.data(), logits.data(), y.data(), T);
      expect_within(y, ref, bound, describe_call(s1, T, "top-1, all on expert 4"), g.moe);
    }
  }
}

TEST(QuantMoE, EveryIsaLevelAndMode) {
  std::mt19937_64 rng = ql_test::rng_for(8004);
  for (const std::string& isa : ql_test::available_isas())
    for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8}) {
      QuantMoESpec s = base_spec(6, 3, mode);
      s.max_isa = isa;
      s.shared_intermediate_size = 40;
      Fixture f(s, mixed_configs(), true, rng);
      for (int64_t T : {1, 7, 130}) check_forward(f, T, rng, "isa level");
    }
}

// A low kernel_switch_threshold sends experts with a few rows to the GEMM kernels, in both schedules.
TEST(QuantMoE, GemmForExpertsWithFewRows) {
  std::mt19937_64 rng = ql_test::rng_for(8009);
  for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8}) {
    QuantMoESpec s = base_spec(4, 2, mode);
    s.kernel_switch_threshold = 3;
    s.shared_intermediate_size = 40;
    Fixture f(s, mixed_configs(), true, rng);
    for (int64_t T : {2, 7, 40}) check_forward(f, T, rng, "threshold 3");
  }
}

// Both schedules at every T, and prefill waves of one expert each (ARK_MOE_DECODE_TOKENS /
// ARK_MOE_WAVE_BYTES, read at each call), against the reference.
TEST(QuantMoE, SchedulesAndWaves) {
  std::mt19937_64 rng = ql_test::rng_for(8010);
  struct Env {
    const char* decode;
    const char* wave;
  };
  for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8}) {
    QuantMoESpec s = base_spec(6, 2, mode);
    s.shared_intermediate_size = 40;
    Fixture f(s, mixed_configs(), true, rng);
    for (Env env : {Env{"0", "1"}, Env{"1000", nullptr}, Env{nullptr, "20000"}}) {
      if (env.decode) setenv("ARK_MOE_DECODE_TOKENS", env.decode, 1);
      if (env.wave) setenv("ARK_MOE_WAVE_BYTES", env.wave, 1);
      for (int64_t T : {1, 7, 64}) check_forward(f, T, rng, env.wave ? "small waves" : "decode schedule");
      unsetenv("ARK_MOE_DECODE_TOKENS");
      unsetenv("ARK_MOE_WAVE_BYTES");
    }
  }
}

// The exact bf16 GEMM gets per-thread heap scratch from the MoE (its whole-K panel path) unless
// ARK_MOE_KERNEL_SCRATCH=0 withholds it (its stack path): both give the same bytes, in both schedules (a low
// kernel_switch_threshold sends decode experts to the GEMM too), at 1 thread and more, with K cut into chunks
// (an intermediate size over 4096: the down layer's K), and within the bound of the reference.
TEST(QuantMoE, KernelScratchGivesTheStackPathsBytes) {
  std::mt19937_64 rng = ql_test::rng_for(8012);
  std::vector<std::string> isas;
  for (const std::string& isa : ql_test::available_isas())
    if (gemm_is_bf16(isa)) isas.push_back(isa);
  if (isas.empty()) GTEST_SKIP() << "no ISA level here runs the bf16 exact GEMM";
  const int original = default_thread_pool().num_threads();
  for (const std::string& isa : isas)
    for (int64_t I : {kI, int64_t{4200}}) {
      QuantMoESpec s = base_spec(6, 2, ComputeMode::kExact);
      s.max_isa = isa;
      s.intermediate_size = I;
      s.kernel_switch_threshold = 3;
      s.shared_intermediate_size = I == kI ? 40 : 0;
      Fixture f(s, mixed_configs(), I == kI, rng);
      for (int64_t T : I == kI ? std::vector<int64_t>{7, 64, 300} : std::vector<int64_t>{40}) {
        const std::vector<float> x = ql_test::random_activations(T, kH, rng);
        const std::vector<float> logits = separated_logits(T, 6, rng);
        for (int threads : {1, 3}) {
          set_default_num_threads(threads);
          std::vector<float> with = ql_test::poisoned(T * kH), without = ql_test::poisoned(T * kH);
          f.moe.forward(x.data(), logits.data(), with.data(), T);
          setenv("ARK_MOE_KERNEL_SCRATCH", "0", 1);
          f.moe.forward(x.data(), logits.data(), without.data(), T);
          unsetenv("ARK_MOE_KERNEL_SCRATCH");
          EXPECT_EQ(0, std::memcmp(with.data(), without.data(), with.size() * 4))
              << describe_call(s, T, "scratch vs stack path, threads ") << threads << ", isa " << isa;
        }
        set_default_num_threads(original);
        check_forward(f, T, rng, "with kernel scratch");
      }
    }
}

// Forwards on one QuantMoE from several threads at once (each call owns its arena and kernel scratch slices)
// give the bytes of the same calls made one after another, in both schedules, exact and int8.
TEST(QuantMoE, ConcurrentForwardsMatchSequential) {
  std::mt19937_64 rng = ql_test::rng_for(8013);
  for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8}) {
    QuantMoESpec s = base_spec(6, 2, mode);
    s.intermediate_size = 512;  // calls long enough (~1 ms) to overlap
    s.kernel_switch_threshold = 3;
    s.shared_intermediate_size = 40;
    Fixture f(s, mixed_configs(), true, rng);
    const std::vector<int64_t> Ts = {300, 7, 200, 256};
    std::vector<std::vector<float>> xs, logits, seq, par;
    for (int64_t T : Ts) {
      xs.push_back(ql_test::random_activations(T, kH, rng));
      logits.push_back(separated_logits(T, 6, rng));
      seq.push_back(ql_test::poisoned(T * kH));
      par.push_back(ql_test::poisoned(T * kH));
      f.moe.forward(xs.back().data(), logits.back().data(), seq.back().data(), T);
    }
    std::vector<std::thread> callers;
    for (size_t i = 0; i < Ts.size(); ++i)
      callers.emplace_back([&, i] {
        for (int rep = 0; rep < 10; ++rep)
          f.moe.forward(xs[i].data(), logits[i].data(), par[i].data(), Ts[i]);
      });
    for (std::thread& c : callers) c.join();
    for (size_t i = 0; i < Ts.size(); ++i)
      EXPECT_EQ(0, std::memcmp(seq[i].data(), par[i].data(), seq[i].size() * 4))
          << describe_call(s, Ts[i], "concurrent vs sequential");
  }
}

// Experts loaded from several threads at once pack the same as experts loaded one after another.
TEST(QuantMoE, ConcurrentLoadExpert) {
  std::mt19937_64 rng = ql_test::rng_for(8011);
  QuantMoESpec s = base_spec(8, 2, ComputeMode::kInt8);
  Fixture f(s, mixed_configs(), false, rng);
  QuantMoE m(s);
  std::vector<std::thread> loaders;
  for (int part = 0; part < 4; ++part)
    loaders.emplace_back([&, part] {
      for (int e = part; e < 8; e += 4) m.load_expert(e, f.ref[e].gate.q, f.ref[e].up.q, f.ref[e].down.q);
    });
  for (std::thread& t : loaders) t.join();
  m.post_init();
  for (int64_t T : {1, 40}) {
    const std::vector<float> x = ql_test::random_activations(T, kH, rng);
    const std::vector<float> logits = separated_logits(T, 8, rng);
    std::vector<float> a = ql_test::poisoned(T * kH), b = ql_test::poisoned(T * kH);
    f.moe.forward(x.data(), logits.data(), a.data(), T);
    m.forward(x.data(), logits.data(), b.data(), T);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << "T " << T;
  }
}

TEST(QuantMoE, FusesGateUpWhereSchemesAgree) {
  std::mt19937_64 rng = ql_test::rng_for(8005);
  Fixture f(base_spec(6, 2, ComputeMode::kExact), mixed_configs(), false, rng);
  // Of the six configurations, expert 2 (8-bit gate, 4-bit up) and expert 3 (act-order gate, plain up)
  // differ.
  EXPECT_NE(f.moe.describe().find("gate/up fused in 4"), std::string::npos) << f.moe.describe();
  EXPECT_GT(f.moe.packed_bytes(), 0u);
}

TEST(QuantMoE, ThreadCountIndependenceAndForwardVsRouted) {
  std::mt19937_64 rng = ql_test::rng_for(8006);
  const int original = default_thread_pool().num_threads();
  for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8}) {
    QuantMoESpec s = base_spec(8, 2, mode);
    s.norm_topk_prob = true;
    s.shared_intermediate_size = 48;
    QuantMoESpec s1 = s;
    s1.num_threads = 1;
    rng.seed(ql_test::run_seed() + 77);
    Fixture one(s1, mixed_configs(), true, rng);
    rng.seed(ql_test::run_seed() + 77);
    Fixture many(s, mixed_configs(), true, rng);  // the same weights (same seed), every thread of the pool
    for (int64_t T : {1, 7, 300}) {
      const std::vector<float> x = ql_test::random_activations(T, kH, rng);
      const std::vector<float> logits = separated_logits(T, 8, rng);
      std::vector<float> y1 = ql_test::poisoned(T * kH);
      one.moe.forward(x.data(), logits.data(), y1.data(), T);
      for (int threads : {3, 4}) {
        set_default_num_threads(threads);
        std::vector<float> yn = ql_test::poisoned(T * kH);
        many.moe.forward(x.data(), logits.data(), yn.data(), T);
        EXPECT_EQ(0, std::memcmp(y1.data(), yn.data(), y1.size() * 4))
            << describe_call(s, T, "1 thread vs ") << threads;
        // forward == moe_route + forward_routed, bit for bit.
        std::vector<int32_t> ids(T * 2);
        std::vector<float> w(T * 2);
        moe_route(s, logits.data(), T, ids.data(), w.data());
        std::vector<float> yr = ql_test::poisoned(T * kH);
        many.moe.forward_routed(x.data(), ids.data(), w.data(), yr.data(), T);
        EXPECT_EQ(0, std::memcmp(yn.data(), yr.data(), yn.size() * 4))
            << describe_call(s, T, "forward vs routed");
      }
      set_default_num_threads(original);
    }
  }
}

TEST(QuantMoE, RoutingTiesAndOrders) {
  QuantMoESpec s = base_spec(5, 2, ComputeMode::kExact);
  // Ties go to the lower expert id, in both orders.
  const float logits[] = {1.0f,  3.0f, 2.0f, 3.0f, 3.0f,    // three-way tie at the top: ids 1, 3
                          0.5f,  0.5f, 0.5f, 0.5f, 0.5f,    // all equal: ids 0, 1
                          -1.0f, 2.0f, 0.0f, 2.0f, -3.0f};  // ids 1, 3
  const int32_t expected[] = {1, 3, 0, 1, 1, 3};
  for (MoeRouting routing : {MoeRouting::kSoftmaxThenTopK, MoeRouting::kTopKThenSoftmax})
    for (bool norm : {false, true}) {
      s.routing = routing;
      s.norm_topk_prob = norm;
      int32_t ids[6];
      float w[6];
      moe_route(s, logits, 3, ids, w);
      for (int i = 0; i < 6; ++i) EXPECT_EQ(ids[i], expected[i]) << "slot " << i;
      for (int t = 0; t < 3; ++t) EXPECT_EQ(w[2 * t], w[2 * t + 1]) << "tied experts get equal weights";
      if (routing == MoeRouting::kTopKThenSoftmax || norm) {
        EXPECT_FLOAT_EQ(w[0], 0.5f);
      } else {
        // softmax over all five of row 0: e^3 / (e + 3e^3 + e^2)
        const double e1 = std::exp(1.0), e2 = std::exp(2.0), e3 = std::exp(3.0);
        EXPECT_NEAR(w[0], e3 / (e1 + 3 * e3 + e2), 1e-6);
        EXPECT_NEAR(w[2], 0.2, 1e-6);
      }
    }
  // Mixtral's order equals softmax-then-top-k with renormalization.
  std::mt19937_64 rng = ql_test::rng_for(8007);
  const std::vector<float> r = separated_logits(16, 5, rng);
  int32_t a[32], b[32];
  float wa[32], wb[32];
  s.routing = MoeRouting::kTopKThenSoftmax;
  moe_route(s, r.data(), 16, a, wa);
  s.routing = MoeRouting::kSoftmaxThenTopK;
  s.norm_topk_prob = true;
  moe_route(s, r.data(), 16, b, wb);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(a[i], b[i]);
    EXPECT_NEAR(wa[i], wb[i], 1e-6);
  }
}

TEST(QuantMoE, BadInputThrows) {
  std::mt19937_64 rng = ql_test::rng_for(8008);
  QuantMoESpec s = base_spec(3, 2, ComputeMode::kExact);
  QuantMoESpec bad = s;
  bad.top_k = 4;
  EXPECT_THROW(QuantMoE{bad}, Error);  // top_k > E
  bad.top_k = 0;
  EXPECT_THROW(QuantMoE{bad}, Error);
  bad = s;
  bad.hidden_size = 0;
  EXPECT_THROW(QuantMoE{bad}, Error);
  bad = s;
  bad.kernel_switch_threshold = -1;
  EXPECT_THROW(QuantMoE{bad}, Error);
  bad = s;
  bad.max_isa = "sse9";
  EXPECT_THROW(
      {
        QuantMoE m(bad);
        m.load_expert(0, ql_test::random_weight({kI, kH, 4, 32, true, false}, rng),
                      ql_test::random_weight({kI, kH, 4, 32, true, false}, rng),
                      ql_test::random_weight({kH, kI, 4, 24, true, false}, rng));
      },
      Error);
  int32_t ids1[2] = {0, 1};
  float w1[2] = {0.5f, 0.5f};
  int32_t ids_out[2];
  EXPECT_THROW(moe_route(s, nullptr, 1, ids_out, w1), Error);
  EXPECT_THROW(moe_route(bad, nullptr, 1, ids_out, w1), Error);

  QuantMoE m(s);
  auto gate = [&] { return ql_test::random_weight({kI, kH, 4, 32, true, false}, rng); };
  auto down = [&] { return ql_test::random_weight({kH, kI, 4, 24, true, false}, rng); };
  EXPECT_THROW(m.load_expert(3, gate(), gate(), down()), Error);  // expert id out of range
  EXPECT_THROW(m.load_expert(-1, gate(), gate(), down()), Error);
  EXPECT_THROW(m.load_expert(0, down(), gate(), down()), Error);      // gate has down's shape
  EXPECT_THROW(m.load_expert(0, gate(), gate(), gate()), Error);      // down has gate's shape
  EXPECT_THROW(m.load_shared_expert(gate(), gate(), down()), Error);  // the spec has no shared expert
  m.load_expert(0, gate(), gate(), down());
  m.load_expert(2, gate(), gate(), down());
  EXPECT_THROW(m.post_init(), Error);  // expert 1 missing
  std::vector<float> x(kH, 0.5f), y(kH);
  EXPECT_THROW(m.forward_routed(x.data(), ids1, w1, y.data(), 1), Error);  // not post_init'ed
  m.load_expert(1, gate(), gate(), down());
  m.post_init();
  EXPECT_TRUE(m.ready());
  int32_t bad_ids[2] = {0, 3};
  EXPECT_THROW(m.forward_routed(x.data(), bad_ids, w1, y.data(), 1), Error);  // id out of range
  bad_ids[1] = -1;
  EXPECT_THROW(m.forward_routed(x.data(), bad_ids, w1, y.data(), 1), Error);
  EXPECT_THROW(m.forward_routed(nullptr, ids1, w1, y.data(), 1), Error);
  EXPECT_THROW(m.forward_routed(x.data(), ids1, w1, y.data(), -1), Error);
  float logits[3] = {0.0f, std::nanf(""), 1.0f};
  EXPECT_THROW(m.forward(x.data(), logits, y.data(), 1), Error);  // NaN logit
  EXPECT_THROW(m.forward(x.data(), nullptr, y.data(), 1), Error);
  m.forward_routed(x.data(), ids1, w1, y.data(), 0);  // T = 0 does nothing

  QuantMoESpec ss = s;
  ss.shared_intermediate_size = 16;
  QuantMoE sh(ss);
  for (int e = 0; e < 3; ++e) sh.load_expert(e, gate(), gate(), down());
  EXPECT_THROW(sh.post_init(), Error);  // shared expert missing
  auto sgate = [&] { return ql_test::random_weight({16, kH, 4, 32, true, false}, rng); };
  auto sdown = [&] { return ql_test::random_weight({kH, 16, 4, 16, true, false}, rng); };
  EXPECT_THROW(sh.load_shared_expert(sgate(), sgate(), sdown(), std::vector<float>(kH - 1, 0.0f)), Error);
  EXPECT_THROW(sh.load_shared_expert(gate(), gate(), down()), Error);  // routed expert's shapes
  sh.load_shared_expert(sgate(), sgate(), sdown(), std::vector<float>(kH, 0.01f));
  sh.post_init();
  sh.forward_routed(x.data(), ids1, w1, y.data(), 1);
  for (float v : y) EXPECT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace ark
