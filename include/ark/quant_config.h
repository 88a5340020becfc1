// A checkpoint's quantization_config: which layers are quantized, and with what scheme.
//
// Reads what AutoRound (quant_method "auto-round", legacy "intel/auto-round"), GPTQ tools ("gptq") and AWQ
// tools
// ("awq") write, and answers one question per layer: "what QuantScheme does the layer NAME have, if any". The
// rules follow AutoRound's own loader (auto_round/inference/convert_model.py), so ark quantizes exactly the
// layers that AutoRound would:
//
//   1. A layer is a candidate when its name starts with one of `block_name_to_quantize` (when the config
//   names none:
//      every layer except the output head `lm_head`, plus `lm_head` for GPTQ configs that set `"lm_head":
//      true`).
//   2. Inside the blocks, `modules_in_block_to_quantize` (GPTQ) and `modules_to_not_convert` remove layers.
//   3. `extra_config` overrides bits / group_size / sym / data_type per layer. A key equal to the layer name
//   wins;
//      otherwise the first key (in file order) that matches as a regex (Python re.search semantics: anywhere
//      in the name) applies. GPTQ's `dynamic` ("+:regex" override, "-:regex" skip) is consulted between the
//      two, as AutoRound does. Overrides can also quantize layers outside the blocks (an extra_config'd
//      lm_head).
//   4. A resulting bits >= 16 means "left unquantized".
//
// Every value the rest of ark cannot honour (fp8 / mxfp4 / nvfp4 data types, act_bits < 16, 5-bit, an unknown
// packing format, AWQ with bits != 4, ...) is rejected when the config is parsed, with an ark::Error that
// names the value and says "not supported yet"; nothing is guessed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ark/quantized_weight.h"

namespace ark {

// The tool family that wrote the checkpoint, with legacy spellings folded together.
enum class QuantMethod : uint8_t { kAutoRound, kGptq, kAwq };

class QuantConfig {
 public:
  // Parses the quantization_config object itself, or a whole config.json holding one under
  // "quantization_config". `source` names the text in error messages (a file path, or "<string>").
  static QuantConfig from_json_string(std::string_view json_text, const std::string& source = "<string>");

  // Reads `dir`/config.json's "quantization_config"; when config.json has none (or does not exist), reads
  // `dir`/quantization_config.json. Throws ark::Error naming the files when neither holds one.
  static QuantConfig from_checkpoint_dir(const std::filesystem::path& dir);

  // The scheme of layer `name` (a module name such as "model.layers.0.self_attn.q_proj"), or nullopt when the
  // layer stays unquantized. Judges `name` alone: every extra_config key other than `name` itself is a regex.
  std::optional<QuantScheme> layer_scheme(std::string_view name) const;

  // The schemes of every quantized layer among `linear_layer_names` (all Linear modules of the model, e.g.
  // every "X" with an "X.qweight" or "X.weight" tensor). Knowing all names lets it follow AutoRound exactly
  // where a single name cannot: keys equal to some layer name are exact only, and a regex that matches layers
  // inside the blocks is not applied to layers outside them.
  std::map<std::string, QuantScheme> resolve(const std::vector<std::string>& linear_layer_names) const;

  QuantMethod method() const { return method_; }
  PackingLayout layout() const { return layout_; }
  // The packing format as written (e.g. "auto_round:auto_gptq"), or the name ark derived it from ("gptq",
  // "gptq_v2", "awq gemm").
  const std::string& packing_format() const { return packing_format_; }
  // The config-wide scheme; `default_bits() >= 16` means only overrides quantize anything.
  const QuantScheme& default_scheme() const { return default_scheme_; }
  int default_bits() const { return default_bits_; }
  // Prefixes from block_name_to_quantize; empty when the config names none.
  const std::vector<std::string>& block_names() const { return block_names_; }

  QuantConfig();
  ~QuantConfig();
  QuantConfig(QuantConfig&&) noexcept;
  QuantConfig& operator=(QuantConfig&&) noexcept;
  QuantConfig(const QuantConfig&);
  QuantConfig& operator=(const QuantConfig&);

 private:
  struct Rules;  // per-layer rules with their compiled regexes; defined in the .cpp
  struct Lookup;
  std::optional<QuantScheme> scheme_for(std::string_view name, const Lookup& lookup) const;
  bool in_blocks(std::string_view name) const;

  QuantMethod method_ = QuantMethod::kAutoRound;
  PackingLayout layout_ = PackingLayout::kGptqV1;
  std::string packing_format_;
  QuantScheme default_scheme_;
  int default_bits_ = 4;
  std::vector<std::string> block_names_;
  bool quantize_lm_head_ = false;
  std::unique_ptr<Rules> rules_;
};

}  // namespace ark
