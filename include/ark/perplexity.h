// Perplexity of a model over a token sequence, in fixed windows as llama.cpp's perplexity tool computes it.
//
// The sequence is cut into windows of `ctx` tokens starting at 0, stride, 2*stride, ... (every window lies
// wholly inside the sequence; a tail shorter than ctx is not scored). Each window is run from an empty KV
// cache, so no window sees tokens before its start. Within a window of tokens t[s .. s+ctx), the predictions
// of tokens t[s+first+1 .. s+ctx) are scored, where first = ctx / 2: each scored token has at least ctx/2
// tokens of context, and a window scores ctx - ctx/2 - 1 tokens (127 of 256). This is llama.cpp's choice
// (it scores the second half so that early, context-starved positions do not dominate the figure).
//
//   PPL = exp( sum over scored tokens of -log p(token | its window's preceding tokens) / scored tokens )
//
// log p comes from the full softmax over the vocabulary, computed in double from the model's fp32 logits.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "ark/model.h"

namespace ark {

struct PerplexityOptions {
  int64_t ctx = 256;        // tokens per window; >= 4 and <= the model's max_model_len
  int64_t stride = 0;       // distance between window starts; 0: ctx (windows do not overlap)
  int64_t max_windows = 0;  // score at most this many windows (the first ones); 0: all
  // Called after each window with (windows done, windows in all, running negative log-likelihood sum,
  // tokens scored so far).
  std::function<void(int64_t done, int64_t total, double nll_sum, int64_t scored)> progress;
};

struct PerplexityWindow {
  int64_t start = 0;   // first token of the window in the sequence
  double nll_sum = 0;  // sum of -log p over its scored tokens (natural log)
  int64_t scored = 0;  // tokens it scored
};

struct PerplexityResult {
  std::vector<PerplexityWindow> windows;
  double nll_sum = 0;
  int64_t scored = 0;            // tokens scored in all
  int64_t tokens_evaluated = 0;  // tokens run through the model (windows x ctx)
  double seconds = 0;            // wall time of the forward passes and scoring
  double mean_nll() const { return scored ? nll_sum / static_cast<double>(scored) : 0.0; }
  double perplexity() const;
  double tokens_per_second() const { return seconds > 0 ? tokens_evaluated / seconds : 0.0; }
};

// Where the windows of a sequence of n tokens start (empty when n < ctx). Throws ark::Error for ctx < 4,
// stride < 0 or max_windows < 0.
std::vector<int64_t> perplexity_window_starts(int64_t n, const PerplexityOptions& options);

// -log softmax(logits)[target] in double precision (the max is subtracted before exponentiating).
double token_nll(std::span<const float> logits, int32_t target);

// Scores `tokens` with `model` (see the header comment). Throws ark::Error when the sequence is shorter than
// one window, when ctx exceeds the model's max_model_len, or for a token id outside the vocabulary.
PerplexityResult compute_perplexity(const Model& model, std::span<const int32_t> tokens,
                                    const PerplexityOptions& options);

}  // namespace ark
