// Decode (small-M) kernel, int8 mode, AVX2: the scheme of gemv_qd8_f32_qw_16x32c4__avx512vnni on 8-lane
// registers, one half of the N-tile at a time. The u8 x s8 dot product of 4 codes with 4 activations per lane
// is vpdpbusd where the CPU has AVX-VNNI, else vpmaddubsw + vpmaddwd. vpmaddubsw saturates its int16 pair
// sums: codes below 16 keep them under 2 * 15 * 127 = 3810, so 8-bit codes are split into nibbles (q = lo +
// 16 hi) on that path.
#include <immintrin.h>

#include <algorithm>

#include "kernels/dispatch.h"
#include "kernels/linear_output.h"
#include "kernels/x86/avx2/unpack_quads_avx2.h"

namespace ark {
namespace {

using x86::load_half_scales_avx2;
using x86::load_half_zeros_avx2;
using x86::unpack_half_quads_avx2;

constexpr int kRows = 2;

template <bool kVnni>
inline __m256i dot_u8s8(__m256i acc, __m256i u8, __m256i s8) {
  if constexpr (kVnni) {
    return _mm256_dpbusd_avx_epi32(acc, u8, s8);
  } else {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u8, s8), _mm256_set1_epi16(1)));
  }
}

inline __m256i broadcast_quad(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

template <int kBits, bool kVnni, int R>
void tile_rows(const PackedWeight& w, const LinearArgs& a, int64_t m0, int64_t tile) {
  constexpr bool kSplit = kBits == 8 && !kVnni;  // nibble split against vpmaddubsw saturation
  const int64_t G = w.num_groups;
  const size_t block_bytes = w.block_bytes();
  const uint8_t* codes = w.tile_codes(tile);
  const int8_t* xq[R];
  for (int r = 0; r < R; ++r) xq[r] = a.xq + (m0 + r) * a.ldxq;
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  alignas(32) float out[R][kTileN];
  for (int h = 0; h < 2; ++h) {
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t g = 0; g < G; ++g) {
      const int64_t b0 = w.group_block_begin[g], b1 = w.group_block_begin[g + 1];
      __m256i dot[R][2];
      for (int r = 0; r < R; ++r) dot[r][0] = dot[r][1] = _mm256_setzero_si256();
      for (int64_t b = b0; b < b1; ++b) {
        __m256i quads[8];
        unpack_half_quads_avx2<kBits>(codes + b * block_bytes, h, quads);
        for (int q = 0; q < 8; ++q)
          for (int r = 0; r < R; ++r) {
            const __m256i xv = broadcast_quad(xq[r] + b * kBlockK + 4 * q);
            if constexpr (kSplit) {
              dot[r][0] = dot_u8s8<false>(dot[r][0], _mm256_and_si256(quads[q], nibble), xv);
              dot[r][1] =
                  dot_u8s8<false>(dot[r][1], _mm256_and_si256(_mm256_srli_epi16(quads[q], 4), nibble), xv);
            } else {
              dot[r][q & 1] = dot_u8s8<kVnni>(dot[r][q & 1], quads[q], xv);
            }
          }
      }
      const __m256 s = load_half_scales_avx2(w, tile, g, h);
      const __m256 z = _mm256_cvtepi32_ps(load_half_zeros_avx2(w, tile, g, h));
      for (int r = 0; r < R; ++r) {
        const int64_t mg = (m0 + r) * G + g;
        const __m256i d = kSplit ? _mm256_add_epi32(dot[r][0], _mm256_slli_epi32(dot[r][1], 4))
                                 : _mm256_add_epi32(dot[r][0], dot[r][1]);
        const __m256 corrected =
            _mm256_fnmadd_ps(z, _mm256_set1_ps(static_cast<float>(a.xq_sum[mg])), _mm256_cvtepi32_ps(d));
        acc[r] = _mm256_fmadd_ps(corrected, _mm256_mul_ps(s, _mm256_set1_ps(a.x_scale[mg])), acc[r]);
      }
    }
    for (int r = 0; r < R; ++r) _mm256_store_ps(out[r] + 8 * h, acc[r]);
  }
  for (int r = 0; r < R; ++r) store_linear_outputs(a, m0 + r, tile * kTileN, tile_rows(w, tile), out[r]);
}

template <int kBits, bool kVnni>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    int64_t m = m_begin;
    for (; m + kRows <= m_end; m += kRows) tile_rows<kBits, kVnni, kRows>(w, a, m, tile);
    if (m < m_end) tile_rows<kBits, kVnni, 1>(w, a, m, tile);
  }
}

template <bool kVnni>
void run_any(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
             int64_t tile_end) {
  switch (w.bits) {
    case 2:
      return run<2, kVnni>(w, a, m_begin, m_end, tile_begin, tile_end);
    case 3:
      return run<3, kVnni>(w, a, m_begin, m_end, tile_begin, tile_end);
    case 4:
      return run<4, kVnni>(w, a, m_begin, m_end, tile_begin, tile_end);
    default:
      return run<8, kVnni>(w, a, m_begin, m_end, tile_begin, tile_end);
  }
}

bool accepts_vnni(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx2 && p.avx_vnni && p.mode == ComputeMode::kInt8;
}
bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx2 && p.mode == ComputeMode::kInt8;
}

}  // namespace

extern const LinearImpl kGemvQd8AvxVnni = {"gemv_qd8_f32_qw_16x32c4__avxvnni", accepts_vnni, run_any<true>,
                                           0};
extern const LinearImpl kGemvQd8Avx2 = {"gemv_qd8_f32_qw_16x32c4__avx2", accepts, run_any<false>, 0};

}  // namespace ark
