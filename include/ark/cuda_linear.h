// CudaQuantLinear: one weight-only quantized linear layer on an NVIDIA GPU, y = x · Wᵀ + b, with W held packed
// (2, 3, 4 or 8 bits) in device memory and dequantized inside the kernels. docs/CUDA.md describes the kernels.
//
// The same four-step contract as ark::QuantLinear (ark/quant_linear.h), over the same canonical weight:
//   1. construct from a spec (shape, bits, group size, options);
//   2. load the canonical QuantizedWeight (or the on-disk checkpoint tensors, decoded by ark/format.h) and the
//      bias, from host memory;
//   3. post_init(): pack once into the CUDA layout (src/kernels/cuda/cuda_layout.h) and copy it to the current
//      device; act-order is resolved here;
//   4. forward(x, y, M, dtype, stream, workspace) on device pointers, on the caller's stream, any number of
//      times. forward allocates nothing and synchronises nothing, so it can be captured in a CUDA graph.
//
// Workspace. The split-K partial sums (small M) and the dequantized weight chunk (large M) need scratch:
// workspace_bytes(M) says how much. Pass it per call (torch allocates it from its caching allocator); or set
// spec.max_m and post_init allocates one for every M <= max_m, used when the call passes none. Concurrent
// forwards on different streams must each pass their own workspace (the layer's own one is shared).
//
// This header needs no CUDA headers: streams are taken as CUstream_st*, which is what cudaStream_t is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "ark/dtype.h"
#include "ark/error.h"
#include "ark/quantized_weight.h"
#include "ark/tensor.h"

struct CUstream_st;

namespace ark {

// Which kernel family a forward runs. kAuto: the tensor-core split-K kernel below large_m_threshold (the
// streaming gemv kernel instead where it measured faster: M <= 32 on large int4 layers), dequantize + cuBLAS
// at or above it. The others force one family for every M (tests and benchmarks; gemv takes M <= 32 and runs
// mma above).
enum class CudaKernel : uint8_t { kAuto, kMma, kDequantGemm, kSimt, kGemv, kWgmma };

std::string_view cuda_kernel_name(CudaKernel k);      // "auto", "mma", "dequant_gemm", "simt", "gemv", "wgmma"
CudaKernel parse_cuda_kernel(std::string_view name);  // throws ark::Error on an unknown name

struct CudaLinearSpec {
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  int bits = 4;              // 2, 3, 4 or 8
  int64_t group_size = 128;  // > 0, or -1 for one group over all of K
  bool sym = true;           // informative: zero points are loaded either way
  bool bias = false;         // a bias of N values must be loaded before post_init
  bool act_order = false;    // g_idx is expected; resolved at pack time
  // M at or above this runs dequantize-then-cuBLAS (kAuto); below it, gemv (small M) or the tensor-core
  // kernel.
  int64_t large_m_threshold = 256;
  CudaKernel kernel = CudaKernel::kAuto;
  int64_t max_m = 0;  // > 0: post_init allocates a workspace for every M <= max_m (see above)
  // > 0: the mma (and gemv) kernel's split-K factor (rounded to one that divides K's chunks evenly; the cost
  // model's choice when it does not fit shared memory); 0: the cost model. For measuring the planner.
  int mma_splits = 0;
  // > 0: the gemv kernel's warps along N per block (1, 2, 4 or 8, each with 4 n8 tiles; the rest of the 8
  // warps split K); 0: the cost model. For measuring the planner.
  int gemv_block_tiles = 0;
  int device = -1;    // CUDA device to pack on; -1: the current device
};

class CudaQuantLinear {
 public:
  // Validates the spec; throws ark::Error naming the bad field. Touches no GPU.
  explicit CudaQuantLinear(CudaLinearSpec spec);
  ~CudaQuantLinear();
  CudaQuantLinear(CudaQuantLinear&&) noexcept;
  CudaQuantLinear& operator=(CudaQuantLinear&&) noexcept;
  CudaQuantLinear(const CudaQuantLinear&) = delete;
  CudaQuantLinear& operator=(const CudaQuantLinear&) = delete;

  const CudaLinearSpec& spec() const;

  void load(QuantizedWeight weight);  // checks it against the spec and validates it
  void load_checkpoint(PackingLayout layout, const TensorView& qweight, const TensorView& qzeros,
                       const TensorView& scales, const TensorView* g_idx = nullptr);  // host tensors
  void load_bias(const void* bias, DType dtype, int64_t n);  // host memory: F32, BF16 or F16

  // Packs on the host, copies to the device, resolves the kernels; throws ark::Error on a missing weight or a
  // CUDA failure (no device, out of memory).
  void post_init();
  bool ready() const;

  // Bytes of workspace forward(M) needs (0 when none).
  size_t workspace_bytes(int64_t M) const;
  // y[M][N] = x[M][K] · Wᵀ + bias; x and y device pointers, row-major and contiguous, dtype F16 or BF16; runs
  // on `stream` (null: the legacy default stream). workspace: device memory of workspace_bytes(M) bytes, or
  // null to use the layer's own (spec.max_m). Throws ark::Error on bad arguments or a failed launch; M == 0
  // does nothing.
  void forward(const void* x, void* y, int64_t M, DType dtype, CUstream_st* stream, void* workspace = nullptr,
               size_t workspace_size = 0) const;

  // Sets spec().mma_splits after construction (benchmarks sweep it on one packed layer); throws on < 0.
  void set_mma_splits(int splits);
  // Sets spec().gemv_block_tiles (0, 1, 2, 4 or 8); throws on anything else.
  void set_gemv_block_tiles(int tiles);

  std::string kernel_name(int64_t M) const;  // e.g. "mma_w4_m16_splitk8" (after post_init)
  std::string describe() const;
  size_t packed_bytes() const;  // device bytes of the packed weight (codes, scales, zeros, tables, bias)

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Whether this build has the CUDA backend and a usable device (for tests and the CLI to skip cleanly).
bool cuda_available();

}  // namespace ark
