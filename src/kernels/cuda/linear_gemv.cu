// The streaming decode kernel (M <= 16): every warp streams its n8 tile's code words straight from global
// memory into registers, with no block barrier, no cp.async and no shared-memory copy of the weights.
//
// Why. The tensor-core split-K kernel (linear_mma.cu) moves weights through a shared-memory ring that all 8
// warps of a block fill and drain in step: per 128-k chunk a cp.async wait, a block barrier, shared loads and
// a chain of dependent mma. On the H200 a lone block took ~2.5x its instruction time per chunk and the
// 70B shapes reached 51-62% of the copy bandwidth at M = 1. Here nothing couples the warps while they stream:
// each lane loads its own `bits` words of a (tile, chunk) with 128-bit non-coherent loads that skip L1 (the
// weights are read once), keeps kStage chunks of loads in flight in one register buffer while it computes the
// other (double buffering), and never waits for another warp. The only barriers are one before streaming
// (x and the block-group table staged in shared memory) and one at the end (the K-split reduction).
//
// Block: 8 warps over `block_tiles` n8 tiles (1, 2, 4 or 8); the 8 / block_tiles warps of one tile split the
// block's chunk range between them (warp k takes chunks k, k + kw, ...: the warps of a tile read neighbouring
// 512-byte runs at the same time) and add their partial sums in shared memory in a fixed order at the end.
// Split-K across blocks (grid.y) writes fp32 partials, summed by launch_reduce in split order
// (deterministic).
//
// Arithmetic: the same as the tensor-core kernel. A lane's words are exactly its mma.sync m16n8k16 B
// fragments, dequantized to q - z exactly (cuda_layout.h, mma_fragment.cuh); x is staged once per block in
// shared memory in A-fragment order, so a lane reads the A registers of one k32 block (two k16 steps) with
// one 16-byte shared load per 8 rows of x; fp32 sums over a group, the fp32 scale applied once per group.
// The mma does the products for all M <= 16 rows at the cost of one, which a CUDA-core FMA version (one
// row per lane, x in fp32) cannot: it needs ~3 instructions per weight and row (extract, convert, FMA)
// against ~1.5 per weight here for any M <= 8 (docs/CUDA.md).
//
// Shared memory (bytes): block-group table [cps][4] int32 | reduction [8 warps][32 lanes][4] fp32 |
// x [chunk][k32 block q][row m < M][lane t][4 registers] (16 bytes per (q, m, t); rows 64 bytes apart, so the
// 8 lanes of a 16-byte load phase hit distinct banks).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/mma_fragment.cuh"

namespace ark::cuda {
namespace {

using frag::Traits;

constexpr int kThreads = kGemvWarps * 32;

// One lane's kBits words of one (tile, chunk): 128-bit loads where the run allows; non-coherent, no L1
// allocation (each word is read once by one lane).
template <int kBits>
__device__ __forceinline__ void load_words(const uint32_t* p, uint32_t (&w)[kBits]) {
  if constexpr (kBits % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kBits; i += 4)
      asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
          : "=r"(w[i]), "=r"(w[i + 1]), "=r"(w[i + 2]), "=r"(w[i + 3])
          : "l"(p + i));
  } else if constexpr (kBits == 2) {
    asm("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];" : "=r"(w[0]), "=r"(w[1]) : "l"(p));
  } else {
#pragma unroll
    for (int i = 0; i < kBits; ++i)
      asm("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(w[i]) : "l"(p + i));
  }
}

template <typename T, int kBits, bool kHi>
__global__ void __launch_bounds__(kThreads, kGemvMaxBlocksPerSm)
    gemv_kernel(PackedView w, const T* __restrict__ x, bool x_vec, T* __restrict__ y,
                float* __restrict__ partial, int M, int cps, int block_tiles) {
  constexpr int kStage = gemv_stage_chunks(kBits);
  extern __shared__ __align__(16) unsigned char smem[];
  const int split = blockIdx.y;
  const int64_t c0 = static_cast<int64_t>(split) * cps;
  const int n_chunks = static_cast<int>(min(static_cast<int64_t>(cps), w.chunks - c0));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int kw = kGemvWarps / block_tiles;  // warps per tile
  const int wn = warp % block_tiles, wk = warp / block_tiles;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * block_tiles + wn;
  const bool has_tile = tile < w.n8_tiles;
  const int my_n = has_tile && wk < n_chunks ? (n_chunks - wk + kw - 1) / kw : 0;

  int32_t* bg_s = reinterpret_cast<int32_t*>(smem);
  float* red_s = reinterpret_cast<float*>(smem + cps * 16);
  unsigned char* x_s = smem + cps * 16 + kGemvWarps * 32 * 16;

  const uint32_t* codes =
      w.codes + ((has_tile ? tile : 0) * w.chunks + c0) * (kWarpLanes * kBits) + lane * kBits;
  constexpr int kChunkWords = kWarpLanes * kBits;
  auto load_codes = [&](uint32_t(&wd)[kStage][kBits], int j0) {
#pragma unroll
    for (int u = 0; u < kStage; ++u)
      if (j0 + u < my_n)
        load_words<kBits>(codes + static_cast<int64_t>(wk + (j0 + u) * kw) * kChunkWords, wd[u]);
  };
  // Scale pair (C columns 2t, 2t + 1) and zero (B column g) of the group of each chunk's first k32 block; a
  // group that starts inside a chunk is read where it starts (compute).
  const int64_t meta_row = (has_tile ? tile : 0) * w.groups;
  auto load_meta = [&](float2(&s)[kStage], int(&z)[kStage], int j0) {
#pragma unroll
    for (int u = 0; u < kStage; ++u)
      if (j0 + u < my_n) {
        const int64_t mi = (meta_row + bg_s[(wk + (j0 + u) * kw) * 4]) * kTileRows;
        s[u] = __ldg(reinterpret_cast<const float2*>(w.scales + mi + 2 * t));
        z[u] = __ldg(w.zeros + mi + g);
      }
  };

  uint32_t wa[kStage][kBits], wb[kStage][kBits];
  float2 sa[kStage], sb[kStage];
  int za[kStage], zb[kStage];
  load_codes(wa, 0);  // in flight while x is staged

  for (int i = threadIdx.x; i < n_chunks * 4; i += kThreads) bg_s[i] = w.block_group[c0 * 4 + i];
  // x rows into A-fragment order: the 8 elements k = 8v .. 8v + 7 of a chunk (v < 16) are register v of the
  // four lanes t (pairs 2t, 2t + 1), i.e. k32 block q = v / 4, slot v % 4.
  const uint16_t* xh = reinterpret_cast<const uint16_t*>(x);  // any alignment, any order
  const int pieces = M * n_chunks * 16;
  for (int p = threadIdx.x; p < pieces; p += kThreads) {
    const int m = p / (n_chunks * 16), ci = (p / 16) % n_chunks, v = p % 16;
    const int64_t kp0 = (c0 + ci) * kChunkK + v * 8;
    uint32_t hv[4];
    if (x_vec) {
      const uint4 q =
          kp0 < w.k ? __ldg(reinterpret_cast<const uint4*>(x + m * w.k + kp0)) : make_uint4(0, 0, 0, 0);
      hv[0] = q.x, hv[1] = q.y, hv[2] = q.z, hv[3] = q.w;
    } else {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t s0 = source_k(w, kp0 + 2 * e), s1 = source_k(w, kp0 + 2 * e + 1);
        const uint32_t lo = s0 >= 0 ? xh[m * w.k + s0] : 0u;
        const uint32_t hi = s1 >= 0 ? xh[m * w.k + s1] : 0u;
        hv[e] = lo | (hi << 16);
      }
    }
    unsigned char* dst = x_s + ((ci * 4 + v / 4) * M + m) * 64 + (v % 4) * 4;
#pragma unroll
    for (int e = 0; e < 4; ++e) *reinterpret_cast<uint32_t*>(dst + e * 16) = hv[e];
  }
  __syncthreads();
  load_meta(sa, za, 0);

  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  auto compute = [&](const uint32_t(&wd)[kStage][kBits], const float2(&s)[kStage], const int(&z)[kStage],
                     int j0) {
#pragma unroll
    for (int u = 0; u < kStage; ++u) {
      if (j0 + u >= my_n) break;  // warp-uniform
      const int ci = wk + (j0 + u) * kw;
      const int4 bg = *reinterpret_cast<const int4*>(bg_s + ci * 4);
      const int grp[4] = {bg.x, bg.y, bg.z, bg.w};
      float2 sc = s[u];
      uint32_t zt = frag::zero_term<T, kBits>(z[u]);
      // Two accumulator sets (even and odd k16 steps) halve the chain of dependent mma.
      float t0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, t1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      auto flush = [&]() {
        acc[0] += sc.x * (t0[0] + t1[0]);
        acc[1] += sc.y * (t0[1] + t1[1]);
        if (kHi) {
          acc[2] += sc.x * (t0[2] + t1[2]);
          acc[3] += sc.y * (t0[3] + t1[3]);
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) t0[e] = t1[e] = 0.0f;
      };
      const unsigned char* xc = x_s + ci * 4 * M * 64 + t * 16;
#pragma unroll
      for (int blk = 0; blk < kChunkK / kBlockK; ++blk) {
        if (blk > 0 && grp[blk] != grp[blk - 1]) {  // a group starts inside the chunk (small or odd groups)
          flush();
          const int64_t mi = (meta_row + grp[blk]) * kTileRows;
          sc = __ldg(reinterpret_cast<const float2*>(w.scales + mi + 2 * t));
          zt = frag::zero_term<T, kBits>(__ldg(w.zeros + mi + g));
        }
        uint32_t b[4];
        frag::dequant_block<T, kBits>(wd[u], blk, zt, b);
        const uint4 lo =
            g < M ? *reinterpret_cast<const uint4*>(xc + (blk * M + g) * 64) : make_uint4(0, 0, 0, 0);
        uint4 hi = make_uint4(0, 0, 0, 0);
        if (kHi && g + 8 < M) hi = *reinterpret_cast<const uint4*>(xc + (blk * M + g + 8) * 64);
        frag::mma_16816<T>(t0, lo.x, hi.x, lo.y, hi.y, b[0], b[1]);
        frag::mma_16816<T>(t1, lo.z, hi.z, lo.w, hi.w, b[2], b[3]);
      }
      flush();
    }
  };

  for (int j = 0; j < my_n; j += 2 * kStage) {
    load_codes(wb, j + kStage);
    load_meta(sb, zb, j + kStage);
    compute(wa, sa, za, j);
    if (j + kStage >= my_n) break;
    load_codes(wa, j + 2 * kStage);
    load_meta(sa, za, j + 2 * kStage);
    compute(wb, sb, zb, j + kStage);
  }

  // The kw warps of a tile add their sums in warp order (deterministic), the first one stores.
  *reinterpret_cast<float4*>(red_s + (warp * 32 + lane) * 4) = make_float4(acc[0], acc[1], acc[2], acc[3]);
  __syncthreads();
  if (!has_tile || wk != 0) return;
  float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int k = 0; k < kw; ++k) {
    const float4 v = *reinterpret_cast<const float4*>(red_s + ((k * block_tiles + wn) * 32 + lane) * 4);
    sum[0] += v.x, sum[1] += v.y, sum[2] += v.z, sum[3] += v.w;
  }
  // C fragment: sum[0], sum[1] at row g, columns 2t, 2t + 1; sum[2], sum[3] at row g + 8.
#pragma unroll
  for (int h = 0; h < (kHi ? 2 : 1); ++h) {
    const int m = g + 8 * h;
    if (m >= M) continue;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int64_t n = tile * kTileRows + 2 * t + e;
      if (n >= w.n) continue;
      const float v = sum[2 * h + e];
      if (partial)
        partial[(static_cast<int64_t>(split) * M + m) * w.n + n] = v;
      else
        y[m * w.n + n] = Traits<T>::from_float(v + (w.bias ? w.bias[n] : 0.0f));
    }
  }
}

template <typename T, int kBits>
int launch_bits(const PackedView& w, const Plan& p, const void* x, bool x_vec, void* y, int64_t M,
                float* partial, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((w.n8_tiles + p.block_tiles - 1) / p.block_tiles),
                  static_cast<unsigned>(p.splits));
  auto* xt = static_cast<const T*>(x);
  auto* yt = static_cast<T*>(y);
  float* part = p.splits > 1 ? partial : nullptr;
  if (M > 8)
    gemv_kernel<T, kBits, true><<<grid, kThreads, p.smem_bytes, s>>>(
        w, xt, x_vec, yt, part, static_cast<int>(M), p.chunks_per_split, p.block_tiles);
  else
    gemv_kernel<T, kBits, false><<<grid, kThreads, p.smem_bytes, s>>>(
        w, xt, x_vec, yt, part, static_cast<int>(M), p.chunks_per_split, p.block_tiles);
  return cudaGetLastError() == cudaSuccess ? kOk : kLaunchFailed;
}

template <typename T>
int launch_type(const PackedView& w, const Plan& p, const void* x, bool x_vec, void* y, int64_t M,
                float* partial, cudaStream_t s) {
  switch (w.bits) {
    case 2:
      return launch_bits<T, 2>(w, p, x, x_vec, y, M, partial, s);
    case 3:
      return launch_bits<T, 3>(w, p, x, x_vec, y, M, partial, s);
    case 4:
      return launch_bits<T, 4>(w, p, x, x_vec, y, M, partial, s);
    case 8:
      return launch_bits<T, 8>(w, p, x, x_vec, y, M, partial, s);
    default:
      return kBadArgument;
  }
}

template <typename K>
cudaError_t allow(K kernel, int bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

template <typename T, int kBits>
cudaError_t allow_bits(int bytes) {
  const cudaError_t e = allow(gemv_kernel<T, kBits, false>, bytes);
  return e != cudaSuccess ? e : allow(gemv_kernel<T, kBits, true>, bytes);
}

template <typename T>
cudaError_t allow_type(int bytes) {
  cudaError_t e;
  if ((e = allow_bits<T, 2>(bytes)) != cudaSuccess) return e;
  if ((e = allow_bits<T, 3>(bytes)) != cudaSuccess) return e;
  if ((e = allow_bits<T, 4>(bytes)) != cudaSuccess) return e;
  return allow_bits<T, 8>(bytes);
}

}  // namespace

int prepare_gemv_kernels(int max_smem_per_block) {
  if (allow_type<__half>(max_smem_per_block) != cudaSuccess) return kLaunchFailed;
  if (allow_type<__nv_bfloat16>(max_smem_per_block) != cudaSuccess) return kLaunchFailed;
  return kOk;
}

int launch_gemv(const PackedView& w, const Plan& plan, const void* x, bool x_vec, void* y, int64_t M,
                bool bf16, float* partial, CUstream_st* stream) {
  if (M < 1 || M > kGemvMaxRows || plan.block_tiles < 1 || kGemvWarps % plan.block_tiles != 0)
    return kBadArgument;
  return bf16 ? launch_type<__nv_bfloat16>(w, plan, x, x_vec, y, M, partial, stream)
              : launch_type<__half>(w, plan, x, x_vec, y, M, partial, stream);
}

}  // namespace ark::cuda
