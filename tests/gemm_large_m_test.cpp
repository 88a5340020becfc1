// Large-M (prefill) GEMM kernels against an fp64 reference computed here from the canonical weight, on fresh
// random inputs (seed printed; replay with ARK_TEST_SEED=<seed>), outputs poisoned with NaN first, over
// shapes that hit every tail: M not a multiple of the 6- or 8-row micro-tile or the 120- to 256-row work item,
// N not a multiple of the 16-row N-tile or the 48/64-column panel, K not a multiple of the 32-wide k-block or
// the 128/256-wide panel.
//
// Tolerances, per compute mode (S = Σ_k |x_k · W_nk|, the size of the terms being summed):
//   bf16 (AVX-512-BF16, AMX-BF16): x and W are each rounded to bf16 (relative error 2^-9 each) and the
//       products summed in fp32, so |y - ref| <= (2^-8 + K · 2^-24) · S; we allow 1.25 · 2^-8 · S.
//   fp32 (AVX-512 F, AVX2): W is s · q - s · z in fp32, products summed in fp32: (K + 8) · 2^-24 · S.
//   int8 (VNNI, AMX-INT8): the reference uses the same quantized activations (xq · x_scale), so only the fp32
//       folding of the integer group sums errs: 2^-20 · Σ_g |x_scale · s| · (Σ_k |xq · q| + z · |Σ_k xq|).
//       (Activation quantization itself is the layer's documented int8 bound, tested with QuantLinear.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ark/dtype.h"
#include "ark/quantized_weight.h"
#include "kernels/cpu_features.h"
#include "kernels/dispatch.h"
#include "linear/packed_weight.h"

namespace ark {

extern const LinearImpl kGemmBf16Avx512Bf16;
extern const LinearImpl kGemmQd8Avx512Vnni;
extern const LinearImpl kGemmF32Avx512;
extern const LinearImpl kGemmF32Avx2;
extern const LinearImpl kGemmBf16Amx;
extern const LinearImpl kGemmQd8Amx;
extern const LinearImpl kGemmQd8AvxVnni;
extern const LinearImpl kGemmQd8Avx2;
extern const LinearImpl kGemvQd8AvxVnni;
extern const LinearImpl kGemvQd8Avx2;

namespace {

uint64_t test_seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("ARK_TEST_SEED");
    const uint64_t s = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    std::printf("gemm_large_m_test seed: %llu (ARK_TEST_SEED to replay)\n",
                static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

struct Case {
  int bits;
  int64_t group_size;  // -1: per channel
  bool sym;
  bool act_order;
  int64_t m, n, k;
};

std::string case_name(const Case& c) {
  return "bits=" + std::to_string(c.bits) + " g=" + std::to_string(c.group_size) +
         (c.sym ? " sym" : " asym") + (c.act_order ? " act-order" : "") + " M=" + std::to_string(c.m) +
         " N=" + std::to_string(c.n) + " K=" + std::to_string(c.k);
}

QuantizedWeight random_weight(const Case& c, std::mt19937_64& rng) {
  QuantizedWeight w;
  w.out_features = c.n;
  w.in_features = c.k;
  w.bits = c.bits;
  w.group_size = c.group_size < 0 ? c.k : c.group_size;
  w.sym = c.sym;
  const int64_t G = w.num_groups();
  const int qmax = (1 << c.bits) - 1;
  std::uniform_int_distribution<int> code(0, qmax);
  std::uniform_real_distribution<float> scale(0.002f, 0.05f);
  w.codes.resize(static_cast<size_t>(c.n * c.k));
  for (auto& q : w.codes) q = static_cast<uint8_t>(code(rng));
  w.scales.resize(static_cast<size_t>(c.n * G));
  w.zeros.resize(static_cast<size_t>(c.n * G));
  // GPTQ v1's borrow makes a zero point of 2^bits possible; include it among asymmetric zeros.
  std::uniform_int_distribution<int> zero(0, qmax + 1);
  for (size_t i = 0; i < w.scales.size(); ++i) {
    w.scales[i] = fp16_to_float(float_to_fp16(scale(rng)));  // checkpoint scales are fp16
    w.zeros[i] = c.sym ? (1 << (c.bits - 1)) : zero(rng);
  }
  if (c.act_order) {
    w.g_idx.resize(static_cast<size_t>(c.k));
    for (int64_t k = 0; k < c.k; ++k)
      w.g_idx[static_cast<size_t>(k)] = static_cast<int32_t>(k / w.group_size);
    std::shuffle(w.g_idx.begin(), w.g_idx.end(), rng);
  }
  w.validate();
  return w;
}

enum class Mode { kBf16, kF32, kInt8 };

// Runs `impl` on one case and checks every output against the fp64 reference. `extreme` draws the largest
// code everywhere and activations of one sign and nearly equal size per row (so xq is ±126/127): the inputs
// that drive integer partial sums to their bounds (vpmaddubsw's int16 pair sums). The output bytes are
// copied to y_out when given. Operands depend only on the case and the run seed, so two kernels called with
// the same case see the same data.
void check_case(const LinearImpl& impl, Mode mode, const Case& c, DType y_dtype = DType::F32,
                bool bias = true, bool extreme = false, std::vector<uint8_t>* y_out = nullptr) {
  SCOPED_TRACE(std::string(impl.name) + " " + case_name(c) + " seed=" + std::to_string(test_seed()));
  std::mt19937_64 rng(test_seed() ^ (static_cast<uint64_t>(c.bits) << 56) ^
                      (static_cast<uint64_t>(c.m) << 40) ^ (static_cast<uint64_t>(c.n) << 20) ^
                      static_cast<uint64_t>(c.k) ^ (c.act_order ? 0x5555 : 0) ^ (c.sym ? 0xaaaa0000 : 0) ^
                      (static_cast<uint64_t>(c.group_size + 7) << 32));
  QuantizedWeight qw = random_weight(c, rng);
  if (extreme) std::fill(qw.codes.begin(), qw.codes.end(), static_cast<uint8_t>((1 << c.bits) - 1));
  const PackedWeight pw = pack_weight(qw);
  const int64_t kp = pw.k_padded(), G = pw.num_groups;

  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(c.m * c.k));
  for (auto& v : x) v = normal(rng);
  if (extreme) {
    std::uniform_real_distribution<float> near_one(0.995f, 1.0f);
    for (int64_t m = 0; m < c.m; ++m)
      for (int64_t k = 0; k < c.k; ++k)
        x[static_cast<size_t>(m * c.k + k)] = (m % 2 ? -1 : 1) * near_one(rng);
  }
  std::vector<float> b(static_cast<size_t>(c.n));
  for (auto& v : b) v = normal(rng);

  // Activations in packed-K order (padding 0), as the layer hands them to the kernels.
  const int64_t ldx = kp + 16;  // a stride wider than the row, so row indexing is exercised
  std::vector<float> xp(static_cast<size_t>(c.m * ldx), std::numeric_limits<float>::quiet_NaN());
  for (int64_t m = 0; m < c.m; ++m)
    for (int64_t i = 0; i < kp; ++i) {
      const int32_t src = pw.k_source[static_cast<size_t>(i)];
      xp[static_cast<size_t>(m * ldx + i)] = src < 0 ? 0.0f : x[static_cast<size_t>(m * c.k + src)];
    }
  // int8 mode's operands, from the contract in dispatch.h.
  const int64_t ldxq = kp + 64;
  std::vector<int8_t> xq(static_cast<size_t>(c.m * ldxq), 0x55);
  std::vector<float> xs(static_cast<size_t>(c.m * G));
  std::vector<int32_t> xsum(static_cast<size_t>(c.m * G));
  for (int64_t m = 0; m < c.m; ++m)
    for (int64_t g = 0; g < G; ++g) {
      const int64_t k0 = pw.group_block_begin[static_cast<size_t>(g)] * kBlockK;
      const int64_t k1 = pw.group_block_begin[static_cast<size_t>(g + 1)] * kBlockK;
      float amax = 0.0f;
      for (int64_t i = k0; i < k1; ++i)
        amax = std::max(amax, std::fabs(xp[static_cast<size_t>(m * ldx + i)]));
      const float scale = amax / 127.0f;
      int32_t sum = 0;
      for (int64_t i = k0; i < k1; ++i) {
        const float v =
            amax > 0 ? std::nearbyint(xp[static_cast<size_t>(m * ldx + i)] * 127.0f / amax) : 0.0f;
        xq[static_cast<size_t>(m * ldxq + i)] = static_cast<int8_t>(v);
        sum += static_cast<int32_t>(v);
      }
      xs[static_cast<size_t>(m * G + g)] = scale;
      xsum[static_cast<size_t>(m * G + g)] = sum;
    }

  const size_t y_elem = y_dtype == DType::F32 ? 4 : 2;
  const int64_t ldy = c.n + 3;
  std::vector<uint8_t> y(static_cast<size_t>(c.m * ldy) * y_elem);
  // Poison: NaN in every dtype (0xffff is a NaN in both bf16 and fp16; 0xffffffff in fp32).
  std::fill(y.begin(), y.end(), 0xff);

  LinearArgs a;
  a.m = c.m;
  a.x = xp.data();
  a.ldx = ldx;
  a.xq = xq.data();
  a.ldxq = ldxq;
  a.x_scale = xs.data();
  a.xq_sum = xsum.data();
  a.y = y.data();
  a.ldy = ldy;
  a.y_dtype = y_dtype;
  a.bias = bias ? b.data() : nullptr;

  // Hand out work the way a layer does: row blocks of m_block, and N-tiles split unevenly (3 parts).
  const int64_t mb = impl.m_block > 0 ? impl.m_block : c.m;
  const int64_t tiles = pw.n_tiles;
  const int64_t cuts[4] = {0, tiles / 3, tiles / 3 + (tiles - tiles / 3) / 2 + 1, tiles};
  for (int64_t m0 = 0; m0 < c.m; m0 += mb)
    for (int p = 0; p < 3; ++p) {
      const int64_t t0 = std::min(cuts[p], tiles), t1 = std::min(cuts[p + 1], tiles);
      if (t0 < t1) impl.run(pw, a, m0, std::min(c.m, m0 + mb), t0, t1);
    }

  // fp64 reference.
  int64_t bad = 0;
  for (int64_t m = 0; m < c.m; ++m)
    for (int64_t n = 0; n < c.n; ++n) {
      double ref = 0.0, mag = 0.0;
      if (mode != Mode::kInt8) {
        for (int64_t k = 0; k < c.k; ++k) {
          const double t = static_cast<double>(x[static_cast<size_t>(m * c.k + k)]) * qw.dequant(n, k);
          ref += t;
          mag += std::fabs(t);
        }
        mag *= mode == Mode::kBf16 ? 1.25 * std::ldexp(1.0, -8) : (c.k + 8) * std::ldexp(1.0, -24);
      } else {
        for (int64_t g = 0; g < G; ++g) {
          const int64_t k0 = pw.group_block_begin[static_cast<size_t>(g)] * kBlockK;
          const int64_t k1 = pw.group_block_begin[static_cast<size_t>(g + 1)] * kBlockK;
          int64_t dot = 0, absdot = 0;
          for (int64_t i = k0; i < k1; ++i) {
            const int32_t src = pw.k_source[static_cast<size_t>(i)];
            if (src < 0) continue;
            const int q = qw.codes[static_cast<size_t>(n * c.k + src)];
            const int xv = xq[static_cast<size_t>(m * ldxq + i)];
            dot += static_cast<int64_t>(xv) * q;
            absdot += std::abs(xv * q);
          }
          const int64_t grp = qw.group_of(pw.k_source[static_cast<size_t>(k0)]);
          const double z = qw.zeros[static_cast<size_t>(n * G + grp)];
          const double s = static_cast<double>(qw.scales[static_cast<size_t>(n * G + grp)]) *
                           xs[static_cast<size_t>(m * G + g)];
          const double sum = xsum[static_cast<size_t>(m * G + g)];
          ref += s * (static_cast<double>(dot) - z * sum);
          mag += std::fabs(s) * (static_cast<double>(absdot) + z * std::fabs(sum));
        }
        mag *= std::ldexp(1.0, -20);
      }
      if (bias) ref += b[static_cast<size_t>(n)];
      const uint8_t* py = y.data() + static_cast<size_t>(m * ldy + n) * y_elem;
      double got;
      double tol = mag + 1e-6;
      if (y_dtype == DType::F32) {
        float f;
        std::memcpy(&f, py, 4);
        got = f;
      } else {
        uint16_t h;
        std::memcpy(&h, py, 2);
        got = y_dtype == DType::BF16 ? bf16_to_float(h) : fp16_to_float(h);
        tol += std::fabs(ref) * (y_dtype == DType::BF16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11));
      }
      if (!(std::fabs(got - ref) <= tol)) {
        if (++bad <= 5)
          ADD_FAILURE() << "y[" << m << "][" << n << "] = " << got << ", reference " << ref << " (tol " << tol
                        << ")";
      }
    }
  EXPECT_EQ(bad, 0) << "outputs out of tolerance";
  if (y_out != nullptr) *y_out = y;
  // Columns past N and the row padding stay untouched (the poison is still there).
  for (int64_t m = 0; m < c.m; ++m)
    for (int64_t n = c.n; n < ldy; ++n)
      for (size_t i = 0; i < y_elem; ++i)
        ASSERT_EQ(y[static_cast<size_t>(m * ldy + n) * y_elem + i], 0xff) << "wrote past N at row " << m;
}

// Skips (with a message) when this CPU cannot run the implementation.
bool runnable(const LinearImpl& impl, Mode mode, int bits) {
  LinearProblem p;
  p.bits = bits;
  p.mode = mode == Mode::kInt8 ? ComputeMode::kInt8 : ComputeMode::kExact;
  p.isa = detected_isa_level();
  p.avx_vnni = cpu_features().avx_vnni;
  return impl.accepts(p);
}

#define SKIP_UNLESS_RUNNABLE(impl, mode)                                                                     \
  if (!runnable(impl, mode, 4))                                                                              \
  GTEST_SKIP() << impl.name << ": this CPU lacks its ISA (detected " << isa_level_name(detected_isa_level()) \
               << ")"

// Every bits x group x sym/asym x act-order combination on a tail-heavy shape, then M/N/K tails on one
// scheme.
void sweep(const LinearImpl& impl, Mode mode) {
  for (int bits : {2, 3, 4, 8})
    for (int64_t g : {32, 64, 128, -1})
      for (bool sym : {true, false})
        for (bool act : {false, true}) {
          if (act && g < 0) continue;  // act-order needs more than one group
          check_case(impl, mode, {bits, g, sym, act, 129, 80, 320});
        }
  for (int64_t m : {128, 300})
    for (int64_t n : {16, 33, 200})
      for (int64_t k : {64, 96, 416}) check_case(impl, mode, {4, 32, false, false, m, n, k});
  // Group sizes that are not multiples of the 32-wide k-block (packed with per-group padding).
  check_case(impl, mode, {4, 48, false, false, 130, 48, 240});
  check_case(impl, mode, {3, 100, true, true, 131, 64, 300});
  // K beyond one panel, several work items of rows.
  check_case(impl, mode, {4, 128, true, false, 250, 130, 1100});
  check_case(impl, mode, {2, 64, false, false, 250, 96, 1024}, DType::BF16);
  check_case(impl, mode, {8, 128, false, false, 129, 96, 512}, DType::F16, false);
}

TEST(GemmLargeM, Bf16Avx512Bf16) {
  SKIP_UNLESS_RUNNABLE(kGemmBf16Avx512Bf16, Mode::kBf16);
  sweep(kGemmBf16Avx512Bf16, Mode::kBf16);
}
TEST(GemmLargeM, Qd8Avx512Vnni) {
  SKIP_UNLESS_RUNNABLE(kGemmQd8Avx512Vnni, Mode::kInt8);
  sweep(kGemmQd8Avx512Vnni, Mode::kInt8);
}

// The AVX2-level int8 GEMMs (no AVX-512): the sweep, then the saturation-bound inputs on every bit width
// (8-bit codes go through the nibble split on the vpmaddubsw path), with per-channel groups for the longest
// int32 sums.
void sweep_int8_avx2(const LinearImpl& impl) {
  sweep(impl, Mode::kInt8);
  for (int bits : {2, 3, 4, 8})
    for (int64_t g : {32, 128, -1}) {
      check_case(impl, Mode::kInt8, {bits, g, false, false, 130, 40, 1056}, DType::F32, true, true);
      check_case(impl, Mode::kInt8, {bits, g, true, g > 0, 7, 16, 512}, DType::F32, false, true);
    }
}

TEST(GemmLargeM, Qd8AvxVnni) {
  SKIP_UNLESS_RUNNABLE(kGemmQd8AvxVnni, Mode::kInt8);
  sweep_int8_avx2(kGemmQd8AvxVnni);
}
TEST(GemmLargeM, Qd8Avx2) {
  SKIP_UNLESS_RUNNABLE(kGemmQd8Avx2, Mode::kInt8);
  sweep_int8_avx2(kGemmQd8Avx2);
}

// The AVX2-level int8 GEMMs fold their exact integer group sums into fp32 in the same order as the AVX-512
// VNNI GEMM, so all of them give the same bytes in every output dtype (the documented contract: a layer's
// int8 results do not depend on the ISA level of its GEMM).
TEST(GemmLargeM, Qd8Avx2LevelsMatchAvx512VnniBitForBit) {
  SKIP_UNLESS_RUNNABLE(kGemmQd8Avx512Vnni, Mode::kInt8);
  std::vector<const LinearImpl*> others;
  for (const LinearImpl* impl : {&kGemmQd8AvxVnni, &kGemmQd8Avx2})
    if (runnable(*impl, Mode::kInt8, 4)) others.push_back(impl);
  const Case cases[] = {{4, 128, true, false, 250, 130, 1100},
                        {3, 100, true, true, 131, 64, 300},
                        {8, -1, false, false, 129, 40, 544},
                        {2, 32, false, true, 17, 33, 320},
                        {4, 48, false, false, 130, 48, 240}};
  for (const Case& c : cases)
    for (DType dt : {DType::F32, DType::BF16, DType::F16})
      for (bool extreme : {false, true}) {
        std::vector<uint8_t> want, got;
        check_case(kGemmQd8Avx512Vnni, Mode::kInt8, c, dt, true, extreme, &want);
        for (const LinearImpl* impl : others) {
          check_case(*impl, Mode::kInt8, c, dt, true, extreme, &got);
          EXPECT_TRUE(got == want) << impl->name << " differs from " << kGemmQd8Avx512Vnni.name << " on "
                                   << case_name(c) << " y dtype "
                                   << (dt == DType::F32    ? "f32"
                                       : dt == DType::BF16 ? "bf16"
                                                           : "f16");
        }
      }
}

// The AVX2 int8 decode kernels add a k-block's 8 vpmaddubsw pair sums in int16 before widening them
// (30480 at most, for codes below 16 and |xq| <= 127): the largest codes and activations of one sign reach
// that bound in every lane, on every bit width (8-bit codes through the nibble split), at the row counts of
// both row blocks (2 rows and the 1-row tail).
TEST(GemmLargeM, Qd8Avx2DecodeAtTheInt16Bound) {
  bool ran = false;
  for (const LinearImpl* impl : {&kGemvQd8Avx2, &kGemvQd8AvxVnni}) {
    if (!runnable(*impl, Mode::kInt8, 4)) continue;
    ran = true;
    for (int bits : {2, 3, 4, 8})
      for (int64_t g : {32, 128, -1})
        for (int64_t m : {1, 2, 5, 16}) {
          check_case(*impl, Mode::kInt8, {bits, g, false, false, m, 40, 1056}, DType::F32, true, true);
          check_case(*impl, Mode::kInt8, {bits, g, true, g > 0, m, 33, 512}, DType::F32, false, true);
        }
  }
  if (!ran) GTEST_SKIP() << "this CPU lacks AVX2";
}

TEST(GemmLargeM, F32Avx512) {
  SKIP_UNLESS_RUNNABLE(kGemmF32Avx512, Mode::kF32);
  sweep(kGemmF32Avx512, Mode::kF32);
}

TEST(GemmLargeM, F32Avx2) {
  SKIP_UNLESS_RUNNABLE(kGemmF32Avx2, Mode::kF32);
  sweep(kGemmF32Avx2, Mode::kF32);
}
TEST(GemmLargeM, Bf16Amx) {
  SKIP_UNLESS_RUNNABLE(kGemmBf16Amx, Mode::kBf16);
  sweep(kGemmBf16Amx, Mode::kBf16);
}
TEST(GemmLargeM, Qd8Amx) {
  SKIP_UNLESS_RUNNABLE(kGemmQd8Amx, Mode::kInt8);
  sweep(kGemmQd8Amx, Mode::kInt8);
}

}  // namespace
}  // namespace ark
