// Large-M (prefill) GEMM, int8 mode, AVX-512-VNNI: activations already quantized by the layer per row and
// group (xq = round(x / x_scale), signed int8, with per-(row, group) sums), weight codes unpacked once per
// panel to unsigned bytes, vpdpbusd (u8 x s8 -> s32, 4 products per lane). Per group:
//   y[m][n] += x_scale[m][g] · s[n][g] · (Σ_k xq[m][k] · q[n][k]  −  z[n][g] · Σ_k xq[m][k])
// The zero point is corrected through the activation sums (one multiply per accumulator per group), so codes
// of any width (8-bit included, where q − z does not fit a byte) go into vpdpbusd as they are.
//
// Blocking: a panel is 64 columns (4 N-tiles) x 256 packed-K, unpacked into a 16 KiB buffer [quad][64][4]:
// one zmm is one quad of 16 columns, exactly the packed layout's quad (so 8-bit codes are a copy). 6 rows x 4
// column-vectors = 24 int32 accumulators per group segment; at each segment end they are scaled into fp32
// sums kept in a stack buffer (rows x 64). Stack: 16 KiB panel + 30 KiB sums + 4 KiB segment tables.
#include <immintrin.h>

#include <algorithm>

#include "kernels/dispatch.h"
#include "kernels/x86/avx512/store_output_avx512.h"
#include "kernels/x86/avx512/unpack_panel_u8_avx512.h"

// GCC 12 reports the placeholder vectors inside its own AVX-512 intrinsic headers (_mm512_undefined_*) as
// "maybe uninitialized" once they are inlined here; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace ark {
namespace {

using x86::group_of_block;
using x86::load_tile_scales_avx512;
using x86::load_tile_zeros_avx512;
using x86::store_panel_avx512;
using x86::unpack_tile_u8;

constexpr int kMr = 6;
constexpr int kNvMax = 4;
constexpr int kPanelN = kNvMax * kTileN;  // 64 columns
constexpr int kPanelBlocks = 8;
constexpr int kPanelQuads = kPanelBlocks * kBlockK / 4;  // 64 quads = 256 packed-K
constexpr int64_t kMBlock = 120;

// A run of the panel's quads inside one group.
struct Segment {
  int quad_begin, quad_end;
  int64_t group;
  bool starts_group;  // the group's zero-point correction is applied in this segment (once per group)
};

struct PanelTables {
  Segment seg[kPanelBlocks];
  int num_seg = 0;
  __m512 scale[kPanelBlocks][kNvMax];  // weight scales of (segment group, tile)
  __m512i zero[kPanelBlocks][kNvMax];  // zero points of (segment group, tile)
};

// acc += u8 x s8 dot products. GCC 12 copies every accumulator through the stack around the vpdpbusd builtin
// (measured: the 6x4 loop ran at 40% of the instruction's throughput); the same instruction as inline asm
// keeps the accumulators in registers.
inline __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
  return acc;
}

// One group segment of the panel for MR rows: int32 dot products over quads [seg.quad_begin, seg.quad_end),
// then folded into the fp32 sums c[MR][kPanelN] (initialised when `init`). Kept to one segment per call so
// the hot loop holds nothing but the 24 accumulators, 4 panel vectors and a broadcast (GCC spilled when the
// segment loop was inside). The loops over rows and column vectors carry unroll pragmas: unrolled before
// scalar replacement, the accumulators go from the dot products to the fold in registers. Without them GCC 12
// at -O3 zeroed a stack copy of all 24 at entry, stored them after the quad loop and reloaded each in the
// fold; at -O2 it left the loops rolled, each vpdpbusd loading and storing its accumulator (~2.5x slower).
template <int MR, int NV>
void micro_kernel(const int8_t* xq, int64_t ldxq, const float* x_scale, const int32_t* xq_sum,
                  int64_t num_groups, const uint8_t* panel, const PanelTables& t, int s, float* c,
                  bool init) {
  const Segment& seg = t.seg[s];
  // Copied out before the fold: its vector stores may alias anything (__m512 is a may_alias type), so GCC
  // would otherwise reload these after every store.
  const int64_t group = seg.group;
  const bool starts_group = seg.starts_group;
  __m512i acc[MR][NV];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();
  }
  for (int q = seg.quad_begin; q < seg.quad_end; ++q) {
    __m512i b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_si512(panel + (q * kPanelN + v * kTileN) * 4);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      int32_t quad_bits;
      __builtin_memcpy(&quad_bits, xq + r * ldxq + 4 * q, 4);
      const __m512i a = _mm512_set1_epi32(quad_bits);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = dpbusd(acc[r][v], b[v], a);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    const __m512 xs = _mm512_set1_ps(x_scale[r * num_groups + group]);
    const __m512i sum = _mm512_set1_epi32(xq_sum[r * num_groups + group]);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      // The zero-point term z * Σ xq belongs to the whole group: subtract it in the segment that starts it.
      const __m512i dot =
          starts_group ? _mm512_sub_epi32(acc[r][v], _mm512_mullo_epi32(t.zero[s][v], sum)) : acc[r][v];
      float* cp = c + r * kPanelN + v * kTileN;
      const __m512 prev = init ? _mm512_setzero_ps() : _mm512_load_ps(cp);
      _mm512_store_ps(cp, _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(t.scale[s][v], xs), prev));
    }
  }
}

using MicroFn = void (*)(const int8_t*, int64_t, const float*, const int32_t*, int64_t, const uint8_t*,
                         const PanelTables&, int, float*, bool);

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

// Splits panel k-blocks [kb0, kb0 + nb) at group borders and loads each segment's scales and zero points.
void build_tables(const PackedWeight& w, int64_t t0, int nv, int64_t kb0, int nb, PanelTables& t) {
  t.num_seg = 0;
  int64_t g = group_of_block(w, kb0, 0);
  for (int b = 0; b < nb;) {
    g = group_of_block(w, kb0 + b, g);
    const int64_t group_end = w.group_block_begin[static_cast<size_t>(g + 1)];
    const int e = static_cast<int>(std::min<int64_t>(nb, group_end - kb0));
    Segment& s = t.seg[t.num_seg];
    s = {b * 8, e * 8, g, kb0 + b == w.group_block_begin[static_cast<size_t>(g)]};
    for (int v = 0; v < nv; ++v) {
      t.scale[t.num_seg][v] = load_tile_scales_avx512(w, t0 + v, g);
      t.zero[t.num_seg][v] = load_tile_zeros_avx512(w, t0 + v, g);
    }
    ++t.num_seg;
    b = e;
  }
}

template <int kBits>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  alignas(64) uint8_t panel[kPanelQuads * kPanelN * 4];
  alignas(64) float sums[kMBlock * kPanelN];
  PanelTables tables;
  const int64_t G = w.num_groups;
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kMBlock) {
    const int64_t m1 = std::min(m_end, m0 + kMBlock);
    for (int64_t t0 = tile_begin; t0 < tile_end; t0 += kNvMax) {
      const int nv = static_cast<int>(std::min<int64_t>(kNvMax, tile_end - t0));
      for (int64_t kb0 = 0; kb0 < w.k_blocks; kb0 += kPanelBlocks) {
        const int nb = static_cast<int>(std::min<int64_t>(kPanelBlocks, w.k_blocks - kb0));
        for (int v = 0; v < nv; ++v) unpack_tile_u8<kBits, kPanelN>(w, t0 + v, kb0, nb, v, panel);
        build_tables(w, t0, nv, kb0, nb, tables);
        for (int64_t mr = m0; mr < m1; mr += kMr) {
          const int rows = static_cast<int>(std::min<int64_t>(kMr, m1 - mr));
          const MicroFn micro = select_micro(rows, nv);
          for (int seg = 0; seg < tables.num_seg; ++seg)
            micro(a.xq + mr * a.ldxq + kb0 * kBlockK, a.ldxq, a.x_scale + mr * G, a.xq_sum + mr * G, G, panel,
                  tables, seg, sums + (mr - m0) * kPanelN, kb0 == 0 && seg == 0);
        }
      }
      store_panel_avx512(w, a, sums, kPanelN, m0, m1, t0, nv);
    }
  }
}

bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx512Vnni && p.mode == ComputeMode::kInt8 &&
         (p.bits == 2 || p.bits == 3 || p.bits == 4 || p.bits == 8);
}

}  // namespace

extern const LinearImpl kGemmQd8Avx512Vnni = {"gemm_qd8_f32_qu8w_6x64c4__avx512vnni", accepts,
                                              run_for_bits<run<2>, run<3>, run<4>, run<8>>, kMBlock};

}  // namespace ark
