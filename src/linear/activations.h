// Preparing one forward's activations for the kernels: convert to fp32, gather into packed-K order (act-order
// permutation and per-group padding, see packed_weight.h) and, in int8 mode, quantize per row and group.
#pragma once

#include <cstdint>

#include "ark/dtype.h"
#include "kernels/cpu_features.h"
#include "linear/packed_weight.h"

namespace ark {

// Rows [m0, m1) of x ([M][k] in dtype) into xf ([M][ldx] fp32, packed-K order, padding 0).
void gather_activation_rows(const PackedWeight& w, const void* x, DType dtype, int64_t m0, int64_t m1,
                            float* xf, int64_t ldx);

// Quantizes rows [m0, m1) of xf (packed-K order) per group: scale[m*G+g] = max|x| / 127 over the group,
// xq = round-half-even(x * 127 / max|x|) in [-127, 127], sum[m*G+g] = sum of the group's xq. An all-zero
// group gets scale 0 and codes 0. Vectorised where the ISA allows (chosen once per process).
using QuantizeRowsFn = void (*)(const PackedWeight& w, const float* xf, int64_t ldx, int64_t m0, int64_t m1,
                                int8_t* xq, int64_t ldxq, float* scale, int32_t* sum);
void quantize_activation_rows_ref(const PackedWeight& w, const float* xf, int64_t ldx, int64_t m0, int64_t m1,
                                  int8_t* xq, int64_t ldxq, float* scale, int32_t* sum);

// The same, vectorised (src/kernels/x86/avx512/); bit-identical to the reference. Needs IsaLevel::kAvx512.
void quantize_activation_rows_avx512(const PackedWeight& w, const float* xf, int64_t ldx, int64_t m0,
                                     int64_t m1, int8_t* xq, int64_t ldxq, float* scale, int32_t* sum);

// The fastest quantize_rows for an ISA level (kernels/dispatch.cpp).
QuantizeRowsFn select_quantize_rows(IsaLevel isa);

}  // namespace ark
