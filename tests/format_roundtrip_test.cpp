// Round trips between the canonical form and every layout, on random codes, zeros, scales and g_idx, plus
// dequantization against an fp64 reference. Random data is seeded per run (see format_test_util.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <sstream>

#include "ark/format.h"
#include "format_test_util.h"

namespace ark {
namespace {

using format_test::run_seed;
using format_test::words_of;

float random_scale(std::mt19937_64& rng, DType dtype) {
  std::normal_distribution<float> dist(0.0f, 0.02f);
  float v = dist(rng);
  if (v == 0.0f) v = 0.01f;
  if (dtype == DType::F16) return fp16_to_float(float_to_fp16(v));
  if (dtype == DType::BF16) return bf16_to_float(float_to_bf16(v));
  return v;
}

enum class GIdx { kNone, kTrivial, kActOrder };

QuantizedWeight random_weight(std::mt19937_64& rng, int bits, int64_t n, int64_t k, int64_t group, bool sym,
                              PackingLayout layout, GIdx gidx, DType scale_dtype) {
  QuantizedWeight w;
  w.out_features = n;
  w.in_features = k;
  w.bits = bits;
  w.group_size = group == -1 ? k : group;
  w.sym = sym;
  const int64_t g = w.num_groups();
  const int top = 1 << bits;
  std::uniform_int_distribution<int> code(0, top - 1);
  w.codes.resize(static_cast<size_t>(n * k));
  for (auto& c : w.codes) c = static_cast<uint8_t>(code(rng));
  // v1 cannot store a zero of 0 without borrowing (its own test), but can store 2^bits.
  const bool v1 = layout == PackingLayout::kGptqV1;
  std::uniform_int_distribution<int> zero(v1 ? 1 : 0, v1 ? top : top - 1);
  w.zeros.resize(static_cast<size_t>(n * g));
  for (auto& z : w.zeros) z = sym ? top / 2 : zero(rng);
  w.scales.resize(static_cast<size_t>(n * g));
  for (auto& s : w.scales) s = random_scale(rng, scale_dtype);
  if (gidx != GIdx::kNone) {
    std::vector<int32_t> perm(static_cast<size_t>(k));
    std::iota(perm.begin(), perm.end(), 0);
    if (gidx == GIdx::kActOrder) std::shuffle(perm.begin(), perm.end(), rng);
    w.g_idx.resize(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) w.g_idx[perm[i]] = static_cast<int32_t>(i / w.group_size);
  }
  return w;
}

void expect_same(const QuantizedWeight& a, const QuantizedWeight& b) {
  EXPECT_EQ(a.out_features, b.out_features);
  EXPECT_EQ(a.in_features, b.in_features);
  EXPECT_EQ(a.group_size, b.group_size);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.zeros, b.zeros);
  EXPECT_EQ(a.g_idx, b.g_idx);
  ASSERT_EQ(a.scales.size(), b.scales.size());
  for (size_t i = 0; i < a.scales.size(); ++i)
    ASSERT_EQ(float_bits(a.scales[i]), float_bits(b.scales[i])) << "scale " << i;
}

QuantizedWeight decode_packed(const QuantScheme& s, int64_t k, int64_t n, const PackedTensors& p) {
  const TensorView gv = p.g_idx ? p.g_idx->view() : TensorView{};
  return decode(s, k, n, p.qweight.view(), p.qzeros.view(), p.scales.view(), p.g_idx ? &gv : nullptr);
}

// Every layout x bits x sym/asym x group size (with a non-power-of-two divisor) x g_idx (none, trivial,
// act-order), cycling the scale dtype.
TEST(FormatRoundTrip, EveryLayoutBitsGroupAndGIdx) {
  std::mt19937_64 rng(run_seed());
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  const int64_t n = 64, k = 384;
  const DType scale_dtypes[] = {DType::F16, DType::BF16, DType::F32};
  int cases = 0;
  for (PackingLayout layout : {PackingLayout::kGptqV1, PackingLayout::kGptqV2, PackingLayout::kAwq}) {
    for (int bits : {2, 3, 4, 8}) {
      if (layout == PackingLayout::kAwq && bits != 4) continue;
      for (bool sym : {true, false}) {
        for (int64_t group : {32, 64, 128, -1, 96, 48}) {
          for (GIdx gidx : {GIdx::kNone, GIdx::kTrivial, GIdx::kActOrder}) {
            if (layout == PackingLayout::kAwq && gidx != GIdx::kNone) continue;  // AWQ has no g_idx
            const DType sd = scale_dtypes[cases++ % 3];
            std::ostringstream what;
            what << layout_name(layout) << " bits=" << bits << " sym=" << sym << " group=" << group
                 << " g_idx=" << static_cast<int>(gidx) << " scales=" << dtype_name(sd);
            SCOPED_TRACE(what.str());
            const QuantizedWeight w = random_weight(rng, bits, n, k, group, sym, layout, gidx, sd);
            const PackedTensors p = encode(w, layout, sd);
            const QuantScheme s{bits, group, sym, layout};
            const PackedShapes shapes = packed_shapes(s, k, n);
            EXPECT_EQ(p.qweight.shape, shapes.qweight);
            EXPECT_EQ(p.qzeros.shape, shapes.qzeros);
            EXPECT_EQ(p.scales.shape, shapes.scales);
            EXPECT_EQ(p.scales.dtype, sd);
            EXPECT_EQ(p.g_idx.has_value(), gidx != GIdx::kNone);
            expect_same(decode_packed(s, k, n, p), w);
          }
        }
      }
    }
  }
  EXPECT_GT(cases, 100);
}

// AWQ packs along N, so K needs no alignment: K = 200 with groups of 40.
TEST(FormatRoundTrip, AwqOddInFeatures) {
  std::mt19937_64 rng(run_seed() + 1);
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  for (int64_t group : {40, -1, 64}) {
    const QuantizedWeight w =
        random_weight(rng, 4, 24, 200, group, false, PackingLayout::kAwq, GIdx::kNone, DType::F16);
    const QuantScheme s{4, group, false, PackingLayout::kAwq};
    expect_same(decode_packed(s, 200, 24, encode(w, PackingLayout::kAwq)), w);
  }
}

// The other direction: any words a file may hold (including v1 words with borrowed bits) decode and re-encode
// to the same words, so ark can rewrite a checkpoint without changing a bit.
TEST(FormatRoundTrip, RandomWordsReencodeExactly) {
  std::mt19937_64 rng(run_seed() + 2);
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  const int64_t n = 64, k = 256, group = 64, g = 4;
  for (PackingLayout layout : {PackingLayout::kGptqV1, PackingLayout::kGptqV2, PackingLayout::kAwq}) {
    for (int bits : {2, 3, 4, 8}) {
      if (layout == PackingLayout::kAwq && bits != 4) continue;
      SCOPED_TRACE(std::string(layout_name(layout)) + " bits=" + std::to_string(bits));
      const QuantScheme s{bits, group, false, layout};
      const PackedShapes shapes = packed_shapes(s, k, n);
      std::vector<uint32_t> qw(static_cast<size_t>(shape_numel(shapes.qweight)));
      std::vector<uint32_t> qz(static_cast<size_t>(shape_numel(shapes.qzeros)));
      for (auto& x : qw) x = static_cast<uint32_t>(rng());
      for (auto& x : qz) x = static_cast<uint32_t>(rng());
      std::vector<uint16_t> sc(static_cast<size_t>(g * n));
      for (auto& x : sc) {
        do x = static_cast<uint16_t>(rng());
        while ((x & 0x7C00) == 0x7C00);  // finite fp16 (NaN payloads need not survive)
      }
      const QuantizedWeight w =
          decode(s, k, n, format_test::i32_view(qw, shapes.qweight), format_test::i32_view(qz, shapes.qzeros),
                 format_test::f16_view(sc, {g, n}));
      const PackedTensors p = encode(w, layout, DType::F16);
      EXPECT_EQ(words_of(p.qweight), qw);
      EXPECT_EQ(words_of(p.qzeros), qz);
      const auto* back = p.scales.as<uint16_t>();
      EXPECT_TRUE(std::equal(sc.begin(), sc.end(), back));
    }
  }
}

// dequantize() against scale * (q - zero) in fp64. With F16/BF16 scales the product is exact in fp32 (at most
// 11 + 10 significant bits); with F32 scales fp32 multiplication is correctly rounded, as is rounding the
// exact fp64 product, so equality is exact in every case.
TEST(FormatDequantize, MatchesFp64Reference) {
  std::mt19937_64 rng(run_seed() + 3);
  SCOPED_TRACE("seed " + std::to_string(run_seed()));
  for (DType sd : {DType::F16, DType::BF16, DType::F32}) {
    for (int bits : {2, 3, 4, 8}) {
      const QuantizedWeight w =
          random_weight(rng, bits, 32, 192, 48, false, PackingLayout::kGptqV2, GIdx::kActOrder, sd);
      std::vector<float> out = dequantize(w);
      ASSERT_EQ(out.size(), 32u * 192u);
      const int64_t g = w.num_groups();
      for (int64_t row = 0; row < 32; ++row)
        for (int64_t col = 0; col < 192; ++col) {
          const int64_t ng = row * g + w.g_idx[col];
          const double ref =
              static_cast<double>(w.scales[ng]) *
              (static_cast<double>(w.codes[row * 192 + col]) - static_cast<double>(w.zeros[ng]));
          ASSERT_EQ(out[row * 192 + col], static_cast<float>(ref)) << "row " << row << " col " << col;
          ASSERT_EQ(out[row * 192 + col], w.dequant(row, col));
        }
    }
  }
}

}  // namespace
}  // namespace ark
