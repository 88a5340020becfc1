// The AVX-512-BF16 prefill GEMM reads x in two ways: the bf16 rows the layer rounds once per call
// (LinearImpl::prepare_bf16 -> LinearArgs::xb), or, from callers that hand only fp32 rows (the MoE, the
// kernel tests), rows it rounds itself per panel. Both must give bit-identical outputs, the prepared path
// must not read the fp32 rows at all (they are NaN here), and both must meet the bf16-operand bound of
// docs/KERNELS.md. Random inputs (seed printed; ARK_TEST_SEED replays), outputs poisoned with NaN, shapes off
// every tile: M around the 256-row work item and the 8-row micro-tile, N off the 16/48-column tile/panel, K
// off the 128-wide panel, every bit width, sym/asym, act-order. A third run hands the kernel heap scratch
// (LinearArgs::scratch: whole-K panels) and must give the same bytes, K split into chunks and M past the
// 512-row item included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/dispatch.h"
#include "linear/activations.h"
#include "linear/packed_weight.h"
#include "quant_linear_test_util.h"

namespace ark {

extern const LinearImpl kGemmBf16Avx512Bf16;

namespace {

bool have_avx512bf16() {
  return detected_isa_level() >= IsaLevel::kAvx512Bf16;
}

struct Case {
  ql_test::WeightConfig w;
  int64_t m;
  DType y_dtype;
};

// Output element m, n of y (any dtype) as double.
double output_at(const std::vector<uint8_t>& y, DType dtype, int64_t ldy, int64_t m, int64_t n) {
  if (dtype == DType::F32) {
    float f;
    std::memcpy(&f, y.data() + (m * ldy + n) * 4, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, y.data() + (m * ldy + n) * 2, 2);
  return dtype == DType::BF16 ? bf16_to_float(h) : fp16_to_float(h);
}

// Runs the kernel over the whole problem the way a layer hands out work (row blocks of m_block, N-tiles in
// three uneven parts), in its stack budget or, with `scratch`, in one heap slice of scratch_bytes reused by
// every call (calls run one after another here).
void run_kernel(const PackedWeight& pw, const LinearArgs& args, int64_t m, bool scratch = false) {
  const LinearImpl& impl = kGemmBf16Avx512Bf16;
  LinearArgs a = args;
  std::vector<uint8_t> store;
  if (scratch) {
    EXPECT_NE(impl.scratch_bytes, nullptr);
    if (impl.scratch_bytes == nullptr) return;
    store.assign(impl.scratch_bytes(pw) + 64, 0xff);  // poisoned: the kernel must write before it reads
    a.scratch = store.data() + (64 - reinterpret_cast<uintptr_t>(store.data()) % 64) % 64;
  }
  const int64_t tiles = pw.n_tiles;
  const int64_t cuts[4] = {0, tiles / 3, tiles / 3 + (tiles - tiles / 3) / 2 + 1, tiles};
  for (int64_t m0 = 0; m0 < m; m0 += impl.m_block)
    for (int p = 0; p < 3; ++p) {
      const int64_t t0 = std::min(cuts[p], tiles), t1 = std::min(cuts[p + 1], tiles);
      if (t0 < t1) impl.run(pw, a, m0, std::min(m, m0 + impl.m_block), t0, t1);
    }
}

void check_case(const Case& c, uint64_t case_id) {
  SCOPED_TRACE("N " + std::to_string(c.w.n) + " K " + std::to_string(c.w.k) + " bits " +
               std::to_string(c.w.bits) + " g " + std::to_string(c.w.group_size) +
               (c.w.sym ? " sym" : " asym") + (c.w.act_order ? " act-order" : "") + " M " +
               std::to_string(c.m) + " y " + std::string(dtype_name(c.y_dtype)) + " seed " +
               std::to_string(ql_test::run_seed()));
  std::mt19937_64 rng = ql_test::rng_for(case_id);
  const QuantizedWeight qw = ql_test::random_weight(c.w, rng);
  const PackedWeight pw = pack_weight(qw);
  const int64_t kp = pw.k_padded(), n = c.w.n, m = c.m;
  const std::vector<float> x = ql_test::random_activations(m, c.w.k, rng);
  std::vector<float> bias(static_cast<size_t>(n));
  std::normal_distribution<float> nd(0.0f, 0.5f);
  for (auto& b : bias) b = nd(rng);

  // fp32 rows in packed-K order with a stride wider than the row; their bf16 rounding with another stride.
  const int64_t ldx = kp + 32, ldxb = kp + 64;
  std::vector<float> xf = ql_test::poisoned(static_cast<size_t>(m * ldx));
  gather_activation_rows(pw, x.data(), DType::F32, 0, m, xf.data(), ldx);
  std::vector<uint16_t> xb(static_cast<size_t>(m * ldxb), 0xffff);
  ASSERT_NE(kGemmBf16Avx512Bf16.prepare_bf16, nullptr);
  kGemmBf16Avx512Bf16.prepare_bf16(xf.data(), ldx, 0, m, kp, xb.data(), ldxb);

  const size_t elem = c.y_dtype == DType::F32 ? 4 : 2;
  const int64_t ldy = n + 5;
  std::vector<uint8_t> y_own(static_cast<size_t>(m * ldy) * elem, 0xff);  // NaN in every dtype
  std::vector<uint8_t> y_prep = y_own;

  LinearArgs a;
  a.m = m;
  a.x = xf.data();
  a.ldx = ldx;
  a.y = y_own.data();
  a.ldy = ldy;
  a.y_dtype = c.y_dtype;
  a.bias = bias.data();
  run_kernel(pw, a, m);  // rounds the fp32 rows itself

  const std::vector<float> nan_rows = ql_test::poisoned(xf.size());
  a.x = nan_rows.data();  // the prepared path must read only xb
  a.xb = xb.data();
  a.ldxb = ldxb;
  a.y = y_prep.data();
  run_kernel(pw, a, m);

  EXPECT_EQ(y_own, y_prep) << "prepared bf16 rows and the kernel's own rounding differ";

  // With heap scratch (whole-K panels, accumulators in registers over each K chunk): the same bytes.
  std::vector<uint8_t> y_scratch(y_own.size(), 0xff);
  a.y = y_scratch.data();
  run_kernel(pw, a, m, true);
  EXPECT_EQ(y_own, y_scratch) << "the scratch path and the stack path differ";

  // The bf16-operand bound, plus the output dtype's rounding.
  const ql_test::Oracle o = ql_test::oracle(qw, bias, x, m, false, true);
  const double out_ulp = c.y_dtype == DType::BF16  ? std::ldexp(1.0, -8)
                         : c.y_dtype == DType::F16 ? std::ldexp(1.0, -11)
                                                   : 0.0;
  int failures = 0;
  for (int64_t r = 0; r < m && failures < 3; ++r)
    for (int64_t j = 0; j < n && failures < 3; ++j) {
      const double got = output_at(y_prep, c.y_dtype, ldy, r, j), ref = o.y[r * n + j];
      const double bound = o.bound[r * n + j] + out_ulp * std::fabs(ref) + 1e-6;
      if (!(std::fabs(got - ref) <= bound)) {
        ADD_FAILURE() << "y[" << r << "][" << j << "] = " << got << ", oracle " << ref << ", bound " << bound;
        ++failures;
      }
    }
  // The row padding past N keeps its poison.
  for (int64_t r = 0; r < m; ++r)
    for (size_t i = static_cast<size_t>(n) * elem; i < static_cast<size_t>(ldy) * elem; ++i)
      ASSERT_EQ(y_prep[static_cast<size_t>(r * ldy) * elem + i], 0xff) << "wrote past N in row " << r;
}

TEST(GemmBf16PreparedX, MatchesOwnRoundingAndOracle) {
  if (!have_avx512bf16()) GTEST_SKIP() << "this CPU lacks AVX-512-BF16";
  const Case cases[] = {
      {{200, 320, 4, 128, true, false}, 257, DType::F32},  // 256-row item + 1 row; K = 2.5 panels
      {{72, 416, 4, 32, false, false}, 271, DType::BF16},  // 2 items, the last 15 rows (8 + 7)
      {{33, 256, 2, 64, false, true}, 131, DType::F16},    // act-order; 16 micro-tiles + 3 rows
      {{80, 300, 3, 100, true, true}, 12, DType::F32},     // per-group padding (100 -> 128)
      {{16, 64, 8, -1, false, false}, 1, DType::F32},      // one tile, half a panel of K
      {{130, 1100, 4, 128, true, false}, 140, DType::BF16},
      {{96, 160, 4, 32, false, false}, 300, DType::F32},    // N a whole number of panels
      {{50, 4500, 4, 128, false, false}, 133, DType::F32},  // K in two chunks of the scratch path (4096 max)
      {{40, 8200, 3, 64, true, true}, 9, DType::BF16},      // three chunks, act-order
      {{35, 96, 2, 32, true, false}, 523, DType::F16},      // two 512-row scratch items, the last 11 rows
  };
  uint64_t id = 7000;
  for (const Case& c : cases) check_case(c, id++);
}

// Through QuantLinear, whose forward rounds the rows once (prepare_bf16) for this kernel: fp32 and bf16
// inputs against the oracle on the inputs as the layer sees them.
TEST(GemmBf16PreparedX, QuantLinearForwardUsesPreparedRows) {
  if (!have_avx512bf16()) GTEST_SKIP() << "this CPU lacks AVX-512-BF16";
  const ql_test::WeightConfig wc{150, 352, 4, 32, false, true};
  std::mt19937_64 rng = ql_test::rng_for(7100);
  const QuantizedWeight w = ql_test::random_weight(wc, rng);
  QuantLinearSpec spec;
  spec.in_features = wc.k;
  spec.out_features = wc.n;
  spec.bits = wc.bits;
  spec.group_size = wc.group_size;
  spec.sym = wc.sym;
  spec.act_order = wc.act_order;
  spec.mode = ComputeMode::kExact;
  spec.max_isa = "avx512_bf16";
  QuantLinear layer(spec);
  layer.load(w);
  layer.post_init();
  const int64_t m = 140;
  ASSERT_EQ(layer.kernel_name(m), std::string(kGemmBf16Avx512Bf16.name));
  std::vector<float> x = ql_test::random_activations(m, wc.k, rng);
  for (DType in : {DType::F32, DType::BF16}) {
    SCOPED_TRACE("input " + std::string(dtype_name(in)) + " seed " + std::to_string(ql_test::run_seed()));
    std::vector<float> y = ql_test::poisoned(static_cast<size_t>(m * wc.n));
    if (in == DType::F32) {
      layer.forward(x.data(), y.data(), m);
    } else {
      std::vector<uint16_t> xh(x.size()), yh(y.size(), 0xffff);
      for (size_t i = 0; i < x.size(); ++i) {
        xh[i] = float_to_bf16(x[i]);
        x[i] = bf16_to_float(xh[i]);  // the oracle sees what the layer sees
      }
      layer.forward(xh.data(), yh.data(), m, DType::BF16);
      for (size_t i = 0; i < y.size(); ++i) y[i] = bf16_to_float(yh[i]);
    }
    const ql_test::Oracle o = ql_test::oracle(w, {}, x, m, false, true);
    const double out_ulp = in == DType::BF16 ? std::ldexp(1.0, -8) : 0.0;
    int failures = 0;
    for (int64_t i = 0; i < m * wc.n && failures < 3; ++i) {
      const double err = std::fabs(static_cast<double>(y[i]) - o.y[i]);
      if (!(err <= o.bound[i] + out_ulp * std::fabs(o.y[i]))) {
        ADD_FAILURE() << "y[" << i / wc.n << "][" << i % wc.n << "] = " << y[i] << ", oracle " << o.y[i];
        ++failures;
      }
    }
  }
}

}  // namespace
}  // namespace ark
