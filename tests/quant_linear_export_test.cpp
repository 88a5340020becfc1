// unpack_weight inverts pack_weight: every code, scale, zero point and act-order g_idx comes back exactly,
// over shapes that leave partial N-tiles, partial k-blocks and partial groups, for every bit width.
#include <gtest/gtest.h>

#include "linear/packed_weight.h"
#include "linear/quant_linear_export.h"
#include "quant_linear_test_util.h"

namespace ark {
namespace {

using ql_test::rng_for;
using ql_test::WeightConfig;

void expect_same(const QuantizedWeight& a, const QuantizedWeight& b) {
  EXPECT_EQ(a.out_features, b.out_features);
  EXPECT_EQ(a.in_features, b.in_features);
  EXPECT_EQ(a.bits, b.bits);
  EXPECT_EQ(a.group_size, b.group_size);
  EXPECT_EQ(a.sym, b.sym);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.zeros, b.zeros);
  ASSERT_EQ(a.scales.size(), b.scales.size());
  for (size_t i = 0; i < a.scales.size(); ++i)
    ASSERT_EQ(float_bits(a.scales[i]), float_bits(b.scales[i])) << "scale " << i;
  EXPECT_EQ(a.has_act_order(), b.has_act_order());
  if (a.has_act_order()) {
    EXPECT_EQ(a.g_idx, b.g_idx);
  }
}

TEST(QuantLinearExport, UnpackInvertsPack) {
  uint64_t id = 0;
  for (int bits : {2, 3, 4, 8}) {
    for (int64_t group : {32, 40, 128, -1}) {
      for (bool act_order : {false, true}) {
        for (bool f32_scales : {false, true}) {
          WeightConfig c;
          c.n = 37;
          c.k = 200;
          c.bits = bits;
          c.group_size = group;
          c.sym = (id % 3) == 0;
          c.act_order = act_order;
          auto rng = rng_for(0xe7000 + ++id);
          const QuantizedWeight w = ql_test::random_weight(c, rng, f32_scales);
          SCOPED_TRACE(testing::Message() << "bits " << bits << " group " << group << " act_order "
                                          << act_order << " f32 scales " << f32_scales);
          const PackedWeight p = pack_weight(w);
          expect_same(w, unpack_weight(p, w.group_size, w.sym));
        }
      }
    }
  }
}

TEST(QuantLinearExport, QuantLinearUnpackNeedsPostInit) {
  QuantLinearSpec spec;
  spec.in_features = 64;
  spec.out_features = 16;
  spec.group_size = 32;
  QuantLinear layer(spec);
  EXPECT_THROW(layer.unpack(), Error);
}

TEST(QuantLinearExport, QuantLinearUnpackRoundTrips) {
  WeightConfig c;
  c.n = 48;
  c.k = 96;
  c.bits = 3;
  c.group_size = 32;
  c.act_order = true;
  auto rng = rng_for(0xe7fff);
  const QuantizedWeight w = ql_test::random_weight(c, rng);
  QuantLinearSpec spec;
  spec.in_features = c.k;
  spec.out_features = c.n;
  spec.bits = c.bits;
  spec.group_size = c.group_size;
  spec.sym = c.sym;
  spec.act_order = true;
  QuantLinear layer(spec);
  layer.load(w);
  layer.post_init();
  expect_same(w, layer.unpack());
}

TEST(QuantLinearExport, RejectsAMismatchedGroupSize) {
  WeightConfig c;
  c.k = 96;
  c.group_size = 32;
  auto rng = rng_for(0xe7ffe);
  const PackedWeight p = pack_weight(ql_test::random_weight(c, rng));
  EXPECT_THROW(unpack_weight(p, 64, true), Error);
  EXPECT_THROW(unpack_weight(p, 0, true), Error);
}

}  // namespace
}  // namespace ark
