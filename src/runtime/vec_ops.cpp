// Vector helpers (vec_ops.h): AVX-512 F and AVX2 (+FMA, F16C) versions compiled through target attributes, so
// this file needs no per-ISA flags, and a portable version; the choice is made once. The AVX2 path matters
// most for fp16 and bf16 weights: the portable loop widens them one element at a time in integer code, about
// 15x slower than F16C's eight per instruction (fp16 checkpoints decoded at ~75 instead of ~1200 tokens/s).
#include "runtime/vec_ops.h"

// GCC 12's AVX-512 headers self-initialise their "undefined" vectors, which warns when the intrinsics are
// inlined into target("avx512f") functions of a file built without -mavx512f; the code is correct.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>

#include "kernels/cpu_features.h"

namespace ark::runtime {

namespace {

float load_weight(const void* w, DType t, int64_t i) {
  switch (t) {
    case DType::BF16:
      return bf16_to_float(static_cast<const uint16_t*>(w)[i]);
    case DType::F16:
      return fp16_to_float(static_cast<const uint16_t*>(w)[i]);
    default:
      return static_cast<const float*>(w)[i];
  }
}

__attribute__((target("avx512f"))) inline __m512 load16(const void* w, DType t, int64_t i) {
  switch (t) {
    case DType::BF16: {
      const __m256i h =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case DType::F16: {
      const __m256i h =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
      return _mm512_cvtph_ps(h);
    }
    default:
      return _mm512_loadu_ps(static_cast<const float*>(w) + i);
  }
}

// Four accumulators: an FMA has a latency of about 4 cycles, so one chain would leave the unit idle.
__attribute__((target("avx512f"))) float dot_weight_avx512(const float* x, const void* w, DType t,
                                                           int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
         acc3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), load16(w, t, i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), load16(w, t, i + 16), acc1);
    acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), load16(w, t, i + 32), acc2);
    acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), load16(w, t, i + 48), acc3);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), load16(w, t, i), acc0);
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
  for (; i < n; ++i) sum += x[i] * load_weight(w, t, i);
  return sum;
}

// kT is fixed at compile time so the inner loop has no dtype switch.
template <DType kT>
__attribute__((target("avx512f"))) void dot_weight_rows_avx512(const float* x, const void* w, int64_t rows,
                                                               int64_t n, float* out) {
  const size_t row_bytes = static_cast<size_t>(n) * dtype_size(kT);
  const auto* base = static_cast<const std::byte*>(w);
  // One row after another: interleaving four rows per pass (x loaded once for all four) and software
  // prefetch both measured slower on Zen4 (about 40 vs 50 tokens/s on the 0.5B shape), as the hardware
  // prefetcher follows one sequential stream best. Two rows per pass (x loaded once, each row's sum in the
  // same order) measured slower too, on a quiet machine: 36-40 vs 47-50 tokens/s, 3 alternated runs each.
  for (int64_t r = 0; r < rows; ++r) out[r] = dot_weight_avx512(x, base + r * row_bytes, kT, n);
}

__attribute__((target("avx512f"))) void axpy_avx512(float* y, float a, const float* x, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

__attribute__((target("avx512f"))) void scale_avx512(float* y, float a, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(va, _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] *= a;
}

// exp(x) on 16 lanes: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two parts so n ln2 is exact enough),
// e^r by its Taylor polynomial to degree 6 (truncation error below 1.3e-7 relative), times 2^n built in the
// exponent field. x is clamped to [-87.3, 88.3] so 2^n stays a normal float: within ~2 ulp of std::exp
// there, and the clamp only moves results that silu then turns into 0 or x anyway.
__attribute__((target("avx512f"))) inline __m512 exp_avx512(__m512 x) {
  // The constant first: min / max return their second operand when either is NaN, so NaN passes through.
  x = _mm512_min_ps(_mm512_set1_ps(88.3f), _mm512_max_ps(_mm512_set1_ps(-87.3f), x));
  const __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

__attribute__((target("avx512f"))) void softmax_avx512(float* s, int64_t n) {
  int64_t i = 0;
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(s + i));
  float mx = _mm512_reduce_max_ps(vmax);
  for (; i < n; ++i) mx = s[i] > mx ? s[i] : mx;
  const __m512 vmx = _mm512_set1_ps(mx);
  __m512 vsum = _mm512_setzero_ps();
  for (i = 0; i + 16 <= n; i += 16) {
    const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + i), vmx));
    _mm512_storeu_ps(s + i, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  float sum = _mm512_reduce_add_ps(vsum);
  for (; i < n; ++i) sum += s[i] = std::exp(s[i] - mx);
  scale_avx512(s, 1.0f / sum, n);
}

__attribute__((target("avx512f"))) void silu_mul_avx512(const float* gate, const float* up, float* out,
                                                        int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_storeu_ps(out + i,
                     _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// Head dimensions that are multiples of 16 up to 256 keep the whole output row in registers across the block.
template <int kVecs>
__attribute__((target("avx512f"))) void weighted_sum_avx512(const float* w, const float* rows, int64_t count,
                                                            float* out) {
  __m512 acc[kVecs];
  for (int v = 0; v < kVecs; ++v) acc[v] = _mm512_loadu_ps(out + 16 * v);
  for (int64_t r = 0; r < count; ++r) {
    const __m512 wr = _mm512_set1_ps(w[r]);
    const float* row = rows + r * 16 * kVecs;
    for (int v = 0; v < kVecs; ++v) acc[v] = _mm512_fmadd_ps(wr, _mm512_loadu_ps(row + 16 * v), acc[v]);
  }
  for (int v = 0; v < kVecs; ++v) _mm512_storeu_ps(out + 16 * v, acc[v]);
}

// q stays in registers across the block's rows.
template <int kVecs>
__attribute__((target("avx512f"))) void dot_rows_avx512(const float* q, const float* rows, int64_t count,
                                                        float scale, float* out) {
  __m512 qv[kVecs];
  for (int v = 0; v < kVecs; ++v) qv[v] = _mm512_loadu_ps(q + 16 * v);
  for (int64_t r = 0; r < count; ++r) {
    const float* row = rows + r * 16 * kVecs;
    __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(row));
    for (int v = 1; v < kVecs; ++v) acc = _mm512_fmadd_ps(qv[v], _mm512_loadu_ps(row + 16 * v), acc);
    out[r] = _mm512_reduce_add_ps(acc) * scale;
  }
}

// --- AVX2 + FMA + F16C: the same loops eight lanes wide
// -----------------------------------------------------

#define ARK_AVX2 __attribute__((target("avx2,fma,f16c")))

ARK_AVX2 inline __m256 load8(const void* w, DType t, int64_t i) {
  switch (t) {
    case DType::BF16: {
      const __m128i h =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case DType::F16:
      return _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
    default:
      return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  }
}

ARK_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// Four accumulators for the FMA latency, as in the AVX-512 version.
ARK_AVX2 inline float dot_weight_avx2(const float* x, const void* w, DType t, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
         acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), load8(w, t, i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), load8(w, t, i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), load8(w, t, i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), load8(w, t, i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), load8(w, t, i), acc0);
  float sum = hsum8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) sum += x[i] * load_weight(w, t, i);
  return sum;
}

template <DType kT>
ARK_AVX2 void dot_weight_rows_avx2(const float* x, const void* w, int64_t rows, int64_t n, float* out) {
  const size_t row_bytes = static_cast<size_t>(n) * dtype_size(kT);
  const auto* base = static_cast<const std::byte*>(w);
  for (int64_t r = 0; r < rows; ++r) out[r] = dot_weight_avx2(x, base + r * row_bytes, kT, n);
}

ARK_AVX2 void axpy_avx2(float* y, float a, const float* x, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

ARK_AVX2 void scale_avx2(float* y, float a, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] *= a;
}

ARK_AVX2 void widen_avx2(const void* w, DType t, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(w, t, i));
  for (; i < n; ++i) out[i] = load_weight(w, t, i);
}

// exp on 8 lanes, as exp_avx512.
ARK_AVX2 inline __m256 exp_avx2(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(88.3f), _mm256_max_ps(_mm256_set1_ps(-87.3f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

ARK_AVX2 void softmax_avx2(float* s, int64_t n) {
  int64_t i = 0;
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmax);
  float mx = lanes[0];
  for (int j = 1; j < 8; ++j) mx = lanes[j] > mx ? lanes[j] : mx;
  for (; i < n; ++i) mx = s[i] > mx ? s[i] : mx;
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + i), vmx));
    _mm256_storeu_ps(s + i, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  _mm256_store_ps(lanes, vsum);
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) sum += s[i] = std::exp(s[i] - mx);
  scale_avx2(s, 1.0f / sum, n);
}

ARK_AVX2 void silu_mul_avx2(const float* gate, const float* up, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(out + i,
                     _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

#undef ARK_AVX2

// --- portable C++
// -------------------------------------------------------------------------------------------

float dot_weight_portable(const float* x, const void* w, DType t, int64_t n) {
  // Eight partial sums, for the same latency reason as above.
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * load_weight(w, t, i + j);
  float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) sum += x[i] * load_weight(w, t, i);
  return sum;
}

void dot_weight_rows_portable(const float* x, const void* w, DType t, int64_t rows, int64_t n, float* out) {
  const size_t row_bytes = static_cast<size_t>(n) * dtype_size(t);
  for (int64_t r = 0; r < rows; ++r)
    out[r] = dot_weight_portable(x, static_cast<const std::byte*>(w) + r * row_bytes, t, n);
}

void axpy_portable(float* y, float a, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void scale_portable(float* y, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

void widen_portable(const void* w, DType t, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = load_weight(w, t, i);
}

void silu_mul_portable(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void softmax_portable(float* s, int64_t n) {
  float mx = s[0];
  for (int64_t i = 1; i < n; ++i) mx = s[i] > mx ? s[i] : mx;
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += s[i] = std::exp(s[i] - mx);
  scale_portable(s, 1.0f / sum, n);
}

// --- one table per path ------------------------------------------------------------------------------------

// The dtype is resolved here, once per call, so the row loop has no switch.
void dot_weight_rows_avx512_any(const float* x, const void* w, DType t, int64_t rows, int64_t n, float* out) {
  switch (t) {
    case DType::BF16:
      return dot_weight_rows_avx512<DType::BF16>(x, w, rows, n, out);
    case DType::F16:
      return dot_weight_rows_avx512<DType::F16>(x, w, rows, n, out);
    default:
      return dot_weight_rows_avx512<DType::F32>(x, w, rows, n, out);
  }
}

void dot_weight_rows_avx2_any(const float* x, const void* w, DType t, int64_t rows, int64_t n, float* out) {
  switch (t) {
    case DType::BF16:
      return dot_weight_rows_avx2<DType::BF16>(x, w, rows, n, out);
    case DType::F16:
      return dot_weight_rows_avx2<DType::F16>(x, w, rows, n, out);
    default:
      return dot_weight_rows_avx2<DType::F32>(x, w, rows, n, out);
  }
}

constexpr VecOps kPortable{IsaLevel::kRef, dot_weight_portable, dot_weight_rows_portable, axpy_portable,
                           scale_portable, widen_portable,      silu_mul_portable, softmax_portable};
constexpr VecOps kAvx2{IsaLevel::kAvx2, dot_weight_avx2, dot_weight_rows_avx2_any, axpy_avx2, scale_avx2,
                       widen_avx2,      silu_mul_avx2,  softmax_avx2};
// Widening a row (the embedding lookup) is too short to gain from 16 lanes: the AVX2 loop serves.
constexpr VecOps kAvx512{IsaLevel::kAvx512, dot_weight_avx512, dot_weight_rows_avx512_any,
                         axpy_avx512,       scale_avx512,      widen_avx2,
                         silu_mul_avx512,   softmax_avx512};

const VecOps& active_ops() {
  static const VecOps& ops = vec_ops_at(active_isa_level());
  return ops;
}

bool use_avx512() {
  return active_ops().level == IsaLevel::kAvx512;
}
}  // namespace

void dot_rows_f32(const float* q, const float* rows, int64_t count, int64_t n, float scale, float* out) {
  if (use_avx512()) {
    switch (n) {
      case 64:
        return dot_rows_avx512<4>(q, rows, count, scale, out);
      case 128:
        return dot_rows_avx512<8>(q, rows, count, scale, out);
      default:
        break;
    }
  }
  for (int64_t r = 0; r < count; ++r) out[r] = dot_weight(q, rows + r * n, DType::F32, n) * scale;
}

void weighted_sum_rows_f32(const float* w, const float* rows, int64_t count, int64_t n, float* out) {
  if (use_avx512()) {
    switch (n) {
      case 64:
        return weighted_sum_avx512<4>(w, rows, count, out);
      case 128:
        return weighted_sum_avx512<8>(w, rows, count, out);
      default:
        break;
    }
  }
  for (int64_t r = 0; r < count; ++r) axpy_f32(out, w[r], rows + r * n, n);
}

const VecOps& vec_ops_at(IsaLevel level) {
  if (level >= IsaLevel::kAvx512) return kAvx512;
  if (level >= IsaLevel::kAvx2) return kAvx2;
  return kPortable;
}

float dot_weight(const float* x, const void* w, DType t, int64_t n) {
  return active_ops().dot_weight(x, w, t, n);
}

void dot_weight_rows(const float* x, const void* w, DType t, int64_t rows, int64_t n, float* out) {
  active_ops().dot_weight_rows(x, w, t, rows, n, out);
}

float dot_f32(const float* a, const float* b, int64_t n) {
  return dot_weight(a, b, DType::F32, n);
}

void axpy_f32(float* y, float a, const float* x, int64_t n) {
  active_ops().axpy(y, a, x, n);
}

void scale_f32(float* y, float a, int64_t n) {
  active_ops().scale(y, a, n);
}

void widen_to_f32(const void* w, DType t, int64_t n, float* out) {
  if (t == DType::F32) {
    std::memcpy(out, w, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  active_ops().widen(w, t, n, out);
}

void silu_mul_f32(const float* gate, const float* up, float* out, int64_t n) {
  active_ops().silu_mul(gate, up, out, n);
}

void softmax_f32(float* s, int64_t n) {
  active_ops().softmax(s, n);
}

}  // namespace ark::runtime
