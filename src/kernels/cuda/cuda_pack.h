// Packs a canonical QuantizedWeight into the CUDA layout of cuda_layout.h, on the host. Plain C++ (no CUDA
// headers): the library links it with or without the CUDA backend, so CI tests the layout on machines with
// no GPU. The CUDA layer copies these arrays to the device at post_init.
#pragma once

#include <cstdint>
#include <vector>

#include "ark/quantized_weight.h"
#include "kernels/cuda/cuda_layout.h"

namespace ark::cuda {

struct HostPacked {
  int bits = 4;
  int64_t n = 0, k = 0, groups = 0, n8_tiles = 0, chunks = 0;
  std::vector<uint32_t> codes;       // [n8_tiles][chunks][32][bits]
  std::vector<float> scales;         // [n8_tiles][groups][8]
  std::vector<uint16_t> zeros;       // [n8_tiles][groups][8]
  std::vector<int32_t> block_group;  // [chunks * 4]
  std::vector<int32_t> k_source;     // [chunks * 128], empty when the reorder is the identity
  int32_t chunk_group_step = -1;     // PackedView::chunk_group_step
  bool chunk_one_group = false;      // PackedView::chunk_one_group

  // A view over these host arrays (bias left null): host tests read the layout through it.
  PackedView view() const;
};

// Throws ark::Error when the weight is inconsistent (it is validated first).
HostPacked pack_for_cuda(const QuantizedWeight& w);

}  // namespace ark::cuda
