// Large-M (prefill) GEMM, int8 mode, AMX-INT8: the arithmetic of the AVX-512-VNNI kernel (signed int8
// activations x unsigned codes, int32 sums per group, zero points corrected through activation sums, scales
// applied in fp32 once per group) on the tile unit.
//
// Tiles (palette 1): C0..C3 = tmm0..3, 32 x 32 int32 (2 x 2 tiles of 16 x 16); A0, A1 = tmm4, 5: 16 rows x 32
// signed activation bytes; B0, B1 = tmm6, 7: 8 quads x 16 columns x 4 unsigned codes, read straight out of
// the u8 quad panel the VNNI kernel uses ([quad][64 columns][4]). TDPBSUD = signed A x unsigned B. The tile K
// is 32 (one k-block) rather than 64 so every group size the layout allows (multiples of 32 in packed K) ends
// on a tile boundary and each group's int32 sums can be scaled on their own.
//
// Per group segment and 32 rows: zero C, one TDPBSUD x 4 per k-block, store C (int32) to a stack buffer, then
// fold with AVX-512: sums += x_scale · s · (C − z · Σxq). Partial 32-row blocks read their activations from a
// zeroed copy, so tiles never read past row M.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/dispatch.h"
#include "kernels/x86/amx/tile_config_amx.h"
#include "kernels/x86/avx512/store_output_avx512.h"
#include "kernels/x86/avx512/unpack_panel_u8_avx512.h"

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
using x86::unpack_tile_u8;

constexpr int kNvMax = 4;
constexpr int kPanelN = kNvMax * kTileN;  // 64 columns
constexpr int kPanelBlocks = 4;
constexpr int kPanelK = kPanelBlocks * kBlockK;  // 128 packed-K
constexpr int kMr = 32;
constexpr int64_t kMBlock = 128;
constexpr int kRowBytes = kPanelN * 4;  // 256: bytes per row of the panel and of the sums

x86::TileConfig make_config() {
  x86::TileConfig cfg;
  for (int t = 0; t < 4; ++t) cfg.set(t, 16, 64);  // C: 16 rows x 16 int32
  cfg.set(4, 16, 32);                              // A: 16 rows x 32 int8
  cfg.set(5, 16, 32);
  cfg.set(6, 8, 64);  // B: 8 quads x 16 columns x 4 uint8
  cfg.set(7, 8, 64);
  return cfg;
}

struct Segment {
  int block_begin, block_end;  // within the panel
  int64_t group;
  bool starts_group;
};

template <int kBits>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  alignas(64) uint8_t panel[kPanelK / 4 * kPanelN * 4];  // 8 KiB
  alignas(64) float sums[kMBlock * kPanelN];             // 32 KiB
  alignas(64) int32_t dots[kMr * kPanelN];               // 8 KiB: one 32-row block's int32 group sums
  alignas(64) int8_t xpad[kMr * kPanelK];                // 4 KiB: activations of a partial 32-row block
  Segment seg[kPanelBlocks];
  static const x86::TileConfig kConfig = make_config();
  const x86::TileScope tiles(kConfig);
  const int64_t G = w.num_groups;
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kMBlock) {
    const int64_t m1 = std::min(m_end, m0 + kMBlock);
    for (int64_t t0 = tile_begin; t0 < tile_end; t0 += kNvMax) {
      const int nv = static_cast<int>(std::min<int64_t>(kNvMax, tile_end - t0));
      for (int64_t kb0 = 0; kb0 < w.k_blocks; kb0 += kPanelBlocks) {
        const int nb = static_cast<int>(std::min<int64_t>(kPanelBlocks, w.k_blocks - kb0));
        if (nv < kNvMax) std::memset(panel, 0, sizeof panel);
        for (int v = 0; v < nv; ++v) unpack_tile_u8<kBits, kPanelN>(w, t0 + v, kb0, nb, v, panel);
        int num_seg = 0;
        int64_t g = group_of_block(w, kb0, 0);
        for (int b = 0; b < nb;) {
          g = group_of_block(w, kb0 + b, g);
          const int e = static_cast<int>(std::min<int64_t>(nb, w.group_block_begin[g + 1] - kb0));
          seg[num_seg++] = {b, e, g, kb0 + b == w.group_block_begin[g]};
          b = e;
        }
        for (int64_t mr = m0; mr < m1; mr += kMr) {
          const int rows = static_cast<int>(std::min<int64_t>(kMr, m1 - mr));
          const int8_t* xq = a.xq + mr * a.ldxq + kb0 * kBlockK;
          int64_t ldxq = a.ldxq;
          if (rows < kMr) {
            std::memset(xpad, 0, sizeof xpad);
            for (int r = 0; r < rows; ++r) std::memcpy(xpad + r * kPanelK, xq + r * a.ldxq, nb * kBlockK);
            xq = xpad;
            ldxq = kPanelK;
          }
          for (int s = 0; s < num_seg; ++s) {
            for (int vp = 0; vp < nv; vp += 2) {
              _tile_zero(0);
              _tile_zero(1);
              _tile_zero(2);
              _tile_zero(3);
              for (int kk = seg[s].block_begin; kk < seg[s].block_end; ++kk) {
                _tile_loadd(4, xq + kk * kBlockK, ldxq);
                _tile_loadd(5, xq + 16 * ldxq + kk * kBlockK, ldxq);
                const uint8_t* b = panel + (kk * 8 * kPanelN + vp * kTileN) * 4;
                _tile_loadd(6, b, kRowBytes);
                _tile_loadd(7, b + kTileN * 4, kRowBytes);
                _tile_dpbsud(0, 4, 6);
                _tile_dpbsud(1, 4, 7);
                _tile_dpbsud(2, 5, 6);
                _tile_dpbsud(3, 5, 7);
              }
              int32_t* d = dots + vp * kTileN;
              _tile_stored(0, d, kRowBytes);
              _tile_stored(1, d + kTileN, kRowBytes);
              _tile_stored(2, d + 16 * kPanelN, kRowBytes);
              _tile_stored(3, d + 16 * kPanelN + kTileN, kRowBytes);
            }
            // Fold the group's int32 sums into the fp32 sums of the valid rows.
            const int64_t grp = seg[s].group;
            const bool init = kb0 == 0 && s == 0;
            for (int v = 0; v < nv; ++v) {
              const __m512 sw = load_tile_scales_avx512(w, t0 + v, grp);
              const __m512i z = load_tile_zeros_avx512(w, t0 + v, grp);
              for (int r = 0; r < rows; ++r) {
                const int64_t m = mr + r;
                __m512i dot = _mm512_load_si512(dots + r * kPanelN + v * kTileN);
                if (seg[s].starts_group)
                  dot =
                      _mm512_sub_epi32(dot, _mm512_mullo_epi32(z, _mm512_set1_epi32(a.xq_sum[m * G + grp])));
                float* cp = sums + (m - m0) * kPanelN + v * kTileN;
                const __m512 prev = init ? _mm512_setzero_ps() : _mm512_load_ps(cp);
                const __m512 scale = _mm512_mul_ps(sw, _mm512_set1_ps(a.x_scale[m * G + grp]));
                _mm512_store_ps(cp, _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, prev));
              }
            }
          }
        }
      }
      store_panel_avx512(w, a, sums, kPanelN, m0, m1, t0, nv);
    }
  }
}

bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAmx && p.mode == ComputeMode::kInt8 &&
         (p.bits == 2 || p.bits == 3 || p.bits == 4 || p.bits == 8);
}

}  // namespace

extern const LinearImpl kGemmQd8Amx = {"gemm_qd8_f32_qu8w_32x32__amx", accepts,
                                       run_for_bits<run<2>, run<3>, run<4>, run<8>>, kMBlock};

}  // namespace ark
