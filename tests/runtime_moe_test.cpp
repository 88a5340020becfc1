// Mixture-of-experts models in the runtime (Qwen2-MoE, Qwen3-MoE, Mixtral): config.json's MoE fields read as
// transformers reads them, the checkpoint plan (router, experts, shared expert, dense layers) and what it
// refuses before any work, and forward-pass invariants on generated checkpoints. Agreement with an
// independent float64 implementation (routing ties included) is tests/python/test_runtime_reference.py's job.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ark/model.h"
#include "ark/model_config.h"
#include "ark/model_maker.h"
#include "ark/safetensors.h"
#include "runtime_test_util.h"

namespace ark {
namespace {

using runtime_test::error_of;
using runtime_test::TempDir;

// config.json text of a small model of `arch` with `extra` fields merged in.
std::string config_text(const std::string& arch, const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json j = {{"architectures", {arch}},  {"hidden_size", 64},
                      {"intermediate_size", 96},  {"num_hidden_layers", 4},
                      {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                      {"vocab_size", 100},        {"max_position_embeddings", 64}};
  j.update(extra);
  return j.dump();
}

TEST(RuntimeMoeConfig, ReadsTheFieldsWithTransformersDefaults) {
  // Fields left out take the defaults of transformers' config classes.
  ModelConfig q2 = ModelConfig::from_json(config_text("Qwen2MoeForCausalLM"));
  EXPECT_EQ(q2.arch, Architecture::kQwen2Moe);
  EXPECT_EQ(q2.moe.num_experts, 60);
  EXPECT_EQ(q2.moe.top_k, 4);
  EXPECT_EQ(q2.moe.expert_intermediate_size, 1408);
  EXPECT_EQ(q2.moe.shared_intermediate_size, 5632);
  EXPECT_FALSE(q2.moe.norm_topk_prob);
  EXPECT_TRUE(q2.attention_bias);  // qkv_bias defaults to true
  EXPECT_FALSE(q2.o_proj_bias);
  EXPECT_FALSE(q2.qk_norm);

  ModelConfig q3 = ModelConfig::from_json(config_text("Qwen3MoeForCausalLM"));
  EXPECT_EQ(q3.moe.num_experts, 128);
  EXPECT_EQ(q3.moe.top_k, 8);
  EXPECT_EQ(q3.moe.expert_intermediate_size, 768);
  EXPECT_EQ(q3.moe.shared_intermediate_size, 0);
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_FALSE(q3.attention_bias);

  ModelConfig mx = ModelConfig::from_json(config_text("MixtralForCausalLM", {{"sliding_window", nullptr}}));
  EXPECT_EQ(mx.moe.num_experts, 8);
  EXPECT_EQ(mx.moe.top_k, 2);
  EXPECT_EQ(mx.moe.expert_intermediate_size, 96);  // Mixtral's experts take intermediate_size
  EXPECT_TRUE(mx.moe.norm_topk_prob);              // its router always renormalizes
  for (int64_t i = 0; i < 4; ++i) EXPECT_TRUE(mx.is_moe_layer(i));

  // Given fields win; Mixtral reads num_local_experts, Qwen num_experts.
  ModelConfig g =
      ModelConfig::from_json(config_text("Qwen2MoeForCausalLM", {{"num_experts", 6},
                                                                 {"num_experts_per_tok", 3},
                                                                 {"moe_intermediate_size", 32},
                                                                 {"shared_expert_intermediate_size", 40},
                                                                 {"norm_topk_prob", true},
                                                                 {"qkv_bias", false}}));
  EXPECT_EQ(g.moe.num_experts, 6);
  EXPECT_EQ(g.moe.top_k, 3);
  EXPECT_EQ(g.moe.expert_intermediate_size, 32);
  EXPECT_EQ(g.moe.shared_intermediate_size, 40);
  EXPECT_TRUE(g.moe.norm_topk_prob);
  EXPECT_FALSE(g.attention_bias);
  EXPECT_EQ(
      ModelConfig::from_json(config_text("MixtralForCausalLM", {{"num_local_experts", 5}})).moe.num_experts,
      5);
  // transformers 5 writes num_local_experts for Qwen3-MoE (and accepts num_experts for Mixtral).
  EXPECT_EQ(
      ModelConfig::from_json(config_text("Qwen3MoeForCausalLM", {{"num_local_experts", 12}})).moe.num_experts,
      12);
  EXPECT_EQ(ModelConfig::from_json(config_text("MixtralForCausalLM", {{"num_experts", 6}})).moe.num_experts,
            6);
  EXPECT_EQ(
      ModelConfig::from_json(config_text("Qwen2MoeForCausalLM", {{"num_local_experts", 12}})).moe.num_experts,
      60);

  ModelConfig dense = ModelConfig::from_json(config_text("Qwen3ForCausalLM"));
  EXPECT_FALSE(dense.is_moe());
  EXPECT_FALSE(dense.is_moe_layer(0));
}

TEST(RuntimeMoeConfig, SparseLayersFollowDecoderSparseStepAndMlpOnlyLayers) {
  // transformers: sparse when not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0.
  ModelConfig c = ModelConfig::from_json(
      config_text("Qwen3MoeForCausalLM", {{"decoder_sparse_step", 2}, {"mlp_only_layers", {3}}}));
  EXPECT_FALSE(c.is_moe_layer(0));
  EXPECT_TRUE(c.is_moe_layer(1));
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_FALSE(c.is_moe_layer(3));
  ModelConfig d = ModelConfig::from_json(config_text("Qwen2MoeForCausalLM", {{"mlp_only_layers", {0, 2}}}));
  EXPECT_FALSE(d.is_moe_layer(0));
  EXPECT_TRUE(d.is_moe_layer(1));
  EXPECT_FALSE(d.is_moe_layer(2));
  EXPECT_TRUE(d.is_moe_layer(3));
}

TEST(RuntimeMoeConfig, RefusesWhatItCannotRun) {
  EXPECT_ERROR_HAS(ModelConfig::from_json(
                       config_text("Qwen3MoeForCausalLM", {{"num_experts", 4}, {"num_experts_per_tok", 5}})),
                   "num_experts_per_tok 5 exceeds the 4 experts");
  EXPECT_ERROR_HAS(ModelConfig::from_json(config_text("Qwen3MoeForCausalLM", {{"mlp_only_layers", {4}}})),
                   "'mlp_only_layers' must hold layer indices in [0, 4)");
  EXPECT_ERROR_HAS(ModelConfig::from_json(config_text("Qwen2MoeForCausalLM", {{"mlp_only_layers", 1}})),
                   "'mlp_only_layers' must be a list");
  EXPECT_ERROR_HAS(ModelConfig::from_json(config_text("Qwen2MoeForCausalLM", {{"decoder_sparse_step", 0}})),
                   "'decoder_sparse_step' must be a positive integer");
  EXPECT_ERROR_HAS(ModelConfig::from_json(config_text("MixtralForCausalLM", {{"sliding_window", 4096}})),
                   "sliding_window 4096 is not supported");
  EXPECT_ERROR_HAS(ModelConfig::from_json(config_text("Qwen2MoeForCausalLM", {{"use_sliding_window", true}})),
                   "use_sliding_window");
  EXPECT_ERROR_HAS(ModelConfig::from_json(config_text("DeepseekV3ForCausalLM")), "MixtralForCausalLM");
  EXPECT_ERROR_HAS(ModelConfig::from_json(
                       config_text("Qwen3MoeForCausalLM", {{"num_experts", 8}, {"num_local_experts", 16}})),
                   "'num_experts' 8 and 'num_local_experts' 16 disagree");
}

MakeModelOptions tiny(const std::string& preset) {
  MakeModelOptions o = make_model_preset(preset);
  o.seed = runtime_test::run_seed();
  o.vocab_size = 200;
  return o;
}

LoadOptions exact() {
  LoadOptions o;
  o.mode = ComputeMode::kExact;
  return o;
}

TEST(RuntimeMoePlan, ListsRouterExpertsSharedExpertAndDenseLayers) {
  TempDir dir("moe_plan");
  MakeModelOptions o = tiny("tiny-qwen2-moe");  // 3 layers, layer 1 dense, 8 experts, shared expert
  make_model(dir.path(), o);
  const CheckpointPlan p = plan_checkpoint(dir.path());
  EXPECT_EQ(p.config.arch, Architecture::kQwen2Moe);
  EXPECT_EQ(p.moe_naming, MoeNaming::kMlp);
  int routed = 0, shared = 0, routers = 0, shared_gates = 0, dense_mlp = 0;
  for (const CheckpointLayer& l : p.layers) {
    if (l.expert >= 0) {
      ++routed;
      EXPECT_EQ(l.kind, CheckpointLayer::Kind::kQuantizedLinear) << l.name;
      EXPECT_NE(l.name.find(".mlp.experts." + std::to_string(l.expert) + "."), std::string::npos) << l.name;
    }
    if (l.expert == CheckpointLayer::kSharedExpert) ++shared;
    if (l.name.ends_with(".mlp.gate")) {
      ++routers;
      EXPECT_EQ(l.kind, CheckpointLayer::Kind::kLinear);
      EXPECT_EQ(l.dtype, DType::BF16);  // taken from the safetensors header
      EXPECT_EQ(l.out_features, 8);
    }
    if (l.name.ends_with(".mlp.shared_expert_gate")) {
      ++shared_gates;
      EXPECT_EQ(l.out_features, 1);
    }
    if (l.name.ends_with(".mlp.gate_proj")) {
      ++dense_mlp;
      EXPECT_EQ(l.name, "model.layers.1.mlp.gate_proj");
      EXPECT_EQ(l.out_features, 96);
    }
  }
  EXPECT_EQ(routed, 2 * 8 * 3);
  EXPECT_EQ(shared, 2 * 3);
  EXPECT_EQ(routers, 2);
  EXPECT_EQ(shared_gates, 2);
  EXPECT_EQ(dense_mlp, 1);
}

// Rewrites model.safetensors without `drop` (a tensor name), or with tensor `copy_from` also stored as `add`.
void rewrite(const std::filesystem::path& dir, const std::string& drop, const std::string& add = "",
             const std::string& copy_from = "") {
  std::map<std::string, Tensor> keep;
  {
    const SafetensorsFile f = SafetensorsFile::open((dir / "model.safetensors").string());
    for (const SafetensorsEntry& e : f.entries()) {
      Tensor t(e.view.dtype, e.view.shape);
      std::memcpy(t.bytes.data(), e.view.data, e.view.nbytes());
      if (e.name == copy_from) keep[add] = t;
      if (e.name != drop) keep[e.name] = std::move(t);
    }
  }
  write_safetensors((dir / "model.safetensors").string(), keep);
}

void edit_config(const std::filesystem::path& dir, const std::function<void(nlohmann::json&)>& fn) {
  auto j = nlohmann::json::parse(runtime_test::read_file(dir / "config.json"));
  fn(j);
  runtime_test::write_file(dir / "config.json", j.dump());
}

TEST(RuntimeMoePlan, RefusesDefectsBeforeAnyWorkNamingTheTensor) {
  TempDir d("moe_defects");
  auto fresh = [&](const std::string& preset, const std::function<void(MakeModelOptions&)>& edit = {}) {
    std::filesystem::remove_all(d.path());
    MakeModelOptions o = tiny(preset);
    if (edit) edit(o);
    make_model(d.path(), o);
  };

  fresh("tiny-qwen3-moe");
  rewrite(d.path(), "model.layers.1.mlp.experts.5.down_proj.scales");
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()),
                   "tensor 'model.layers.1.mlp.experts.5.down_proj.scales' is missing");

  fresh("tiny-qwen3-moe");
  rewrite(d.path(), "model.layers.0.mlp.gate.weight");
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()), "tensor 'model.layers.0.mlp.gate.weight' is missing");

  // config.json disagreeing with the tensors: expert count (the router's shape), expert size, shared size.
  fresh("tiny-qwen3-moe");
  edit_config(d.path(), [](nlohmann::json& j) { j["num_experts"] = 6; });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()),
                   "tensor 'model.layers.0.mlp.gate.weight' has shape [8, 64], expected [6, 64]");
  edit_config(d.path(), [](nlohmann::json& j) {
    j["num_experts"] = 8;
    j["moe_intermediate_size"] = 64;
  });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()),
                   "tensor 'model.layers.0.mlp.experts.0.gate_proj.qweight' has shape");
  fresh("tiny-qwen2-moe");
  edit_config(d.path(), [](nlohmann::json& j) { j["shared_expert_intermediate_size"] = 32; });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()),
                   "'model.layers.0.mlp.shared_expert.gate_proj.qweight' has shape");

  // An expert the config does not know of, and a dense layer the config calls sparse.
  fresh("tiny-qwen3-moe");
  edit_config(d.path(), [](nlohmann::json& j) { j["num_experts"] = 7; });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()),
                   "'model.layers.0.mlp.gate.weight' has shape [8, 64], expected [7, 64]");
  fresh("tiny-qwen2-moe");
  edit_config(d.path(), [](nlohmann::json& j) { j["mlp_only_layers"] = nlohmann::json::array(); });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()), "tensor 'model.layers.1.mlp.gate.weight' is missing");
  fresh("tiny-qwen3-moe");
  rewrite(d.path(), "", "model.layers.0.mlp.experts.8.up_proj.qweight",
          "model.layers.0.mlp.experts.7.up_proj.qweight");
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()),
                   "unexpected tensor 'model.layers.0.mlp.experts.8.up_proj.qweight'");

  // Unquantized experts and quantized routers are refused by name.
  fresh("tiny-qwen3-moe",
        [](MakeModelOptions& o) { o.unquantized_layers = {"model.layers.1.mlp.experts.3.up_proj"}; });
  EXPECT_ERROR_HAS(
      plan_checkpoint(d.path()),
      "expert linear 'model.layers.1.mlp.experts.3.up_proj' is left unquantized by quantization_config; "
      "unquantized experts are not supported");
  fresh("tiny-qwen3-moe", [](MakeModelOptions& o) { o.packing_format = "none"; });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()), "unquantized experts are not supported");
  fresh("tiny-qwen3-moe");
  rewrite(d.path(), "", "model.layers.0.mlp.gate.qweight", "model.layers.0.mlp.experts.0.gate_proj.qweight");
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()),
                   "a quantized MoE router or shared-expert gate is not supported");
}

// Logits of every prompt position in one forward, and one token per forward.
std::vector<float> logits_at_once(const Model& m, const std::vector<int32_t>& ids) {
  KvCache cache = m.new_cache();
  std::vector<float> out(ids.size() * m.config().vocab_size, NAN);
  m.forward(ids, cache, out.data(), true);
  return out;
}
std::vector<float> logits_stepwise(const Model& m, const std::vector<int32_t>& ids) {
  KvCache cache = m.new_cache();
  const int64_t V = m.config().vocab_size;
  std::vector<float> out(ids.size() * V, NAN);
  for (size_t t = 0; t < ids.size(); ++t)
    m.forward(std::span<const int32_t>(&ids[t], 1), cache, out.data() + t * V);
  return out;
}

std::vector<int32_t> random_ids(int n, int vocab, uint64_t salt) {
  std::mt19937_64 rng(runtime_test::run_seed() + salt);
  std::vector<int32_t> ids(n);
  for (int32_t& x : ids) x = static_cast<int32_t>(rng() % vocab);
  return ids;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
  return std::isnan(d) ? INFINITY : d;
}

TEST(RuntimeMoeModel, PromptAtOnceEqualsTokenByTokenForEveryMoeArchitecture) {
  for (const char* preset : {"tiny-qwen3-moe", "tiny-qwen2-moe", "tiny-mixtral"}) {
    SCOPED_TRACE(preset);
    TempDir dir("moe_steps");
    make_model(dir.path(), tiny(preset));
    const Model m = Model::load(dir.path(), exact());
    const auto ids = random_ids(19, 200, 11);
    const auto a = logits_at_once(m, ids), b = logits_stepwise(m, ids);
    for (float x : a) ASSERT_TRUE(std::isfinite(x));
    // The experts group tokens differently (19 at once, 1 per call): fp32 rounding differences only.
    EXPECT_LT(max_abs_diff(a, b), 1e-4);
    // Experts with 2 or more tokens on the GEMM (the loader passes kernel_switch_threshold to QuantMoE); ISA
    // capped at AVX-512F, whose exact GEMM keeps fp32 operands (the BF16 / AMX ones round them to bf16).
    LoadOptions gemm = exact();
    gemm.kernel_switch_threshold = 2;
    gemm.max_isa = "avx512";
    const Model mg = Model::load(dir.path(), gemm);
    EXPECT_LT(max_abs_diff(a, logits_at_once(mg, ids)), 1e-4);
  }
}

TEST(RuntimeMoeModel, MixtralNamingsLoadTheSameModel) {
  // The same seed writes the same weights under each naming; the planner recognises each and the logits are
  // identical.
  MakeModelOptions o = tiny("tiny-mixtral");
  const auto ids = random_ids(7, 200, 12);
  std::vector<float> first;
  for (MoeNaming naming : {MoeNaming::kMlp, MoeNaming::kBlockSparseMoe, MoeNaming::kMixtralW123}) {
    TempDir dir("moe_names");
    o.moe_naming = naming;
    make_model(dir.path(), o);
    const Model m = Model::load(dir.path(), exact());
    EXPECT_EQ(m.plan().moe_naming, naming);
    const auto logits = logits_at_once(m, ids);
    if (first.empty()) first = logits;
    EXPECT_EQ(max_abs_diff(first, logits), 0.0) << static_cast<int>(naming);
  }
}

TEST(RuntimeMoeMaker, RefusesOptionsNoCheckpointCouldHold) {
  TempDir dir("moe_maker");
  auto fails = [&](const std::function<void(MakeModelOptions&)>& edit,
                   const std::string& preset = "tiny-qwen3-moe") {
    MakeModelOptions o = tiny(preset);
    edit(o);
    return error_of([&] { make_model(dir.path(), o); });
  };
  EXPECT_NE(fails([](MakeModelOptions& o) {
              o.moe_naming = MoeNaming::kBlockSparseMoe;
            }).find("block_sparse_moe names are Mixtral's only"),
            std::string::npos);
  EXPECT_NE(fails([](MakeModelOptions& o) {
              o.num_experts_per_tok = 9;
            }).find("experts per token (9) <= experts (8)"),
            std::string::npos);
  EXPECT_NE(fails([](MakeModelOptions& o) { o.shared_expert_intermediate_size = 0; }, "tiny-qwen2-moe")
                .find("Qwen2-MoE needs a shared expert"),
            std::string::npos);
  EXPECT_NE(
      fails([](MakeModelOptions& o) { o.mlp_only_layers = {0}; }, "tiny-mixtral").find("mlp_only_layers"),
      std::string::npos);
  EXPECT_NE(fails([](MakeModelOptions& o) { o.mlp_only_layers = {2}; }).find("mlp_only_layers entry 2"),
            std::string::npos);
  EXPECT_NE(
      fails([](MakeModelOptions& o) { o.attention_bias = true; }, "tiny-mixtral").find("no attention biases"),
      std::string::npos);
  EXPECT_NE(error_of([] { make_model_preset("tiny-deepseek"); }).find("tiny-mixtral"), std::string::npos);
}

TEST(RuntimeMoeModel, DecodeBytesCountOnlyTheRoutedExperts) {
  TempDir dir("moe_bytes");
  MakeModelOptions o = tiny("tiny-qwen3-moe");  // 8 experts, top-2
  make_model(dir.path(), o);
  const Model m = Model::load(dir.path(), exact());
  const size_t all = m.packed_bytes() + m.unquantized_bytes();
  const size_t per_token = m.bytes_read_per_token();
  // Every non-expert weight (the embedding row excluded) plus about 2/8 of the experts.
  EXPECT_LT(per_token, all);
  size_t expert_ckpt = 0, total_ckpt = 0;
  for (const CheckpointLayer& l : m.plan().layers) {
    total_ckpt += l.checkpoint_bytes;
    if (l.expert >= 0) expert_ckpt += l.checkpoint_bytes;
  }
  EXPECT_GT(expert_ckpt, total_ckpt / 4);  // the test means something only when experts weigh
  const double skipped = static_cast<double>(all - per_token) / static_cast<double>(all);
  EXPECT_GT(skipped, 0.6 * 6.0 / 8.0 * static_cast<double>(expert_ckpt) / static_cast<double>(total_ckpt));
}

}  // namespace
}  // namespace ark
