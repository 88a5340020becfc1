// QuantMoE's private state, shared by the files that implement it (quant_moe.cpp: spec, loading, describe;
// moe_forward.cpp: the fused forward). Not part of the public API.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "ark/moe.h"
#include "ark/quant_linear.h"
#include "linear/quant_linear_impl.h"

namespace ark {

// One expert's packed linears. Gate and up are one layer of 2·I rows [gate | up] when their schemes agree
// (same bits, group size and act-order permutation): the activations are then prepared once and one kernel
// streams both weights, as the dense runtime does for its MLPs.
struct MoeExpert {
  int64_t intermediate = 0;               // I of this expert
  std::unique_ptr<QuantLinear> gate_up;   // fused, or null
  std::unique_ptr<QuantLinear> gate, up;  // when not fused
  std::unique_ptr<QuantLinear> down;      // [H][I]
  // Activation class of the gate/up layer (or of gate and of up when unfused): layers of one class share the
  // packed-K order, grouping and quantizer, so one prepared copy of a token's activations serves them all.
  int act_class[2] = {-1, -1};
  bool loaded() const { return down != nullptr; }
  bool fused() const { return gate_up != nullptr; }
  size_t packed_bytes() const;
};

struct QuantMoE::Impl {
  QuantMoESpec spec;
  // Routed experts [0, E); the shared expert, when there is one, is experts[E] (it takes every token with
  // weight sigmoid(x · shared_gate), or 1 without a gate), so the forward treats it like any other expert.
  std::vector<MoeExpert> experts;
  std::vector<float> shared_gate;  // H values, or empty
  // One representative layer per activation class (set by post_init).
  std::vector<const QuantLinear::Impl*> act_classes;
  // Atomic because load_expert may run concurrently for different experts (each writes only its own slot).
  std::atomic<bool> ready{false};

  bool has_shared() const { return spec.shared_intermediate_size > 0; }
  int num_slots() const { return spec.num_experts + (has_shared() ? 1 : 0); }

  // The state of a loaded MoE, for internal code (the benchmark's per-expert baseline runs the same packed
  // layers one QuantLinear::forward at a time). Impl is a member of QuantMoE, so it may read the pointer.
  static const Impl& of(const QuantMoE& moe) { return *moe.impl_; }
};

// Packs one expert (gate/up fused where the schemes agree); shapes checked against i_size and the spec.
MoeExpert make_moe_expert(const QuantMoESpec& spec, int64_t i_size, QuantizedWeight gate, QuantizedWeight up,
                          QuantizedWeight down, const char* what);

}  // namespace ark
