// Decode (small-M) kernel, exact mode, AVX-512 F/BW: y[m][n] = sum_g s[n,g] * sum_k x[m,k] (q[n,k] - z[n,g]),
// fp32 products and sums. Any bits (2/3/4/8), any group layout, any rows.
//
// Each k-block is read once per call (per kRows rows), unpacked in registers into its 8 quads; byte j of
// every row dword is one k's 16-row column, pulled out with one vpshufb, made (q - z) in int32 (exact, and no
// cancellation between sum(q x) and z sum(x) later), converted and multiplied into the rows' accumulators.
// That is 3 integer/convert instructions per 16 weights plus one FMA per row, several times the work of the
// int8 kernel, which is why int8 is the default where VNNI exists. Several accumulators per row cover the FMA
// latency (4 cycles) times its throughput.
// GCC 12 reports its intrinsics' _mm512_undefined_*() placeholders as maybe-uninitialized once inlined.
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

constexpr int kRows = 4;
// Software prefetch of every line of each k-block, 4 KiB ahead, as the int8 decode kernel does (the reasons
// are in gemv_qd8_f32_qw_16x32c4__avx512vnni.cpp). This kernel is compute-bound at K = 896 (no change there),
// but at K = 4864 one Zen 4 thread went from 290 to 205 us per 4864x896 int4 call (thread CPU time) against
// half the lines 1 KiB ahead.
constexpr int kPrefetchBytes = 4096;

// vpshufb controls that move byte j of every dword to its byte 0 and zero the rest (0x80 clears a byte).
// vpshufb indexes within each 16-byte lane, so dword d of a lane finds its byte j at 4d + j.
inline __m512i byte_select(int j) {
  auto c = [j](int d) { return static_cast<int>(0x80808000u | static_cast<uint32_t>(4 * d + j)); };
  return _mm512_set4_epi32(c(3), c(2), c(1), c(0));
}

// The loops carry unroll pragmas: GCC 12 left the loop over a k-block's 8 quads rolled, so the unpacked
// quads went through the stack (8 stores after the unpack, one reload per step); unrolled, they stay in
// registers.
template <int kBits, int R>
void tile_rows(const PackedWeight& w, const LinearArgs& a, int64_t m0, int64_t tile) {
  constexpr int A = R <= 2 ? 4 : 2;  // accumulators per row
  const int64_t G = w.num_groups;
  const size_t block_bytes = w.block_bytes();
  const uint8_t* codes = w.tile_codes(tile);
  const float* x[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) x[r] = a.x + (m0 + r) * a.ldx;
  const __m512i sel[4] = {byte_select(0), byte_select(1), byte_select(2), byte_select(3)};
  __m512 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    const int64_t b0 = w.group_block_begin[g], b1 = w.group_block_begin[g + 1];
    const __m512i z = load_tile_zeros_avx512(w, tile, g);
    __m512 part[R][A];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int i = 0; i < A; ++i) part[r][i] = _mm512_setzero_ps();
    for (int64_t b = b0; b < b1; ++b) {
      const uint8_t* block = codes + b * block_bytes;
#pragma GCC unroll 8
      for (int c = 0; c < kBits; ++c)  // a k-block is kBits 64-byte lines
        _mm_prefetch(reinterpret_cast<const char*>(block + kPrefetchBytes + kChunkBytes * c), _MM_HINT_T0);
      __m512i quads[8];
      unpack_block_quads_avx512<kBits>(block, quads);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q)
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          const __m512 wv = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_shuffle_epi8(quads[q], sel[j]), z));
          const int64_t kp = b * kBlockK + 4 * q + j;
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r)
            part[r][(4 * q + j) % A] =
                _mm512_fmadd_ps(wv, _mm512_set1_ps(x[r][kp]), part[r][(4 * q + j) % A]);
        }
    }
    const __m512 s = load_tile_scales_avx512(w, tile, g);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      __m512 sum = part[r][0];
#pragma GCC unroll 4
      for (int i = 1; i < A; ++i) sum = _mm512_add_ps(sum, part[r][i]);
      acc[r] = _mm512_fmadd_ps(sum, s, acc[r]);
    }
  }
  const int64_t n0 = tile * kTileN;
  const int valid = static_cast<int>(std::min<int64_t>(kTileN, w.n - n0));
  const size_t y_elem = x86::dtype_bytes_for_output(a.y_dtype);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    auto* y_row = static_cast<uint8_t*>(a.y) + ((m0 + r) * a.ldy + n0) * y_elem;
    store_output_row_avx512(acc[r], a.bias ? a.bias + n0 : nullptr, a.y_dtype, y_row, valid);
  }
}

template <int kBits>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    int64_t m = m_begin;
    for (; m + kRows <= m_end; m += kRows) tile_rows<kBits, kRows>(w, a, m, tile);
    switch (m_end - m) {
      case 3:
        tile_rows<kBits, 3>(w, a, m, tile);
        break;
      case 2:
        tile_rows<kBits, 2>(w, a, m, tile);
        break;
      case 1:
        tile_rows<kBits, 1>(w, a, m, tile);
        break;
      default:
        break;
    }
  }
}

bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx512 && p.mode == ComputeMode::kExact;
}

}  // namespace

extern const LinearImpl kGemvF32Avx512 = {"gemv_f32_qw_16x32__avx512", accepts,
                                          run_for_bits<run<2>, run<3>, run<4>, run<8>>, 0};

}  // namespace ark
