// The tensor-core kernel for small and medium M: mma.sync m16n8k16 with fp32 accumulation, weights
// dequantized from shared memory straight into B fragments (cuda_layout.h puts each lane's codes where its
// fragment needs them), split-K over the grid, fp32 partials reduced by a second kernel in a fixed order
// (deterministic).
//
// Why a shared-memory ring. Decoding is a stream of weight bytes: to run at DRAM bandwidth a GPU needs about
// bandwidth x latency bytes in flight (~4 TB/s x ~1 us = 4 MB, ~32 KB per SM on 132 SMs). Phase 1 held one
// chunk ahead in registers and read scales, zeros and block groups with dependent global loads inside the
// loop, so each chunk paid two or three memory latencies and the kernel ran at a third of bandwidth. Here
// every block keeps kStages - 1 chunks of everything it will read (codes, the scales and zeros of the chunk's
// groups, and the chunk's x rows) in flight through cp.async into a ring of kStages shared-memory stages; the
// loop waits for the oldest stage, issues the next, and computes; with 2-3 blocks per SM that is 50-70 KB in
// flight per SM. x no longer sits in shared memory for the block's whole K range, so the K range per block
// (and with it the split-K factor and the fp32 partial traffic) is free of the old shared-memory bound.
//
// Block: 8 warps, each owning 2 n8 tiles (128 output columns per block), up to 16 * kMT rows of x. A
// fragments come from the staged x rows by ldmatrix and serve both tiles of the warp; the weights of one k32
// block are dequantized once and serve all kMT m16 tiles.
//
// Stage layout (bytes): codes [16 tiles][32 lanes][kBits words] | scales [16][4 slots][8] fp32 |
// zeros [16][4 slots][8] u16 | x [16 * kMT rows][128 + 8 halves]. Slot j holds the group of k32 block j when
// block j starts a new group; blocks of the same group read the first one's slot (a k32 block never straddles
// groups, so g128 copies one slot per chunk and g32 four). x rows are padded by 8 halves (16 bytes) so the 8
// rows an ldmatrix reads fall on different bank quads. After the ring: the split's block_group table.
//
// Accuracy: B holds (q - z) exactly (|q - z| <= 256 is exact in fp16 and bf16), the tensor core sums
// x * (q - z) over a k32 block in fp32, and the scale multiplies that block sum: the weights are never
// rounded to 16 bits (docs/CUDA.md gives the bound the tests check).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/mma_fragment.cuh"
#include "kernels/cuda/ptx_shared.cuh"

namespace ark::cuda {
namespace {

constexpr int kWarps = 8;
// n8 tiles per warp: 4 for 16-row blocks (more weight bytes per A fragment, per barrier and per loop
// instruction: decoding is issue-bound well before it is bandwidth-bound), 2 for taller blocks (registers).
// launch.h's mma_block_tiles() is the same rule.
template <int kMT>
struct TilesPerWarp {
  static constexpr int value = kMT == 1 ? ARK_MMA_DECODE_TILES : 2;
};
constexpr int kThreads = kWarps * 32;
constexpr int kXStride = kChunkK + 8;  // halves per staged x row

using frag::bits_of;
using frag::from_bits;
using frag::Traits;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::smem_addr;

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

// src_bytes = 0 fills the 16 bytes with zeros and reads nothing (rows past M, K padding).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes = 16) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(src_bytes));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&a)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
               : "r"(smem_addr(p)));
}

// One lane's kBits words of one (tile, chunk) from the stage: the widest shared loads the run allows.
template <int kBits>
__device__ __forceinline__ void lane_words(const uint32_t* p, uint32_t (&w)[kBits]) {
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

__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;  // (a & b) | c in one LOP3 (the compiler emits two when a is a shifted value)
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// The magic + z pair subtracted from 4-bit codes, as bits: magic + z is exact and, for z <= 16 (GPTQ v1's
// borrow reaches 2^bits), just the magic's bits plus z in both halves (no float conversion).
template <typename T>
__device__ __forceinline__ uint32_t magic_minus_zero4(int z) {
  return (Traits<T>::kMagic & 0xffffu) * 0x10001u + static_cast<uint32_t>(z) * 0x10001u;
}

// The four B registers (two k16 steps) of k32 block `block` of one lane, holding q - z exactly.
// kBits == 4: mz is magic_minus_zero4(z); other widths: mz is z.
template <typename T, int kBits>
__device__ __forceinline__ void dequant_block(const uint32_t (&w)[kBits], int block, uint32_t mz,
                                              uint32_t (&b)[4]) {
  using Tr = Traits<T>;
  using T2 = typename Tr::T2;
  if constexpr (kBits == 4) {
    // Nibbles j and j + 4 of the block's word are the two values of register j: masking them into the
    // mantissa of the magic constant gives magic + q in each half with one lop3, and subtracting
    // magic + z (exact) leaves q - z.
    const uint32_t word = w[block];
#pragma unroll
    for (int j = 0; j < 4; ++j)
      b[j] = bits_of(
          __hsub2(from_bits<T2>(lop3_and_or(word >> (4 * j), 0x000f000fu, Tr::kMagic)), from_bits<T2>(mz)));
  } else {
    // Other widths: extract each code and convert the small integer q - z exactly.
    const int z = static_cast<int>(mz);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int lo = static_cast<int>(extract_code(w, 8 * kBits * block + kBits * j, kBits));
      const int hi = static_cast<int>(extract_code(w, 8 * kBits * block + kBits * (j + 4), kBits));
      b[j] = bits_of(Tr::pair(static_cast<float>(lo - z), static_cast<float>(hi - z)));
    }
  }
}

template <int kBits, int kMT>
struct StageLayout {
  static constexpr int kBlockTiles = kWarps * TilesPerWarp<kMT>::value;
  static constexpr int kCodes = kBlockTiles * kWarpLanes * kBits * 4;
  static constexpr int kScales = kBlockTiles * 4 * kTileRows * 4;
  static constexpr int kZeros = kBlockTiles * 4 * kTileRows * 2;
  static constexpr int kX = 16 * kMT * kXStride * 2;
  static constexpr int kScalesAt = kCodes, kZerosAt = kScalesAt + kScales, kXAt = kZerosAt + kZeros;
  static constexpr int kBytes = kXAt + kX;
  static_assert(kBlockTiles == kWarps * (kMT == 1 ? ARK_MMA_DECODE_TILES : 2), "launch.h: mma_block_tiles");
  static_assert(kScalesAt % 16 == 0 && kZerosAt % 16 == 0 && kXAt % 16 == 0 && kBytes % 16 == 0,
                "16-B pieces");
};

template <typename T, int kBits, int kMT>
__global__ void __launch_bounds__(kThreads, kMT == 1 && ARK_MMA_DECODE_TILES == 2 ? 3 : 2)
    mma_kernel(PackedView w, const T* __restrict__ x, int64_t x_stride, bool x_direct, T* __restrict__ y,
               float* __restrict__ partial, int M, int chunks_per_split) {
  using L = StageLayout<kBits, kMT>;
  constexpr int kStages = kMT == 4 ? 3 : 4;  // launch.h: mma_stages
  constexpr int kTilesPerWarp = TilesPerWarp<kMT>::value;
  constexpr int kBlockTiles = L::kBlockTiles;
  extern __shared__ __align__(16) unsigned char smem[];
  // Consecutive blocks take the m16 groups of one n range, so the second reader of a weight chunk finds it in
  // L2.
  const int m0 = blockIdx.x * 16 * kMT;
  const int64_t tile_base = static_cast<int64_t>(blockIdx.y) * kBlockTiles;
  const int split = blockIdx.z;
  const int64_t c0 = static_cast<int64_t>(split) * chunks_per_split;
  const int n_chunks = static_cast<int>(min(w.chunks, c0 + chunks_per_split) - c0);
  const int rows = min(16 * kMT, M - m0);
  const int block_tiles = static_cast<int>(min(static_cast<int64_t>(kBlockTiles), w.n8_tiles - tile_base));
  int32_t* bg_s = reinterpret_cast<int32_t*>(smem + kStages * L::kBytes);

  for (int i = threadIdx.x; i < n_chunks * 4; i += kThreads) bg_s[i] = w.block_group[c0 * 4 + i];

  // Each thread's share of a stage's copies is the same for every chunk: its sources, destinations and
  // guards are worked out once here, so issuing a stage costs a few adds per 16-byte piece (issue cost, not
  // bytes, limited the first version of this loop).
  constexpr int kCodePieces = kWarpLanes * kBits * 4 / 16;  // 16-byte pieces per tile and chunk
  constexpr int kCodeSlots = (kBlockTiles * kCodePieces + kThreads - 1) / kThreads;
  const uint32_t* code_src[kCodeSlots];
  int code_dst[kCodeSlots];
#pragma unroll
  for (int j = 0; j < kCodeSlots; ++j) {
    const int p = threadIdx.x + j * kThreads, tt = p / kCodePieces, o = p % kCodePieces;
    const bool ok = p < kBlockTiles * kCodePieces && tt < block_tiles;
    code_src[j] = ok ? w.codes + ((tile_base + tt) * w.chunks + c0) * (kWarpLanes * kBits) + o * 4 : nullptr;
    code_dst[j] = (tt * kCodePieces + o) * 16;
  }
  // Scales and zeros: 12 pieces of 16 bytes per tile (4 k32 blocks x {scales 0-3, scales 4-7, zeros}), each
  // copied when its block starts a new group (a group spanning blocks is copied once).
  constexpr int kMetaSlots = (kBlockTiles * 12 + kThreads - 1) / kThreads;
  const unsigned char* meta_src[kMetaSlots];
  int meta_dst[kMetaSlots], meta_s[kMetaSlots], meta_stride[kMetaSlots];
#pragma unroll
  for (int j = 0; j < kMetaSlots; ++j) {
    const int p = threadIdx.x + j * kThreads, tt = p / 12, sl = (p % 12) / 3, kind = p % 3;
    const bool ok = p < kBlockTiles * 12 && tt < block_tiles;
    const int64_t row = ok ? (tile_base + tt) * w.groups * kTileRows : 0;
    meta_src[j] = !ok        ? nullptr
                  : kind < 2 ? reinterpret_cast<const unsigned char*>(w.scales + row + 4 * kind)
                             : reinterpret_cast<const unsigned char*>(w.zeros + row);
    meta_stride[j] = kind < 2 ? kTileRows * 4 : kTileRows * 2;  // bytes per group
    meta_dst[j] = kind < 2 ? L::kScalesAt + ((tt * 4 + sl) * kTileRows + 4 * kind) * 4
                           : L::kZerosAt + (tt * 4 + sl) * kTileRows * 2;
    meta_s[j] = sl;
  }
  // x: kMT pieces per thread (16 * kMT rows x 16 pieces); rows past M are not copied (their stale values
  // only reach C rows that are never stored).
  const int x_v = threadIdx.x % 16;
  const T* x_src[kMT];
  bool x_ok[kMT];
#pragma unroll
  for (int j = 0; j < kMT; ++j) {
    const int r = threadIdx.x / 16 + 16 * j;
    x_ok[j] = r < rows;
    x_src[j] = x + static_cast<int64_t>(m0 + (x_ok[j] ? r : 0)) * x_stride + c0 * kChunkK + x_v * 8;
  }
  __syncthreads();  // bg_s

  // Requests everything chunk `i` of this split needs into stage `st` (no commit). The weights go without an
  // L2 evict-first hint: with cp.async's cache_hint form, ptxas 13.0 put the policy in an odd uniform
  // register pair in the main loop (desc[UR1]), which the H200 rejected as an illegal instruction.
  auto issue = [&](int st, int i) {
    unsigned char* base = smem + st * L::kBytes;
#pragma unroll
    for (int j = 0; j < kCodeSlots; ++j)
      if (code_src[j]) cp_async16(base + code_dst[j], code_src[j] + i * (kWarpLanes * kBits));
#pragma unroll
    for (int j = 0; j < kMetaSlots; ++j) {
      if (!meta_src[j]) continue;
      const int grp = bg_s[i * 4 + meta_s[j]];
      if (meta_s[j] == 0 || grp != bg_s[i * 4 + meta_s[j] - 1])
        cp_async16(base + meta_dst[j], meta_src[j] + static_cast<int64_t>(grp) * meta_stride[j]);
    }
#pragma unroll
    for (int j = 0; j < kMT; ++j) {
      if (!x_ok[j]) continue;
      const bool in = !x_direct || (c0 + i) * kChunkK + x_v * 8 < w.k;
      cp_async16(base + L::kXAt + ((threadIdx.x / 16 + 16 * j) * kXStride + x_v * 8) * 2,
                 in ? x_src[j] + i * kChunkK : x, in ? 16 : 0);
    }
  };

#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < n_chunks) issue(st, st);
    cp_async_commit();
  }

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int wt0 = warp * kTilesPerWarp;  // the warp's first tile inside the block
  const int ntiles = max(0, min(kTilesPerWarp, block_tiles - wt0));
  // ldmatrix.x4 addresses: lanes 0-15 give rows 0-15 at k 0, lanes 16-31 rows 0-15 at k 8 (a0..a3 of m16k16).
  const int a_row = lane % 16, a_col = (lane / 16) * 8;

  float acc[kMT][kTilesPerWarp][4];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int tt = 0; tt < kTilesPerWarp; ++tt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mt][tt][e] = 0.0f;

  for (int i = 0; i < n_chunks; ++i) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage i % kStages is complete for every thread; stage (i - 1) % kStages is free
    if (i + kStages - 1 < n_chunks) issue((i + kStages - 1) % kStages, i + kStages - 1);
    cp_async_commit();
    if (ntiles == 0) continue;  // warp-uniform; the warp still joins every barrier

    const unsigned char* base = smem + (i % kStages) * L::kBytes;
    const uint32_t* codes = reinterpret_cast<const uint32_t*>(base);
    const float* sc = reinterpret_cast<const float*>(base + L::kScalesAt);
    const uint16_t* zs = reinterpret_cast<const uint16_t*>(base + L::kZerosAt);
    const T* xs = reinterpret_cast<const T*>(base + L::kXAt);
    const int32_t* bg = bg_s + i * 4;

    uint32_t words[kTilesPerWarp][kBits];
#pragma unroll
    for (int tt = 0; tt < kTilesPerWarp; ++tt)
      lane_words<kBits>(codes + ((wt0 + tt) * kWarpLanes + lane) * kBits, words[tt]);

    // The tensor core sums x * (q - z) in fp32 over all k32 blocks of one group (tmp); the group's scale
    // multiplies that sum once, when the group ends. A warp whose second tile lies past N computes it from
    // stale shared memory and never stores it (cheaper than a branch per tile).
    float tmp[kMT][kTilesPerWarp][4];
    float s0[kTilesPerWarp], s1[kTilesPerWarp];
    uint32_t mz[kTilesPerWarp];
    auto flush = [&]() {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int tt = 0; tt < kTilesPerWarp; ++tt) {
          acc[mt][tt][0] += s0[tt] * tmp[mt][tt][0];
          acc[mt][tt][1] += s1[tt] * tmp[mt][tt][1];
          acc[mt][tt][2] += s0[tt] * tmp[mt][tt][2];
          acc[mt][tt][3] += s1[tt] * tmp[mt][tt][3];
#pragma unroll
          for (int e = 0; e < 4; ++e) tmp[mt][tt][e] = 0.0f;
        }
    };
#pragma unroll
    for (int blk = 0; blk < kChunkK / kBlockK; ++blk) {
      if (blk == 0 || bg[blk] != bg[blk - 1]) {  // a new group: its scales and zeros sit in slot blk
        if (blk > 0) flush();
#pragma unroll
        for (int tt = 0; tt < kTilesPerWarp; ++tt) {
          const int mi = ((wt0 + tt) * 4 + blk) * kTileRows;
          const float2 sv = *reinterpret_cast<const float2*>(sc + mi + 2 * t);
          s0[tt] = sv.x, s1[tt] = sv.y;
          const int z = zs[mi + g];
          mz[tt] = kBits == 4 ? magic_minus_zero4<T>(z) : static_cast<uint32_t>(z);
        }
        if (blk == 0)
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
            for (int tt = 0; tt < kTilesPerWarp; ++tt)
#pragma unroll
              for (int e = 0; e < 4; ++e) tmp[mt][tt][e] = 0.0f;
      }
      uint32_t b[kTilesPerWarp][4];
#pragma unroll
      for (int tt = 0; tt < kTilesPerWarp; ++tt) dequant_block<T, kBits>(words[tt], blk, mz[tt], b[tt]);
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        if (mt * 16 >= rows) break;
        uint32_t a0[4], a1[4];
        const T* ap = xs + (mt * 16 + a_row) * kXStride + blk * kBlockK + a_col;
        ldmatrix_x4(a0, ap);
        ldmatrix_x4(a1, ap + 16);
#pragma unroll
        for (int tt = 0; tt < kTilesPerWarp; ++tt) {
          mma_16816<T>(tmp[mt][tt], a0, b[tt][0], b[tt][1]);
          mma_16816<T>(tmp[mt][tt], a1, b[tt][2], b[tt][3]);
        }
      }
    }
    flush();
  }
  cp_async_wait<0>();  // nothing may be in flight into shared memory when the block exits

  // C fragment: c0, c1 at row g, columns 2t, 2t + 1; c2, c3 at row g + 8.
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
    if (mt * 16 >= rows) break;
#pragma unroll
    for (int tt = 0; tt < kTilesPerWarp; ++tt) {
      if (tt >= ntiles) break;
      const int64_t n = (tile_base + wt0 + tt) * kTileRows + 2 * t;
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
int launch_one(const PackedView& w, const Plan& p, const void* x, int64_t x_stride, bool x_direct, void* y,
               int64_t M, float* partial, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((M + 16 * kMT - 1) / (16 * kMT)),
                  static_cast<unsigned>((w.n8_tiles + StageLayout<kBits, kMT>::kBlockTiles - 1) /
                                        StageLayout<kBits, kMT>::kBlockTiles),
                  static_cast<unsigned>(p.splits));
  mma_kernel<T, kBits, kMT><<<grid, kThreads, p.smem_bytes, s>>>(
      w, static_cast<const T*>(x), x_stride, x_direct, static_cast<T*>(y), p.splits > 1 ? partial : nullptr,
      static_cast<int>(M), p.chunks_per_split);
  return cudaGetLastError() == cudaSuccess ? kOk : kLaunchFailed;
}

template <typename T, int kBits>
int launch_bits(const PackedView& w, const Plan& p, const void* x, int64_t x_stride, bool x_direct, void* y,
                int64_t M, float* partial, cudaStream_t s) {
  switch (p.m_tiles) {
    case 1:
      return launch_one<T, kBits, 1>(w, p, x, x_stride, x_direct, y, M, partial, s);
    case 2:
      return launch_one<T, kBits, 2>(w, p, x, x_stride, x_direct, y, M, partial, s);
    default:
      return launch_one<T, kBits, 4>(w, p, x, x_stride, x_direct, y, M, partial, s);
  }
}

template <typename T>
int launch_type(const PackedView& w, const Plan& p, const void* x, int64_t x_stride, bool x_direct, void* y,
                int64_t M, float* partial, cudaStream_t s) {
  switch (w.bits) {
    case 2:
      return launch_bits<T, 2>(w, p, x, x_stride, x_direct, y, M, partial, s);
    case 3:
      return launch_bits<T, 3>(w, p, x, x_stride, x_direct, y, M, partial, s);
    case 4:
      return launch_bits<T, 4>(w, p, x, x_stride, x_direct, y, M, partial, s);
    case 8:
      return launch_bits<T, 8>(w, p, x, x_stride, x_direct, y, M, partial, s);
    default:
      return kBadArgument;
  }
}

template <typename K>
cudaError_t allow(K kernel, int bytes) {
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess) return e;
  // Ask for the largest shared-memory carveout: 2-3 blocks of 50-70 KB each per SM.
  return cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                              cudaSharedmemCarveoutMaxShared);
}

template <typename T, int kBits>
cudaError_t allow_bits(int bytes) {
  cudaError_t e;
  if ((e = allow(mma_kernel<T, kBits, 1>, bytes)) != cudaSuccess) return e;
  if ((e = allow(mma_kernel<T, kBits, 2>, bytes)) != cudaSuccess) return e;
  return allow(mma_kernel<T, kBits, 4>, bytes);
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

size_t mma_stage_bytes(int bits, int m_tiles) {
  const int tiles = mma_block_tiles(m_tiles);
  return static_cast<size_t>(tiles * kWarpLanes * bits * 4 + tiles * 4 * kTileRows * 6 +
                             16 * m_tiles * kXStride * 2);
}

int prepare_kernels(int max_smem_per_block) {
  if (allow_type<__half>(max_smem_per_block) != cudaSuccess) return kLaunchFailed;
  if (allow_type<__nv_bfloat16>(max_smem_per_block) != cudaSuccess) return kLaunchFailed;
  return kOk;
}

int launch_mma(const PackedView& w, const Plan& plan, const void* x, int64_t x_stride, bool x_direct, void* y,
               int64_t M, bool bf16, float* partial, CUstream_st* stream) {
  return bf16 ? launch_type<__nv_bfloat16>(w, plan, x, x_stride, x_direct, y, M, partial, stream)
              : launch_type<__half>(w, plan, x, x_stride, x_direct, y, M, partial, stream);
}

}  // namespace ark::cuda
