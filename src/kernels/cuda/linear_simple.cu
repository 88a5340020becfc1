// The plain CUDA kernels: each reads the packed layout one element at a time through packed_code /
// packed_weight (cuda_layout.h, the definition the host tests check), so each is obviously right given that
// definition.
//   simt:     one warp per output, fp32 sum of x * s * (q - z); the fallback for every combination and the
//             device-side cross-check of the tensor-core kernel.
//   reduce:   sums the split-K fp32 partials in split order, adds the bias, rounds once.
//   gather:   x reordered and padded into packed-K order (large-M path, when the reorder is not the identity).
//   bias_fill: y rows set to the bias, so cuBLAS can add it with beta = 1.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/launch.h"

namespace ark::cuda {
namespace {

__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

constexpr int kSimtWarps = 8;

template <typename T>
__global__ void __launch_bounds__(kSimtWarps * 32) simt_kernel(PackedView w, const T* x, T* y) {
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kSimtWarps + threadIdx.x / 32;
  const int64_t m = blockIdx.y;
  if (n >= w.n) return;
  float acc = 0.0f;
  for (int64_t kp = lane; kp < w.k_packed(); kp += 32) {
    const int64_t src = source_k(w, kp);
    if (src >= 0) acc += to_float(x[m * w.k + src]) * packed_weight(w, n, kp);
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (lane == 0) y[m * w.n + n] = from_float<T>(acc + (w.bias ? w.bias[n] : 0.0f));
}

template <typename T>
__global__ void reduce_kernel(PackedView w, const float* partial, int splits, T* y, int64_t M) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= M * w.n) return;
  float acc = 0.0f;
  for (int s = 0; s < splits; ++s) acc += partial[s * M * w.n + i];
  y[i] = from_float<T>(acc + (w.bias ? w.bias[i % w.n] : 0.0f));
}

template <typename T>
__global__ void gather_kernel(PackedView w, const T* x, T* xg, int64_t M) {
  const int64_t kpn = w.k_packed();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= M * kpn) return;
  const int64_t m = i / kpn, kp = i % kpn;
  const int64_t src = source_k(w, kp);
  xg[i] = src >= 0 ? x[m * w.k + src] : from_float<T>(0.0f);
}

template <typename T>
__global__ void bias_fill_kernel(PackedView w, T* y, int64_t M) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= M * w.n) return;
  y[i] = from_float<T>(w.bias[i % w.n]);
}

unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }
int last_status() { return cudaGetLastError() == cudaSuccess ? kOk : kLaunchFailed; }

}  // namespace

int launch_simt(const PackedView& w, const void* x, void* y, int64_t M, bool bf16, CUstream_st* stream) {
  if (M > 65535) return kBadArgument;  // grid.y limit; the simt kernel is a test and fallback path
  const dim3 grid(blocks_for(w.n, kSimtWarps), static_cast<unsigned>(M));
  if (bf16)
    simt_kernel<__nv_bfloat16><<<grid, kSimtWarps * 32, 0, stream>>>(
        w, static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y));
  else
    simt_kernel<__half><<<grid, kSimtWarps * 32, 0, stream>>>(w, static_cast<const __half*>(x),
                                                               static_cast<__half*>(y));
  return last_status();
}

int launch_reduce(const PackedView& w, const float* partial, int splits, void* y, int64_t M, bool bf16,
                  CUstream_st* stream) {
  const unsigned blocks = blocks_for(M * w.n, 256);
  if (bf16)
    reduce_kernel<<<blocks, 256, 0, stream>>>(w, partial, splits, static_cast<__nv_bfloat16*>(y), M);
  else
    reduce_kernel<<<blocks, 256, 0, stream>>>(w, partial, splits, static_cast<__half*>(y), M);
  return last_status();
}

int launch_gather(const PackedView& w, const void* x, void* xg, int64_t M, bool bf16, CUstream_st* stream) {
  const unsigned blocks = blocks_for(M * w.k_packed(), 256);
  if (bf16)
    gather_kernel<<<blocks, 256, 0, stream>>>(w, static_cast<const __nv_bfloat16*>(x),
                                               static_cast<__nv_bfloat16*>(xg), M);
  else
    gather_kernel<<<blocks, 256, 0, stream>>>(w, static_cast<const __half*>(x), static_cast<__half*>(xg), M);
  return last_status();
}

int launch_bias_fill(const PackedView& w, void* y, int64_t M, bool bf16, CUstream_st* stream) {
  const unsigned blocks = blocks_for(M * w.n, 256);
  if (bf16)
    bias_fill_kernel<<<blocks, 256, 0, stream>>>(w, static_cast<__nv_bfloat16*>(y), M);
  else
    bias_fill_kernel<<<blocks, 256, 0, stream>>>(w, static_cast<__half*>(y), M);
  return last_status();
}

}  // namespace ark::cuda
