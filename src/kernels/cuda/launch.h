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
  int m_tiles = 1;             // mma: m16 tiles per block (1, 2 or 4)
  int splits = 1;              // mma: split-K factor (fp32 partials in the workspace when > 1)
  int chunks_per_split = 1;    // mma: 128-k chunks per split
  size_t smem_bytes = 0;       // mma: dynamic shared memory (the cp.async ring and the block-group table)
  int64_t rows_per_chunk = 0;  // dequant_gemm: weight rows dequantized per cuBLAS call
  bool gather = false;         // x is reordered/padded into packed-K order in the workspace first
  size_t partial_bytes = 0;    // mma: split-K partials at the start of the workspace
  size_t workspace_bytes = 0;
};

// What the planner needs to know of the device (read once at post_init).
struct DeviceInfo {
  int sm_count = 1;
  int smem_per_sm = 0;     // bytes usable by blocks of one SM
  int smem_per_block = 0;  // the opt-in maximum of one block
};

// n8 tiles per warp of the mma kernel's 16-row blocks: 4 (default) gives 2 blocks of 8 warps per SM with more
// weight bytes per instruction; 2 gives 3 blocks per SM with more warps to hide latency (a build-time knob
// for measuring the two on the device; blocks of 32 or 64 rows always take 2).
#ifndef ARK_MMA_DECODE_TILES
#define ARK_MMA_DECODE_TILES 4
#endif
// n8 tiles per mma block (8 warps) and the blocks per SM its launch bounds and shared memory allow at most.
constexpr int mma_block_tiles(int m_tiles) {
  return m_tiles == 1 ? 8 * ARK_MMA_DECODE_TILES : 16;
}
constexpr int mma_max_blocks_per_sm(int m_tiles) {
  return m_tiles == 1 && ARK_MMA_DECODE_TILES == 2 ? 3 : 2;
}
// Depth of the mma kernel's cp.async ring: 4 stages (3 chunks in flight while one is computed); 3 for 64-row
// blocks, whose larger x stages would otherwise leave room for only one block per SM.
constexpr int mma_stages(int m_tiles) {
  return m_tiles == 4 ? 3 : 4;
}  // linear_mma.cu: kStages
inline constexpr size_t kDequantChunkBytes = 64u << 20;  // dequantized weight rows per cuBLAS call
inline constexpr size_t kCublasWorkspaceBytes = 32u << 20;

// forced_splits > 0: the mma split-K factor nearest it that divides the chunks evenly, when it fits.
Plan make_plan(const PackedView& w, int64_t M, Family family, const DeviceInfo& dev, int forced_splits = 0);

// Shared memory of one stage of the mma ring (linear_mma.cu's StageLayout).
size_t mma_stage_bytes(int bits, int m_tiles);

// Once per device, before the first launch: raises the shared-memory limit of the mma kernels.
int prepare_kernels(int max_smem_per_block);

// cuBLASLt algorithms of one layer, looked up once per (dtype, M bucket) and kept: the heuristic is a host
// call of tens of microseconds. Fixed capacity, filled on first use under a lock; hits read without one.
struct GemmAlgoCache;
GemmAlgoCache* create_algo_cache();
void destroy_algo_cache(GemmAlgoCache* cache);

// y = x · Wᵀ + bias for M rows; x, y, workspace are device pointers; bf16 selects BF16 over F16.
// cublaslt: a cublasLtHandle_t (needed by Family::kDequantGemm only).
int launch_linear(const PackedView& w, const Plan& plan, const void* x, void* y, int64_t M, bool bf16,
                  void* workspace, size_t workspace_size, CUstream_st* stream, void* cublaslt,
                  GemmAlgoCache* algos);

// The pieces, launched by launch_linear (defined in linear_mma.cu and linear_simple.cu).
// x_stride: elements between rows of x; x_direct: x is the caller's (K % 8 == 0, 16-byte aligned, identity
// order: packed positions past K read as zero) rather than the gathered copy (x_stride = packed K).
int launch_mma(const PackedView& w, const Plan& plan, const void* x, int64_t x_stride, bool x_direct, void* y,
               int64_t M, bool bf16, float* partial, CUstream_st* stream);
int launch_reduce(const PackedView& w, const float* partial, int splits, void* y, int64_t M, bool bf16,
                  CUstream_st* stream);
int launch_simt(const PackedView& w, const void* x, void* y, int64_t M, bool bf16, CUstream_st* stream);
int launch_gather(const PackedView& w, const void* x, void* xg, int64_t M, bool bf16, CUstream_st* stream);
int launch_dequant(const PackedView& w, int64_t n0, int64_t rows, void* wt, bool bf16, CUstream_st* stream);
int launch_bias_fill(const PackedView& w, void* y, int64_t M, bool bf16, CUstream_st* stream);

}  // namespace ark::cuda
