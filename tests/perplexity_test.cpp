// Windowed perplexity (ark/perplexity.h): window placement and the per-token score by hand, and
// compute_perplexity against the same windows run one by one through fresh caches on a random-weight model
// (the float64 oracle comparison lives in tests/python/test_cli_quality.py). Random weights and token ids
// come from the run's seed (printed; ARK_TEST_SEED replays it).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "ark/model.h"
#include "ark/model_maker.h"
#include "ark/perplexity.h"
#include "runtime_test_util.h"

namespace ark {
namespace {

using runtime_test::TempDir;

std::vector<int64_t> starts(int64_t n, int64_t ctx, int64_t stride = 0, int64_t max_windows = 0) {
  PerplexityOptions o;
  o.ctx = ctx;
  o.stride = stride;
  o.max_windows = max_windows;
  return perplexity_window_starts(n, o);
}

TEST(Perplexity, WindowStarts) {
  EXPECT_EQ(starts(100, 32), (std::vector<int64_t>{0, 32, 64}));    // tail of 4 dropped
  EXPECT_EQ(starts(96, 32), (std::vector<int64_t>{0, 32, 64}));     // exact fit
  EXPECT_EQ(starts(31, 32), (std::vector<int64_t>{}));              // shorter than one window
  EXPECT_EQ(starts(50, 32, 8), (std::vector<int64_t>{0, 8, 16}));   // overlapping: 16 + 32 <= 50
  EXPECT_EQ(starts(100, 32, 0, 2), (std::vector<int64_t>{0, 32}));  // capped
  EXPECT_EQ(starts(100, 32, 50), (std::vector<int64_t>{0, 50}));    // gaps between windows
  EXPECT_ERROR_HAS(starts(100, 3), "at least 4");
  EXPECT_ERROR_HAS(starts(100, 8, -1), "stride");
  EXPECT_ERROR_HAS(starts(100, 8, 0, -1), "max_windows");
}

TEST(Perplexity, TokenNllByHand) {
  const std::vector<float> uniform(4, 0.25f);
  EXPECT_NEAR(token_nll(uniform, 2), std::log(4.0), 1e-12);
  // -log softmax([1, 2, 3])[0] = log(e + e^2 + e^3) - 1
  const std::vector<float> l = {1.f, 2.f, 3.f};
  EXPECT_NEAR(token_nll(l, 0), std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 1.0, 1e-12);
  // Large logits must not overflow: the max is subtracted first.
  const std::vector<float> big = {1000.f, 0.f};
  EXPECT_NEAR(token_nll(big, 1), 1000.0, 1e-9);
  EXPECT_NEAR(token_nll(big, 0), std::log1p(std::exp(-1000.0)), 1e-12);
  EXPECT_ERROR_HAS(token_nll(l, 3), "outside the vocabulary");
  EXPECT_ERROR_HAS(token_nll(l, -1), "outside the vocabulary");
}

class PerplexityModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("perplexity");
    MakeModelOptions o;  // tiny Qwen2, int4 g32, random weights
    o.vocab_size = 96;
    o.max_position_embeddings = 64;
    o.seed = runtime_test::run_seed();
    make_model(dir_->path(), o);
    LoadOptions lo;
    lo.mode = ComputeMode::kExact;
    model_ = new Model(Model::load(dir_->path(), lo));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  static std::vector<int32_t> random_tokens(int64_t n, uint64_t salt) {
    std::mt19937_64 rng(runtime_test::run_seed() ^ salt);
    std::uniform_int_distribution<int32_t> d(0, 95);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = d(rng);
    return t;
  }
  // The score of one window, computed the long way: its own cache, all logits, positions ctx/2 .. ctx-2.
  static double window_by_hand(const std::vector<int32_t>& t, int64_t s, int64_t ctx, int64_t* scored) {
    KvCache cache = model_->new_cache();
    const int64_t V = model_->config().vocab_size;
    std::vector<float> logits(static_cast<size_t>(ctx * V), std::numeric_limits<float>::quiet_NaN());
    model_->forward(std::span<const int32_t>(t.data() + s, static_cast<size_t>(ctx)), cache, logits.data(),
                    true);
    double sum = 0;
    *scored = 0;
    for (int64_t j = ctx / 2; j < ctx - 1; ++j) {
      std::vector<double> row(logits.begin() + j * V, logits.begin() + (j + 1) * V);
      double mx = row[0];
      for (double v : row) mx = std::max(mx, v);
      double z = 0;
      for (double v : row) z += std::exp(v - mx);
      sum += mx + std::log(z) - row[static_cast<size_t>(t[static_cast<size_t>(s + j + 1)])];
      ++*scored;
    }
    return sum;
  }
  static inline TempDir* dir_ = nullptr;
  static inline Model* model_ = nullptr;
};

TEST_F(PerplexityModel, MatchesWindowsComputedOneByOne) {
  for (const auto& [n, ctx, stride] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {100, 32, 0}, {75, 17, 9}, {64, 64, 0}, {40, 5, 3}}) {
    SCOPED_TRACE("n " + std::to_string(n) + " ctx " + std::to_string(ctx) + " stride " +
                 std::to_string(stride));
    const std::vector<int32_t> t = random_tokens(n, static_cast<uint64_t>(n * 131 + ctx));
    PerplexityOptions o;
    o.ctx = ctx;
    o.stride = stride;
    int64_t calls = 0;
    o.progress = [&](int64_t done, int64_t total, double, int64_t) {
      ++calls;
      EXPECT_EQ(done, calls);
      EXPECT_EQ(total, static_cast<int64_t>(starts(n, ctx, stride).size()));
    };
    const PerplexityResult r = compute_perplexity(*model_, t, o);
    const std::vector<int64_t> expect_starts = starts(n, ctx, stride);
    ASSERT_EQ(r.windows.size(), expect_starts.size());
    EXPECT_EQ(calls, static_cast<int64_t>(expect_starts.size()));
    double total = 0;
    int64_t scored = 0;
    for (size_t w = 0; w < r.windows.size(); ++w) {
      int64_t k = 0;
      const double want = window_by_hand(t, expect_starts[w], ctx, &k);
      EXPECT_EQ(r.windows[w].start, expect_starts[w]);
      EXPECT_EQ(r.windows[w].scored, ctx - ctx / 2 - 1);
      EXPECT_EQ(r.windows[w].scored, k);
      // Same model, same kernels: only the order of the double sums may differ.
      EXPECT_NEAR(r.windows[w].nll_sum, want, 1e-9 * std::abs(want));
      total += want;
      scored += k;
    }
    EXPECT_EQ(r.scored, scored);
    EXPECT_EQ(r.tokens_evaluated, static_cast<int64_t>(expect_starts.size()) * ctx);
    EXPECT_NEAR(r.perplexity(), std::exp(total / scored), 1e-9 * r.perplexity());
    EXPECT_TRUE(std::isfinite(r.perplexity()));
    EXPECT_GT(r.perplexity(), 1.0);
  }
}

TEST_F(PerplexityModel, RefusesBadInput) {
  const std::vector<int32_t> t = random_tokens(100, 7);
  PerplexityOptions o;
  o.ctx = 128;  // the text is shorter than one window
  EXPECT_ERROR_HAS(compute_perplexity(*model_, t, o), "fewer than one window");
  const std::vector<int32_t> longer = random_tokens(300, 8);
  EXPECT_ERROR_HAS(compute_perplexity(*model_, longer, o), "max_model_len");  // 128 > 64 positions
  o.ctx = 16;
  std::vector<int32_t> bad = t;
  bad[50] = 96;
  EXPECT_ERROR_HAS(compute_perplexity(*model_, bad, o), "outside the model's vocabulary");
  bad[50] = -1;
  EXPECT_ERROR_HAS(compute_perplexity(*model_, bad, o), "outside the model's vocabulary");
  o.ctx = 2;
  EXPECT_ERROR_HAS(compute_perplexity(*model_, t, o), "at least 4");
}

}  // namespace
}  // namespace ark
