// The bf16 baseline that ark's quantized GEMMs are compared against in the same run: oneDNN's matmul on
// unquantized bf16 weights (reordered once into oneDNN's preferred layout, as a framework would), fp32
// output.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace ark::bench {

class Bf16Baseline {
 public:
  // y[M][N] = x[M][K] · W[K][N], x and W random bf16 (seeded by `seed`), `threads` OpenMP threads.
  // Throws ark::Error when oneDNN was not built in or refuses the problem.
  Bf16Baseline(int64_t m, int64_t n, int64_t k, int threads, uint64_t seed);
  ~Bf16Baseline();
  Bf16Baseline(const Bf16Baseline&) = delete;
  Bf16Baseline& operator=(const Bf16Baseline&) = delete;

  // Runs the product once (synchronously).
  void run();

  // Whether this build has oneDNN; when false the constructor throws.
  static bool available();
  // "oneDNN <version> matmul bf16:bf16:f32 (<implementation name>)".
  std::string description() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ark::bench
