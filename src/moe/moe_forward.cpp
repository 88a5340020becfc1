// The fused MoE forward. One call runs in five steps, each one parallel region of ark's pool over a list of
// small work items, so the experts run side by side instead of one after another:
//   1. routing (forward only) and grouping: tokens sorted by expert (a counting sort), so each expert's rows
//      are contiguous and each expert's weights stream once per call, whatever T;
//   2. activations for the gate/up layers, prepared per expert row (gathered into packed-K order and, in int8
//      mode, quantized per group) -- plus the shared expert's sigmoid gate per token;
//   3. gate/up kernels over (layer, row block, N-tile range) items of every routed expert at once;
//   4. silu(gate) * up per row, then the down layers' activations;
//   5. down kernels over (layer, row block, N-tile range) items, writing one output row per (token, slot);
//   6. per token, the routing-weighted sum of its slots' rows (fixed slot order, then the shared expert).
// Every output element is computed by one thread in a fixed order, so results do not depend on the thread
// count, and forward equals forward_routed given moe_route's routing. The kernels are QuantLinear's own
// (resolved at its post_init), called directly on sub-ranges through QuantLinear::Impl.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "ark/error.h"
#include "ark/moe.h"
#include "ark/thread_pool.h"
#include "kernels/dispatch.h"
#include "linear/activations.h"
#include "linear/quant_linear_impl.h"
#include "moe/moe_impl.h"
#include "moe/moe_route_impl.h"

namespace ark {

namespace {

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// One layer's run over one expert's rows: where its prepared activations and outputs live.
struct LayerRun {
  const QuantLinear::Impl* layer = nullptr;
  const LinearImpl* kernel = nullptr;
  LinearArgs a;
  float* xf = nullptr;  // gathered fp32 rows [m][kp], or null when the kernel reads the source as it is
  int slot = 0;         // expert index (E for the shared expert)
  size_t xf_bytes = 0, xq_bytes = 0, side_bytes = 0;
};

struct PrepItem {
  int run;  // index into the stage's runs; -1: shared-gate values of tokens [r0, r1)
  int64_t r0, r1;
};

struct KernelItem {
  int run;
  int64_t m0, m1, t0, t1;
};

// Scratch carved out of one allocation per call, 64-byte aligned pieces.
class Arena {
 public:
  size_t reserve(size_t bytes) {
    const size_t at = size_;
    size_ += (bytes + 63) / 64 * 64;
    return at;
  }
  void allocate() {
    if (size_ == 0) return;
    data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, size_)));
    if (!data_) throw std::bad_alloc();
  }
  template <typename T>
  T* at(size_t offset) {
    return reinterpret_cast<T*>(data_.get() + offset);
  }

 private:
  size_t size_ = 0;
  std::unique_ptr<uint8_t, AlignedFree> data_;
};

inline float silu(float v) {
  return v / (1.0f + std::exp(-v));
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Sizes a run of `rows` rows on `layer`; needs_xf: the source rows cannot be read by the kernel as they are.
LayerRun plan_run(const QuantLinear& layer, int slot, int64_t rows, bool needs_xf) {
  LayerRun r;
  r.layer = &QuantLinear::Impl::of(layer);
  const QuantLinear::Impl& L = *r.layer;
  const PackedWeight& w = L.packed;
  r.slot = slot;
  r.kernel = rows < L.spec.kernel_switch_threshold ? L.small_m : L.large_m;
  r.a.m = rows;
  r.a.y_dtype = DType::F32;
  r.a.bias = w.bias.empty() ? nullptr : w.bias.data();
  const int64_t kp = w.k_padded();
  if (needs_xf || !w.identity_k) r.xf_bytes = static_cast<size_t>(rows * kp) * 4;
  if (L.mode == ComputeMode::kInt8) {
    r.xq_bytes = static_cast<size_t>(rows * kp);
    r.side_bytes = static_cast<size_t>(rows * w.num_groups) * 8;
  }
  return r;
}

// Offsets of a run's scratch in the arena, resolved to pointers once the arena exists.
struct RunScratch {
  size_t xf, xq, side;
};

RunScratch reserve_run(Arena& arena, const LayerRun& r) {
  return {r.xf_bytes ? arena.reserve(r.xf_bytes) : 0, r.xq_bytes ? arena.reserve(r.xq_bytes) : 0,
          r.side_bytes ? arena.reserve(r.side_bytes) : 0};
}

void bind_run(Arena& arena, LayerRun& r, const RunScratch& s) {
  const PackedWeight& w = r.layer->packed;
  const int64_t kp = w.k_padded();
  if (r.xf_bytes) {
    r.xf = arena.at<float>(s.xf);
    r.a.x = r.xf;
    r.a.ldx = kp;
  }
  if (r.xq_bytes) {
    r.a.xq = arena.at<int8_t>(s.xq);
    r.a.ldxq = kp;
    float* side = arena.at<float>(s.side);
    r.a.x_scale = side;
    r.a.xq_sum = reinterpret_cast<int32_t*>(side + r.a.m * w.num_groups);
  }
}

// Quantizes rows [r0, r1) of a run whose fp32 activations (a.x, a.ldx) are ready (int8 mode only).
void quantize_run_rows(const LayerRun& r, int64_t r0, int64_t r1) {
  if (r.a.xq == nullptr) return;
  r.layer->quantize_rows(r.layer->packed, r.a.x, r.a.ldx, r0, r1, const_cast<int8_t*>(r.a.xq), r.a.ldxq,
                         const_cast<float*>(r.a.x_scale), const_cast<int32_t*>(r.a.xq_sum));
}

// Work items of a kernel stage: each run cut into row blocks (the kernel's m_block; decode kernels take all
// rows at once so each weight byte streams once) and N-tile ranges sized so that the whole stage splits into
// about 4 items per thread, in proportion to each item's cost (weight bytes streamed plus row work).
std::vector<KernelItem> kernel_items(const std::vector<LayerRun>& runs, int threads) {
  auto cost = [](const LayerRun& r, int64_t rows, int64_t tiles) {
    const PackedWeight& w = r.layer->packed;
    return static_cast<double>(tiles) * static_cast<double>(w.k_blocks) * static_cast<double>(w.bits + rows);
  };
  double total = 0;
  for (const LayerRun& r : runs) total += cost(r, r.a.m, r.layer->packed.n_tiles);
  const double target = total / (4.0 * threads);
  std::vector<KernelItem> items;
  for (int i = 0; i < static_cast<int>(runs.size()); ++i) {
    const LayerRun& r = runs[i];
    const int64_t M = r.a.m, tiles = r.layer->packed.n_tiles;
    const int64_t m_block = r.kernel->m_block > 0 ? r.kernel->m_block : M;
    for (int64_t m0 = 0; m0 < M; m0 += m_block) {
      const int64_t m1 = std::min(M, m0 + m_block);
      const int64_t parts =
          threads == 1 ? 1 : std::clamp<int64_t>(std::llround(cost(r, m1 - m0, tiles) / target), 1, tiles);
      for (int64_t p = 0; p < parts; ++p) {
        const int64_t base = tiles / parts, extra = tiles % parts;
        const int64_t t0 = p * base + std::min(p, extra), t1 = t0 + base + (p < extra ? 1 : 0);
        items.push_back({i, m0, m1, t0, t1});
      }
    }
  }
  return items;
}

void run_kernel_items(ThreadPool& pool, int threads, const std::vector<LayerRun>& runs,
                      const std::vector<KernelItem>& items) {
  pool.parallel_for(
      static_cast<int64_t>(items.size()),
      [&](int64_t i) {
        const KernelItem& it = items[i];
        const LayerRun& r = runs[it.run];
        r.kernel->run(r.layer->packed, r.a, it.m0, it.m1, it.t0, it.t1);
      },
      threads);
}

// Row chunks of about `elems` elements of work each.
int64_t rows_per_chunk(int64_t row_elems, int64_t elems) {
  return std::max<int64_t>(1, elems / std::max<int64_t>(1, row_elems));
}

}  // namespace

void QuantMoE::forward(const float* x, const float* router_logits, float* y, int64_t T) const {
  const Impl& im = *impl_;
  ARK_CHECK(im.ready, "QuantMoE::forward: call post_init() after loading every expert");
  ARK_CHECK(T >= 0, "QuantMoE::forward: T = ", T, " must be >= 0");
  if (T == 0) return;
  ARK_CHECK(router_logits != nullptr, "QuantMoE::forward: router_logits is null");
  check_router_logits(im.spec, router_logits, T);
  const int E = im.spec.num_experts, k = im.spec.top_k;
  std::vector<int32_t> ids(static_cast<size_t>(T * k));
  std::vector<float> weights(static_cast<size_t>(T * k));
  ThreadPool& pool = default_thread_pool();
  const int threads =
      im.spec.num_threads == 0 ? pool.num_threads() : std::min(im.spec.num_threads, pool.num_threads());
  const int64_t chunk = rows_per_chunk(E, 1 << 14);
  const int64_t parts = threads == 1 ? 1 : ceil_div(T, chunk);
  std::vector<float> scratch(static_cast<size_t>(parts * E));
  pool.parallel_for(
      parts,
      [&](int64_t p) {
        const int64_t t0 = parts == 1 ? 0 : p * chunk, t1 = parts == 1 ? T : std::min(T, t0 + chunk);
        route_tokens(im.spec, router_logits, t0, t1, ids.data(), weights.data(), scratch.data() + p * E);
      },
      threads);
  forward_routed(x, ids.data(), weights.data(), y, T);
}

void QuantMoE::forward_routed(const float* x, const int32_t* ids, const float* weights, float* y,
                              int64_t T) const {
  const Impl& im = *impl_;
  const QuantMoESpec& spec = im.spec;
  ARK_CHECK(im.ready, "QuantMoE::forward_routed: call post_init() after loading every expert");
  ARK_CHECK(T >= 0, "QuantMoE::forward_routed: T = ", T, " must be >= 0");
  if (T == 0) return;
  ARK_CHECK(x != nullptr && y != nullptr, "QuantMoE::forward_routed: x or y is null");
  ARK_CHECK(ids != nullptr && weights != nullptr, "QuantMoE::forward_routed: ids or weights is null");
  const int E = spec.num_experts, k = spec.top_k, S = im.num_slots();
  const int64_t H = spec.hidden_size;
  for (int64_t i = 0; i < T * k; ++i)
    ARK_CHECK(ids[i] >= 0 && ids[i] < E, "QuantMoE::forward_routed: ids[", i / k, "][", i % k, "] = ", ids[i],
              " is not an expert id in [0, ", E, ")");

  // Grouping: a counting sort of the (token, slot) pairs by expert; the shared expert takes every token.
  std::vector<int64_t> offset(static_cast<size_t>(S + 1), 0);
  for (int64_t i = 0; i < T * k; ++i) ++offset[ids[i] + 1];
  if (im.has_shared()) offset[E + 1] = T;
  for (int s = 0; s < S; ++s) offset[s + 1] += offset[s];
  const int64_t R = offset[S];
  std::vector<int64_t> row_token(static_cast<size_t>(R)), pos(static_cast<size_t>(T * k));
  {
    std::vector<int64_t> fill(offset.begin(), offset.end() - 1);
    for (int64_t t = 0; t < T; ++t)
      for (int j = 0; j < k; ++j) {
        const int64_t r = fill[ids[t * k + j]]++;
        row_token[r] = t;
        pos[t * k + j] = r;
      }
    if (im.has_shared())
      for (int64_t t = 0; t < T; ++t) row_token[offset[E] + t] = t;
  }

  // The runs of both kernel stages, and their scratch.
  std::vector<LayerRun> up_runs, down_runs;
  std::vector<int> active;  // slots with rows
  for (int s = 0; s < S; ++s) {
    const int64_t c = offset[s + 1] - offset[s];
    if (c == 0) continue;
    active.push_back(s);
    const MoeExpert& xp = im.experts[s];
    if (xp.fused()) {
      up_runs.push_back(plan_run(*xp.gate_up, s, c, true));
    } else {
      up_runs.push_back(plan_run(*xp.gate, s, c, true));
      up_runs.push_back(plan_run(*xp.up, s, c, true));
    }
    down_runs.push_back(plan_run(*xp.down, s, c, false));
  }
  Arena arena;
  std::vector<RunScratch> up_scratch, down_scratch;
  for (const LayerRun& r : up_runs) up_scratch.push_back(reserve_run(arena, r));
  for (const LayerRun& r : down_runs) down_scratch.push_back(reserve_run(arena, r));
  // Per active expert: gate/up outputs [c][2I] (gate in columns [0, I), up in [I, 2I)) and h [c][I].
  std::vector<size_t> gu_at(static_cast<size_t>(S)), h_at(static_cast<size_t>(S));
  for (int s : active) {
    const int64_t c = offset[s + 1] - offset[s], I = im.experts[s].intermediate;
    gu_at[s] = arena.reserve(static_cast<size_t>(c * 2 * I) * 4);
    h_at[s] = arena.reserve(static_cast<size_t>(c * I) * 4);
  }
  const size_t yo_at = arena.reserve(static_cast<size_t>(R * H) * 4);
  const size_t sg_at = arena.reserve(static_cast<size_t>(T) * 4);
  arena.allocate();
  float* yo = arena.at<float>(yo_at);
  float* sg = arena.at<float>(sg_at);
  for (size_t i = 0; i < up_runs.size(); ++i) {
    LayerRun& r = up_runs[i];
    bind_run(arena, r, up_scratch[i]);
    const int64_t I = im.experts[r.slot].intermediate;
    const bool second = i > 0 && up_runs[i - 1].slot == r.slot;  // the up layer of an unfused pair
    r.a.y = arena.at<float>(gu_at[r.slot]) + (second ? I : 0);
    r.a.ldy = 2 * I;
  }
  for (size_t i = 0; i < down_runs.size(); ++i) {
    LayerRun& r = down_runs[i];
    bind_run(arena, r, down_scratch[i]);
    if (r.xf == nullptr) {  // identity packed K: the kernel reads h as it is
      r.a.x = arena.at<float>(h_at[r.slot]);
      r.a.ldx = im.experts[r.slot].intermediate;
    }
    r.a.y = yo + offset[r.slot] * H;
    r.a.ldy = H;
  }

  ThreadPool& pool = default_thread_pool();
  int threads = spec.num_threads == 0 ? pool.num_threads() : std::min(spec.num_threads, pool.num_threads());
  {
    double work = 0;
    for (const LayerRun& r : up_runs)
      work += static_cast<double>(r.a.m) * r.layer->packed.n * r.layer->packed.k;
    if (work < 256.0 * 1024.0) threads = 1;  // finishes before a worker would wake up
  }

  // Step 2: gate/up activations, and the shared expert's gate.
  {
    std::vector<PrepItem> items;
    for (int i = 0; i < static_cast<int>(up_runs.size()); ++i) {
      const int64_t M = up_runs[i].a.m, step = rows_per_chunk(H, 1 << 15);
      for (int64_t r0 = 0; r0 < M; r0 += step) items.push_back({i, r0, std::min(M, r0 + step)});
    }
    const bool gated = im.has_shared() && !im.shared_gate.empty();
    if (gated) {
      const int64_t step = rows_per_chunk(H, 1 << 16);
      for (int64_t t0 = 0; t0 < T; t0 += step) items.push_back({-1, t0, std::min(T, t0 + step)});
    }
    pool.parallel_for(
        static_cast<int64_t>(items.size()),
        [&](int64_t i) {
          const PrepItem& it = items[i];
          if (it.run < 0) {
            const float* g = im.shared_gate.data();
            for (int64_t t = it.r0; t < it.r1; ++t) {
              const float* xt = x + t * H;
              float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
              int64_t h = 0;
              for (; h + 8 <= H; h += 8)
                for (int l = 0; l < 8; ++l) acc[l] += xt[h + l] * g[h + l];
              float dot = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
              for (; h < H; ++h) dot += xt[h] * g[h];
              sg[t] = 1.0f / (1.0f + std::exp(-dot));
            }
            return;
          }
          const LayerRun& r = up_runs[it.run];
          const PackedWeight& w = r.layer->packed;
          const int64_t base = offset[r.slot], kp = w.k_padded();
          for (int64_t m = it.r0; m < it.r1; ++m)
            gather_activation_rows(w, x + row_token[base + m] * H, DType::F32, 0, 1, r.xf + m * kp, kp);
          quantize_run_rows(r, it.r0, it.r1);
        },
        threads);
    if (im.has_shared() && !gated)
      for (int64_t t = 0; t < T; ++t) sg[t] = 1.0f;
  }

  // Step 3: every gate/up kernel.
  run_kernel_items(pool, threads, up_runs, kernel_items(up_runs, threads));

  // Step 4: h = silu(gate) * up, then the down layers' activations.
  {
    std::vector<PrepItem> items;
    for (int i = 0; i < static_cast<int>(down_runs.size()); ++i) {
      const int64_t M = down_runs[i].a.m, I = im.experts[down_runs[i].slot].intermediate;
      const int64_t step = rows_per_chunk(I, 1 << 13);
      for (int64_t r0 = 0; r0 < M; r0 += step) items.push_back({i, r0, std::min(M, r0 + step)});
    }
    pool.parallel_for(
        static_cast<int64_t>(items.size()),
        [&](int64_t i) {
          const PrepItem& it = items[i];
          const LayerRun& r = down_runs[it.run];
          const int64_t I = im.experts[r.slot].intermediate;
          const float* gu = arena.at<float>(gu_at[r.slot]);
          float* h = arena.at<float>(h_at[r.slot]);
          for (int64_t m = it.r0; m < it.r1; ++m) {
            const float* g = gu + m * 2 * I;
            float* hm = h + m * I;
            for (int64_t c = 0; c < I; ++c) hm[c] = silu(g[c]) * g[I + c];
          }
          if (r.xf != nullptr)
            gather_activation_rows(r.layer->packed, h, DType::F32, it.r0, it.r1, r.xf,
                                   r.layer->packed.k_padded());
          quantize_run_rows(r, it.r0, it.r1);
        },
        threads);
  }

  // Step 5: every down kernel.
  run_kernel_items(pool, threads, down_runs, kernel_items(down_runs, threads));

  // Step 6: y[t] = sum_j weights[t][j] * yo[pos[t][j]] (+ sg[t] * shared row), slots in order.
  {
    const int64_t h_step = std::min<int64_t>(H, 512);
    const int64_t h_parts = ceil_div(H, h_step);
    const int64_t t_step = rows_per_chunk(H * (k + 1), 1 << 15);
    const int64_t t_parts = ceil_div(T, t_step);
    const int64_t shared_base = im.has_shared() ? offset[E] : -1;
    pool.parallel_for(
        t_parts * h_parts,
        [&](int64_t i) {
          const int64_t t0 = (i / h_parts) * t_step, t1 = std::min(T, t0 + t_step);
          const int64_t h0 = (i % h_parts) * h_step, h1 = std::min(H, h0 + h_step);
          for (int64_t t = t0; t < t1; ++t) {
            float* yt = y + t * H;
            const float w0 = weights[t * k];
            const float* r0 = yo + pos[t * k] * H;
            for (int64_t h = h0; h < h1; ++h) yt[h] = w0 * r0[h];
            for (int j = 1; j < k; ++j) {
              const float wj = weights[t * k + j];
              const float* rj = yo + pos[t * k + j] * H;
              for (int64_t h = h0; h < h1; ++h) yt[h] += wj * rj[h];
            }
            if (shared_base >= 0) {
              const float gs = sg[t];
              const float* rs = yo + (shared_base + t) * H;
              for (int64_t h = h0; h < h1; ++h) yt[h] += gs * rs[h];
            }
          }
        },
        threads);
  }
}

}  // namespace ark
