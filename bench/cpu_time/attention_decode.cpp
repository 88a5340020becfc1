// Decode-step attention alone: runtime::causal_attention for one new token on every layer of a Qwen2.5-0.5B-
// shaped cache (24 layers, 14 query heads, 2 KV heads, head_dim 64) filled to --context positions, with the
// caches flushed before each step by reading --flush-mib of other memory (a real decode step streams ~460 MB
// of weights between two steps' attention, so the keys and values come from DRAM). Reports the median step
// (24 calls) in wall time and as GB/s of keys and values read. Prints figures only. Not part of the CMake
// build:
//
//   g++ -O2 -std=c++20 -Iinclude -Isrc bench/cpu_time/attention_decode.cpp build-<you>/libark_core.a
//       -lpthread $(pkg-config --libs libpcre2-8 libutf8proc) -o /tmp/attention_decode
//   /tmp/attention_decode [--context 640] [--steps 200] [--threads 2] [--flush-mib 64]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ark/model.h"
#include "ark/model_config.h"
#include "ark/thread_pool.h"
#include "runtime/attention.h"

using namespace ark;

int main(int argc, char** argv) {
  int64_t context = 640, steps = 200, flush_mib = 64;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (a == "--context")
      context = v;
    else if (a == "--steps")
      steps = v;
    else if (a == "--threads")
      threads = static_cast<int>(v);
    else if (a == "--flush-mib")
      flush_mib = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  set_default_num_threads(threads);
  ModelConfig c;
  c.num_layers = 24;
  c.num_heads = 14;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  KvCache cache(c, context + 1, 16);
  cache.reserve(context + 1);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int64_t h = 0; h < c.num_kv_heads; ++h)
      for (int64_t p = 0; p <= context; ++p) {
        float* k = cache.key(l, h, p);
        float* v = cache.value(l, h, p);
        for (int64_t d = 0; d < c.head_dim; ++d) k[d] = u(rng), v[d] = u(rng);
      }
  std::vector<float> q(c.num_heads * c.head_dim), out(q.size());
  for (float& x : q) x = u(rng);
  std::vector<uint8_t> flush(static_cast<size_t>(flush_mib) << 20, 1);
  const runtime::AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim, 0.125f};
  std::vector<double> times;
  uint64_t sink = 0;
  for (int64_t s = 0; s < steps; ++s) {
    for (size_t i = 0; i < flush.size(); i += 64) sink += flush[i];
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t l = 0; l < c.num_layers; ++l)
      runtime::causal_attention(q.data(), cache, l, context, 1, shape, out.data(), default_thread_pool());
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  if (FILE* f = std::fopen("/proc/self/smaps_rollup", "r")) {  // are the cache's blocks on huge pages?
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, "AnonHugePages:", 14) == 0) std::printf("%s", line);
    std::fclose(f);
  }
  const double med = times[times.size() / 2];
  const double bytes = 2.0 * c.num_layers * c.num_kv_heads * (context + 1) * c.head_dim * sizeof(float);
  std::printf(
      "context %lld, %d threads: step median %.1f us (min %.1f), %.1f MB of K/V -> %.1f GB/s (sink %llu)\n",
      static_cast<long long>(context), threads, 1e6 * med, 1e6 * times.front(), bytes / 1e6,
      bytes / med / 1e9, static_cast<unsigned long long>(sink % 10));
}
