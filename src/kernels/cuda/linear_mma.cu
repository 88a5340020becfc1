// The tensor-core kernel for small and medium M: mma.sync m16n8k16 with fp32 accumulation, the weights
// dequantized from registers straight into B fragments (the layout of cuda_layout.h puts each lane's codes
// where its fragment needs them, so no ldmatrix and no shared-memory pass for weights), split-K over the grid
// so that M = 1 still gives every SM several blocks, fp32 partials reduced by a second kernel in a fixed order
// (deterministic: the same inputs give the same bits on every run and every stream).
//
// Block: 8 warps, each owning 2 n8 tiles (128 output columns per block), one split of K (chunks_per_split
// chunks of 128) and up to 16 * kMT rows of x. x for the block's k range is staged once in shared memory,
// through k_source (act-order and padding are resolved there, so they cost no extra pass). Weights stream
// from global memory with 16-byte loads marked L2 evict-first (each weight byte is read once per forward;
// keeping it out of L2 leaves L2 to the activations and partials), double-buffered in registers.
//
// Accuracy: B holds (q - z) exactly (|q - z| <= 256 is exact in fp16 and bf16), the tensor core sums
// x * (q - z) over a k32 block in fp32, and the scale is applied to that fp32 block sum. So the weights are
// never rounded to 16 bits; the error is fp32 summation only (docs/CUDA.md gives the bound the tests check).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/launch.h"

namespace ark::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kTilesPerWarp = 2;
constexpr int kBlockTiles = kWarps * kTilesPerWarp;
constexpr int kXPad = 8;  // halves of padding per staged row: rows land 4 banks apart, conflict-free A loads

template <typename T>
struct Traits;
template <>
struct Traits<__half> {
  using T2 = __half2;
  static constexpr uint32_t kMagic = 0x64006400u;  // fp16 1024.0 in both halves: 1024 + q for q < 1024
  static constexpr float kMagicValue = 1024.0f;
  __device__ static T2 pair(float lo, float hi) { return __floats2half2_rn(lo, hi); }
  __device__ static __half from_float(float v) { return __float2half_rn(v); }
};
template <>
struct Traits<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u;  // bf16 128.0: 128 + q for q < 128
  static constexpr float kMagicValue = 128.0f;
  __device__ static T2 pair(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
  __device__ static __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

template <typename T2>
__device__ __forceinline__ uint32_t bits_of(T2 v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}
template <typename T2>
__device__ __forceinline__ T2 from_bits(uint32_t u) {
  T2 v;
  memcpy(&v, &u, 4);
  return v;
}

template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                  uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint64_t evict_first_policy() {
  uint64_t p;
  asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(p));
  return p;
}

// One lane's `kBits` words of one (tile, chunk): 16-byte loads where the run allows it.
template <int kBits>
__device__ __forceinline__ void load_words(const uint32_t* p, uint64_t policy, uint32_t (&w)[kBits]) {
  if constexpr (kBits % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kBits; i += 4)
      asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %5;"
          : "=r"(w[i]), "=r"(w[i + 1]), "=r"(w[i + 2]), "=r"(w[i + 3])
          : "l"(p + i), "l"(policy));
  } else if constexpr (kBits == 2) {
    asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v2.u32 {%0,%1}, [%2], %3;"
        : "=r"(w[0]), "=r"(w[1])
        : "l"(p), "l"(policy));
  } else {
#pragma unroll
    for (int i = 0; i < kBits; ++i) w[i] = __ldg(p + i);
  }
}

// The four B registers (two k16 steps) of k32 block `block` of one lane, holding q - z exactly.
template <typename T, int kBits>
__device__ __forceinline__ void dequant_block(const uint32_t (&w)[kBits], int block, int z, uint32_t (&b)[4]) {
  using Tr = Traits<T>;
  using T2 = typename Tr::T2;
  if constexpr (kBits == 4) {
    // Nibbles j and j + 4 of the block's word are the two values of register j: masking them into the
    // mantissa of the magic constant gives magic + q in each half with one lop3, and subtracting
    // magic + z (exact) leaves q - z.
    const uint32_t word = w[block];
    const T2 mz = Tr::pair(Tr::kMagicValue + static_cast<float>(z), Tr::kMagicValue + static_cast<float>(z));
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t h = ((word >> (4 * j)) & 0x000f000fu) | Tr::kMagic;
      b[j] = bits_of(__hsub2(from_bits<T2>(h), mz));
    }
  } else {
    // Other widths: extract each code and convert the small integer q - z exactly.
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int lo = static_cast<int>(extract_code(w, 8 * kBits * block + kBits * j, kBits));
      const int hi = static_cast<int>(extract_code(w, 8 * kBits * block + kBits * (j + 4), kBits));
      b[j] = bits_of(Tr::pair(static_cast<float>(lo - z), static_cast<float>(hi - z)));
    }
  }
}

template <typename T, int kBits, int kMT>
// Small M: at least 3 blocks (24 warps) per SM, for enough weight loads in flight; the register budget that
// leaves (85) holds every width without spilling.
__global__ void __launch_bounds__(kWarps * 32, kMT == 1 ? 3 : 1)
    mma_kernel(PackedView w, const T* __restrict__ x, T* __restrict__ y, float* __restrict__ partial, int M,
               int chunks_per_split) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* xs = reinterpret_cast<T*>(smem_raw);
  const int split = blockIdx.y;
  const int64_t c0 = static_cast<int64_t>(split) * chunks_per_split;
  const int64_t c1 = min(w.chunks, c0 + chunks_per_split);
  const int m0 = blockIdx.z * 16 * kMT;
  const int rows = min(16 * kMT, M - m0);
  const int k_len = static_cast<int>(c1 - c0) * kChunkK;
  const int stride = k_len + kXPad;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t tile0 = static_cast<int64_t>(blockIdx.x) * kBlockTiles + warp * kTilesPerWarp;
  const int ntiles = static_cast<int>(
      tile0 >= w.n8_tiles ? 0 : (w.n8_tiles - tile0 < kTilesPerWarp ? w.n8_tiles - tile0 : kTilesPerWarp));

  // The first chunk's weights are requested before x is staged, so their latency overlaps the staging.
  const uint64_t policy = evict_first_policy();
  auto words_at = [&](int tt, int64_t c) {
    return w.codes + (((tile0 + tt) * w.chunks + c) * kWarpLanes + lane) * kBits;
  };
  uint32_t cur[kTilesPerWarp][kBits], nxt[kTilesPerWarp][kBits];
#pragma unroll
  for (int tt = 0; tt < kTilesPerWarp; ++tt)
    if (tt < ntiles) load_words<kBits>(words_at(tt, c0), policy, cur[tt]);

  if (!w.k_source && w.k % 8 == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0) {
    // Identity order: 16-byte loads of 8 activations; past K (padding) reads as zero.
    const int vecs = k_len / 8;
#pragma unroll 4
    for (int idx = threadIdx.x; idx < rows * vecs; idx += blockDim.x) {
      const int r = idx / vecs, v = idx - r * vecs;
      const int64_t kp = c0 * kChunkK + v * 8;
      uint4 val = make_uint4(0, 0, 0, 0);
      if (kp < w.k) val = *reinterpret_cast<const uint4*>(x + static_cast<int64_t>(m0 + r) * w.k + kp);
      *reinterpret_cast<uint4*>(xs + r * stride + v * 8) = val;
    }
  } else {
    // Reordered (act-order, odd groups) or unaligned: one gathered element at a time.
#pragma unroll 4
    for (int idx = threadIdx.x; idx < rows * k_len; idx += blockDim.x) {
      const int r = idx / k_len, kl = idx - r * k_len;
      const int64_t src = source_k(w, c0 * kChunkK + kl);
      xs[r * stride + kl] = src >= 0 ? x[static_cast<int64_t>(m0 + r) * w.k + src] : Traits<T>::from_float(0.0f);
    }
  }
  __syncthreads();
  if (ntiles == 0) return;  // warp-uniform; no barrier follows

  float acc[kMT][kTilesPerWarp][4];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int tt = 0; tt < kTilesPerWarp; ++tt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mt][tt][e] = 0.0f;

  for (int64_t c = c0; c < c1; ++c) {
    if (c + 1 < c1) {
#pragma unroll
      for (int tt = 0; tt < kTilesPerWarp; ++tt)
        if (tt < ntiles) load_words<kBits>(words_at(tt, c + 1), policy, nxt[tt]);
    }
    const int kl0 = static_cast<int>(c - c0) * kChunkK;
#pragma unroll
    for (int blk = 0; blk < kChunkK / kBlockK; ++blk) {
      const int grp = w.block_group[c * (kChunkK / kBlockK) + blk];
#pragma unroll
      for (int tt = 0; tt < kTilesPerWarp; ++tt) {
        if (tt >= ntiles) break;
        const int64_t mi = ((tile0 + tt) * w.groups + grp) * kTileRows;
        const int z = w.zeros[mi + g];
        const float s0 = w.scales[mi + 2 * t], s1 = w.scales[mi + 2 * t + 1];
        uint32_t b[4];
        dequant_block<T, kBits>(cur[tt], blk, z, b);
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          if (mt * 16 >= rows) break;
          const int r0 = mt * 16 + g, r1 = r0 + 8;
          float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
          for (int step = 0; step < 2; ++step) {
            const int col = kl0 + blk * kBlockK + step * 16 + 2 * t;
            uint32_t a[4];
            a[0] = r0 < rows ? *reinterpret_cast<const uint32_t*>(xs + r0 * stride + col) : 0u;
            a[1] = r1 < rows ? *reinterpret_cast<const uint32_t*>(xs + r1 * stride + col) : 0u;
            a[2] = r0 < rows ? *reinterpret_cast<const uint32_t*>(xs + r0 * stride + col + 8) : 0u;
            a[3] = r1 < rows ? *reinterpret_cast<const uint32_t*>(xs + r1 * stride + col + 8) : 0u;
            mma_16816<T>(tmp, a, b[2 * step], b[2 * step + 1]);
          }
          acc[mt][tt][0] += s0 * tmp[0];
          acc[mt][tt][1] += s1 * tmp[1];
          acc[mt][tt][2] += s0 * tmp[2];
          acc[mt][tt][3] += s1 * tmp[3];
        }
      }
    }
#pragma unroll
    for (int tt = 0; tt < kTilesPerWarp; ++tt)
#pragma unroll
      for (int i = 0; i < kBits; ++i) cur[tt][i] = nxt[tt][i];
  }

  // C fragment: c0, c1 at row g, columns 2t, 2t + 1; c2, c3 at row g + 8.
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
    if (mt * 16 >= rows) break;
#pragma unroll
    for (int tt = 0; tt < kTilesPerWarp; ++tt) {
      if (tt >= ntiles) break;
      const int64_t n = (tile0 + tt) * kTileRows + 2 * t;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = mt * 16 + g + 8 * h;
        if (r >= rows) continue;
        const int64_t row = m0 + r;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          if (n + e >= w.n) continue;
          const float v = acc[mt][tt][2 * h + e];
          if (partial)
            partial[(static_cast<int64_t>(split) * M + row) * w.n + n + e] = v;
          else
            y[row * w.n + n + e] = Traits<T>::from_float(v + (w.bias ? w.bias[n + e] : 0.0f));
        }
      }
    }
  }
}

template <typename T, int kBits, int kMT>
int launch_one(const PackedView& w, const Plan& p, const void* x, void* y, int64_t M, float* partial,
               cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((w.n8_tiles + kBlockTiles - 1) / kBlockTiles),
                  static_cast<unsigned>(p.splits), static_cast<unsigned>((M + 16 * kMT - 1) / (16 * kMT)));
  mma_kernel<T, kBits, kMT><<<grid, kWarps * 32, p.smem_bytes, s>>>(
      w, static_cast<const T*>(x), static_cast<T*>(y), p.splits > 1 ? partial : nullptr, static_cast<int>(M),
      p.chunks_per_split);
  return cudaGetLastError() == cudaSuccess ? kOk : kLaunchFailed;
}

template <typename T, int kBits>
int launch_bits(const PackedView& w, const Plan& p, const void* x, void* y, int64_t M, float* partial,
                cudaStream_t s) {
  return p.m_tiles == 1 ? launch_one<T, kBits, 1>(w, p, x, y, M, partial, s)
                        : launch_one<T, kBits, 4>(w, p, x, y, M, partial, s);
}

template <typename T>
int launch_type(const PackedView& w, const Plan& p, const void* x, void* y, int64_t M, float* partial,
                cudaStream_t s) {
  switch (w.bits) {
    case 2:
      return launch_bits<T, 2>(w, p, x, y, M, partial, s);
    case 3:
      return launch_bits<T, 3>(w, p, x, y, M, partial, s);
    case 4:
      return launch_bits<T, 4>(w, p, x, y, M, partial, s);
    case 8:
      return launch_bits<T, 8>(w, p, x, y, M, partial, s);
    default:
      return kBadArgument;
  }
}

template <typename T, int kBits>
cudaError_t allow_smem() {
  const int bytes = static_cast<int>(kMaxSmemBytes);
  cudaError_t e = cudaFuncSetAttribute(mma_kernel<T, kBits, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(mma_kernel<T, kBits, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

template <typename T>
cudaError_t allow_smem_type() {
  cudaError_t e;
  if ((e = allow_smem<T, 2>()) != cudaSuccess) return e;
  if ((e = allow_smem<T, 3>()) != cudaSuccess) return e;
  if ((e = allow_smem<T, 4>()) != cudaSuccess) return e;
  return allow_smem<T, 8>();
}

}  // namespace

int prepare_kernels() {
  if (allow_smem_type<__half>() != cudaSuccess) return kLaunchFailed;
  if (allow_smem_type<__nv_bfloat16>() != cudaSuccess) return kLaunchFailed;
  return kOk;
}

int launch_mma(const PackedView& w, const Plan& plan, const void* x, void* y, int64_t M, bool bf16,
               float* partial, CUstream_st* stream) {
  return bf16 ? launch_type<__nv_bfloat16>(w, plan, x, y, M, partial, stream)
              : launch_type<__half>(w, plan, x, y, M, partial, stream);
}

}  // namespace ark::cuda
