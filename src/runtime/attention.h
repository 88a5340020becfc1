// Grouped-query causal attention over the paged KV cache (Model::forward's attention step).
#pragma once

#include <cstdint>

#include "ark/model.h"
#include "ark/thread_pool.h"

namespace ark::runtime {

struct AttentionShape {
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  float scale = 1.0f;  // applied to q . k before the softmax
};

// For n new tokens at positions p0 .. p0 + n - 1 of `layer`, whose keys and values the cache already holds:
// out[t][h] = softmax_p(scale * q[t][h] . K[p]) . V[p] over p in [0, p0 + t], head h reading KV head
// h / (num_heads / num_kv_heads). q and out are [n][num_heads][head_dim]. Runs on `pool`.
void causal_attention(const float* q, const KvCache& cache, int64_t layer, int64_t p0, int64_t n,
                      const AttentionShape& shape, float* out, ThreadPool& pool);

}  // namespace ark::runtime
