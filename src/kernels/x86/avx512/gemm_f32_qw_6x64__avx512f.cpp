// Large-M (prefill) GEMM, exact mode, AVX-512 F: the fallback for AVX-512 CPUs without BF16 (Skylake-SP,
// Cascade Lake). W is dequantized once per panel to fp32 (s · q − s · z), x is used as it is (fp32), fp32
// FMA.
//
// Blocking: a panel is 64 columns (4 N-tiles) x 64 packed-K, a 16 KiB fp32 buffer [k][64]; 6 rows x 4 vectors
// = 24 zmm accumulators (24 independent FMA chains cover 4-cycle latency x 2 FMA ports with room to spare);
// each k needs 4 panel loads and 6 broadcasts straight from x. Partial sums for the work item's rows live in
// a stack buffer (120 x 64 fp32, 30 KiB).
#include <immintrin.h>

#include <algorithm>

#include "kernels/dispatch.h"
#include "kernels/x86/avx512/store_output_avx512.h"
#include "kernels/x86/avx512/unpack_quads_avx512.h"

namespace ark {

// GCC 12 reports the placeholder vectors inside its own AVX-512 intrinsic headers (_mm512_undefined_*) as
// "maybe uninitialized" once they are inlined here; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace {

using x86::group_of_block;
using x86::load_tile_scales_avx512;
using x86::load_tile_zeros_avx512;
using x86::store_panel_avx512;
using x86::unpack_block_quads_avx512;

constexpr int kMr = 6;
constexpr int kNvMax = 4;
constexpr int kPanelN = kNvMax * kTileN;  // 64 columns
constexpr int kPanelBlocks = 2;
constexpr int kPanelK = kPanelBlocks * kBlockK;  // 64 packed-K
constexpr int64_t kMBlock = 120;

template <int kBits>
void dequant_tile_f32(const PackedWeight& w, int64_t tile, int64_t kb0, int nb, int v, float* panel) {
  const __m512i byte_mask = _mm512_set1_epi32(0xff);
  const uint8_t* codes = w.tile_codes(tile);
  int64_t g = group_of_block(w, kb0, 0);
  for (int b = 0; b < nb; ++b) {
    g = group_of_block(w, kb0 + b, g);
    const __m512 s = load_tile_scales_avx512(w, tile, g);
    const __m512 neg_zs = _mm512_mul_ps(_mm512_cvtepi32_ps(load_tile_zeros_avx512(w, tile, g)),
                                        _mm512_sub_ps(_mm512_setzero_ps(), s));
    __m512i quads[8];
    unpack_block_quads_avx512<kBits>(codes + (kb0 + b) * w.block_bytes(), quads);
    // Unrolled, the 8 quads stay in registers (rolled, GCC stores them to the stack and reloads each).
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m512i c = _mm512_and_si512(_mm512_srli_epi32(quads[q], 8 * j), byte_mask);
        const int64_t k = 32 * b + 4 * q + j;
        _mm512_store_ps(panel + k * kPanelN + v * kTileN, _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), s, neg_zs));
      }
  }
}

// The loops over rows and column vectors carry unroll pragmas: unrolled before scalar replacement, the 24
// accumulators stay in registers from the first load to the last store. Without them GCC 12 at -O3 kept the
// array in a stack copy as well, written at entry and reloaded after the k loop (~100 extra zmm moves per
// call of 64 k); at -O2 it left the loops rolled, each FMA loading and storing its accumulator.
template <int MR, int NV>
void micro_kernel(const float* x, int64_t ldx, const float* panel, int64_t len, float* c, bool first) {
  __m512 acc[MR][NV];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      acc[r][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(c + r * kPanelN + v * kTileN);
  }
  for (int64_t k = 0; k < len; ++k) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(panel + k * kPanelN + v * kTileN);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(x[r * ldx + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_store_ps(c + r * kPanelN + v * kTileN, acc[r][v]);
  }
}

using MicroFn = void (*)(const float*, int64_t, const float*, int64_t, float*, bool);

template <int MR>
constexpr MicroFn micro_for_nv(int nv) {
  return nv == 1   ? micro_kernel<MR, 1>
         : nv == 2 ? micro_kernel<MR, 2>
         : nv == 3 ? micro_kernel<MR, 3>
                   : micro_kernel<MR, 4>;
}
MicroFn select_micro(int rows, int nv) {
  switch (rows) {
    case 1:
      return micro_for_nv<1>(nv);
    case 2:
      return micro_for_nv<2>(nv);
    case 3:
      return micro_for_nv<3>(nv);
    case 4:
      return micro_for_nv<4>(nv);
    case 5:
      return micro_for_nv<5>(nv);
    default:
      return micro_for_nv<6>(nv);
  }
}

template <int kBits>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  alignas(64) float panel[kPanelK * kPanelN];
  alignas(64) float sums[kMBlock * kPanelN];
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kMBlock) {
    const int64_t m1 = std::min(m_end, m0 + kMBlock);
    for (int64_t t0 = tile_begin; t0 < tile_end; t0 += kNvMax) {
      const int nv = static_cast<int>(std::min<int64_t>(kNvMax, tile_end - t0));
      for (int64_t kb0 = 0; kb0 < w.k_blocks; kb0 += kPanelBlocks) {
        const int nb = static_cast<int>(std::min<int64_t>(kPanelBlocks, w.k_blocks - kb0));
        for (int v = 0; v < nv; ++v) dequant_tile_f32<kBits>(w, t0 + v, kb0, nb, v, panel);
        for (int64_t mr = m0; mr < m1; mr += kMr) {
          const int rows = static_cast<int>(std::min<int64_t>(kMr, m1 - mr));
          select_micro(rows, nv)(a.x + mr * a.ldx + kb0 * kBlockK, a.ldx, panel, nb * kBlockK,
                                 sums + (mr - m0) * kPanelN, kb0 == 0);
        }
      }
      store_panel_avx512(w, a, sums, kPanelN, m0, m1, t0, nv);
    }
  }
}

bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx512 && p.mode == ComputeMode::kExact &&
         (p.bits == 2 || p.bits == 3 || p.bits == 4 || p.bits == 8);
}

}  // namespace

extern const LinearImpl kGemmF32Avx512 = {"gemm_f32_qw_6x64__avx512f", accepts,
                                          run_for_bits<run<2>, run<3>, run<4>, run<8>>, kMBlock};

}  // namespace ark
