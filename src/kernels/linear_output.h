// The epilogue every linear kernel shares: add the bias and store one row's outputs in the output dtype.
// Kernels call it once per (row, tile) with up to 16 fp32 values, so its scalar conversions cost nothing next
// to the K-long dot products that produced them.
#pragma once

#include <cstdint>
#include <cstring>

#include "ark/dtype.h"
#include "kernels/dispatch.h"

namespace ark {

inline void store_linear_outputs(const LinearArgs& a, int64_t m, int64_t n0, int64_t count,
                                 const float* vals) {
  const int64_t at = m * a.ldy + n0;
  switch (a.y_dtype) {
    case DType::F32: {
      float* y = static_cast<float*>(a.y) + at;
      for (int64_t i = 0; i < count; ++i) y[i] = vals[i] + (a.bias ? a.bias[n0 + i] : 0.0f);
      break;
    }
    case DType::BF16: {
      uint16_t* y = static_cast<uint16_t*>(a.y) + at;
      for (int64_t i = 0; i < count; ++i) y[i] = float_to_bf16(vals[i] + (a.bias ? a.bias[n0 + i] : 0.0f));
      break;
    }
    default: {  // F16, the only other dtype forward() lets through
      uint16_t* y = static_cast<uint16_t*>(a.y) + at;
      for (int64_t i = 0; i < count; ++i) y[i] = float_to_fp16(vals[i] + (a.bias ? a.bias[n0 + i] : 0.0f));
      break;
    }
  }
}

// Rows of the tile that exist (the last tile may be partial).
inline int64_t tile_rows(const PackedWeight& w, int64_t tile) {
  const int64_t left = w.n - tile * kTileN;
  return left < kTileN ? left : kTileN;
}

}  // namespace ark
