// Decode (small-M) kernel, int8 mode, AVX2: the scheme of gemv_qd8_f32_qw_16x32c4__avx512vnni on 8-lane
// registers, one half of the N-tile at a time. The u8 x s8 dot product of 4 codes with 4 activations per lane
// is vpdpbusd where the CPU has AVX-VNNI, else vpmaddubsw + vpmaddwd. vpmaddubsw saturates its int16 pair
// sums: codes below 16 keep them under 2 * 15 * 127 = 3810, so 8-bit codes are split into nibbles (q = lo +
// 16 hi) on that path, and a k-block's 8 of them are added in int16 before one vpmaddwd widens them. Each
// quad is used as soon as it is unpacked (for_each_half_quad_avx2), which keeps the hot loop inside the 16
// ymm registers.
#include <immintrin.h>

#include <algorithm>

#include "kernels/dispatch.h"
#include "kernels/linear_output.h"
#include "kernels/x86/avx2/unpack_quads_avx2.h"

namespace ark {
namespace {

using x86::for_each_half_quad_avx2;
using x86::load_half_scales_avx2;
using x86::load_half_zeros_avx2;

constexpr int kRows = 2;
// Software prefetch distance for the codes. Quads used as they are unpacked issue the block's loads later in
// the loop than unpacking all 8 first did; one line ahead per chunk measured +9-13% at M = 1 (one core, codes
// streamed from beyond L2: 53-56 -> 59-63 GFLOP/s in thread CPU time), no change at M = 16. 4 KiB ahead
// rather than 2 (as the AVX-512 decode kernels): the int4 layers of a Qwen2.5-0.5B decode step at
// ARK_ISA=avx2, one Zen 4 thread, 12.55-12.64 -> 11.92-12.23 ms thread CPU time in 3 alternated rounds (1
// KiB: mixed).
constexpr int kPrefetchBytes = 4096;

// acc + v in int16 lanes as one instruction the compiler cannot reassociate: GCC otherwise rewrites a block's
// 8 (16 split) additions into a tree over all the products at once, more live values than 16 ymm registers
// hold (it then spills them in the hot loop).
inline __m256i add16_chain(__m256i acc, __m256i v) {
  asm("vpaddw %1, %0, %0" : "+x"(acc) : "x"(v));
  return acc;
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
        // Each quad's dot products as soon as it is unpacked: one quad live at a time, so the accumulators
        // and constants keep their registers (all 8 quads unpacked first took 120 ymm stack moves per hot
        // loop at -O3). vpmaddubsw's int16 pair sums are at most 2 * 15 * 127 = 3810 (codes below 16), so a
        // block's 8 of them add up in int16 without wrapping (30480 < 32767), then one vpmaddwd widens them;
        // every sum is an exact integer, so the outputs do not depend on this order.
        constexpr int kHalves = kSplit ? 2 : 1;  // int16 sums per row: low and high nibbles when split
        __m256i s16[R][kHalves];
#pragma GCC unroll 2
        for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
          for (int j = 0; j < kHalves; ++j) s16[r][j] = _mm256_setzero_si256();
        }
        if (h == 0) {  // the first half's pass brings each line in; the second finds it in L1/L2
#pragma GCC unroll 8
          for (int c = 0; c < kBits; ++c)  // a block is kBits 64-byte chunks
            _mm_prefetch(reinterpret_cast<const char*>(codes + b * block_bytes + kPrefetchBytes + 64 * c),
                         _MM_HINT_T0);
        }
        for_each_half_quad_avx2<kBits>(codes + b * block_bytes, h, [&](int q, __m256i quad) {
#pragma GCC unroll 2
          for (int r = 0; r < R; ++r) {
            const __m256i xv = broadcast_quad(xq[r] + b * kBlockK + 4 * q);
            if constexpr (kVnni) {
              dot[r][q & 1] = _mm256_dpbusd_avx_epi32(dot[r][q & 1], quad, xv);
            } else if constexpr (kSplit) {
              s16[r][0] = add16_chain(s16[r][0], _mm256_maddubs_epi16(_mm256_and_si256(quad, nibble), xv));
              s16[r][kHalves - 1] =
                  add16_chain(s16[r][kHalves - 1],
                              _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(quad, 4), nibble), xv));
            } else {
              s16[r][0] = add16_chain(s16[r][0], _mm256_maddubs_epi16(quad, xv));
            }
          }
        });
        if constexpr (!kVnni) {
          const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 2
          for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
            for (int j = 0; j < kHalves; ++j)
              dot[r][j] = _mm256_add_epi32(dot[r][j], _mm256_madd_epi16(s16[r][j], ones));
          }
        }
      }
      const __m256 s = load_half_scales_avx2(w, tile, g, h);
      const __m256 z = _mm256_cvtepi32_ps(load_half_zeros_avx2(w, tile, g, h));
      for (int r = 0; r < R; ++r) {
        const int64_t mg = (m0 + r) * G + g;
        // (dot[r][1] holds the high nibbles when split, the odd quads with VNNI, and stays 0 otherwise.)
        const __m256i d = kSplit  ? _mm256_add_epi32(dot[r][0], _mm256_slli_epi32(dot[r][1], 4))
                          : kVnni ? _mm256_add_epi32(dot[r][0], dot[r][1])
                                  : dot[r][0];
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
