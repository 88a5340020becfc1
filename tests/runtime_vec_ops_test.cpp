// The runtime's vector helpers (runtime/vec_ops.h): a hand-written known answer, then random rows of every
// weight dtype against a double-precision sum, on row counts and lengths that exercise each path's unrolled
// main loop (64 or 32 elements), its one-vector loop (16 or 8) and the scalar tail; every path the CPU has
// (portable, AVX2 + F16C, AVX-512) is called directly, so one run checks them all.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "ark/dtype.h"
#include "kernels/cpu_features.h"
#include "runtime/vec_ops.h"
#include "runtime_test_util.h"

namespace ark {
namespace {

TEST(RuntimeVecOps, DotWeightRowsKnownAnswerBf16) {
  // bf16 bit patterns written from the format: 0x3F80 = 1.0, 0x4000 = 2.0, 0xBF00 = -0.5, 0x4040 = 3.0.
  const float x[3] = {1.0f, 2.0f, 3.0f};
  const uint16_t w[2][3] = {{0x3F80, 0x4000, 0xBF00}, {0x4040, 0xBF00, 0x3F80}};
  float out[2] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::quiet_NaN()};
  runtime::dot_weight_rows(x, w, DType::BF16, 2, 3, out);
  EXPECT_EQ(out[0], 1.0f + 4.0f - 1.5f);
  EXPECT_EQ(out[1], 3.0f - 1.0f + 3.0f);
}

// The paths this CPU can run, lowest first (vec_ops_at maps every level from kAvx512 up to one path).
std::vector<IsaLevel> vec_paths() {
  std::vector<IsaLevel> out{IsaLevel::kRef};
  if (detected_isa_level() >= IsaLevel::kAvx2) out.push_back(IsaLevel::kAvx2);
  if (detected_isa_level() >= IsaLevel::kAvx512) out.push_back(IsaLevel::kAvx512);
  return out;
}

constexpr int64_t kLengths[] = {1, 7, 8, 15, 16, 31, 33, 64, 200, 896};

template <typename T>
float weight_value(const T& v, DType dtype) {
  if constexpr (sizeof(T) == 4) {
    return v;
  } else {
    return dtype == DType::BF16 ? bf16_to_float(v) : fp16_to_float(v);
  }
}

template <typename T>
void check_random(const runtime::VecOps& ops, DType dtype, T (*encode)(float)) {
  const uint64_t seed = runtime_test::run_seed() + static_cast<uint64_t>(dtype);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (const int64_t n : kLengths) {
    for (const int64_t rows : {1, 3, 4, 7, 13}) {
      std::vector<float> x(n);
      for (float& v : x) v = dist(rng);
      std::vector<T> w(rows * n);
      for (T& v : w) v = encode(dist(rng));
      std::vector<float> out(rows, std::numeric_limits<float>::quiet_NaN());
      ops.dot_weight_rows(x.data(), w.data(), dtype, rows, n, out.data());
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) {
          const float wv = weight_value(w[r * n + i], dtype);
          ref += static_cast<double>(x[i]) * wv;
          mag += std::fabs(static_cast<double>(x[i]) * wv);
        }
        // fp32 summation bound: n roundings of at most 2^-24 of the running magnitude.
        const double tol = static_cast<double>(n) * 6e-8 * mag + 1e-30;
        EXPECT_NEAR(out[r], ref, tol) << isa_level_name(ops.level) << " " << dtype_name(dtype) << " n=" << n
                                      << " rows=" << rows << " row " << r << " seed " << seed;
        if (r == 0) {  // the single-row dot product of the same path
          EXPECT_NEAR(ops.dot_weight(x.data(), w.data(), dtype, n), ref, tol)
              << isa_level_name(ops.level) << " " << dtype_name(dtype) << " n=" << n;
        }
      }
      // Widening is exact: every bf16 / fp16 value is a float.
      std::vector<float> wide(n, std::numeric_limits<float>::quiet_NaN());
      ops.widen(w.data(), dtype, n, wide.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(wide[i], weight_value(w[i], dtype))
            << isa_level_name(ops.level) << " n=" << n << " i=" << i;
    }
  }
}

TEST(RuntimeVecOps, DotWeightRowsRandomAllDtypesEveryPath) {
  for (const IsaLevel level : vec_paths()) {
    const runtime::VecOps& ops = runtime::vec_ops_at(level);
    ASSERT_EQ(ops.level, level);
    check_random<float>(ops, DType::F32, [](float v) { return v; });
    check_random<uint16_t>(ops, DType::BF16, [](float v) { return float_to_bf16(v); });
    check_random<uint16_t>(ops, DType::F16, [](float v) { return float_to_fp16(v); });
  }
}

TEST(RuntimeVecOps, AxpyAndScaleEveryPath) {
  std::mt19937_64 rng(runtime_test::run_seed() + 99);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (const IsaLevel level : vec_paths()) {
    const runtime::VecOps& ops = runtime::vec_ops_at(level);
    for (const int64_t n : kLengths) {
      std::vector<float> x(n), y(n);
      for (float& v : x) v = dist(rng);
      for (float& v : y) v = dist(rng);
      const float a = dist(rng);
      std::vector<float> got = y;
      ops.axpy(got.data(), a, x.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        // One fused or two separate roundings: within 2^-23 of the magnitudes involved.
        const double want = static_cast<double>(y[i]) + static_cast<double>(a) * x[i];
        EXPECT_NEAR(got[i], want, 2.4e-7 * (std::fabs(y[i]) + std::fabs(a * x[i])))
            << isa_level_name(level) << " n=" << n << " i=" << i;
      }
      got = y;
      ops.scale(got.data(), a, n);
      for (int64_t i = 0; i < n; ++i)
        EXPECT_EQ(got[i], a * y[i]) << isa_level_name(level) << " n=" << n << " i=" << i;  // one rounding
    }
  }
}

// silu(gate) * up against a double-precision value on every path: gates over the whole useful range (the
// vector paths' exp is a polynomial; the clamp at |x| ~ 88 must still give silu's limits 0 and x), lengths
// that hit the vector loop and the scalar tail, output poisoned first, and in place (out == gate).
TEST(RuntimeVecOps, SiluMulEveryPath) {
  const uint64_t seed = runtime_test::run_seed() + 7;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> gate_dist(-30.0f, 30.0f);
  std::normal_distribution<float> up_dist(0.0f, 1.0f);
  for (const IsaLevel level : vec_paths()) {
    const runtime::VecOps& ops = runtime::vec_ops_at(level);
    for (const int64_t n : kLengths) {
      std::vector<float> gate(n), up(n);
      for (float& v : gate) v = gate_dist(rng);
      for (float& v : up) v = up_dist(rng);
      const float extremes[] = {0.0f, -0.0f, 1e-30f, -100.0f, 100.0f, -87.5f, 88.5f, 500.0f};
      for (int64_t i = 0; i < n && i < 8; ++i) gate[i] = extremes[i];
      std::vector<float> got(n, std::numeric_limits<float>::quiet_NaN());
      ops.silu_mul(gate.data(), up.data(), got.data(), n);
      std::vector<float> in_place = gate;
      ops.silu_mul(in_place.data(), up.data(), in_place.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double g = gate[i], want = g / (1.0 + std::exp(-g)) * up[i];
        // exp within a few ulp, then a division and a product: 1e-6 relative. Below gate = -87.3 the clamped
        // exp gives |silu| ~ 1e-36 instead of a smaller value: an absolute 1e-35 covers it.
        EXPECT_NEAR(got[i], want, 1e-6 * std::fabs(want) + 1e-35)
            << isa_level_name(level) << " n=" << n << " gate=" << gate[i] << " seed " << seed;
        EXPECT_EQ(in_place[i], got[i]) << isa_level_name(level) << " n=" << n << " i=" << i;
      }
    }
  }
}

// softmax in place against a double-precision softmax on every path: scores over attention's range and beyond
// (differences past -87.3 from the row maximum, where the vector exp clamps), lengths that hit the vector
// loops and the scalar tails (n = 1 included), a row of equal scores, and NaN passing through.
TEST(RuntimeVecOps, SoftmaxEveryPath) {
  const uint64_t seed = runtime_test::run_seed() + 11;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-40.0f, 40.0f);
  for (const IsaLevel level : vec_paths()) {
    const runtime::VecOps& ops = runtime::vec_ops_at(level);
    for (const int64_t n : kLengths) {
      std::vector<float> s(n);
      for (float& v : s) v = dist(rng);
      const float extremes[] = {-100.0f, 45.0f, -300.0f, 44.9f, -47.3f};
      for (int64_t i = 0; i < n && i < 5; ++i) s[i] = extremes[i];
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (const float v : s) sum += std::exp(v - mx);
      std::vector<float> got = s;
      ops.softmax(got.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double want = std::exp(s[i] - mx) / sum;
        // The float difference s - max is rounded to half an ulp of its size (6e-8 relative), which exp turns
        // into that much relative error per unit of the difference; then exp within a few ulp, a float sum of
        // up to 896 terms and a product: 2e-6. Scores more than 87.3 below the maximum get exp(-87.3) ~ 1e-38
        // instead of a smaller value: an absolute 1e-37.
        const double tol = want * (2e-6 + 6e-8 * std::fabs(s[i] - mx)) + 1e-37;
        EXPECT_NEAR(got[i], want, tol)
            << isa_level_name(level) << " n=" << n << " i=" << i << " s=" << s[i] << " seed " << seed;
      }
      std::vector<float> equal(n, 3.5f);
      ops.softmax(equal.data(), n);
      for (int64_t i = 0; i < n; ++i)
        EXPECT_NEAR(equal[i], 1.0 / n, 2e-6 / n) << isa_level_name(level) << " n=" << n;
      std::vector<float> with_nan = s;
      with_nan[n / 2] = std::numeric_limits<float>::quiet_NaN();
      ops.softmax(with_nan.data(), n);
      EXPECT_TRUE(std::isnan(with_nan[n / 2])) << isa_level_name(level) << " n=" << n;
    }
  }
}

// The path the runtime uses is the highest the CPU has, as ARK_ISA caps it.
TEST(RuntimeVecOps, ActivePathFollowsIsaLevel) {
  const IsaLevel active = active_isa_level();
  const IsaLevel want = active >= IsaLevel::kAvx512 ? IsaLevel::kAvx512
                        : active >= IsaLevel::kAvx2 ? IsaLevel::kAvx2
                                                    : IsaLevel::kRef;
  EXPECT_EQ(runtime::vec_ops_at(active).level, want);
  const float x[3] = {1.0f, 2.0f, 3.0f}, w[3] = {0.5f, -1.0f, 2.0f};
  EXPECT_EQ(runtime::dot_f32(x, w, 3), 0.5f - 2.0f + 6.0f);
}

}  // namespace
}  // namespace ark
