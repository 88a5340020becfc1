// The round-to-nearest quantizer: hand-worked groups for each rule (sign of symmetric scales, ties to even,
// the all-zero group, act-order grouping), then properties on random weights checked in fp64.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "ark/format.h"
#include "format_test_util.h"

namespace ark {
namespace {

using format_test::run_seed;

QuantScheme rtn_scheme(int bits, int64_t group, bool sym) {
  return QuantScheme{bits, group, sym, sym ? PackingLayout::kGptqV1 : PackingLayout::kGptqV2};
}

// fp16(1e-5) = 168 * 2^-24: the floor AutoRound puts under fp16 scales.
const float kF16Thresh = std::ldexp(168.0f, -24);

TEST(FormatRtn, SymNegativeSideLarger) {
  // lo = -1 beats hi = 0.875: scale = 1 / 8 = 0.125; q = round(w / 0.125) + 8.
  const std::vector<float> w = {-1.0f, 0.5f, 0.25f, -0.25f, 0.75f, 0.125f, -0.5f, 0.875f};
  QuantizedWeight q = quantize_rtn(w.data(), 1, 8, rtn_scheme(4, -1, true));
  EXPECT_EQ(q.scales[0], 0.125f);
  EXPECT_EQ(q.zeros[0], 8);
  EXPECT_EQ(q.codes, (std::vector<uint8_t>{0, 12, 10, 6, 14, 9, 4, 15}));
  EXPECT_TRUE(q.g_idx.empty());
}

TEST(FormatRtn, SymPositiveSideLargerGivesNegativeScale) {
  // hi = 1 beats -lo = 0.875, so the scale is -1 / 8 and 1.0 lands on code 0.
  const std::vector<float> w = {1.0f, -0.5f, 0.25f, 0.0f, -0.875f, 0.5f, 0.125f, -0.25f};
  QuantizedWeight q = quantize_rtn(w.data(), 1, 8, rtn_scheme(4, -1, true));
  EXPECT_EQ(q.scales[0], -0.125f);
  EXPECT_EQ(q.codes, (std::vector<uint8_t>{0, 12, 6, 8, 15, 4, 7, 10}));
  // A tie also takes the negative scale; -1 / -0.5 = 2 is clipped to 1 (code 3) in 2 bits.
  const std::vector<float> t = {1.0f, -1.0f, 0.5f, -0.5f};
  q = quantize_rtn(t.data(), 1, 4, rtn_scheme(2, -1, true));
  EXPECT_EQ(q.scales[0], -0.5f);
  EXPECT_EQ(q.zeros[0], 2);
  EXPECT_EQ(q.codes, (std::vector<uint8_t>{0, 3, 1, 3}));
}

TEST(FormatRtn, AsymScaleRoundedToFp16First) {
  // (0.9 + 0.3) / 3 = 0.4 -> fp16 0x3666 = 0.39990234375; zero = round(0.3 / 0.3999) = 1;
  // codes round(w / s) + 1 = round(0.750) + 1, round(-0.750) + 1, round(2.2505) + 1, 0 + 1.
  const std::vector<float> w = {0.3f, -0.3f, 0.9f, 0.0f};
  QuantizedWeight q = quantize_rtn(w.data(), 1, 4, rtn_scheme(2, -1, false));
  EXPECT_EQ(q.scales[0], 0.39990234375f);
  EXPECT_EQ(q.zeros[0], 1);
  EXPECT_EQ(q.codes, (std::vector<uint8_t>{2, 0, 3, 1}));
}

TEST(FormatRtn, TiesRoundToEven) {
  // lo = 0, hi = 15: scale 1, zero 0; 2.5 -> 2, 3.5 -> 4, 0.5 -> 0, 1.5 -> 2, 14.5 -> 14.
  const std::vector<float> w = {0.0f, 15.0f, 2.5f, 3.5f, 0.5f, 1.5f, 14.5f, 7.0f};
  QuantizedWeight q = quantize_rtn(w.data(), 1, 8, rtn_scheme(4, -1, false));
  EXPECT_EQ(q.scales[0], 1.0f);
  EXPECT_EQ(q.zeros[0], 0);
  EXPECT_EQ(q.codes, (std::vector<uint8_t>{0, 15, 2, 4, 0, 2, 14, 7}));
}

TEST(FormatRtn, AllZeroGroupGetsThresholdScale) {
  // Group 0 is all zero; group 1 = 1, 2, 3, 4.
  const std::vector<float> w = {0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 2.0f, 3.0f, 4.0f};
  QuantizedWeight s = quantize_rtn(w.data(), 1, 8, rtn_scheme(4, 4, true));
  EXPECT_EQ(s.scales[0], kF16Thresh);
  EXPECT_EQ(s.zeros[0], 8);
  EXPECT_EQ(s.scales[1], -0.5f);  // hi = 4 wins: -4 / 8
  EXPECT_EQ(s.codes, (std::vector<uint8_t>{8, 8, 8, 8, 6, 4, 2, 0}));
  QuantizedWeight a = quantize_rtn(w.data(), 1, 8, rtn_scheme(4, 4, false));
  EXPECT_EQ(a.scales[0], kF16Thresh);
  EXPECT_EQ(a.zeros[0], 0);  // the zero that GPTQ-v1 cannot store without borrowing
  // 4 / 15 -> fp16 0.2666015625; codes round(1 / s) = round(3.75) = 4, round(7.50) = 8, round(11.25) =
  // 11, 15.
  EXPECT_EQ(a.scales[1], 0.2666015625f);
  EXPECT_EQ(a.codes, (std::vector<uint8_t>{0, 0, 0, 0, 4, 8, 11, 15}));
  // With fp32 scales the floor is 1e-8.
  QuantizedWeight f = quantize_rtn(w.data(), 1, 8, rtn_scheme(4, 4, true), nullptr, DType::F32);
  EXPECT_EQ(f.scales[0], 1e-8f);
}

TEST(FormatRtn, ActOrderGroupsFollowThePermutation) {
  // perm 7,0,5,2 | 1,6,3,4: group 0 = channels {7, 0, 5, 2}, group 1 = {1, 6, 3, 4}.
  const std::vector<int32_t> perm = {7, 0, 5, 2, 1, 6, 3, 4};
  const std::vector<float> w = {0.5f, -4.0f, 1.0f, 2.0f, 3.0f, -0.25f, 1.0f, -1.0f};
  QuantizedWeight q = quantize_rtn(w.data(), 1, 8, rtn_scheme(4, 4, true), perm.data());
  EXPECT_EQ(q.g_idx, (std::vector<int32_t>{0, 1, 0, 1, 1, 0, 1, 0}));
  // Group 0: extremes 1.0 and -1.0 tie -> scale -0.125. Group 1: -4 beats 3 -> scale 0.5.
  EXPECT_EQ(q.scales, (std::vector<float>{-0.125f, 0.5f}));
  EXPECT_EQ(q.codes, (std::vector<uint8_t>{4, 0, 0, 12, 14, 10, 10, 15}));
  EXPECT_TRUE(q.has_act_order());
}

// Properties on random weights, checked in fp64: every code is the nearest one the (scale, zero) allows,
// scales are fp16 values within fp16 rounding of the formula, and the result survives encode/decode.
TEST(FormatRtn, RandomWeightsNearestCodeAndRoundTrip) {
  std::mt19937_64 rng(run_seed() + 10);
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  const int64_t n = 32, k = 384;
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (auto& x : w) x = dist(rng);
  std::vector<int32_t> perm(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  for (int bits : {2, 3, 4, 8}) {
    for (bool sym : {true, false}) {
      for (int64_t group : {32, 128, -1, 96}) {
        for (bool act : {false, true}) {
          SCOPED_TRACE("bits=" + std::to_string(bits) + " sym=" + std::to_string(sym) +
                       " group=" + std::to_string(group) + " act=" + std::to_string(act));
          const QuantScheme s = rtn_scheme(bits, group, sym);
          const QuantizedWeight q = quantize_rtn(w.data(), n, k, s, act ? perm.data() : nullptr);
          ASSERT_NO_THROW(q.validate());
          const int max_code = (1 << bits) - 1;
          for (size_t i = 0; i < q.scales.size(); ++i) {
            ASSERT_EQ(fp16_to_float(float_to_fp16(q.scales[i])), q.scales[i]) << "scale not an fp16 value";
            if (sym) {
              ASSERT_EQ(q.zeros[i], 1 << (bits - 1));
            }
          }
          for (int64_t row = 0; row < n; ++row)
            for (int64_t col = 0; col < k; ++col) {
              const int64_t ng = row * q.num_groups() + q.group_of(col);
              const double sc = q.scales[ng], x = w[row * k + col];
              const double got = std::fabs(sc * (q.codes[row * k + col] - q.zeros[ng]) - x);
              double best = 1e300;
              for (int c = 0; c <= max_code; ++c)
                best = std::min(best, std::fabs(sc * (c - q.zeros[ng]) - x));
              ASSERT_LE(got, best + 1e-6 * std::fabs(sc)) << "row " << row << " col " << col;
            }
          const PackedTensors p = encode(q, s.layout);
          const QuantizedWeight back = decode(s, k, n, p.qweight.view(), p.qzeros.view(), p.scales.view());
          EXPECT_EQ(back.codes, q.codes);
          EXPECT_EQ(back.zeros, q.zeros);
          EXPECT_EQ(back.scales, q.scales);
        }
      }
    }
  }
}

TEST(FormatRtn, SixteenBitInputsMatchTheirFp32Values) {
  std::mt19937_64 rng(run_seed() + 11);
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  std::normal_distribution<float> dist(0.0f, 0.1f);
  std::vector<uint16_t> bf(64 * 128), hf(64 * 128);
  std::vector<float> from_bf(bf.size()), from_hf(hf.size());
  for (size_t i = 0; i < bf.size(); ++i) {
    const float x = dist(rng);
    bf[i] = float_to_bf16(x);
    hf[i] = float_to_fp16(x);
    from_bf[i] = bf16_to_float(bf[i]);
    from_hf[i] = fp16_to_float(hf[i]);
  }
  const QuantScheme s = rtn_scheme(4, 64, false);
  const TensorView vb{DType::BF16, {64, 128}, reinterpret_cast<const std::byte*>(bf.data())};
  const TensorView vh = format_test::f16_view(hf, {64, 128});
  const QuantizedWeight a = quantize_rtn(vb, s), b = quantize_rtn(from_bf.data(), 64, 128, s);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scales, b.scales);
  const QuantizedWeight c = quantize_rtn(vh, s), d = quantize_rtn(from_hf.data(), 64, 128, s);
  EXPECT_EQ(c.codes, d.codes);
  EXPECT_EQ(c.zeros, d.zeros);
}

}  // namespace
}  // namespace ark
