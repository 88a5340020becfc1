// `ark bench moe`: times QuantMoE::forward on one MoE layer's shape (default: Qwen3-30B-A3B, hidden 2048, 128
// experts, top-8, expert intermediate 768, int4 g128) for a list of token counts T, with random routing
// logits, and states each figure against limits measured in the same run: the bytes of expert weights the
// call actually touched (the experts that received a token) divided by the time, as a fraction of the
// measured memory read bandwidth; and the speedup over a per-expert baseline that runs the same packed layers
// one QuantLinear::forward at a time (gather the expert's rows, gate/up, silu·up, down, weighted add).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ark/quant_linear.h"

namespace ark::bench {

struct MoeBenchOptions {
  int64_t hidden = 2048;
  int64_t intermediate = 768;
  int experts = 128;
  int top_k = 8;
  std::string scheme = "int4-g128-sym";  // as `ark bench linear --schemes` takes them
  ComputeMode mode = ComputeMode::kAuto;
  int64_t kernel_switch_threshold = 0;  // 0: QuantLinear's default
  std::vector<int64_t> tokens = {1, 4, 16, 64, 256, 1024};
  int threads = 0;           // 0: every hardware thread
  int layers = 0;            // MoE layers rotated per call; 0: enough for rotate_mib
  double rotate_mib = 1024;  // packed weights rotated over at least this much memory (> last-level cache)
  double min_seconds = 0.5;  // per T and method: repeat until this much time has passed (at least 5 calls)
  bool baseline = true;
  double bandwidth_mib = 1024;
  std::string csv_path;  // empty: no CSV
  uint64_t seed = 1;
};

struct MoeBenchRow {
  int64_t tokens;
  double seconds;           // median time of one fused forward
  double touched_bytes;     // mean packed bytes of the experts the calls touched
  double pct_bandwidth;     // touched bytes / time against the measured read bandwidth
  double baseline_seconds;  // median per-expert QuantLinear loop, 0 when not measured
};

// Runs every T, printing a table as it goes; returns the rows (also written to options.csv_path).
std::vector<MoeBenchRow> run_moe_bench(const MoeBenchOptions& options);

}  // namespace ark::bench
