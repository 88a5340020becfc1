// int8 activation quantization per row and group, AVX-512: the same arithmetic as
// quantize_activation_rows_ref (linear/activations.cpp), so the result is bit-identical. Every step is exact
// or rounded the same way in both: max|x| is a max of exact absolute values (order does not matter), the
// scale factor 127 / max|x| is one scalar division, x * factor is one fp32 multiply per element, vcvtps2dq
// rounds under the default MXCSR mode (round half to even) exactly like nearbyint, and the sum is in int32.
//
// Why vectorise: at M = 1 the scalar loop (two passes, nearbyint per element) took a visible share of a small
// layer's forward (several microseconds on a 4864-wide row against tens for the whole layer).
// GCC 12 reports its own intrinsics' _mm512_undefined_*() placeholders as maybe-uninitialized once inlined
// (the reductions); the values are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include "linear/activations.h"

namespace ark {

void quantize_activation_rows_avx512(const PackedWeight& w, const float* xf, int64_t ldx, int64_t m0,
                                     int64_t m1, int8_t* xq, int64_t ldxq, float* scale, int32_t* sum) {
  const int64_t G = w.num_groups;
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t m = m0; m < m1; ++m) {
    const float* x = xf + m * ldx;
    int8_t* q = xq + m * ldxq;
    for (int64_t g = 0; g < G; ++g) {
      // Groups span whole k-blocks of 32, so every group is a whole number of 16-float vectors.
      const int64_t kp0 = static_cast<int64_t>(w.group_block_begin[g]) * kBlockK;
      const int64_t kp1 = static_cast<int64_t>(w.group_block_begin[g + 1]) * kBlockK;
      __m512 vmax0 = _mm512_setzero_ps(), vmax1 = _mm512_setzero_ps();
      for (int64_t i = kp0; i < kp1; i += 32) {
        vmax0 = _mm512_max_ps(vmax0, _mm512_and_ps(_mm512_loadu_ps(x + i), abs_mask));
        vmax1 = _mm512_max_ps(vmax1, _mm512_and_ps(_mm512_loadu_ps(x + i + 16), abs_mask));
      }
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(vmax0, vmax1));
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      const __m512 vinv = _mm512_set1_ps(inv);
      __m512i vsum = _mm512_setzero_si512();
      for (int64_t i = kp0; i < kp1; i += 16) {
        const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vinv));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(v));
        vsum = _mm512_add_epi32(vsum, v);
      }
      scale[m * G + g] = amax / 127.0f;
      sum[m * G + g] = _mm512_reduce_add_epi32(vsum);
    }
  }
}

}  // namespace ark
