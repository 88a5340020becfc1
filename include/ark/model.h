// A decoder-only LLM loaded from an AutoRound checkpoint directory (Qwen2/2.5, Llama incl. Llama-3's RoPE
// scaling, Qwen3, and the mixture-of-experts Qwen2-MoE, Qwen3-MoE, Mixtral), and the paged KV cache its
// forward pass appends to.
//
// Loading is two-phase so that nothing is packed before everything is known to be right: plan_checkpoint()
// reads config.json, quantization_config and every safetensors header and checks each tensor the
// architecture needs (present, dtype, shape against config.json and the layer's quantization scheme, no
// unexpected extras); only then does Model::load() decode and pack the quantized linears (QuantLinear) and
// copy the unquantized tensors (embeddings, norms, biases, lm_head, extra_config'd layers) out of the
// mapping, in the dtype the file stores them in. The mapping is released once everything is packed, and each
// tensor's pages are dropped as soon as it has been consumed, so peak memory stays near the packed size.
//
// Forward: RMSNorm, attention with grouped-query heads and rotate-half RoPE, SiLU-gated MLP, all in fp32
// activations; quantized linears run with M = number of tokens (the decode kernels for one token, the
// GEMM for a prompt). A MoE layer computes its router logits with the float router and hands the tokens to
// one QuantMoE (ark/moe.h), which holds every expert of the layer (and Qwen2-MoE's shared expert).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ark/dtype.h"
#include "ark/model_config.h"
#include "ark/quant_linear.h"
#include "ark/quantized_weight.h"

namespace ark {

// One tensor group of the checkpoint as the model will use it.
struct CheckpointLayer {
  std::string name;  // module name, e.g. "model.layers.0.self_attn.q_proj", or "model.norm" for a norm
  enum class Kind : uint8_t { kQuantizedLinear, kLinear, kEmbedding, kNorm } kind = Kind::kLinear;
  int64_t in_features = 0;            // K (for norms and embeddings: the hidden size)
  int64_t out_features = 0;           // N (for embeddings: the vocabulary; for norms: 1)
  std::optional<QuantScheme> scheme;  // quantized linears only
  DType dtype = DType::F32;           // stored dtype of the weight (scales' dtype for quantized ones)
  bool bias = false;
  bool act_order = false;       // g_idx present
  size_t checkpoint_bytes = 0;  // bytes of its tensors in the checkpoint
  // MoE layers: the routed expert this linear belongs to, kSharedExpert for Qwen2-MoE's shared expert, -1 for
  // everything else (the router "<block>.gate" and "mlp.shared_expert_gate" included).
  int32_t expert = -1;
  static constexpr int32_t kSharedExpert = -2;
};

struct CheckpointPlan {
  std::filesystem::path dir;
  ModelConfig config;
  std::string quant_summary;  // e.g. "auto-round auto_round:auto_gptq, int4 g128 sym" or "none"
  std::vector<CheckpointLayer> layers;
  bool lm_head_tied = false;               // lm_head reuses the embedding (no lm_head tensor)
  MoeNaming moe_naming = MoeNaming::kMlp;  // Mixtral's checkpoints use the others (see MoeNaming)
  size_t checkpoint_bytes = 0;
};

// Validates a checkpoint directory without loading any weight (see the header comment); throws ark::Error
// naming the file / tensor and what was expected.
CheckpointPlan plan_checkpoint(const std::filesystem::path& dir);

struct LoadOptions {
  // Longest sequence (prompt + generated) a cache may hold; 0: max_position_embeddings, capped so that a full
  // cache fits in a quarter of physical memory. Larger than max_position_embeddings is an error.
  int64_t max_model_len = 0;
  int64_t block_size = 16;                // KV cache positions per block (vLLM's --block-size)
  ComputeMode mode = ComputeMode::kAuto;  // for every quantized linear
  std::string max_isa;                    // QuantLinearSpec::max_isa
  int64_t kernel_switch_threshold = 0;    // 0: QuantLinear's default
  // Called after each layer is packed with (bytes of the checkpoint consumed so far, total bytes).
  std::function<void(size_t done, size_t total)> progress;
};

// The per-sequence KV cache: fixed-size blocks of block_size positions, allocated as the sequence grows (a
// block holds every layer's keys and values for its positions), up to max_len positions.
class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t max_len, int64_t block_size);
  ~KvCache();
  KvCache(KvCache&&) noexcept;
  KvCache& operator=(KvCache&&) noexcept;

  int64_t size() const { return size_; }  // positions filled
  int64_t max_len() const { return max_len_; }
  int64_t block_size() const { return block_size_; }
  int64_t blocks_allocated() const;
  size_t block_bytes() const { return block_floats_ * sizeof(float); }
  size_t bytes_allocated() const { return static_cast<size_t>(blocks_allocated()) * block_bytes(); }
  // Forgets positions from n on (n <= size()); blocks stay allocated for reuse.
  void truncate(int64_t n);
  void clear() { truncate(0); }

  // Internal to the forward pass: makes room for positions [size(), size() + n) (throws past max_len),
  // pointers to one position's key / value vector of a layer and KV head, and the commit of n positions.
  void reserve(int64_t n);
  float* key(int64_t layer, int64_t kv_head, int64_t pos);
  float* value(int64_t layer, int64_t kv_head, int64_t pos);
  const float* key(int64_t layer, int64_t kv_head, int64_t pos) const;
  const float* value(int64_t layer, int64_t kv_head, int64_t pos) const;
  void commit(int64_t n) { size_ += n; }

 private:
  struct BlockStorage;  // owns the blocks' memory (kv_cache.cpp)
  size_t offset(int64_t layer, int kv, int64_t kv_head, int64_t pos) const;
  float* block(int64_t pos) const;  // first float of the block holding position pos
  int64_t layers_ = 0, kv_heads_ = 0, head_dim_ = 0;
  int64_t max_len_ = 0, block_size_ = 16, size_ = 0;
  size_t block_floats_ = 0;
  std::unique_ptr<BlockStorage> storage_;
};

class Model {
 public:
  static Model load(const std::filesystem::path& dir, const LoadOptions& options = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const ModelConfig& config() const;
  const CheckpointPlan& plan() const;
  int64_t max_model_len() const;
  int64_t block_size() const;
  KvCache new_cache() const;

  // Appends `tokens` to the sequence in `cache` and writes the logits (vocab_size floats per row) of the last
  // token, or of every token when all_logits is set, into `logits`. Throws ark::Error (before any work) for
  // an id outside the vocabulary or when the cache would pass max_model_len.
  void forward(std::span<const int32_t> tokens, KvCache& cache, float* logits, bool all_logits = false) const;

  // Bytes held by the packed quantized layers and by the unquantized tensors.
  size_t packed_bytes() const;
  size_t unquantized_bytes() const;
  // Weight bytes one decode step reads (every layer once, lm_head included, the embedding row excluded; of a
  // MoE layer the router, the shared expert and top_k / num_experts of the routed experts, the average).
  size_t bytes_read_per_token() const;
  double load_seconds() const;
  // The kernels a forward of M tokens runs in the first quantized layer, for reports.
  std::string describe_kernels(int64_t M) const;

  struct Impl;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ark
