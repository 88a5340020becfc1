// The vectorised int8 activation quantizer against the scalar reference: bit-identical codes, scales and
// sums, over group layouts with padding and act-order-sized groups, on random rows whose magnitudes vary by
// group (so each group gets its own scale). The reference itself is checked here against a hand-worked
// group.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu_features.h"
#include "linear/activations.h"
#include "linear/packed_weight.h"
#include "quant_linear_test_util.h"

namespace ark {
namespace {

// A PackedWeight carrying only what the quantizer reads: the group -> k-block map.
PackedWeight group_layout(const std::vector<int32_t>& blocks_per_group) {
  PackedWeight w;
  w.num_groups = static_cast<int64_t>(blocks_per_group.size());
  w.group_block_begin.assign(1, 0);
  for (int32_t b : blocks_per_group) w.group_block_begin.push_back(w.group_block_begin.back() + b);
  w.k_blocks = w.group_block_begin.back();
  w.k = w.k_padded();
  return w;
}

struct Quantized {
  std::vector<int8_t> xq;
  std::vector<float> scale;
  std::vector<int32_t> sum;
};

Quantized run(QuantizeRowsFn fn, const PackedWeight& w, const std::vector<float>& x, int64_t M, int64_t ldx,
              int64_t ldxq) {
  Quantized r;
  // Poisoned outputs: every value the quantizer must write starts out as garbage.
  r.xq.assign(static_cast<size_t>(M * ldxq), int8_t{-128});
  r.scale.assign(static_cast<size_t>(M * w.num_groups), std::numeric_limits<float>::quiet_NaN());
  r.sum.assign(static_cast<size_t>(M * w.num_groups), std::numeric_limits<int32_t>::min());
  // Two calls on row ranges, as the layer splits rows across threads.
  fn(w, x.data(), ldx, 0, M / 2, r.xq.data(), ldxq, r.scale.data(), r.sum.data());
  fn(w, x.data(), ldx, M / 2, M, r.xq.data(), ldxq, r.scale.data(), r.sum.data());
  return r;
}

TEST(QuantLinearActivations, ReferenceMatchesHandWorkedGroup) {
  // One group of 32 with max|x| = 127, so the factor is exactly 1 and the codes are x rounded half to even.
  PackedWeight w = group_layout({1});
  const float x[32] = {0.5f,  1.5f,  -2.5f, 3.25f,  2.75f, -127.0f, 6.0f,  -7.5f, 100.49f, -0.49f, 8.5f,
                       9.5f,  10.5f, 11.0f, -12.0f, 13.0f, 14.0f,   15.0f, 16.0f, 17.0f,   18.0f,  19.0f,
                       20.0f, 21.0f, 22.0f, 23.0f,  24.0f, 25.0f,   26.0f, 27.0f, 28.0f,   29.0f};
  const int expect[32] = {0,  2,  -2, 3,  3,  -127, 6,  -8, 100, 0,  8,  10, 10, 11, -12, 13,
                          14, 15, 16, 17, 18, 19,   20, 21, 22,  23, 24, 25, 26, 27, 28,  29};
  int8_t xq[32];
  float s = 0;
  int32_t sum = 0;
  quantize_activation_rows_ref(w, x, 32, 0, 1, xq, 32, &s, &sum);
  EXPECT_EQ(s, 1.0f);
  int32_t expect_sum = 0;
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(xq[i], expect[i]) << "k " << i;
    expect_sum += expect[i];
  }
  EXPECT_EQ(sum, expect_sum);
}

TEST(QuantLinearActivations, Avx512MatchesReferenceBitExact) {
  if (detected_isa_level() < IsaLevel::kAvx512) GTEST_SKIP() << "no AVX-512 on this machine";
  auto rng = ql_test::rng_for(0x51);
  const std::vector<std::vector<int32_t>> layouts = {
      {1}, {4}, {4, 4, 4, 4, 4, 4, 4}, {1, 2, 1, 3, 1}, {2, 2, 2, 1}, {152}, {1, 1, 1, 1, 1, 1, 1, 1, 1}};
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_real_distribution<float> log_mag(-6.0f, 6.0f);
  for (const auto& layout : layouts) {
    const PackedWeight w = group_layout(layout);
    for (int64_t M : {1, 3, 8}) {
      const int64_t ldx = w.k_padded() + 16, ldxq = w.k_padded() + 64;
      std::vector<float> x(static_cast<size_t>(M * ldx), std::numeric_limits<float>::quiet_NaN());
      for (int64_t m = 0; m < M; ++m)
        for (int64_t g = 0; g < w.num_groups; ++g) {
          const float mag = std::exp2(log_mag(rng));
          for (int64_t i = w.group_block_begin[g] * kBlockK; i < w.group_block_begin[g + 1] * kBlockK; ++i)
            x[m * ldx + i] = mag * unit(rng);
        }
      // Exact halves (x * factor = j + 0.5) exercise the tie rounding, and an all-zero group the zero scale.
      x[0] = 0.5f;
      x[1] = 1.0f;
      x[2] = -127.0f / 254.0f;
      if (M > 1 && w.num_groups > 1)
        for (int64_t i = w.group_block_begin[1] * kBlockK; i < w.group_block_begin[2] * kBlockK; ++i)
          x[ldx + i] = 0.0f;
      const Quantized ref = run(quantize_activation_rows_ref, w, x, M, ldx, ldxq);
      const Quantized vec = run(quantize_activation_rows_avx512, w, x, M, ldx, ldxq);
      ASSERT_EQ(0, std::memcmp(ref.scale.data(), vec.scale.data(), ref.scale.size() * sizeof(float)))
          << "groups " << w.num_groups << " M " << M;
      ASSERT_EQ(ref.sum, vec.sum) << "groups " << w.num_groups << " M " << M;
      ASSERT_EQ(ref.xq, vec.xq) << "groups " << w.num_groups << " M " << M;
    }
  }
}

TEST(QuantLinearActivations, DispatchPicksVectorisedQuantizer) {
  EXPECT_EQ(select_quantize_rows(IsaLevel::kRef), &quantize_activation_rows_ref);
  EXPECT_EQ(select_quantize_rows(IsaLevel::kAvx2), &quantize_activation_rows_ref);
  EXPECT_EQ(select_quantize_rows(IsaLevel::kAvx512), &quantize_activation_rows_avx512);
}

}  // namespace
}  // namespace ark
