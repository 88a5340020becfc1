// The loaded model's parts, shared by the loader (model_loader.cpp) and the forward pass (model_forward.cpp).
#pragma once

#include <memory>
#include <vector>

#include "ark/model.h"
#include "ark/moe.h"
#include "ark/quant_linear.h"
#include "runtime/dense_matrix.h"

namespace ark {

// One linear of the model: packed quantized, or unquantized in its stored dtype.
struct RuntimeLinear {
  std::unique_ptr<QuantLinear> quantized;
  runtime::DenseMatrix dense;
  int64_t in_features = 0, out_features = 0;

  // y[M][out] = x[M][in] · Wᵀ + b
  void forward(const float* x, int64_t M, float* y) const {
    if (quantized) {
      quantized->forward(x, y, M);
    } else {
      dense.matmul(x, M, y);
    }
  }
  size_t bytes() const { return quantized ? quantized->packed_bytes() : dense.bytes(); }
};

struct DecoderLayer {
  std::vector<float> input_norm, post_norm, q_norm, k_norm;
  RuntimeLinear q, k, v, o, gate, up, down;
  // When q/k/v (gate/up) share one quantization scheme the loader concatenates them along N into one layer,
  // so a decode step makes one parallel region instead of three (two); the separate slots then hold only
  // their shapes. Output rows are [q | k | v] and [gate | up].
  RuntimeLinear qkv, gate_up;
  bool fused_qkv() const { return qkv.quantized != nullptr; }
  bool fused_gate_up() const { return gate_up.quantized != nullptr; }
  // A sparse (MoE) layer: the float router [E][H] and one QuantMoE with every expert (and Qwen2-MoE's shared
  // expert and its gate); gate / up / down then stay empty.
  RuntimeLinear router;
  std::unique_ptr<QuantMoE> moe;
  // Share of the QuantMoE's packed bytes one token reads on average: top_k / E of the routed experts plus the
  // shared one (weighted by the checkpoint's bytes, so experts in different schemes count as their average).
  double moe_fraction_per_token = 0;
  // Every linear holding weights, for byte counts and kernel names.
  std::vector<const RuntimeLinear*> weighted_linears() const {
    std::vector<const RuntimeLinear*> out;
    for (const RuntimeLinear* l : {&q, &k, &v, &o, &gate, &up, &down, &qkv, &gate_up, &router})
      if (l->quantized || l->dense.bytes() > 0) out.push_back(l);
    return out;
  }
};

struct Model::Impl {
  CheckpointPlan plan;
  runtime::DenseMatrix embed;
  RuntimeLinear lm_head;  // for tied embeddings, a DenseMatrix sharing the embedding's bytes
  std::vector<float> final_norm;
  std::vector<DecoderLayer> layers;
  std::vector<float> inv_freq;
  int64_t max_model_len = 0;
  int64_t block_size = 16;
  double load_seconds = 0;
  size_t packed_bytes = 0;
  size_t unquantized_bytes = 0;
};

}  // namespace ark
