// QuantLinear's private state, shared by the files that implement the class (quant_linear.cpp: load, pack,
// forward; quant_linear_export.cpp: reading the packed weight back). Not part of the public API.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ark/quant_linear.h"
#include "kernels/cpu_features.h"
#include "kernels/dispatch.h"
#include "linear/activations.h"
#include "linear/packed_weight.h"

namespace ark {

struct QuantLinear::Impl {
  QuantLinearSpec spec;
  int64_t group_size = 0;  // resolved (K for per-channel)
  IsaLevel isa = IsaLevel::kRef;
  std::optional<QuantizedWeight> weight;  // loaded, until post_init packs it
  std::vector<float> bias;
  bool packed_ready = false;
  PackedWeight packed;
  ComputeMode mode = ComputeMode::kExact;
  std::string mode_reason;
  const LinearImpl* small_m = nullptr;
  const LinearImpl* large_m = nullptr;
  QuantizeRowsFn quantize_rows = nullptr;
  size_t checkpoint_bytes = 0;

  // The state of a post_init'ed layer, for internal code that runs its kernels itself (the fused MoE in
  // src/moe/ prepares activations and calls the kernel over (layer, N-tile range) work items of many layers in
  // one parallel region). Impl is a member of QuantLinear, so it may read the private pointer.
  static const Impl& of(const QuantLinear& layer) { return *layer.impl_; }
};

}  // namespace ark
