// The streaming decode kernel (M <= 16): no block barrier while the weights stream. Each warp owns 4 n8 tiles
// and streams their code words, scales and zeros through its own ring of shared-memory slots with cp.async;
// each lane copies its own words (it alone reads them back), so a lane's cp.async.wait_group plus one
// __syncwarp per chunk (for the scales and zeros that lanes 0-11 copy) is all the synchronisation there is.
//
// Why. The tensor-core split-K kernel (linear_mma.cu) moves the weights of 32 tiles through a ring that all 8
// warps of a block fill and drain in step (cp.async wait, block barrier, ldmatrix, mma per chunk); on the
// H200 it reached 51-62% of the copy bandwidth at M = 1 on the 70B shapes. This kernel removes the barrier
// and lets every warp run ahead on its own. Measured (docs/CUDA.md): versions with one tile per warp ran
// 1.2-2x slower than mma (a register double buffer of 4 chunks: issue- and latency-bound on per-chunk work
// that one tile cannot amortise); 4 tiles per warp with a 4-slot ring per warp matches mma on most shapes and
// beats it by 2-5% at M = 1 on the 70B shapes. Neither design passes ~64% of copy: see docs/CUDA.md.
//
// Block: 8 warps, `block_warps_n` of them side by side along N (4 tiles each), the other 8 / block_warps_n
// along K: the warps of one tile group take chunks k, k + kw, ... of the block's range and add their sums in
// shared memory in a fixed order at the end. Split-K across blocks (grid.y) writes fp32 partials, summed by
// launch_reduce in split order (deterministic).
//
// Arithmetic: the same as the tensor-core kernel. A lane's words are exactly its mma.sync m16n8k16 B
// fragments, dequantized to q - z exactly (cuda_layout.h, mma_fragment.cuh); x is staged once per block in
// shared memory in A-fragment order, so a lane reads the A registers of one k32 block (two k16 steps) with
// one 16-byte shared load per 8 rows of x, shared by its 4 tiles; fp32 sums over a group, the fp32 scale
// applied once per group. The mma does the products for all M <= 16 rows at the cost of one; a CUDA-core
// FMA version (one row per lane, x in fp32) would need ~3 instructions per weight and row (extract, convert,
// FMA) against ~1.5 per weight for any M <= 8 here, so it was not built (docs/CUDA.md).
//
// Shared memory (bytes): block-group table [cps][4] int32 | 8 warp rings (launch.h: gemv_ring_bytes) |
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

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// Asynchronous global -> shared copies of 16 bytes (L2 only: the weights are read once) or 8 / 4 bytes.
template <int kBytes>
__device__ __forceinline__ void cp_async(void* dst, const void* src) {
  if constexpr (kBytes == 16)
#if ARK_GEMV_L2_PREFETCH == 256
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
#elif ARK_GEMV_L2_PREFETCH == 128
    asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
#endif
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(smem_addr(dst)), "l"(src), "n"(kBytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// One lane's kBits words of one (tile, chunk) into its ring slot: 16-byte copies where the run allows.
template <int kBits>
__device__ __forceinline__ void copy_words(uint32_t* dst, const uint32_t* src) {
  if constexpr (kBits % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kBits; i += 4) cp_async<16>(dst + i, src + i);
  } else if constexpr (kBits == 2) {
    cp_async<8>(dst, src);
  } else {
#pragma unroll
    for (int i = 0; i < kBits; ++i) cp_async<4>(dst + i, src + i);
  }
}

template <int kBits>
__device__ __forceinline__ void read_words(const uint32_t* p, uint32_t (&w)[kBits]) {
  if constexpr (kBits % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kBits; i += 4) {
      const uint4 v = *reinterpret_cast<const uint4*>(p + i);
      w[i] = v.x, w[i + 1] = v.y, w[i + 2] = v.z, w[i + 3] = v.w;
    }
  } else if constexpr (kBits == 2) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    w[0] = v.x, w[1] = v.y;
  } else {
#pragma unroll
    for (int i = 0; i < kBits; ++i) w[i] = p[i];
  }
}

template <typename T, int kBits, bool kHi>
__global__ void __launch_bounds__(kThreads, kGemvMaxBlocksPerSm)
    gemv_kernel(PackedView w, const T* __restrict__ x, bool x_vec, T* __restrict__ y,
                float* __restrict__ partial, int M, int cps, int block_warps_n) {
  constexpr int kT = kGemvWarpTiles;
  constexpr int kRing = gemv_ring_stages(kBits);
  constexpr int kChunkWords = kWarpLanes * kBits;     // one tile's words of one chunk
  constexpr int kRingBytes = gemv_ring_bytes(kBits);  // one warp's ring
  extern __shared__ __align__(16) unsigned char smem[];
  const int split = blockIdx.y;
  const int64_t c0 = static_cast<int64_t>(split) * cps;
  const int n_chunks = static_cast<int>(min(static_cast<int64_t>(cps), w.chunks - c0));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int kw = kGemvWarps / block_warps_n;  // warps sharing one group of kT tiles (they split K)
  const int wn = warp % block_warps_n, wk = warp / block_warps_n;
  const int64_t tile0 = (static_cast<int64_t>(blockIdx.x) * block_warps_n + wn) * kT;
  const int ntiles = static_cast<int>(w.n8_tiles - tile0 >= kT ? kT
                                      : w.n8_tiles > tile0     ? w.n8_tiles - tile0
                                                               : 0);
#if ARK_GEMV_WARP_RANGES
  // Each of the kw warps of a tile group takes a contiguous run of the block's chunks.
  const int run = (n_chunks + kw - 1) / kw, first = wk * run, step = 1;
  const int my_n = ntiles > 0 ? max(0, min(run, n_chunks - first)) : 0;
#else
  // The kw warps of a tile group interleave: warp k takes chunks k, k + kw, ...
  const int first = wk, step = kw;
  const int my_n = ntiles > 0 && wk < n_chunks ? (n_chunks - wk + kw - 1) / kw : 0;
#endif

  int32_t* bg_s = reinterpret_cast<int32_t*>(smem);
  unsigned char* ring = smem + cps * 16 + warp * kRingBytes;
  uint32_t* ring_codes = reinterpret_cast<uint32_t*>(ring);        // [kRing][kT][32 lanes][kBits]
  unsigned char* ring_meta = ring + kRing * kT * kChunkWords * 4;  // [kRing][kT][48 bytes]
  unsigned char* x_s = smem + cps * 16 + kGemvWarps * kRingBytes;

  // Stage j of this warp (chunk first + j * step, j < my_n) into ring slot j % kRing: each lane copies its
  // own code words of the kT tiles (it alone reads them back); lanes 0 .. 3 kT - 1 copy each tile's scales
  // (rows 0-3, 4-7) and zeros of the group of the chunk's first k32 block (a group that starts inside the
  // chunk is read where it starts, in the loop).
  const uint32_t* codes = w.codes + (tile0 * w.chunks + c0) * kChunkWords + lane * kBits;
  const int meta_tt = lane / 3, meta_piece = lane % 3;
  const bool meta_lane = meta_tt < ntiles;
  const int64_t meta_row = (tile0 + (meta_lane ? meta_tt : 0)) * w.groups;
  auto issue_codes = [&](int j) {
    if (j >= my_n) return;
    const int64_t c = first + j * step;
#pragma unroll
    for (int tt = 0; tt < kT; ++tt)
      if (tt < ntiles)
        copy_words<kBits>(ring_codes + ((j % kRing) * kT + tt) * kChunkWords + lane * kBits,
                          codes + (tt * w.chunks + c) * kChunkWords);
  };
  auto issue_meta = [&](int j) {
    if (j >= my_n || !meta_lane) return;
    const int64_t mi = (meta_row + bg_s[(first + j * step) * 4]) * kTileRows;
    const void* src = meta_piece < 2 ? static_cast<const void*>(w.scales + mi + 4 * meta_piece)
                                     : static_cast<const void*>(w.zeros + mi);
    cp_async<16>(ring_meta + ((j % kRing) * kT + meta_tt) * 48 + meta_piece * 16, src);
  };

  // Prologue: the first kRing - 1 stages' codes are requested before x is staged; their scales and zeros
  // need the block-group table, so they follow the barrier. Commit group j (j < kRing - 1) completes stage j.
#pragma unroll
  for (int j = 0; j < kRing - 1; ++j) issue_codes(j);

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
#pragma unroll
  for (int j = 0; j < kRing - 1; ++j) {
    issue_meta(j);
    cp_async_commit();
  }

  float acc[kT][4];
#pragma unroll
  for (int tt = 0; tt < kT; ++tt)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[tt][e] = 0.0f;
  for (int i = 0; i < my_n; ++i) {
    cp_async_wait<kRing - 2>();
    __syncwarp();  // every lane's copies of stage i are visible; slot (i - 1) % kRing has been read by all
    issue_codes(i + kRing - 1);
    issue_meta(i + kRing - 1);
    cp_async_commit();

    const int slot = i % kRing;
    const int ci = first + i * step;
    const int4 bg = *reinterpret_cast<const int4*>(bg_s + ci * 4);
    const int grp[4] = {bg.x, bg.y, bg.z, bg.w};
    uint32_t wd[kT][kBits];
    float2 sc[kT];
    uint32_t zt[kT];
    // x (fp32 sum over a group) * (q - z) per tile; the group's scale multiplies it once (flush).
    float tmp[kT][4];
#pragma unroll
    for (int tt = 0; tt < kT; ++tt) {
      read_words<kBits>(ring_codes + (slot * kT + tt) * kChunkWords + lane * kBits, wd[tt]);
      const unsigned char* meta = ring_meta + (slot * kT + tt) * 48;
      sc[tt] = *reinterpret_cast<const float2*>(meta + 8 * t);
      zt[tt] = frag::zero_term<T, kBits>(*reinterpret_cast<const uint16_t*>(meta + 32 + 2 * g));
#pragma unroll
      for (int e = 0; e < 4; ++e) tmp[tt][e] = 0.0f;
    }
    auto flush = [&]() {
#pragma unroll
      for (int tt = 0; tt < kT; ++tt) {
        acc[tt][0] += sc[tt].x * tmp[tt][0];
        acc[tt][1] += sc[tt].y * tmp[tt][1];
        if (kHi) {
          acc[tt][2] += sc[tt].x * tmp[tt][2];
          acc[tt][3] += sc[tt].y * tmp[tt][3];
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) tmp[tt][e] = 0.0f;
      }
    };
    const unsigned char* xc = x_s + ci * 4 * M * 64 + t * 16;
#pragma unroll
    for (int blk = 0; blk < kChunkK / kBlockK; ++blk) {
      if (blk > 0 && grp[blk] != grp[blk - 1]) {  // a group starts inside the chunk (small or odd groups)
        flush();
#pragma unroll
        for (int tt = 0; tt < kT; ++tt) {
          const int64_t mi = ((tile0 + min(tt, ntiles - 1)) * w.groups + grp[blk]) * kTileRows;
          sc[tt] = __ldg(reinterpret_cast<const float2*>(w.scales + mi + 2 * t));
          zt[tt] = frag::zero_term<T, kBits>(__ldg(w.zeros + mi + g));
        }
      }
      const uint4 lo =
          g < M ? *reinterpret_cast<const uint4*>(xc + (blk * M + g) * 64) : make_uint4(0, 0, 0, 0);
      uint4 hi = make_uint4(0, 0, 0, 0);
      if (kHi && g + 8 < M) hi = *reinterpret_cast<const uint4*>(xc + (blk * M + g + 8) * 64);
#pragma unroll
      for (int tt = 0; tt < kT; ++tt) {
        uint32_t b[4];
        frag::dequant_block<T, kBits>(wd[tt], blk, zt[tt], b);
        frag::mma_16816<T>(tmp[tt], lo.x, hi.x, lo.y, hi.y, b[0], b[1]);
        frag::mma_16816<T>(tmp[tt], lo.z, hi.z, lo.w, hi.w, b[2], b[3]);
      }
    }
    flush();
  }
  cp_async_wait<0>();  // this lane's copies have landed: its ring (shared by nobody else) can be reused

  // The kw warps of a tile group add their sums in warp order (deterministic), the first one stores. Each
  // warp's sums go into its own ring (free now: every lane of the warp is past its last read after the
  // __syncwarp below).
  __syncwarp();
  float* red = reinterpret_cast<float*>(ring);
#pragma unroll
  for (int tt = 0; tt < kT; ++tt)
    *reinterpret_cast<float4*>(red + (tt * 32 + lane) * 4) =
        make_float4(acc[tt][0], acc[tt][1], acc[tt][2], acc[tt][3]);
  __syncthreads();
  if (ntiles == 0 || wk != 0) return;
#pragma unroll
  for (int tt = 0; tt < kT; ++tt) {
    if (tt >= ntiles) break;
    float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int k = 0; k < kw; ++k) {
      const float* r =
          reinterpret_cast<const float*>(smem + cps * 16 + (k * block_warps_n + wn) * kRingBytes);
      const float4 v = *reinterpret_cast<const float4*>(r + (tt * 32 + lane) * 4);
      sum[0] += v.x, sum[1] += v.y, sum[2] += v.z, sum[3] += v.w;
    }
    // C fragment: sum[0], sum[1] at row g, columns 2t, 2t + 1; sum[2], sum[3] at row g + 8.
#pragma unroll
    for (int h = 0; h < (kHi ? 2 : 1); ++h) {
      const int m = g + 8 * h;
      if (m >= M) continue;
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t n = (tile0 + tt) * kTileRows + 2 * t + e;
        if (n >= w.n) continue;
        const float v = sum[2 * h + e];
        if (partial)
          partial[(static_cast<int64_t>(split) * M + m) * w.n + n] = v;
        else
          y[m * w.n + n] = Traits<T>::from_float(v + (w.bias ? w.bias[n] : 0.0f));
      }
    }
  }
}

template <typename T, int kBits>
int launch_bits(const PackedView& w, const Plan& p, const void* x, bool x_vec, void* y, int64_t M,
                float* partial, cudaStream_t s) {
  const int64_t block_tiles = static_cast<int64_t>(p.block_tiles) * kGemvWarpTiles;
  const dim3 grid(static_cast<unsigned>((w.n8_tiles + block_tiles - 1) / block_tiles),
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
