// Large-M (prefill) GEMM, exact mode, AMX-BF16: the same arithmetic as the AVX-512-BF16 kernel (x and W
// rounded to bf16, fp32 accumulation) on the tile unit.
//
// Tiles (palette 1): C0..C3 = tmm0..3, a 32 x 32 fp32 block of y (2 x 2 tiles of 16 x 16); A0, A1 = tmm4, 5,
// 16 rows x 32 k of bf16 activations each; B0, B1 = tmm6, 7, 16 k-pairs x 16 columns each, read straight out
// of the same bf16 pair panel the AVX-512-BF16 kernel uses ([k-pair][64 columns][2]: 16 consecutive 256-byte
// rows of it are one B tile). Per 32 k: 4 tile loads, 4 TDPBF16PS (each 16 x 16 x 32 multiply-adds).
//
// Blocking: a panel is 64 columns x 128 packed-K (16 KiB), dequantized once per work item and k-step; the
// work item's rows (up to 128) stream over it 32 at a time, their activations converted to bf16 into an 8 KiB
// buffer (rows past M are zero there, so partial 32-row blocks compute zeros that are never stored). Partial
// sums live in a 32 KiB stack buffer (128 x 64 fp32) that the C tiles are loaded from and stored to per
// k-step.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/dispatch.h"
#include "kernels/x86/amx/tile_config_amx.h"
#include "kernels/x86/avx512/store_output_avx512.h"
#include "kernels/x86/bf16/dequant_panel_bf16.h"

namespace ark {

// GCC 12 reports the placeholder vectors inside its own AVX-512 intrinsic headers (_mm512_undefined_*) as
// "maybe uninitialized" once they are inlined here; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace {

using x86::dequant_tile_bf16;
using x86::store_panel_avx512;

constexpr int kNvMax = 4;
constexpr int kPanelN = kNvMax * kTileN;  // 64 columns
constexpr int kPanelBlocks = 4;
constexpr int kPanelK = kPanelBlocks * kBlockK;  // 128 packed-K
constexpr int kMr = 32;                          // rows per tile block (2 A tiles)
constexpr int64_t kMBlock = 128;                 // rows per work item
constexpr int kRowBytes = kPanelN * 4;           // 256: bytes per row of the panel and of the sums

x86::TileConfig make_config() {
  x86::TileConfig cfg;
  for (int t = 0; t < 4; ++t) cfg.set(t, 16, 64);  // C: 16 rows x 16 fp32
  cfg.set(4, 16, 64);                              // A: 16 rows x 32 bf16
  cfg.set(5, 16, 64);
  cfg.set(6, 16, 64);  // B: 16 k-pairs x 16 columns x 2 bf16
  cfg.set(7, 16, 64);
  return cfg;
}

// 32 rows of x (rows >= rows_valid zero), packed-K [k0, k0 + len) to bf16, row stride kPanelK elements.
void convert_rows_bf16(const float* x, int64_t ldx, int rows_valid, int64_t k0, int len, uint16_t* xb) {
  for (int r = 0; r < kMr; ++r) {
    uint16_t* dst = xb + r * kPanelK;
    if (r >= rows_valid) {
      std::memset(dst, 0, kPanelK * 2);
      continue;
    }
    const float* src = x + r * ldx + k0;
    for (int k = 0; k < len; k += 32) {
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
      _mm512_store_si512(dst + k, (__m512i)v);
    }
  }
}

// C[32 x 32] (column tiles vp, vp + 1) += xb[32 x 32 nb] · panel, C kept in sums (rows of kRowBytes).
void tile_block(const uint16_t* xb, const uint16_t* panel, int nb, int vp, float* sums, bool first) {
  float* c = sums + vp * kTileN;
  if (first) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  } else {
    _tile_loadd(0, c, kRowBytes);
    _tile_loadd(1, c + kTileN, kRowBytes);
    _tile_loadd(2, c + 16 * kPanelN, kRowBytes);
    _tile_loadd(3, c + 16 * kPanelN + kTileN, kRowBytes);
  }
  for (int kk = 0; kk < nb; ++kk) {
    _tile_loadd(4, xb + kk * kBlockK, kPanelK * 2);
    _tile_loadd(5, xb + 16 * kPanelK + kk * kBlockK, kPanelK * 2);
    const uint16_t* b = panel + (kk * (kBlockK / 2) * kPanelN + vp * kTileN) * 2;
    _tile_loadd(6, b, kRowBytes);
    _tile_loadd(7, b + kTileN * 2, kRowBytes);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, kRowBytes);
  _tile_stored(1, c + kTileN, kRowBytes);
  _tile_stored(2, c + 16 * kPanelN, kRowBytes);
  _tile_stored(3, c + 16 * kPanelN + kTileN, kRowBytes);
}

template <int kBits>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  alignas(64) uint16_t panel[kPanelK * kPanelN];
  alignas(64) float sums[kMBlock * kPanelN];
  alignas(64) uint16_t xb[kMr * kPanelK];
  static const x86::TileConfig kConfig = make_config();
  const x86::TileScope tiles(kConfig);
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kMBlock) {
    const int64_t m1 = std::min(m_end, m0 + kMBlock);
    for (int64_t t0 = tile_begin; t0 < tile_end; t0 += kNvMax) {
      const int nv = static_cast<int>(std::min<int64_t>(kNvMax, tile_end - t0));
      for (int64_t kb0 = 0; kb0 < w.k_blocks; kb0 += kPanelBlocks) {
        const int nb = static_cast<int>(std::min<int64_t>(kPanelBlocks, w.k_blocks - kb0));
        // Columns past the work item's tiles compute on zeros and are never stored.
        if (nv < kNvMax) std::memset(panel, 0, sizeof panel);
        for (int v = 0; v < nv; ++v) dequant_tile_bf16<kBits, kPanelN>(w, t0 + v, kb0, nb, v, panel);
        for (int64_t mr = m0; mr < m1; mr += kMr) {
          const int rows = static_cast<int>(std::min<int64_t>(kMr, m1 - mr));
          convert_rows_bf16(a.x + mr * a.ldx, a.ldx, rows, kb0 * kBlockK, nb * kBlockK, xb);
          for (int vp = 0; vp < nv; vp += 2)
            tile_block(xb, panel, nb, vp, sums + (mr - m0) * kPanelN, kb0 == 0);
        }
      }
      store_panel_avx512(w, a, sums, kPanelN, m0, m1, t0, nv);
    }
  }
}

bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAmx && p.mode == ComputeMode::kExact &&
         (p.bits == 2 || p.bits == 3 || p.bits == 4 || p.bits == 8);
}

}  // namespace

extern const LinearImpl kGemmBf16Amx = {"gemm_bf16_f32_qw_32x32__amx", accepts,
                                        run_for_bits<run<2>, run<3>, run<4>, run<8>>, kMBlock};

}  // namespace ark
