// Large-M (prefill) GEMM, exact mode, AVX-512-BF16: y = x · Wᵀ with x rounded to bf16, W dequantized once per
// panel to bf16 (s · (q - z), rounded once), fp32 accumulation with vdpbf16ps. Any bits (2/3/4/8), any group.
//
// Two ways to run, same outputs byte for byte (each output is one vdpbf16ps chain over k in order; partial
// sums parked in memory are fp32 and come back unchanged):
//
// With the caller's heap scratch (LinearArgs::scratch, scratch_bytes() below; QuantLinear::forward hands one
// slice per thread of the call, prepared bf16 rows required), the fast path:
//   - a work item is up to 512 rows x a range of N-tiles. Each panel of 48 output columns (3 N-tiles) is
//     dequantized once for all of K into the slice, laid out [k-pair][48 columns][2] (one zmm holds the
//     (k, k+1) pairs of 16 columns: the second operand of vdpbf16ps), then every 8-row block runs over all of
//     it in one micro-kernel call: 24 zmm accumulators stay in registers from the first k to the store of y
//     (3 panel loads and 8 broadcasts per k-pair for 24 vdpbf16ps; 24 chains cover the dot product's
//     latency, 6 cycles here, times its throughput). The panel streams from L2.
//   - K beyond 4096 is cut into even chunks of at most 4096 (a 384 KiB panel, inside Zen 4's 1 MiB and
//     Sapphire Rapids' 2 MiB L2); between chunks the partial sums wait in the slice (512 rows x 48 fp32).
//   - slice size: 96 bytes per k of the longest chunk (<= 384 KiB) + 96 KiB when K has several chunks; at
//     most 480 KiB whatever the shape.
// Without scratch (callers with fp32 rows only, the MoE with ARK_MOE_KERNEL_SCRATCH=0, the kernel tests'
// stack runs), within the 64 KiB stack budget of dispatch.h:
//   - a panel is 48 columns x 128 packed-K (4 k-blocks) in a 12 KiB stack buffer, dequantized once per 256
//     rows; the partial sums wait in a 48 KiB stack buffer between panel steps (that buffer bounds the rows
//     sharing one dequantization, hence 48 columns rather than 64), so the micro-kernel reloads and stores
//     its accumulators every 64 k-pairs; the last step adds the bias and writes y from the accumulators;
//   - x is read as bf16 rows: those the layer rounded once per call (LinearArgs::xb, via prepare_bf16 below),
//     or, when a caller hands only fp32 rows, 8 rows x 128 k rounded per micro-kernel call.
// Either way the micro-kernel prefetches the next call's first x lines (and partial sums), one cache line per
// k-pair.
// Measured on Zen 4, one core, 4096 x 14336 int4 at M = 512 (docs/PERFORMANCE.md): the earlier 6 x 64 tile
// with 120-row items and per-panel rounding of x ran ~150 GFLOP/s; rounding x once per call and the prefetch
// ~188; the stack path's 8 x 48 tile with 256-row items ~193, ~206 with its accumulators kept in registers;
// the scratch path 211-222 (vdpbf16ps peak ~232). Tried and not kept: partial sums in y for fp32 outputs
// (slower), 256-k panels with fewer rows (no change), the next panel's dequantization interleaved in pieces
// between micro-kernel calls (slower: a second panel buffer crowds L1), 12 x 32 tiles (slower); on the
// scratch path, software prefetch of the panel or of the x rows ahead, of the next panel's codes, and
// vdpbf16ps with an embedded {1to16} x broadcast (no change within noise). Stack: 12 KiB panel + 48 KiB sums
// + 2 KiB bf16 activations.
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
using x86::dtype_bytes_for_output;
using x86::store_output_row_avx512;

constexpr int kMr = 8;                           // rows per micro-kernel call
constexpr int kNvMax = 3;                        // N-tiles per panel
constexpr int kPanelN = kNvMax * kTileN;         // 48 columns
constexpr int kPanelBlocks = 4;                  // k-blocks per panel
constexpr int kPanelK = kPanelBlocks * kBlockK;  // 128 packed-K positions
constexpr int64_t kMBlock = 256;  // rows per step of the stack path (32 x kMr): the partial sums' stack rows
// With the caller's scratch: rows per work item (each panel is dequantized once for all of them) and the
// longest K chunk a panel holds (4096 k: 384 KiB of bf16 pairs, inside a 1-2 MiB L2).
constexpr int64_t kMBlockScratch = 512;
constexpr int64_t kChunkBlocks = 128;

// One micro-kernel call: rows x 48 columns over one panel's k-pairs.
struct Step {
  const uint16_t* x;  // bf16 rows (stride ldx elements), starting at the panel's first k
  int64_t ldx;
  const uint16_t* panel;
  int64_t pairs;
  float* c;    // partial sums [rows][kPanelN] in the stack buffer
  bool first;  // start from zero rather than c
  bool last;   // add the bias and write y in its dtype rather than c
  uint8_t* y;  // y[m][n0] (used when last)
  int64_t ldy_bytes;
  DType y_dtype;
  const float* bias;  // bias[n0] or null
  int valid[kNvMax];  // columns of each tile inside N
  // Prefetch, one cache line per k-pair: the next call's x rows (1 << pf_x_shift lines per row) and partial
  // sums (contiguous rows of kPanelN floats).
  const char* pf_x;
  int64_t pf_x_ld;
  int pf_x_lines, pf_x_shift;
  const char* pf_c;
  int pf_c_lines;
};

// The loops over rows and tiles carry unroll pragmas: fully unrolled before scalar replacement, the
// accumulators stay in registers; without them GCC 12 kept the array on the stack and copied it around the
// prefetching part of the k loop (~200 extra loads and stores per call, ~4% of the kernel's time).
template <int MR, int NV>
void micro_kernel(const Step& s) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v)
      acc[r][v] = s.first ? _mm512_setzero_ps() : _mm512_load_ps(s.c + r * kPanelN + v * kTileN);
  }
  const int x_line_mask = (1 << s.pf_x_shift) - 1;
  for (int64_t p = 0; p < s.pairs; ++p) {
    if (p < s.pf_x_lines)
      _mm_prefetch(s.pf_x + (p >> s.pf_x_shift) * s.pf_x_ld + ((p & x_line_mask) << 6), _MM_HINT_T0);
    if (p < s.pf_c_lines) _mm_prefetch(s.pf_c + (p << 6), _MM_HINT_T0);
    __m512bh b[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_load_si512(s.panel + (p * kPanelN + v * kTileN) * 2);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      int32_t pair_bits;
      __builtin_memcpy(&pair_bits, s.x + r * s.ldx + 2 * p, 4);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair_bits);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
    }
  }
  if (!s.last) {
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) _mm512_store_ps(s.c + r * kPanelN + v * kTileN, acc[r][v]);
    }
    return;
  }
  const size_t y_elem = dtype_bytes_for_output(s.y_dtype);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v)
      store_output_row_avx512(acc[r][v], s.bias ? s.bias + v * kTileN : nullptr, s.y_dtype,
                              s.y + r * s.ldy_bytes + v * kTileN * y_elem, s.valid[v]);
  }
}

using MicroFn = void (*)(const Step&);

template <int MR>
constexpr MicroFn micro_for_nv(int nv) {
  return nv == 1 ? micro_kernel<MR, 1> : nv == 2 ? micro_kernel<MR, 2> : micro_kernel<MR, 3>;
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
    case 6:
      return micro_for_nv<6>(nv);
    case 7:
      return micro_for_nv<7>(nv);
    default:
      return micro_for_nv<8>(nv);
  }
}

// fp32 -> bf16, round to nearest even (vcvtne2ps2bf16), len a multiple of 32.
inline void round_row_bf16(const float* src, int64_t len, uint16_t* dst) {
  for (int64_t k = 0; k < len; k += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k));
    _mm512_storeu_si512(dst + k, (__m512i)v);
  }
}

// The layer's once-per-call rounding of x (LinearImpl::prepare_bf16): the same rounding the kernel applies
// when it converts rows itself, so both paths give identical outputs.
void prepare_bf16(const float* x, int64_t ldx, int64_t m0, int64_t m1, int64_t k, uint16_t* xb,
                  int64_t ldxb) {
  for (int64_t m = m0; m < m1; ++m) round_row_bf16(x + m * ldx, k, xb + m * ldxb);
}

// Rows [s0, s1) x N-tiles [tile_begin, tile_end), s1 - s0 <= kMBlock.
template <int kBits>
void run_rows(const PackedWeight& w, const LinearArgs& a, int64_t s0, int64_t s1, int64_t tile_begin,
              int64_t tile_end, uint16_t* panel, float* sums, uint16_t* xconv) {
  const size_t y_elem = dtype_bytes_for_output(a.y_dtype);
  const bool have_xb = a.xb != nullptr;
  Step s;
  s.panel = panel;
  s.ldy_bytes = a.ldy * static_cast<int64_t>(y_elem);
  s.y_dtype = a.y_dtype;
  for (int64_t t0 = tile_begin; t0 < tile_end; t0 += kNvMax) {
    const int nv = static_cast<int>(std::min<int64_t>(kNvMax, tile_end - t0));
    const int64_t n0 = t0 * kTileN;
    for (int v = 0; v < kNvMax; ++v)
      s.valid[v] = static_cast<int>(std::clamp<int64_t>(w.n - n0 - v * kTileN, 0, kTileN));
    s.bias = a.bias ? a.bias + n0 : nullptr;
    for (int64_t kb0 = 0; kb0 < w.k_blocks; kb0 += kPanelBlocks) {
      const int nb = static_cast<int>(std::min<int64_t>(kPanelBlocks, w.k_blocks - kb0));
      const int64_t k0 = kb0 * kBlockK;
      for (int v = 0; v < nv; ++v) dequant_tile_bf16<kBits, kPanelN>(w, t0 + v, kb0, nb, v, panel);
      s.pairs = nb * kBlockK / 2;
      s.first = kb0 == 0;
      s.last = kb0 + nb == w.k_blocks;
      for (int64_t mr = s0; mr < s1; mr += kMr) {
        const int rows = static_cast<int>(std::min<int64_t>(kMr, s1 - mr));
        // What the next call reads: the next rows at this k, or the first rows at the next k.
        int64_t pm = mr + rows, pk = k0;
        if (pm >= s1) pm = s0, pk = k0 + kPanelK;
        const int pf_rows = pk < w.k_padded() ? static_cast<int>(std::min<int64_t>(kMr, s1 - pm)) : 0;
        if (have_xb) {
          s.x = a.xb + mr * a.ldxb + k0;
          s.ldx = a.ldxb;
          s.pf_x = reinterpret_cast<const char*>(a.xb + pm * a.ldxb + pk);
          s.pf_x_ld = a.ldxb * 2;
          s.pf_x_shift = 2;  // 128 bf16 = 4 lines per row
        } else {
          for (int r = 0; r < rows; ++r)
            round_row_bf16(a.x + (mr + r) * a.ldx + k0, nb * kBlockK, xconv + r * kPanelK);
          s.x = xconv;
          s.ldx = kPanelK;
          s.pf_x = reinterpret_cast<const char*>(a.x + pm * a.ldx + pk);
          s.pf_x_ld = a.ldx * 4;
          s.pf_x_shift = 3;  // 128 fp32 = 8 lines per row
        }
        s.pf_x_lines = pf_rows << s.pf_x_shift;
        s.c = sums + (mr - s0) * kPanelN;
        s.pf_c = reinterpret_cast<const char*>(sums + (pm - s0) * kPanelN);
        s.pf_c_lines = s.first && pk == k0 ? 0 : pf_rows * kPanelN / 16;  // a first step reads no sums
        s.y = static_cast<uint8_t*>(a.y) + (mr * a.ldy + n0) * static_cast<int64_t>(y_elem);
        select_micro(rows, nv)(s);
      }
    }
  }
}

// K split into chunks of at most kChunkBlocks k-blocks, as even as possible: chunk c is k-blocks
// [chunk_begin(c), chunk_begin(c + 1)).
int64_t num_chunks(const PackedWeight& w) {
  return (w.k_blocks + kChunkBlocks - 1) / kChunkBlocks;
}
int64_t chunk_begin(const PackedWeight& w, int64_t chunks, int64_t c) {
  return w.k_blocks * c / chunks;
}

size_t scratch_bytes(const PackedWeight& w) {
  const int64_t chunks = num_chunks(w);
  const int64_t blocks = (w.k_blocks + chunks - 1) / chunks;  // the longest chunk
  const size_t panel = static_cast<size_t>(blocks * kBlockK * kPanelN) * 2;
  const size_t sums = chunks > 1 ? static_cast<size_t>(kMBlockScratch * kPanelN) * 4 : 0;
  return panel + sums;
}

// Rows [m_begin, m_end) (at most kMBlockScratch) x N-tiles [tile_begin, tile_end) with the caller's scratch:
// each 48-column panel is dequantized once per K chunk for all the item's rows, and every 8-row block runs
// over the whole chunk with its accumulators in registers. Needs the prepared bf16 rows (LinearArgs::xb).
// The accumulation chain of each output is the stack path's (one vdpbf16ps chain over k in order; partial
// sums stored as fp32 and reloaded unchanged), so both paths give the same bytes.
template <int kBits>
void run_scratch(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end,
                 int64_t tile_begin, int64_t tile_end) {
  const int64_t chunks = num_chunks(w);
  const int64_t chunk_pairs_max = (w.k_blocks + chunks - 1) / chunks * kBlockK / 2;
  uint16_t* panel = static_cast<uint16_t*>(a.scratch);
  float* sums = reinterpret_cast<float*>(panel + chunk_pairs_max * kPanelN * 2);
  const size_t y_elem = dtype_bytes_for_output(a.y_dtype);
  Step s;
  s.panel = panel;
  s.ldx = a.ldxb;
  s.ldy_bytes = a.ldy * static_cast<int64_t>(y_elem);
  s.y_dtype = a.y_dtype;
  s.pf_x_ld = a.ldxb * 2;
  s.pf_x_shift = 2;  // the first 128 bf16 (4 lines) of each of the next call's rows
  for (int64_t t0 = tile_begin; t0 < tile_end; t0 += kNvMax) {
    const int nv = static_cast<int>(std::min<int64_t>(kNvMax, tile_end - t0));
    const int64_t n0 = t0 * kTileN;
    for (int v = 0; v < kNvMax; ++v)
      s.valid[v] = static_cast<int>(std::clamp<int64_t>(w.n - n0 - v * kTileN, 0, kTileN));
    s.bias = a.bias ? a.bias + n0 : nullptr;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t kb0 = chunk_begin(w, chunks, c), kb1 = chunk_begin(w, chunks, c + 1);
      const int64_t k0 = kb0 * kBlockK;
      for (int v = 0; v < nv; ++v)
        dequant_tile_bf16<kBits, kPanelN>(w, t0 + v, kb0, static_cast<int>(kb1 - kb0), v, panel);
      s.pairs = (kb1 - kb0) * kBlockK / 2;
      s.first = c == 0;
      s.last = c + 1 == chunks;
      for (int64_t mr = m_begin; mr < m_end; mr += kMr) {
        const int rows = static_cast<int>(std::min<int64_t>(kMr, m_end - mr));
        // The next call: the next rows of this chunk, or the first rows of the next chunk or panel.
        int64_t pm = mr + rows, pk = k0;
        bool next_first = s.first;
        if (pm >= m_end) {
          pm = m_begin;
          pk = c + 1 < chunks ? kb1 * kBlockK : 0;
          next_first = c + 1 >= chunks;
        }
        const int pf_rows = static_cast<int>(std::min<int64_t>(kMr, m_end - pm));
        s.x = a.xb + mr * a.ldxb + k0;
        s.pf_x = reinterpret_cast<const char*>(a.xb + pm * a.ldxb + pk);
        s.pf_x_lines = pf_rows << s.pf_x_shift;
        s.c = sums + (mr - m_begin) * kPanelN;
        s.pf_c = reinterpret_cast<const char*>(sums + (pm - m_begin) * kPanelN);
        s.pf_c_lines = next_first ? 0 : pf_rows * kPanelN / 16;  // a first step reads no sums
        s.y = static_cast<uint8_t*>(a.y) + (mr * a.ldy + n0) * static_cast<int64_t>(y_elem);
        select_micro(rows, nv)(s);
      }
    }
  }
}

template <int kBits>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  if (a.scratch != nullptr && a.xb != nullptr) {
    for (int64_t m0 = m_begin; m0 < m_end; m0 += kMBlockScratch)
      run_scratch<kBits>(w, a, m0, std::min(m_end, m0 + kMBlockScratch), tile_begin, tile_end);
    return;
  }
  alignas(64) uint16_t panel[kPanelK * kPanelN];
  alignas(64) float sums[kMBlock * kPanelN];
  alignas(64) uint16_t xconv[kMr * kPanelK];
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kMBlock)
    run_rows<kBits>(w, a, m0, std::min(m_end, m0 + kMBlock), tile_begin, tile_end, panel, sums, xconv);
}

bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx512Bf16 && p.mode == ComputeMode::kExact &&
         (p.bits == 2 || p.bits == 3 || p.bits == 4 || p.bits == 8);
}

}  // namespace

extern const LinearImpl kGemmBf16Avx512Bf16 = {"gemm_bf16_f32_qw_8x48c2__avx512bf16",
                                               accepts,
                                               run_for_bits<run<2>, run<3>, run<4>, run<8>>,
                                               kMBlockScratch,
                                               prepare_bf16,
                                               scratch_bytes};

}  // namespace ark
