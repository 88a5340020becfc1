// Random-weight checkpoints (ark/model_maker.h).
#include "ark/model_maker.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "ark/error.h"
#include "ark/format.h"
#include "ark/safetensors.h"
#include "ark/tokenizer.h"
#include "runtime/autoround_config_json.h"
#include "runtime/model_names.h"

namespace ark {

namespace {

using nlohmann::ordered_json;

// SplitMix64: the weights of a seed are the same on every machine.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-a, a).
  float uniform(float a) {
    return static_cast<float>((static_cast<double>(next() >> 11) * 0x1.0p-53 * 2 - 1) * a);
  }

 private:
  uint64_t s_;
};

Tensor float_tensor(const std::vector<float>& v, std::vector<int64_t> shape, DType dtype) {
  Tensor t(dtype, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (dtype) {
      case DType::BF16:
        t.as<uint16_t>()[i] = float_to_bf16(v[i]);
        break;
      case DType::F16:
        t.as<uint16_t>()[i] = float_to_fp16(v[i]);
        break;
      default:
        t.as<float>()[i] = v[i];
    }
  }
  return t;
}

std::vector<float> random_vector(Rng& rng, int64_t n, float center, float spread) {
  std::vector<float> v(n);
  for (float& x : v) x = center + rng.uniform(spread);
  return v;
}

const char* model_type(Architecture arch) {
  switch (arch) {
    case Architecture::kQwen2:
      return "qwen2";
    case Architecture::kQwen3:
      return "qwen3";
    case Architecture::kQwen2Moe:
      return "qwen2_moe";
    case Architecture::kQwen3Moe:
      return "qwen3_moe";
    case Architecture::kMixtral:
      return "mixtral";
    default:
      return "llama";
  }
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  ARK_CHECK(out, path.string(), ": cannot open for writing");
  out << text;
  ARK_CHECK(out.good(), path.string(), ": write failed");
}

void copy_tokenizer_file(const std::filesystem::path& from, const std::filesystem::path& to) {
  ARK_CHECK(std::filesystem::is_regular_file(from), "--tokenizer: ", from.string(), " does not exist");
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}

}  // namespace

MakeModelOptions make_model_preset(const std::string& name) {
  MakeModelOptions o;
  if (name == "tiny") return o;
  if (name == "qwen2.5-0.5b") {
    o.arch = Architecture::kQwen2;
    o.hidden_size = 896;
    o.intermediate_size = 4864;
    o.num_layers = 24;
    o.num_heads = 14;
    o.num_kv_heads = 2;
    o.head_dim = 64;
    o.vocab_size = 151936;
    o.max_position_embeddings = 32768;
    o.rope_theta = 1e6;
    o.rms_norm_eps = 1e-6;
    o.tie_word_embeddings = true;
    o.packing_format = "auto_round:auto_gptq";
    o.bits = 4;
    o.group_size = 128;
    o.sym = true;
    o.dtype = DType::BF16;
    return o;
  }
  if (name == "tiny-qwen3-moe") {
    o.arch = Architecture::kQwen3Moe;
    o.intermediate_size = 96;  // unused unless a layer is made dense
    return o;
  }
  if (name == "tiny-qwen2-moe") {
    o.arch = Architecture::kQwen2Moe;
    o.num_layers = 3;
    o.intermediate_size = 96;
    o.norm_topk_prob = false;  // Qwen2-MoE's default
    o.mlp_only_layers = {1};
    return o;
  }
  if (name == "tiny-mixtral") {
    o.arch = Architecture::kMixtral;
    o.num_experts = 4;
    o.intermediate_size = 64;
    return o;
  }
  throw_error("model preset '", name,
              "' is unknown (presets: tiny, qwen2.5-0.5b, tiny-qwen3-moe, tiny-qwen2-moe, tiny-mixtral)");
}

void make_model(const std::filesystem::path& dir, const MakeModelOptions& o) {
  for (const auto& [name, size] : {std::pair<const char*, int64_t>{"hidden", o.hidden_size},
                                   {"intermediate", o.intermediate_size},
                                   {"layers", o.num_layers},
                                   {"heads", o.num_heads},
                                   {"kv heads", o.num_kv_heads},
                                   {"vocab", o.vocab_size},
                                   {"max_position_embeddings", o.max_position_embeddings}})
    ARK_CHECK(size > 0, "make-model: ", name, " ", size, " must be positive");
  ARK_CHECK(o.num_heads % o.num_kv_heads == 0, "make-model: heads ", o.num_heads,
            " must be a multiple of kv heads ", o.num_kv_heads);
  ARK_CHECK(o.head_dim > 0 || o.hidden_size % o.num_heads == 0, "make-model: hidden ", o.hidden_size,
            " is not a multiple of heads ", o.num_heads, "; give head_dim");
  ARK_CHECK(o.num_shards >= 1, "make-model: shards must be >= 1");
  ARK_CHECK(o.dtype == DType::F32 || o.dtype == DType::BF16 || o.dtype == DType::F16,
            "make-model: dtype must be F32, BF16 or F16");
  const bool quantized = o.packing_format != "none";
  PackingLayout layout = PackingLayout::kGptqV1;
  if (quantized) {
    if (o.packing_format == "auto_round:auto_gptq" || o.packing_format == "auto_round:gptq") {
      layout = PackingLayout::kGptqV1;
    } else if (o.packing_format == "auto_round" || o.packing_format == "auto_round:gptqmodel") {
      layout = PackingLayout::kGptqV2;
    } else if (o.packing_format == "auto_round:auto_awq") {
      layout = PackingLayout::kAwq;
    } else {
      throw_error("make-model: format '", o.packing_format,
                  "' is not one of auto_round:auto_gptq, auto_round:gptqmodel, auto_round, "
                  "auto_round:auto_awq, none");
    }
  }

  const bool moe = o.arch == Architecture::kQwen2Moe || o.arch == Architecture::kQwen3Moe ||
                   o.arch == Architecture::kMixtral;
  const bool mixtral = o.arch == Architecture::kMixtral;
  const bool qwen2_family = o.arch == Architecture::kQwen2 || o.arch == Architecture::kQwen2Moe;
  ARK_CHECK(!mixtral || !o.attention_bias, "make-model: Mixtral has no attention biases");
  ARK_CHECK(o.moe_naming == MoeNaming::kMlp || mixtral,
            "make-model: the block_sparse_moe names are Mixtral's only");
  if (moe) {
    ARK_CHECK(o.num_experts > 0 && o.num_experts_per_tok > 0 && o.num_experts_per_tok <= o.num_experts,
              "make-model: need 0 < experts per token (", o.num_experts_per_tok, ") <= experts (",
              o.num_experts, ")");
    ARK_CHECK(o.moe_intermediate_size > 0 && o.decoder_sparse_step > 0,
              "make-model: MoE sizes must be positive");
    ARK_CHECK(o.arch != Architecture::kQwen2Moe || o.shared_expert_intermediate_size > 0,
              "make-model: Qwen2-MoE needs a shared expert (shared_expert_intermediate_size > 0)");
    for (int64_t l : o.mlp_only_layers)
      ARK_CHECK(l >= 0 && l < o.num_layers && !mixtral, "make-model: mlp_only_layers entry ", l,
                " is not a layer index (or the architecture is Mixtral, which has no dense layers)");
  }

  ModelConfig c;  // the shape table and which layers are sparse
  c.arch = o.arch;
  c.hidden_size = o.hidden_size;
  c.intermediate_size = o.intermediate_size;
  c.num_layers = o.num_layers;
  c.num_heads = o.num_heads;
  c.num_kv_heads = o.num_kv_heads;
  c.head_dim = o.head_dim > 0 ? o.head_dim : o.hidden_size / o.num_heads;
  if (moe) {
    c.moe.num_experts = o.num_experts;
    c.moe.top_k = o.num_experts_per_tok;
    c.moe.expert_intermediate_size = mixtral ? o.intermediate_size : o.moe_intermediate_size;
    c.moe.shared_intermediate_size =
        o.arch == Architecture::kQwen2Moe ? o.shared_expert_intermediate_size : 0;
    c.moe.decoder_sparse_step = mixtral ? 1 : o.decoder_sparse_step;
    c.moe.mlp_only_layers = o.mlp_only_layers;
  }
  const MoeNames& mn = moe_names(o.moe_naming);
  const bool qkv_bias = qwen2_family || o.attention_bias;
  const bool o_bias = !qwen2_family && o.attention_bias;

  // Tokenizer first: it fixes the EOS ids and must fit the vocabulary.
  std::vector<int32_t> eos;
  std::optional<int32_t> bos;
  if (!o.tokenizer_dir.empty()) {
    const Tokenizer tok = Tokenizer::load(o.tokenizer_dir);
    ARK_CHECK(tok.vocab_size() <= o.vocab_size, "make-model: the tokenizer in ", o.tokenizer_dir, " has ",
              tok.vocab_size(), " ids, more than vocab_size ", o.vocab_size);
    for (const char* t : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "</s>"})
      if (auto id = tok.token_to_id(t); id && tok.is_special(*id)) eos.push_back(*id);
    bos = tok.bos_id();
    if (!bos) bos = tok.token_to_id("<|endoftext|>");
  } else {
    eos.push_back(static_cast<int32_t>(o.vocab_size - 1));
  }

  Rng rng(o.seed);
  std::map<std::string, Tensor> tensors;
  ordered_json extra = ordered_json::object();
  for (const std::string& name : o.unquantized_layers) extra[name] = {{"bits", 16}, {"data_type", "float"}};

  const QuantScheme scheme{o.bits, o.group_size, o.sym, layout};
  auto add_linear = [&](const std::string& module, int64_t K, int64_t N, bool bias, bool quantize) {
    // Uniform with variance 1/K keeps activations near unit scale through the stack.
    const float a = std::sqrt(3.0f / static_cast<float>(K));
    std::vector<float> w(static_cast<size_t>(N * K));
    for (float& x : w) x = rng.uniform(a);
    bool q = quantize && quantized;
    for (const std::string& u : o.unquantized_layers) q = q && u != module;
    if (q) {
      QuantizedWeight qw;
      try {
        qw = quantize_rtn(w.data(), N, K, scheme, nullptr, o.scale_dtype);
      } catch (const Error& e) {
        throw_error("make-model: layer '", module, "' (K=", K, ", N=", N, "): ", e.what());
      }
      PackedTensors p = encode(qw, layout, o.scale_dtype);
      tensors[module + ".qweight"] = std::move(p.qweight);
      tensors[module + ".qzeros"] = std::move(p.qzeros);
      tensors[module + ".scales"] = std::move(p.scales);
      if (p.g_idx) tensors[module + ".g_idx"] = std::move(*p.g_idx);
    } else {
      tensors[module + ".weight"] = float_tensor(w, {N, K}, o.dtype);
    }
    if (bias) tensors[module + ".bias"] = float_tensor(random_vector(rng, N, 0.0f, 0.1f), {N}, o.dtype);
  };
  auto add_norm = [&](const std::string& module, int64_t n) {
    tensors[module + ".weight"] = float_tensor(random_vector(rng, n, 1.0f, 0.2f), {n}, o.dtype);
  };

  const int64_t H = o.hidden_size;
  tensors["model.embed_tokens.weight"] =
      float_tensor(random_vector(rng, o.vocab_size * H, 0.0f, 1.0f), {o.vocab_size, H}, o.dtype);
  for (int64_t i = 0; i < o.num_layers; ++i) {
    add_norm(layer_module(i, "input_layernorm"), H);
    for (const LinearSlot& s : kLayerLinears) {
      const bool mlp = s.slot == Slot::kGate || s.slot == Slot::kUp || s.slot == Slot::kDown;
      if (mlp && c.is_moe_layer(i)) continue;
      int64_t K = 0, N = 0;
      linear_shape(c, s.slot, &K, &N);
      const bool bias = (s.slot == Slot::kQ || s.slot == Slot::kK || s.slot == Slot::kV) ? qkv_bias
                        : s.slot == Slot::kO                                             ? o_bias
                                                                                         : false;
      add_linear(layer_module(i, s.name), K, N, bias, true);
    }
    if (c.is_moe_layer(i)) {
      const int64_t E = c.moe.num_experts, EI = c.moe.expert_intermediate_size;
      // The router as a float Linear [E][H]; with router_ties, odd experts copy the row of the even one
      // below them.
      add_linear(moe_router(i, mn), H, E, false, false);
      if (o.router_ties) {
        Tensor& r = tensors[moe_router(i, mn) + ".weight"];
        const size_t row = static_cast<size_t>(H) * dtype_size(r.dtype);
        for (int64_t e = 1; e < E; e += 2)
          std::memcpy(r.bytes.data() + e * row, r.bytes.data() + (e - 1) * row, row);
      }
      for (int64_t e = 0; e < E; ++e) {
        add_linear(expert_module(i, e, mn, 0), H, EI, false, true);
        add_linear(expert_module(i, e, mn, 1), H, EI, false, true);
        add_linear(expert_module(i, e, mn, 2), EI, H, false, true);
      }
      if (const int64_t SI = c.moe.shared_intermediate_size; SI > 0) {
        add_linear(shared_expert_module(i, 0), H, SI, false, true);
        add_linear(shared_expert_module(i, 1), H, SI, false, true);
        add_linear(shared_expert_module(i, 2), SI, H, false, true);
        add_linear(shared_expert_gate(i), H, 1, false, false);
      }
    }
    if (o.arch == Architecture::kQwen3 || o.arch == Architecture::kQwen3Moe) {
      add_norm(layer_module(i, "self_attn.q_norm"), c.head_dim);
      add_norm(layer_module(i, "self_attn.k_norm"), c.head_dim);
    }
    add_norm(layer_module(i, "post_attention_layernorm"), H);
  }
  add_norm("model.norm", H);
  if (!o.tie_word_embeddings || o.quantize_lm_head) {
    add_linear("lm_head", H, o.vocab_size, false, o.quantize_lm_head);
    if (o.quantize_lm_head && quantized)
      extra["lm_head"] = {{"bits", o.bits}, {"group_size", o.group_size}, {"sym", o.sym}};
  }

  // Every tensor is made (and every layer quantized) before the directory is created, so a refusal leaves
  // nothing behind.
  std::filesystem::create_directories(dir);
  // Shards: tensors spread in name order, with an index as transformers writes it.
  const std::string arch_name(architecture_name(o.arch));
  if (o.num_shards == 1) {
    write_safetensors((dir / "model.safetensors").string(), tensors, {{"format", "pt"}});
  } else {
    std::vector<std::map<std::string, Tensor>> shards(o.num_shards);
    ordered_json weight_map = ordered_json::object();
    size_t i = 0;
    for (auto& [name, t] : tensors) {
      const size_t s = i++ * o.num_shards / tensors.size();
      char file[64];
      std::snprintf(file, sizeof file, "model-%05zu-of-%05d.safetensors", s + 1, o.num_shards);
      weight_map[name] = file;
      shards[s].emplace(name, std::move(t));
    }
    for (int s = 0; s < o.num_shards; ++s) {
      char file[64];
      std::snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, o.num_shards);
      write_safetensors((dir / file).string(), shards[s], {{"format", "pt"}});
    }
    ordered_json index = {{"metadata", ordered_json::object()}, {"weight_map", weight_map}};
    write_text(dir / "model.safetensors.index.json", index.dump(2) + "\n");
  }

  ordered_json cfg;
  cfg["architectures"] = {arch_name};
  cfg["model_type"] = model_type(o.arch);
  cfg["hidden_size"] = H;
  cfg["intermediate_size"] = o.intermediate_size;
  cfg["num_hidden_layers"] = o.num_layers;
  cfg["num_attention_heads"] = o.num_heads;
  cfg["num_key_value_heads"] = o.num_kv_heads;
  cfg["head_dim"] = c.head_dim;
  cfg["vocab_size"] = o.vocab_size;
  cfg["max_position_embeddings"] = o.max_position_embeddings;
  cfg["rms_norm_eps"] = o.rms_norm_eps;
  cfg["hidden_act"] = "silu";
  cfg["tie_word_embeddings"] = o.tie_word_embeddings;
  if (!qwen2_family && !mixtral) cfg["attention_bias"] = o.attention_bias;
  if (mixtral) {
    cfg["num_local_experts"] = o.num_experts;
    cfg["num_experts_per_tok"] = o.num_experts_per_tok;
    cfg["sliding_window"] = nullptr;
  } else if (moe) {
    cfg["num_experts"] = o.num_experts;
    cfg["num_experts_per_tok"] = o.num_experts_per_tok;
    cfg["moe_intermediate_size"] = o.moe_intermediate_size;
    if (o.arch == Architecture::kQwen2Moe)
      cfg["shared_expert_intermediate_size"] = o.shared_expert_intermediate_size;
    cfg["norm_topk_prob"] = o.norm_topk_prob;
    cfg["decoder_sparse_step"] = o.decoder_sparse_step;
    cfg["mlp_only_layers"] = o.mlp_only_layers;
  }
  cfg["torch_dtype"] = o.dtype == DType::F32 ? "float32" : o.dtype == DType::F16 ? "float16" : "bfloat16";
  if (bos) cfg["bos_token_id"] = *bos;
  cfg["eos_token_id"] = eos.empty() ? ordered_json(nullptr) : ordered_json(eos[0]);
  ordered_json rope = nullptr;
  if (o.llama3_rope_scaling) {
    rope = {{"rope_type", "llama3"},
            {"factor", 8.0},
            {"low_freq_factor", 1.0},
            {"high_freq_factor", 4.0},
            {"original_max_position_embeddings", std::max<int64_t>(16, o.max_position_embeddings / 8)}};
  }
  if (o.rope_parameters_style) {
    ordered_json p = rope.is_null() ? ordered_json{{"rope_type", "default"}} : rope;
    p["rope_theta"] = o.rope_theta;
    cfg["rope_parameters"] = p;
  } else {
    cfg["rope_theta"] = o.rope_theta;
    cfg["rope_scaling"] = rope;
  }
  if (qwen2_family) cfg["use_sliding_window"] = false;
  if (quantized) {
    cfg["quantization_config"] =
        runtime::autoround_quantization_config(o.bits, o.group_size, o.sym, o.packing_format, extra);
  }
  write_text(dir / "config.json", cfg.dump(2) + "\n");

  ordered_json gen = {{"do_sample", false}};
  if (bos) gen["bos_token_id"] = *bos;
  gen["eos_token_id"] = eos;
  write_text(dir / "generation_config.json", gen.dump(2) + "\n");

  if (!o.tokenizer_dir.empty()) {
    const std::filesystem::path t(o.tokenizer_dir);
    copy_tokenizer_file(t / "tokenizer.json", dir / "tokenizer.json");
    if (std::filesystem::is_regular_file(t / "tokenizer_config.json"))
      copy_tokenizer_file(t / "tokenizer_config.json", dir / "tokenizer_config.json");
  }
}

}  // namespace ark
