// Writes random-weight checkpoint directories in the layout AutoRound exports (config.json with its
// quantization_config, generation_config.json, safetensors shards, the tokenizer files), for tests and
// benchmarks: any of the three architectures, any size, any packing format ark reads, with chosen layers left
// unquantized through extra_config. Quantized layers are made by ark's RTN quantizer from random fp32
// weights, so a checkpoint's dequantized weights are exactly what ark's format decoder reads back.
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

  std::string tokenizer_dir;  // copies tokenizer.json / tokenizer_config.json from here when set
  int num_shards = 1;
  uint64_t seed = 1;
};

// Sizes of named presets: "tiny" (the defaults above: int4 g32) and "qwen2.5-0.5b" (Qwen2.5-0.5B-Instruct's
// exact shape: hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, vocab 151936, theta 1e6, eps
// 1e-6, tied embeddings, q/k/v bias, int4 g128 sym auto_round:auto_gptq, lm_head unquantized bf16). Throws
// ark::Error naming the presets for any other name.
MakeModelOptions make_model_preset(const std::string& name);

// Writes the checkpoint into `dir` (created; existing files of the same names are replaced). Throws
// ark::Error on options no checkpoint could hold (shapes the format cannot pack, a tokenizer larger than the
// vocabulary, ...).
void make_model(const std::filesystem::path& dir, const MakeModelOptions& options);

}  // namespace ark
