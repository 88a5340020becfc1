// The CUDA packer: canonical weight -> the layout documented in cuda_layout.h.
#include "kernels/cuda/cuda_pack.h"

#include <algorithm>
#include <numeric>

#include "ark/error.h"

namespace ark::cuda {

PackedView HostPacked::view() const {
  PackedView v;
  v.codes = codes.data();
  v.scales = scales.data();
  v.zeros = zeros.data();
  v.block_group = block_group.data();
  v.k_source = k_source.empty() ? nullptr : k_source.data();
  v.n = n;
  v.k = k;
  v.groups = groups;
  v.n8_tiles = n8_tiles;
  v.chunks = chunks;
  v.bits = bits;
  v.chunk_group_step = chunk_group_step;
  v.chunk_one_group = chunk_one_group;
  return v;
}

namespace {

// PackedView::chunk_group_step of a block-group table: the step a with block_group[4c] == a * c for every
// chunk c, among 0, 1, 2 and 4 (one group, g = 128, 64, 32), or -1.
int32_t chunk_group_step_of(const std::vector<int32_t>& block_group, int64_t chunks) {
  for (int32_t a : {0, 1, 2, 4}) {
    bool holds = true;
    for (int64_t c = 0; c < chunks && holds; ++c)
      holds = block_group[static_cast<size_t>(4 * c)] == a * c;
    if (holds) return a;
  }
  return -1;
}

// PackedView::chunk_one_group: every chunk's k32 blocks lie in one group, the blocks from `real_blocks` on
// (the padding that rounds packed K up to whole chunks, whose x reads 0) aside.
bool chunk_one_group_of(const std::vector<int32_t>& block_group, size_t real_blocks) {
  for (size_t b = 0; b < real_blocks; ++b)
    if (b % 4 != 0 && block_group[b] != block_group[b - b % 4]) return false;
  return true;
}

}  // namespace

HostPacked pack_for_cuda(const QuantizedWeight& w) {
  w.validate();
  ARK_CHECK(w.bits == 2 || w.bits == 3 || w.bits == 4 || w.bits == 8, "pack_for_cuda: bits ", w.bits,
            " is not supported (expected 2, 3, 4 or 8)");
  HostPacked p;
  p.bits = w.bits;
  p.n = w.out_features;
  p.k = w.in_features;
  p.groups = w.num_groups();
  p.n8_tiles = (p.n + kTileRows - 1) / kTileRows;

  // Packed K: channels sorted by group (stable, so plain layouts keep their order), each group padded to a
  // multiple of 32, the total to a multiple of 128.
  std::vector<int32_t> order(static_cast<size_t>(p.k));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return w.group_of(a) < w.group_of(b); });
  std::vector<int32_t> source;  // original k per packed position, -1 for padding
  std::vector<int32_t> block_group;
  size_t i = 0;
  for (int64_t g = 0; g < p.groups; ++g) {
    const size_t begin = source.size();
    while (i < order.size() && w.group_of(order[i]) == g) source.push_back(order[i++]);
    if (source.size() == begin) continue;  // an empty group (act-order can leave one) takes no block
    while (source.size() % kBlockK) source.push_back(-1);
    for (size_t b = begin / kBlockK; b < source.size() / kBlockK; ++b) block_group.push_back(static_cast<int32_t>(g));
  }
  const size_t real_blocks = block_group.size();
  while (source.size() % kChunkK) {
    source.push_back(-1);
    if (source.size() % kBlockK == 0) block_group.push_back(0);  // padding blocks: x reads 0 there
  }
  p.chunks = static_cast<int64_t>(source.size()) / kChunkK;
  p.block_group = std::move(block_group);
  p.chunk_group_step = chunk_group_step_of(p.block_group, p.chunks);
  p.chunk_one_group = chunk_one_group_of(p.block_group, real_blocks);
  bool identity = true;
  for (size_t kp = 0; kp < source.size(); ++kp)
    if (source[kp] != (static_cast<int64_t>(kp) < p.k ? static_cast<int32_t>(kp) : -1)) identity = false;
  if (!identity) p.k_source = source;

  // Codes: walk every (row, packed position) and put its code where cuda_layout.h says it lives.
  p.codes.assign(static_cast<size_t>(p.n8_tiles * p.chunks * kWarpLanes * p.bits), 0u);
  for (int64_t n = 0; n < p.n; ++n) {
    const int64_t tile = n / kTileRows;
    for (int64_t kp = 0; kp < p.chunks * kChunkK; ++kp) {
      const int32_t src = source[static_cast<size_t>(kp)];
      if (src < 0) continue;
      const uint32_t q = w.codes[static_cast<size_t>(n * p.k + src)];
      const int kk = static_cast<int>(kp % kChunkK), block = kk / kBlockK, o = kk % kBlockK;
      const int lane = lane_of(static_cast<int>(n % kTileRows), o);
      uint32_t* words = p.codes.data() + ((tile * p.chunks + kp / kChunkK) * kWarpLanes + lane) * p.bits;
      const int bit = 8 * p.bits * block + p.bits * code_index_of(o);
      words[bit >> 5] |= q << (bit & 31);
      if ((bit & 31) + p.bits > 32) words[(bit >> 5) + 1] |= q >> (32 - (bit & 31));
    }
  }

  p.scales.assign(static_cast<size_t>(p.n8_tiles * p.groups * kTileRows), 0.0f);
  p.zeros.assign(p.scales.size(), 0);
  PackedView v = p.view();
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t g = 0; g < p.groups; ++g) {
      const int64_t idx = meta_index(v, n, g);
      p.scales[static_cast<size_t>(idx)] = w.scales[static_cast<size_t>(n * p.groups + g)];
      p.zeros[static_cast<size_t>(idx)] = static_cast<uint16_t>(w.zeros[static_cast<size_t>(n * p.groups + g)]);
    }
  return p;
}

}  // namespace ark::cuda
