// Writes random-weight checkpoint directories in the layout AutoRound exports (config.json with its
// quantization_config, generation_config.json, safetensors shards, the tokenizer files), for tests and
// benchmarks: any of the supported architectures (MoE ones included), any size, any packing format ark reads,
// with chosen layers left unquantized through extra_config. Quantized layers are made by ark's RTN quantizer
// from random fp32 weights, so a checkpoint's dequantized weights are exactly what ark's format decoder reads
// back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ark/dtype.h"
#include "ark/model_config.h"

namespace ark {

struct MakeModelOptions {
  Architecture arch = Architecture::kQwen2;
  int64_t hidden_size = 64;
  int64_t intermediate_size = 160;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t head_dim = 0;  // 0: hidden_size / num_heads
  int64_t vocab_size = 512;
  int64_t max_position_embeddings = 2048;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // Llama / Qwen3 only (Qwen2 always has q/k/v biases)
  bool llama3_rope_scaling = false;
  bool rope_parameters_style = false;  // write rope_parameters (current transformers) instead of rope_theta

  // "auto_round:auto_gptq" (GPTQ v1), "auto_round:gptqmodel" / "auto_round" (GPTQ v2), "auto_round:auto_awq"
  // (AWQ), or "none" for an unquantized checkpoint.
  std::string packing_format = "auto_round:auto_gptq";
  int bits = 4;
  int64_t group_size = 32;
  bool sym = true;
  bool quantize_lm_head = false;
  // Module names written into extra_config with bits 16 (stored as plain .weight).
  std::vector<std::string> unquantized_layers;
  DType dtype = DType::BF16;       // unquantized tensors (embeddings, norms, biases, lm_head)
  DType scale_dtype = DType::F16;  // quantized layers' scales

  // MoE architectures only (kQwen2Moe, kQwen3Moe, kMixtral). Mixtral's experts take intermediate_size (it has
  // no dense MLP); Qwen's take moe_intermediate_size, and their dense layers (mlp_only_layers, or those
  // decoder_sparse_step skips) intermediate_size. Qwen2-MoE always has its shared expert.
  int64_t num_experts = 8;
  int64_t num_experts_per_tok = 2;
  int64_t moe_intermediate_size = 32;
  int64_t shared_expert_intermediate_size = 64;
  bool norm_topk_prob = true;  // Qwen only; Mixtral always renormalizes
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  // Experts 2j and 2j+1 get the same router row, so their logits tie exactly and routing must break the tie
  // (the lower id wins, as torch.topk does); their expert weights still differ.
  bool router_ties = false;
  MoeNaming moe_naming = MoeNaming::kMlp;  // the others are Mixtral's only

  std::string tokenizer_dir;  // copies tokenizer.json / tokenizer_config.json from here when set
  int num_shards = 1;
  uint64_t seed = 1;
};

// Sizes of named presets: "tiny" (the defaults above: int4 g32) and "qwen2.5-0.5b" (Qwen2.5-0.5B-Instruct's
// exact shape: hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, vocab 151936, theta 1e6, eps
// 1e-6, tied embeddings, q/k/v bias, int4 g128 sym auto_round:auto_gptq, lm_head unquantized bf16); the MoE
// ones "tiny-qwen3-moe" (8 experts, top-2, renormalized), "tiny-qwen2-moe" (8 experts, top-2 not
// renormalized, shared expert, layer 1 of 3 dense through mlp_only_layers) and "tiny-mixtral" (4 experts,
// top-2). Throws ark::Error naming the presets for any other name.
MakeModelOptions make_model_preset(const std::string& name);

// Writes the checkpoint into `dir` (created; existing files of the same names are replaced). Throws
// ark::Error on options no checkpoint could hold (shapes the format cannot pack, a tokenizer larger than the
// vocabulary, ...).
void make_model(const std::filesystem::path& dir, const MakeModelOptions& options);

}  // namespace ark
