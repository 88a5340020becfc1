// Large-M (prefill) GEMM, int8 mode, for CPUs without AVX-512: the scheme of
// gemm_qd8_f32_qu8w_6x64c4__avx512vnni on 8-lane registers, compiled twice from one template:
//   __avxvnni: vpdpbusd on ymm (VEX, AVX-VNNI: Alder Lake and later clients, Sapphire Rapids and later
//   Xeons);
//   __avx2:    vpmaddubsw + vpaddw + vpmaddwd (any AVX2 CPU).
// Activations come quantized by the layer per row and group (xq = round(x / x_scale) in [-127, 127], with
// per-(row, group) sums), weight codes are unpacked once per panel to unsigned bytes, and per group
//   y[m][n] += x_scale[m][g] · s[n][g] · (Σ_k xq[m][k] · q[n][k]  −  z[n][g] · Σ_k xq[m][k]),
// the zero point corrected through the activation sums, so the packed layout is the one every kernel reads
// (src/linear/packed_weight.h) and nothing is added to it.
//
// Same results as the AVX-512 VNNI GEMM, bit for bit: the integer group sums are exact in both, and the fp32
// folding is the same sequence of operations (the same 256-k panels split at group borders, the zero-point
// term subtracted in int32 in a group's first segment, one fma per segment with scale · x_scale, the same
// bias add and output rounding). tests/gemm_large_m_test.cpp checks that identity where both can run.
//
// vpmaddubsw saturation (the __avx2 variant). vpmaddubsw multiplies unsigned bytes (the codes) by signed
// bytes (xq) and adds adjacent pairs into int16 with signed saturation; vpaddw then adds int16 without
// saturation (wrapping). Neither may happen, and neither can:
//   - codes are < 16: 2-, 3- and 4-bit codes as they are, 8-bit codes split into nibbles (q = lo + 16 · hi,
//     the high nibbles summed separately and folded with weight 16), and |xq| <= 127 (the layer's quantizer
//     rounds x · 127 / max|x|, so -128 never occurs), so one pair sum is at most 2 · 15 · 127 = 3810;
//   - the int16 sums run over one k-block (8 quads) before vpmaddwd widens them to int32: 8 · 3810 = 30480,
//     below 32767.
// The int32 sums are exact: |Σ q · xq| <= 255 · 127 · L over a group of L, the same range as vpdpbusd's.
//
// Blocking: a panel is one N-tile (16 columns = 2 ymm) x 256 packed-K, unpacked into [quad][16][4] bytes
// (for split 8-bit codes each k-block takes 16 quads: its 8 low-nibble quads, then its 8 high-nibble ones).
// A micro-kernel computes MR rows x 16 columns over the panel's group segments in turn; each segment's int32
// sums are scaled into fp32 sums of the work item's rows (120 x 16, on the stack) and written out after the
// last panel. Registers (16 ymm): __avxvnni 6 rows x 2 = 12 int32 accumulators + 2 panel vectors + 1
// broadcast;
// __avx2 3 rows x 2 int16 block sums + 3 x 2 int32 segment sums + 2 panel vectors + 1 broadcast. Measured on
// Zen 4 (CPU time, 4096 x 1024, 120 rows): 3, 4 and 6 rows ran within 10% of each other; the bare dot-product
// loop with 4 column vectors was 20% slower than with 2; the fold of each group segment into fp32 is the main
// cost outside that loop (g32 runs at about 2/3 of the g256 speed).
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

constexpr int kPanelBlocks = 8;
constexpr int kQuadBytes = kTileN * 4;  // one quad of one N-tile: 16 dwords
constexpr int64_t kMBlock = 120;

// Rows per micro-kernel call. vpdpbusd accumulates straight into int32: 6 x 2 accumulators. The vpmaddubsw
// path needs int16 block sums next to its int32 segment sums: 3 x 2 of each.
template <bool kVnni>
constexpr int kRows = kVnni ? 6 : 3;

// 8-bit codes do not fit vpmaddubsw's saturation bound as they are: split into nibbles (see the top).
template <int kBits, bool kVnni>
constexpr bool kSplit = kBits == 8 && !kVnni;

// A run of the panel's k-blocks inside one group.
struct Segment {
  int block_begin, block_end;
  int64_t group;
  bool starts_group;  // the group's zero-point correction is applied in this segment (once per group)
};

struct PanelTables {
  Segment seg[kPanelBlocks];
  int num_seg = 0;
  __m256 scale[kPanelBlocks][2];  // weight scales of (segment group, half tile)
  __m256i zero[kPanelBlocks][2];  // zero points of (segment group, half tile)
};

// Unpacks k-blocks [kb0, kb0 + nb) of one N-tile into the panel (layout at the top).
template <int kBits, bool kVnni>
void unpack_panel(const PackedWeight& w, int64_t tile, int64_t kb0, int nb, uint8_t* panel) {
  const uint8_t* codes = w.tile_codes(tile);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  for (int b = 0; b < nb; ++b)
    for (int h = 0; h < 2; ++h) {
      __m256i quads[8];
      unpack_half_quads_avx2<kBits>(codes + (kb0 + b) * w.block_bytes(), h, quads);
      for (int q = 0; q < 8; ++q) {
        if constexpr (kSplit<kBits, kVnni>) {
          uint8_t* lo = panel + (16 * b + q) * kQuadBytes + 32 * h;
          _mm256_store_si256(reinterpret_cast<__m256i*>(lo), _mm256_and_si256(quads[q], nibble));
          _mm256_store_si256(reinterpret_cast<__m256i*>(lo + 8 * kQuadBytes),
                             _mm256_and_si256(_mm256_srli_epi16(quads[q], 4), nibble));
        } else {
          _mm256_store_si256(reinterpret_cast<__m256i*>(panel + (8 * b + q) * kQuadBytes + 32 * h), quads[q]);
        }
      }
    }
}

// Splits panel k-blocks [kb0, kb0 + nb) at group borders and loads each segment's scales and zero points. g:
// a group at or before the panel's first (the previous panel's last), so the search does not restart at 0.
void build_tables(const PackedWeight& w, int64_t tile, int64_t kb0, int nb, int64_t g, PanelTables& t) {
  t.num_seg = 0;
  for (int b = 0; b < nb;) {
    while (w.group_block_begin[static_cast<size_t>(g + 1)] <= kb0 + b) ++g;
    const int64_t group_end = w.group_block_begin[static_cast<size_t>(g + 1)];
    const int e = static_cast<int>(std::min<int64_t>(nb, group_end - kb0));
    t.seg[t.num_seg] = {b, e, g, kb0 + b == w.group_block_begin[static_cast<size_t>(g)]};
    for (int h = 0; h < 2; ++h) {
      t.scale[t.num_seg][h] = load_half_scales_avx2(w, tile, g, h);
      t.zero[t.num_seg][h] = load_half_zeros_avx2(w, tile, g, h);
    }
    ++t.num_seg;
    b = e;
  }
}

// acc += pair sums of u8 x s8 products, in int16 (no saturation within the bounds at the top). The empty asm
// pins each partial sum in its register: without it GCC reassociates the 8-quad chain into a tree and keeps
// every product live, spilling them all to the stack.
inline __m256i maddubs_add(__m256i acc, __m256i u8, __m256i s8) {
  acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(u8, s8));
  asm("" : "+x"(acc));
  return acc;
}

inline __m256i broadcast_quad(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// broadcast_quad that the compiler cannot merge with an earlier one of the same address: the split 8-bit
// path reads each activation quad twice (low, then high nibbles), and GCC otherwise keeps all 24 broadcasts
// of a block live across both halves and spills them.
inline __m256i broadcast_quad_again(const int8_t* p) {
  __m256i v;
  asm volatile("vpbroadcastd %1, %0" : "=x"(v) : "m"(*reinterpret_cast<const int32_t*>(p)));
  return v;
}

// One group segment of the panel for MR rows: int32 dot products over its k-blocks, then folded into the
// fp32 sums c[MR][16] (initialised when `init`), exactly as the AVX-512 VNNI GEMM folds them.
template <int kBits, bool kVnni, int MR>
__attribute__((always_inline)) inline void segment(const int8_t* xq, int64_t ldxq, const float* x_scale,
                                                   const int32_t* xq_sum, int64_t num_groups,
                                                   const uint8_t* panel, const PanelTables& t, int s,
                                                   float* c, bool init) {
  constexpr bool kSplitCodes = kSplit<kBits, kVnni>;
  const Segment& seg = t.seg[s];
  __m256i acc[MR][2];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int b = seg.block_begin; b < seg.block_end; ++b) {
    if constexpr (kVnni) {
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) {
        const uint8_t* pq = panel + (8 * b + q) * kQuadBytes;
        const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pq));
        const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pq + 32));
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
          const __m256i a = broadcast_quad(xq + r * ldxq + kBlockK * b + 4 * q);
          acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], b0, a);
          acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], b1, a);
        }
      }
    } else {
#pragma GCC unroll 8
      for (int part = 0; part < (kSplitCodes ? 2 : 1); ++part) {
        // int16 sums over the block's 8 quads: at most 30480 (see the top), then widened with weight 1 (or
        // 16 for high nibbles) by vpmaddwd.
        __m256i acc16[MR][2];
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) acc16[r][0] = acc16[r][1] = _mm256_setzero_si256();
        const uint8_t* pb = panel + ((kSplitCodes ? 2 : 1) * b + part) * 8 * kQuadBytes;
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
          const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + q * kQuadBytes));
          const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + q * kQuadBytes + 32));
#pragma GCC unroll 8
          for (int r = 0; r < MR; ++r) {
            const __m256i a = kSplitCodes ? broadcast_quad_again(xq + r * ldxq + kBlockK * b + 4 * q)
                                          : broadcast_quad(xq + r * ldxq + kBlockK * b + 4 * q);
            acc16[r][0] = maddubs_add(acc16[r][0], b0, a);
            acc16[r][1] = maddubs_add(acc16[r][1], b1, a);
          }
        }
        const __m256i weight = _mm256_set1_epi16(part == 0 ? 1 : 16);
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
          for (int h = 0; h < 2; ++h)
            acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(acc16[r][h], weight));
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    const __m256 xs = _mm256_set1_ps(x_scale[r * num_groups + seg.group]);
    const __m256i sum = _mm256_set1_epi32(xq_sum[r * num_groups + seg.group]);
#pragma GCC unroll 8
    for (int h = 0; h < 2; ++h) {
      // The zero-point term z * Σ xq belongs to the whole group: subtract it in the segment that starts it.
      const __m256i dot =
          seg.starts_group ? _mm256_sub_epi32(acc[r][h], _mm256_mullo_epi32(t.zero[s][h], sum)) : acc[r][h];
      float* cp = c + r * kTileN + 8 * h;
      const __m256 prev = init ? _mm256_setzero_ps() : _mm256_load_ps(cp);
      _mm256_store_ps(cp, _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(t.scale[s][h], xs), prev));
    }
  }
}

// Every group segment of the panel for MR rows.
template <int kBits, bool kVnni, int MR>
void micro_kernel(const int8_t* xq, int64_t ldxq, const float* x_scale, const int32_t* xq_sum,
                  int64_t num_groups, const uint8_t* panel, const PanelTables& t, float* c, bool init) {
  for (int s = 0; s < t.num_seg; ++s)
    segment<kBits, kVnni, MR>(xq, ldxq, x_scale, xq_sum, num_groups, panel, t, s, c, init && s == 0);
}

using MicroFn = void (*)(const int8_t*, int64_t, const float*, const int32_t*, int64_t, const uint8_t*,
                         const PanelTables&, float*, bool);

template <int kBits, bool kVnni>
constexpr MicroFn micro_for_rows(int rows) {
  return rows == 1   ? micro_kernel<kBits, kVnni, 1>
         : rows == 2 ? micro_kernel<kBits, kVnni, 2>
         : rows == 3 ? micro_kernel<kBits, kVnni, std::min(3, kRows<kVnni>)>
         : rows == 4 ? micro_kernel<kBits, kVnni, std::min(4, kRows<kVnni>)>
         : rows == 5 ? micro_kernel<kBits, kVnni, std::min(5, kRows<kVnni>)>
                     : micro_kernel<kBits, kVnni, std::min(6, kRows<kVnni>)>;
}

template <int kBits, bool kVnni>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  constexpr int kMr = kRows<kVnni>;
  constexpr int kPanelQuads = kPanelBlocks * 8 * (kSplit<kBits, kVnni> ? 2 : 1);
  alignas(32) uint8_t panel[kPanelQuads * kQuadBytes];
  alignas(32) float sums[kMBlock * kTileN];
  PanelTables tables;
  const int64_t G = w.num_groups;
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kMBlock) {
    const int64_t m1 = std::min(m_end, m0 + kMBlock);
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      for (int64_t kb0 = 0; kb0 < w.k_blocks; kb0 += kPanelBlocks) {
        const int nb = static_cast<int>(std::min<int64_t>(kPanelBlocks, w.k_blocks - kb0));
        unpack_panel<kBits, kVnni>(w, t, kb0, nb, panel);
        build_tables(w, t, kb0, nb, kb0 == 0 ? 0 : tables.seg[tables.num_seg - 1].group, tables);
        for (int64_t mr = m0; mr < m1; mr += kMr) {
          const int rows = static_cast<int>(std::min<int64_t>(kMr, m1 - mr));
          const MicroFn micro = micro_for_rows<kBits, kVnni>(rows);
          micro(a.xq + mr * a.ldxq + kb0 * kBlockK, a.ldxq, a.x_scale + mr * G, a.xq_sum + mr * G, G, panel,
                tables, sums + (mr - m0) * kTileN, kb0 == 0);
        }
      }
      for (int64_t m = m0; m < m1; ++m)
        store_linear_outputs(a, m, t * kTileN, tile_rows(w, t), sums + (m - m0) * kTileN);
    }
  }
}

bool accepts_vnni(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx2 && p.avx_vnni && p.mode == ComputeMode::kInt8 &&
         (p.bits == 2 || p.bits == 3 || p.bits == 4 || p.bits == 8);
}
bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx2 && p.mode == ComputeMode::kInt8 &&
         (p.bits == 2 || p.bits == 3 || p.bits == 4 || p.bits == 8);
}

}  // namespace

extern const LinearImpl kGemmQd8AvxVnni = {
    "gemm_qd8_f32_qu8w_6x16c4__avxvnni", accepts_vnni,
    run_for_bits<run<2, true>, run<3, true>, run<4, true>, run<8, true>>, kMBlock};
extern const LinearImpl kGemmQd8Avx2 = {
    "gemm_qd8_f32_qu8w_3x16c4__avx2", accepts,
    run_for_bits<run<2, false>, run<3, false>, run<4, false>, run<8, false>>, kMBlock};

}  // namespace ark
