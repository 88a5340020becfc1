// The C-style launch layer of the CUDA backend: plain structs in, status codes out, no exceptions, so the
// kernels can be driven from any binding; CudaQuantLinear (src/kernels/cuda/cuda_linear.cpp) turns a non-zero
// status into ark::Error. Nothing here allocates device memory: scratch comes from the caller's workspace.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_layout.h"

struct CUstream_st;

namespace ark::cuda {

enum Status : int {
  kOk = 0,
  kBadArgument = 1,        // a pointer, size or dtype the launch cannot take
  kWorkspaceTooSmall = 2,  // the caller's workspace is below Plan::workspace_bytes
  kLaunchFailed = 3,       // a kernel launch returned an error (cudaGetLastError)
  kCublasFailed = 4,       // cuBLASLt found no algorithm or failed
};
const char* status_message(int status);

enum class Family : int { kMma, kDequantGemm, kSimt };

// How one forward of M rows runs: resolved on the host from the layer's sizes and the device's SM count.
struct Plan {
  Family family = Family::kMma;
  int m_tiles = 1;             // mma: m16 tiles per block (1 or 4)
  int splits = 1;              // mma: split-K factor (fp32 partials in the workspace when > 1)
  int chunks_per_split = 1;    // mma: 128-k chunks per split
  size_t smem_bytes = 0;       // mma: dynamic shared memory (staged activations)
  int64_t rows_per_chunk = 0;  // dequant_gemm: weight rows dequantized per cuBLAS call
  bool gather = false;         // dequant_gemm: x is reordered/padded into the workspace first
  size_t workspace_bytes = 0;
};

inline constexpr size_t kMaxSmemBytes = 64 * 1024;           // per block, opted into at prepare time
inline constexpr size_t kDequantChunkBytes = 64u << 20;      // dequantized weight rows per cuBLAS call
inline constexpr size_t kCublasWorkspaceBytes = 32u << 20;

Plan make_plan(const PackedView& w, int64_t M, Family family, int sm_count);

// Once per device, before the first launch: raises the shared-memory limit of the mma kernels.
int prepare_kernels();

// y = x · Wᵀ + bias for M rows; x, y, workspace are device pointers; bf16 selects BF16 over F16.
// cublaslt: a cublasLtHandle_t (needed by Family::kDequantGemm only).
int launch_linear(const PackedView& w, const Plan& plan, const void* x, void* y, int64_t M, bool bf16,
                  void* workspace, size_t workspace_size, CUstream_st* stream, void* cublaslt);

// The pieces, launched by launch_linear (defined in linear_mma.cu and linear_simple.cu).
int launch_mma(const PackedView& w, const Plan& plan, const void* x, void* y, int64_t M, bool bf16,
               float* partial, CUstream_st* stream);
int launch_reduce(const PackedView& w, const float* partial, int splits, void* y, int64_t M, bool bf16,
                  CUstream_st* stream);
int launch_simt(const PackedView& w, const void* x, void* y, int64_t M, bool bf16, CUstream_st* stream);
int launch_gather(const PackedView& w, const void* x, void* xg, int64_t M, bool bf16, CUstream_st* stream);
int launch_dequant(const PackedView& w, int64_t n0, int64_t rows, void* wt, bool bf16, CUstream_st* stream);
int launch_bias_fill(const PackedView& w, void* y, int64_t M, bool bf16, CUstream_st* stream);

}  // namespace ark::cuda
