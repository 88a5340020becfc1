// QuantMoE: a fused quantized mixture-of-experts block, as Qwen3-MoE, Qwen2-MoE and Mixtral run it.
//
// Per token t with hidden state x[t] (H floats), the router logits r[t] (E floats) pick top_k experts; each
// picked expert e computes down_e(silu(gate_e(x)) * up_e(x)) and the block returns their weighted sum, plus the
// shared expert (Qwen2-MoE) scaled by sigmoid(x · shared_gate) when there is one.
//
// Routing (moe_route) follows transformers exactly:
//   kSoftmaxThenTopK  — p = softmax(r) over all E experts, take the top_k largest p (ties: lower expert id first),
//                       weights = those p; renormalized to sum 1 when norm_topk_prob (Qwen3-MoE: true,
//                       Qwen2-MoE: false by default).
//   kTopKThenSoftmax  — take the top_k largest logits, weights = softmax over those k only (Mixtral; equal to the
//                       first order with renormalization).
//
// The same four-step contract as QuantLinear: construct from a spec, load every expert's three linears (canonical
// form, any scheme the formats support; gate and up [I][H], down [H][I]), post_init() packs once, forward() any
// number of times from any number of threads. forward groups the tokens by expert so that each expert's weights
// stream once per call whatever T is, and runs the experts in parallel.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ark/quant_linear.h"
#include "ark/quantized_weight.h"

namespace ark {

enum class MoeRouting : uint8_t {
  kSoftmaxThenTopK,
  kTopKThenSoftmax,
};

struct QuantMoESpec {
  int64_t hidden_size = 0;        // H
  int64_t intermediate_size = 0;  // I: each routed expert's gate/up out_features
  int num_experts = 0;            // E
  int top_k = 0;                  // 1 <= top_k <= E
  MoeRouting routing = MoeRouting::kSoftmaxThenTopK;
  bool norm_topk_prob = false;    // renormalize the top_k weights to sum 1 (kSoftmaxThenTopK only)
  int64_t shared_intermediate_size = 0;  // 0: no shared expert
  // Passed to every expert's QuantLinear (see QuantLinearSpec).
  ComputeMode mode = ComputeMode::kAuto;
  std::string max_isa;
  int num_threads = 0;
  // Rows at or above which an expert's linear runs the GEMM instead of the decode kernel (per expert: its
  // token count); 0 keeps QuantLinearSpec's default.
  int64_t kernel_switch_threshold = 0;
};

// Routing alone: logits [T][E] -> ids [T][top_k] (int32, by decreasing weight) and weights [T][top_k].
void moe_route(const QuantMoESpec& spec, const float* router_logits, int64_t T, int32_t* ids, float* weights);

class QuantMoE {
 public:
  // Validates the spec; throws ark::Error naming the bad field.
  explicit QuantMoE(QuantMoESpec spec);
  ~QuantMoE();
  QuantMoE(QuantMoE&&) noexcept;
  QuantMoE& operator=(QuantMoE&&) noexcept;
  QuantMoE(const QuantMoE&) = delete;
  QuantMoE& operator=(const QuantMoE&) = delete;

  const QuantMoESpec& spec() const;

  // Expert e's three linears; shapes are checked against the spec. Every expert must be loaded before post_init.
  // Each expert is packed here, as it arrives; calls for different experts may run concurrently (a loader can
  // pack experts in parallel), but not concurrently with post_init or forward.
  void load_expert(int e, QuantizedWeight gate, QuantizedWeight up, QuantizedWeight down);
  // The shared expert (shapes from shared_intermediate_size) and, optionally, its gate: H floats whose dot
  // product with x, through a sigmoid, scales the shared expert's output (Qwen2-MoE's shared_expert_gate).
  // An empty shared_gate means the shared output is added unscaled.
  void load_shared_expert(QuantizedWeight gate, QuantizedWeight up, QuantizedWeight down,
                          std::vector<float> shared_gate = {});

  void post_init();
  bool ready() const;

  // y[T][H] = MoE(x[T][H]) with routing computed from router_logits[T][E]. fp32, row-major, contiguous.
  void forward(const float* x, const float* router_logits, float* y, int64_t T) const;
  // Same with the routing given: ids[T][top_k] in [0, E) and their weights[T][top_k] (used as they are).
  void forward_routed(const float* x, const int32_t* ids, const float* weights, float* y, int64_t T) const;

  std::string describe() const;  // experts, schemes, fused gate/up or not, kernels
  size_t packed_bytes() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ark
