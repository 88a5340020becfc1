// A standalone driver for the MoE benchmark (bench/moe_bench.h), for hosts that lack the `ark` program's
// build dependencies (the device machine's Xeon: scripts/device_moe_bench.sh builds it with g++ alone).
// Same figures as `ark bench moe`; options: --threads N --tokens 1,4,... --layers N --min-time S --csv PATH
// --mode auto|exact|int8 --threshold ROWS --no-baseline.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../../bench/linear_bench.h"
#include "../../bench/moe_bench.h"
#include "ark/error.h"

int main(int argc, char** argv) {
  ark::bench::MoeBenchOptions o;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        ARK_CHECK(i + 1 < argc, a, " needs a value");
        return argv[++i];
      };
      if (a == "--threads")
        o.threads = std::stoi(value());
      else if (a == "--tokens")
        o.tokens = ark::bench::parse_batch(value());
      else if (a == "--layers")
        o.layers = std::stoi(value());
      else if (a == "--min-time")
        o.min_seconds = std::stod(value());
      else if (a == "--csv")
        o.csv_path = value();
      else if (a == "--mode")
        o.mode = ark::parse_compute_mode(value());
      else if (a == "--no-baseline")
        o.baseline = false;
      else if (a == "--threshold")
        o.kernel_switch_threshold = std::stoll(value());
      else
        ark::throw_error("unknown option ", a);
    }
    ark::bench::run_moe_bench(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
