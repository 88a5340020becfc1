// Writes 16 finished fp32 outputs (one N-tile row segment) to y in the caller's dtype, adding the bias, with
// a lane mask so columns past N are never written. Shared by the AVX-512 GEMMs; include only from AVX-512
// units (internal linkage, see unpack_quads_avx512.h).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "ark/dtype.h"
#include "kernels/dispatch.h"
#include "linear/packed_weight.h"

namespace ark::x86 {
namespace {

// fp32 -> bf16 with round-to-nearest-even (what torch does), in integer ops so it needs no AVX-512-BF16.
// Inputs are finite kernel outputs, so NaN handling is not needed here.
inline __m256i cvt_f32_bf16_rne_avx512(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  return _mm512_cvtepi32_epi16(r);
}

// y_row points at y[m][n0]; lanes >= valid are not written.
inline void store_output_row_avx512(__m512 v, const float* bias, DType dtype, void* y_row, int valid) {
  const __mmask16 mask = valid >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << valid) - 1u);
  if (bias != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias));
  switch (dtype) {
    case DType::F32:
      _mm512_mask_storeu_ps(y_row, mask, v);
      break;
    case DType::BF16:
      _mm256_mask_storeu_epi16(y_row, mask, cvt_f32_bf16_rne_avx512(v));
      break;
    default:  // F16, validated by the layer
      _mm256_mask_storeu_epi16(y_row, mask,
                               _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      break;
  }
}

inline size_t dtype_bytes_for_output(DType dtype) {
  return dtype == DType::F32 ? 4 : 2;
}

// Writes a finished block of fp32 sums to y: rows [m0, m1) of nv N-tiles from tile t0, laid out as
// sums[(m - m0) * panel_n + v * kTileN + lane]. The common last step of the GEMMs that accumulate a row block
// x N-panel in scratch.
inline void store_panel_avx512(const PackedWeight& w, const LinearArgs& a, const float* sums, int64_t panel_n,
                               int64_t m0, int64_t m1, int64_t t0, int nv) {
  const size_t y_elem = dtype_bytes_for_output(a.y_dtype);
  for (int64_t m = m0; m < m1; ++m) {
    for (int v = 0; v < nv; ++v) {
      const int64_t n0 = (t0 + v) * kTileN;
      const int valid = static_cast<int>(std::min<int64_t>(kTileN, w.n - n0));
      auto* y_row = static_cast<uint8_t*>(a.y) + (m * a.ldy + n0) * y_elem;
      store_output_row_avx512(_mm512_load_ps(sums + (m - m0) * panel_n + v * kTileN),
                              a.bias ? a.bias + n0 : nullptr, a.y_dtype, y_row, valid);
    }
  }
}

}  // namespace
}  // namespace ark::x86
