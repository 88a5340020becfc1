// The linear-layer benchmark behind `ark bench linear` (see linear_bench.h). It prints figures and never
// passes or fails on time: the machines it runs on are shared and noisy, so every figure comes with its own
// limits measured in the same run.
#include "linear_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "ark/error.h"
#include "ark/thread_pool.h"
#include "bf16_baseline.h"
#include "memory_bandwidth.h"

namespace ark::bench {

namespace {

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

int64_t parse_int(const std::string& s, const char* what) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ARK_CHECK(used == s.size() && !s.empty(), what, ": '", s, "' is not an integer");
  return v;
}

// A fast generator for the large random code arrays (std::mt19937 would dominate set-up time).
struct XorShift {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

QuantizedWeight random_weight(const LinearShape& shape, const LinearScheme& scheme, uint64_t seed) {
  QuantizedWeight w;
  w.out_features = shape.out_features;
  w.in_features = shape.in_features;
  w.bits = scheme.bits;
  w.group_size = scheme.group_size < 0 ? shape.in_features : scheme.group_size;
  w.sym = scheme.sym;
  XorShift rng{seed * 0x9e3779b97f4a7c15ull + 1};
  const uint64_t mask = (1u << scheme.bits) - 1;
  w.codes.resize(static_cast<size_t>(shape.out_features * shape.in_features));
  for (size_t i = 0; i < w.codes.size(); i += 8) {
    uint64_t r = rng.next();
    for (size_t j = 0; j < 8 && i + j < w.codes.size(); ++j, r >>= 8)
      w.codes[i + j] = static_cast<uint8_t>(r & mask);
  }
  const int64_t G = w.num_groups();
  w.scales.resize(static_cast<size_t>(shape.out_features * G));
  w.zeros.resize(w.scales.size());
  for (size_t i = 0; i < w.scales.size(); ++i) {
    const uint64_t r = rng.next();
    w.scales[i] = 0.001f + static_cast<float>(r % 1000) * 1e-5f;  // fp16-exact is not needed for timing
    w.zeros[i] = scheme.sym ? (1 << (scheme.bits - 1)) : static_cast<int32_t>((r >> 20) & mask);
  }
  return w;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Repeats fn until min_seconds have passed (at least 3 timed runs, after one warm-up) and returns the median.
template <typename Fn>
double time_median(double min_seconds, Fn&& fn) {
  fn();
  std::vector<double> times;
  const auto start = std::chrono::steady_clock::now();
  while (times.size() < 3 ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (times.size() >= 2000) break;
  }
  return median(times);
}

// The kernel names out of QuantLinear::describe() ("M < 128: a, M >= 128: b; ...").
std::string kernel_name(const QuantLinear& layer, int64_t m) {
  const std::string d = layer.describe();
  const std::string key = m < layer.spec().kernel_switch_threshold ? "M < " : "M >= ";
  size_t at = d.find(key);
  if (at == std::string::npos) return "?";
  at = d.find(": ", at);
  const size_t end = d.find_first_of(",;", at);
  return d.substr(at + 2, end - at - 2);
}

}  // namespace

std::vector<LinearShape> parse_shapes(const std::string& text) {
  std::vector<LinearShape> out;
  for (const std::string& item : split(text, ',')) {
    const size_t x = item.find('x');
    ARK_CHECK(x != std::string::npos, "--shapes: '", item, "' is not <in>x<out>, e.g. 4096x14336");
    const LinearShape s{parse_int(item.substr(0, x), "--shapes"), parse_int(item.substr(x + 1), "--shapes")};
    ARK_CHECK(s.in_features > 0 && s.out_features > 0, "--shapes: '", item, "' must be positive");
    out.push_back(s);
  }
  ARK_CHECK(!out.empty(), "--shapes: no shape given");
  return out;
}

std::vector<int64_t> parse_batch(const std::string& text) {
  std::vector<int64_t> out;
  for (const std::string& item : split(text, ',')) {
    out.push_back(parse_int(item, "--m"));
    ARK_CHECK(out.back() > 0, "--m: ", item, " must be positive");
  }
  ARK_CHECK(!out.empty(), "--m: no batch size given");
  return out;
}

std::vector<LinearScheme> parse_schemes(const std::string& text) {
  std::vector<LinearScheme> out;
  for (const std::string& item : split(text, ',')) {
    const std::vector<std::string> parts = split(item, '-');
    ARK_CHECK(parts.size() >= 2 && parts.size() <= 3 && parts[0].rfind("int", 0) == 0 && parts[1][0] == 'g',
              "--schemes: '", item, "' is not int<bits>-g<group>[-sym|-asym], e.g. int4-g128-sym");
    LinearScheme s;
    s.name = item;
    s.bits = static_cast<int>(parse_int(parts[0].substr(3), "--schemes bits"));
    s.group_size = parse_int(parts[1].substr(1), "--schemes group");
    s.sym = parts.size() == 3 && parts[2] == "sym";
    ARK_CHECK(parts.size() == 2 || parts[2] == "sym" || parts[2] == "asym", "--schemes: '", item,
              "': the last part must be sym or asym");
    ARK_CHECK(s.bits == 2 || s.bits == 3 || s.bits == 4 || s.bits == 8, "--schemes: '", item,
              "': bits must be 2, 3, 4 or 8");
    ARK_CHECK(s.group_size == -1 || s.group_size > 0, "--schemes: '", item, "': group must be > 0 or -1");
    out.push_back(s);
  }
  ARK_CHECK(!out.empty(), "--schemes: no scheme given");
  return out;
}

std::vector<ComputeMode> parse_modes(const std::string& text) {
  std::vector<ComputeMode> out;
  for (const std::string& item : split(text, ',')) out.push_back(parse_compute_mode(item));
  ARK_CHECK(!out.empty(), "--modes: no mode given");
  return out;
}

std::vector<LinearBenchRow> run_linear_bench(const LinearBenchOptions& o) {
  const int threads =
      o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  set_default_num_threads(threads);
  std::printf("ark bench linear: %d thread(s)\n", threads);

  // %bw is each case against a probe read right after it (this host's bandwidth moves by 2x within minutes);
  // the figure at start is printed for reference.
  ReadBandwidthProbe probe(static_cast<size_t>(o.bandwidth_mib * 1048576.0), threads);
  std::printf("memory read bandwidth (measured, %.0f MiB buffer, %d threads): %.1f GB/s at start; each case's "
              "%%bw is against a probe read right after it (probe_GB/s)\n",
              o.bandwidth_mib, threads, probe.measure(5));
  const bool baseline = o.baseline && Bf16Baseline::available();
  if (o.baseline && !baseline) std::printf("bf16 baseline: unavailable in this build (no oneDNN)\n");

  std::unique_ptr<std::ofstream> csv;
  if (!o.csv_path.empty()) {
    csv = std::make_unique<std::ofstream>(o.csv_path);
    ARK_CHECK(csv->good(), "--csv: cannot write '", o.csv_path, "'");
    *csv << "in_features,out_features,m,scheme,mode,threads,kernel,time_us,weight_gbs,pct_bandwidth,gflops,"
            "bf16_time_us,bf16_gflops,speedup_vs_bf16,bandwidth_gbs\n";
  }
  std::printf("%-11s %5s %-15s %-5s %-40s %10s %8s %6s %9s %8s %8s %7s\n", "shape", "M", "scheme", "mode",
              "kernel", "time_us", "w_GB/s", "%bw", "probe_GB/s", "GFLOP/s", "bf16_GF", "vs_bf16");

  std::vector<LinearBenchRow> rows;
  uint64_t seed = o.seed;
  for (const LinearShape& shape : o.shapes) {
    // The bf16 baseline per M, shared by every scheme of the shape. oneDNN's weights are rotated like ours so
    // small-M figures are not cache figures either.
    std::vector<double> base_seconds(o.batch.size(), 0.0);
    std::string base_desc;
    if (baseline) {
      const double w_bytes = 2.0 * static_cast<double>(shape.in_features * shape.out_features);
      for (size_t bi = 0; bi < o.batch.size(); ++bi) {
        const int copies =
            static_cast<int>(std::clamp(std::ceil(o.rotate_mib * 1048576.0 / w_bytes), 1.0, 64.0));
        std::vector<std::unique_ptr<Bf16Baseline>> base;
        for (int c = 0; c < copies; ++c)
          base.push_back(std::make_unique<Bf16Baseline>(o.batch[bi], shape.out_features, shape.in_features,
                                                        threads, seed + static_cast<uint64_t>(c)));
        base_desc = base[0]->description();
        size_t next = 0;
        base_seconds[bi] = time_median(o.min_seconds, [&] {
          base[next]->run();
          next = (next + 1) % base.size();
        });
      }
    }
    for (const LinearScheme& scheme : o.schemes) {
      for (ComputeMode mode : o.modes) {
        QuantLinearSpec spec;
        spec.in_features = shape.in_features;
        spec.out_features = shape.out_features;
        spec.bits = scheme.bits;
        spec.group_size = scheme.group_size;
        spec.sym = scheme.sym;
        spec.mode = mode;
        spec.num_threads = threads;
        spec.kernel_switch_threshold = o.threshold;
        // Copies of the layer so one pass over all of them exceeds the last-level cache.
        const QuantizedWeight canonical = random_weight(shape, scheme, ++seed);
        std::vector<QuantLinear> layers;
        layers.emplace_back(spec);
        layers.back().load(canonical);
        layers.back().post_init();
        const size_t packed = layers.back().packed_bytes();
        const int copies = static_cast<int>(
            std::clamp(std::ceil(o.rotate_mib * 1048576.0 / static_cast<double>(packed)), 1.0, 256.0));
        for (int c = 1; c < copies; ++c) {
          layers.emplace_back(spec);
          layers.back().load(canonical);
          layers.back().post_init();
        }
        for (size_t bi = 0; bi < o.batch.size(); ++bi) {
          const int64_t m = o.batch[bi];
          std::vector<float> x(static_cast<size_t>(m * shape.in_features));
          XorShift rng{seed * 31 + static_cast<uint64_t>(m)};
          for (float& v : x) v = static_cast<float>(static_cast<int64_t>(rng.next() % 2001) - 1000) * 1e-3f;
          std::vector<float> y(static_cast<size_t>(m * shape.out_features));
          size_t next = 0;
          const double t = time_median(o.min_seconds, [&] {
            layers[next].forward(x.data(), y.data(), m);
            next = (next + 1) % layers.size();
          });
          LinearBenchRow r;
          r.shape = shape;
          r.m = m;
          r.scheme = scheme.name;
          r.mode = std::string(compute_mode_name(mode));
          r.kernel = kernel_name(layers[0], m);
          r.seconds = t;
          r.weight_gbs = static_cast<double>(packed) / t / 1e9;
          const double bw = probe.measure(3);
          r.pct_bandwidth = 100.0 * r.weight_gbs / bw;
          r.gflops = 2.0 * static_cast<double>(m) *
                     static_cast<double>(shape.in_features * shape.out_features) / t / 1e9;
          r.baseline_seconds = base_seconds[bi];
          const double base_gflops = r.baseline_seconds > 0 ? r.gflops * t / r.baseline_seconds : 0.0;
          const double speedup = r.baseline_seconds > 0 ? r.baseline_seconds / t : 0.0;
          char shape_text[32];
          std::snprintf(shape_text, sizeof shape_text, "%lldx%lld", static_cast<long long>(shape.in_features),
                        static_cast<long long>(shape.out_features));
          std::printf("%-11s %5lld %-15s %-5s %-40s %10.1f %8.2f %6.1f %9.1f %8.1f %8.1f %7.2f\n", shape_text,
                      static_cast<long long>(m), r.scheme.c_str(), r.mode.c_str(), r.kernel.c_str(), t * 1e6,
                      r.weight_gbs, r.pct_bandwidth, bw, r.gflops, base_gflops, speedup);
          std::fflush(stdout);
          if (csv)
            *csv << shape.in_features << ',' << shape.out_features << ',' << m << ',' << r.scheme << ','
                 << r.mode << ',' << threads << ',' << r.kernel << ',' << t * 1e6 << ',' << r.weight_gbs
                 << ',' << r.pct_bandwidth << ',' << r.gflops << ',' << r.baseline_seconds * 1e6 << ','
                 << base_gflops << ',' << speedup << ',' << bw << '\n';
          rows.push_back(r);
        }
      }
    }
    if (baseline) std::printf("  (bf16 baseline: %s)\n", base_desc.c_str());
  }
  return rows;
}

}  // namespace ark::bench
