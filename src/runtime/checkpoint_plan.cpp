// plan_checkpoint (ark/model.h): every check that can be made from config.json, quantization_config and the
// safetensors headers, before a single weight is decoded.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "ark/error.h"
#include "ark/format.h"
#include "ark/model.h"
#include "ark/quant_config.h"
#include "ark/safetensors.h"
#include "runtime/model_names.h"

namespace ark {

namespace {

bool has_quantization_config(const std::filesystem::path& dir) {
  if (std::filesystem::is_regular_file(dir / "quantization_config.json")) return true;
  // A cheap textual probe; QuantConfig parses the file properly when it is there.
  std::ifstream in(dir / "config.json");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str().find("\"quantization_config\"") != std::string::npos;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

std::string scheme_str(const QuantScheme& s) {
  std::ostringstream o;
  o << "int" << s.bits << " g" << s.group_size << (s.sym ? " sym" : " asym") << " " << layout_name(s.layout);
  return o.str();
}

class Planner {
 public:
  Planner(const SafetensorsStore& store, CheckpointPlan& plan) : store_(store), plan_(plan) {}

  const TensorView& need(const std::string& name, const std::vector<int64_t>& shape,
                         std::initializer_list<DType> dtypes) {
    ARK_CHECK(store_.has(name), plan_.dir.string(), ": tensor '", name, "' is missing (needed by ",
              architecture_name(plan_.config.arch), ")");
    views_[name] = store_.get(name);
    const TensorView& v = views_[name];
    ARK_CHECK(v.shape == shape, plan_.dir.string(), ": tensor '", name, "' has shape ", shape_str(v.shape),
              ", expected ", shape_str(shape), " from config.json");
    bool ok = false;
    for (DType t : dtypes) ok = ok || v.dtype == t;
    std::ostringstream want;
    for (DType t : dtypes) want << (want.tellp() > 0 ? " or " : "") << dtype_name(t);
    ARK_CHECK(ok, plan_.dir.string(), ": tensor '", name, "' has dtype ", dtype_name(v.dtype), ", expected ",
              want.str());
    used_.insert(name);
    return v;
  }

  void norm(const std::string& module, int64_t len) {
    CheckpointLayer l;
    l.name = module;
    l.kind = CheckpointLayer::Kind::kNorm;
    l.in_features = len;
    l.out_features = 1;
    const TensorView& v = need(module + ".weight", {len}, {DType::F32, DType::BF16, DType::F16});
    l.dtype = v.dtype;
    l.checkpoint_bytes = v.nbytes();
    add(std::move(l));
  }

  void linear(const std::string& module, int64_t K, int64_t N, bool bias,
              const std::map<std::string, QuantScheme>& schemes) {
    CheckpointLayer l;
    l.name = module;
    l.in_features = K;
    l.out_features = N;
    l.bias = bias;
    const auto it = schemes.find(module);
    const bool stored_quantized = store_.has(module + ".qweight");
    if (it != schemes.end()) {
      ARK_CHECK(stored_quantized, plan_.dir.string(), ": quantization_config quantizes '", module, "' (",
                scheme_str(it->second), ") but the checkpoint has no '", module, ".qweight'",
                store_.has(module + ".weight") ? " (it holds an unquantized .weight)" : "");
      const QuantScheme& s = it->second;
      PackedShapes shapes;
      try {
        shapes = packed_shapes(s, K, N);
      } catch (const Error& e) {
        throw_error(plan_.dir.string(), ": layer '", module, "' (K=", K, ", N=", N, "): ", e.what());
      }
      l.kind = CheckpointLayer::Kind::kQuantizedLinear;
      l.scheme = s;
      l.checkpoint_bytes += need(module + ".qweight", shapes.qweight, {DType::I32}).nbytes();
      l.checkpoint_bytes += need(module + ".qzeros", shapes.qzeros, {DType::I32}).nbytes();
      const TensorView& sc = need(module + ".scales", shapes.scales, {DType::F16, DType::BF16, DType::F32});
      l.dtype = sc.dtype;
      l.checkpoint_bytes += sc.nbytes();
      if (store_.has(module + ".g_idx")) {
        l.checkpoint_bytes += need(module + ".g_idx", shapes.g_idx, {DType::I32}).nbytes();
        l.act_order = true;
      }
    } else {
      ARK_CHECK(!stored_quantized, plan_.dir.string(), ": '", module,
                ".qweight' is stored but quantization_config leaves '", module, "' unquantized");
      l.kind = CheckpointLayer::Kind::kLinear;
      const TensorView& w = need(module + ".weight", {N, K}, {DType::F32, DType::BF16, DType::F16});
      l.dtype = w.dtype;
      l.checkpoint_bytes += w.nbytes();
    }
    if (bias) {
      l.checkpoint_bytes += need(module + ".bias", {N}, {DType::F32, DType::BF16, DType::F16}).nbytes();
    } else {
      ARK_CHECK(!store_.has(module + ".bias"), plan_.dir.string(), ": tensor '", module,
                ".bias' is not expected by config.json (", architecture_name(plan_.config.arch),
                plan_.config.arch == Architecture::kQwen2 ? ")" : ", attention_bias false)");
    }
    add(std::move(l));
  }

  // A MoE router or Qwen2-MoE's shared_expert_gate: float weight only (AutoRound keeps both in full
  // precision for MoE models, and ark's QuantMoE takes them as floats).
  void float_linear(const std::string& module, int64_t K, int64_t N) {
    ARK_CHECK(!store_.has(module + ".qweight"), plan_.dir.string(), ": '", module,
              "' is stored quantized; a quantized MoE router or shared-expert gate is not supported");
    linear(module, K, N, false, {});
  }

  // One linear of a routed or shared expert: quantized (QuantMoE packs only quantized experts).
  void expert_linear(const std::string& module, int64_t K, int64_t N, int32_t expert,
                     const std::map<std::string, QuantScheme>& schemes) {
    ARK_CHECK(schemes.count(module), plan_.dir.string(), ": expert linear '", module,
              "' is left unquantized by quantization_config; unquantized experts are not supported");
    linear(module, K, N, false, schemes);
    plan_.layers.back().expert = expert;
  }

  void add(CheckpointLayer l) {
    plan_.checkpoint_bytes += l.checkpoint_bytes;
    plan_.layers.push_back(std::move(l));
  }

  // Tensors transformers would ignore too (non-persistent buffers some exporters still write).
  static bool ignorable(const std::string& name) { return name.ends_with("rotary_emb.inv_freq"); }

  void check_all_used() const {
    for (const std::string& name : store_.names()) {
      if (used_.count(name) || ignorable(name)) continue;
      throw_error(plan_.dir.string(), ": unexpected tensor '", name, "' (not part of ",
                  architecture_name(plan_.config.arch), " with this config.json)");
    }
  }

 private:
  const SafetensorsStore& store_;
  CheckpointPlan& plan_;
  std::map<std::string, TensorView> views_;
  std::set<std::string> used_;
};

}  // namespace

CheckpointPlan plan_checkpoint(const std::filesystem::path& dir) {
  CheckpointPlan plan;
  plan.dir = dir;
  plan.config = ModelConfig::from_dir(dir);
  const ModelConfig& c = plan.config;
  const SafetensorsStore store = SafetensorsStore::open(dir.string());

  std::optional<QuantConfig> qc;
  if (has_quantization_config(dir)) qc = QuantConfig::from_checkpoint_dir(dir);

  const bool lm_head_stored = store.has("lm_head.weight") || store.has("lm_head.qweight");
  ARK_CHECK(lm_head_stored || c.tie_word_embeddings, dir.string(),
            ": tensor 'lm_head.weight' is missing and config.json does not set tie_word_embeddings");
  plan.lm_head_tied = !lm_head_stored;

  // Mixtral's checkpoints keep the block_sparse_moe module, with w1 / w3 / w2 experts when written before
  // transformers 5 (see MoeNaming).
  if (c.arch == Architecture::kMixtral && store.has(moe_router(0, kMixtralW123Names) + ".weight")) {
    const std::string w1 = expert_module(0, 0, kMixtralW123Names, 0);
    plan.moe_naming = store.has(w1 + ".qweight") || store.has(w1 + ".weight") ? MoeNaming::kMixtralW123
                                                                              : MoeNaming::kBlockSparseMoe;
  }
  const MoeNames& mn = moe_names(plan.moe_naming);
  const int64_t E = c.moe.num_experts, EI = c.moe.expert_intermediate_size,
                SI = c.moe.shared_intermediate_size;

  // Every Linear of the model that quantization_config may quantize (routers and the shared-expert gate stay
  // float, as AutoRound leaves them).
  std::vector<std::string> linear_names;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    for (const LinearSlot& s : kLayerLinears) {
      const bool mlp = s.slot == Slot::kGate || s.slot == Slot::kUp || s.slot == Slot::kDown;
      if (!mlp || !c.is_moe_layer(i)) linear_names.push_back(layer_module(i, s.name));
    }
    if (!c.is_moe_layer(i)) continue;
    for (int64_t e = 0; e < E; ++e)
      for (int w = 0; w < 3; ++w) linear_names.push_back(expert_module(i, e, mn, w));
    if (SI > 0)
      for (int w = 0; w < 3; ++w) linear_names.push_back(shared_expert_module(i, w));
  }
  if (lm_head_stored) linear_names.push_back("lm_head");
  std::map<std::string, QuantScheme> schemes;
  if (qc) {
    schemes = qc->resolve(linear_names);
    std::ostringstream s;
    const QuantScheme& d = qc->default_scheme();
    s << (qc->method() == QuantMethod::kAutoRound ? "auto-round"
          : qc->method() == QuantMethod::kGptq    ? "gptq"
                                                  : "awq")
      << " " << qc->packing_format() << ", default int" << qc->default_bits() << " g" << d.group_size
      << (d.sym ? " sym" : " asym") << ", " << schemes.size() << " of " << linear_names.size()
      << " linears quantized";
    plan.quant_summary = s.str();
  } else {
    plan.quant_summary = "none (no quantization_config)";
  }

  Planner p(store, plan);
  const int64_t H = c.hidden_size, D = c.head_dim;
  {
    CheckpointLayer e;
    e.name = "model.embed_tokens";
    e.kind = CheckpointLayer::Kind::kEmbedding;
    e.in_features = H;
    e.out_features = c.vocab_size;
    ARK_CHECK(!store.has("model.embed_tokens.qweight"), dir.string(),
              ": a quantized embedding is not supported yet");
    const TensorView& w =
        p.need("model.embed_tokens.weight", {c.vocab_size, H}, {DType::F32, DType::BF16, DType::F16});
    e.dtype = w.dtype;
    e.checkpoint_bytes = w.nbytes();
    p.add(std::move(e));
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    p.norm(layer_module(i, "input_layernorm"), H);
    for (const LinearSlot& s : kLayerLinears) {
      const bool mlp = s.slot == Slot::kGate || s.slot == Slot::kUp || s.slot == Slot::kDown;
      if (mlp && c.is_moe_layer(i)) continue;
      int64_t K = 0, N = 0;
      linear_shape(c, s.slot, &K, &N);
      const bool bias = (s.slot == Slot::kQ || s.slot == Slot::kK || s.slot == Slot::kV) ? c.attention_bias
                        : s.slot == Slot::kO                                             ? c.o_proj_bias
                                                                                         : false;
      p.linear(layer_module(i, s.name), K, N, bias, schemes);
    }
    if (c.is_moe_layer(i)) {
      p.float_linear(moe_router(i, mn), H, E);
      for (int64_t e = 0; e < E; ++e) {
        p.expert_linear(expert_module(i, e, mn, 0), H, EI, static_cast<int32_t>(e), schemes);
        p.expert_linear(expert_module(i, e, mn, 1), H, EI, static_cast<int32_t>(e), schemes);
        p.expert_linear(expert_module(i, e, mn, 2), EI, H, static_cast<int32_t>(e), schemes);
      }
      if (SI > 0) {
        p.expert_linear(shared_expert_module(i, 0), H, SI, CheckpointLayer::kSharedExpert, schemes);
        p.expert_linear(shared_expert_module(i, 1), H, SI, CheckpointLayer::kSharedExpert, schemes);
        p.expert_linear(shared_expert_module(i, 2), SI, H, CheckpointLayer::kSharedExpert, schemes);
        p.float_linear(shared_expert_gate(i), H, 1);
      }
    }
    if (c.qk_norm) {
      p.norm(layer_module(i, "self_attn.q_norm"), D);
      p.norm(layer_module(i, "self_attn.k_norm"), D);
    }
    p.norm(layer_module(i, "post_attention_layernorm"), H);
  }
  p.norm("model.norm", H);
  if (lm_head_stored) p.linear("lm_head", H, c.vocab_size, false, schemes);
  p.check_all_used();
  return plan;
}

}  // namespace ark
