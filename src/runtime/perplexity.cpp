// Windowed perplexity (ark/perplexity.h).
#include "ark/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "ark/error.h"

namespace ark {

double PerplexityResult::perplexity() const {
  return std::exp(mean_nll());
}

std::vector<int64_t> perplexity_window_starts(int64_t n, const PerplexityOptions& o) {
  ARK_CHECK(o.ctx >= 4, "perplexity: ctx ", o.ctx, " must be at least 4 (a window scores its second half)");
  ARK_CHECK(o.stride >= 0, "perplexity: stride ", o.stride, " must be >= 0 (0: ctx)");
  ARK_CHECK(o.max_windows >= 0, "perplexity: max_windows ", o.max_windows, " must be >= 0 (0: all)");
  const int64_t stride = o.stride ? o.stride : o.ctx;
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + o.ctx <= n; s += stride) {
    if (o.max_windows && static_cast<int64_t>(starts.size()) == o.max_windows) break;
    starts.push_back(s);
  }
  return starts;
}

double token_nll(std::span<const float> logits, int32_t target) {
  ARK_CHECK(target >= 0 && static_cast<size_t>(target) < logits.size(), "perplexity: token id ", target,
            " is outside the vocabulary of ", logits.size());
  double mx = -INFINITY;
  for (float v : logits) mx = std::max(mx, static_cast<double>(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  return mx + std::log(sum) - static_cast<double>(logits[target]);
}

PerplexityResult compute_perplexity(const Model& model, std::span<const int32_t> tokens,
                                    const PerplexityOptions& o) {
  const std::vector<int64_t> starts = perplexity_window_starts(static_cast<int64_t>(tokens.size()), o);
  ARK_CHECK(!starts.empty(), "perplexity: the text has ", tokens.size(), " tokens, fewer than one window of ",
            o.ctx, " (lower --ctx or give more text)");
  ARK_CHECK(o.ctx <= model.max_model_len(), "perplexity: ctx ", o.ctx, " exceeds the model's max_model_len ",
            model.max_model_len());
  const int64_t vocab = model.config().vocab_size;
  for (int32_t t : tokens)
    ARK_CHECK(t >= 0 && t < vocab, "perplexity: token id ", t, " is outside the model's vocabulary of ",
              vocab);

  const int64_t first = o.ctx / 2;
  PerplexityResult r;
  std::vector<float> logits(static_cast<size_t>(o.ctx * vocab));
  KvCache cache = model.new_cache();
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t w = 0; w < starts.size(); ++w) {
    const int64_t s = starts[w];
    cache.clear();
    model.forward(tokens.subspan(static_cast<size_t>(s), static_cast<size_t>(o.ctx)), cache, logits.data(),
                  /*all_logits=*/true);
    PerplexityWindow win{s, 0.0, 0};
    // Logits at position j predict token j + 1 of the window.
    for (int64_t j = first; j + 1 < o.ctx; ++j) {
      const std::span<const float> row(logits.data() + j * vocab, static_cast<size_t>(vocab));
      win.nll_sum += token_nll(row, tokens[static_cast<size_t>(s + j + 1)]);
      ++win.scored;
    }
    r.nll_sum += win.nll_sum;
    r.scored += win.scored;
    r.tokens_evaluated += o.ctx;
    r.windows.push_back(win);
    if (o.progress)
      o.progress(static_cast<int64_t>(w + 1), static_cast<int64_t>(starts.size()), r.nll_sum, r.scored);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace ark
