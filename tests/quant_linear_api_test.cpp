// QuantLinear's contract beyond the numbers: results independent of the thread count, concurrent forwards on
// one layer, the 16-bit dtypes, loading from checkpoint tensors, the packed layout's bytes (known answers
// written from the layout rules in packed_weight.h), and clear errors for bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "ark/format.h"
#include "ark/thread_pool.h"
#include "linear/packed_weight.h"
#include "quant_linear_test_util.h"

namespace ark {
namespace {

using ql_test::WeightConfig;

using ql_test::same_bytes;
using ql_test::spec_for;

TEST(QuantLinearApi, ThreadCountDoesNotChangeResults) {
  set_default_num_threads(3);  // more threads than this machine may have: the split must not matter
  std::mt19937_64 rng = ql_test::rng_for(1);
  const WeightConfig c{200, 512, 4, 128, false, true};
  const QuantizedWeight w = ql_test::random_weight(c, rng);
  for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8})
    for (int64_t m : {1, 5, 130}) {
      const std::vector<float> x = ql_test::random_activations(m, c.k, rng);
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        QuantLinearSpec s = spec_for(c, mode);
        s.num_threads = threads;
        QuantLinear layer(s);
        layer.load(w);
        layer.post_init();
        std::vector<float> y = ql_test::poisoned(static_cast<size_t>(m * c.n));
        layer.forward(x.data(), y.data(), m);
        if (first.empty())
          first = y;
        else
          EXPECT_TRUE(same_bytes(first, y))
              << "threads " << threads << " M " << m << " " << layer.describe();
      }
    }
  set_default_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

TEST(QuantLinearApi, ConcurrentForwardsAgree) {
  std::mt19937_64 rng = ql_test::rng_for(2);
  const WeightConfig c{96, 384, 3, 64, false, false};
  QuantLinear layer(spec_for(c, ComputeMode::kAuto));
  layer.load(ql_test::random_weight(c, rng));
  layer.post_init();
  for (int64_t m : {1, 7, 129}) {
    const std::vector<float> x = ql_test::random_activations(m, c.k, rng);
    std::vector<float> expected = ql_test::poisoned(static_cast<size_t>(m * c.n));
    layer.forward(x.data(), expected.data(), m);
    std::vector<std::vector<float>> outs(4, ql_test::poisoned(static_cast<size_t>(m * c.n)));
    std::vector<std::thread> threads;
    for (auto& out : outs)
      threads.emplace_back([&, p = &out] {
        for (int rep = 0; rep < 20; ++rep) layer.forward(x.data(), p->data(), m);
      });
    for (auto& t : threads) t.join();
    for (const auto& out : outs) EXPECT_TRUE(same_bytes(expected, out)) << "M " << m;
  }
}

// bf16 and fp16 in and out: the layer converts x exactly and rounds y once, so y must equal the fp32 path's
// output rounded to the dtype.
TEST(QuantLinearApi, SixteenBitDtypes) {
  std::mt19937_64 rng = ql_test::rng_for(3);
  const WeightConfig c{45, 160, 4, 32, true, false};
  for (const std::string& isa : ql_test::available_isas())
    for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8}) {
      QuantLinear layer(spec_for(c, mode, isa));
      layer.load(ql_test::random_weight(c, rng));
      layer.post_init();
      for (int64_t m : {1, 3, 128}) {
        std::vector<float> x = ql_test::random_activations(m, c.k, rng);
        for (DType dt : {DType::BF16, DType::F16}) {
          std::vector<uint16_t> x16(x.size()), y16(static_cast<size_t>(m * c.n), 0x7e00);
          std::vector<float> xr(x.size());
          for (size_t i = 0; i < x.size(); ++i) {
            x16[i] = dt == DType::BF16 ? float_to_bf16(x[i]) : float_to_fp16(x[i]);
            xr[i] = dt == DType::BF16 ? bf16_to_float(x16[i]) : fp16_to_float(x16[i]);
          }
          std::vector<float> y32 = ql_test::poisoned(static_cast<size_t>(m * c.n));
          layer.forward(xr.data(), y32.data(), m);
          layer.forward(x16.data(), y16.data(), m, dt);
          for (size_t i = 0; i < y16.size(); ++i) {
            const uint16_t want = dt == DType::BF16 ? float_to_bf16(y32[i]) : float_to_fp16(y32[i]);
            ASSERT_EQ(y16[i], want) << isa << " " << compute_mode_name(mode) << " " << dtype_name(dt) << " M "
                                    << m << " i " << i;
          }
        }
      }
    }
}

// Loading the on-disk tensors (GPTQ v2 and AWQ, written by the format encoder) equals loading the canonical
// form.
TEST(QuantLinearApi, LoadCheckpointMatchesCanonical) {
  std::mt19937_64 rng = ql_test::rng_for(4);
  const WeightConfig c{64, 256, 4, 128, false, false};
  QuantizedWeight w = ql_test::random_weight(c, rng);
  for (auto& z : w.zeros) z = std::min(z, 15);  // v2/AWQ store zeros below 2^bits
  const std::vector<float> x = ql_test::random_activations(3, c.k, rng);
  QuantLinear ref(spec_for(c, ComputeMode::kExact));
  ref.load(w);
  ref.post_init();
  std::vector<float> want(3 * c.n), got(3 * c.n);
  ref.forward(x.data(), want.data(), 3);
  for (PackingLayout layout : {PackingLayout::kGptqV2, PackingLayout::kAwq}) {
    const PackedTensors t = encode(w, layout);
    QuantLinear layer(spec_for(c, ComputeMode::kExact));
    layer.load_checkpoint(layout, t.qweight.view(), t.qzeros.view(), t.scales.view());
    layer.post_init();
    std::fill(got.begin(), got.end(), std::nanf(""));
    layer.forward(x.data(), got.data(), 3);
    EXPECT_TRUE(same_bytes(want, got)) << layout_name(layout);
  }
}

// Known answers from the layout rules: a 4-bit and a 3-bit weight with chosen codes, bytes checked at offsets
// computed by hand.
TEST(QuantLinearApi, PackedLayoutKnownAnswers) {
  QuantizedWeight w;
  w.out_features = 18;  // two tiles, the second with 2 rows
  w.in_features = 64;   // two k-blocks
  w.bits = 4;
  w.group_size = 64;
  w.codes.assign(18 * 64, 0);
  w.scales.assign(18, 0.5f);
  w.zeros.assign(18, 8);
  // Row 1, k = 5: block 0, quad 1, byte 1 of row 1's dword -> chunk 1 (quad < 4: low nibble), byte 4*1+1 = 5.
  w.codes[1 * 64 + 5] = 0x9;
  // Row 2, k = 22: block 0, quad 5, byte 2 -> chunk 1 (quad 5 = 1 + 4: high nibble), byte 4*2+2 = 10.
  w.codes[2 * 64 + 22] = 0xc;
  // Row 17 (tile 1, row 1), k = 35: block 1, quad 0, byte 3 -> tile 1 starts at 2 blocks * 256 bytes;
  // block 1 at +256; chunk 0, byte 4*1+3 = 7, low nibble.
  w.codes[17 * 64 + 35] = 0x7;
  w.zeros[17] = 3;
  PackedWeight p = pack_weight(w);
  ASSERT_EQ(p.codes.size(), 2u * 2 * 4 * 64);
  EXPECT_EQ(p.codes.data()[1 * 64 + 5], 0x09);
  EXPECT_EQ(p.codes.data()[1 * 64 + 10], 0xc0);
  EXPECT_EQ(p.codes.data()[512 + 256 + 7], 0x07);
  int nonzero = 0;
  for (size_t i = 0; i < p.codes.size(); ++i) nonzero += p.codes.data()[i] != 0;
  EXPECT_EQ(nonzero, 3);
  // Scales fp16 (0.5 = 0x3800) and zeros u8 at [tile][group][row].
  EXPECT_EQ(p.scales.data()[2 * (16 + 1)], 0x00);
  EXPECT_EQ(p.scales.data()[2 * (16 + 1) + 1], 0x38);
  EXPECT_EQ(p.zeros.data()[16 + 1], 3);
  EXPECT_EQ(p.zeros.data()[16 + 2], 0);  // padding row

  // 3 bits: code 6 (0b110) at row 0, k = 13: quad 3 -> low bits in chunk 1 (3 % 2), pair 1 (3 / 2) ->
  // bits 2..3 of byte 1; bit 2 in chunk 2, bit 3 (the quad) of byte 1.
  QuantizedWeight w3 = w;
  w3.bits = 3;
  w3.codes.assign(18 * 64, 0);
  w3.zeros.assign(18, 4);
  w3.codes[13] = 6;
  PackedWeight p3 = pack_weight(w3);
  EXPECT_EQ(p3.codes.data()[64 + 1], 0b10 << 2);
  EXPECT_EQ(p3.codes.data()[128 + 1], 1 << 3);
  EXPECT_EQ(packed_code(p3, 0, 13), 6);
}

// Act-order puts channels in group order at pack time; g_idx of the channels in packed order is sorted.
TEST(QuantLinearApi, ActOrderPacksGroupsContiguously) {
  std::mt19937_64 rng = ql_test::rng_for(5);
  const WeightConfig c{16, 96, 4, 32, false, true};
  const QuantizedWeight w = ql_test::random_weight(c, rng);
  const PackedWeight p = pack_weight(w);
  EXPECT_FALSE(p.identity_k);
  for (int64_t kp = 0; kp < p.k_padded(); ++kp) {
    const int32_t k = p.k_source[kp];
    ASSERT_GE(k, 0);
    EXPECT_EQ(w.g_idx[k], kp / 32);
    for (int64_t n = 0; n < 16; ++n) ASSERT_EQ(packed_code(p, n, kp), w.codes[n * 96 + k]);
  }
}

TEST(QuantLinearApi, BadArgumentsThrowClearErrors) {
  auto expect_error = [](auto&& fn, const char* needle) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const WeightConfig c{32, 64, 4, 32, true, false};
  auto spec = [&] { return spec_for(c, ComputeMode::kAuto); };
  expect_error(
      [&] {
        QuantLinearSpec s = spec();
        s.bits = 5;
        QuantLinear l(s);
      },
      "bits 5");
  expect_error(
      [&] {
        QuantLinearSpec s = spec();
        s.group_size = 0;
        QuantLinear l(s);
      },
      "group_size");
  expect_error(
      [&] {
        QuantLinearSpec s = spec();
        s.group_size = 65;
        QuantLinear l(s);
      },
      "group_size");
  expect_error(
      [&] {
        QuantLinearSpec s = spec();
        s.in_features = 0;
        QuantLinear l(s);
      },
      "in_features");
  expect_error(
      [&] {
        QuantLinearSpec s = spec();
        s.max_isa = "sse9";
        QuantLinear l(s);
      },
      "sse9");
  expect_error(
      [&] {
        QuantLinearSpec s = spec();
        s.kernel_switch_threshold = 0;
        QuantLinear l(s);
      },
      "kernel_switch_threshold");
  expect_error(
      [&] {
        QuantLinearSpec s = spec();
        s.num_threads = -1;
        QuantLinear l(s);
      },
      "num_threads");
  expect_error([] { (void)parse_compute_mode("fast"); }, "fast");

  std::mt19937_64 rng = ql_test::rng_for(6);
  const QuantizedWeight w = ql_test::random_weight(c, rng);
  QuantLinear layer(spec());
  float x[64] = {1.0f}, y[32];
  expect_error([&] { layer.forward(x, y, 1); }, "post_init");
  expect_error([&] { layer.post_init(); }, "no weight");
  QuantizedWeight wrong = w;
  wrong.out_features = 31;
  expect_error([&] { layer.load(wrong); }, "32x64");
  QuantizedWeight wrong_bits = ql_test::random_weight({32, 64, 3, 32, true, false}, rng);
  expect_error([&] { layer.load(wrong_bits); }, "3 bits");
  QuantizedWeight act = ql_test::random_weight({32, 64, 4, 32, true, true}, rng);
  expect_error([&] { layer.load(act); }, "act_order");
  QuantizedWeight bad_code = w;
  bad_code.codes[3] = 16;
  expect_error([&] { layer.load(bad_code); }, "code 16");
  expect_error([&] { layer.load_bias(x, DType::F32, 32); }, "bias = false");

  QuantLinearSpec sb = spec();
  sb.bias = true;
  QuantLinear with_bias(sb);
  with_bias.load(w);
  expect_error([&] { with_bias.post_init(); }, "no bias");
  expect_error([&] { with_bias.load_bias(x, DType::F32, 31); }, "out_features=32");
  expect_error([&] { with_bias.load_bias(x, DType::I32, 32); }, "I32");

  layer.load(w);
  layer.post_init();
  expect_error([&] { layer.forward(nullptr, y, 1); }, "x is null");
  expect_error([&] { layer.forward(x, nullptr, 1); }, "y is null");
  expect_error([&] { layer.forward(x, y, -1); }, "M = -1");
  expect_error([&] { layer.forward(x, y, 1, DType::I8); }, "I8");
  layer.forward(nullptr, nullptr, 0);  // M = 0 does nothing
}

TEST(QuantLinearApi, DescribeSaysWhatRuns) {
  std::mt19937_64 rng = ql_test::rng_for(7);
  const WeightConfig c{32, 64, 4, 32, true, false};
  for (const std::string& isa : ql_test::available_isas()) {
    QuantLinear layer(spec_for(c, ComputeMode::kAuto, isa));
    layer.load(ql_test::random_weight(c, rng));
    layer.post_init();
    const std::string d = layer.describe();
    EXPECT_NE(d.find("isa " + isa), std::string::npos) << d;
    EXPECT_NE(d.find("mode "), std::string::npos) << d;
    EXPECT_NE(d.find(layer.kernel_name(1)), std::string::npos) << d;
    if (isa == "ref") {
      EXPECT_EQ(layer.kernel_name(1), "ref");
    }
  }
}

// auto picks int8 at every level above ref (integer dot products are the fastest path from AVX2 up) and exact
// at ref, where both modes run the same scalar kernel.
TEST(QuantLinearApi, AutoModeIsInt8AboveTheReference) {
  std::mt19937_64 rng = ql_test::rng_for(9);
  const WeightConfig c{32, 64, 4, 32, true, false};
  for (const std::string& isa : ql_test::available_isas()) {
    QuantLinear layer(spec_for(c, ComputeMode::kAuto, isa));
    layer.load(ql_test::random_weight(c, rng));
    layer.post_init();
    const std::string want = isa == "ref" ? "mode exact" : "mode int8";
    EXPECT_NE(layer.describe().find(want), std::string::npos) << isa << ": " << layer.describe();
  }
}

// auto must never trade a vector kernel for the scalar reference: above ISA level ref, every bit width gets a
// non-reference kernel in both regimes.
TEST(QuantLinearApi, AutoModeNeverFallsBackToTheReference) {
  std::mt19937_64 rng = ql_test::rng_for(8);
  for (const std::string& isa : ql_test::available_isas()) {
    if (isa == "ref") continue;
    for (int bits : {2, 3, 4, 8}) {
      const WeightConfig c{48, 256, bits, 64, false, false};
      QuantLinear layer(spec_for(c, ComputeMode::kAuto, isa));
      layer.load(ql_test::random_weight(c, rng));
      layer.post_init();
      EXPECT_NE(layer.kernel_name(1), "ref") << layer.describe();
      EXPECT_NE(layer.kernel_name(128), "ref") << layer.describe();
    }
  }
}

TEST(ThreadPool, RunsEveryTaskOnceAndRejectsBadSizes) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(1000, [&](int64_t i) { hits[i].fetch_add(1); });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  EXPECT_THROW(ThreadPool bad(0), Error);
  EXPECT_THROW(set_default_num_threads(0), Error);
}

}  // namespace
}  // namespace ark
