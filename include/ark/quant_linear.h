// QuantLinear: one weight-only quantized linear layer, y = x · Wᵀ + b, with W held packed (2, 3, 4 or 8 bits)
// and dequantized on the fly by CPU kernels.
//
// The contract has four steps, as in AutoRound's own QuantLinear modules:
//   1. construct from a spec (shape, bits, group size, options);
//   2. load the state: the canonical QuantizedWeight (or on-disk checkpoint tensors, decoded by format.h);
//   3. post_init(): repack once into the kernel layout (src/linear/packed_weight.h) and pick the kernels;
//   4. forward(x, y, M) any number of times, from any number of threads at once.
//
// Two regimes: M < kernel_switch_threshold runs a decode kernel that streams each packed byte once; larger M
// runs a blocked GEMM that reuses each dequantized weight tile across rows. Two compute modes
// (docs/KERNELS.md gives their error bounds): exact (weights dequantized to fp32, fp32 accumulation) and int8
// (activations quantized per row and per group to int8, integer dot products, zero points corrected through
// activation sums).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ark/dtype.h"
#include "ark/error.h"
#include "ark/quantized_weight.h"
#include "ark/tensor.h"

namespace ark {

enum class ComputeMode : uint8_t {
  kAuto,   // the fastest mode whose error bound holds on this ISA (see describe())
  kExact,  // dequantize to fp32, accumulate in fp32
  kInt8,   // int8 activations per row and group, int32 dot products
};

std::string_view compute_mode_name(ComputeMode mode);   // "auto", "exact", "int8"
ComputeMode parse_compute_mode(std::string_view name);  // throws ark::Error on an unknown name

struct QuantLinearSpec {
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  int bits = 4;              // 2, 3, 4 or 8
  int64_t group_size = 128;  // > 0, or -1 for one group over all of K (per-channel)
  bool sym = true;           // informative: zero points are loaded either way
  bool bias = false;         // a bias of N floats must be loaded before post_init
  bool act_order = false;    // g_idx is expected (desc_act); resolved at pack time by permuting K once
  int64_t kernel_switch_threshold = 128;  // M below this runs the decode kernels, M at or above it the GEMM
  ComputeMode mode = ComputeMode::kAuto;
  // Highest ISA level the kernels may use: "" for the process's active level (ARK_ISA), or one of ref, avx2,
  // avx512, avx512_vnni, avx512_bf16, amx; always capped by what the machine supports. Tests use it to run
  // every lower path in one process.
  std::string max_isa;
  // Threads one forward may use: 0 for every thread of the default pool (ark/thread_pool.h), else at most
  // that.
  int num_threads = 0;
};

class QuantLinear {
 public:
  // Validates the spec (shape, bits, group size, threshold, max_isa); throws ark::Error naming the bad field.
  explicit QuantLinear(QuantLinearSpec spec);
  ~QuantLinear();
  QuantLinear(QuantLinear&&) noexcept;
  QuantLinear& operator=(QuantLinear&&) noexcept;
  QuantLinear(const QuantLinear&) = delete;
  QuantLinear& operator=(const QuantLinear&) = delete;

  const QuantLinearSpec& spec() const;

  // Loads the canonical weight; checks it against the spec (shape, bits, group size, g_idx presence) and
  // validates it. Invalidates an earlier post_init.
  void load(QuantizedWeight weight);
  // Decodes a layer's checkpoint tensors as they are on disk (ark/format.h: qweight, qzeros, scales and the
  // optional g_idx of a GPTQ v1/v2 or AWQ layout) with the spec's bits and group size, then load()s the
  // result.
  void load_checkpoint(PackingLayout layout, const TensorView& qweight, const TensorView& qzeros,
                       const TensorView& scales, const TensorView* g_idx = nullptr);
  // Loads the bias (N values; fp32, or bf16/fp16 converted exactly).
  void load_bias(const void* bias, DType dtype, int64_t n);

  // Repacks the loaded weight into the kernel layout (one packed copy; the canonical weight is released) and
  // resolves kernels, mode and scratch sizes. Throws if no weight (or a promised bias) was loaded.
  void post_init();
  bool ready() const;

  // y[M][N] = x[M][K] · Wᵀ + bias, row-major and contiguous, x and y of the same dtype (F32, BF16 or F16).
  // Thread-safe: concurrent calls on one layer are allowed and give identical results. Throws ark::Error on
  // bad arguments (null pointers, M < 0, unsupported dtype, not post_init'ed); M == 0 does nothing.
  void forward(const void* x, void* y, int64_t M, DType dtype) const;
  void forward(const float* x, float* y, int64_t M) const { forward(x, y, M, DType::F32); }

  // ISA level, the kernel of each regime, the compute mode and why it was chosen, packed size.
  std::string describe() const;
  // Name of the kernel a forward of M rows runs (post_init'ed layers only), e.g. "gemv_qd8_w4_16x32__avx512vnni".
  // Kernels named *bf16* round their operands to bf16 (exact mode's large-M path; docs/KERNELS.md).
  std::string kernel_name(int64_t M) const;
  // Bytes held by the packed layer (codes, scales, zeros, tables, bias).
  size_t packed_bytes() const;
  QuantizedWeight unpack() const;  // packed weight back to canonical form (src/linear/quant_linear_export.cpp)

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ark
