// config.json / generation_config.json parsing (ark/model_config.h).
#include "ark/model_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ark/error.h"

namespace ark {

namespace {

using nlohmann::json;

constexpr Architecture kArchitectures[] = {Architecture::kQwen2,    Architecture::kLlama,
                                           Architecture::kQwen3,    Architecture::kQwen2Moe,
                                           Architecture::kQwen3Moe, Architecture::kMixtral};

json parse_text(std::string_view text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw_error(source, ": not valid JSON (", e.what(), ")");
  }
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  ARK_CHECK(in, path.string(), ": cannot open for reading");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A required positive integer field.
int64_t get_positive(const json& j, const char* key, const std::string& source) {
  ARK_CHECK(j.contains(key), source, ": field '", key, "' is missing");
  const json& v = j.at(key);
  ARK_CHECK(v.is_number_integer() && v.get<int64_t>() > 0, source, ": field '", key,
            "' must be a positive integer, got ", v.dump());
  return v.get<int64_t>();
}

double get_number(const json& j, const char* key, double fallback, const std::string& source) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  const json& v = j.at(key);
  ARK_CHECK(v.is_number(), source, ": field '", key, "' must be a number, got ", v.dump());
  return v.get<double>();
}

bool get_bool(const json& j, const char* key, bool fallback, const std::string& source) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  const json& v = j.at(key);
  ARK_CHECK(v.is_boolean(), source, ": field '", key, "' must be true or false, got ", v.dump());
  return v.get<bool>();
}

// eos_token_id may be one id or a list of them.
std::vector<int32_t> get_ids(const json& j, const char* key, const std::string& source) {
  std::vector<int32_t> ids;
  if (!j.contains(key) || j.at(key).is_null()) return ids;
  const json& v = j.at(key);
  auto one = [&](const json& x) {
    ARK_CHECK(x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() <= INT32_MAX, source,
              ": field '", key, "' must hold non-negative token ids, got ", v.dump());
    ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
  };
  if (v.is_array()) {
    for (const json& x : v) one(x);
  } else {
    one(v);
  }
  return ids;
}

// An optional positive integer field with the default transformers' config class gives it.
int64_t get_positive_or(const json& j, const char* key, int64_t fallback, const std::string& source) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return get_positive(j, key, source);
}

// The expert count of Qwen3-MoE and Mixtral: transformers 5 maps num_experts onto num_local_experts
// (attribute_map), and writes the latter, so either key may hold it (Qwen2-MoE knows num_experts only).
int64_t experts_field(const json& j, const char* key, const char* alias, int64_t fallback,
                      const std::string& source) {
  const int64_t a = get_positive_or(j, key, 0, source), b = get_positive_or(j, alias, 0, source);
  ARK_CHECK(a == 0 || b == 0 || a == b, source, ": '", key, "' ", a, " and '", alias, "' ", b, " disagree");
  return a > 0 ? a : b > 0 ? b : fallback;
}

// The MoE fields of config.json, with the defaults of transformers' Qwen2MoeConfig / Qwen3MoeConfig /
// MixtralConfig for fields left out (transformers reads them that way too).
MoeConfig read_moe(const json& j, Architecture arch, int64_t num_layers, int64_t intermediate_size,
                   const std::string& source) {
  MoeConfig m;
  switch (arch) {
    case Architecture::kQwen2Moe:
      m.num_experts = get_positive_or(j, "num_experts", 60, source);
      m.top_k = get_positive_or(j, "num_experts_per_tok", 4, source);
      m.expert_intermediate_size = get_positive_or(j, "moe_intermediate_size", 1408, source);
      m.shared_intermediate_size = get_positive_or(j, "shared_expert_intermediate_size", 5632, source);
      break;
    case Architecture::kQwen3Moe:
      m.num_experts = experts_field(j, "num_experts", "num_local_experts", 128, source);
      m.top_k = get_positive_or(j, "num_experts_per_tok", 8, source);
      m.expert_intermediate_size = get_positive_or(j, "moe_intermediate_size", 768, source);
      break;
    case Architecture::kMixtral:
      m.num_experts = experts_field(j, "num_local_experts", "num_experts", 8, source);
      m.top_k = get_positive_or(j, "num_experts_per_tok", 2, source);
      m.expert_intermediate_size = intermediate_size;  // Mixtral has no dense MLP
      m.norm_topk_prob = true;                         // its router always renormalizes
      break;
    default:
      return m;
  }
  ARK_CHECK(m.top_k <= m.num_experts, source, ": num_experts_per_tok ", m.top_k, " exceeds the ",
            m.num_experts, " experts");
  if (arch == Architecture::kMixtral) return m;  // every layer sparse, no shared expert
  m.norm_topk_prob = get_bool(j, "norm_topk_prob", false, source);
  m.decoder_sparse_step = get_positive_or(j, "decoder_sparse_step", 1, source);
  if (j.contains("mlp_only_layers") && !j.at("mlp_only_layers").is_null()) {
    const json& v = j.at("mlp_only_layers");
    ARK_CHECK(v.is_array(), source, ": field 'mlp_only_layers' must be a list of layer indices, got ",
              v.dump());
    for (const json& x : v) {
      ARK_CHECK(x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() < num_layers, source,
                ": field 'mlp_only_layers' must hold layer indices in [0, ", num_layers, "), got ", v.dump());
      m.mlp_only_layers.push_back(x.get<int64_t>());
    }
  }
  return m;
}

// Reads the scaling from either an old-style rope_scaling object or a new-style rope_parameters object
// (which may also carry rope_theta).
void read_rope(const json& r, const char* field, ModelConfig& c, const std::string& source) {
  ARK_CHECK(r.is_object(), source, ": field '", field, "' must be an object, got ", r.dump());
  std::string type = "default";
  if (r.contains("rope_type")) {
    type = r.at("rope_type").get<std::string>();
  } else if (r.contains("type")) {
    type = r.at("type").get<std::string>();
  }
  const std::string where = source + ": " + field;
  if (r.contains("rope_theta")) c.rope_theta = get_number(r, "rope_theta", c.rope_theta, where);
  RopeScaling& s = c.rope_scaling;
  s.type = type;
  if (type == "default") return;
  if (type == "linear") {
    s.factor = get_number(r, "factor", 0.0, where);
    ARK_CHECK(s.factor > 0, where, ": linear scaling needs a positive 'factor'");
    return;
  }
  if (type == "llama3") {
    for (const char* key :
         {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      ARK_CHECK(r.contains(key), where, ": llama3 scaling needs '", key, "'");
    s.factor = get_number(r, "factor", 0.0, where);
    s.low_freq_factor = get_number(r, "low_freq_factor", 0.0, where);
    s.high_freq_factor = get_number(r, "high_freq_factor", 0.0, where);
    s.original_max_position_embeddings = get_positive(r, "original_max_position_embeddings", where);
    ARK_CHECK(s.factor > 0 && s.low_freq_factor > 0 && s.high_freq_factor > s.low_freq_factor, where,
              ": llama3 scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0");
    return;
  }
  throw_error(where, ": RoPE type '", type, "' is not supported yet (supported: default, linear, llama3)");
}

}  // namespace

std::string_view architecture_name(Architecture arch) {
  switch (arch) {
    case Architecture::kQwen2:
      return "Qwen2ForCausalLM";
    case Architecture::kQwen3:
      return "Qwen3ForCausalLM";
    case Architecture::kQwen2Moe:
      return "Qwen2MoeForCausalLM";
    case Architecture::kQwen3Moe:
      return "Qwen3MoeForCausalLM";
    case Architecture::kMixtral:
      return "MixtralForCausalLM";
    default:
      return "LlamaForCausalLM";
  }
}

bool ModelConfig::is_moe_layer(int64_t layer) const {
  if (!is_moe()) return false;
  for (int64_t i : moe.mlp_only_layers)
    if (i == layer) return false;
  return (layer + 1) % moe.decoder_sparse_step == 0;
}

ModelConfig ModelConfig::from_json(std::string_view config_json, std::string_view generation_config_json,
                                   const std::string& source) {
  const json j = parse_text(config_json, source);
  ARK_CHECK(j.is_object(), source, ": expected a JSON object");
  ModelConfig c;

  ARK_CHECK(j.contains("architectures") && j.at("architectures").is_array() &&
                j.at("architectures").size() == 1 && j.at("architectures")[0].is_string(),
            source, ": 'architectures' must list exactly one architecture");
  const std::string arch = j.at("architectures")[0].get<std::string>();
  bool known = false;
  for (Architecture a : kArchitectures) {
    if (arch == architecture_name(a)) {
      c.arch = a;
      known = true;
    }
  }
  if (!known) {
    std::string names;
    for (Architecture a : kArchitectures)
      names += (names.empty() ? "" : ", ") + std::string(architecture_name(a));
    throw_error(source, ": architecture '", arch, "' is not supported (supported: ", names, ")");
  }

  c.hidden_size = get_positive(j, "hidden_size", source);
  c.intermediate_size = get_positive(j, "intermediate_size", source);
  c.num_layers = get_positive(j, "num_hidden_layers", source);
  c.num_heads = get_positive(j, "num_attention_heads", source);
  c.num_kv_heads = j.contains("num_key_value_heads") && !j.at("num_key_value_heads").is_null()
                       ? get_positive(j, "num_key_value_heads", source)
                       : c.num_heads;
  c.vocab_size = get_positive(j, "vocab_size", source);
  c.max_position_embeddings = get_positive(j, "max_position_embeddings", source);
  if (j.contains("head_dim") && !j.at("head_dim").is_null()) {
    c.head_dim = get_positive(j, "head_dim", source);
  } else {
    ARK_CHECK(c.hidden_size % c.num_heads == 0, source, ": hidden_size ", c.hidden_size,
              " is not a multiple of num_attention_heads ", c.num_heads, " and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  ARK_CHECK(c.head_dim % 2 == 0, source, ": head_dim ", c.head_dim, " must be even for RoPE");
  ARK_CHECK(c.num_heads % c.num_kv_heads == 0, source, ": num_attention_heads ", c.num_heads,
            " must be a multiple of num_key_value_heads ", c.num_kv_heads);
  c.rms_norm_eps = get_number(j, "rms_norm_eps", 1e-6, source);
  ARK_CHECK(c.rms_norm_eps > 0, source, ": rms_norm_eps must be positive");

  const std::string act = j.value("hidden_act", std::string("silu"));
  ARK_CHECK(act == "silu", source, ": hidden_act '", act, "' is not supported (expected silu)");
  ARK_CHECK(!get_bool(j, "mlp_bias", false, source), source, ": mlp_bias true is not supported yet");
  ARK_CHECK(!get_bool(j, "use_sliding_window", false, source), source,
            ": use_sliding_window true is not supported yet");
  const double pretraining_tp = get_number(j, "pretraining_tp", 1, source);
  ARK_CHECK(pretraining_tp == 1, source, ": pretraining_tp ", pretraining_tp,
            " is not supported (expected 1)");

  c.moe = read_moe(j, c.arch, c.num_layers, c.intermediate_size, source);
  if (c.arch == Architecture::kMixtral) {
    // transformers' Mixtral masks attention to a window whenever sliding_window is set.
    ARK_CHECK(!j.contains("sliding_window") || j.at("sliding_window").is_null(), source, ": sliding_window ",
              j.value("sliding_window", json()).dump(),
              " is not supported yet (MixtralForCausalLM with sliding_window null)");
  }

  // Qwen2Config, LlamaConfig, Qwen3Config and their MoE variants all default to untied embeddings.
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", false, source);
  const bool attention_bias = get_bool(j, "attention_bias", false, source);
  switch (c.arch) {
    case Architecture::kQwen2:
      c.attention_bias = true;  // Qwen2 always has q/k/v biases and none on o_proj
      break;
    case Architecture::kLlama:
      c.attention_bias = attention_bias;
      c.o_proj_bias = attention_bias;
      break;
    case Architecture::kQwen3:
    case Architecture::kQwen3Moe:
      c.attention_bias = attention_bias;
      c.o_proj_bias = attention_bias;
      c.qk_norm = true;
      break;
    case Architecture::kQwen2Moe:
      // Qwen2MoeConfig's qkv_bias (transformers 5; always on before it); never one on o_proj.
      c.attention_bias = get_bool(j, "qkv_bias", true, source);
      break;
    case Architecture::kMixtral:
      break;  // MixtralAttention has no biases
  }

  c.rope_theta = get_number(j, "rope_theta", 10000.0, source);
  if (j.contains("rope_parameters") && !j.at("rope_parameters").is_null()) {
    read_rope(j.at("rope_parameters"), "rope_parameters", c, source);
  } else if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null()) {
    read_rope(j.at("rope_scaling"), "rope_scaling", c, source);
  }
  ARK_CHECK(c.rope_theta > 0, source, ": rope_theta must be positive, got ", c.rope_theta);

  if (j.contains("bos_token_id") && !j.at("bos_token_id").is_null()) {
    const auto ids = get_ids(j, "bos_token_id", source);
    if (!ids.empty()) c.bos_token_id = ids[0];
  }
  c.eos_token_ids = get_ids(j, "eos_token_id", source);

  if (!generation_config_json.empty()) {
    const std::string gsource = source + " (generation_config.json)";
    const json g = parse_text(generation_config_json, gsource);
    ARK_CHECK(g.is_object(), gsource, ": expected a JSON object");
    const auto eos = get_ids(g, "eos_token_id", gsource);
    if (!eos.empty()) c.eos_token_ids = eos;
    if (g.contains("bos_token_id") && !g.at("bos_token_id").is_null()) {
      const auto ids = get_ids(g, "bos_token_id", gsource);
      if (!ids.empty()) c.bos_token_id = ids[0];
    }
    GenerationDefaults& d = c.generation;
    d.do_sample = get_bool(g, "do_sample", false, gsource);
    d.temperature = get_number(g, "temperature", 1.0, gsource);
    d.top_k = static_cast<int64_t>(get_number(g, "top_k", 0, gsource));
    d.top_p = get_number(g, "top_p", 1.0, gsource);
  }
  for (int32_t id : c.eos_token_ids)
    ARK_CHECK(id < c.vocab_size, source, ": eos_token_id ", id, " is outside the vocabulary of ",
              c.vocab_size);
  return c;
}

ModelConfig ModelConfig::from_dir(const std::filesystem::path& dir) {
  const auto config_path = dir / "config.json";
  ARK_CHECK(std::filesystem::is_regular_file(config_path), dir.string(),
            ": not a checkpoint directory (no config.json)");
  const std::string config = read_text(config_path);
  std::string generation;
  const auto gen_path = dir / "generation_config.json";
  if (std::filesystem::is_regular_file(gen_path)) generation = read_text(gen_path);
  return from_json(config, generation, config_path.string());
}

std::vector<float> ModelConfig::rope_inv_freq() const {
  const int64_t half = head_dim / 2;
  std::vector<float> out(half);
  const RopeScaling& s = rope_scaling;
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  for (int64_t i = 0; i < half; ++i) {
    // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in fp32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float inv = static_cast<float>(1.0 / std::pow(rope_theta, static_cast<double>(exponent)));
    double f = inv;
    if (s.type == "linear") {
      f = inv / s.factor;
    } else if (s.type == "llama3") {
      const double wavelen = 2 * M_PI / f;
      if (wavelen > low_wavelen) {
        f = f / s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                              (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
    out[i] = static_cast<float>(f);
  }
  return out;
}

}  // namespace ark
