// What a checkpoint directory says about its model: config.json (architecture, sizes, RoPE, tied embeddings)
// and generation_config.json (EOS ids, sampling defaults). Both config styles are read: the older one with
// rope_theta / rope_scaling at the top level, and the one current transformers writes, where rope_parameters
// holds rope_theta and the scaling. Tensor dtypes are never taken from torch_dtype / dtype here (AutoRound
// rewrites that field); the loader reads them from the safetensors headers.
//
// Mixture-of-experts variants (Qwen2-MoE, Qwen3-MoE, Mixtral) carry their routing fields in MoeConfig, read
// with transformers' defaults where config.json leaves a field out.
//
// Everything ark cannot run exactly (another architecture, another activation, sliding windows, a RoPE
// scaling type other than default / linear / llama3, MLP biases, ...) is refused with an ark::Error that
// names the file, the field and the value.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ark {

enum class Architecture : uint8_t { kQwen2, kLlama, kQwen3, kQwen2Moe, kQwen3Moe, kMixtral };

// "Qwen2ForCausalLM", "LlamaForCausalLM", "Qwen3ForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM",
// "MixtralForCausalLM".
std::string_view architecture_name(Architecture arch);

// How a checkpoint names its MoE tensors (the planner detects it, make-model writes any of them):
//   kMlp            mlp.gate, mlp.experts.<e>.gate_proj / up_proj / down_proj (Qwen2/3-MoE; Mixtral as
//                   transformers 5 names it)
//   kBlockSparseMoe block_sparse_moe.gate, block_sparse_moe.experts.<e>.gate_proj / up_proj / down_proj
//   (Mixtral
//                   as AutoRound 0.16 exports it under transformers 5)
//   kMixtralW123    block_sparse_moe.gate, block_sparse_moe.experts.<e>.w1 / w3 / w2 (Mixtral's original
//   names)
enum class MoeNaming : uint8_t { kMlp, kBlockSparseMoe, kMixtralW123 };

// The sparse MLP of a MoE architecture. Routing is transformers': p = softmax(router logits) over all
// experts, the top_k largest p (ties: lower expert id), renormalized to sum 1 when norm_topk_prob (Mixtral
// always).
struct MoeConfig {
  int64_t num_experts = 0;               // Qwen's num_experts, Mixtral's num_local_experts; 0: dense model
  int64_t top_k = 0;                     // num_experts_per_tok
  int64_t expert_intermediate_size = 0;  // Qwen's moe_intermediate_size; Mixtral's intermediate_size
  int64_t shared_intermediate_size = 0;  // Qwen2-MoE's shared_expert_intermediate_size; 0: no shared expert
  bool norm_topk_prob = false;
  // Layer i is sparse when i is not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0; the others
  // run a dense MLP of intermediate_size (Qwen2-MoE / Qwen3-MoE).
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
};

struct RopeScaling {
  std::string type = "default";  // "default" (none), "linear" or "llama3"
  double factor = 1.0;
  // llama3 only: wavelengths between these bands are interpolated smoothly (transformers' _compute_llama3).
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// Sampling defaults a checkpoint suggests (generation_config.json); flags given to `ark generate` win.
struct GenerationDefaults {
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;  // 0: off
  double top_p = 1.0;
};

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v carry a bias (always for Qwen2; Llama/Qwen3's attention_bias)
  bool o_proj_bias = false;     // Llama's attention_bias also puts one on o_proj
  bool qk_norm = false;         // per-head RMSNorm on q and k before RoPE (Qwen3)
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;  // generation_config's, else config.json's
  GenerationDefaults generation;
  MoeConfig moe;

  bool is_moe() const { return moe.num_experts > 0; }
  // Whether decoder layer `layer` routes through experts (see MoeConfig).
  bool is_moe_layer(int64_t layer) const;

  // Parses config.json's text and (optionally, may be empty) generation_config.json's. `source` names the
  // directory or files in error messages.
  static ModelConfig from_json(std::string_view config_json, std::string_view generation_config_json = {},
                               const std::string& source = "config.json");
  // Reads `dir`/config.json and, when present, `dir`/generation_config.json.
  static ModelConfig from_dir(const std::filesystem::path& dir);

  // RoPE inverse frequencies (head_dim / 2 of them) after scaling, rounded to fp32 as transformers keeps
  // them (the angles are then fp32 products position x inv_freq, as there).
  std::vector<float> rope_inv_freq() const;
};

}  // namespace ark
