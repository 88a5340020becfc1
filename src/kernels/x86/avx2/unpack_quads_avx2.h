// AVX2 view of the packed layout (src/linear/packed_weight.h): a 64-byte chunk is two 32-byte halves, rows
// 0..7 and rows 8..15 of the N-tile, so an AVX2 kernel works on one half at a time with the same shifts and
// masks the AVX-512 kernels use. Include only from src/kernels/x86/avx2/ (internal linkage: each unit gets
// its own copy).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "linear/packed_weight.h"

namespace ark::x86 {
namespace {

// quads[q] = codes for k = 4q..4q+3 of the block, rows 8h..8h+7, one dword per row.
template <int kBits>
inline void unpack_half_quads_avx2(const uint8_t* block, int h, __m256i quads[8]) {
  auto chunk = [&](int c) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(block + c * kChunkBytes + 32 * h));
  };
  // Unroll pragmas as in unpack_quads_avx512.h: rolled (GCC 12 at -O2), the quads go through memory.
  if constexpr (kBits == 8) {
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q) quads[q] = chunk(q);
  } else if constexpr (kBits == 4) {
    const __m256i mask = _mm256_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m256i v = chunk(c);
      quads[c] = _mm256_and_si256(v, mask);
      quads[c + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
    }
  } else {
    const __m256i mask = _mm256_set1_epi8(0x03);
#pragma GCC unroll 2
    for (int c = 0; c < 2; ++c) {
      const __m256i v = chunk(c);
#pragma GCC unroll 4
      for (int p = 0; p < 4; ++p) quads[c + 2 * p] = _mm256_and_si256(_mm256_srli_epi16(v, 2 * p), mask);
    }
    if constexpr (kBits == 3) {
      const __m256i v = chunk(2);
      const __m256i bit2 = _mm256_set1_epi8(0x04);
      quads[0] = _mm256_or_si256(quads[0], _mm256_and_si256(_mm256_slli_epi16(v, 2), bit2));
      quads[1] = _mm256_or_si256(quads[1], _mm256_and_si256(_mm256_slli_epi16(v, 1), bit2));
      quads[2] = _mm256_or_si256(quads[2], _mm256_and_si256(v, bit2));
#pragma GCC unroll 5
      for (int q = 3; q < 8; ++q)
        quads[q] = _mm256_or_si256(quads[q], _mm256_and_si256(_mm256_srli_epi16(v, q - 2), bit2));
    }
  }
}

// The same quads as unpack_half_quads_avx2, handed to fn(q, quad) one at a time in the order they come out
// of the chunks (4-bit: 0, 4, 1, 5, ...), so a kernel can use each quad as it is unpacked and never hold all
// 8: the AVX2 int8 gemv does, since 8 quads plus its dot accumulators and constants overflow the 16 ymm
// registers (GCC then moves quads through the stack in the hot loop). q is a constant once the loops here are
// unrolled (the pragmas) and fn is inlined.
template <int kBits, class Fn>
inline void for_each_half_quad_avx2(const uint8_t* block, int h, Fn&& fn) {
  auto chunk = [&](int c) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(block + c * kChunkBytes + 32 * h));
  };
  if constexpr (kBits == 8) {
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q) fn(q, chunk(q));
  } else if constexpr (kBits == 4) {
    const __m256i mask = _mm256_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m256i v = chunk(c);
      fn(c, _mm256_and_si256(v, mask));
      fn(c + 4, _mm256_and_si256(_mm256_srli_epi16(v, 4), mask));
    }
  } else {
    const __m256i mask = _mm256_set1_epi8(0x03);
#pragma GCC unroll 2
    for (int c = 0; c < 2; ++c) {
      const __m256i v = chunk(c);
#pragma GCC unroll 4
      for (int p = 0; p < 4; ++p) {
        const int q = c + 2 * p;
        __m256i quad = _mm256_and_si256(_mm256_srli_epi16(v, 2 * p), mask);
        if constexpr (kBits == 3) {
          // Bit 2 of quad q sits at bit q of each byte of chunk 2 (as in unpack_half_quads_avx2).
          const __m256i v2 = chunk(2), bit2 = _mm256_set1_epi8(0x04);
          const __m256i moved = q == 0   ? _mm256_slli_epi16(v2, 2)
                                : q == 1 ? _mm256_slli_epi16(v2, 1)
                                : q == 2 ? v2
                                         : _mm256_srli_epi16(v2, q - 2);
          quad = _mm256_or_si256(quad, _mm256_and_si256(moved, bit2));
        }
        fn(q, quad);
      }
    }
  }
}

// Scales (as fp32) and zero points (as int32) of rows 8h..8h+7 of (tile, group).
inline __m256 load_half_scales_avx2(const PackedWeight& w, int64_t tile, int64_t group, int h) {
  const uint8_t* p = w.tile_scales(tile) + (static_cast<size_t>(group) * kTileN + 8 * h) * w.scale_bytes();
  if (w.scales_f16) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
}

inline __m256i load_half_zeros_avx2(const PackedWeight& w, int64_t tile, int64_t group, int h) {
  const uint8_t* p = w.tile_zeros(tile) + (static_cast<size_t>(group) * kTileN + 8 * h) * w.zero_bytes();
  if (w.bits == 8) return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

}  // namespace
}  // namespace ark::x86
