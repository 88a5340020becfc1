// Large-M (prefill) GEMM, exact mode, AVX-512-BF16: y = x · Wᵀ with x rounded to bf16, W dequantized once per
// panel to bf16 (s · (q - z), rounded once), fp32 accumulation with vdpbf16ps. Any bits (2/3/4/8), any group.
//
// Blocking (sizes chosen for Zen 4 / Sapphire Rapids: 32 KiB L1D, >= 1 MiB L2):
//   - a panel is 64 output columns (4 N-tiles) x 128 packed-K (4 k-blocks), dequantized into a 16 KiB bf16
//     buffer laid out [k-pair][64 columns][2]: one zmm holds the (k, k+1) pairs of 16 columns, the second
//     operand of vdpbf16ps;
//   - every row of the work item then streams over that panel (the reuse that makes large M compute-bound):
//     6 rows x 64 columns = 24 zmm accumulators. Each k-pair needs 4 panel loads and 6 broadcasts for 24
//     vdpbf16ps, so loads never limit, and 24 independent chains cover the dot product's latency (6 cycles
//     here) times its throughput;
//   - partial sums for the whole work item live in a stack buffer (rows x 64 fp32), reloaded per panel step.
// Stack: 16 KiB panel + 30 KiB sums + 1.5 KiB bf16 activations.
#include <immintrin.h>

#include <algorithm>

#include "kernels/dispatch.h"
#include "kernels/x86/avx512/store_output_avx512.h"
#include "kernels/x86/avx512/unpack_quads_avx512.h"
#include "kernels/x86/bf16/dequant_panel_bf16.h"

// GCC 12 reports the placeholder vectors inside its own AVX-512 intrinsic headers (_mm512_undefined_*) as
// "maybe uninitialized" once they are inlined here; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace ark {
namespace {

using x86::dequant_tile_bf16;
using x86::store_panel_avx512;

constexpr int kMr = 6;                           // rows per micro-kernel call
constexpr int kNvMax = 4;                        // N-tiles per panel
constexpr int kPanelN = kNvMax * kTileN;         // 64 columns
constexpr int kPanelBlocks = 4;                  // k-blocks per panel
constexpr int kPanelK = kPanelBlocks * kBlockK;  // 128 packed-K positions
constexpr int64_t kMBlock = 120;                 // rows per work item (a multiple of kMr)

// acc[MR][NV] += xb[MR][2 * pairs] · panel[pairs][NV*16][2]; sums in c[MR][kPanelN] (initialised when first).
template <int MR, int NV>
void micro_kernel(const uint16_t* xb, const uint16_t* panel, int64_t pairs, float* c, bool first) {
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(c + r * kPanelN + v * kTileN);
  for (int64_t p = 0; p < pairs; ++p) {
    __m512bh b[NV];
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_load_si512(panel + (p * kPanelN + v * kTileN) * 2);
    for (int r = 0; r < MR; ++r) {
      int32_t pair_bits;
      __builtin_memcpy(&pair_bits, xb + r * kPanelK + 2 * p, 4);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair_bits);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) _mm512_store_ps(c + r * kPanelN + v * kTileN, acc[r][v]);
}

using MicroFn = void (*)(const uint16_t*, const uint16_t*, int64_t, float*, bool);

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

// Rows [r0, r0 + rows) of x, packed-K [k0, k0 + len) to bf16 (round to nearest even), row stride kPanelK.
// x is re-read for every 64-column panel and a work item's rows do not fit in L2, so the same k-range of the
// next kMr rows is prefetched: without it the conversion waited on L3 for a third of the kernel's time.
void convert_rows_bf16(const float* x, int64_t ldx, int rows, int64_t k0, int len, uint16_t* xb,
                       int next_rows) {
  for (int r = 0; r < next_rows; ++r)
    for (int k = 0; k < len; k += 16)
      _mm_prefetch(reinterpret_cast<const char*>(x + (kMr + r) * ldx + k0 + k), _MM_HINT_T0);
  for (int r = 0; r < rows; ++r) {
    const float* src = x + r * ldx + k0;
    for (int k = 0; k < len; k += 32) {
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
      _mm512_store_si512(xb + r * kPanelK + k, (__m512i)v);
    }
  }
}

template <int kBits>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  alignas(64) uint16_t panel[kPanelK * kPanelN];
  alignas(64) float sums[kMBlock * kPanelN];
  alignas(64) uint16_t xb[kMr * kPanelK];
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kMBlock) {
    const int64_t m1 = std::min(m_end, m0 + kMBlock);
    for (int64_t t0 = tile_begin; t0 < tile_end; t0 += kNvMax) {
      const int nv = static_cast<int>(std::min<int64_t>(kNvMax, tile_end - t0));
      for (int64_t kb0 = 0; kb0 < w.k_blocks; kb0 += kPanelBlocks) {
        const int nb = static_cast<int>(std::min<int64_t>(kPanelBlocks, w.k_blocks - kb0));
        for (int v = 0; v < nv; ++v) dequant_tile_bf16<kBits, kPanelN>(w, t0 + v, kb0, nb, v, panel);
        for (int64_t mr = m0; mr < m1; mr += kMr) {
          const int rows = static_cast<int>(std::min<int64_t>(kMr, m1 - mr));
          convert_rows_bf16(a.x + mr * a.ldx, a.ldx, rows, kb0 * kBlockK, nb * kBlockK, xb,
                            static_cast<int>(std::min<int64_t>(kMr, m1 - mr - rows)));
          select_micro(rows, nv)(xb, panel, nb * kBlockK / 2, sums + (mr - m0) * kPanelN, kb0 == 0);
        }
      }
      store_panel_avx512(w, a, sums, kPanelN, m0, m1, t0, nv);
    }
  }
}

bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx512Bf16 && p.mode == ComputeMode::kExact &&
         (p.bits == 2 || p.bits == 3 || p.bits == 4 || p.bits == 8);
}

}  // namespace

extern const LinearImpl kGemmBf16Avx512Bf16 = {"gemm_bf16_f32_qw_6x64c2__avx512bf16", accepts,
                                               run_for_bits<run<2>, run<3>, run<4>, run<8>>, kMBlock};

}  // namespace ark
