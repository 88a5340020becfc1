// Quantizes an unquantized (fp32 / fp16 / bf16) checkpoint directory into AutoRound's export format with
// ark's round-to-nearest quantizer (ark/format.h quantize_rtn, i.e. AutoRound with iters=0), so that any
// float model can be turned into an int2/3/4/8 checkpoint that ark, AutoRound's loader and transformers read.
//
// What is quantized: every Linear of the decoder blocks (names under "model.layers."), as AutoRound does by
// default, except MoE routers (".gate", ".shared_expert_gate"), which AutoRound leaves in float too. The
// embedding, the norms, the biases and lm_head (tied or not) are copied as stored. A block linear whose shape
// the packing cannot hold (e.g. K not a multiple of 32/bits for GPTQ) is kept in float and listed in
// quantization_config.extra_config with bits 16, as AutoRound lists layers it skips.
//
// The output directory gets model.safetensors (one file), config.json (the input's, plus
// quantization_config {bits, group_size, sym, data_type "int", iters 0, quant_method "auto-round",
// packing_format[, extra_config]}), and the input's generation / tokenizer files copied unchanged.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ark/dtype.h"

namespace ark {

struct QuantizeCheckpointOptions {
  // auto_round:auto_gptq (GPTQ v1 zeros), auto_round / auto_round:gptqmodel (GPTQ v2), auto_round:auto_awq.
  std::string packing_format = "auto_round:auto_gptq";
  int bits = 4;              // 2, 3, 4 or 8
  int64_t group_size = 128;  // > 0, or -1 for per-channel
  bool sym = true;
  DType scale_dtype = DType::F16;  // what AutoRound's exporter writes
};

struct QuantizeCheckpointReport {
  std::vector<std::string> quantized;   // module names
  std::vector<std::string> kept_float;  // block linears whose shape the packing cannot hold
  size_t input_bytes = 0;               // weight bytes read
  size_t output_bytes = 0;              // bytes of the written model.safetensors
};

// Throws ark::Error (before writing anything) when `in` is not a checkpoint ark can read, already holds
// quantized layers, or the options are invalid; `out` may not be `in`.
QuantizeCheckpointReport quantize_checkpoint(const std::filesystem::path& in,
                                             const std::filesystem::path& out,
                                             const QuantizeCheckpointOptions& options);

}  // namespace ark
