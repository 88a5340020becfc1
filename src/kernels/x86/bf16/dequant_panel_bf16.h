// Dequantizes one N-tile's k-blocks of the packed layout into a bf16 "pair panel" [k-pair][kPanelN][2]: one
// 64-byte row holds the (k, k+1) pairs of 16 columns, which is both the second operand of vdpbf16ps and, read
// 16 rows at a time, an AMX-BF16 B tile. Values are s * q - s * z computed in fp32 and rounded once to bf16.
//
// Include only from units built with AVX-512-BF16 flags (src/kernels/x86/{bf16,amx}/); internal linkage, see
// kernels/x86/avx512/unpack_quads_avx512.h.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/x86/avx512/unpack_quads_avx512.h"
#include "linear/packed_weight.h"

namespace ark::x86 {
namespace {

// Dequantizes k-blocks [kb0, kb0 + nb) of tile `tile` into panel columns [16 v, 16 v + 16); k-block kb0 + b
// fills pairs [16 b, 16 b + 16) of the panel.
template <int kBits, int kPanelN>
inline void dequant_tile_bf16(const PackedWeight& w, int64_t tile, int64_t kb0, int nb, int v,
                              uint16_t* panel) {
  // vpermw index that interleaves [a0..a15, b0..b15] into [a0 b0 a1 b1 ...]: the (k, k+1) pair per column.
  alignas(64) static constexpr uint16_t kInterleave[32] = {0,  16, 1,  17, 2,  18, 3,  19, 4,  20, 5,
                                                           21, 6,  22, 7,  23, 8,  24, 9,  25, 10, 26,
                                                           11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i interleave = _mm512_load_si512(kInterleave);
  const __m512i byte_mask = _mm512_set1_epi32(0xff);
  const uint8_t* codes = w.tile_codes(tile);
  int64_t g = group_of_block(w, kb0, 0);
  for (int b = 0; b < nb; ++b) {
    g = group_of_block(w, kb0 + b, g);
    const __m512 s = load_tile_scales_avx512(w, tile, g);
    // -z * s, so one fma per code gives s * q - s * z.
    const __m512 neg_zs = _mm512_mul_ps(_mm512_cvtepi32_ps(load_tile_zeros_avx512(w, tile, g)),
                                        _mm512_sub_ps(_mm512_setzero_ps(), s));
    __m512i quads[8];
    unpack_block_quads_avx512<kBits>(codes + (kb0 + b) * w.block_bytes(), quads);
    for (int q = 0; q < 8; ++q) {
      __m512 f[4];
      for (int j = 0; j < 4; ++j) {
        const __m512i c = _mm512_and_si512(_mm512_srli_epi32(quads[q], 8 * j), byte_mask);
        f[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), s, neg_zs);
      }
      // Pair index within the panel: block b, quad q -> pairs 16b + 2q and 16b + 2q + 1.
      for (int h = 0; h < 2; ++h) {
        const __m512i packed = (__m512i)_mm512_cvtne2ps_pbh(f[2 * h + 1], f[2 * h]);
        const int64_t pair = 16 * b + 2 * q + h;
        _mm512_store_si512(panel + (pair * kPanelN + v * kTileN) * 2,
                           _mm512_permutexvar_epi16(interleave, packed));
      }
    }
  }
}

}  // namespace
}  // namespace ark::x86
