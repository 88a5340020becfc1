// The stream-K schedule's device side, shared by the warp-specialized wgmma kernels (linear_wgmma.cu:
// wgmma_ws_kernel; linear_wgmma_wide.cu: wgmma_wide_kernel): which piece of work a block runs next, and the
// fix-up launch that sums the pieces of the tiles cut between blocks. The schedule itself (WgmmaStreamK,
// wgmma_sk_piece, wgmma_sk_slot_of) is host-and-device code in launch.h. Blocks of kTiles n8 tiles (the wide
// kernel: 32, its tall form and the warp-specialized kernel: 16) times kRows rows of x.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/mma_fragment.cuh"

namespace ark::cuda::wsk {

// One piece of a block's work: chunks c0 .. c0 + n - 1 of the output tile at x row m0, weight tile tile0;
// out < 0: the whole tile (or a split-K plane), written with its bias; 0 or 1: a stream-K piece, written
// in fp32 to the block's slot `out` (0: the piece that starts the block's stream-K share, 1: the one that
// ends it).
struct Piece {
  int m0, tile0, c0, n, out;
};

// Piece j of this block, false past the last: the grid's one (blocks == 0: x-row tile blockIdx.x, weight
// range blockIdx.y, split blockIdx.z), or the stream-K schedule's (launch.h: wgmma_sk_piece). A pure
// function of j and the launch, so that producer and consumers walk the same sequence and the consumers can
// work it out again for the epilogue instead of keeping it in registers through the main loop.
template <int kRows, int kTiles>
__device__ __forceinline__ bool piece_of(const WgmmaStreamK& sk, const PackedView& w, int cps, int j,
                                         Piece& pc) {
  if (sk.blocks == 0) {
    if (j > 0) return false;
    pc.m0 = blockIdx.x * kRows;
    pc.tile0 = blockIdx.y * kTiles;
    pc.c0 = blockIdx.z * cps;
    pc.n = static_cast<int>(min(static_cast<int64_t>(cps), w.chunks - pc.c0));
    pc.out = -1;
    return true;
  }
  WgmmaPiece p;
  if (!wgmma_sk_piece(sk, blockIdx.x, j, p)) return false;
  pc.m0 = (p.tile % sk.m_tiles) * kRows;
  pc.tile0 = (p.tile / sk.m_tiles) * kTiles;
  pc.c0 = p.c0;
  pc.n = p.n;
  pc.out = p.out;
  return true;
}

// A whole tile's outputs of one 64-row weight set: acc holds kRows / 2 fp32, d[4i + e] being weight row
// n_base + 8 (e / 2) and x row m0 + 8i + 2t + e % 2 (t = lane % 4); rows past M and columns past N are never
// written. plane null: acc + bias, rounded once to T, into y; else fp32 into that split-K plane (summed with
// the bias by the reduce launch).
template <typename T, int kRows>
__device__ __forceinline__ void store_set(const float* acc, const PackedView& w, int64_t n_base, int64_t m0,
                                          int t, int M, T* y, float* plane) {
  // The branch on plane stays outside the loops: with it inside, ptxas kept a predicate per element and the
  // wide kernel's code grew by a third (its 128-row form from 29 to 1951 PLOP3), 11-27% slower at
  // M = 128..512.
  if (plane) {
#pragma unroll
    for (int i = 0; i < kRows / 8; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t m = m0 + 8 * i + 2 * t + (e % 2), n = n_base + 8 * (e / 2);
        if (m < M && n < w.n) plane[m * w.n + n] = acc[4 * i + e];
      }
    return;
  }
#pragma unroll
  for (int i = 0; i < kRows / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t m = m0 + 8 * i + 2 * t + (e % 2), n = n_base + 8 * (e / 2);
      if (m < M && n < w.n)
        y[m * w.n + n] = frag::Traits<T>::from_float(acc[4 * i + e] + (w.bias ? w.bias[n] : 0.0f));
    }
}

// A stream-K piece's fp32 sums into the block's slot `out`, in fragment order: 16 bytes per consumer thread
// (ct: 0 .. 255) and (set s, x-row group i), so a warp's stores are whole 512-byte lines; the fix-up reads
// them the same way. acc: the set's kRows / 2 accumulators.
template <int kRows, int kTiles>
__device__ __forceinline__ void store_piece(float* partial, int out, int s, int ct, const float* acc) {
  float4* dst =
      reinterpret_cast<float4*>(partial + (2 * static_cast<int64_t>(blockIdx.x) + out) *
                                              static_cast<int64_t>(wgmma_sk_slot_floats(kRows, kTiles)));
#pragma unroll
  for (int i = 0; i < kRows / 8; ++i)
    dst[(s * (kRows / 8) + i) * 256 + ct] =
        make_float4(acc[4 * i], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3]);
}

// The stream-K fix-up: per stream-K tile cut between blocks, the pieces' fp32 sums added in block order
// (the first block's piece first), the bias added, one rounding to T, written to y with the main kernel's
// mapping of threads to outputs (consumer warpgroup c owns the 64-row sets 2c, 2c + 1 of 32-tile blocks, set
// c of 16-tile ones). Block (tile, set and x-row group): 256 threads, one float4 per piece; kTiles / 16 x
// kRows / 8 blocks per tile. Tiles one block covered were written by the main kernel; their fix-up blocks
// return at once.
template <typename T, int kRows, int kTiles>
__global__ void __launch_bounds__(256) wgmma_sk_fixup_kernel(PackedView w, const float* __restrict__ partial,
                                                             T* __restrict__ y, int M, WgmmaStreamK sk) {
  const int t = blockIdx.x, chunks = sk.chunks;
  const int b0 = wgmma_sk_block_of(sk, t * chunks), b1 = wgmma_sk_block_of(sk, (t + 1) * chunks - 1);
  if (b0 == b1) return;
  constexpr int kSets = kTiles / 16;
  const int pair = blockIdx.y, s = pair / (kRows / 8), i = pair % (kRows / 8);
  const int ct = threadIdx.x;
  float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int b = b0; b <= b1; ++b) {
    const int slot = wgmma_sk_slot_of(sk, t, b);
    if (slot < 0) continue;  // an empty share (more blocks than chunks)
    const float4 v = reinterpret_cast<const float4*>(
        partial + (2 * static_cast<int64_t>(b) + slot) *
                      static_cast<int64_t>(wgmma_sk_slot_floats(kRows, kTiles)))[pair * 256 + ct];
    sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
  }
  const int tile = sk.dp_waves * sk.blocks + t;
  const int64_t m0 = (tile % sk.m_tiles) * kRows, tile0 = (tile / sk.m_tiles) * kTiles;
  const int cw = ct / 128, warp = (ct / 32) % 4, lane = ct % 32, g = lane / 4, tq = lane % 4;
  const int64_t n_base = (tile0 + cw * 8 * kSets + 8 * s) * kTileRows + 16 * warp + g;
  const float v4[4] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const int64_t m = m0 + 8 * i + 2 * tq + (e % 2), n = n_base + 8 * (e / 2);
    if (m >= M || n >= w.n) continue;
    y[m * w.n + n] = frag::Traits<T>::from_float(v4[e] + (w.bias ? w.bias[n] : 0.0f));
  }
}

// Launches the fix-up of a stream-K plan's cut tiles on `s` (none when every tile was whole in one block).
template <typename T, int kRows, int kTiles>
cudaError_t launch_sk_fixup(const PackedView& w, const float* partial, void* y, int64_t M,
                            const WgmmaStreamK& sk, cudaStream_t s) {
  if (sk.sk_tiles == 0) return cudaSuccess;
  wgmma_sk_fixup_kernel<T, kRows, kTiles><<<dim3(sk.sk_tiles, kTiles / 16 * (kRows / 8)), 256, 0, s>>>(
      w, partial, static_cast<T*>(y), static_cast<int>(M), sk);
  return cudaGetLastError();
}

}  // namespace ark::cuda::wsk
