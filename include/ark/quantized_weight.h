// The canonical quantized weight: every on-disk layout decodes into this form and every backend packs from it,
// so storage formats never leak into kernels.
//
//   W[n][k] = scales[n][g] * (codes[n][k] - zeros[n][g]),   g = g_idx[k] if g_idx is present, else k / group_size
//
// It is laid out like torch's nn.Linear weight: one row per output feature n, K contiguous codes per row.
#pragma once

#include <cstdint>
#include <vector>

#include "ark/error.h"

namespace ark {

// How a checkpoint stores the packed integers and zero points.
enum class PackingLayout : uint8_t {
  kGptqV1,  // GPTQ layout, zero points stored minus one (auto_round:auto_gptq, auto_round:gptq, gptq)
  kGptqV2,  // GPTQ layout, zero points stored as they are (auto_round, auto_round:gptqmodel)
  kAwq,     // AWQ layout: 4-bit, packed along N in the interleaved order 0,2,4,6,1,3,5,7
};

// What one quantized linear layer is: enough to size its tensors and choose kernels.
struct QuantScheme {
  int bits = 4;             // 2, 3, 4 or 8
  int64_t group_size = 128; // > 0, or -1 for one group spanning all of K (per-channel)
  bool sym = true;          // symmetric: every zero point is 2^(bits-1)
  PackingLayout layout = PackingLayout::kGptqV1;
};

struct QuantizedWeight {
  int64_t out_features = 0;  // N
  int64_t in_features = 0;   // K
  int bits = 4;
  int64_t group_size = 0;    // resolved: in_features when the scheme says -1
  bool sym = true;
  std::vector<uint8_t> codes;   // [N][K], each in [0, 2^bits)
  std::vector<float> scales;    // [N][G]
  std::vector<int32_t> zeros;   // [N][G]; in [0, 2^bits], where 2^bits arises from GPTQ-v1 borrow (see FORMATS.md)
  std::vector<int32_t> g_idx;   // [K] group of each input channel (act-order), or empty

  int64_t num_groups() const { return (in_features + group_size - 1) / group_size; }
  int64_t group_of(int64_t k) const { return g_idx.empty() ? k / group_size : g_idx[k]; }
  float dequant(int64_t n, int64_t k) const {
    const int64_t g = group_of(k);
    const int64_t ng = n * num_groups() + g;
    return scales[ng] * static_cast<float>(static_cast<int32_t>(codes[n * in_features + k]) - zeros[ng]);
  }
  // True when g_idx is present and differs from k / group_size (real act-order), not merely stored.
  bool has_act_order() const {
    for (size_t k = 0; k < g_idx.size(); ++k)
      if (g_idx[k] != static_cast<int32_t>(static_cast<int64_t>(k) / group_size)) return true;
    return false;
  }
  // Throws ark::Error if sizes or values are inconsistent (codes out of range, g_idx out of range, ...).
  void validate() const;
};

}  // namespace ark
