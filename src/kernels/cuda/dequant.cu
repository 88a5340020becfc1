// The large-M path's first pass: packed weight rows to fp16/bf16 rows (row-major, packed-K order) for cuBLAS.
// It is a stream: read b/8 bytes per weight, write 2, so it should run at DRAM bandwidth. Phase 1 computed
// each output element on its own through packed_weight (five dependent loads and a 2-byte store per element)
// and ran about ten times slower than its bytes. Here one warp takes one (n8 tile, chunk): each lane loads
// its codes with one or two wide loads (the layout gives a lane `bits` consecutive words), reads the scale
// and zero of its row once per k32 block, writes its 32 values into a small shared-memory tile, and the warp
// then stores the tile's 8 rows x 256 bytes with 16-byte stores, every row contiguous.
//
// Values: s * (q - z) in fp32, rounded once to T (the rounding the large-M tolerance of docs/CUDA.md allows).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/launch.h"

namespace ark::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRowHalves = kChunkK + 8;  // padded shared row: the 4 lanes of a row land on different banks

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <typename T, int kBits>
__global__ void __launch_bounds__(kWarps * 32) dequant_kernel(PackedView w, int64_t n0, int64_t rows, T* wt) {
  __shared__ __align__(16) T tile_s[kWarps][kTileRows * kRowHalves];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  const int64_t tiles = (rows + kTileRows - 1) / kTileRows;
  if (item >= tiles * w.chunks) return;  // warp-uniform; no block barrier below
  const int64_t tile = n0 / kTileRows + item / w.chunks, c = item % w.chunks;

  uint32_t words[kBits];
  const uint32_t* src = w.codes + ((tile * w.chunks + c) * kWarpLanes + lane) * kBits;
  if constexpr (kBits % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kBits; i += 4) {
      const uint4 v = __ldg(reinterpret_cast<const uint4*>(src + i));
      words[i] = v.x, words[i + 1] = v.y, words[i + 2] = v.z, words[i + 3] = v.w;
    }
  } else if constexpr (kBits == 2) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(src));
    words[0] = v.x, words[1] = v.y;
  } else {
#pragma unroll
    for (int i = 0; i < kBits; ++i) words[i] = __ldg(src + i);
  }

  // Lane l holds row l / 4; code i of block j is at k = 32 j + 8 (i % 4) + 2 (l % 4) + i / 4, so codes i and
  // i + 4 are the adjacent pair (k, k + 1): one 4-byte shared store.
  const int r = lane / 4;
  T* row_s = tile_s[warp] + r * kRowHalves;
#pragma unroll
  for (int j = 0; j < kChunkK / kBlockK; ++j) {
    const int64_t mi = (tile * w.groups + w.block_group[c * (kChunkK / kBlockK) + j]) * kTileRows + r;
    const float s = w.scales[mi];
    const int z = w.zeros[mi];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int lo = static_cast<int>(extract_code(words, 8 * kBits * j + kBits * i, kBits));
      const int hi = static_cast<int>(extract_code(words, 8 * kBits * j + kBits * (i + 4), kBits));
      const int k = kBlockK * j + 8 * i + 2 * (lane % 4);
      *reinterpret_cast<uint32_t*>(row_s + k) =
          pack2<T>(s * static_cast<float>(lo - z), s * static_cast<float>(hi - z));
    }
  }
  __syncwarp();
  // 8 rows x 16 pieces of 16 bytes; rows past the chunk's last row are not stored.
  const int64_t kpn = w.k_packed();
#pragma unroll
  for (int p = lane; p < kTileRows * (kChunkK / 8); p += 32) {
    const int pr = p / (kChunkK / 8), v = p % (kChunkK / 8);
    const int64_t row = tile * kTileRows + pr - n0;
    if (row >= rows) continue;
    *reinterpret_cast<uint4*>(wt + row * kpn + c * kChunkK + v * 8) =
        *reinterpret_cast<const uint4*>(tile_s[warp] + pr * kRowHalves + v * 8);
  }
}

template <typename T>
int launch_t(const PackedView& w, int64_t n0, int64_t rows, void* wt, cudaStream_t s) {
  const int64_t items = (rows + kTileRows - 1) / kTileRows * w.chunks;
  const unsigned blocks = static_cast<unsigned>((items + kWarps - 1) / kWarps);
  T* out = static_cast<T*>(wt);
  switch (w.bits) {
    case 2:
      dequant_kernel<T, 2><<<blocks, kWarps * 32, 0, s>>>(w, n0, rows, out);
      break;
    case 3:
      dequant_kernel<T, 3><<<blocks, kWarps * 32, 0, s>>>(w, n0, rows, out);
      break;
    case 4:
      dequant_kernel<T, 4><<<blocks, kWarps * 32, 0, s>>>(w, n0, rows, out);
      break;
    case 8:
      dequant_kernel<T, 8><<<blocks, kWarps * 32, 0, s>>>(w, n0, rows, out);
      break;
    default:
      return kBadArgument;
  }
  return cudaGetLastError() == cudaSuccess ? kOk : kLaunchFailed;
}

}  // namespace

int launch_dequant(const PackedView& w, int64_t n0, int64_t rows, void* wt, bool bf16, CUstream_st* stream) {
  if (n0 % kTileRows != 0 || rows <= 0) return kBadArgument;
  return bf16 ? launch_t<__nv_bfloat16>(w, n0, rows, wt, stream) : launch_t<__half>(w, n0, rows, wt, stream);
}

}  // namespace ark::cuda
