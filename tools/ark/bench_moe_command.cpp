// `ark bench moe`: the fused QuantMoE against measured bandwidth and a per-expert QuantLinear loop (bench/).
#include <iostream>
#include <memory>
#include <string>

#include "../../bench/linear_bench.h"
#include "../../bench/moe_bench.h"
#include "ark/error.h"
#include "commands.h"

namespace ark::tools {

namespace {

struct BenchMoeArgs {
  bench::MoeBenchOptions o;
  std::string tokens = "1,4,16,64,256,1024";
  std::string mode = "auto";
  bool no_baseline = false;
};

}  // namespace

void add_bench_moe_command(CLI::App& app) {
  CLI::App* bench = app.get_subcommand("bench");  // registered by add_bench_command
  auto a = std::make_shared<BenchMoeArgs>();
  a->o.csv_path = "bench_moe.csv";
  CLI::App* c = bench->add_subcommand(
      "moe",
      "Time the fused QuantMoE per token count T, against bandwidth and a per-expert QuantLinear loop");
  c->add_option("--hidden", a->o.hidden, "hidden size H")->capture_default_str();
  c->add_option("--intermediate", a->o.intermediate, "expert intermediate size I")->capture_default_str();
  c->add_option("--experts", a->o.experts, "number of experts E")->capture_default_str();
  c->add_option("--top-k", a->o.top_k, "experts per token")->capture_default_str();
  c->add_option("--scheme", a->o.scheme, "int<bits>-g<group>[-sym|-asym] of every expert linear")
      ->capture_default_str();
  c->add_option("--mode", a->mode, "compute mode: auto, exact, int8")->capture_default_str();
  c->add_option(
       "--threshold", a->o.kernel_switch_threshold,
       "rows at which an expert switches from the decode kernel to the GEMM (0: QuantLinear's default)")
      ->capture_default_str();
  c->add_option("--tokens", a->tokens, "token counts T, comma-separated")->capture_default_str();
  c->add_option("--threads", a->o.threads, "threads (0: all)")->capture_default_str();
  c->add_option("--layers", a->o.layers, "MoE layers rotated (0: enough for --rotate-mib, at least 3)")
      ->capture_default_str();
  c->add_option("--rotate-mib", a->o.rotate_mib, "rotate packed weights over this much memory")
      ->capture_default_str();
  c->add_option("--min-time", a->o.min_seconds, "seconds per T and method (median of the calls)")
      ->capture_default_str();
  c->add_flag("--no-baseline", a->no_baseline, "skip the per-expert QuantLinear baseline");
  c->add_option("--bandwidth-mib", a->o.bandwidth_mib, "buffer for the bandwidth measurement")
      ->capture_default_str();
  c->add_option("--csv", a->o.csv_path, "CSV output (empty: none)")->capture_default_str();
  c->add_option("--seed", a->o.seed, "seed of the random weights, inputs and routing")->capture_default_str();
  c->callback([a] {
    bench::MoeBenchOptions o = a->o;
    o.tokens = bench::parse_batch(a->tokens);
    o.mode = parse_compute_mode(a->mode);
    o.baseline = !a->no_baseline;
    ARK_CHECK(o.threads >= 0, "--threads must be >= 0 (0: all), got ", o.threads);
    ARK_CHECK(o.layers >= 0, "--layers must be >= 0, got ", o.layers);
    ARK_CHECK(o.min_seconds > 0, "--min-time must be > 0, got ", o.min_seconds);
    bench::run_moe_bench(o);
    if (!o.csv_path.empty()) std::cout << "wrote " << o.csv_path << "\n";
  });
}

}  // namespace ark::tools
