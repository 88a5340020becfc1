// Every kernel path against the fp64 oracle: ISA level x compute mode x bits x group size x sym/asym x
// act-order, over row counts that hit every tail of both regimes, with N and K off the tile sizes. The full
// cross product is sampled (a fixed spread of configurations, each with fresh random data per run); a few
// configurations get the whole M list.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>

#include "kernels/cpu_features.h"
#include "quant_linear_test_util.h"

namespace ark {
namespace {

using ql_test::WeightConfig;

constexpr std::array<int64_t, 17> kAllM = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 64, 127, 128, 129, 300};

struct Case {
  std::string isa;
  ComputeMode mode;
  WeightConfig w;
  bool bias;
  int64_t threshold;
};

std::string describe_case(const Case& c, int64_t m) {
  std::ostringstream s;
  s << "isa " << c.isa << " mode " << compute_mode_name(c.mode) << " N " << c.w.n << " K " << c.w.k
    << " bits " << c.w.bits << " g " << c.w.group_size << (c.w.sym ? " sym" : " asym")
    << (c.w.act_order ? " act-order" : "") << (c.bias ? " bias" : "") << " threshold " << c.threshold << " M "
    << m;
  return s.str();
}

// Runs one case at the given row counts; returns the number of outputs checked.
void check_case(const Case& c, const std::vector<int64_t>& ms, uint64_t case_id) {
  std::mt19937_64 rng = ql_test::rng_for(case_id);
  const QuantizedWeight w = ql_test::random_weight(c.w, rng);
  std::vector<float> bias;
  QuantLinearSpec spec;
  spec.in_features = c.w.k;
  spec.out_features = c.w.n;
  spec.bits = c.w.bits;
  spec.group_size = c.w.group_size;
  spec.sym = c.w.sym;
  spec.act_order = c.w.act_order;
  spec.bias = c.bias;
  spec.mode = c.mode;
  spec.max_isa = c.isa;
  spec.kernel_switch_threshold = c.threshold;
  QuantLinear layer(spec);
  layer.load(w);
  if (c.bias) {
    std::normal_distribution<float> nd(0.0f, 0.5f);
    bias.resize(c.w.n);
    for (auto& b : bias) b = nd(rng);
    layer.load_bias(bias.data(), DType::F32, c.w.n);
  }
  layer.post_init();
  for (int64_t m : ms) {
    const std::vector<float> x = ql_test::random_activations(m, c.w.k, rng);
    std::vector<float> y = ql_test::poisoned(static_cast<size_t>(m * c.w.n));
    layer.forward(x.data(), y.data(), m);
    const bool bf16 = layer.kernel_name(m).find("bf16") != std::string::npos;
    const ql_test::Oracle o = ql_test::oracle(w, bias, x, m, c.mode == ComputeMode::kInt8, bf16);
    int failures = 0;
    for (int64_t i = 0; i < m * c.w.n && failures < 3; ++i) {
      const double err = std::fabs(static_cast<double>(y[i]) - o.y[i]);
      if (!(err <= o.bound[i])) {  // also catches NaN: an output the kernel never wrote
        ADD_FAILURE() << describe_case(c, m) << ": y[" << i / c.w.n << "][" << i % c.w.n << "] = " << y[i]
                      << ", oracle " << o.y[i] << ", error " << err << " > bound " << o.bound[i] << "\n  "
                      << layer.describe() << "\n  kernel " << layer.kernel_name(m);
        ++failures;
      }
    }
  }
}

// Shapes off the tile sizes: N not a multiple of 16, K not a multiple of 32 where the group size allows.
struct Shape {
  int64_t n, k, g;
};
constexpr Shape kShapes[] = {
    {40, 96, 32},    // N tail, groups exactly one k-block
    {23, 256, 128},  // N below one tile + tail
    {50, 200, -1},   // per-channel, K = 200 padded to 224
    {33, 192, 48},   // group of 48: padded per group to 64 (non-power-of-two divisor)
    {17, 160, 64},   // last group partial (160 = 2.5 groups)
    {64, 384, 96},   // 96 = 3 k-blocks, N a whole number of tiles
};

std::vector<Case> sampled_cases() {
  std::vector<Case> cases;
  int i = 0;
  for (const std::string& isa : ql_test::available_isas())
    for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8})
      for (int bits : {2, 3, 4, 8})
        for (bool sym : {true, false}) {
          // Rotate shapes and act-order with the index so every level/mode/bits sees several of each.
          const Shape s = kShapes[i % std::size(kShapes)];
          const bool act_order = (i / 2) % 3 == 1;
          cases.push_back({isa, mode, {s.n, s.k, bits, s.g, sym, act_order}, i % 4 == 0, 128});
          ++i;
        }
  return cases;
}

TEST(QuantLinearKernels, SampledCrossProductAgainstOracle) {
  const std::vector<int64_t> ms = {1, 3, 8, 17, 129};
  uint64_t id = 0;
  for (const Case& c : sampled_cases()) check_case(c, ms, 1000 + id++);
}

// The whole M list on a few configurations per ISA level and mode, crossing the regime switch at 128.
TEST(QuantLinearKernels, FullRowListAcrossRegimes) {
  const std::vector<int64_t> ms(kAllM.begin(), kAllM.end());
  uint64_t id = 0;
  for (const std::string& isa : ql_test::available_isas())
    for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8}) {
      check_case({isa, mode, {40, 160, 4, 32, false, false}, true, 128}, ms, 5000 + id++);
      check_case({isa, mode, {24, 224, 3, -1, true, true}, false, 128}, ms, 5000 + id++);
    }
}

// Both compute modes have a vector kernel in both regimes at every ISA level above ref (issue 3): a requested
// mode never runs the scalar reference, whatever the bit width.
TEST(QuantLinearKernels, EveryLevelHasVectorKernelsForBothModes) {
  uint64_t id = 0;
  for (const std::string& isa : ql_test::available_isas()) {
    if (isa == "ref") continue;
    for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8})
      for (int bits : {2, 3, 4, 8}) {
        std::mt19937_64 rng = ql_test::rng_for(7000 + id++);
        const WeightConfig c{24, 128, bits, 64, false, false};
        QuantLinearSpec spec{128, 24, bits, 64, false, false, false, 128, mode, isa, 0};
        QuantLinear layer(spec);
        layer.load(ql_test::random_weight(c, rng));
        layer.post_init();
        EXPECT_NE(layer.kernel_name(1), "ref") << layer.describe();
        EXPECT_NE(layer.kernel_name(128), "ref") << layer.describe();
      }
  }
}

// Every group size the formats allow through one level: power-of-two, non-power-of-two, partial last group,
// per-channel, and the smallest ones (which pad each group to a k-block).
TEST(QuantLinearKernels, GroupSizes) {
  uint64_t id = 0;
  const std::string top = ql_test::available_isas().back();
  for (int64_t g : {1, 8, 20, 32, 40, 64, 100, 128, 256, -1})
    for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8})
      check_case({top, mode, {19, 256, 4, g, false, g == 40}, false, 128}, {1, 5, 130}, 8000 + id++);
}

// Scales that fp16 cannot hold exactly are kept in fp32 by the packer; both kernels must read them.
TEST(QuantLinearKernels, Fp32Scales) {
  uint64_t id = 0;
  for (const std::string& isa : ql_test::available_isas())
    for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8}) {
      std::mt19937_64 rng = ql_test::rng_for(9000 + id++);
      WeightConfig c{37, 128, 4, 64, false, false};
      const QuantizedWeight w = ql_test::random_weight(c, rng, /*f32_scales=*/true);
      QuantLinearSpec spec{128, 37, 4, 64, false, false, false, 128, mode, isa, 0};
      QuantLinear layer(spec);
      layer.load(w);
      layer.post_init();
      EXPECT_NE(layer.describe().find("scales fp32"), std::string::npos) << layer.describe();
      for (int64_t m : {1, 6, 128}) {
        const std::vector<float> x = ql_test::random_activations(m, 128, rng);
        std::vector<float> y = ql_test::poisoned(static_cast<size_t>(m * 37));
        layer.forward(x.data(), y.data(), m);
        const bool bf16 = layer.kernel_name(m).find("bf16") != std::string::npos;
        const ql_test::Oracle o = ql_test::oracle(w, {}, x, m, mode == ComputeMode::kInt8, bf16);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_LE(std::fabs(y[i] - o.y[i]), o.bound[i])
              << isa << " " << compute_mode_name(mode) << " M " << m;
      }
    }
}

// The exact large-M GEMM on AVX-512-BF16 takes heap scratch from the forward (one slice per thread of the
// call: whole-K weight panels). Concurrent forwards on one layer, from more threads than the pool, and every
// thread count must give the same bytes, and those must meet the bf16 bound; K = 4500 splits into two K
// chunks.
TEST(QuantLinearKernels, ExactPrefillScratchIsPerCall) {
  if (detected_isa_level() < IsaLevel::kAvx512Bf16) GTEST_SKIP() << "this CPU lacks AVX-512-BF16";
  std::mt19937_64 rng = ql_test::rng_for(9500);
  const WeightConfig c{70, 4500, 4, 128, false, true};
  const QuantizedWeight w = ql_test::random_weight(c, rng);
  const int64_t m = 140;
  const std::vector<float> x = ql_test::random_activations(m, c.k, rng);
  std::vector<float> first;
  for (int threads : {1, 2, 3}) {
    QuantLinearSpec spec{c.k,           c.n,    4, 128, false, false, true, 128, ComputeMode::kExact,
                         "avx512_bf16", threads};
    QuantLinear layer(spec);
    layer.load(w);
    layer.post_init();
    ASSERT_NE(layer.kernel_name(m).find("bf16"), std::string::npos) << layer.describe();
    std::vector<std::vector<float>> outs(threads == 2 ? 4 : 1,
                                         ql_test::poisoned(static_cast<size_t>(m * c.n)));
    std::vector<std::thread> callers;
    for (auto& out : outs)
      callers.emplace_back([&, p = &out] {
        for (int rep = 0; rep < 3; ++rep) layer.forward(x.data(), p->data(), m);
      });
    for (auto& t : callers) t.join();
    if (first.empty()) {
      first = outs[0];
      const ql_test::Oracle o = ql_test::oracle(w, {}, x, m, false, true);
      for (size_t i = 0; i < first.size(); ++i)
        ASSERT_LE(std::fabs(first[i] - o.y[i]), o.bound[i]) << "y[" << i / c.n << "][" << i % c.n << "]";
    }
    for (const auto& out : outs)
      EXPECT_EQ(0, std::memcmp(first.data(), out.data(), first.size() * sizeof(float)))
          << "threads " << threads << ": outputs differ";
  }
}

}  // namespace
}  // namespace ark
