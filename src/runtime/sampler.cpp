// Token sampling (ark/sampler.h).
#include "ark/sampler.h"

#include <algorithm>
#include <cmath>

#include "ark/error.h"

namespace ark {

Sampler::Sampler(const SamplingParams& p) : params_(p), state_(p.seed) {
  ARK_CHECK(std::isfinite(p.temperature) && p.temperature >= 0, "--temperature ", p.temperature,
            " must be >= 0 (0: greedy)");
  ARK_CHECK(p.top_k >= 0, "--top-k ", p.top_k, " must be >= 0 (0: off)");
  ARK_CHECK(p.top_p > 0 && p.top_p <= 1, "--top-p ", p.top_p, " must be in (0, 1]");
}

double Sampler::uniform() {
  // SplitMix64: tiny, fast, and fully specified, so seeds replay anywhere.
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(std::span<const float> logits) {
  ARK_CHECK(!logits.empty(), "Sampler::sample: no logits");
  const int64_t n = static_cast<int64_t>(logits.size());
  int64_t best = 0;
  for (int64_t i = 0; i < n; ++i) {
    ARK_CHECK(!std::isnan(logits[i]), "Sampler::sample: logit of token ", i, " is NaN");
    if (logits[i] > logits[best]) best = i;  // first maximum, as torch.argmax
  }
  if (params_.temperature == 0) return static_cast<int32_t>(best);

  candidates_.resize(n);
  for (int64_t i = 0; i < n; ++i)
    candidates_[i] = {static_cast<float>(logits[i] / params_.temperature), static_cast<int32_t>(i)};
  auto by_score = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  int64_t keep = n;
  if (params_.top_k > 0 && params_.top_k < n) {
    keep = params_.top_k;
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), by_score);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_score);
  }
  candidates_.resize(keep);
  // Softmax over what is left (max subtracted first: the largest is candidates_[0]).
  const float mx = candidates_[0].first;
  double total = 0;
  std::vector<double> probs(keep);
  for (int64_t i = 0; i < keep; ++i)
    total += probs[i] = std::exp(static_cast<double>(candidates_[i].first - mx));
  // top-p: the smallest prefix (by decreasing probability) whose mass reaches top_p; always at least one.
  if (params_.top_p < 1) {
    double cum = 0;
    int64_t cut = keep;
    for (int64_t i = 0; i < keep; ++i) {
      cum += probs[i] / total;
      if (cum >= params_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    total = 0;
    for (int64_t i = 0; i < keep; ++i) total += probs[i];
  }
  const double u = uniform() * total;
  double acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += probs[i];
    if (u < acc) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;
}

}  // namespace ark
