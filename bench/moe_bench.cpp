// The MoE benchmark behind `ark bench moe` (see moe_bench.h). Figures only: it never passes or fails on time.
//
// Every call uses fresh routing logits and the next of several MoE layers in turn, so the experts it touches
// were last read several calls (and hundreds of MiB of other weights) ago: the figures are DRAM figures, not
// last-level-cache figures. The fused forward and the baseline alternate call by call, so both see the same
// machine load.
#include "moe_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <thread>

#include "ark/error.h"
#include "ark/moe.h"
#include "ark/thread_pool.h"
#include "linear_bench.h"
#include "memory_bandwidth.h"
#include "moe/moe_impl.h"

namespace ark::bench {

namespace {

// A fast generator for the large random code arrays (std::mt19937 would dominate set-up time).
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

QuantizedWeight random_weight(int64_t n, int64_t k, const LinearScheme& scheme, SplitMix& rng) {
  QuantizedWeight w;
  w.out_features = n;
  w.in_features = k;
  w.bits = scheme.bits;
  w.group_size = scheme.group_size < 0 ? k : scheme.group_size;
  w.sym = scheme.sym;
  const uint64_t mask = (1u << scheme.bits) - 1;
  w.codes.resize(static_cast<size_t>(n * k));
  for (size_t i = 0; i < w.codes.size(); i += 8) {
    uint64_t r = rng.next();
    for (size_t j = 0; j < 8 && i + j < w.codes.size(); ++j, r >>= 8)
      w.codes[i + j] = static_cast<uint8_t>(r & mask);
  }
  w.scales.resize(static_cast<size_t>(n * w.num_groups()));
  w.zeros.resize(w.scales.size());
  for (size_t i = 0; i < w.scales.size(); ++i) {
    const uint64_t r = rng.next();
    w.scales[i] = 0.001f + static_cast<float>(r % 1000) * 1e-5f;
    w.zeros[i] = scheme.sym ? (1 << (scheme.bits - 1)) : static_cast<int32_t>((r >> 20) & mask);
  }
  return w;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

inline float silu(float v) {
  return v / (1.0f + std::exp(-v));
}

// The baseline: each routed expert as its own QuantLinear calls on the same packed layers (gate/up fused as
// the MoE packs them), one expert after another; each call uses the pool on its own.
struct Baseline {
  std::vector<float> xg, gu, h, out;
  void run(const QuantMoE& moe, const float* x, const int32_t* ids, const float* w, float* y, int64_t T) {
    const QuantMoE::Impl& im = QuantMoE::Impl::of(moe);
    const int64_t H = im.spec.hidden_size;
    const int k = im.spec.top_k;
    std::fill(y, y + T * H, 0.0f);
    std::vector<std::vector<std::pair<int64_t, float>>> rows(im.spec.num_experts);
    for (int64_t t = 0; t < T; ++t)
      for (int j = 0; j < k; ++j) rows[ids[t * k + j]].push_back({t, w[t * k + j]});
    for (int e = 0; e < im.spec.num_experts; ++e) {
      const auto& r = rows[e];
      if (r.empty()) continue;
      const MoeExpert& xp = im.experts[e];
      const int64_t n = static_cast<int64_t>(r.size()), I = xp.intermediate;
      xg.resize(n * H);
      gu.resize(n * 2 * I);
      h.resize(n * I);
      out.resize(n * H);
      for (int64_t i = 0; i < n; ++i)
        std::copy(x + r[i].first * H, x + (r[i].first + 1) * H, xg.data() + i * H);
      if (xp.fused()) {
        xp.gate_up->forward(xg.data(), gu.data(), n);
      } else {  // [gate | up] per row, as the fused layer writes it
        h.resize(n * I * 2);
        xp.gate->forward(xg.data(), h.data(), n);
        xp.up->forward(xg.data(), h.data() + n * I, n);
        for (int64_t i = 0; i < n; ++i) {
          std::copy(h.data() + i * I, h.data() + (i + 1) * I, gu.data() + i * 2 * I);
          std::copy(h.data() + (n + i) * I, h.data() + (n + i + 1) * I, gu.data() + i * 2 * I + I);
        }
      }
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < I; ++c) h[i * I + c] = silu(gu[i * 2 * I + c]) * gu[i * 2 * I + I + c];
      xp.down->forward(h.data(), out.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        float* yt = y + r[i].first * H;
        const float* o = out.data() + i * H;
        for (int64_t c = 0; c < H; ++c) yt[c] += r[i].second * o[c];
      }
    }
  }
};

}  // namespace

std::vector<MoeBenchRow> run_moe_bench(const MoeBenchOptions& o) {
  ARK_CHECK(o.hidden > 0 && o.intermediate > 0 && o.experts > 0 && o.top_k >= 1 && o.top_k <= o.experts,
            "bench moe: bad shape (hidden ", o.hidden, ", intermediate ", o.intermediate, ", experts ",
            o.experts, ", top-k ", o.top_k, ")");
  ARK_CHECK(!o.tokens.empty(), "bench moe: no token counts");
  const std::vector<LinearScheme> schemes = parse_schemes(o.scheme);
  ARK_CHECK(schemes.size() == 1, "bench moe: --scheme takes one scheme, got '", o.scheme, "'");
  const LinearScheme& scheme = schemes[0];
  if (o.threads > 0) set_default_num_threads(o.threads);
  const int threads = default_thread_pool().num_threads();

  QuantMoESpec spec;
  spec.hidden_size = o.hidden;
  spec.intermediate_size = o.intermediate;
  spec.num_experts = o.experts;
  spec.top_k = o.top_k;
  spec.routing = MoeRouting::kSoftmaxThenTopK;
  spec.norm_topk_prob = true;  // Qwen3-MoE
  spec.mode = o.mode;
  spec.kernel_switch_threshold = o.kernel_switch_threshold;

  // One layer first, to size the rotation.
  SplitMix rng{o.seed};
  std::vector<QuantMoE> layers;
  // Experts are generated and packed on every hardware thread (load_expert may run concurrently for
  // different experts), each from its own seed, so the weights do not depend on the thread count.
  const int builders = std::max(1u, std::thread::hardware_concurrency());
  auto build_layer = [&] {
    QuantMoE m(spec);
    const uint64_t layer_seed = rng.next();
    std::vector<std::thread> pool;
    for (int b = 0; b < builders; ++b)
      pool.emplace_back([&, b] {
        for (int e = b; e < o.experts; e += builders) {
          SplitMix r{layer_seed + static_cast<uint64_t>(e) * 0x9e3779b97f4a7c15ull};
          QuantizedWeight g = random_weight(o.intermediate, o.hidden, scheme, r);
          QuantizedWeight u = random_weight(o.intermediate, o.hidden, scheme, r);
          QuantizedWeight d = random_weight(o.hidden, o.intermediate, scheme, r);
          m.load_expert(e, std::move(g), std::move(u), std::move(d));
        }
      });
    for (std::thread& t : pool) t.join();
    m.post_init();
    layers.push_back(std::move(m));
  };
  const auto t_build = std::chrono::steady_clock::now();
  build_layer();
  const double layer_bytes = static_cast<double>(layers[0].packed_bytes());
  const int n_layers =
      o.layers > 0
          ? o.layers
          : static_cast<int>(std::clamp(std::ceil(o.rotate_mib * 1048576.0 / layer_bytes), 3.0, 16.0));
  while (static_cast<int>(layers.size()) < n_layers) build_layer();
  const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_build).count();
  std::printf("%s\n", layers[0].describe().c_str());
  std::printf("%d layers of %.1f MiB packed rotated (%.1f MiB in all, built in %.1f s); %d threads\n",
              n_layers, layer_bytes / 1048576.0, n_layers * layer_bytes / 1048576.0, build_s, threads);
  // Packed bytes of each expert (gate/up + down), for the bytes a call touches.
  std::vector<double> expert_bytes(o.experts);
  {
    const QuantMoE::Impl& im = QuantMoE::Impl::of(layers[0]);
    for (int e = 0; e < o.experts; ++e) expert_bytes[e] = static_cast<double>(im.experts[e].packed_bytes());
  }
  // The read bandwidth is measured again before each T: on a shared machine it drifts with the neighbours'
  // load, and each row's fraction is taken against the figure measured next to it.
  std::printf("memory read bandwidth measured before each T (%.0f MiB buffer, %d threads)\n", o.bandwidth_mib,
              threads);
  std::printf("%6s %11s %11s %9s %8s %9s %8s %13s %9s\n", "T", "fused_us", "touched_MiB", "GB/s", "bw_GB/s",
              "%bw", "limit_us", "per_expert_us", "speedup");

  std::unique_ptr<std::ofstream> csv;
  if (!o.csv_path.empty()) {
    csv = std::make_unique<std::ofstream>(o.csv_path);
    ARK_CHECK(*csv, "bench moe: cannot write ", o.csv_path);
    *csv << "tokens,threads,fused_us,touched_bytes,gbs,pct_bandwidth,limit_us,per_expert_us,speedup,"
            "bandwidth_gbs\n";
  }
  std::vector<MoeBenchRow> out;
  std::mt19937_64 gen(o.seed + 17);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Baseline base;
  for (int64_t T : o.tokens) {
    ARK_CHECK(T >= 1, "bench moe: T = ", T, " must be >= 1");
    const double bw =
        measure_read_bandwidth_gbs(static_cast<size_t>(o.bandwidth_mib * 1048576.0), threads, 3);
    // Input sets, each with its own random routing; call i uses set i % sets on layer i % layers, so a
    // (set, layer) pair, and with it the same experts, comes back only after `sets` calls (hundreds of MiB of
    // other weights in between; a large L3, as virtual machines may hide, must not hold the T = 1 experts).
    const int sets = static_cast<int>(std::clamp<int64_t>(4096 / T, 16, 256));
    std::vector<std::vector<float>> xs(sets), logits(sets), ws(sets);
    std::vector<std::vector<int32_t>> ids(sets);
    std::vector<double> touched(sets, 0.0);
    for (int s = 0; s < sets; ++s) {
      xs[s].resize(T * o.hidden);
      for (float& v : xs[s]) v = nd(gen);
      logits[s].resize(T * o.experts);
      for (float& v : logits[s]) v = nd(gen);
      ids[s].resize(T * o.top_k);
      ws[s].resize(T * o.top_k);
      moe_route(spec, logits[s].data(), T, ids[s].data(), ws[s].data());
      std::vector<char> hit(o.experts, 0);
      for (int32_t id : ids[s]) hit[id] = 1;
      for (int e = 0; e < o.experts; ++e) touched[s] += hit[e] ? expert_bytes[e] : 0.0;
    }
    std::vector<float> y(T * o.hidden);
    std::vector<double> fused_t, base_t;
    double fused_bytes = 0;
    const auto start = std::chrono::steady_clock::now();
    using clock = std::chrono::steady_clock;
    for (int64_t i = 0;; ++i) {
      const int s = static_cast<int>(i % sets);
      const QuantMoE& m = layers[i % n_layers];
      auto t0 = clock::now();
      m.forward(xs[s].data(), logits[s].data(), y.data(), T);
      auto t1 = clock::now();
      if (i > 0) {  // the first call warms up
        fused_t.push_back(std::chrono::duration<double>(t1 - t0).count());
        fused_bytes += touched[s];
      }
      if (o.baseline) {
        const QuantMoE& mb = layers[(i + n_layers / 2) % n_layers];  // a layer not read just now
        t0 = clock::now();
        base.run(mb, xs[s].data(), ids[s].data(), ws[s].data(), y.data(), T);
        t1 = clock::now();
        if (i > 0) base_t.push_back(std::chrono::duration<double>(t1 - t0).count());
      }
      if (i >= 5 &&
          std::chrono::duration<double>(clock::now() - start).count() >= o.min_seconds * (o.baseline ? 2 : 1))
        break;
    }
    MoeBenchRow r;
    r.tokens = T;
    r.seconds = median(fused_t);
    r.touched_bytes = fused_bytes / static_cast<double>(fused_t.size());
    const double gbs = r.touched_bytes / r.seconds / 1e9;
    r.pct_bandwidth = 100.0 * gbs / bw;
    r.baseline_seconds = o.baseline ? median(base_t) : 0.0;
    const double limit_us = r.touched_bytes / (bw * 1e9) * 1e6;
    std::printf("%6lld %11.1f %11.2f %9.1f %8.1f %8.1f%% %8.1f %13.1f %8.2fx\n", static_cast<long long>(T),
                r.seconds * 1e6, r.touched_bytes / 1048576.0, gbs, bw, r.pct_bandwidth, limit_us,
                r.baseline_seconds * 1e6, o.baseline ? r.baseline_seconds / r.seconds : 0.0);
    std::fflush(stdout);
    if (csv)
      *csv << T << ',' << threads << ',' << r.seconds * 1e6 << ',' << r.touched_bytes << ',' << gbs << ','
           << r.pct_bandwidth << ',' << limit_us << ',' << r.baseline_seconds * 1e6 << ','
           << (o.baseline ? r.baseline_seconds / r.seconds : 0.0) << ',' << bw << '\n';
    out.push_back(r);
  }
  return out;
}

}  // namespace ark::bench
