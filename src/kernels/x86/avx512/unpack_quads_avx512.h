// Unpacks one k-block of the packed weight layout (src/linear/packed_weight.h) into its 8 quads, each a zmm
// of 16 dwords (one per row of the N-tile) holding 4 consecutive unsigned codes: the vpdpbusd operand, and
// the starting point of every GEMM's dequantization. Also loads one (tile, group)'s 16 scales and zero
// points.
//
// Include only from translation units built with AVX-512 F/BW flags
// (src/kernels/x86/{avx512,vnni,bf16,amx}/). Everything here has internal linkage: each ISA's translation
// unit gets its own copy, so the linker can never hand an AVX-512 body to code that runs on a lesser CPU.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "linear/packed_weight.h"

namespace ark::x86 {
namespace {

// quads[q] = codes for k = 4q..4q+3 of the block, as bytes 0..3 of each of the 16 row dwords.
template <int kBits>
inline void unpack_block_quads_avx512(const uint8_t* block, __m512i quads[8]) {
  static_assert(kBits == 2 || kBits == 3 || kBits == 4 || kBits == 8);
  auto chunk = [&](int c) { return _mm512_load_si512(block + c * kChunkBytes); };
  // The loops carry unroll pragmas: at -O2 GCC 12 leaves them rolled, so the caller's quads array lives in
  // memory (each quad stored here and reloaded by the dot products); unrolled, the quads stay in registers.
  if constexpr (kBits == 8) {
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q) quads[q] = chunk(q);
  } else if constexpr (kBits == 4) {
    const __m512i mask = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m512i v = chunk(c);
      quads[c] = _mm512_and_si512(v, mask);
      // 16-bit shifts move nibbles across byte borders too; the mask drops what came from the next byte.
      quads[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
    }
  } else {
    // bits 2 and the low two bits of bits 3: chunk c, bit pair p holds quad c + 2p.
    const __m512i mask = _mm512_set1_epi8(0x03);
#pragma GCC unroll 2
    for (int c = 0; c < 2; ++c) {
      const __m512i v = chunk(c);
      quads[c] = _mm512_and_si512(v, mask);
      quads[c + 2] = _mm512_and_si512(_mm512_srli_epi16(v, 2), mask);
      quads[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
      quads[c + 6] = _mm512_and_si512(_mm512_srli_epi16(v, 6), mask);
    }
    if constexpr (kBits == 3) {
      // Bit p of every byte of chunk 2 is bit 2 of quad p: shift it to bit 2 of the byte and or it in.
      const __m512i v = chunk(2);
      const __m512i bit2 = _mm512_set1_epi8(0x04);
      quads[0] = _mm512_or_si512(quads[0], _mm512_and_si512(_mm512_slli_epi16(v, 2), bit2));
      quads[1] = _mm512_or_si512(quads[1], _mm512_and_si512(_mm512_slli_epi16(v, 1), bit2));
      quads[2] = _mm512_or_si512(quads[2], _mm512_and_si512(v, bit2));
#pragma GCC unroll 5
      for (int q = 3; q < 8; ++q)
        quads[q] = _mm512_or_si512(quads[q], _mm512_and_si512(_mm512_srli_epi16(v, q - 2), bit2));
    }
  }
}

// The 16 scales of (tile, group) as fp32.
inline __m512 load_tile_scales_avx512(const PackedWeight& w, int64_t tile, int64_t group) {
  const uint8_t* p = w.tile_scales(tile) + static_cast<size_t>(group) * kTileN * w.scale_bytes();
  if (w.scales_f16) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_loadu_ps(p);
}

// The 16 zero points of (tile, group) as int32.
inline __m512i load_tile_zeros_avx512(const PackedWeight& w, int64_t tile, int64_t group) {
  const uint8_t* p = w.tile_zeros(tile) + static_cast<size_t>(group) * kTileN * w.zero_bytes();
  if (w.bits == 8) return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The group that packed k-block `block` belongs to, found by walking forward from `g` (blocks are visited in
// increasing order, so the walk is amortised O(1)).
inline int64_t group_of_block(const PackedWeight& w, int64_t block, int64_t g) {
  while (w.group_block_begin[static_cast<size_t>(g + 1)] <= block) ++g;
  return g;
}

}  // namespace
}  // namespace ark::x86
