// The loaded model's parts, shared by the loader (model_loader.cpp) and the forward pass (model_forward.cpp).
#pragma once

#include <memory>
#include <vector>

#include "ark/model.h"
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
