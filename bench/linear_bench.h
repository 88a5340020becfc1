// `ark bench linear`: times QuantLinear::forward over layer shapes, batch sizes M and quantization schemes,
// and states each figure against limits measured in the same run: the memory read bandwidth (for decode,
// where the packed weights stream from DRAM) and a bf16 GEMM baseline on unquantized weights (oneDNN).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ark/quant_linear.h"

namespace ark::bench {

struct LinearShape {
  int64_t in_features;   // K
  int64_t out_features;  // N
};

struct LinearScheme {
  std::string name;  // "int4-g128-sym", "int2-g64", ...
  int bits;
  int64_t group_size;
  bool sym;
};

struct LinearBenchOptions {
  std::vector<LinearShape> shapes;
  std::vector<int64_t> batch;  // M values
  std::vector<LinearScheme> schemes;
  std::vector<ComputeMode> modes;  // each case runs once per mode
  int threads = 0;                 // 0: every hardware thread
  int64_t threshold = 128;         // the layers' kernel_switch_threshold (QuantLinearSpec's default)
  double min_seconds = 0.25;       // per case: repeat until this much time has passed (and at least 3 runs)
  double rotate_mib = 96;       // packed weights rotated over at least this much memory (> last-level cache)
  bool baseline = true;         // time oneDNN bf16 on the same shapes
  double bandwidth_mib = 1024;  // buffer for the read-bandwidth measurement
  std::string csv_path;         // empty: no CSV
  uint64_t seed = 1;
};

struct LinearBenchRow {
  LinearShape shape;
  int64_t m;
  std::string scheme;
  std::string mode;
  std::string kernel;
  double seconds;           // median time of one forward
  double weight_gbs;        // packed weight bytes / time
  double pct_bandwidth;     // weight_gbs / the read bandwidth probed right after the case
  double gflops;            // 2·M·N·K / time
  double baseline_seconds;  // oneDNN bf16, 0 when not measured
};

// Parses "896x896,4096x14336" (in x out), "1,2,512", "int4-g128-sym,int8-g128"
// (int<bits>-g<group>[-sym|-asym], asym when not said; g-1 for per-channel) and "exact,int8"; throws
// ark::Error naming the bad item.
std::vector<LinearShape> parse_shapes(const std::string& text);
std::vector<int64_t> parse_batch(const std::string& text);
std::vector<LinearScheme> parse_schemes(const std::string& text);
std::vector<ComputeMode> parse_modes(const std::string& text);

// Runs every case, printing a table as it goes; returns the rows (also written to options.csv_path).
std::vector<LinearBenchRow> run_linear_bench(const LinearBenchOptions& options);

}  // namespace ark::bench
