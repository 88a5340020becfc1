// The packed weight layout every CPU kernel (decode and GEMM, exact and int8) reads. One packed copy per
// layer.
//
// Coordinates. Output rows n are grouped in N-tiles of kTileN = 16 rows (one AVX-512 lane per row). The input
// dimension is re-ordered and padded once, at pack time, into "packed K" (kp): groups are laid out one after
// the other (act-order is resolved here: input channels are sorted by g_idx, stable), and each group is
// padded with zero codes up to a multiple of kBlockK = 32. k_source[kp] gives the original input channel of
// each packed position, or -1 for padding; the activations are gathered into the same order (padding = 0)
// before the kernels run, so padding contributes nothing. Group g covers k-blocks [group_block_begin[g],
// group_block_begin[g+1]). With group sizes that are multiples of 32 and no act-order, packed K is K rounded
// up to 32 and the gather is the identity (is_identity_k()).
//
// Codes. For one N-tile, the k-blocks follow each other in packed-K order; one k-block (16 rows x 32 k = 512
// codes) takes bits x 64 bytes, i.e. `bits` 64-byte chunks (one zmm each, 64-byte aligned). Inside a k-block
// the 32 k split into 8 "quads" of 4 consecutive k (quad q holds k = 4q .. 4q+3). A quad is stored
// VNNI-style: 16 dwords, dword i = row i of the tile, byte j of that dword = k 4q+j. So one quad is exactly
// the unsigned operand of vpdpbusd (u8 x s8 -> s32, 4 products per lane), and byte j of every dword is the
// 16-row column for one k. How quads share the chunks, for C = chunks of the low bits:
//   bits 8: chunk c holds quad c as raw bytes (C = 8).
//   bits 4: chunk c holds quad c in the low nibbles and quad c+4 in the high nibbles (C = 4).
//   bits 2: chunk c holds quad c + 2p in bits [2p, 2p+1] of every byte, p = 0..3 (C = 2).
//   bits 3: chunks 0 and 1 hold the low two bits of every code exactly like bits 2; chunk 2 holds the third
//           bit: bit p of each byte is bit 2 of quad p's code, p = 0..7.
// So unpacking a quad is a shift and a mask (plus a shift-or for bits 3) on whole registers, the same for
// every lane; an AVX2 kernel reads each chunk as two 32-byte halves (rows 0..7, rows 8..15).
//
// Scales and zero points, separate arrays (so the code chunks stay aligned), [n_tile][group][16 rows]:
//   scales: fp16 when every scale round-trips exactly (always for checkpoints, which store fp16), else fp32;
//   zeros:  uint8 for bits 2/3/4, uint16 for bits 8 (zero points reach 2^bits with GPTQ v1's borrow).
// Rows past N in the last tile have codes 0, scales 0 and zeros 0, so they compute 0 and are never stored.
// No per-group weight sums are needed: the kernels multiply unsigned codes by signed int8 activations and
// correct zero points with activation sums (z * sum(xq)), computed once per row and group.
//
// Memory: codes are N x K x bits / 8 plus N/K padding (none for multiples of 16/32); per (row, group) 3 bytes
// of scale and zero (4 for bits 8), against 2.125..3 bytes in a GPTQ/AWQ checkpoint, under 5% above the
// checkpoint tensors for group sizes >= 32 at 4 bits and >= 64 at 2 bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "common/aligned_bytes.h"

namespace ark {

inline constexpr int kTileN = 16;   // rows per N-tile
inline constexpr int kBlockK = 32;  // packed-K positions per k-block
inline constexpr int kChunkBytes = 64;

struct PackedWeight {
  int bits = 4;
  int64_t n = 0;           // out_features
  int64_t k = 0;           // in_features
  int64_t num_groups = 0;  // G
  int64_t n_tiles = 0;     // ceil(n / kTileN)
  int64_t k_blocks = 0;    // packed K / kBlockK
  bool scales_f16 = true;

  AlignedBytes codes;                      // [n_tiles][k_blocks][bits][64]
  AlignedBytes scales;                     // [n_tiles][G][16] fp16 or fp32
  AlignedBytes zeros;                      // [n_tiles][G][16] uint8, or uint16 when bits == 8
  std::vector<int32_t> group_block_begin;  // [G + 1], in k-blocks
  std::vector<int32_t> k_source;           // [k_padded]: original k, or -1 for padding
  bool identity_k = true;                  // k_source[i] == i for i < k, and k_padded == k
  std::vector<float> bias;                 // [n] or empty

  int64_t k_padded() const { return k_blocks * kBlockK; }
  bool is_identity_k() const { return identity_k; }
  size_t block_bytes() const { return static_cast<size_t>(bits) * kChunkBytes; }
  size_t tile_code_bytes() const { return static_cast<size_t>(k_blocks) * block_bytes(); }
  const uint8_t* tile_codes(int64_t tile) const { return codes.data() + tile * tile_code_bytes(); }
  size_t zero_bytes() const { return bits == 8 ? 2 : 1; }
  size_t scale_bytes() const { return scales_f16 ? 2 : 4; }
  const uint8_t* tile_scales(int64_t tile) const {
    return scales.data() + static_cast<size_t>(tile) * num_groups * kTileN * scale_bytes();
  }
  const uint8_t* tile_zeros(int64_t tile) const {
    return zeros.data() + static_cast<size_t>(tile) * num_groups * kTileN * zero_bytes();
  }
  size_t total_bytes() const;
};

struct QuantizedWeight;

// Packs a validated canonical weight. Temporaries: at most one layer's worth.
PackedWeight pack_weight(const QuantizedWeight& w);

// The code of (row, packed k) read back from the packed layout: the layout's definition in executable form,
// used by the reference kernel and by tests (with hand-written known answers).
int packed_code(const PackedWeight& p, int64_t row, int64_t kp);
float packed_scale(const PackedWeight& p, int64_t row, int64_t group);
int packed_zero(const PackedWeight& p, int64_t row, int64_t group);

}  // namespace ark
