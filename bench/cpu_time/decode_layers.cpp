// The int4 linears of a decode step, called in model order through QuantLinear::forward at M = 1, with each
// call timed on its own: where a small layer's time goes beyond streaming its bytes, and whether a change to
// the forward driver, the pool or the decode kernel moves it. Two sets:
//   --set qwen05 (default): per decoder layer q/k/v fused (896 -> 1152), o (896 -> 896), gate/up fused
//       (896 -> 9728), down (4864 -> 896), int4 g128 sym, --layers of them (24: 180 MiB, far beyond the
//       32 MiB L3), each layer its own weights, as `ark bench model` decodes them;
//   --set bench: the issue 3 layer set (896x896, 896x128, 896x4864, 4864x896), each shape copied over
//       --rotate-mib and called in turn, as `ark bench linear` rotates one shape.
// Per call it records wall time (steady_clock); per step the process CPU time (includes the pool's spin) and
// the calling thread's CPU time. Reports medians over --steps, per layer kind: us per call and GB/s of packed
// weights, and the step total; --hash prints an FNV-1a hash of every output of one step, so two builds can be
// checked for identical bytes. With --bw it measures the read bandwidth first (bench/memory_bandwidth.cpp).
// Prints figures only; never passes or fails on time. Compare builds by running the old and the new binary
// alternately. Not part of the CMake build:
//
//   g++ -O2 -std=c++20 -Iinclude -Isrc -Ibench bench/cpu_time/decode_layers.cpp bench/memory_bandwidth.cpp
//       build-<you>/libark_core.a -lpthread $(pkg-config --libs libpcre2-8 libutf8proc) -o /tmp/decode_layers
//   /tmp/decode_layers [--set qwen05|bench] [--layers 24] [--steps 300] [--threads 2] [--rotate-mib 96]
//       [--mode int8|exact] [--shapes KxN,...] [--hash] [--bw]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "ark/quant_linear.h"
#include "ark/quantized_weight.h"
#include "ark/thread_pool.h"
#include "memory_bandwidth.h"

using namespace ark;

namespace {

double clock_seconds(clockid_t id) {
  timespec t;
  clock_gettime(id, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

struct Kind {
  std::string name;
  int64_t k, n;
};

QuantizedWeight random_weight(int64_t k, int64_t n, uint32_t seed) {
  QuantizedWeight q;
  q.out_features = n;
  q.in_features = k;
  q.bits = 4;
  q.group_size = 128;
  q.sym = true;
  std::mt19937 rng(seed);
  q.codes.resize(static_cast<size_t>(n * k));
  for (size_t i = 0; i < q.codes.size(); i += 8) {
    uint32_t r = rng();
    for (size_t j = 0; j < 8 && i + j < q.codes.size(); ++j, r >>= 4) q.codes[i + j] = r & 15;
  }
  q.scales.resize(static_cast<size_t>(n * q.num_groups()));
  for (auto& s : q.scales) s = 0.001f * static_cast<float>(1 + (rng() & 63));
  q.zeros.assign(q.scales.size(), 8);
  return q;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string set = "qwen05", mode_name = "int8";
  int layers = 24, steps = 300, threads = 2;
  double rotate_mib = 96;
  bool hash = false, bw = false;
  std::string shapes;  // --set bench: "KxN,KxN,..." instead of the issue 3 set
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? argv[++i] : ""; };
    if (!std::strcmp(argv[i], "--set"))
      set = next();
    else if (!std::strcmp(argv[i], "--layers"))
      layers = std::atoi(next());
    else if (!std::strcmp(argv[i], "--steps"))
      steps = std::atoi(next());
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::atoi(next());
    else if (!std::strcmp(argv[i], "--rotate-mib"))
      rotate_mib = std::atof(next());
    else if (!std::strcmp(argv[i], "--mode"))
      mode_name = next();
    else if (!std::strcmp(argv[i], "--hash"))
      hash = true;
    else if (!std::strcmp(argv[i], "--shapes"))
      shapes = next();
    else if (!std::strcmp(argv[i], "--bw"))
      bw = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if ((set != "qwen05" && set != "bench") || layers < 1 || steps < 1 || threads < 1 || rotate_mib < 0) {
    std::fprintf(stderr, "need --set qwen05|bench, --layers/--steps/--threads >= 1, --rotate-mib >= 0\n");
    return 2;
  }
  set_default_num_threads(threads);
  const ComputeMode mode = parse_compute_mode(mode_name);

  std::vector<Kind> kinds;
  if (set == "qwen05")
    kinds = {{"qkv 896x1152", 896, 1152},
             {"o 896x896", 896, 896},
             {"gate_up 896x9728", 896, 9728},
             {"down 4864x896", 4864, 896}};
  else if (shapes.empty())
    kinds = {{"896x896", 896, 896}, {"896x128", 896, 128}, {"896x4864", 896, 4864}, {"4864x896", 4864, 896}};
  else
    for (size_t at = 0; at < shapes.size();) {
      size_t end = shapes.find(',', at);
      if (end == std::string::npos) end = shapes.size();
      const std::string item = shapes.substr(at, end - at);
      const size_t x = item.find('x');
      const int64_t k = x == std::string::npos ? 0 : std::atoll(item.c_str()),
                    n = x == std::string::npos ? 0 : std::atoll(item.c_str() + x + 1);
      if (k < 1 || n < 1) {
        std::fprintf(stderr, "--shapes: '%s' is not KxN\n", item.c_str());
        return 2;
      }
      kinds.push_back({item, k, n});
      at = end + 1;
    }

  // The layers, kind by kind and copy by copy, and the call sequence: (kind, layer object) in the order one
  // step runs them (qwen05: layer by layer, as a decode step; bench: every copy of one shape, then the next).
  std::vector<QuantLinear> objects;
  std::vector<std::pair<int, int>> calls;
  std::vector<std::vector<int>> index(kinds.size());
  for (size_t c = 0; c < kinds.size(); ++c) {
    const QuantizedWeight w = random_weight(kinds[c].k, kinds[c].n, 100 + static_cast<uint32_t>(c));
    QuantLinearSpec s;
    s.in_features = kinds[c].k;
    s.out_features = kinds[c].n;
    s.bits = 4;
    s.group_size = 128;
    s.sym = true;
    s.mode = mode;
    for (int j = 0;; ++j) {
      objects.emplace_back(s);
      objects.back().load(w);
      objects.back().post_init();
      index[c].push_back(static_cast<int>(objects.size()) - 1);
      const double bytes = static_cast<double>(objects.back().packed_bytes());
      const int copies =
          set == "qwen05"
              ? layers
              : static_cast<int>(std::clamp(std::ceil(rotate_mib * 1048576.0 / bytes), 1.0, 16384.0));
      if (j + 1 >= copies) break;
    }
  }
  if (set == "qwen05") {
    for (int l = 0; l < layers; ++l)
      for (size_t c = 0; c < kinds.size(); ++c) calls.emplace_back(static_cast<int>(c), index[c][l]);
  } else {
    for (size_t c = 0; c < kinds.size(); ++c)
      for (size_t j = 0; j < index[c].size(); ++j) calls.emplace_back(static_cast<int>(c), index[c][j]);
  }

  int64_t max_k = 0, max_n = 0;
  for (const Kind& k : kinds) max_k = std::max(max_k, k.k), max_n = std::max(max_n, k.n);
  std::vector<float> x(static_cast<size_t>(max_k));
  std::mt19937 rng(7);
  for (float& v : x) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) * 1e-3f;
  std::vector<float> y(static_cast<size_t>(max_n));

  if (bw) {
    const double g = bench::measure_read_bandwidth_gbs(size_t{1} << 30, threads, 5);
    std::printf("read bandwidth (1 GiB, %d threads): %.1f GB/s\n", threads, g);
  }
  if (hash) {
    uint64_t h = 1469598103934665603ull;
    for (const auto& [c, o] : calls) {
      std::fill(y.begin(), y.end(), std::nanf(""));
      objects[o].forward(x.data(), y.data(), 1);
      const auto* p = reinterpret_cast<const uint8_t*>(y.data());
      for (size_t i = 0; i < static_cast<size_t>(kinds[c].n) * 4; ++i) h = (h ^ p[i]) * 1099511628211ull;
    }
    std::printf("output hash (FNV-1a 64 over one step's outputs): %016llx\n",
                static_cast<unsigned long long>(h));
  }

  // Warm-up step (page tables, pool threads), then the timed steps.
  for (const auto& [c, o] : calls) objects[o].forward(x.data(), y.data(), 1);
  // Per step and kind: mean wall us per call, and the calling thread's CPU us per call (a descheduled
  // thread's CPU clock stops, so on a loaded machine this one moves far less; it includes the caller's
  // waiting).
  std::vector<std::vector<double>> per_kind(kinds.size()), cpu_kind(kinds.size());
  std::vector<double> step_us, proc_cpu_us, caller_cpu_us;
  std::vector<double> sum_us(kinds.size()), sum_cpu(kinds.size());
  std::vector<int> count(kinds.size());
  for (int s = 0; s < steps; ++s) {
    std::fill(sum_us.begin(), sum_us.end(), 0.0);
    std::fill(sum_cpu.begin(), sum_cpu.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    const double p0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID), c0 = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
    const auto s0 = std::chrono::steady_clock::now();
    auto t = s0;
    double cpu = c0;
    for (const auto& [c, o] : calls) {
      objects[o].forward(x.data(), y.data(), 1);
      const auto t1 = std::chrono::steady_clock::now();
      const double cpu1 = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
      sum_us[c] += std::chrono::duration<double, std::micro>(t1 - t).count();
      sum_cpu[c] += 1e6 * (cpu1 - cpu);
      ++count[c];
      t = t1;
      cpu = cpu1;
    }
    step_us.push_back(std::chrono::duration<double, std::micro>(t - s0).count());
    proc_cpu_us.push_back(1e6 * (clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - p0));
    caller_cpu_us.push_back(1e6 * (clock_seconds(CLOCK_THREAD_CPUTIME_ID) - c0));
    for (size_t c = 0; c < kinds.size(); ++c) {
      per_kind[c].push_back(sum_us[c] / count[c]);
      cpu_kind[c].push_back(sum_cpu[c] / count[c]);
    }
  }

  std::printf("set %s, %zu calls per step, %d steps, %d threads, mode %s\n", set.c_str(), calls.size(), steps,
              threads, mode_name.c_str());
  std::printf("%-18s %7s %10s %10s %9s %8s %9s\n", "layer", "calls", "bytes", "us/call", "min us", "GB/s",
              "cpu us");
  double bytes_step = 0;
  for (size_t c = 0; c < kinds.size(); ++c) {
    const double bytes = static_cast<double>(objects[index[c][0]].packed_bytes());
    const int per_step = static_cast<int>(
        std::count_if(calls.begin(), calls.end(), [&](const auto& p) { return p.first == int(c); }));
    bytes_step += bytes * per_step;
    const double med = median(per_kind[c]);
    std::printf("%-18s %7d %10.0f %10.2f %9.2f %8.2f %9.2f\n", kinds[c].name.c_str(), per_step, bytes, med,
                *std::min_element(per_kind[c].begin(), per_kind[c].end()), bytes / med / 1e3,
                median(cpu_kind[c]));
  }
  const double med_step = median(step_us);
  std::printf("step: median %.1f us (min %.1f), %.2f GB/s; process CPU %.1f us, caller thread CPU %.1f us\n",
              med_step, *std::min_element(step_us.begin(), step_us.end()), bytes_step / med_step / 1e3,
              median(proc_cpu_us), median(caller_cpu_us));
  return 0;
}
