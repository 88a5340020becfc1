// The generation loop: the prompt in one forward (the GEMM path), then one token per forward (the decode
// path), sampling each next token and stopping at an EOS id or after max_tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "ark/model.h"
#include "ark/sampler.h"

namespace ark {

struct GenerateOptions {
  int64_t max_tokens = 256;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // usually the model's EOS ids
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids, the stop id excluded
  bool stopped = false;         // ended at a stop id (not at max_tokens)
  int64_t prompt_tokens = 0;
  double prompt_seconds = 0;  // the prompt's forward, up to its logits
  double decode_seconds = 0;  // every later forward and sampling
  double prompt_tokens_per_second() const { return prompt_seconds > 0 ? prompt_tokens / prompt_seconds : 0; }
  // Tokens produced by decode forwards (the first token comes from the prompt's forward).
  double decode_tokens_per_second() const {
    const double n = tokens.size() + (stopped ? 1.0 : 0.0) - 1.0;
    return decode_seconds > 0 && n > 0 ? n / decode_seconds : 0;
  }
};

// The checks generate() makes before any work, for a caller that wants them before it prints anything:
// throws ark::Error for an empty prompt, max_tokens < 1, sampling parameters the sampler refuses, or a
// prompt of prompt_tokens that with max_tokens would pass the cache's max_len.
void check_generate(const KvCache& cache, int64_t prompt_tokens, const GenerateOptions& options);

// Appends `prompt` to `cache` (which may already hold a conversation) and generates. on_token is called
// with each generated id as soon as it is chosen (the stop id is not passed); returning false stops early.
// Throws ark::Error before any work where check_generate would.
GenerateResult generate(const Model& model, KvCache& cache, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const std::function<bool(int32_t)>& on_token = {});

}  // namespace ark
