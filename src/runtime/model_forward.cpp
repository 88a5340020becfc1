// Model::forward: the decoder stack over n new tokens, appending their keys and values to the cache.
// Arithmetic follows transformers' fp32 path: RMSNorm in fp32, RoPE angles as fp32 products position x
// inv_freq, softmax in fp32 after subtracting the row maximum.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ark/error.h"
#include "ark/thread_pool.h"
#include "runtime/attention.h"
#include "runtime/model_impl.h"
#include "runtime/vec_ops.h"

namespace ark {

namespace {

// x[rows][n] -> out[rows][n] = w * x / sqrt(mean(x^2) + eps)
void rms_norm(const float* x, int64_t rows, int64_t n, const std::vector<float>& w, double eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* o = out + r * n;
    const float mean_sq = runtime::dot_f32(xr, xr, n) / static_cast<float>(n);
    const float inv = 1.0f / std::sqrt(mean_sq + static_cast<float>(eps));
    for (int64_t i = 0; i < n; ++i) o[i] = w[i] * (xr[i] * inv);
  }
}

// Rotate-half RoPE on one head vector: pairs (i, i + D/2) rotate by angle pos * inv_freq[i].
void rope(float* v, int64_t head_dim, const float* cos_t, const float* sin_t) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float x1 = v[i], x2 = v[i + half];
    v[i] = x1 * cos_t[i] - x2 * sin_t[i];
    v[i + half] = x2 * cos_t[i] + x1 * sin_t[i];
  }
}

}  // namespace

void Model::forward(std::span<const int32_t> tokens, KvCache& cache, float* logits, bool all_logits) const {
  const Impl& m = *impl_;
  const ModelConfig& c = m.plan.config;
  const int64_t n = static_cast<int64_t>(tokens.size());
  ARK_CHECK(logits != nullptr, "Model::forward: logits is null");
  if (n == 0) return;
  for (int64_t t = 0; t < n; ++t)
    ARK_CHECK(tokens[t] >= 0 && tokens[t] < c.vocab_size, "token id ", tokens[t], " at position ", t,
              " is outside the vocabulary [0, ", c.vocab_size, ")");
  ARK_CHECK(cache.max_len() <= m.max_model_len && cache.block_size() >= 1,
            "Model::forward: the cache was not made for this model (use Model::new_cache)");
  cache.reserve(n);  // throws past max_model_len, before any work

  const int64_t H = c.hidden_size, D = c.head_dim, I = c.intermediate_size;
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads;
  const int64_t p0 = cache.size();
  const int64_t half = D / 2;

  std::vector<float> x(n * H), h(n * H), q(n * nh * D), k(n * nkv * D), v(n * nkv * D), attn(n * nh * D);
  // up holds [gate | up] rows (2 * I) when the layer fuses them; qkv the fused q / k / v rows.
  std::vector<float> gate(n * I), up(n * 2 * I), qkv(n * (nh + 2 * nkv) * D);
  // Sparse layers: router logits [n][E] and the experts' output.
  std::vector<float> router_logits, moe_out;
  if (c.is_moe()) {
    router_logits.resize(n * c.moe.num_experts);
    moe_out.resize(n * H);
  }
  for (int64_t t = 0; t < n; ++t) m.embed.row_to_f32(tokens[t], x.data() + t * H);

  // cos / sin per new position, as transformers computes them: fp32 angle, then cos / sin.
  std::vector<float> cos_t(n * half), sin_t(n * half);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(p0 + t) * m.inv_freq[i];
      cos_t[t * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin_t[t * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }

  const runtime::AttentionShape attention{nh, nkv, D, 1.0f / std::sqrt(static_cast<float>(D))};
  ThreadPool& pool = default_thread_pool();

  for (int64_t l = 0; l < c.num_layers; ++l) {
    const DecoderLayer& d = m.layers[l];
    rms_norm(x.data(), n, H, d.input_norm, c.rms_norm_eps, h.data());
    if (d.fused_qkv()) {
      // One call; rows come back as [q | k | v] and are split into the per-projection buffers.
      d.qkv.forward(h.data(), n, qkv.data());
      const int64_t nq = nh * D, nk = nkv * D, row = nq + 2 * nk;
      for (int64_t t = 0; t < n; ++t) {
        const float* src = qkv.data() + t * row;
        std::copy(src, src + nq, q.data() + t * nq);
        std::copy(src + nq, src + nq + nk, k.data() + t * nk);
        std::copy(src + nq + nk, src + row, v.data() + t * nk);
      }
    } else {
      d.q.forward(h.data(), n, q.data());
      d.k.forward(h.data(), n, k.data());
      d.v.forward(h.data(), n, v.data());
    }
    for (int64_t t = 0; t < n; ++t) {
      const float* ct = cos_t.data() + t * half;
      const float* st = sin_t.data() + t * half;
      for (int64_t hd = 0; hd < nh; ++hd) {
        float* qh = q.data() + (t * nh + hd) * D;
        if (c.qk_norm) rms_norm(qh, 1, D, d.q_norm, c.rms_norm_eps, qh);
        rope(qh, D, ct, st);
      }
      for (int64_t hd = 0; hd < nkv; ++hd) {
        float* kh = k.data() + (t * nkv + hd) * D;
        if (c.qk_norm) rms_norm(kh, 1, D, d.k_norm, c.rms_norm_eps, kh);
        rope(kh, D, ct, st);
        std::copy(kh, kh + D, cache.key(l, hd, p0 + t));
        const float* vh = v.data() + (t * nkv + hd) * D;
        std::copy(vh, vh + D, cache.value(l, hd, p0 + t));
      }
    }
    runtime::causal_attention(q.data(), cache, l, p0, n, attention, attn.data(), pool);
    d.o.forward(attn.data(), n, h.data());
    for (int64_t i = 0; i < n * H; ++i) x[i] += h[i];

    rms_norm(x.data(), n, H, d.post_norm, c.rms_norm_eps, h.data());
    if (d.moe) {
      d.router.forward(h.data(), n, router_logits.data());
      d.moe->forward(h.data(), router_logits.data(), moe_out.data(), n);
      for (int64_t i = 0; i < n * H; ++i) x[i] += moe_out[i];
      continue;
    }
    if (d.fused_gate_up()) {
      d.gate_up.forward(h.data(), n, up.data());  // rows [gate | up], 2 * I wide
      for (int64_t t = 0; t < n; ++t) {
        const float* g = up.data() + t * 2 * I;
        runtime::silu_mul_f32(g, g + I, gate.data() + t * I, I);
      }
    } else {
      d.gate.forward(h.data(), n, gate.data());
      d.up.forward(h.data(), n, up.data());
      runtime::silu_mul_f32(gate.data(), up.data(), gate.data(), n * I);
    }
    d.down.forward(gate.data(), n, h.data());
    for (int64_t i = 0; i < n * H; ++i) x[i] += h[i];
  }
  cache.commit(n);

  const int64_t first = all_logits ? 0 : n - 1, rows = n - first;
  rms_norm(x.data() + first * H, rows, H, m.final_norm, c.rms_norm_eps, h.data());
  m.lm_head.forward(h.data(), rows, logits);
}

}  // namespace ark
