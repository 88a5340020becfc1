// Bad input to the format API: every case must throw ark::Error whose message names the tensor or argument
// and what was expected, never crash.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "ark/format.h"
#include "format_test_util.h"

namespace ark {
namespace {

using format_test::f16_view;
using format_test::f32_view;
using format_test::i32_view;

// Runs `fn`, which must throw ark::Error mentioning every one of `parts`.
void expect_error(const std::function<void()>& fn, std::initializer_list<const char*> parts) {
  try {
    fn();
    ADD_FAILURE() << "no ark::Error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

// A valid 4-bit GPTQ layer, K=64, N=16, group 32, whose tensors the cases below spoil one at a time.
struct Layer {
  QuantScheme scheme{4, 32, false, PackingLayout::kGptqV2};
  std::vector<uint32_t> qw = std::vector<uint32_t>(8 * 16, 0x12345678);
  std::vector<uint32_t> qz = std::vector<uint32_t>(2 * 2, 0x87654321);
  std::vector<uint16_t> sc = std::vector<uint16_t>(2 * 16, 0x3555);
  std::vector<uint32_t> gi = std::vector<uint32_t>(64, 1);
};

TEST(FormatErrors, DecodeNamesTheTensorShapeAndDtype) {
  Layer l;
  ASSERT_NO_THROW(
      decode(l.scheme, 64, 16, i32_view(l.qw, {8, 16}), i32_view(l.qz, {2, 2}), f16_view(l.sc, {2, 16})));
  expect_error(
      [&] {
        decode(l.scheme, 64, 16, i32_view(l.qw, {16, 8}), i32_view(l.qz, {2, 2}), f16_view(l.sc, {2, 16}));
      },
      {"qweight", "[16, 8]", "expected [8, 16]"});
  expect_error(
      [&] {
        decode(l.scheme, 64, 16, i32_view(l.qw, {8, 16}), i32_view(l.qz, {2, 1}), f16_view(l.sc, {2, 16}));
      },
      {"qzeros", "[2, 1]", "[2, 2]"});
  expect_error(
      [&] {
        decode(l.scheme, 64, 16, i32_view(l.qw, {8, 16}), i32_view(l.qz, {2, 2}), f16_view(l.sc, {16, 2}));
      },
      {"scales", "[16, 2]", "[2, 16]"});
  std::vector<float> fw(8 * 16, 1.0f);
  expect_error(
      [&] {
        decode(l.scheme, 64, 16, f32_view(fw, {8, 16}), i32_view(l.qz, {2, 2}), f16_view(l.sc, {2, 16}));
      },
      {"qweight", "dtype F32", "I32"});
  expect_error(
      [&] {
        decode(l.scheme, 64, 16, i32_view(l.qw, {8, 16}), i32_view(l.qz, {2, 2}), i32_view(l.qz, {2, 2}));
      },
      {"scales", "dtype I32", "F16, BF16 or F32"});
  // g_idx: wrong length, then a value outside [0, G).
  const TensorView short_g = i32_view(l.gi, {63});
  expect_error(
      [&] {
        decode(l.scheme, 64, 16, i32_view(l.qw, {8, 16}), i32_view(l.qz, {2, 2}), f16_view(l.sc, {2, 16}),
               &short_g);
      },
      {"g_idx", "[63]", "[64]"});
  l.gi[5] = 2;
  const TensorView bad_g = i32_view(l.gi, {64});
  expect_error(
      [&] {
        decode(l.scheme, 64, 16, i32_view(l.qw, {8, 16}), i32_view(l.qz, {2, 2}), f16_view(l.sc, {2, 16}),
               &bad_g);
      },
      {"g_idx", "value 2", "index 5", "[0, 2)"});
  // AWQ has no g_idx.
  const QuantScheme awq{4, 32, false, PackingLayout::kAwq};
  std::vector<uint32_t> aw(64 * 2, 1), az(2 * 2, 1);
  const std::vector<uint32_t> zeros_g(64, 0);
  const TensorView good_g = i32_view(zeros_g, {64});
  expect_error(
      [&] {
        decode(awq, 64, 16, i32_view(aw, {64, 2}), i32_view(az, {2, 2}), f16_view(l.sc, {2, 16}), &good_g);
      },
      {"awq", "g_idx"});
}

TEST(FormatErrors, SchemeAndSizeRules) {
  expect_error(
      [] {
        packed_shapes({5, 32, true, PackingLayout::kGptqV1}, 64, 64);
      },
      {"bits 5", "2, 3, 4 or 8"});
  expect_error([] { packed_shapes({4, 0, true, PackingLayout::kGptqV1}, 64, 64); }, {"group_size 0"});
  expect_error([] { packed_shapes({4, 128, true, PackingLayout::kGptqV1}, 64, 64); }, {"group_size 128"});
  expect_error([] { packed_shapes({2, 32, true, PackingLayout::kAwq}, 64, 64); }, {"awq", "4-bit only"});
  expect_error(
      [] {
        packed_shapes({4, 32, true, PackingLayout::kAwq}, 64, 60);
      },
      {"out_features 60", "multiple of 8"});
  expect_error(
      [] {
        packed_shapes({3, 32, true, PackingLayout::kGptqV2}, 48, 64);
      },
      {"in_features 48", "multiple of 32"});
  expect_error(
      [] {
        packed_shapes({3, 32, true, PackingLayout::kGptqV1}, 64, 40);
      },
      {"out_features 40", "multiple of 32"});
  expect_error(
      [] {
        packed_shapes({4, 32, true, PackingLayout::kGptqV1}, 36, 64);
      },
      {"in_features 36", "multiple of 8"});
  expect_error(
      [] {
        packed_shapes({8, -1, true, PackingLayout::kGptqV1}, 64, 6);
      },
      {"out_features 6", "multiple of 4"});
  expect_error([] { packed_shapes({4, -1, true, PackingLayout::kGptqV1}, 0, 8); }, {"must be positive"});
  expect_error(
      [] {
        packed_shapes({4, -1, true, static_cast<PackingLayout>(9)}, 8, 8);
      },
      {"packing layout 9"});
  EXPECT_NO_THROW(packed_shapes({4, 40, false, PackingLayout::kAwq}, 200, 24));  // AWQ takes any K
}

TEST(FormatErrors, EncodeRejectsWhatTheLayoutCannotHold) {
  const std::vector<float> w = [] {
    std::vector<float> v(32 * 64);
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37f * static_cast<float>(i));
    return v;
  }();
  QuantizedWeight q = quantize_rtn(w.data(), 32, 64, {4, 32, false, PackingLayout::kGptqV2});
  q.zeros[3] = 16;  // fits v1 (stored 15) but not v2 or AWQ
  EXPECT_NO_THROW(encode(q, PackingLayout::kGptqV1));
  expect_error([&] { encode(q, PackingLayout::kGptqV2); }, {"gptq-v2", "zero point 16", "output 1 group 1"});
  expect_error([&] { encode(q, PackingLayout::kAwq); }, {"awq", "zero point 16"});
  q.zeros[3] = 17;
  expect_error([&] { encode(q, PackingLayout::kGptqV1); },
               {"zero point 17"});  // validate() or the layout check
  q.zeros[3] = 3;
  expect_error([&] { encode(q, PackingLayout::kGptqV1, DType::I32); }, {"scale dtype I32"});
  std::vector<int32_t> perm(64);
  for (int i = 0; i < 64; ++i) perm[i] = 63 - i;
  QuantizedWeight act = quantize_rtn(w.data(), 32, 64, {4, 32, false, PackingLayout::kAwq}, perm.data());
  expect_error([&] { encode(act, PackingLayout::kAwq); }, {"awq", "act-order"});
  QuantizedWeight broken = q;
  broken.codes.pop_back();
  expect_error([&] { encode(broken, PackingLayout::kGptqV2); }, {"codes"});
}

TEST(FormatErrors, QuantizeRtnArguments) {
  std::vector<float> w(8 * 32);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * static_cast<float>(i % 13) - 0.05f;
  const QuantScheme s{4, 32, true, PackingLayout::kGptqV1};
  std::vector<int32_t> perm(32);
  for (int i = 0; i < 32; ++i) perm[i] = i;
  perm[7] = 3;  // 3 twice, 7 missing
  expect_error([&] { quantize_rtn(w.data(), 8, 32, s, perm.data()); }, {"act_order_perm", "entry 7", "3"});
  perm[7] = 32;
  expect_error([&] { quantize_rtn(w.data(), 8, 32, s, perm.data()); }, {"act_order_perm", "32"});
  w[40] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { quantize_rtn(w.data(), 8, 32, s); }, {"weight [1, 8]", "finite"});
  w[40] = 0.0f;
  expect_error([&] { quantize_rtn(w.data(), 8, 32, {7, 32, true, PackingLayout::kGptqV1}); }, {"bits 7"});
  expect_error(
      [&] {
        quantize_rtn(w.data(), 8, 32, {4, 33, true, PackingLayout::kGptqV1});
      },
      {"group_size 33"});
  expect_error([&] { quantize_rtn(w.data(), 8, 32, s, nullptr, DType::I8); }, {"scale dtype I8"});
  expect_error([&] { quantize_rtn(nullptr, 8, 32, s); }, {"null"});
  const std::vector<uint32_t> ints(8 * 32, 1);
  const TensorView i32 = i32_view(ints, {8, 32});
  expect_error([&] { quantize_rtn(i32, s); }, {"dtype I32", "F32, F16 or BF16"});
  const TensorView flat = f32_view(w, {8 * 32});
  expect_error([&] { quantize_rtn(flat, s); }, {"1 dimensions", "expected 2"});
}

}  // namespace
}  // namespace ark
