// Packs the canonical weight into the layout documented in packed_weight.h.
#include "linear/packed_weight.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <numeric>

#include "ark/dtype.h"
#include "ark/error.h"
#include "ark/quantized_weight.h"

namespace ark {

size_t PackedWeight::total_bytes() const {
  return codes.size() + scales.size() + zeros.size() + group_block_begin.size() * sizeof(int32_t) +
         k_source.size() * sizeof(int32_t) + bias.size() * sizeof(float);
}

namespace {

// Where the low bits (chunk, shift) of quad q of a k-block live, for bits 2, 3, 4 and 8.
struct BitSlot {
  int chunk;
  int shift;
};

BitSlot low_slot(int bits, int quad) {
  switch (bits) {
    case 8:
      return {quad, 0};
    case 4:
      return {quad % 4, 4 * (quad / 4)};
    default:  // 2 and the low two bits of 3
      return {quad % 2, 2 * (quad / 2)};
  }
}

int low_mask(int bits) {
  return bits == 3 ? 3 : (1 << bits) - 1;
}

// Byte offset of (row i of the tile, kk in the k-block) inside a chunk.
size_t lane_byte(int64_t row_in_tile, int kk) {
  return static_cast<size_t>(4 * row_in_tile + kk % 4);
}

bool fp16_exact(float s) {
  return fp16_to_float(float_to_fp16(s)) == s || s != s;
}

}  // namespace

PackedWeight pack_weight(const QuantizedWeight& w) {
  PackedWeight p;
  p.bits = w.bits;
  p.n = w.out_features;
  p.k = w.in_features;
  p.num_groups = w.num_groups();
  p.n_tiles = (p.n + kTileN - 1) / kTileN;
  const int64_t G = p.num_groups;

  // Packed K order: input channels sorted by group (stable, so without act-order it is the identity).
  std::vector<int32_t> order(p.k);
  std::iota(order.begin(), order.end(), 0);
  if (!w.g_idx.empty())
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return w.g_idx[a] < w.g_idx[b]; });
  std::vector<int64_t> count(G, 0);
  for (int64_t k = 0; k < p.k; ++k) ++count[w.group_of(k)];
  p.group_block_begin.assign(G + 1, 0);
  for (int64_t g = 0; g < G; ++g)
    p.group_block_begin[g + 1] =
        p.group_block_begin[g] + static_cast<int32_t>((count[g] + kBlockK - 1) / kBlockK);
  p.k_blocks = p.group_block_begin[G];
  p.k_source.assign(p.k_padded(), -1);
  {
    int64_t next = 0;
    for (int64_t g = 0; g < G; ++g)
      for (int64_t i = 0; i < count[g]; ++i) p.k_source[p.group_block_begin[g] * kBlockK + i] = order[next++];
  }
  p.identity_k = p.k_padded() == p.k;
  for (int64_t i = 0; i < p.k && p.identity_k; ++i) p.identity_k = p.k_source[i] == i;

  // Codes.
  p.codes = AlignedBytes(static_cast<size_t>(p.n_tiles) * p.tile_code_bytes());
  const int mask = low_mask(p.bits);
  for (int64_t n = 0; n < p.n; ++n) {
    const int64_t tile = n / kTileN, row = n % kTileN;
    uint8_t* tile_base = p.codes.data() + tile * p.tile_code_bytes();
    const uint8_t* src = w.codes.data() + n * p.k;
    for (int64_t kp = 0; kp < p.k_padded(); ++kp) {
      const int32_t k = p.k_source[kp];
      if (k < 0) continue;  // padding stays 0
      const int code = src[k];
      const int kk = static_cast<int>(kp % kBlockK), quad = kk / 4;
      uint8_t* block = tile_base + (kp / kBlockK) * p.block_bytes();
      const BitSlot lo = low_slot(p.bits, quad);
      block[lo.chunk * kChunkBytes + lane_byte(row, kk)] |= static_cast<uint8_t>((code & mask) << lo.shift);
      if (p.bits == 3)
        block[2 * kChunkBytes + lane_byte(row, kk)] |= static_cast<uint8_t>(((code >> 2) & 1) << quad);
    }
  }

  // Scales and zero points, [tile][group][16].
  p.scales_f16 = std::all_of(w.scales.begin(), w.scales.end(), fp16_exact);
  p.scales = AlignedBytes(static_cast<size_t>(p.n_tiles) * G * kTileN * p.scale_bytes());
  p.zeros = AlignedBytes(static_cast<size_t>(p.n_tiles) * G * kTileN * p.zero_bytes());
  for (int64_t n = 0; n < p.n; ++n) {
    const int64_t tile = n / kTileN, row = n % kTileN;
    for (int64_t g = 0; g < G; ++g) {
      const size_t at = static_cast<size_t>((tile * G + g) * kTileN + row);
      const float s = w.scales[n * G + g];
      const int32_t z = w.zeros[n * G + g];
      if (p.scales_f16) {
        const uint16_t h = float_to_fp16(s);
        std::memcpy(p.scales.data() + at * 2, &h, 2);
      } else {
        std::memcpy(p.scales.data() + at * 4, &s, 4);
      }
      if (p.bits == 8) {
        const uint16_t z16 = static_cast<uint16_t>(z);
        std::memcpy(p.zeros.data() + at * 2, &z16, 2);
      } else {
        p.zeros.data()[at] = static_cast<uint8_t>(z);
      }
    }
  }
  return p;
}

int packed_code(const PackedWeight& p, int64_t row, int64_t kp) {
  const int64_t tile = row / kTileN, r = row % kTileN;
  const int kk = static_cast<int>(kp % kBlockK), quad = kk / 4;
  const uint8_t* block = p.tile_codes(tile) + (kp / kBlockK) * p.block_bytes();
  const BitSlot lo = low_slot(p.bits, quad);
  int code = (block[lo.chunk * kChunkBytes + lane_byte(r, kk)] >> lo.shift) & low_mask(p.bits);
  if (p.bits == 3) code |= ((block[2 * kChunkBytes + lane_byte(r, kk)] >> quad) & 1) << 2;
  return code;
}

float packed_scale(const PackedWeight& p, int64_t row, int64_t group) {
  const size_t at = static_cast<size_t>(group * kTileN + row % kTileN);
  const uint8_t* base = p.tile_scales(row / kTileN);
  if (p.scales_f16) {
    uint16_t h;
    std::memcpy(&h, base + at * 2, 2);
    return fp16_to_float(h);
  }
  float s;
  std::memcpy(&s, base + at * 4, 4);
  return s;
}

int packed_zero(const PackedWeight& p, int64_t row, int64_t group) {
  const size_t at = static_cast<size_t>(group * kTileN + row % kTileN);
  const uint8_t* base = p.tile_zeros(row / kTileN);
  if (p.bits == 8) {
    uint16_t z;
    std::memcpy(&z, base + at * 2, 2);
    return z;
  }
  return base[at];
}

}  // namespace ark
