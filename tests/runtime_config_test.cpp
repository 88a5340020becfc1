// Runtime pieces that need no weights: config.json parsing (both RoPE styles, llama3 scaling worked by
// hand, refusals), and the sampler.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "ark/model_config.h"
#include "ark/sampler.h"
#include "runtime_test_util.h"

namespace ark {
namespace {

using runtime_test::error_of;

std::string qwen2_config(const std::string& extra = "") {
  return R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "eos_token_id": 7, "tie_word_embeddings": true)" +
         extra + "}";
}

TEST(RuntimeConfig, ReadsSizesAndArchitectureRules) {
  const ModelConfig c = ModelConfig::from_json(qwen2_config(R"(, "rope_theta": 1000000.0)"));
  EXPECT_EQ(c.arch, Architecture::kQwen2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_TRUE(c.attention_bias);  // Qwen2 always carries q/k/v biases
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_theta, 1e6);
  ASSERT_EQ(c.eos_token_ids.size(), 1u);
  EXPECT_EQ(c.eos_token_ids[0], 7);
}

TEST(RuntimeConfig, GenerationConfigOverridesEosAndSampling) {
  const ModelConfig c = ModelConfig::from_json(
      qwen2_config(),
      R"({"eos_token_id": [5, 9], "do_sample": true, "temperature": 0.7, "top_k": 20, "top_p": 0.8})");
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{5, 9}));
  EXPECT_TRUE(c.generation.do_sample);
  EXPECT_DOUBLE_EQ(c.generation.temperature, 0.7);
  EXPECT_EQ(c.generation.top_k, 20);
  EXPECT_DOUBLE_EQ(c.generation.top_p, 0.8);
}

TEST(RuntimeConfig, BothRopeStylesGiveTheSameFrequencies) {
  const std::string llama =
      R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 8192)";
  const std::string scaling = R"("rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 1024)";
  const ModelConfig old_style =
      ModelConfig::from_json(llama + R"(, "rope_theta": 10000.0, "rope_scaling": {)" + scaling + "}}");
  const ModelConfig new_style =
      ModelConfig::from_json(llama + R"(, "rope_parameters": {"rope_theta": 10000.0, )" + scaling + "}}");
  const auto a = old_style.rope_inv_freq(), b = new_style.rope_inv_freq();
  ASSERT_EQ(a.size(), 4u);  // head_dim 8
  EXPECT_EQ(a, b);
  // By hand: inv = 10000^(-i/4) = 1, 0.1, 0.01, 0.001; wavelengths 2*pi/inv = 6.28, 62.8, 628, 6283 against
  // the bands 1024/4 = 256 and 1024/1 = 1024: the first two keep their frequency, the last is divided by 8,
  // and 628 is interpolated with smooth = (1024/628.32 - 1) / 3 = 0.20992: 0.79008 * 0.01/8 + 0.20992 * 0.01.
  EXPECT_NEAR(a[0], 1.0, 1e-7);
  EXPECT_NEAR(a[1], 0.1, 1e-7);
  EXPECT_NEAR(a[2], 0.003086761, 1e-8);
  EXPECT_NEAR(a[3], 0.000125, 1e-10);
  EXPECT_EQ(old_style.rope_scaling.type, "llama3");
}

TEST(RuntimeConfig, RefusesWhatItCannotRun) {
  EXPECT_NE(error_of([] {
              ModelConfig::from_json(R"({"architectures": ["MistralForCausalLM"], "hidden_size": 8})");
            }).find("MistralForCausalLM"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              ModelConfig::from_json(qwen2_config(R"(, "rope_scaling": {"type": "yarn", "factor": 4})"));
            }).find("yarn"),
            std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_json(qwen2_config(R"(, "hidden_act": "gelu")")); }).find("gelu"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              ModelConfig::from_json(qwen2_config(R"(, "use_sliding_window": true)"));
            }).find("use_sliding_window"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              ModelConfig::from_json(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64})", "",
                                     "x/config.json");
            }).find("x/config.json: field 'intermediate_size' is missing"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              ModelConfig::from_json(qwen2_config(R"(, "num_key_value_heads": 3)"));
            }).find("num_key_value_heads"),
            std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_json("{not json"); }).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of([] { ModelConfig::from_json(qwen2_config(), R"({"eos_token_id": 999})"); }).find("999"),
            std::string::npos);
}

// Chat templates are tested in tests/jinja_test.cpp.

// --- sampler ---------------------------------------------------------------------------------------------

TEST(RuntimeSampler, GreedyTakesTheFirstMaximum) {
  Sampler s({});
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(s.sample(logits), 1);
}

TEST(RuntimeSampler, TopKOneAndTinyTopPAreGreedy) {
  std::mt19937 rng(static_cast<uint32_t>(runtime_test::run_seed()));
  std::normal_distribution<float> normal;
  std::vector<float> logits(1000);
  for (float& x : logits) x = normal(rng);
  const int32_t best = Sampler({}).sample(logits);
  Sampler k1({1.0, 1, 1.0, 3});
  Sampler p0({1.0, 0, 1e-9, 4});
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(k1.sample(logits), best);
    EXPECT_EQ(p0.sample(logits), best);
  }
}

TEST(RuntimeSampler, SeededAndFollowsTheDistribution) {
  const uint64_t seed = runtime_test::run_seed();
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  Sampler a({1.0, 0, 1.0, seed}), b({1.0, 0, 1.0, seed});
  std::map<int32_t, int> counts;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) {
    const int32_t x = a.sample(logits);
    EXPECT_EQ(x, b.sample(logits));
    ++counts[x];
  }
  // Binomial standard deviation at p = 0.5, n = 20000 is 0.0035; 0.02 is over 5 of them.
  EXPECT_NEAR(counts[0] / double(kDraws), 0.5, 0.02);
  EXPECT_NEAR(counts[1] / double(kDraws), 0.3, 0.02);
  EXPECT_NEAR(counts[2] / double(kDraws), 0.2, 0.02);
  // top-p 0.75 keeps {0.5, 0.3} (the mass reaches 0.8 there): token 2 never comes.
  Sampler p({1.0, 0, 0.75, seed});
  for (int i = 0; i < 2000; ++i) EXPECT_NE(p.sample(logits), 2);
  // top-k 2 does the same.
  Sampler k({1.0, 2, 1.0, seed});
  for (int i = 0; i < 2000; ++i) EXPECT_NE(k.sample(logits), 2);
}

TEST(RuntimeSampler, BadParametersAndNaN) {
  EXPECT_NE(error_of([] { Sampler({-1.0, 0, 1.0, 0}); }).find("--temperature"), std::string::npos);
  EXPECT_NE(error_of([] { Sampler({1.0, -2, 1.0, 0}); }).find("--top-k"), std::string::npos);
  EXPECT_NE(error_of([] { Sampler({1.0, 0, 0.0, 0}); }).find("--top-p"), std::string::npos);
  Sampler s({});
  const std::vector<float> bad = {1.0f, NAN};
  EXPECT_NE(error_of([&] { s.sample(bad); }).find("NaN"), std::string::npos);
}

}  // namespace
}  // namespace ark
