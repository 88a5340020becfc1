// The generation loop (ark/generator.h).
#include "ark/generator.h"

#include <algorithm>
#include <chrono>

#include "ark/error.h"

namespace ark {

void check_generate(const KvCache& cache, int64_t prompt_tokens, const GenerateOptions& o) {
  ARK_CHECK(prompt_tokens > 0, "generate: the prompt is empty (no tokens)");
  ARK_CHECK(o.max_tokens >= 1, "--max-tokens ", o.max_tokens, " must be at least 1");
  const Sampler sampler(o.sampling);  // throws for parameters it refuses
  const int64_t need = cache.size() + prompt_tokens + o.max_tokens - 1;
  ARK_CHECK(need <= cache.max_len(), "the prompt (", prompt_tokens, " tokens", cache.size() ? " after " : "",
            cache.size() ? std::to_string(cache.size()) + " in the conversation" : std::string(),
            ") plus --max-tokens ", o.max_tokens, " needs ", need, " positions, more than --max-model-len ",
            cache.max_len());
}

GenerateResult generate(const Model& model, KvCache& cache, std::span<const int32_t> prompt,
                        const GenerateOptions& o, const std::function<bool(int32_t)>& on_token) {
  check_generate(cache, static_cast<int64_t>(prompt.size()), o);
  Sampler sampler(o.sampling);
  const int64_t vocab = model.config().vocab_size;
  std::vector<float> logits(vocab);
  GenerateResult r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  using clock = std::chrono::steady_clock;

  auto t0 = clock::now();
  model.forward(prompt, cache, logits.data());
  r.prompt_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  t0 = clock::now();
  for (int64_t i = 0; i < o.max_tokens; ++i) {
    if (i > 0) {
      const int32_t last = r.tokens.back();
      model.forward(std::span<const int32_t>(&last, 1), cache, logits.data());
    }
    const int32_t next = sampler.sample(logits);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), next) != o.stop_ids.end()) {
      r.stopped = true;
      break;
    }
    r.tokens.push_back(next);
    if (on_token && !on_token(next)) break;
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return r;
}

}  // namespace ark
