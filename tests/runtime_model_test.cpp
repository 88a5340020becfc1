// The model on generated tiny checkpoints: what the loader refuses (before any work) and forward-pass
// invariants that need no oracle: prompt-at-once equals token-by-token, the KV block size changes nothing,
// limits are clear errors. Agreement with an independent float64 implementation and with transformers is
// tests/python/test_runtime_reference.py's job.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "ark/generator.h"
#include "ark/model.h"
#include "ark/model_maker.h"
#include "ark/safetensors.h"
#include "runtime_test_util.h"

namespace ark {
namespace {

using runtime_test::error_of;
using runtime_test::TempDir;

MakeModelOptions tiny(Architecture arch) {
  MakeModelOptions o;
  o.arch = arch;
  o.seed = runtime_test::run_seed();
  o.hidden_size = 64;
  o.intermediate_size = 96;
  o.num_layers = 2;
  o.vocab_size = 200;
  return o;
}

std::vector<int32_t> random_ids(int n, int vocab, uint64_t salt) {
  std::mt19937_64 rng(runtime_test::run_seed() + salt);
  std::vector<int32_t> ids(n);
  for (int32_t& x : ids) x = static_cast<int32_t>(rng() % vocab);
  return ids;
}

LoadOptions exact(int64_t block_size = 16) {
  LoadOptions o;
  o.mode = ComputeMode::kExact;
  o.block_size = block_size;
  return o;
}

// Logits of every prompt position, the prompt run in one forward.
std::vector<float> all_logits(const Model& m, const std::vector<int32_t>& ids) {
  KvCache cache = m.new_cache();
  std::vector<float> out(ids.size() * m.config().vocab_size, NAN);
  m.forward(ids, cache, out.data(), true);
  return out;
}

// The same, one token per forward.
std::vector<float> stepwise_logits(const Model& m, const std::vector<int32_t>& ids) {
  KvCache cache = m.new_cache();
  const int64_t V = m.config().vocab_size;
  std::vector<float> out(ids.size() * V, NAN);
  for (size_t t = 0; t < ids.size(); ++t)
    m.forward(std::span<const int32_t>(&ids[t], 1), cache, out.data() + t * V);
  return out;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
  return std::isnan(d) ? INFINITY : d;
}

TEST(RuntimeModel, PromptAtOnceEqualsTokenByTokenForEveryArchitecture) {
  for (Architecture arch : {Architecture::kQwen2, Architecture::kLlama, Architecture::kQwen3}) {
    SCOPED_TRACE(std::string(architecture_name(arch)));
    TempDir dir("steps");
    MakeModelOptions o = tiny(arch);
    o.llama3_rope_scaling = arch == Architecture::kLlama;
    make_model(dir.path(), o);
    const Model m = Model::load(dir.path(), exact());
    const auto ids = random_ids(21, 200, 1);
    const auto a = all_logits(m, ids), b = stepwise_logits(m, ids);
    for (float x : a) ASSERT_TRUE(std::isfinite(x));
    // Same kernels (M < the GEMM threshold) and the same attention order: fp32 rounding differences only.
    EXPECT_LT(max_abs_diff(a, b), 1e-4);
  }
}

TEST(RuntimeModel, BlockSizeDoesNotChangeLogits) {
  TempDir dir("blocks");
  make_model(dir.path(), tiny(Architecture::kQwen2));
  const auto ids = random_ids(37, 200, 2);
  const auto ref = all_logits(Model::load(dir.path(), exact(16)), ids);
  for (int64_t bs : {1, 3, 64}) {
    const Model m = Model::load(dir.path(), exact(bs));
    EXPECT_EQ(max_abs_diff(ref, all_logits(m, ids)), 0.0) << "block size " << bs;
    KvCache c = m.new_cache();
    std::vector<float> l(200);
    m.forward(ids, c, l.data());
    EXPECT_EQ(c.blocks_allocated(), (37 + bs - 1) / bs);
  }
}

TEST(RuntimeModel, ShardsDtypesAndUnquantizedLayersLoad) {
  TempDir dir("variants");
  MakeModelOptions o = tiny(Architecture::kLlama);
  o.num_shards = 3;
  o.dtype = DType::F16;
  o.packing_format = "auto_round:auto_awq";
  o.unquantized_layers = {"model.layers.1.mlp.down_proj"};
  o.quantize_lm_head = true;
  o.rope_parameters_style = true;
  make_model(dir.path(), o);
  const Model m = Model::load(dir.path(), exact());
  int quantized = 0, plain = 0;
  for (const CheckpointLayer& l : m.plan().layers) {
    quantized += l.kind == CheckpointLayer::Kind::kQuantizedLinear;
    plain += l.kind == CheckpointLayer::Kind::kLinear;
  }
  EXPECT_EQ(quantized, 14);  // 2 x 7 - 1 left unquantized + lm_head
  EXPECT_EQ(plain, 1);
  const auto l = all_logits(m, random_ids(5, 200, 3));
  for (float x : l) ASSERT_TRUE(std::isfinite(x));
}

TEST(RuntimeModel, LimitsAndBadTokensAreClearErrors) {
  TempDir dir("limits");
  make_model(dir.path(), tiny(Architecture::kQwen3));
  LoadOptions lo = exact(4);
  lo.max_model_len = 10;
  const Model m = Model::load(dir.path(), lo);
  KvCache c = m.new_cache();
  std::vector<float> logits(200);
  const auto ids = random_ids(11, 200, 4);
  EXPECT_NE(error_of([&] { m.forward(ids, c, logits.data()); }).find("exceeds --max-model-len 10"),
            std::string::npos);
  EXPECT_EQ(c.size(), 0);
  const std::vector<int32_t> bad = {3, 200};
  EXPECT_NE(error_of([&] { m.forward(bad, c, logits.data()); }).find("token id 200"), std::string::npos);
  GenerateOptions go;
  go.max_tokens = 8;
  const std::vector<int32_t> prompt(5, 1);
  EXPECT_NE(error_of([&] { generate(m, c, prompt, go); }).find("--max-model-len 10"), std::string::npos);
  // check_generate: the same refusals, without a forward (a caller checks before it prints anything).
  EXPECT_NE(error_of([&] { check_generate(c, 5, go); }).find("--max-model-len 10"), std::string::npos);
  EXPECT_NO_THROW(check_generate(c, 3, go));  // 3 + 8 - 1 = 10 positions fit
  EXPECT_NE(error_of([&] { check_generate(c, 0, go); }).find("prompt is empty"), std::string::npos);
  GenerateOptions bad_top_p = go;
  bad_top_p.sampling.top_p = 0;
  EXPECT_NE(error_of([&] { check_generate(c, 3, bad_top_p); }).find("--top-p 0"), std::string::npos);
  EXPECT_EQ(c.size(), 0);
  LoadOptions too_long = exact();
  too_long.max_model_len = 1 << 20;
  EXPECT_NE(error_of([&] { Model::load(dir.path(), too_long); }).find("max_position_embeddings"),
            std::string::npos);
}

TEST(RuntimeModel, GenerationIsSeededAndStopsAtEos) {
  TempDir dir("gen");
  make_model(dir.path(), tiny(Architecture::kQwen2));
  const Model m = Model::load(dir.path(), exact());
  const auto prompt = random_ids(6, 200, 5);
  GenerateOptions go;
  go.max_tokens = 12;
  go.sampling = {0.9, 40, 0.95, runtime_test::run_seed()};
  KvCache c1 = m.new_cache(), c2 = m.new_cache();
  const auto r1 = generate(m, c1, prompt, go), r2 = generate(m, c2, prompt, go);
  EXPECT_EQ(r1.tokens, r2.tokens);
  ASSERT_EQ(r1.tokens.size(), 12u);
  // Greedy continuation equals the argmax of step-by-step logits; making its third token a stop id ends it.
  go.sampling = {};
  KvCache c3 = m.new_cache();
  const auto greedy = generate(m, c3, prompt, go);
  go.stop_ids = {greedy.tokens[2]};
  KvCache c4 = m.new_cache();
  const auto stopped = generate(m, c4, prompt, go);
  EXPECT_TRUE(stopped.stopped);
  const auto first =
      std::find(greedy.tokens.begin(), greedy.tokens.end(), greedy.tokens[2]) - greedy.tokens.begin();
  EXPECT_EQ(stopped.tokens, std::vector<int32_t>(greedy.tokens.begin(), greedy.tokens.begin() + first));
}

// --- refusals: each checkpoint defect is named before any weight is packed --------------------------------

void rewrite_without(const std::filesystem::path& dir, const std::string& drop, const std::string& add = "") {
  std::map<std::string, Tensor> keep;
  {
    const SafetensorsFile f = SafetensorsFile::open((dir / "model.safetensors").string());
    for (const SafetensorsEntry& e : f.entries()) {
      if (e.name == drop) continue;
      Tensor t(e.view.dtype, e.view.shape);
      std::memcpy(t.bytes.data(), e.view.data, e.view.nbytes());
      keep[e.name] = std::move(t);
    }
  }
  if (!add.empty()) keep[add] = Tensor(DType::F32, {4});
  write_safetensors((dir / "model.safetensors").string(), keep);
}

void edit_config(const std::filesystem::path& dir, const std::function<void(nlohmann::json&)>& fn) {
  auto j = nlohmann::json::parse(runtime_test::read_file(dir / "config.json"));
  fn(j);
  runtime_test::write_file(dir / "config.json", j.dump());
}

TEST(RuntimeModel, RefusesDefectiveCheckpoints) {
  auto fresh = [](const TempDir& d, Architecture arch = Architecture::kQwen2) {
    std::filesystem::remove_all(d.path());
    make_model(d.path(), tiny(arch));
  };
  TempDir d("defects");
  fresh(d);
  rewrite_without(d.path(), "model.layers.1.self_attn.k_proj.scales");
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()), "tensor 'model.layers.1.self_attn.k_proj.scales' is missing");

  fresh(d);
  rewrite_without(d.path(), "", "model.layers.0.mystery.weight");
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()), "unexpected tensor 'model.layers.0.mystery.weight'");

  fresh(d);
  edit_config(d.path(), [](nlohmann::json& j) { j["intermediate_size"] = 128; });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()), "model.layers.0.mlp.gate_proj.qweight' has shape");

  fresh(d);
  edit_config(d.path(), [](nlohmann::json& j) { j.erase("quantization_config"); });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()), "is stored but quantization_config leaves");

  fresh(d);
  edit_config(d.path(), [](nlohmann::json& j) { j["tie_word_embeddings"] = true; });
  // A stored lm_head with tie_word_embeddings is used as stored; the tied case without one is below.
  EXPECT_NO_THROW(plan_checkpoint(d.path()));
  rewrite_without(d.path(), "lm_head.weight");
  EXPECT_NO_THROW(plan_checkpoint(d.path()));
  edit_config(d.path(), [](nlohmann::json& j) { j["tie_word_embeddings"] = false; });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()), "'lm_head.weight' is missing");

  fresh(d, Architecture::kLlama);
  edit_config(d.path(), [](nlohmann::json& j) { j["attention_bias"] = true; });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()), "model.layers.0.self_attn.q_proj.bias' is missing");

  fresh(d);
  edit_config(d.path(), [](nlohmann::json& j) { j["quantization_config"]["bits"] = 8; });
  EXPECT_ERROR_HAS(plan_checkpoint(d.path()), "has shape");

  EXPECT_ERROR_HAS(plan_checkpoint(d.path() / "nowhere"), "no config.json");
  fresh(d);
  EXPECT_ERROR_HAS(Model::load(d.path(),
                               [] {
                                 LoadOptions o;
                                 o.block_size = 0;
                                 return o;
                               }()),
                   "--block-size");
}

}  // namespace
}  // namespace ark
