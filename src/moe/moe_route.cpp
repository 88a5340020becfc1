// Routing: router logits -> each token's top_k experts and their weights, as transformers computes them
// (Qwen2-MoE / Qwen3-MoE: softmax over all experts in fp32, top-k, optional renormalization; Mixtral: top-k
// of the logits, softmax over those k).
#include <cmath>
#include <vector>

#include "ark/error.h"
#include "ark/moe.h"
#include "kernels/cpu_features.h"
#include "moe/moe_route_impl.h"

namespace ark {

namespace {

// Inserts (value, id) into best[0..count) kept in decreasing value order; equal values keep the lower id
// first, which holds because ids arrive in increasing order and a new entry goes after its equals.
inline void insert_top(float value, int32_t id, float* best, int32_t* best_id, int k, int* count) {
  int pos = *count < k ? *count : k;
  if (pos == k && !(value > best[k - 1])) return;
  if (*count < k) ++*count;
  while (pos > 0 && value > best[pos - 1]) {
    if (pos < k) {
      best[pos] = best[pos - 1];
      best_id[pos] = best_id[pos - 1];
    }
    --pos;
  }
  best[pos] = value;
  best_id[pos] = id;
}

}  // namespace

void check_moe_spec(const QuantMoESpec& s) {
  ARK_CHECK(s.hidden_size > 0, "QuantMoE: hidden_size ", s.hidden_size, " must be positive");
  ARK_CHECK(s.intermediate_size > 0, "QuantMoE: intermediate_size ", s.intermediate_size,
            " must be positive");
  ARK_CHECK(s.num_experts > 0, "QuantMoE: num_experts ", s.num_experts, " must be positive");
  ARK_CHECK(s.top_k >= 1 && s.top_k <= s.num_experts, "QuantMoE: top_k ", s.top_k,
            " must be in [1, num_experts=", s.num_experts, "]");
  ARK_CHECK(s.routing == MoeRouting::kSoftmaxThenTopK || s.routing == MoeRouting::kTopKThenSoftmax,
            "QuantMoE: unknown routing ", static_cast<int>(s.routing));
  ARK_CHECK(s.shared_intermediate_size >= 0, "QuantMoE: shared_intermediate_size ",
            s.shared_intermediate_size, " must be >= 0 (0: no shared expert)");
  if (!s.max_isa.empty()) (void)parse_isa_level(s.max_isa);  // throws naming the accepted names
  ARK_CHECK(s.kernel_switch_threshold >= 0, "QuantMoE: kernel_switch_threshold ", s.kernel_switch_threshold,
            " must be >= 0 (0: QuantLinear's default)");
  ARK_CHECK(s.num_threads >= 0, "QuantMoE: num_threads ", s.num_threads, " must be >= 0 (0: all)");
}

void check_router_logits(const QuantMoESpec& spec, const float* logits, int64_t T) {
  const int E = spec.num_experts;
  for (int64_t t = 0; t < T; ++t)
    for (int e = 0; e < E; ++e)
      ARK_CHECK(std::isfinite(logits[t * E + e]), "QuantMoE: router_logits[", t, "][", e,
                "] = ", logits[t * E + e], " is not finite");
}

void route_tokens(const QuantMoESpec& spec, const float* logits, int64_t t0, int64_t t1, int32_t* ids,
                  float* weights, float* scratch) {
  const int E = spec.num_experts, k = spec.top_k;
  for (int64_t t = t0; t < t1; ++t) {
    const float* r = logits + t * E;
    float* w = weights + t * k;
    int32_t* id = ids + t * k;
    int count = 0;
    if (spec.routing == MoeRouting::kSoftmaxThenTopK) {
      float mx = r[0];
      for (int e = 1; e < E; ++e) mx = r[e] > mx ? r[e] : mx;
      float sum = 0.0f;
      for (int e = 0; e < E; ++e) {
        scratch[e] = std::exp(r[e] - mx);
        sum += scratch[e];
      }
      const float inv = 1.0f / sum;
      for (int e = 0; e < E; ++e) insert_top(scratch[e] * inv, e, w, id, k, &count);
      if (spec.norm_topk_prob) {
        float s = 0.0f;
        for (int j = 0; j < k; ++j) s += w[j];
        for (int j = 0; j < k; ++j) w[j] /= s;
      }
    } else {
      for (int e = 0; e < E; ++e) insert_top(r[e], e, w, id, k, &count);
      // Softmax over the k picked logits; w[0] is their maximum.
      const float mx = w[0];
      float sum = 0.0f;
      for (int j = 0; j < k; ++j) {
        w[j] = std::exp(w[j] - mx);
        sum += w[j];
      }
      for (int j = 0; j < k; ++j) w[j] /= sum;
    }
  }
}

void moe_route(const QuantMoESpec& spec, const float* router_logits, int64_t T, int32_t* ids,
               float* weights) {
  check_moe_spec(spec);
  ARK_CHECK(T >= 0, "moe_route: T = ", T, " must be >= 0");
  if (T == 0) return;
  ARK_CHECK(router_logits != nullptr, "moe_route: router_logits is null");
  ARK_CHECK(ids != nullptr && weights != nullptr, "moe_route: ids or weights is null");
  check_router_logits(spec, router_logits, T);
  std::vector<float> scratch(static_cast<size_t>(spec.num_experts));
  route_tokens(spec, router_logits, 0, T, ids, weights, scratch.data());
}

}  // namespace ark
