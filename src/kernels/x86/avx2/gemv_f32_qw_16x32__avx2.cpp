// Decode (small-M) kernel, exact mode, AVX2 + FMA: the AVX-512 exact kernel's scheme
// (gemv_f32_qw_16x32__avx512) on 8-lane registers, one half of the N-tile (8 rows) at a time: unpack the
// half's quads, pull byte j of every row dword out with vpshufb, (q - z) in int32, convert, FMA into the
// rows' accumulators.
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

constexpr int kRows = 2;  // 16 ymm registers: 2 rows x 2 accumulators + 8 quads + constants
constexpr int kAcc = 2;

inline __m256i byte_select(int j) {
  auto c = [j](int d) { return static_cast<int>(0x80808000u | static_cast<uint32_t>(4 * d + j)); };
  return _mm256_setr_epi32(c(0), c(1), c(2), c(3), c(0), c(1), c(2), c(3));
}

// The loops over rows, partial sums and bytes carry unroll pragmas (GCC 12 left the byte loop rolled at -O2,
// its partial sums going through memory). The quad loop is kept rolled on purpose: unrolled, all 8 quads
// are live at once and with the 4 byte selectors, zeros and partial sums exceed the 16 ymm registers
// (46 stack moves in the hot loop); rolled, each trip reloads one quad the unpack stored, and the loop
// body is the same at -O2 and -O3.
template <int kBits, int R>
void tile_rows(const PackedWeight& w, const LinearArgs& a, int64_t m0, int64_t tile) {
  const int64_t G = w.num_groups;
  const size_t block_bytes = w.block_bytes();
  const uint8_t* codes = w.tile_codes(tile);
  const float* x[R];
#pragma GCC unroll 2
  for (int r = 0; r < R; ++r) x[r] = a.x + (m0 + r) * a.ldx;
  alignas(32) float out[R][kTileN];
  for (int h = 0; h < 2; ++h) {
    __m256 acc[R];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t g = 0; g < G; ++g) {
      const int64_t b0 = w.group_block_begin[g], b1 = w.group_block_begin[g + 1];
      const __m256i z = load_half_zeros_avx2(w, tile, g, h);
      __m256 part[R][kAcc];
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
        for (int i = 0; i < kAcc; ++i) part[r][i] = _mm256_setzero_ps();
      for (int64_t b = b0; b < b1; ++b) {
        __m256i quads[8];
        unpack_half_quads_avx2<kBits>(codes + b * block_bytes, h, quads);
#pragma GCC unroll 1
        for (int q = 0; q < 8; ++q)
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j) {
            const __m256 wv =
                _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_shuffle_epi8(quads[q], byte_select(j)), z));
            const int64_t kp = b * kBlockK + 4 * q + j;
#pragma GCC unroll 2
            for (int r = 0; r < R; ++r)
              part[r][j % kAcc] = _mm256_fmadd_ps(wv, _mm256_broadcast_ss(x[r] + kp), part[r][j % kAcc]);
          }
      }
      const __m256 s = load_half_scales_avx2(w, tile, g, h);
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_add_ps(part[r][0], part[r][1]), s, acc[r]);
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) _mm256_store_ps(out[r] + 8 * h, acc[r]);
  }
  for (int r = 0; r < R; ++r) store_linear_outputs(a, m0 + r, tile * kTileN, tile_rows(w, tile), out[r]);
}

template <int kBits>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    int64_t m = m_begin;
    for (; m + kRows <= m_end; m += kRows) tile_rows<kBits, kRows>(w, a, m, tile);
    if (m < m_end) tile_rows<kBits, 1>(w, a, m, tile);
  }
}

bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx2 && p.mode == ComputeMode::kExact;
}

}  // namespace

extern const LinearImpl kGemvF32Avx2 = {"gemv_f32_qw_16x32__avx2", accepts,
                                        run_for_bits<run<2>, run<3>, run<4>, run<8>>, 0};

}  // namespace ark
