// The packed weight layout every CUDA kernel of ark reads (tensor-core, SIMT and dequantize), and the
// functions that read one element of it. Plain C++ with __host__ __device__ markings, so the packer, the host
// tests (CI, no GPU) and the kernels share one definition of the layout.
//
// Coordinates. Output rows n form "n8 tiles" of 8 rows: the N of one mma.sync m16n8k16 B fragment. The input
// dimension is re-ordered once, at pack time, into "packed K" (kp): groups follow each other (act-order is
// resolved here: channels sorted by g_idx, stable) and each group is padded with zero codes to a multiple of
// 32 ("k32 blocks"), so a k32 block never straddles two groups; the total is padded to a multiple of 128
// ("chunks"). k_source[kp] names the original input channel of each packed position (-1 for padding); when
// the reorder is the identity, k_source is absent and kp >= K is padding. The kernels read x through this map
// while staging it in shared memory, so act-order costs no extra pass and no workspace; padding reads as 0, so
// padded codes contribute nothing.
//
// Codes. One lane of a warp owns, per (n8 tile, chunk), a run of `bits` 32-bit words: 32 * bits bits holding
// 4 k32 blocks x 8 codes of b bits each, block j' at bit 8*bits*j', code i of the block at bits*i on top of
// that (3-bit codes may straddle two words). Code i of lane l in k32 block j' is the weight of
//   row  n = 8 * tile + l / 4,
//   k    = 32 * j' + 8 * (i % 4) + 2 * (l % 4) + i / 4   (inside the chunk),
// which is exactly what m16n8k16 wants in its B fragment (row k = 2*(l%4) + {0,1} (+8), column n = l/4):
// with bits = 4 the word of block j' holds codes i and i + 4 (the two halves of one B register) in nibbles
// i and i + 4, so `(word >> 4i) & 0x000f000f | magic` is that register's two values plus a constant
// (docs/CUDA.md). Storage order: [n8 tile][chunk][lane][bits words], so one lane's words for a chunk are
// contiguous (one 16-byte load at 4 bits) and a warp reads 128 * bits contiguous bytes per tile and chunk.
//
// Scales and zero points: fp32 scales[tile][group][8] and uint16 zeros[tile][group][8] (zeros reach 2^bits
// with GPTQ v1's borrow); block_group[kp / 32] gives each k32 block's group. Rows past N have codes, scales
// and zeros 0 and are never stored.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define ARK_HD __host__ __device__ __forceinline__
#else
#define ARK_HD inline
#endif

namespace ark::cuda {

inline constexpr int kTileRows = 8;     // rows of one n8 tile
inline constexpr int kBlockK = 32;      // a k32 block: one group at most
inline constexpr int kChunkK = 128;     // k positions per chunk: 4 k32 blocks
inline constexpr int kWarpLanes = 32;

// Device pointers (or host pointers in host tests) of a packed layer plus its sizes: what a launch needs.
struct PackedView {
  const uint32_t* codes = nullptr;        // [n8_tiles][chunks][32][bits]
  const float* scales = nullptr;          // [n8_tiles][groups][8]
  const uint16_t* zeros = nullptr;        // [n8_tiles][groups][8]
  const int32_t* block_group = nullptr;   // [chunks * 4]
  const int32_t* k_source = nullptr;      // [chunks * 128], or null: identity, kp >= k is padding
  const float* bias = nullptr;            // [n] or null
  int64_t n = 0, k = 0;
  int64_t groups = 0, n8_tiles = 0, chunks = 0;
  int bits = 4;
  // block_group[4c] == c * chunk_group_step for every chunk c (0: one group; 1: g = 128; 2, 4: g = 64, 32;
  // groups never padded), else -1. Where it holds, a kernel knows each chunk's first group without reading
  // the table, so the gemv prologue copies the first scales beside the first codes (linear_gemv.cu).
  int32_t chunk_group_step = -1;
  // Every chunk's k32 blocks lie in one group (g a multiple of 128, or one group; with act-order where
  // each group fills whole chunks), padding past the last real block aside (x reads 0 there, so any group's
  // scale and zero point give 0). Where it holds, the wgmma kernels at <= 64 rows of x scale each chunk's
  // sums once instead of each weight (linear_wgmma.cu, Plan::wgmma_scale_after).
  bool chunk_one_group = false;

  ARK_HD int64_t k_packed() const { return chunks * kChunkK; }
};

// Original input channel of packed position kp, or -1 for padding.
ARK_HD int64_t source_k(const PackedView& p, int64_t kp) {
  if (p.k_source) return p.k_source[kp];
  return kp < p.k ? kp : -1;
}

// Lane and code index inside a chunk's k32 block for (row % 8, k offset inside the block): the inverse of the
// mapping in the header comment.
ARK_HD int lane_of(int row_in_tile, int k_in_block) {
  return 4 * row_in_tile + (k_in_block % 8) / 2;
}
ARK_HD int code_index_of(int k_in_block) {
  return (k_in_block / 8) + 4 * (k_in_block % 2);
}

// Bits [bit, bit + bits) of a lane's run of words (bits <= 8; may straddle two words).
ARK_HD uint32_t extract_code(const uint32_t* words, int bit, int bits) {
  const int w = bit >> 5, s = bit & 31;
  uint32_t v = words[w] >> s;
  if (s + bits > 32) v |= words[w + 1] << (32 - s);
  return v & ((1u << bits) - 1u);
}

// The code of (row n, packed position kp), read back through the layout: the executable definition used by
// the SIMT and dequantize kernels and by the host tests.
ARK_HD uint32_t packed_code(const PackedView& p, int64_t n, int64_t kp) {
  const int64_t tile = n / kTileRows, chunk = kp / kChunkK;
  const int kk = static_cast<int>(kp % kChunkK);
  const int block = kk / kBlockK, o = kk % kBlockK;
  const int lane = lane_of(static_cast<int>(n % kTileRows), o);
  const uint32_t* words = p.codes + ((tile * p.chunks + chunk) * kWarpLanes + lane) * p.bits;
  return extract_code(words, 8 * p.bits * block + p.bits * code_index_of(o), p.bits);
}

ARK_HD int64_t meta_index(const PackedView& p, int64_t n, int64_t group) {
  return ((n / kTileRows) * p.groups + group) * kTileRows + n % kTileRows;
}

// The dequantized weight of (n, kp) in fp32: s * (q - z), the canonical definition.
ARK_HD float packed_weight(const PackedView& p, int64_t n, int64_t kp) {
  const int64_t i = meta_index(p, n, p.block_group[kp / kBlockK]);
  return p.scales[i] * static_cast<float>(static_cast<int32_t>(packed_code(p, n, kp)) -
                                          static_cast<int32_t>(p.zeros[i]));
}

}  // namespace ark::cuda
