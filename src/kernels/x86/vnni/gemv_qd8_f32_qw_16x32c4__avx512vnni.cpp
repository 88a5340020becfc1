// Decode (small-M) kernel, int8 mode, AVX-512 VNNI: y[m][n] = sum_g s[n,g] d[m,g] (sum_k q[n,k] xq[m,k]
// - z[n,g] sum_k xq[m,k]). Any bits (2/3/4/8), any group layout, any rows.
//
// The weights are streamed once per call: for each N-tile (16 rows) the k-blocks are read in order, unpacked
// in registers into their 8 quads (shift and mask; packed_weight.h) and fed straight to vpdpbusd, whose u8 x
// s8 operands are exactly the packed codes and the int8 activations: one instruction does 64 multiply-adds,
// so at M = 1 the kernel needs about 1.3 instructions per packed 64 bytes of int4 weights and the memory
// stream, not the core, sets the pace. Up to kRows = 8 activation rows share each unpacked block (for M > 8
// the tile's codes are read again, from L1/L2, and unpacked again): at M = 16 the unpack is paid twice, not
// four times as with blocks of 4. Below 4 rows two int32 accumulators per row break the vpdpbusd dependency
// chain (latency 4-5 cycles) so one row alone keeps the unit busy. GCC 12 reports its own intrinsics'
// _mm512_undefined_*() placeholders as maybe-uninitialized once they are inlined here; the values are never
// read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>

#include "kernels/dispatch.h"
#include "kernels/x86/avx512/store_output_avx512.h"
#include "kernels/x86/avx512/unpack_quads_avx512.h"

namespace ark {
namespace {

using x86::load_tile_scales_avx512;
using x86::load_tile_zeros_avx512;
using x86::store_output_row_avx512;
using x86::unpack_block_quads_avx512;

constexpr int kRows = 8;
// Software prefetch: every 64-byte line of each k-block, 4 KiB ahead of the block in hand (tiles follow each
// other in memory, so near a tile's end this reaches into the next one). One core keeps only so many misses
// in flight, and hardware prefetchers commonly stop at 4 KiB page boundaries; with half the lines (one of two
// at int4) 1 KiB ahead, one Zen 4 core streamed cold int4 codes at ~20 GB/s where plain loads read ~30. Every
// line 4 KiB ahead took the int4 layers of a Qwen2.5-0.5B decode step from 9.8 to 6.6-7.0 ms of thread CPU
// time on one thread (896x9728: 221 -> 155-165 us, 896x896: 27 -> 18 us); 1-2 KiB gained less, 3-8 KiB were
// within noise of each other, and the T1/T2 hints lost ~30% against T0 (docs/PERFORMANCE.md).
constexpr int kPrefetchBytes = 4096;

// acc += u8 . broadcast(4 int8 at p). GCC 12 routes the vpdpbusd builtin's accumulator through the stack; the
// instruction as inline asm keeps it in a register (the same finding as the VNNI GEMM), and the embedded
// {1to16} broadcast folds the activation load into the dot product, so no separate broadcast uop competes
// with the unpack for the vector ports.
inline __m512i dpbusd_bcast(__m512i acc, __m512i u8, const int8_t* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u8), "m"(*reinterpret_cast<const int32_t*>(p)));
  return acc;
}

// The loops over rows carry unroll pragmas: unrolled before scalar replacement, the row accumulators stay in
// registers. Rolled, GCC 12 kept a stack copy of acc[] (one store per row and group) for the output loop and
// moved unpacked quads through the stack inside the k-block loop at 2 to 5 rows. A few such moves remain at
// 3 to 6 rows (2-6 per k-block of 24-48 vpdpbusd, 24 over all instances, from 134); none at 8 rows.
template <int kBits, int R>
void tile_rows(const PackedWeight& w, const LinearArgs& a, int64_t m0, int64_t tile) {
  const int64_t G = w.num_groups;
  const size_t block_bytes = w.block_bytes();
  const uint8_t* codes = w.tile_codes(tile);
  const int8_t* xq[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) xq[r] = a.xq + (m0 + r) * a.ldxq;
  __m512 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    const int64_t b0 = w.group_block_begin[g], b1 = w.group_block_begin[g + 1];
    // One row alone needs two accumulators to hide vpdpbusd's latency (4-5 cycles); from 4 rows on the rows
    // themselves interleave enough chains, and one each leaves registers for 8 rows.
    constexpr int kAcc = R >= 4 ? 1 : 2;
    __m512i dot[R][kAcc];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int j = 0; j < kAcc; ++j) dot[r][j] = _mm512_setzero_si512();
    for (int64_t b = b0; b < b1; ++b) {
      const uint8_t* block = codes + b * block_bytes;
      // A k-block is kBits lines (block_bytes = kBits x 64).
#pragma GCC unroll 8
      for (int c = 0; c < kBits; ++c)
        _mm_prefetch(reinterpret_cast<const char*>(block + kPrefetchBytes + kChunkBytes * c), _MM_HINT_T0);
      __m512i quads[8];
      unpack_block_quads_avx512<kBits>(block, quads);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q)
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
          dot[r][q % kAcc] = dpbusd_bcast(dot[r][q % kAcc], quads[q], xq[r] + b * kBlockK + 4 * q);
    }
    // Fold the group: s * d * (dot - z * sum(xq)), the zero point corrected in fp32 so long per-channel
    // groups cannot overflow int32.
    const __m512 s = load_tile_scales_avx512(w, tile, g);
    const __m512 z = _mm512_cvtepi32_ps(load_tile_zeros_avx512(w, tile, g));
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const int64_t mg = (m0 + r) * G + g;
      const __m512i dsum = kAcc == 2 ? _mm512_add_epi32(dot[r][0], dot[r][kAcc - 1]) : dot[r][0];
      const __m512 d = _mm512_cvtepi32_ps(dsum);
      const __m512 corrected = _mm512_fnmadd_ps(z, _mm512_set1_ps(static_cast<float>(a.xq_sum[mg])), d);
      acc[r] = _mm512_fmadd_ps(corrected, _mm512_mul_ps(s, _mm512_set1_ps(a.x_scale[mg])), acc[r]);
    }
  }
  const int64_t n0 = tile * kTileN;
  const int valid = static_cast<int>(std::min<int64_t>(kTileN, w.n - n0));
  const size_t y_elem = x86::dtype_bytes_for_output(a.y_dtype);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    auto* y_row = static_cast<uint8_t*>(a.y) + ((m0 + r) * a.ldy + n0) * y_elem;
    store_output_row_avx512(acc[r], a.bias ? a.bias + n0 : nullptr, a.y_dtype, y_row, valid);
  }
}

// The last m_end - m < kRows rows of a tile, with a register block of exactly that many rows.
template <int kBits, int R = kRows - 1>
void rest_rows(const PackedWeight& w, const LinearArgs& a, int64_t m, int64_t rows, int64_t tile) {
  if constexpr (R >= 1) {
    if (rows == R) return tile_rows<kBits, R>(w, a, m, tile);
    rest_rows<kBits, R - 1>(w, a, m, rows, tile);
  }
}

template <int kBits>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    int64_t m = m_begin;
    for (; m + kRows <= m_end; m += kRows) tile_rows<kBits, kRows>(w, a, m, tile);
    rest_rows<kBits>(w, a, m, m_end - m, tile);
  }
}

bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx512Vnni && p.mode == ComputeMode::kInt8;
}

}  // namespace

extern const LinearImpl kGemvQd8Avx512Vnni = {"gemv_qd8_f32_qw_16x32c4__avx512vnni", accepts,
                                              run_for_bits<run<2>, run<3>, run<4>, run<8>>, 0};

}  // namespace ark
