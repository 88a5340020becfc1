// Small vector helpers for the runtime's own arithmetic (attention, norms, unquantized linears). They pick
// AVX-512 F, else AVX2 + FMA + F16C, once per process as the CPU and OS allow (and ARK_ISA caps), else
// portable C++.
// Weight operands may be fp32, bf16 or fp16 as the checkpoint stores them; they are widened to fp32 exactly,
// so every product and sum is fp32 whatever the storage.
#pragma once

#include <cstdint>

#include "ark/dtype.h"
#include "kernels/cpu_features.h"

namespace ark::runtime {

// sum_i a[i] * b[i]
float dot_f32(const float* a, const float* b, int64_t n);
// sum_i x[i] * w[i], w of dtype F32, BF16 or F16.
float dot_weight(const float* x, const void* w, DType w_dtype, int64_t n);
// out[r] = sum_i x[i] * w[r * n + i] for r < rows, w of dtype F32, BF16 or F16: a GEMV over consecutive
// weight rows. Several rows share each load of x and one horizontal reduction, so it streams at memory speed.
void dot_weight_rows(const float* x, const void* w, DType w_dtype, int64_t rows, int64_t n, float* out);
// y[i] += a * x[i]
void axpy_f32(float* y, float a, const float* x, int64_t n);
// y[i] *= a
void scale_f32(float* y, float a, int64_t n);
// out[r] = scale * dot(q, rows + r * n, n) for r < count (attention scores over one KV block).
void dot_rows_f32(const float* q, const float* rows, int64_t count, int64_t n, float scale, float* out);
// out[i] += sum_r w[r] * rows[r * n + i] (attention's weighted sum of one KV block's values).
void weighted_sum_rows_f32(const float* w, const float* rows, int64_t count, int64_t n, float* out);
// out[i] = (float) w[i], w of dtype F32, BF16 or F16.
void widen_to_f32(const void* w, DType w_dtype, int64_t n, float* out);
// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)) (the gated MLP); out may alias gate or up.
// The vector paths compute exp with a polynomial within ~2 ulp of std::exp.
void silu_mul_f32(const float* gate, const float* up, float* out, int64_t n);
// s[i] = exp(s[i] - max) / sum_j exp(s[j] - max) in place, n >= 1 (attention's scores). The vector paths use
// the same polynomial exp; with std::exp per score a decode step's attention took 1.3-3x as long
// (bench/cpu_time/attention_decode.cpp, docs/PERFORMANCE.md).
void softmax_f32(float* s, int64_t n);

// One path's implementations. The functions above use vec_ops_at(active_isa_level()); tests call each path
// the CPU has directly, so one process checks them all.
struct VecOps {
  IsaLevel level;  // kRef (portable), kAvx2 or kAvx512
  float (*dot_weight)(const float* x, const void* w, DType w_dtype, int64_t n);
  void (*dot_weight_rows)(const float* x, const void* w, DType w_dtype, int64_t rows, int64_t n, float* out);
  void (*axpy)(float* y, float a, const float* x, int64_t n);
  void (*scale)(float* y, float a, int64_t n);
  void (*widen)(const void* w, DType w_dtype, int64_t n, float* out);
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t n);
  void (*softmax)(float* s, int64_t n);
};
// The path for `level` (AVX-512 for every level from kAvx512 up); the caller makes sure the CPU has it.
const VecOps& vec_ops_at(IsaLevel level);

}  // namespace ark::runtime
