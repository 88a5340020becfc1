// quantization_config parsing: hand-written configs in the shapes AutoRound, GPTQ tools and AWQ tools write,
// the per-layer resolution rules of AutoRound's loader, and malformed / unsupported configs.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <string>

#include "ark/error.h"
#include "ark/quant_config.h"

namespace ark {
namespace {

QuantConfig parse(const std::string& json) {
  return QuantConfig::from_json_string(json);
}

// The error message of parsing `json`, or "" when it parsed.
std::string parse_error(const std::string& json) {
  try {
    parse(json);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_PARSE_ERROR(json, needle)                                            \
  do {                                                                              \
    const std::string msg_ = parse_error(json);                                     \
    EXPECT_NE(msg_.find(needle), std::string::npos) << "message: '" << msg_ << "'"; \
  } while (0)

void expect_scheme(const QuantConfig& c, const std::string& name, int bits, int64_t group_size, bool sym) {
  const auto s = c.layer_scheme(name);
  ASSERT_TRUE(s.has_value()) << name << " should be quantized";
  EXPECT_EQ(s->bits, bits) << name;
  EXPECT_EQ(s->group_size, group_size) << name;
  EXPECT_EQ(s->sym, sym) << name;
  EXPECT_EQ(s->layout, c.layout()) << name;
}

void expect_unquantized(const QuantConfig& c, const std::string& name) {
  EXPECT_FALSE(c.layer_scheme(name).has_value()) << name << " should stay unquantized";
}

// What AutoRound 0.16 writes into config.json for a symmetric 4-bit export (trimmed to the keys that matter).
const char* kAutoRoundSymConfig = R"({
  "architectures": ["LlamaForCausalLM"],
  "hidden_size": 64,
  "quantization_config": {
    "autoround_version": "0.16.1",
    "bits": 4,
    "data_type": "int",
    "group_size": 128,
    "iters": 0,
    "packing_format": "auto_round:auto_gptq",
    "quant_method": "auto-round",
    "sym": true
  },
  "torch_dtype": "bfloat16"
})";

TEST(QuantConfig, AutoRoundSymmetricExport) {
  const QuantConfig c = parse(kAutoRoundSymConfig);
  EXPECT_EQ(c.method(), QuantMethod::kAutoRound);
  EXPECT_EQ(c.layout(), PackingLayout::kGptqV1);
  EXPECT_EQ(c.packing_format(), "auto_round:auto_gptq");
  expect_scheme(c, "model.layers.0.self_attn.q_proj", 4, 128, true);
  expect_scheme(c, "model.layers.1.mlp.down_proj", 4, 128, true);
  // No block list: everything but the output head.
  expect_unquantized(c, "lm_head");
}

TEST(QuantConfig, PackingFormatsMapToLayouts) {
  const std::pair<const char*, PackingLayout> cases[] = {
      {"auto_round:auto_gptq", PackingLayout::kGptqV1},
      {"auto_round:gptq", PackingLayout::kGptqV1},
      {"auto", PackingLayout::kGptqV1},
      {"auto_round", PackingLayout::kGptqV2},
      {"auto_round:gptqmodel", PackingLayout::kGptqV2},
      {"auto_round:auto_awq", PackingLayout::kAwq},
      {"auto_round:awq", PackingLayout::kAwq},
  };
  for (const auto& [format, layout] : cases) {
    for (const char* key : {"packing_format", "backend"}) {
      const std::string json =
          std::string(R"({"quant_method": "auto-round", "bits": 4, "group_size": 32, "sym": false, ")") +
          key + R"(": ")" + format + R"("})";
      const QuantConfig c = parse(json);
      EXPECT_EQ(c.layout(), layout) << key << "=" << format;
      expect_scheme(c, "model.layers.3.mlp.up_proj", 4, 32, false);
    }
  }
  // packing_format wins over a legacy backend value in the same config.
  EXPECT_EQ(parse(R"({"quant_method": "auto-round", "bits": 2, "sym": false, "packing_format": "auto_round",
                      "backend": "auto"})")
                .layout(),
            PackingLayout::kGptqV2);
}

TEST(QuantConfig, LegacyIntelAutoRoundMethod) {
  const QuantConfig c = parse(R"({"quant_method": "intel/auto-round", "backend": "auto_round:gptq", "bits": 3,
                                  "group_size": 64, "sym": true})");
  EXPECT_EQ(c.method(), QuantMethod::kAutoRound);
  EXPECT_EQ(c.layout(), PackingLayout::kGptqV1);
  expect_scheme(c, "model.layers.0.self_attn.o_proj", 3, 64, true);
}

TEST(QuantConfig, AutoRoundBitsAndGroupSizes) {
  for (int bits : {2, 3, 4, 8}) {
    for (int gs : {32, 64, 128, 96, -1}) {
      const QuantConfig c =
          parse(R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": )" +
                std::to_string(bits) + R"(, "group_size": )" + std::to_string(gs) +
                R"(, "sym": false, "data_type": "int", "act_bits": 16})");
      expect_scheme(c, "model.layers.0.mlp.gate_proj", bits, gs, false);
    }
  }
}

TEST(QuantConfig, PlainGptq) {
  // What transformers' GPTQConfig.to_dict() writes.
  const QuantConfig v1 = parse(R"({"quantization_config": {"bits": 4, "group_size": 128, "desc_act": true,
      "sym": false, "quant_method": "gptq", "checkpoint_format": "gptq", "true_sequential": true,
      "damp_percent": 0.01, "use_exllama": true, "backend": null}})");
  EXPECT_EQ(v1.method(), QuantMethod::kGptq);
  EXPECT_EQ(v1.layout(), PackingLayout::kGptqV1);
  expect_scheme(v1, "model.layers.0.self_attn.k_proj", 4, 128, false);
  expect_unquantized(v1, "lm_head");

  // No checkpoint_format: the original v1; gptq_v2 is honoured, also under gptqmodel's older "format" key.
  EXPECT_EQ(parse(R"({"quant_method": "gptq", "bits": 8, "sym": true})").layout(), PackingLayout::kGptqV1);
  EXPECT_EQ(parse(R"({"quant_method": "gptq", "bits": 8, "checkpoint_format": "gptq_v2"})").layout(),
            PackingLayout::kGptqV2);
  EXPECT_EQ(parse(R"({"quant_method": "gptq", "bits": 2, "format": "gptq_v2"})").layout(),
            PackingLayout::kGptqV2);
  // sym defaults to true, group_size to 128, as in GPTQConfig.
  expect_scheme(parse(R"({"quant_method": "gptq", "bits": 3})"), "model.layers.0.mlp.up_proj", 3, 128, true);

  // gptqmodel's "lm_head": true quantizes the output head with the config-wide scheme.
  const QuantConfig head = parse(R"({"quant_method": "gptq", "bits": 4, "group_size": 32, "lm_head": true})");
  expect_scheme(head, "lm_head", 4, 32, true);

  EXPECT_PARSE_ERROR(R"({"quant_method": "gptq", "bits": 4, "checkpoint_format": "marlin"})",
                     "not supported yet: gptq checkpoint_format 'marlin'");
}

TEST(QuantConfig, PlainAwq) {
  // transformers' AwqConfig in config.json.
  const QuantConfig hf = parse(R"({"quantization_config": {"quant_method": "awq", "zero_point": true,
      "group_size": 128, "bits": 4, "version": "gemm", "modules_to_not_convert": null}})");
  EXPECT_EQ(hf.method(), QuantMethod::kAwq);
  EXPECT_EQ(hf.layout(), PackingLayout::kAwq);
  expect_scheme(hf, "model.layers.0.self_attn.q_proj", 4, 128, false);
  expect_unquantized(hf, "lm_head");

  // AutoAWQ's own spelling (quant_config.json), with a quant_method added, and an upper-case version.
  const QuantConfig own = parse(
      R"({"quant_method": "awq", "zero_point": true, "q_group_size": 64, "w_bit": 4, "version": "GEMM",
          "modules_to_not_convert": ["mlp.gate"]})");
  expect_scheme(own, "model.layers.2.self_attn.v_proj", 4, 64, false);
  expect_unquantized(own, "model.layers.2.mlp.gate");  // a MoE router, kept in full precision
  // A substring match, as in AutoRound (re.search) and vLLM (`in`): "mlp.gate" also removes "mlp.gate_proj".
  expect_unquantized(own, "model.layers.2.mlp.gate_proj");
  expect_scheme(own, "model.layers.2.mlp.up_proj", 4, 64, false);

  EXPECT_PARSE_ERROR(R"({"quant_method": "awq", "bits": 4, "version": "gemv"})",
                     "not supported yet: awq version 'gemv'");
  EXPECT_PARSE_ERROR(R"({"quant_method": "awq", "bits": 4, "zero_point": false})",
                     "not supported yet: awq zero_point false");
  EXPECT_PARSE_ERROR(R"({"quant_method": "awq", "bits": 8})",
                     "not supported yet: bits 8 with the AWQ packing");
  EXPECT_PARSE_ERROR(R"({"quant_method": "awq", "bits": 4, "backend": "llm-awq"})",
                     "not supported yet: awq backend 'llm-awq'");
  EXPECT_NO_THROW(parse(R"({"quant_method": "awq", "bits": 4, "backend": "autoawq"})"));
}

TEST(QuantConfig, ModulesToNotConvertIsASearch) {
  // AutoRound tests each entry with re.search, so "mlp.gate" also removes "mlp.gate_proj" ('.' is any
  // character and the match may be a prefix of a longer name). ark follows it rather than guessing a narrower
  // intent.
  const QuantConfig c =
      parse(R"({"quant_method": "awq", "bits": 4, "modules_to_not_convert": ["mlp.gate$", "o_proj"]})");
  expect_unquantized(c, "model.layers.0.mlp.gate");
  expect_scheme(c, "model.layers.0.mlp.gate_proj", 4, 128, false);
  expect_unquantized(c, "model.layers.0.self_attn.o_proj");
}

TEST(QuantConfig, UnsupportedValuesAreNamed) {
  const std::string base =
      R"({"quant_method": "auto-round", "packing_format": "auto_round:auto_gptq", "bits": 4, )";
  EXPECT_PARSE_ERROR(base + R"("data_type": "fp8"})", "not supported yet: data_type 'fp8'");
  EXPECT_PARSE_ERROR(base + R"("data_type": "mx_fp"})", "not supported yet: data_type 'mx_fp'");
  EXPECT_PARSE_ERROR(base + R"("data_type": "nv_fp"})", "not supported yet: data_type 'nv_fp'");
  EXPECT_PARSE_ERROR(base + R"("act_bits": 8})", "not supported yet: act_bits 8");
  EXPECT_PARSE_ERROR(base + R"("group_size": 0})", "not supported yet: group_size 0");
  EXPECT_PARSE_ERROR(base + R"("group_size": -2})", "group_size -2");
  EXPECT_PARSE_ERROR(R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": 5})",
                     "not supported yet: bits 5");
  EXPECT_PARSE_ERROR(R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": 1})",
                     "not supported yet: bits 1");
  EXPECT_PARSE_ERROR(
      R"({"quant_method": "auto-round", "packing_format": "auto_round:llm_compressor", "bits": 4})",
      "not supported yet: packing_format 'auto_round:llm_compressor'");
  EXPECT_PARSE_ERROR(R"({"quant_method": "auto-round", "backend": "auto_round:gptq:exllamav2", "bits": 4})",
                     "not supported yet: backend 'auto_round:gptq:exllamav2'");
  EXPECT_PARSE_ERROR(R"({"quant_method": "fp8", "bits": 8})", "not supported yet: quant_method 'fp8'");
  EXPECT_PARSE_ERROR(R"({"quant_method": "bitsandbytes"})", "not supported yet: quant_method 'bitsandbytes'");
  // act_bits 16 (or 32) is weight-only: fine.
  EXPECT_NO_THROW(parse(base + R"("act_bits": 16, "act_data_type": "float"})"));
}

TEST(QuantConfig, MalformedConfigsAreRejected) {
  EXPECT_PARSE_ERROR("", "not valid JSON");
  EXPECT_PARSE_ERROR(R"({"quant_method": "gptq", "bits": 4)", "not valid JSON");
  EXPECT_PARSE_ERROR("[1, 2]", "expected a JSON object");
  EXPECT_PARSE_ERROR(R"({"quantization_config": 7})", "'quantization_config' must be an object");
  EXPECT_PARSE_ERROR(R"({"bits": 4})", "'quant_method' is missing");
  EXPECT_PARSE_ERROR(R"({"quant_method": 3, "bits": 4})", "'quant_method' must be a string");
  EXPECT_PARSE_ERROR(R"({"quant_method": "gptq"})", "'bits' is missing");
  EXPECT_PARSE_ERROR(R"({"quant_method": "gptq", "bits": "4"})", "'bits' must be an integer");
  EXPECT_PARSE_ERROR(R"({"quant_method": "gptq", "bits": 4.5})", "'bits' must be an integer");
  EXPECT_PARSE_ERROR(R"({"quant_method": "gptq", "bits": 4, "sym": "yes"})", "'sym' must be true or false");
  EXPECT_PARSE_ERROR(R"({"quant_method": "gptq", "bits": 4, "group_size": "128"})",
                     "'group_size' must be an integer");
  EXPECT_PARSE_ERROR(R"({"quant_method": "auto-round", "bits": 4})",
                     "neither 'packing_format' nor 'backend'");
  const std::string ar = R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": 4, )";
  EXPECT_PARSE_ERROR(ar + R"("extra_config": []})", "'extra_config' must be an object");
  EXPECT_PARSE_ERROR(ar + R"("extra_config": {"lm_head": 8}})",
                     "'extra_config['lm_head']' must be an object");
  EXPECT_PARSE_ERROR(ar + R"("extra_config": {"lm_head": {"bits": "8"}}})",
                     "'extra_config['lm_head'].bits' must be an integer");
  EXPECT_PARSE_ERROR(ar + R"("extra_config": {"lm_head": {"bits": 6}}})",
                     "not supported yet: bits 6 in extra_config['lm_head']");
  EXPECT_PARSE_ERROR(ar + R"("block_name_to_quantize": 5})",
                     "'block_name_to_quantize' must be a string or a list");
  EXPECT_PARSE_ERROR(ar + R"("block_name_to_quantize": [5]})", "entries must be strings or lists of strings");
  EXPECT_PARSE_ERROR(ar + R"("extra_config": {"layers.[0": {"bits": 8}}})",
                     "not supported yet: regex 'layers.[0'");
  EXPECT_PARSE_ERROR(ar + R"("dynamic": ["x"]})", "'dynamic' must be an object");
  // The config source is named in every message.
  EXPECT_PARSE_ERROR(R"({"bits": 4})", "quantization_config (<string>)");
}

TEST(QuantConfig, ExtraConfigExactNameAndRegex) {
  // Layer names in keys are exact; other keys are Python-style regexes searched anywhere in the name.
  const QuantConfig c = parse(R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": 4,
      "group_size": 128, "sym": false,
      "block_name_to_quantize": "model.layers",
      "extra_config": {
        ".*down_proj": {"bits": 8, "group_size": 32},
        "model.layers.1.mlp.down_proj": {"bits": 2, "sym": true},
        "model.layers.0.self_attn.q_proj": {"bits": 16, "data_type": "float"},
        "lm_head": {"bits": 8, "group_size": -1, "sym": true, "data_type": "int", "act_bits": 16,
                    "act_group_size": null, "super_bits": null},
        "model\\.layers\\.[0-9]+\\.mlp\\.(gate|up)_proj": {"group_size": 64},
        ".*proj": {"bits": 3}
      }})");
  expect_scheme(c, "model.layers.0.mlp.down_proj", 8, 32, false);      // regex
  expect_scheme(c, "model.layers.1.mlp.down_proj", 2, 128, true);      // exact beats an earlier regex
  expect_unquantized(c, "model.layers.0.self_attn.q_proj");            // bits 16
  expect_scheme(c, "model.layers.1.self_attn.q_proj", 3, 128, false);  // only the later ".*proj" matches
  expect_scheme(c, "model.layers.1.mlp.gate_proj", 4, 64, false);  // first matching regex wins over ".*proj"
  expect_scheme(c, "model.layers.12.mlp.up_proj", 4, 64, false);
  expect_scheme(c, "lm_head", 8, -1, true);     // outside the blocks, listed exactly
  expect_unquantized(c, "model.embed_tokens");  // outside the blocks, no rule
}

TEST(QuantConfig, EmptyRegexEntryIsIgnored) {
  // AutoRound skips a regex entry whose config is {} rather than letting it shadow later ones.
  const QuantConfig c = parse(R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": 4,
      "sym": false, "extra_config": {".*mlp.*": {}, ".*up_proj": {"bits": 2}}})");
  expect_scheme(c, "model.layers.0.mlp.up_proj", 2, 128, false);
  expect_scheme(c, "model.layers.0.mlp.down_proj", 4, 128, false);
}

TEST(QuantConfig, RegexOverridesOutsideBlocks) {
  // A regex can quantize a layer outside the blocks (AutoRound exports lm_head's regex_config this way).
  const QuantConfig c = parse(R"({"quant_method": "auto-round", "packing_format": "auto_round:auto_gptq",
      "bits": 4, "block_name_to_quantize": ["model.layers"], "extra_config": {".*lm_head.*": {"bits": 8}}})");
  expect_scheme(c, "lm_head", 8, 128, true);
  expect_unquantized(c, "model.embed_tokens");
}

TEST(QuantConfig, ExtraConfigOverridesAreValidatedWithDefaults) {
  const std::string ar = R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": 4, )";
  // A quantized override with an unsupported data type is refused; an unquantized one may name any.
  EXPECT_PARSE_ERROR(ar + R"("extra_config": {"model.layers.0.mlp.up_proj": {"data_type": "nv_fp"}}})",
                     "not supported yet: data_type 'nv_fp' in extra_config['model.layers.0.mlp.up_proj']");
  EXPECT_PARSE_ERROR(ar + R"("extra_config": {"lm_head": {"act_bits": 4}}})",
                     "not supported yet: act_bits 4");
  EXPECT_NO_THROW(parse(ar + R"("extra_config": {"lm_head": {"bits": 16, "data_type": "fp"}}})"));
  // An AWQ-packed checkpoint cannot hold an 8-bit layer.
  EXPECT_PARSE_ERROR(
      R"({"quant_method": "auto-round", "packing_format": "auto_round:auto_awq", "bits": 4,
                         "sym": false, "extra_config": {"lm_head": {"bits": 8}}})",
      "not supported yet: bits 8 with the AWQ packing (4-bit only) in extra_config['lm_head']");
  // Config-wide bits 16 with per-layer overrides: only those layers are quantized.
  const QuantConfig c = parse(R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": 16,
      "data_type": "float", "extra_config": {".*mlp.*": {"bits": 4, "data_type": "int", "sym": false}}})");
  EXPECT_EQ(c.default_bits(), 16);
  expect_scheme(c, "model.layers.0.mlp.up_proj", 4, 128, false);
  expect_unquantized(c, "model.layers.0.self_attn.q_proj");
  EXPECT_PARSE_ERROR(R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": 16,
      "data_type": "float", "extra_config": {".*mlp.*": {"bits": 4}}})",
                     "not supported yet: data_type 'float' in extra_config['.*mlp.*']");
}

TEST(QuantConfig, BlockNameToQuantizeForms) {
  const std::string ar =
      R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": 4, "sym": false, )";
  for (
      const std::string blocks :
      {R"("block_name_to_quantize": "model.language_model.layers")",
       R"("block_name_to_quantize": "model.language_model.layers, model.mtp")",
       R"("block_name_to_quantize": ["model.language_model.layers", "model.mtp"])",
       R"("to_quant_block_names": ["model.language_model.layers"])",
       R"("block_name_to_quantize": [["model.language_model.layers.0", "model.language_model.layers.1"]])"}) {
    const QuantConfig c = parse(ar + blocks + "}");
    expect_scheme(c, "model.language_model.layers.0.self_attn.q_proj", 4, 128, false);
    expect_scheme(c, "model.language_model.layers.1.mlp.down_proj", 4, 128, false);
    expect_unquantized(c, "model.visual.blocks.0.attn.qkv");
    expect_unquantized(c, "lm_head");
  }
  // Two blocks in a comma-separated string, spaces trimmed.
  const QuantConfig two =
      parse(ar + R"("block_name_to_quantize": "model.language_model.layers, model.mtp"})");
  ASSERT_EQ(two.block_names().size(), 2u);
  EXPECT_EQ(two.block_names()[1], "model.mtp");
  expect_scheme(two, "model.mtp.0.proj", 4, 128, false);
  // quant_block_list (lists of full block names) is reduced to each list's common prefix.
  const QuantConfig qbl =
      parse(ar + R"("quant_block_list": [["model.layers.0", "model.layers.1", "model.layers.2"]]})");
  ASSERT_EQ(qbl.block_names().size(), 1u);
  EXPECT_EQ(qbl.block_names()[0], "model.layers");
}

TEST(QuantConfig, ModulesToNotConvertBeatsExtraConfig) {
  // AutoRound writes the skip over any exact entry for layers inside the blocks.
  const QuantConfig c = parse(R"({"quant_method": "auto-round", "packing_format": "auto_round:auto_awq",
      "bits": 4, "sym": false, "modules_to_not_convert": ["self_attn.o_proj"],
      "extra_config": {"model.layers.0.self_attn.o_proj": {"group_size": 32}}})");
  expect_unquantized(c, "model.layers.0.self_attn.o_proj");
  expect_scheme(c, "model.layers.0.self_attn.q_proj", 4, 128, false);
}

TEST(QuantConfig, ModulesInBlockToQuantize) {
  // A GPTQ export that left some block layers in full precision lists the quantized ones per block.
  const QuantConfig c = parse(R"({"quant_method": "auto-round", "packing_format": "auto_round:auto_gptq",
      "bits": 4, "block_name_to_quantize": "model.layers",
      "modules_in_block_to_quantize": [["self_attn.q_proj", "self_attn.k_proj", "mlp.down_proj"]]})");
  expect_scheme(c, "model.layers.0.self_attn.q_proj", 4, 128, true);
  expect_scheme(c, "model.layers.5.mlp.down_proj", 4, 128, true);
  expect_unquantized(c, "model.layers.0.self_attn.v_proj");
  expect_unquantized(c, "model.layers.0.mlp.gate_proj");
}

TEST(QuantConfig, GptqDynamic) {
  // AutoRound's auto_gptq export writes per-layer differences as gptqmodel's "dynamic".
  const QuantConfig c = parse(R"({"quant_method": "auto-round", "packing_format": "auto_round:auto_gptq",
      "bits": 4, "group_size": 128, "sym": true,
      "dynamic": {"-:.*model\\.layers\\.0\\.mlp\\.down_proj.*": {},
                  "+:.*mlp\\.down_proj.*": {"bits": 8, "group_size": 32, "sym": true},
                  ".*self_attn\\.v_proj.*": {"bits": 2}},
      "extra_config": {"model.layers.3.mlp.down_proj": {"bits": 3}, ".*o_proj": {"bits": 2}}})");
  expect_unquantized(c, "model.layers.0.mlp.down_proj");
  expect_scheme(c, "model.layers.1.mlp.down_proj", 8, 32, true);
  expect_scheme(c, "model.layers.3.mlp.down_proj", 3, 128, true);     // an exact extra_config entry wins
  expect_scheme(c, "model.layers.1.self_attn.v_proj", 2, 128, true);  // a bare key is a "+:" override
  expect_scheme(c, "model.layers.1.self_attn.o_proj", 2, 128, true);
  expect_scheme(c, "model.layers.1.self_attn.q_proj", 4, 128, true);

  // Plain GPTQ configs from gptqmodel carry it too.
  const QuantConfig g = parse(R"({"quant_method": "gptq", "bits": 4, "checkpoint_format": "gptq_v2",
      "dynamic": {"-:.*gate_proj": {}, "+:.*up_proj": {"group_size": 64}}})");
  expect_unquantized(g, "model.layers.0.mlp.gate_proj");
  expect_scheme(g, "model.layers.0.mlp.up_proj", 4, 64, true);
}

TEST(QuantConfig, ResolveFollowsAutoRoundWithAllLayerNames) {
  const QuantConfig c = parse(R"({"quant_method": "auto-round", "packing_format": "auto_round", "bits": 4,
      "sym": false, "block_name_to_quantize": "model.layers",
      "extra_config": {
        "model.layers.0.mlp.down_proj": {"bits": 8},
        ".*up_proj": {"bits": 2},
        ".*mlp.*": {"group_size": 32}
      }})");
  const std::vector<std::string> names = {"model.layers.0.mlp.down_proj",
                                          "model.layers.0.mlp.down_proj_b",
                                          "model.layers.0.mlp.up_proj",
                                          "model.layers.0.self_attn.q_proj",
                                          "mtp.mlp.fc",
                                          "mtp.up_proj",
                                          "lm_head"};
  const auto schemes = c.resolve(names);
  ASSERT_EQ(schemes.count("model.layers.0.mlp.down_proj"), 1u);
  EXPECT_EQ(schemes.at("model.layers.0.mlp.down_proj").bits, 8);
  // A key that names a layer is exact for it only: it does not leak to "..._b" as a regex would.
  ASSERT_EQ(schemes.count("model.layers.0.mlp.down_proj_b"), 1u);
  EXPECT_EQ(schemes.at("model.layers.0.mlp.down_proj_b").bits, 4);
  EXPECT_EQ(schemes.at("model.layers.0.mlp.down_proj_b").group_size, 32);
  EXPECT_EQ(schemes.at("model.layers.0.mlp.up_proj").bits, 2);
  EXPECT_EQ(schemes.at("model.layers.0.self_attn.q_proj").bits, 4);
  // Regexes that match layers inside the blocks are not applied outside them (AutoRound matches them against
  // the in-block layers first), so the mtp layers and lm_head stay unquantized.
  EXPECT_EQ(schemes.count("mtp.mlp.fc"), 0u);
  EXPECT_EQ(schemes.count("mtp.up_proj"), 0u);
  EXPECT_EQ(schemes.count("lm_head"), 0u);
  EXPECT_EQ(schemes.size(), 4u);
  // Judged alone, the same name does get the regex (nothing says it matches in-block layers).
  EXPECT_TRUE(c.layer_scheme("mtp.up_proj").has_value());
  // The single-name answer treats the key as a regex, which here leaks as documented.
  EXPECT_EQ(c.layer_scheme("model.layers.0.mlp.down_proj_b")->bits, 8);
}

class QuantConfigDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ark_quant_config_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& file, const std::string& text) { std::ofstream(dir_ / file) << text; }
  std::filesystem::path dir_;
};

TEST_F(QuantConfigDir, ReadsConfigJson) {
  write("config.json", kAutoRoundSymConfig);
  write("quantization_config.json", R"({"quant_method": "awq", "bits": 4})");  // config.json's copy wins
  const QuantConfig c = QuantConfig::from_checkpoint_dir(dir_);
  EXPECT_EQ(c.layout(), PackingLayout::kGptqV1);
}

TEST_F(QuantConfigDir, FallsBackToSeparateFile) {
  write("config.json", R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})");
  write(
      "quantization_config.json",
      R"({"quant_method": "auto-round", "packing_format": "auto_round:auto_awq", "bits": 4, "group_size": 32,
            "sym": false})");
  const QuantConfig c = QuantConfig::from_checkpoint_dir(dir_);
  EXPECT_EQ(c.layout(), PackingLayout::kAwq);
  expect_scheme(c, "model.layers.0.self_attn.q_proj", 4, 32, false);
}

TEST_F(QuantConfigDir, ErrorsNameTheFiles) {
  auto message = [&] {
    try {
      QuantConfig::from_checkpoint_dir(dir_);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  write("config.json", R"({"hidden_size": 64})");
  EXPECT_NE(message().find("no quantization_config in config.json and no quantization_config.json"),
            std::string::npos);
  write("config.json", R"({"hidden_size": 64,)");
  EXPECT_NE(message().find("config.json' is not valid JSON"), std::string::npos) << message();
  write("config.json",
        R"({"quantization_config": {"quant_method": "auto-round", "packing_format": "x", "bits": 4}})");
  const std::string m = message();
  EXPECT_NE(m.find((dir_ / "config.json").string()), std::string::npos) << m;
  EXPECT_NE(m.find("not supported yet: packing_format 'x'"), std::string::npos) << m;
}

}  // namespace
}  // namespace ark

namespace ark {
namespace {

// quantization_config objects exactly as AutoRound 0.16.1 wrote them (scripts/autoround_conformance.py cases
// ar_asym_mixed and gptq_sym_mixed), with the layers it packed.
TEST(QuantConfig, RealAutoRoundMixedExport) {
  const QuantConfig c = QuantConfig::from_json_string(R"({
    "autoround_version": "0.16.1", "bits": 2, "block_name_to_quantize": "model.layers", "data_type": "int",
    "enable_quanted_input": false,
    "extra_config": {
      "lm_head": {"act_bits": 16, "act_data_type": "float", "act_dynamic": true, "act_group_size": 64,
                  "act_sym": false, "bits": 8, "data_type": "int", "group_size": 64, "rotation_config": null,
                  "super_bits": null, "super_group_size": null, "sym": false},
      "model.layers.0.mlp.down_proj": {"bits": 8, "group_size": 32},
      "model.layers.1.self_attn.q_proj": {"bits": 16}
    },
    "group_size": 64, "packing_format": "auto_round", "quant_method": "auto-round", "sym": false})");
  EXPECT_EQ(c.layout(), PackingLayout::kGptqV2);
  expect_scheme(c, "model.layers.0.mlp.down_proj", 8, 32, false);
  expect_scheme(c, "model.layers.1.mlp.down_proj", 2, 64, false);
  expect_unquantized(c, "model.layers.1.self_attn.q_proj");
  expect_scheme(c, "model.layers.0.self_attn.q_proj", 2, 64, false);
  // The config claims lm_head; that export stored it dense (see docs/CONFORMANCE.md), which is the loader's
  // business: the config alone says 8-bit.
  expect_scheme(c, "lm_head", 8, 64, false);
}

TEST(QuantConfig, RealAutoRoundGptqMixedExport) {
  const QuantConfig c = QuantConfig::from_json_string(R"({
    "autoround_version": "0.16.1", "bits": 4, "damp_percent": 0.01, "data_type": "int", "desc_act": false,
    "dynamic": {
      "+:.*model\\.layers\\.0\\.mlp\\.up_proj.*": {"bits": 8, "group_size": 32, "sym": true},
      "-:.*model\\.layers\\.1\\.self_attn\\.v_proj.*": {}
    },
    "enable_quanted_input": false, "group_size": 128, "lm_head": false,
    "modules_in_block_to_quantize": [["mlp.down_proj", "mlp.gate_proj", "mlp.up_proj", "self_attn.k_proj",
                                      "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj"]],
    "provider": "auto-round", "quant_method": "gptq", "sym": true, "true_sequential": false})");
  EXPECT_EQ(c.method(), QuantMethod::kGptq);
  EXPECT_EQ(c.layout(), PackingLayout::kGptqV1);
  expect_scheme(c, "model.layers.0.mlp.up_proj", 8, 32, true);
  expect_scheme(c, "model.layers.1.mlp.up_proj", 4, 128, true);
  expect_unquantized(c, "model.layers.1.self_attn.v_proj");
  expect_scheme(c, "model.layers.0.self_attn.v_proj", 4, 128, true);
  expect_unquantized(c, "lm_head");
  const std::vector<std::string> names = {"model.layers.0.mlp.up_proj", "model.layers.1.self_attn.v_proj",
                                          "model.layers.1.mlp.down_proj", "lm_head"};
  const auto all = c.resolve(names);
  EXPECT_EQ(all.size(), 2u);
}

}  // namespace
}  // namespace ark
