// The streaming decode kernel (M <= 32): no block barrier while the weights stream. Each warp owns 4 n8 tiles
// and streams their code words, scales and zeros through its own ring of shared-memory slots with cp.async;
// the warp's lanes copy in teams (one tile each) and read their own words back, so each lane's
// cp.async.wait_group plus one __syncwarp per chunk is all the synchronisation there is.
//
// Why. The tensor-core split-K kernel (linear_mma.cu) moves the weights of 32 tiles through a ring that all 8
// warps of a block fill and drain in step (cp.async wait, block barrier, ldmatrix, mma per chunk); on the
// H200 it reached 51-62% of the copy bandwidth at M = 1 on the 70B shapes. This kernel removes the barrier
// and lets every warp run ahead on its own; that alone gained 2-5% (v3: issue-bound at ~119 warp
// instructions per 512 bytes of codes). v4 cuts the instructions per chunk (475 -> 292 on the steady path
// at M <= 8, bf16): the swapped product below, copies at constant offsets, 32-bit shared addresses; 83-87%
// of the copy bandwidth at M = 1 on the 70B shapes (docs/CUDA.md has the versions and the profile).
//
// Block: 8 warps, `block_warps_n` of them side by side along N (4 tiles each), the other 8 / block_warps_n
// along K: the warps of one tile group take chunks k, k + kw, ... of the block's range and add their sums in
// shared memory in a fixed order at the end. Split-K across blocks (grid.y) writes fp32 partials, summed by
// launch_reduce in split order (deterministic); on sm_90 devices the splits of a tile range (up to 8) run as
// one thread-block cluster instead and rank 0 sums the others' shared-memory sums in the same order, so
// split-K costs no second launch and no partials in global memory.
// The reduce launch is a programmatic dependent launch on sm_90 (Plan::gemv_pdl, kAuto: 1-3.5% faster), and
// so is the decode kernel itself (Plan::gemv_pdl_in): it streams its first stages of weights while the
// previous kernel on the stream finishes and reads x after pdl::wait (the prologue; pdl.cuh). The decode
// kernels and the reduces trigger the next launch at their start. A
// stream-K schedule (gemv_sk_kernel: equal shares of the (tile range, chunk) units over a grid sized to the
// SMs) is built and tested but measured 0.6-0.94x split-K on an H200 (docs/CUDA.md, v8): forced only.
//
// Arithmetic: a lane's words are exactly its mma.sync m16n8k16 B fragments of each tile, dequantized to
// q - z exactly (cuda_layout.h, mma_fragment.cuh). The product is swapped (y^T = W x^T): the B fragments of
// two tiles are the A fragment of their 16 rows and x, staged once per block in fragment order, is the B
// operand (one 16-byte shared load per k32 block, shared by the 4 tiles); fp32 sums over a group, the fp32
// scale applied once per group. The mma does the products for all M <= 8 rows at the cost of one (a second
// for rows 8-15); a CUDA-core FMA version (one row per lane, x in fp32) would need ~3 instructions per
// weight and row (extract, convert, FMA) against ~2.3 per weight in all for any M <= 8 here (1.4 of them
// dequantizing), so it was not built.
//
// Rows of x. Up to 8 rows one mma per k16 step covers them all; M = 9..16 takes two, M = 17..32 four, on the
// same dequantized A registers, so the weight stream and its dequantization (most of the instructions) are
// shared by all rows; the 17..32-row kernels keep four sets of sums and run one block per SM.
//
// Shared memory (bytes), x staged for the block's whole split (M <= 8, or warps sharing tiles along K):
// block-group table [cps][4] int32 | 8 warp rings (launch.h: gemv_ring_bytes) | x [chunk][k32 block q][row
// m < M][lane t][4 registers] (16 bytes per (q, m, t); rows 64 bytes apart, so the 8 lanes of a 16-byte load
// phase hit distinct banks). With the x ring (M > 8 in blocks of 8 warps along N or 4 x 2, gemv_x_ring):
// mbarriers (full[8], empty[8]) | table | rings | x [8 slots][row m < M][128 k + 8 padding] (natural order,
// read by ldmatrix), so shared memory no longer grows with K x M and large K needs no split for room.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/mma_fragment.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/ptx_shared.cuh"

namespace ark::cuda {
namespace {

using frag::Traits;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::lds128;
using ptx::lds16;
using ptx::lds32;
using ptx::lds64;
using ptx::smem_addr;
using ptx::sts128;

constexpr int kThreads = kGemvWarps * 32;

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
// 16-byte copy to a shared-memory address (32-bit, as the hot loop keeps them).
__device__ __forceinline__ void cp_async16_s(uint32_t dst, const void* src) {
#if ARK_GEMV_L2_PREFETCH == 256
  asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
#elif ARK_GEMV_L2_PREFETCH == 128
  asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
#endif
}
// ldmatrix.x4: lane L names row L % 8 of 8x8 matrix L / 8; each lane gets, per matrix, its row g = lane / 4,
// elements 2t, 2t + 1. With the four matrices at k offsets 0, 8, 16, 24 of a k32 block of x rows, that is
// {b0, b1} of both k16 steps: the B operands of the swapped product below.
__device__ __forceinline__ uint4 ldsm_x4(uint32_t a) {
  uint4 v;
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "r"(a));
  return v;
}
// mbarriers of the x ring (sm_80 PTX; try_wait on sm_90, which lets the hardware suspend the warp).
__device__ __forceinline__ void mbar_init(uint32_t a, int count) {
  asm volatile("mbarrier.init.shared.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_inval(uint32_t a) {
  asm volatile("mbarrier.inval.shared.b64 [%0];\n" ::"r"(a) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t a) {  // release: this thread's shared stores and reads
  asm volatile("{\n .reg .b64 state;\n mbarrier.arrive.shared.b64 state, [%0];\n}\n" ::"r"(a) : "memory");
}
// The barrier's current phase also waits for this thread's cp.async copies issued so far (pending count + 1
// now, - 1 when they land).
__device__ __forceinline__ void mbar_arrive_cp_async(uint32_t a) {
  asm volatile("cp.async.mbarrier.arrive.shared.b64 [%0];\n" ::"r"(a) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t a, uint32_t parity) {  // acquire
  uint32_t done;
  do {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(a), "r"(parity)
        : "memory");
#else
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.test_wait.parity.shared.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(a), "r"(parity)
        : "memory");
#endif
  } while (!done);
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
__device__ __forceinline__ void read_words(uint32_t a, uint32_t (&w)[kBits]) {
  if constexpr (kBits % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kBits; i += 4) {
      const uint4 v = lds128(a + 4 * i);
      w[i] = v.x, w[i + 1] = v.y, w[i + 2] = v.z, w[i + 3] = v.w;
    }
  } else if constexpr (kBits == 2) {
    const uint2 v = lds64(a);
    w[0] = v.x, w[1] = v.y;
  } else {
#pragma unroll
    for (int i = 0; i < kBits; ++i) w[i] = lds32(a + 4 * i);
  }
}

// kRingK: 0, x staged for the whole split (any block shape); 1 or 2, the x ring in blocks of 8 / kRingK warps
// along N and kRingK along K (a compile-time shape, so the ring's chunk arithmetic folds to constants).
// kTwoWide: the 17..32-row x-ring kernel at two blocks per SM (launch.h: gemv_two_wide; 128 registers, an x
// ring of kGemvTwoWideXStages slots). x_ahead: how many iterations ahead the x ring is filled (the 8 x 1
// ring: 1 .. slots - 1, from the plan; the 4 x 2 ring always kGemvXAhead). early_meta: the first stages'
// scales beside their codes where the layout allows (below, at the prologue).
//
// One block's work on one tile range (`range`: blockIdx.x of the split-K grid) over chunks c0 .. c0 +
// n_chunks of K; cps sizes the shared memory (n_chunks <= cps). partial: where this piece's fp32 sums go (row
// m, output n at partial[m * part_stride + n - part_n0]), or null to store y with the bias. reinit: the block
// ran an earlier piece (the stream-K schedule below), so the x ring's barriers are invalidated before their
// init.
template <typename T, int kBits, int kNx, int kRingK, bool kTwoWide = false>
__device__ __forceinline__ void gemv_range(const PackedView& w, const T* __restrict__ x, bool x_vec,
                                           T* __restrict__ y, float* __restrict__ partial,
                                           int64_t part_stride, int64_t part_n0, int M, int cps,
                                           int block_warps_n_arg, bool cluster, int x_ahead, bool early_meta,
                                           int64_t range, int64_t c0, int n_chunks, bool reinit) {
  constexpr bool kXRing = kRingK > 0;
  constexpr int kXS = kTwoWide ? kGemvTwoWideXStages : kGemvXStages;  // x ring slots
  static_assert(!kTwoWide || (kNx == 4 && kRingK == 1), "two blocks per SM: the 17..32-row 8 x 1 ring only");
  const int xa = kRingK == 1 ? x_ahead : kGemvXAhead;
  const int block_warps_n = kXRing ? kGemvWarps / kRingK : block_warps_n_arg;
  constexpr int kT = kGemvWarpTiles;
  constexpr int kPairs = kT / 2;  // tile pairs: the two n8 tiles of one m16 A operand
  constexpr int kRing = gemv_ring_stages(kBits);
  constexpr int kChunkWords = kWarpLanes * kBits;     // one tile's words of one chunk
  constexpr int kRingBytes = gemv_ring_bytes(kBits);  // one warp's ring
  constexpr int kSlotCodeBytes = kT * kChunkWords * 4;
  constexpr int kSlotBytes = kSlotCodeBytes + kT * 48;
  constexpr int kHdr = kXRing ? kGemvBarrierBytes : 0;  // the x ring's mbarriers
  static_assert(kRingBytes == kRing * kSlotBytes, "launch.h: gemv_ring_bytes");
  static_assert(kXS * 16 <= kGemvBarrierBytes && kGemvXAhead < kXS, "launch.h: x ring");
  // (kRingK = 2 instances are compiled either way; gemv_x_ring launches them only where the ring holds them.)
  static_assert(kNx * kPairs * 32 * 16 <= kRingBytes, "the warp's sums fit its ring");
  // Copies: the lanes of a warp split into kT teams of kTeam lanes; team tt copies tile tt's 128 * kBits
  // contiguous bytes of a chunk in 16-byte pieces, lane `sub` of the team pieces sub, sub + kTeam, ... (kTeam
  // lanes read 16 * kTeam contiguous bytes per instruction), all at constant offsets from one pointer.
  constexpr int kTeam = kWarpLanes / kT;
  constexpr int kPieces = 8 * kBits;  // 16-byte pieces of one tile's chunk
  constexpr int kLanePieces = (kPieces + kTeam - 1) / kTeam;
  static_assert(kT % 2 == 0 && kWarpLanes % kT == 0, "tiles per warp: an even divisor of 32");
  extern __shared__ __align__(16) unsigned char smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int kw = kGemvWarps / block_warps_n;  // warps sharing one group of kT tiles (split K)
  const int wn = warp % block_warps_n, wk = warp / block_warps_n;
  const int64_t tile0 = (range * block_warps_n + wn) * kT;
  const int ntiles = static_cast<int>(w.n8_tiles - tile0 >= kT ? kT
                                      : w.n8_tiles > tile0     ? w.n8_tiles - tile0
                                                               : 0);
#if ARK_GEMV_WARP_RANGES
  // Each of the kw warps of a tile group takes a contiguous run of the block's chunks.
  const int run = (n_chunks + kw - 1) / kw, first = wk * run, step = 1;
  const int my_n = ntiles > 0 || kXRing ? max(0, min(run, n_chunks - first)) : 0;
#else
  // The kw warps of a tile group interleave: warp k takes chunks k, k + kw, ... With the x ring every warp
  // runs ceil(n_chunks / kw) iterations (a warp without tiles or chunks too: it still fills its share of x
  // and releases the slots of its chunks).
  const int first = wk, step = kw;
  const int my_n = (ntiles > 0 || kXRing) && wk < n_chunks ? (n_chunks - wk + kw - 1) / kw : 0;
#endif

  int32_t* bg_s = reinterpret_cast<int32_t*>(smem + kHdr);
  unsigned char* ring = smem + kHdr + cps * 16 + warp * kRingBytes;  // [kRing] slots of kSlotBytes
  unsigned char* x_s = smem + kHdr + cps * 16 + kGemvWarps * kRingBytes;
  const uint32_t ring_s = smem_addr(ring);
  const uint32_t bar_s = smem_addr(smem);  // x ring: full[kXS], then empty[kXS]

  // Stage j of this warp (chunk first + j * step, j < my_n) goes into ring slot j % kRing: the kT tiles'
  // code words ([kT][32 lanes][kBits]) and, after them, each tile's 48-byte group record (8 fp32 scales, 8
  // uint16 zeros) of the chunk's first k32 block's group (a group that starts inside the chunk is read where
  // it starts, in the loop). Every address below is a constant per lane plus a running offset: the copy
  // pointers advance by a constant per stage (no per-stage 64-bit index arithmetic) and the slot is a byte
  // offset into the ring.
  const int team = lane / kTeam, sub = lane % kTeam;
  const bool copy_lane = team < ntiles;
  const uint32_t* csrc =
      w.codes + ((tile0 + (copy_lane ? team : 0)) * w.chunks + c0 + first) * kChunkWords + sub * 4;
  const int cstep = step * kChunkWords;
  const uint32_t cdst = ring_s + team * kChunkWords * 4 + sub * 16;
  // Meta copies: lane 3 tt + piece copies 16 bytes of tile tt's group record (piece 0, 1: scales of rows 0-3,
  // 4-7; piece 2: the 8 zeros) from one pointer per lane, plus the group's index times the record's stride.
  const int meta_tt = lane / 3, meta_piece = lane % 3;
  const bool meta_lane = meta_tt < ntiles;
  const int64_t meta_row = (tile0 + (meta_lane ? meta_tt : 0)) * w.groups * kTileRows;
  const unsigned char* meta_src =
      meta_piece < 2 ? reinterpret_cast<const unsigned char*>(w.scales + meta_row + 4 * meta_piece)
                     : reinterpret_cast<const unsigned char*>(w.zeros + meta_row);
  const int meta_stride = meta_piece < 2 ? kTileRows * 4 : kTileRows * 2;  // bytes per group
  const uint32_t meta_dst = ring_s + kSlotCodeBytes + meta_tt * 48 + meta_piece * 16;
  const int32_t* meta_bg = bg_s + first * 4;  // the next stage's block-group entry
  uint32_t meta_bg_s = smem_addr(meta_bg);    // the same as a shared address (the two-block kernel's)
  // early: every stage's group is chunk * w.chunk_group_step (cuda_layout.h), so the first stages' scales
  // need no table and are copied beside their codes, before the prologue's barrier.
  const bool early = (ARK_GEMV_EARLY_META || early_meta) && w.chunk_group_step >= 0;
  int meta_group = static_cast<int>(c0 + first) * w.chunk_group_step;  // early: the next stage's group
  const int meta_group_step = step * w.chunk_group_step;
  int issue_off = 0;  // the next stage's slot, in bytes
  auto next_slot = [](int off) { return off + kSlotBytes == kRingBytes ? 0 : off + kSlotBytes; };
  auto issue_codes = [&](bool live) {  // stage j = 0, 1, 2, ... in order; live: j < my_n
    if (live && copy_lane) {
#pragma unroll
      for (int i = 0; i < kLanePieces; ++i)
        if (sub + i * kTeam < kPieces) cp_async16_s(cdst + issue_off + i * kTeam * 16, csrc + i * kTeam * 4);
    }
    csrc += cstep;
  };
  auto issue_meta = [&](bool live) {  // after issue_codes of the same stage
    if (live && meta_lane) {
      const int group = early ? meta_group : kTwoWide ? static_cast<int32_t>(lds32(meta_bg_s)) : *meta_bg;
      cp_async16_s(meta_dst + issue_off, meta_src + static_cast<int64_t>(group) * meta_stride);
    }
    meta_bg += 4 * step;
    meta_bg_s += 16 * step;
    meta_group += meta_group_step;
  };

  // The x ring (kXRing): chunk j of the block goes into slot j % kXS, rows in natural order. Every
  // thread copies its (at most two) 16-byte pieces of the chunk, then arrives on the slot's full barrier
  // (256 arrivals, each also waiting for the thread's copies to land); before refilling a slot it waits for
  // the slot's empty barrier (32 * block_warps_n arrivals: every thread of the warps that take the chunk
  // has read it). With kw = 2 warps along K the warps of one tile group take alternate chunks, so the ring
  // holds both warps' chunks: iteration i fills the chunks of iteration i + xa. x rows that
  // cannot be read in 16-byte pieces (x_vec false: act-order, unaligned, K % 8 != 0) are read element-wise
  // through k_source and stored.
  constexpr int kXSlotPieces = 8 * kNx * 16;  // 16-byte pieces of one chunk at most
  constexpr int kXThreadPieces = (kXSlotPieces + kThreads - 1) / kThreads;
  constexpr int kXLog = kXS == 8 ? 3 : kXS == 4 ? 2 : 0;  // slot and phase: mask, shift
  static_assert(kXS == 1 << kXLog && kXLog > 0, "launch.h: x ring slots: 4 or 8");
  const uint32_t xr_s = smem_addr(x_s);
  const int x_slot_bytes = M * kGemvXRowBytes;
  // Per piece r of this thread (row m = p / 16, k = 8 (p % 16) of the chunk, p = thread + 256 r): the source
  // at chunk 0 of the block, the k it starts at, and the offset inside a slot; worked out once per block.
  // (The two-block kernel keeps 32-bit element offsets from x instead of pointers: 128 registers.)
  using XIndex = std::conditional_t<kTwoWide, int32_t, int64_t>;
  const T* x_src[kTwoWide ? 1 : kXThreadPieces];
  XIndex x_k0[kXThreadPieces], x_row_off[kXThreadPieces];
  uint32_t x_dst[kXThreadPieces];
#pragma unroll
  for (int r = 0; r < kXThreadPieces; ++r) {
    const int p = threadIdx.x + r * kThreads, m = min(p / 16, M - 1), v = p % 16;
    x_k0[r] = static_cast<XIndex>(c0 * kChunkK + v * 8);
    x_row_off[r] = static_cast<XIndex>(m * w.k);
    if constexpr (!kTwoWide) x_src[r] = x + m * w.k + x_k0[r];
    x_dst[r] = m * kGemvXRowBytes + v * 16;
  }
  auto issue_x = [&](int j) {  // chunk j of the block, j < n_chunks, in order
    const int slot = j & (kXS - 1);
    if (j >= kXS) mbar_wait(bar_s + 8 * (kXS + slot), ((j >> kXLog) - 1) & 1);
    const uint32_t dst0 = xr_s + slot * x_slot_bytes;
#pragma unroll
    for (int r = 0; r < kXThreadPieces; ++r) {
      if (threadIdx.x + r * kThreads >= M * 16) break;
      const uint32_t dst = dst0 + x_dst[r];
      const int64_t kp0 = x_k0[r] + j * kChunkK;
      if (x_vec) {
        if (kp0 < w.k)
          cp_async16_s(dst, kTwoWide ? x + (x_row_off[r] + x_k0[r] + static_cast<XIndex>(j * kChunkK))
                                     : x_src[r] + j * kChunkK);
        else
          sts128(dst, make_uint4(0u, 0u, 0u, 0u));
      } else {
        const int m = (threadIdx.x + r * kThreads) / 16;
        const uint16_t* xh = reinterpret_cast<const uint16_t*>(x);
        uint32_t e[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int64_t s0 = source_k(w, kp0 + 2 * i), s1 = source_k(w, kp0 + 2 * i + 1);
          const uint32_t lo = s0 >= 0 ? xh[m * w.k + s0] : 0u;
          const uint32_t hi = s1 >= 0 ? xh[m * w.k + s1] : 0u;
          e[i] = lo | (hi << 16);
        }
        sts128(dst, make_uint4(e[0], e[1], e[2], e[3]));
      }
    }
    if (x_vec) mbar_arrive_cp_async(bar_s + 8 * slot);
    mbar_arrive(bar_s + 8 * slot);
  };

  // Prologue. First what reads only the layer: the first kRing - 1 stages' codes and, when their groups
  // follow from the chunk (early), their scales and zeros, then the block-group table. Then pdl::wait: where
  // this kernel was launched as a programmatic dependent of the previous kernel on the stream
  // (Plan::gemv_pdl_in), that kernel may still be running until here, so x and every write come after it.
  // x rows into fragment order: the 8 elements k = 8v .. 8v + 7 of a chunk (v < 16) are register v % 4 of
  // the four lanes t (pairs 2t, 2t + 1) in k32 block q = v / 4, so one 16-byte load per (block, row, lane) is
  // the two k16 steps' B operands {b0, b1} of the swapped product below. Rows that can be read in 16-byte
  // pieces (x_vec) are copied with 4-byte cp.async, all in flight at once (a load-then-store loop waits an L2
  // latency per piece per thread: several microseconds per block at M = 16); others element-wise through
  // k_source. Without early, the scales and zeros need the table, so they follow the block barrier. Commit
  // groups: the codes, then (early) one per stage's meta, then x; or the codes, x, then one per stage's meta:
  // kRing + 1 before the loop either way, so at iteration i the wait below leaves stage i complete. With the
  // x ring, its barriers are set up here instead and the first xa iterations' chunks of x are issued after
  // the block barrier.
  const int pieces = kXRing ? 0 : M * n_chunks * 16;
  if (kXRing && threadIdx.x < kXS) {
    if (reinit) {  // the previous piece's barriers: no copy or arrival is pending on them (see gemv_sk_kernel)
      mbar_inval(bar_s + 8 * threadIdx.x);
      mbar_inval(bar_s + 8 * (kXS + threadIdx.x));
    }
    mbar_init(bar_s + 8 * threadIdx.x, kThreads);
    mbar_init(bar_s + 8 * (kXS + threadIdx.x), 32 * block_warps_n);
  }
#pragma unroll
  for (int j = 0; j < kRing - 1; ++j) {
    issue_codes(j < my_n);
    issue_off = next_slot(issue_off);
  }
  issue_off = 0;  // the meta copies below walk the same slots again
  cp_async_commit();
  auto issue_first_meta = [&]() {
#pragma unroll
    for (int j = 0; j < kRing - 1; ++j) {
      issue_meta(j < my_n);
      issue_off = next_slot(issue_off);
      cp_async_commit();
    }
  };
  if (early) issue_first_meta();
  for (int i = threadIdx.x; i < n_chunks * 4; i += kThreads) bg_s[i] = w.block_group[c0 * 4 + i];
  pdl::wait();
  if (!kXRing && x_vec) {
    for (int p = threadIdx.x; p < pieces; p += kThreads) {
      const int m = p / (n_chunks * 16), ci = (p / 16) % n_chunks, v = p % 16;
      const int64_t kp0 = (c0 + ci) * kChunkK + v * 8;
      unsigned char* dst = x_s + ((ci * 4 + v / 4) * M + m) * 64 + (v % 4) * 4;
      if (kp0 < w.k) {
#pragma unroll
        for (int e = 0; e < 4; ++e) cp_async<4>(dst + e * 16, x + m * w.k + kp0 + 2 * e);
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) *reinterpret_cast<uint32_t*>(dst + e * 16) = 0u;
      }
    }
  } else if (!kXRing) {
    const uint16_t* xh = reinterpret_cast<const uint16_t*>(x);  // any alignment, any order
    for (int p = threadIdx.x; p < pieces; p += kThreads) {
      const int m = p / (n_chunks * 16), ci = (p / 16) % n_chunks, v = p % 16;
      const int64_t kp0 = (c0 + ci) * kChunkK + v * 8;
      unsigned char* dst = x_s + ((ci * 4 + v / 4) * M + m) * 64 + (v % 4) * 4;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t s0 = source_k(w, kp0 + 2 * e), s1 = source_k(w, kp0 + 2 * e + 1);
        const uint32_t lo = s0 >= 0 ? xh[m * w.k + s0] : 0u;
        const uint32_t hi = s1 >= 0 ? xh[m * w.k + s1] : 0u;
        *reinterpret_cast<uint32_t*>(dst + e * 16) = lo | (hi << 16);
      }
    }
  }
  cp_async_commit();
  // This thread's x copies have landed (the x group is the last: the first stages' copies with it).
  if (!kXRing) cp_async_wait<0>();
  __syncthreads();
  if (!early) issue_first_meta();
  if (kXRing)
    for (int j = 0; j < xa * kw && j < n_chunks; ++j) issue_x(j);

  // The swapped product: D (16 weight rows x 8 rows of x) = A (two n8 tiles' weights, m16 x k16) · B (x,
  // k16 x n8). A lane's two B fragments of tiles 2p and 2p + 1 (dequantized from its words) are exactly the
  // A fragment {a0, a1, a2, a3} = {b0 of tile 2p, b0 of tile 2p + 1, b1 of 2p, b1 of 2p + 1}, and one
  // 16-byte shared load of x is {b0, b1} of both k16 steps of a k32 block: every operand lands in the
  // registers the mma reads, with no moves, and one mma covers two tiles for 8 rows of x. Column n of D is
  // row 8h + n of x (h < kNx: one mma per 8 rows on the same A registers): lanes past M read row M - 1 (any
  // staged row would do: those columns are never stored), so no zeros are stored or selected. D: c0, c1 =
  // tile 2p row g, x rows 8h + 2t, 8h + 2t + 1; c2, c3 = tile 2p + 1.
  float acc[kNx][kPairs][4];
#pragma unroll
  for (int h = 0; h < kNx; ++h)
#pragma unroll
    for (int p = 0; p < kPairs; ++p)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[h][p][e] = 0.0f;
  const int x_blk = M * 64, x_chunk = 4 * M * 64;
  // Whole-split staging: lane (g, t)'s 16 bytes of row min(8h + g, M - 1) at x_cur + x_row[h]. The x ring:
  // lane L's ldmatrix row address, row min(8h + L % 8, M - 1) at k offset 8 (L / 8), inside the slot.
  uint32_t x_cur = kXRing ? xr_s : smem_addr(x_s) + first * x_chunk + t * 16;
  int x_row[kNx];
#pragma unroll
  for (int h = 0; h < kNx; ++h)
    x_row[h] =
        kXRing ? min(8 * h + lane % 8, M - 1) * kGemvXRowBytes + (lane / 8) * 16 : min(8 * h + g, M - 1) * 64;
  const uint32_t words_lane = ring_s + lane * kBits * 4;
  const uint32_t scale_lane = ring_s + kSlotCodeBytes + 4 * g;
  const uint32_t zero_lane = ring_s + kSlotCodeBytes + 32 + 2 * g;
  const int32_t* bg_cur = bg_s + first * 4;
  uint32_t bg_cur_s = smem_addr(bg_cur);
  int read_off = 0;
  const int n_iter = kXRing ? (n_chunks + kw - 1) / kw : my_n;
  for (int i = 0; i < n_iter; ++i) {
    cp_async_wait<kRing - 2>();
    __syncwarp();  // every lane's copies of stage i are visible; slot (i - 1) % kRing has been read by all
    const int chunk = first + i * step;  // of the block
    if (kXRing) {
      // This thread has read its chunk of iteration i - 1: release its x slot (one arrival per thread, the
      // same one warp instruction as one per warp); then fill the chunks of iteration i + xa.
      if (i > 0 && chunk - step < n_chunks) mbar_arrive(bar_s + 8 * (kXS + ((chunk - step) & (kXS - 1))));
#pragma unroll
      for (int r = 0; r < (kXRing ? kRingK : 1); ++r) {
        const int j = (i + xa) * kw + r;
        if (j < n_chunks) issue_x(j);
      }
    }
    issue_codes(i + kRing - 1 < my_n);
    issue_meta(i + kRing - 1 < my_n);
    issue_off = next_slot(issue_off);
    cp_async_commit();
    if (kXRing && (ntiles == 0 || i >= my_n)) continue;  // past N or past K: only fills x, releases slots

    int4 bg;
    if constexpr (kTwoWide) {
      const uint4 v = lds128(bg_cur_s);
      bg = make_int4(static_cast<int>(v.x), static_cast<int>(v.y), static_cast<int>(v.z),
                     static_cast<int>(v.w));
    } else {
      bg = *reinterpret_cast<const int4*>(bg_cur);
    }
    bg_cur += 4 * step;
    bg_cur_s += 16 * step;
    uint32_t wd[kT][kBits];
    float sc[kT];
    uint2 zt[kT];
    const uint32_t words_at = words_lane + read_off;  // this stage's words of tile 0
    auto read_all_words = [&]() {
#pragma unroll
      for (int tt = 0; tt < kT; ++tt) read_words<kBits>(words_at + tt * kChunkWords * 4, wd[tt]);
    };
    if constexpr (!kTwoWide) read_all_words();
#pragma unroll
    for (int tt = 0; tt < kT; ++tt) {
      sc[tt] = __uint_as_float(lds32(scale_lane + read_off + tt * 48));
      zt[tt] = frag::zero_term<T, kBits>(static_cast<int>(lds16(zero_lane + read_off + tt * 48)));
    }
    read_off = next_slot(read_off);
    uint32_t xc;
    if (kXRing) {
      const int slot = chunk & (kXS - 1);
      mbar_wait(bar_s + 8 * slot, (chunk >> kXLog) & 1);  // the chunk's x has landed
      xc = x_cur + slot * x_slot_bytes;
    } else {
      xc = x_cur;
      x_cur += step * x_chunk;
    }
    // x (fp32 sum over a group) * (q - z) per tile pair; the group's scale multiplies it once (flush). The
    // chunk's first mma starts its sums from zero (no zeroing moves).
    float tmp[kNx][kPairs][4];
    auto flush = [&]() {
#pragma unroll
      for (int h = 0; h < kNx; ++h)
#pragma unroll
        for (int p = 0; p < kPairs; ++p) {
          acc[h][p][0] += sc[2 * p] * tmp[h][p][0];
          acc[h][p][1] += sc[2 * p] * tmp[h][p][1];
          acc[h][p][2] += sc[2 * p + 1] * tmp[h][p][2];
          acc[h][p][3] += sc[2 * p + 1] * tmp[h][p][3];
        }
    };
    // One k32 block of all tiles; kZero: the block starts the sums (the chunk's first block, or in the
    // general path never: there a group change zeroes them explicitly).
    auto block = [&](auto blk_c, auto zero_c) {
      constexpr int blk = decltype(blk_c)::value;
      constexpr bool kZero = decltype(zero_c)::value;
      uint4 xv[kNx];
#pragma unroll
      for (int h = 0; h < kNx; ++h)
        xv[h] = kXRing ? ldsm_x4(xc + x_row[h] + blk * 64) : lds128(xc + x_row[h] + blk * x_blk);
#pragma unroll
      for (int p = 0; p < kPairs; ++p) {
        uint32_t a[4], b[4];
        frag::dequant_block<T, kBits>(wd[2 * p], blk, zt[2 * p], a);
        frag::dequant_block<T, kBits>(wd[2 * p + 1], blk, zt[2 * p + 1], b);
#pragma unroll
        for (int h = 0; h < kNx; ++h) {
          if constexpr (kZero)
            frag::mma_16816_zero<T>(tmp[h][p], a[0], b[0], a[1], b[1], xv[h].x, xv[h].y);
          else
            frag::mma_16816<T>(tmp[h][p], a[0], b[0], a[1], b[1], xv[h].x, xv[h].y);
          frag::mma_16816<T>(tmp[h][p], a[2], b[2], a[3], b[3], xv[h].z, xv[h].w);
        }
      }
    };
    using B0 = std::integral_constant<int, 0>;
    using B1 = std::integral_constant<int, 1>;
    using B2 = std::integral_constant<int, 2>;
    using B3 = std::integral_constant<int, 3>;
    using Zero = std::true_type;
    using Acc = std::false_type;
    // One group over the whole chunk (groups of 128 or more): no checks. All four entries are compared:
    // the packer gives padding blocks group 0, so the first and last alone can match across a change.
    const bool one_group = bg.x == bg.y && bg.y == bg.z && bg.z == bg.w;
    if constexpr (kTwoWide) {
      // Two blocks per SM (128 registers): one tile pair at a time over the chunk's four k32 blocks, so
      // only that pair's words and one set of group sums are live (the 4 row groups' sums of the other
      // pair are not), at the cost of loading x once per pair (16 more ldmatrix per chunk). kGeneral: a
      // group may start inside the chunk (small or odd groups): flush and read the pair's scales inline.
      auto pair_pass = [&](auto general_c) {
        constexpr bool kGeneral = decltype(general_c)::value;
#pragma unroll
        for (int p = 0; p < kPairs; ++p) {
          uint32_t w0[kBits], w1[kBits];
          read_words<kBits>(words_at + 2 * p * kChunkWords * 4, w0);
          read_words<kBits>(words_at + (2 * p + 1) * kChunkWords * 4, w1);
          float tp[kNx][4];
          auto flush_pair = [&]() {
#pragma unroll
            for (int h = 0; h < kNx; ++h) {
              acc[h][p][0] += sc[2 * p] * tp[h][0];
              acc[h][p][1] += sc[2 * p] * tp[h][1];
              acc[h][p][2] += sc[2 * p + 1] * tp[h][2];
              acc[h][p][3] += sc[2 * p + 1] * tp[h][3];
            }
          };
#pragma unroll
          for (int blk = 0; blk < 4; ++blk) {
            if constexpr (kGeneral) {
              const int g_prev = blk == 1 ? bg.x : blk == 2 ? bg.y : bg.z;
              const int g_cur = blk == 1 ? bg.y : blk == 2 ? bg.z : bg.w;
              if (blk > 0 && g_cur != g_prev) {
                flush_pair();
#pragma unroll
                for (int h = 0; h < kNx; ++h)
#pragma unroll
                  for (int e = 0; e < 4; ++e) tp[h][e] = 0.0f;
#pragma unroll
                for (int u = 0; u < 2; ++u) {
                  const int tt = 2 * p + u;
                  const int64_t mi = ((tile0 + min(tt, ntiles - 1)) * w.groups + g_cur) * kTileRows;
                  sc[tt] = __ldg(w.scales + mi + g);
                  zt[tt] = frag::zero_term<T, kBits>(__ldg(w.zeros + mi + g));
                }
              }
            }
            uint32_t a[4], b[4];
            frag::dequant_block<T, kBits>(w0, blk, zt[2 * p], a);
            frag::dequant_block<T, kBits>(w1, blk, zt[2 * p + 1], b);
#pragma unroll
            for (int h = 0; h < kNx; ++h) {
              const uint4 xv = ldsm_x4(xc + x_row[h] + blk * 64);
              if (blk == 0)
                frag::mma_16816_zero<T>(tp[h], a[0], b[0], a[1], b[1], xv.x, xv.y);
              else
                frag::mma_16816<T>(tp[h], a[0], b[0], a[1], b[1], xv.x, xv.y);
              frag::mma_16816<T>(tp[h], a[2], b[2], a[3], b[3], xv.z, xv.w);
            }
          }
          flush_pair();
          // Keeps the compiler from reusing this pair's x fragments for the next one (holding all 16 of a
          // chunk's ldmatrix results is what spilled): a warp barrier orders shared memory, so x is read
          // again.
          __syncwarp();
        }
      };
      if (one_group)
        pair_pass(std::false_type{});
      else
        pair_pass(std::true_type{});
      continue;
    }
    block(B0{}, Zero{});
    if (one_group) {
      block(B1{}, Acc{});
      block(B2{}, Acc{});
      block(B3{}, Acc{});
    } else {  // a group starts inside the chunk (small or odd groups): flush and read its scales inline
      auto next_group = [&](int gi) {
        flush();
#pragma unroll
        for (int h = 0; h < kNx; ++h)
#pragma unroll
          for (int p = 0; p < kPairs; ++p)
#pragma unroll
            for (int e = 0; e < 4; ++e) tmp[h][p][e] = 0.0f;
#pragma unroll
        for (int tt = 0; tt < kT; ++tt) {
          const int64_t mi = ((tile0 + min(tt, ntiles - 1)) * w.groups + gi) * kTileRows;
          sc[tt] = __ldg(w.scales + mi + g);
          zt[tt] = frag::zero_term<T, kBits>(__ldg(w.zeros + mi + g));
        }
      };
      if (bg.y != bg.x) next_group(bg.y);
      block(B1{}, Acc{});
      if (bg.z != bg.y) next_group(bg.z);
      block(B2{}, Acc{});
      if (bg.w != bg.z) next_group(bg.w);
      block(B3{}, Acc{});
    }
    flush();
  }
  cp_async_wait<0>();  // this lane's copies have landed before its ring is reused

  // The kw warps of a tile group add their sums in warp order (deterministic), the first one stores. Each
  // warp's sums go into its own ring (free now: every lane of the warp is past its last read and its last
  // copy after the __syncwarp below; the x ring and its barriers lie elsewhere).
  __syncwarp();
  float* red = reinterpret_cast<float*>(ring);
#pragma unroll
  for (int h = 0; h < kNx; ++h)
#pragma unroll
    for (int p = 0; p < kPairs; ++p)
      *reinterpret_cast<float4*>(red + ((h * kPairs + p) * 32 + lane) * 4) =
          make_float4(acc[h][p][0], acc[h][p][1], acc[h][p][2], acc[h][p][3]);
  __syncthreads();
  // Rows m < M and n < N of tile pair p, 8 x rows h: sum[e] is tile 2p, row g, x row 8h + 2t + e; sum[2 + e]
  // tile 2p + 1. Stored as fp32 partials of this split, or as y with the bias.
  auto store = [&](int h, int p, const float(&sum)[4], bool to_partial) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int m = 8 * h + 2 * t + e;
      if (m >= M) continue;
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        if (2 * p + u >= ntiles) continue;
        const int64_t n = (tile0 + 2 * p + u) * kTileRows + g;
        if (n >= w.n) continue;
        const float v = sum[2 * u + e];
        if (to_partial)
          partial[m * part_stride + n - part_n0] = v;
        else
          y[m * w.n + n] = Traits<T>::from_float(v + (w.bias ? w.bias[n] : 0.0f));
      }
    }
  };
  const bool reducer = ntiles > 0 && wk == 0;
  if (reducer) {
#pragma unroll
    for (int h = 0; h < kNx; ++h) {
#pragma unroll
      for (int p = 0; p < kPairs; ++p) {
        if (2 * p >= ntiles) break;
        float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int k = 0; k < kw; ++k) {
          const float* r =
              reinterpret_cast<const float*>(smem + kHdr + cps * 16 + (k * block_warps_n + wn) * kRingBytes);
          const float4 v = *reinterpret_cast<const float4*>(r + ((h * kPairs + p) * 32 + lane) * 4);
          sum[0] += v.x, sum[1] += v.y, sum[2] += v.z, sum[3] += v.w;
        }
        if (cluster)  // in place: this lane alone read this element of its warp's own ring (k = 0)
          *reinterpret_cast<float4*>(red + ((h * kPairs + p) * 32 + lane) * 4) =
              make_float4(sum[0], sum[1], sum[2], sum[3]);
        else
          store(h, p, sum, partial != nullptr);
      }
    }
  }
  if (!cluster) return;
  // Split-K inside one launch (sm_90): the splits of a tile range are one thread-block cluster (launch_bits),
  // each block's sums lie in its shared memory, and rank 0 adds those of ranks 0, 1, ... in order, through
  // distributed shared memory: the same sums in the same order as launch_reduce, with no fp32 partials in
  // global memory and no second launch. The second cluster barrier keeps every block's shared memory alive
  // until rank 0 has read it.
  ptx::cluster_sync();
  if (reducer && ptx::cluster_rank() == 0) {
    const int ranks = static_cast<int>(gridDim.y);
#pragma unroll
    for (int h = 0; h < kNx; ++h) {
#pragma unroll
      for (int p = 0; p < kPairs; ++p) {
        if (2 * p >= ntiles) break;
        const uint32_t a = smem_addr(red + ((h * kPairs + p) * 32 + lane) * 4);
        float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int r = 0; r < ranks; ++r) {
          const float4 v = ptx::ld_cluster_f32x4(ptx::map_cluster(a, r));
          sum[0] += v.x, sum[1] += v.y, sum[2] += v.z, sum[3] += v.w;
        }
        store(h, p, sum, false);
      }
    }
  }
  ptx::cluster_sync();
}

#define ARK_GEMV_BOUNDS \
  __launch_bounds__(kThreads, kTwoWide ? 2 : kNx > 2 ? kGemvWideBlocksPerSm : kGemvMaxBlocksPerSm)

// The split-K schedule: block (blockIdx.x, blockIdx.y) takes tile range blockIdx.x, chunks of split
// blockIdx.y.
template <typename T, int kBits, int kNx, int kRingK, bool kTwoWide = false>
__global__ void ARK_GEMV_BOUNDS gemv_kernel(PackedView w, const T* __restrict__ x, bool x_vec,
                                            T* __restrict__ y, float* __restrict__ partial, int M, int cps,
                                            int block_warps_n_arg, bool cluster, int x_ahead,
                                            bool early_meta) {
  pdl::launch_dependents();
  const int split = blockIdx.y;
  const int64_t c0 = static_cast<int64_t>(split) * cps;
  const int n_chunks = static_cast<int>(min(static_cast<int64_t>(cps), w.chunks - c0));
  gemv_range<T, kBits, kNx, kRingK, kTwoWide>(
      w, x, x_vec, y, partial ? partial + static_cast<int64_t>(split) * M * w.n : nullptr, w.n, 0, M, cps,
      block_warps_n_arg, cluster, x_ahead, early_meta, blockIdx.x, c0, n_chunks, false);
}

// The stream-K schedule (Plan::gemv_stream_k; launch.h gemv_sk_*): the (tile range, chunk) units,
// range-major, are cut into gridDim.x contiguous shares of equal size (+-1 chunk), so every block of a grid
// sized to the SMs streams the same number of chunks whatever the number of ranges. A share runs as one piece
// per tile range it touches: a piece that covers its whole range stores y, the others (at most the share's
// first and last) leave fp32 sums in the block's two workspace slots, which gemv_sk_reduce_kernel adds in
// block order (deterministic: no atomics, the same order every call). Between pieces a block barrier: the
// reducer warps have read the rings, every copy of the piece has landed (each thread waited for its own), and
// every phase of the x ring's full barriers was completed and waited for by a warp with tiles, so none has an
// arrival pending when the next piece invalidates and re-initialises them.
template <typename T, int kBits, int kNx, int kRingK>
__global__ void __launch_bounds__(kThreads, kNx > 2 ? kGemvWideBlocksPerSm : kGemvMaxBlocksPerSm)
    gemv_sk_kernel(PackedView w, const T* __restrict__ x, bool x_vec, T* __restrict__ y,
                   float* __restrict__ partial, int M, int cps, int block_warps_n, int x_ahead,
                   bool early_meta, int64_t range_rows) {
  pdl::launch_dependents();
  const int64_t units = gemv_sk_units(w.n8_tiles, w.chunks, block_warps_n);
  const int64_t begin = gemv_sk_begin(blockIdx.x, gridDim.x, units),
                end = gemv_sk_begin(blockIdx.x + 1, gridDim.x, units);
  for (int64_t u = begin; u < end;) {
    const int64_t range = u / w.chunks, c0 = u % w.chunks;
    const int n = static_cast<int>(min(w.chunks - c0, end - u));
    const bool whole = n == w.chunks;
    float* slot =
        whole ? nullptr
              : partial + (2 * static_cast<int64_t>(blockIdx.x) + (u == begin ? 0 : 1)) * M * range_rows;
    if (u != begin) __syncthreads();  // the previous piece's reducers are done with the rings
    gemv_range<T, kBits, kNx, kRingK, false>(w, x, x_vec, y, slot, range_rows, range * range_rows, M, cps,
                                             block_warps_n, false, x_ahead, early_meta, range, c0, n,
                                             u != begin);
    u += n;
  }
}

// Sums the pieces of the tile ranges that stream-K split between blocks, in block order, plus the bias, into
// y (ranges a single block covered were stored by it). Block (range, j) takes outputs 4 kThreads j .. of the
// range's M x rows, four consecutive rows of one x row per thread (float4 loads: range_rows is a multiple of
// 32 and every slot starts at a multiple of it), so all of a thread's loads are in flight at once. The share
// arithmetic (64-bit divisions) is done once per block by thread 0. Earlier forms: one thread per output with
// the divisions in every thread (~10 us of them at M = 32 on 8192x28672, H200), then one block per range
// striding over its outputs (19 us at M = 16 on the H100: a chain of dependent memory latencies per thread).
template <typename T>
__global__ void gemv_sk_reduce_kernel(PackedView w, const float* __restrict__ partial, T* __restrict__ y,
                                      int M, int blocks, int block_warps_n, int64_t range_rows) {
  pdl::launch_dependents();
  __shared__ int64_t share[3];  // b0, b1, the first slot
  const int64_t range = blockIdx.x;
  if (threadIdx.x == 0) {
    const int64_t units = gemv_sk_units(w.n8_tiles, w.chunks, block_warps_n);
    const int64_t u0 = range * w.chunks, u1 = u0 + w.chunks - 1;
    const int64_t b0 = gemv_sk_block_of(u0, blocks, units);
    share[0] = b0;
    share[1] = gemv_sk_block_of(u1, blocks, units);
    // The range's pieces: block b0's slot 1 unless its share starts at u0, then slot 0 of b0 + 1 .. b1.
    share[2] = gemv_sk_begin(b0, blocks, units) >= u0 ? 0 : 1;
  }
  __syncthreads();
  const int64_t b0 = share[0], b1 = share[1];
  if (b0 == b1) return;  // one block covered the range and stored y
  const int rows = static_cast<int>(min(range_rows, w.n - range * range_rows));
  const int e = 4 * (blockIdx.y * blockDim.x + threadIdx.x);  // output m * range_rows + r of the range
  const int m = e / static_cast<int>(range_rows), r = e % static_cast<int>(range_rows);
  if (m >= M || r >= rows) return;
  pdl::wait();
  const int64_t at = static_cast<int64_t>(m) * range_rows + r, slot = static_cast<int64_t>(M) * range_rows;
  float4 acc = *reinterpret_cast<const float4*>(partial + (2 * b0 + share[2]) * slot + at);
  for (int64_t b = b0 + 1; b <= b1; ++b) {
    const float4 v = *reinterpret_cast<const float4*>(partial + 2 * b * slot + at);
    acc.x += v.x, acc.y += v.y, acc.z += v.z, acc.w += v.w;
  }
  const float sum[4] = {acc.x, acc.y, acc.z, acc.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if (r + i >= rows) break;
    const int64_t n = range * range_rows + r + i;
    y[m * w.n + n] = Traits<T>::from_float(sum[i] + (w.bias ? w.bias[n] : 0.0f));
  }
}

// Split-K's reduce for Plan::gemv_pdl: launch_reduce's sums (split order, then the bias), after pdl::wait.
template <typename T>
__global__ void gemv_splitk_reduce_kernel(PackedView w, const float* __restrict__ partial, int splits,
                                          T* __restrict__ y, int64_t M) {
  pdl::launch_dependents();
  pdl::wait();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= M * w.n) return;
  float acc = 0.0f;
  for (int s = 0; s < splits; ++s) acc += partial[s * M * w.n + i];
  y[i] = Traits<T>::from_float(acc + (w.bias ? w.bias[i % w.n] : 0.0f));
}

// A reduce kernel, as a programmatic dependent launch when pdl (sm_90).
template <typename K, typename... Args>
cudaError_t launch_reduce_kernel(bool dependent, dim3 blocks, cudaStream_t s, K kernel, Args... args) {
  return pdl::launch(dependent, 1, blocks, dim3(kThreads), 0, s, kernel, args...);
}

// One launch; with p.gemv_cluster the splits of each tile range form one cluster (1 x splits x 1) and are
// summed inside the kernel.
template <typename T, int kBits, int kNx, int kRingK, bool kTwoWide = false>
cudaError_t launch_one(const PackedView& w, const Plan& p, dim3 grid, const T* x, bool x_vec, T* y,
                       float* partial, int M, cudaStream_t s) {
  const bool cluster = p.gemv_cluster;
  return pdl::launch(p.gemv_pdl_in, cluster ? static_cast<int>(grid.y) : 1, grid, dim3(kThreads), p.smem_bytes, s,
                       gemv_kernel<T, kBits, kNx, kRingK, kTwoWide>, w, x, x_vec, y,
                       cluster ? static_cast<float*>(nullptr) : partial, M, p.chunks_per_split, p.block_tiles,
                       cluster, p.gemv_x_ahead, p.gemv_early_meta);
}

// The stream-K schedule: the pieces' kernel, then (when a range was split between blocks) their reduce.
template <typename T, int kBits>
int launch_sk(const PackedView& w, const Plan& p, const T* x, bool x_vec, T* y, int64_t M, float* partial,
              cudaStream_t s) {
  const int bw = p.block_tiles, m = static_cast<int>(M);
  const int64_t units = gemv_sk_units(w.n8_tiles, w.chunks, bw);
  const int64_t rows = static_cast<int64_t>(bw) * kGemvWarpTiles * kTileRows;
  const int ring = gemv_x_ring(M, bw) ? kGemvWarps / bw : 0;
  if (p.gemv_sk_blocks < 1 || p.gemv_sk_blocks > units || !partial || p.gemv_cluster || p.gemv_two_wide ||
      ring == 2 ||
      p.chunks_per_split < std::min<int64_t>(w.chunks, (units + p.gemv_sk_blocks - 1) / p.gemv_sk_blocks) ||
      (ring == 1 && (p.gemv_x_ahead < 1 || p.gemv_x_ahead > kGemvXStages - 1)))
    return kBadArgument;
  const dim3 grid(static_cast<unsigned>(p.gemv_sk_blocks));
  auto go = [&](auto kernel) {
    pdl::launch(p.gemv_pdl_in, 1, grid, dim3(kThreads), p.smem_bytes, s, kernel, w, x, x_vec, y, partial, m,
                  p.chunks_per_split, bw, p.gemv_x_ahead, p.gemv_early_meta, rows);
  };
  if (M <= 8)
    go(gemv_sk_kernel<T, kBits, 1, 0>);
  else if (M <= 16)
    ring ? go(gemv_sk_kernel<T, kBits, 2, 1>) : go(gemv_sk_kernel<T, kBits, 2, 0>);
  else
    ring ? go(gemv_sk_kernel<T, kBits, 4, 1>) : go(gemv_sk_kernel<T, kBits, 4, 0>);
  if (cudaGetLastError() != cudaSuccess) return kLaunchFailed;
  // Every range whole in one share (units / blocks a multiple of the chunks): nothing to add.
  if (units % p.gemv_sk_blocks == 0 && units / p.gemv_sk_blocks % w.chunks == 0) return kOk;
  const dim3 blocks(static_cast<unsigned>(units / w.chunks),  // tile ranges x 4 kThreads of their outputs
                    static_cast<unsigned>((M * rows + 4 * kThreads - 1) / (4 * kThreads)));
  return launch_reduce_kernel(p.gemv_pdl, blocks, s, gemv_sk_reduce_kernel<T>, w,
                              static_cast<const float*>(partial), y, m, p.gemv_sk_blocks, bw,
                              rows) == cudaSuccess
             ? kOk
             : kLaunchFailed;
}

template <typename T, int kBits>
int launch_bits(const PackedView& w, const Plan& p, const void* x, bool x_vec, void* y, int64_t M,
                float* partial, cudaStream_t s) {
  const int ring = gemv_x_ring(M, p.block_tiles) ? kGemvWarps / p.block_tiles : 0;  // warps along K
  const int64_t block_tiles = static_cast<int64_t>(p.block_tiles) * kGemvWarpTiles;
  const dim3 grid(static_cast<unsigned>((w.n8_tiles + block_tiles - 1) / block_tiles),
                  static_cast<unsigned>(p.splits));
  if (p.gemv_cluster && (p.splits < 2 || p.splits > kGemvMaxClusterSplits)) return kBadArgument;
  const int xs = p.gemv_two_wide ? kGemvTwoWideXStages : kGemvXStages;  // the x ring's lookahead must fit it
  if (ring == 1 && (p.gemv_x_ahead < 1 || p.gemv_x_ahead > xs - 1)) return kBadArgument;
  if (p.gemv_two_wide && !(M > 16 && ring == 1)) return kBadArgument;
  auto* xt = static_cast<const T*>(x);
  auto* yt = static_cast<T*>(y);
  if (p.gemv_stream_k) return launch_sk<T, kBits>(w, p, xt, x_vec, yt, M, partial, s);
  float* part = p.splits > 1 ? partial : nullptr;
  const int m = static_cast<int>(M);
  cudaError_t e;
  if (M <= 8)
    e = launch_one<T, kBits, 1, 0>(w, p, grid, xt, x_vec, yt, part, m, s);
  else if (M <= 16 && ring == 1)
    e = launch_one<T, kBits, 2, 1>(w, p, grid, xt, x_vec, yt, part, m, s);
  else if (M <= 16 && ring == 2)
    e = launch_one<T, kBits, 2, 2>(w, p, grid, xt, x_vec, yt, part, m, s);
  else if (M <= 16)
    e = launch_one<T, kBits, 2, 0>(w, p, grid, xt, x_vec, yt, part, m, s);
  else if (ring == 1 && p.gemv_two_wide)
    e = launch_one<T, kBits, 4, 1, true>(w, p, grid, xt, x_vec, yt, part, m, s);
  else if (ring == 1)
    e = launch_one<T, kBits, 4, 1>(w, p, grid, xt, x_vec, yt, part, m, s);
  else if (ring == 2)
    e = launch_one<T, kBits, 4, 2>(w, p, grid, xt, x_vec, yt, part, m, s);
  else
    e = launch_one<T, kBits, 4, 0>(w, p, grid, xt, x_vec, yt, part, m, s);
  // Plan::gemv_pdl: split-K's reduce here, as a dependent launch (launch_linear leaves it out).
  if (e == cudaSuccess && p.gemv_pdl && p.splits > 1 && !p.gemv_cluster)
    e = launch_reduce_kernel(true, static_cast<unsigned>((M * w.n + 255) / 256), s,
                             gemv_splitk_reduce_kernel<T>, w, static_cast<const float*>(partial), p.splits,
                             yt, M);
  return e == cudaSuccess ? kOk : kLaunchFailed;
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
  cudaError_t e;
  if ((e = allow(gemv_kernel<T, kBits, 1, 0>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_kernel<T, kBits, 2, 0>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_kernel<T, kBits, 2, 1>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_kernel<T, kBits, 2, 2>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_kernel<T, kBits, 4, 0>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_kernel<T, kBits, 4, 1>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_kernel<T, kBits, 4, 1, true>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_sk_kernel<T, kBits, 1, 0>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_sk_kernel<T, kBits, 2, 0>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_sk_kernel<T, kBits, 2, 1>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_sk_kernel<T, kBits, 4, 0>, bytes)) != cudaSuccess) return e;
  if ((e = allow(gemv_sk_kernel<T, kBits, 4, 1>, bytes)) != cudaSuccess) return e;
  return allow(gemv_kernel<T, kBits, 4, 2>, bytes);
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
