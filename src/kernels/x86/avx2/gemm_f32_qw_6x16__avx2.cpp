// Large-M (prefill) GEMM, exact mode, AVX2 + FMA: the fallback for CPUs without AVX-512 (Haswell .. Zen 3,
// and client Intel parts). W is dequantized once per panel to fp32 (s · q − s · z), x is used as it is, fp32
// FMA.
//
// Blocking: a panel is one N-tile (16 columns = 2 ymm) x 256 packed-K, a 16 KiB fp32 buffer [k][16]; 6 rows x
// 2 vectors = 12 ymm accumulators, plus 2 panel vectors and a broadcast: 15 of the 16 registers. Partial sums
// of the work item's rows live in a stack buffer (120 x 16 fp32). Each chunk of the packed layout is read as
// two 32-byte halves: rows 0..7 and rows 8..15 of the tile.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/dispatch.h"
#include "kernels/x86/avx2/unpack_quads_avx2.h"

namespace ark {
namespace {

using x86::load_half_scales_avx2;
using x86::load_half_zeros_avx2;
using x86::unpack_half_quads_avx2;

constexpr int kMr = 6;
constexpr int kPanelBlocks = 8;
constexpr int kPanelK = kPanelBlocks * kBlockK;  // 256 packed-K
constexpr int64_t kMBlock = 120;

template <int kBits>
void dequant_tile_f32(const PackedWeight& w, int64_t tile, int64_t kb0, int nb, float* panel) {
  const __m256i byte_mask = _mm256_set1_epi32(0xff);
  const uint8_t* codes = w.tile_codes(tile);
  int64_t g = 0;
  for (int b = 0; b < nb; ++b) {
    while (w.group_block_begin[static_cast<size_t>(g + 1)] <= kb0 + b) ++g;
    for (int h = 0; h < 2; ++h) {
      const __m256 s = load_half_scales_avx2(w, tile, g, h);
      const __m256 neg_zs = _mm256_mul_ps(_mm256_cvtepi32_ps(load_half_zeros_avx2(w, tile, g, h)),
                                          _mm256_sub_ps(_mm256_setzero_ps(), s));
      __m256i quads[8];
      unpack_half_quads_avx2<kBits>(codes + (kb0 + b) * w.block_bytes(), h, quads);
      // Unrolled, the 8 quads stay in registers (rolled, GCC stores them to the stack and reloads each).
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q)
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          const __m256i c = _mm256_and_si256(_mm256_srli_epi32(quads[q], 8 * j), byte_mask);
          const int64_t k = 32 * b + 4 * q + j;
          _mm256_store_ps(panel + k * kTileN + 8 * h, _mm256_fmadd_ps(_mm256_cvtepi32_ps(c), s, neg_zs));
        }
    }
  }
}

// The loops over rows and halves carry unroll pragmas: unrolled before scalar replacement, the 12
// accumulators stay in registers from the first load to the last store. Without them GCC 12 left the row
// loop rolled at -O2 (2 FMAs per trip, accumulators loaded and stored through the array in memory) and at
// -O3 kept a stack copy of the array, moving accumulators through it inside the k loop.
template <int MR>
void micro_kernel(const float* x, int64_t ldx, const float* panel, int64_t len, float* c, bool first) {
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h)
      acc[r][h] = first ? _mm256_setzero_ps() : _mm256_load_ps(c + r * kTileN + 8 * h);
  }
  for (int64_t k = 0; k < len; ++k) {
    const __m256 b0 = _mm256_load_ps(panel + k * kTileN), b1 = _mm256_load_ps(panel + k * kTileN + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(x + r * ldx + k);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) _mm256_store_ps(c + r * kTileN + 8 * h, acc[r][h]);
  }
}

using MicroFn = void (*)(const float*, int64_t, const float*, int64_t, float*, bool);
constexpr MicroFn kMicro[kMr + 1] = {nullptr,         micro_kernel<1>, micro_kernel<2>, micro_kernel<3>,
                                     micro_kernel<4>, micro_kernel<5>, micro_kernel<6>};

// bf16 with round-to-nearest-even (kernel outputs are finite).
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// One finished 16-column row segment to y (dtype of y), bias added, columns >= valid untouched.
void store_row(const float* sums, const float* bias, DType dtype, uint8_t* y_row, int valid) {
  alignas(32) float v[kTileN];
  for (int i = 0; i < kTileN; ++i) v[i] = sums[i] + (bias ? bias[i < valid ? i : 0] : 0.0f);
  if (dtype == DType::F32) {
    std::memcpy(y_row, v, static_cast<size_t>(valid) * 4);
    return;
  }
  alignas(32) uint16_t h[kTileN];
  if (dtype == DType::BF16) {
    for (int i = 0; i < kTileN; ++i) h[i] = to_bf16(v[i]);
  } else {
    _mm_store_si128(reinterpret_cast<__m128i*>(h),
                    _mm256_cvtps_ph(_mm256_load_ps(v), _MM_FROUND_TO_NEAREST_INT));
    _mm_store_si128(reinterpret_cast<__m128i*>(h + 8),
                    _mm256_cvtps_ph(_mm256_load_ps(v + 8), _MM_FROUND_TO_NEAREST_INT));
  }
  std::memcpy(y_row, h, static_cast<size_t>(valid) * 2);
}

template <int kBits>
void run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
         int64_t tile_end) {
  alignas(32) float panel[kPanelK * kTileN];
  alignas(32) float sums[kMBlock * kTileN];
  const size_t y_elem = a.y_dtype == DType::F32 ? 4 : 2;
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kMBlock) {
    const int64_t m1 = std::min(m_end, m0 + kMBlock);
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      for (int64_t kb0 = 0; kb0 < w.k_blocks; kb0 += kPanelBlocks) {
        const int nb = static_cast<int>(std::min<int64_t>(kPanelBlocks, w.k_blocks - kb0));
        dequant_tile_f32<kBits>(w, t, kb0, nb, panel);
        for (int64_t mr = m0; mr < m1; mr += kMr) {
          const int rows = static_cast<int>(std::min<int64_t>(kMr, m1 - mr));
          kMicro[rows](a.x + mr * a.ldx + kb0 * kBlockK, a.ldx, panel, nb * kBlockK,
                       sums + (mr - m0) * kTileN, kb0 == 0);
        }
      }
      const int64_t n0 = t * kTileN;
      const int valid = static_cast<int>(std::min<int64_t>(kTileN, w.n - n0));
      for (int64_t m = m0; m < m1; ++m)
        store_row(sums + (m - m0) * kTileN, a.bias ? a.bias + n0 : nullptr, a.y_dtype,
                  static_cast<uint8_t*>(a.y) + (m * a.ldy + n0) * y_elem, valid);
    }
  }
}

bool accepts(const LinearProblem& p) {
  return p.isa >= IsaLevel::kAvx2 && p.mode == ComputeMode::kExact &&
         (p.bits == 2 || p.bits == 3 || p.bits == 4 || p.bits == 8);
}

}  // namespace

extern const LinearImpl kGemmF32Avx2 = {"gemm_f32_qw_6x16__avx2", accepts,
                                        run_for_bits<run<2>, run<3>, run<4>, run<8>>, kMBlock};

}  // namespace ark
