// `ark bench linear`: quantized linear-layer figures against this machine's measured limits (bench/).
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "../../bench/linear_bench.h"
#include "ark/error.h"
#include "commands.h"

namespace ark::tools {

namespace {

struct BenchLinearArgs {
  std::string shapes = "896x896,896x128,896x4864,4864x896,4096x4096,4096x11008,11008x4096,4096x14336";
  std::string m = "1,2,4,8,16,32,64,128,512";
  std::string schemes = "int4-g128-sym,int4-g128-asym,int2-g64-asym,int3-g128-asym,int8-g128-asym";
  std::string modes = "exact,int8";
  int threads = 0;
  int64_t threshold = 128;
  double min_seconds = 0.25;
  double rotate_mib = 96;
  bool no_baseline = false;
  std::string csv = "bench_linear.csv";
  std::string png;
  uint64_t seed = 1;
};

void run(const BenchLinearArgs& args) {
  bench::LinearBenchOptions o;
  o.shapes = bench::parse_shapes(args.shapes);
  o.batch = bench::parse_batch(args.m);
  o.schemes = bench::parse_schemes(args.schemes);
  o.modes = bench::parse_modes(args.modes);
  ARK_CHECK(args.threads >= 0, "--threads must be >= 0 (0: all), got ", args.threads);
  ARK_CHECK(args.min_seconds > 0, "--min-time must be > 0, got ", args.min_seconds);
  ARK_CHECK(args.rotate_mib >= 0, "--rotate-mib must be >= 0, got ", args.rotate_mib);
  ARK_CHECK(args.threshold >= 1, "--threshold must be >= 1, got ", args.threshold);
  o.threads = args.threads;
  o.threshold = args.threshold;
  o.min_seconds = args.min_seconds;
  o.rotate_mib = args.rotate_mib;
  o.baseline = !args.no_baseline;
  o.csv_path = args.csv;
  o.seed = args.seed;
  bench::run_linear_bench(o);
  if (!args.csv.empty()) std::cout << "wrote " << args.csv << "\n";
  if (!args.png.empty()) {
    ARK_CHECK(!args.csv.empty(), "--png needs --csv (the plot is drawn from the CSV)");
    // The plot is drawn by a small matplotlib script next to the benchmark sources, with ARK_PYTHON if set,
    // else the repository's venv (made over Debian's python3 with python3-matplotlib), else Debian's python3:
    // a `python3` first on PATH (pyenv, conda) often lacks matplotlib.
    const std::string bench_dir = ARK_BENCH_DIR;
    std::string python = "python3";
    if (const char* env = std::getenv("ARK_PYTHON")) {
      python = env;
    } else {
      for (const std::string& candidate :
           {bench_dir + "/../.venv/bin/python", std::string("/usr/bin/python3")})
        if (std::filesystem::exists(candidate)) {
          python = candidate;
          break;
        }
    }
    const std::string cmd =
        "'" + python + "' '" + bench_dir + "/plot_linear.py' '" + args.csv + "' '" + args.png + "'";
    ARK_CHECK(std::system(cmd.c_str()) == 0, "plotting failed: ", cmd);
    std::cout << "wrote " << args.png << "\n";
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks (figures only; they never pass or fail on time)");
  bench->require_subcommand(1);
  auto args = std::make_shared<BenchLinearArgs>();
  CLI::App* linear = bench->add_subcommand(
      "linear",
      "Time QuantLinear forward per shape x M x scheme x mode, against measured bandwidth and oneDNN bf16");
  linear->add_option("--shapes", args->shapes, "in x out features, comma-separated")->capture_default_str();
  linear->add_option("--m", args->m, "batch sizes M, comma-separated")->capture_default_str();
  linear
      ->add_option("--schemes", args->schemes,
                   "int<bits>-g<group>[-sym|-asym], comma-separated (g-1: per channel)")
      ->capture_default_str();
  linear->add_option("--modes", args->modes, "compute modes: exact, int8, auto")->capture_default_str();
  linear->add_option("--threads", args->threads, "threads (0: all)")->capture_default_str();
  linear
      ->add_option("--threshold", args->threshold,
                   "kernel_switch_threshold: M below it runs the decode kernels, at or above it the GEMM")
      ->capture_default_str();
  linear->add_option("--min-time", args->min_seconds, "seconds per case (median of the runs)")
      ->capture_default_str();
  linear->add_option("--rotate-mib", args->rotate_mib, "rotate packed weights over this much memory")
      ->capture_default_str();
  linear->add_flag("--no-baseline", args->no_baseline, "skip the oneDNN bf16 baseline");
  linear->add_option("--csv", args->csv, "CSV output (empty: none)")->capture_default_str();
  linear->add_option("--png", args->png, "PNG plot of GB/s and GFLOP/s against M (needs matplotlib)");
  linear->add_option("--seed", args->seed, "seed of the random weights and inputs")->capture_default_str();
  linear->callback([args] { run(*args); });
}

}  // namespace ark::tools
