// Picks the next token from a row of logits: greedy (temperature 0) or sampling with temperature, top-k and
// top-p, in that order (as transformers' logits warpers apply them). Seeded: the same seed, logits and
// parameters give the same tokens on every run and machine (the random stream is SplitMix64, not a
// library distribution whose algorithm may differ between standard libraries).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace ark {

struct SamplingParams {
  double temperature = 0.0;  // 0: greedy
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // 1: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  // Throws ark::Error for a negative temperature or top_k, or top_p outside (0, 1].
  explicit Sampler(const SamplingParams& params);

  // The next token id; logits holds one score per vocabulary id (NaN is an ark::Error).
  int32_t sample(std::span<const float> logits);

  const SamplingParams& params() const { return params_; }

 private:
  double uniform();  // in [0, 1)
  SamplingParams params_;
  uint64_t state_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace ark
