// The runtime's multi-row GEMV (runtime/vec_ops.h dot_weight_rows): a hand-written known answer, then random
// rows of every weight dtype against a double-precision sum, on row counts and lengths that exercise the
// 64-element main loop, the 16-element loop and the scalar tail.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "ark/dtype.h"
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

template <typename T>
void check_random(DType dtype, T (*encode)(float)) {
  std::mt19937_64 rng(runtime_test::run_seed() + static_cast<uint64_t>(dtype));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (const int64_t n : {1, 15, 16, 33, 64, 200, 896}) {
    for (const int64_t rows : {1, 3, 4, 7, 13}) {
      std::vector<float> x(n);
      for (float& v : x) v = dist(rng);
      std::vector<T> w(rows * n);
      for (T& v : w) v = encode(dist(rng));
      std::vector<float> out(rows, std::numeric_limits<float>::quiet_NaN());
      runtime::dot_weight_rows(x.data(), w.data(), dtype, rows, n, out.data());
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) {
          float wv;
          if constexpr (sizeof(T) == 4) {
            wv = w[r * n + i];
          } else {
            wv = dtype == DType::BF16 ? bf16_to_float(w[r * n + i]) : fp16_to_float(w[r * n + i]);
          }
          ref += static_cast<double>(x[i]) * wv;
          mag += std::fabs(static_cast<double>(x[i]) * wv);
        }
        // fp32 summation bound: n roundings of at most 2^-24 of the running magnitude.
        EXPECT_NEAR(out[r], ref, static_cast<double>(n) * 6e-8 * mag + 1e-30)
            << dtype_name(dtype) << " n=" << n << " rows=" << rows << " row " << r;
      }
    }
  }
}

TEST(RuntimeVecOps, DotWeightRowsRandomAllDtypes) {
  check_random<float>(DType::F32, [](float v) { return v; });
  check_random<uint16_t>(DType::BF16, [](float v) { return float_to_bf16(v); });
  check_random<uint16_t>(DType::F16, [](float v) { return float_to_fp16(v); });
}

}  // namespace
}  // namespace ark
