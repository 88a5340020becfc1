// `ark demo`: the whole QuantLinear path on a generated layer. Quantizes a random weight with the RTN
// quantizer (format.h), packs it (post_init), runs a decode step (M = 1) and a prefill (M = --prefill),
// checks both against an fp64 reference of the quantized weight, and prints what ran and how fast.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <random>
#include <vector>

#include "ark/format.h"
#include "ark/quant_linear.h"
#include "ark/thread_pool.h"
#include "commands.h"

namespace ark::tools {

namespace {

struct DemoArgs {
  int64_t in = 4096, out = 4096;
  int bits = 4;
  int64_t group = 128;
  bool asym = false;
  std::string mode = "auto";
  std::string isa;
  int64_t prefill = 128;
  int threads = 0;
  uint64_t seed = 1;
};

double seconds_per_call(const QuantLinear& layer, const std::vector<float>& x, std::vector<float>& y,
                        int64_t m) {
  using clock = std::chrono::steady_clock;
  layer.forward(x.data(), y.data(), m);  // warm-up
  std::vector<double> times;
  const auto start = clock::now();
  while (times.size() < 5 || (clock::now() - start < std::chrono::milliseconds(300) && times.size() < 2000)) {
    const auto t0 = clock::now();
    layer.forward(x.data(), y.data(), m);
    times.push_back(std::chrono::duration<double>(clock::now() - t0).count());
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

void run_demo(const DemoArgs& a) {
  if (a.threads > 0) set_default_num_threads(a.threads);
  std::mt19937_64 rng(a.seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> dense(static_cast<size_t>(a.in * a.out));
  for (float& v : dense) v = nd(rng);

  QuantScheme scheme;
  scheme.bits = a.bits;
  scheme.group_size = a.group;
  scheme.sym = !a.asym;
  const auto q0 = std::chrono::steady_clock::now();
  QuantizedWeight w = quantize_rtn(dense.data(), a.out, a.in, scheme);
  const std::vector<float> wq = dequantize(w);
  const double quant_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - q0).count();

  QuantLinearSpec spec;
  spec.in_features = a.in;
  spec.out_features = a.out;
  spec.bits = a.bits;
  spec.group_size = a.group;
  spec.sym = !a.asym;
  spec.mode = parse_compute_mode(a.mode);
  spec.max_isa = a.isa;
  spec.kernel_switch_threshold = std::min<int64_t>(128, std::max<int64_t>(a.prefill, 2));
  QuantLinear layer(spec);
  layer.load(std::move(w));
  const auto p0 = std::chrono::steady_clock::now();
  layer.post_init();
  const double pack_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - p0).count();

  std::cout << "ark demo: " << a.in << " -> " << a.out << " linear layer, random N(0, 0.02) weights, seed "
            << a.seed << "\n  quantized with RTN int" << a.bits << " g" << a.group
            << (a.asym ? " asym" : " sym") << " in " << std::fixed << std::setprecision(1) << quant_s * 1e3
            << " ms, packed (post_init) in " << pack_s * 1e3 << " ms\n  " << layer.describe()
            << "\n  threads: " << default_thread_pool().num_threads() << "\n";

  std::normal_distribution<float> xd(0.0f, 1.0f);
  for (int64_t m : {int64_t{1}, a.prefill}) {
    std::vector<float> x(static_cast<size_t>(m * a.in)), y(static_cast<size_t>(m * a.out), std::nanf(""));
    for (float& v : x) v = xd(rng);
    layer.forward(x.data(), y.data(), m);
    // fp64 reference of the quantized weight, on a sample of rows for large layers.
    double max_err = 0.0, max_ref = 0.0;
    const int64_t rows = std::min<int64_t>(m, 4);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t n = 0; n < a.out; ++n) {
        double ref = 0.0;
        for (int64_t k = 0; k < a.in; ++k)
          ref += static_cast<double>(x[r * a.in + k]) * static_cast<double>(wq[n * a.in + k]);
        max_err = std::max(max_err, std::fabs(ref - y[r * a.out + n]));
        max_ref = std::max(max_ref, std::fabs(ref));
      }
    const double s = seconds_per_call(layer, x, y, m);
    const double gbs = static_cast<double>(layer.packed_bytes()) / s / 1e9;
    const double gflops = 2.0 * static_cast<double>(m * a.in * a.out) / s / 1e9;
    std::cout << "  M=" << m << ": kernel " << layer.kernel_name(m)
              << "\n    max |y - reference| = " << std::scientific << std::setprecision(2) << max_err
              << " (max |reference| " << max_ref << ", first " << rows << " rows)\n    " << std::fixed
              << std::setprecision(1) << s * 1e6 << " us per forward, " << gbs << " GB/s of packed weights, "
              << gflops << " GFLOP/s\n";
  }
  std::cout << "  (weights stay in cache between calls here: `ark bench linear` streams them from DRAM)\n";
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto args = std::make_shared<DemoArgs>();
  CLI::App* cmd =
      app.add_subcommand("demo", "Quantize, pack and run a generated linear layer; check and time it");
  cmd->add_option("--in", args->in, "in_features (K)")->capture_default_str();
  cmd->add_option("--out", args->out, "out_features (N)")->capture_default_str();
  cmd->add_option("--bits", args->bits, "2, 3, 4 or 8")->capture_default_str();
  cmd->add_option("--group", args->group, "group size (-1: per channel)")->capture_default_str();
  cmd->add_flag("--asym", args->asym, "asymmetric (zero points) instead of symmetric");
  cmd->add_option("--mode", args->mode, "auto, exact or int8")->capture_default_str();
  cmd->add_option("--isa", args->isa, "cap the kernels' ISA level (ref, avx2, avx512, avx512_vnni, ...)");
  cmd->add_option("--prefill", args->prefill, "rows of the prefill run")->capture_default_str();
  cmd->add_option("--threads", args->threads, "threads (0: all)")->capture_default_str();
  cmd->add_option("--seed", args->seed, "seed of the weights and inputs")->capture_default_str();
  cmd->callback([args] { run_demo(*args); });
}

}  // namespace ark::tools
