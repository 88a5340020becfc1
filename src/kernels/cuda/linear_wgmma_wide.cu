// The wide warp-specialized wgmma kernel (launch.h: kWgmmaWideTiles): 256 weight rows per block, the producer
// warpgroup of wgmma_producer.cuh, two consumer warpgroups each owning two 64-row weight sets; on the grid
// of whole tiles times split-K, or on the stream-K schedule (launch.h: WgmmaStreamK) with its fix-up
// launch. Its tall form (launch.h: kWgmmaTallTiles) takes 256 rows of x and 128 weight rows, one set per
// consumer warpgroup, on either schedule. Its own translation unit so that nvcc builds it beside
// linear_wgmma.cu's two kernels (16 instances each).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/ptx_shared.cuh"
#include "kernels/cuda/wgmma_ops.cuh"
#include "kernels/cuda/wgmma_pipeline.cuh"
#include "kernels/cuda/wgmma_producer.cuh"
#include "kernels/cuda/wgmma_stream_k.cuh"

namespace ark::cuda {
namespace {

using ptx::lds128;
using ptx::lds16;
using ptx::lds32;
using ptx::smem_addr;
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)  // where the helpers exist
using wgk::read_words;
using wgk::ws_produce;
#endif
using wsk::Piece;
using wsk::piece_of;

#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
// What a lane keeps of one 64-row weight set of one chunk between the two halves of its dequantization: its
// code words of tiles ta and ta + 1 (row g of each), the chunk's block groups, the current scale terms.
template <typename T, int kBits>
struct SetChunk {
  uint32_t wa[kBits], wb[kBits];
  int bg[4];
  wg::ScaleTerm<T> sa, sb;
};

// Loads a set's words and the chunk's block groups from the chunk's ring slot (codes_s: its code region; the
// group records and block groups follow the kTiles tiles' codes).
template <typename T, int kBits, int kTiles>
__device__ __forceinline__ void load_set(uint32_t codes_s, int ta, int lane, SetChunk<T, kBits>& c) {
  constexpr int kTileCodeBytes = kChunkK * kBits, kCodeBytes = kTiles * kTileCodeBytes;
  read_words<kBits>(codes_s + ta * kTileCodeBytes + lane * kBits * 4, c.wa);
  read_words<kBits>(codes_s + (ta + 1) * kTileCodeBytes + lane * kBits * 4, c.wb);
  const uint4 bg = lds128(codes_s + kCodeBytes + 4 * kTiles * 48);
  c.bg[0] = static_cast<int>(bg.x), c.bg[1] = static_cast<int>(bg.y), c.bg[2] = static_cast<int>(bg.z),
  c.bg[3] = static_cast<int>(bg.w);
}

// The A registers of half kHalf of the chunk (k32 blocks 2 kHalf and 2 kHalf + 1, k16 steps 4 kHalf ..
// 4 kHalf + 3): per block, registers 0-3 of tile ta, then 0-3 of tile ta + 1. Half 1 keeps half 0's scale
// terms unless its first block starts a new group.
template <typename T, int kBits, int kTiles, int kHalf>
__device__ __forceinline__ void dequant_half(uint32_t codes_s, int ta, int lane, SetChunk<T, kBits>& c,
                                             uint32_t (&a)[2][8]) {
  constexpr int kCodeBytes = kTiles * kChunkK * kBits;
  const int g = lane / 4;
#pragma unroll
  for (int bb = 0; bb < 2; ++bb) {
    const int b = 2 * kHalf + bb;
    if (b == 0 || c.bg[b] != c.bg[b - 1]) {  // a new group (uniform across the block)
      const uint32_t rec = codes_s + kCodeBytes + (b * kTiles + ta) * 48;
      c.sa = wg::scale_term<T, kBits>(__uint_as_float(lds32(rec + 4 * g)),
                                      static_cast<int>(lds16(rec + 32 + 2 * g)));
      c.sb = wg::scale_term<T, kBits>(__uint_as_float(lds32(rec + 48 + 4 * g)),
                                      static_cast<int>(lds16(rec + 48 + 32 + 2 * g)));
    }
    uint32_t ra[4], rb[4];
    wg::dequant_scaled<T, kBits>(c.wa, b, c.sa, ra);
    wg::dequant_scaled<T, kBits>(c.wb, b, c.sb, rb);
#pragma unroll
    for (int r = 0; r < 4; ++r) a[bb][r] = ra[r], a[bb][4 + r] = rb[r];
  }
}

// The 4 wgmmas of half kHalf of a chunk for one 64-row weight set (x: the slot's swizzled tile).
template <bool kBf16, int kRows, int kHalf>
__device__ __forceinline__ void issue_half(float (&acc)[kRows / 2], const uint32_t (&a)[2][8],
                                           uint64_t desc0) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {  // k16 step k = 4 kHalf + kk: half k / 4 of the x tile, 32 bytes per step
    const int k = 4 * kHalf + kk;
    const uint64_t desc = desc0 + ((k / 4) * (kRows * 128) + (k % 4) * 32) / 16;
    const int bb = kk / 2, s = kk % 2;
    wg::Mma<kRows>::template run<kBf16>(acc, a[bb][2 * s], a[bb][4 + 2 * s], a[bb][2 * s + 1],
                                        a[bb][4 + 2 * s + 1], desc);
  }
}

// Turn taking between the two consumer warpgroups (ping-pong): named barriers 1 and 2 (0 is __syncthreads),
// 256 threads each: the waiting warpgroup's 128 syncs and the other's 128 arrivals.
__device__ __forceinline__ void named_bar_sync(int id) {
  asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id) {
  asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory");
}
#endif

// A value the compiler must treat as unknown: piece_of(opaque(j)) is computed again rather than kept.
[[maybe_unused]] __device__ __forceinline__ int opaque(int v) {
  asm volatile("" : "+r"(v));
  return v;
}

// The wide warp-specialized kernel (launch.h: kWgmmaWideTiles): wgmma_ws_kernel's producer warpgroup and
// mbarrier ring, 256 weight rows per block. Consumer warpgroup c owns weight sets 2c and 2c + 1 (64 rows
// each: tiles 16c + 8s + 2 warp and + 1), one fp32 accumulator set per weight set, and two A buffers of half
// a chunk each (16 registers: k32 blocks 2h, 2h + 1). A consumer's work is a stream of "units" (chunk i, set
// s, half h), 4 per chunk in the order (0,0) (0,1) (1,0) (1,1); unit u's 4 wgmmas read buffer h, and
//   issue unit u; commit; wait_group 1 (unit u - 1 retired: its buffer is free); dequantize unit u + 1
// into that buffer while unit u's wgmmas run (and the other warpgroup's). So a buffer is written only after
// the wgmmas that read it retired (no serialization, ptxas C7513), and at 128 rows of x the registers hold
// 2 x 64 accumulators + 32 A + a set's words and scales (~190 of 208). Chunk i - 1's stage goes back to the
// producer once unit (i - 1, 1, 1) retired, i.e. after unit (i, 0, 0) is issued; a piece's last stage after
// its final wait.
//
// A block runs one piece of work (the grid's tile and split) or, with the stream-K schedule (sk.blocks >
// 0), several in a row (piece_of); the ring carries over, so the producer copies the next piece's first
// chunks while the consumers finish the current one.
//
// At 256 rows of x (the tall form) a consumer warpgroup owns one set (tiles 8c + 2 warp and + 1), so a chunk
// is 2 units, (i, 0, 0) and (i, 0, 1), and the registers hold 128 accumulators + 32 A, as at 128 rows.
//
// pingpong: the consumers issue their units in strict turns (warpgroup 1's unit 0, warpgroup 2's unit 0,
// warpgroup 1's unit 1, ...): a consumer syncs on its barrier before it issues and arrives on the other's
// after. Warpgroup 1 syncs 4n - 1 times on barrier 1 (not before its first unit) and warpgroup 2 arrives
// there 4n - 1 times (not after its last); warpgroup 1 arrives 4n times on barrier 2, warpgroup 2 syncs 4n.
// One piece per block only (the planner never combines it with stream-K: the turns restart per piece).
template <typename T, int kBits, int kRows>
__global__ void __launch_bounds__(kWgmmaWsThreads, 1)
    wgmma_wide_kernel(PackedView w, const __grid_constant__ XTileMaps x_maps, T* __restrict__ y,
                      float* __restrict__ partial, int M, int cps, bool pingpong, WgmmaStreamK sk) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kTiles = wgmma_wide_tiles(kRows);
  constexpr int kSets = kTiles / 16;  // 64-row weight sets per consumer warpgroup
  constexpr int kS = wgmma_wide_stages(kBits, kRows);
  static_assert(kS >= 2, "the ring needs two stages");
  constexpr int kXBytes = kRows * kChunkK * 2;
  constexpr int kMetaStage = static_cast<int>(wgmma_wide_meta_bytes(kBits, kRows));
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kProducerThreads = 128, kConsumerWarps = 8;
  // 88 / 208: 64512 of the block's 64512. The consumers use up to 205 at 128 rows (ptxas); the producer's
  // copies of 32 tiles spilled 4-36 bytes at 72. (At 256 rows the producer needed 104 while it copied x by
  // cp.async, 32 copies per chunk; with x by TMA 88 spills nothing in any instance.)
  constexpr int kProducerRegs = 88, kConsumerRegs = 208;
  static_assert(kProducerThreads * kProducerRegs + 2 * kProducerThreads * kConsumerRegs <=
                    kWgmmaWsThreads * (65536 / kWgmmaWsThreads / 8 * 8),
                "setmaxnreg: the consumers would wait forever for registers the block does not hold");
  extern __shared__ unsigned char smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
  // The ring (launch.h: wgmma_wide_stage_bytes): x tiles, then the stages' codes and records, then mbarriers.
  const uint32_t meta0 = base + kS * kXBytes, full0 = meta0 + kS * kMetaStage, empty0 = full0 + 8 * kS;

  const int tid = threadIdx.x;
  const int split = sk.blocks > 0 ? 0 : blockIdx.z;

  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < kS; ++s) {
      wgp::mbar_init(full0 + 8 * s, kProducerThreads);
      wgp::mbar_init(empty0 + 8 * s, kConsumerWarps);
    }
  }
  __syncthreads();  // the only block barrier

  if (tid < kProducerThreads) {
    wgp::regs_dec<kProducerRegs>();
    wgk::RingCursor ring;
    Piece pc;
    // opaque(tid): the thread's copy offsets are worked out per piece, not hoisted out of the piece loop
    // (at 88 registers that spilled them, ptxas: 24-48 bytes at 128 rows of x).
    for (int j = 0; piece_of<kRows, kTiles>(sk, w, cps, j, pc); ++j)
      ws_produce<kBits, kRows, kTiles, kS, true>(w, x_maps, pc.m0, pc.tile0, pc.c0, pc.n, base, full0, empty0,
                                                 opaque(tid), ring);
    wgp::cp_async_wait_all();  // exit only with no copy of ours in flight
    return;
  }

  wgp::regs_inc<kConsumerRegs>();
  const int cw = tid / 128 - 1, warp = (tid / 32) % 4, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int ta0 = cw * 8 * kSets + 2 * warp, ta1 = ta0 + 8;  // this lane's tiles of set 0 and set 1
  const int bar_mine = cw == 0 ? 1 : 2, bar_other = cw == 0 ? 2 : 1;
  float acc0[kRows / 2], acc1[kSets == 2 ? kRows / 2 : 1];
  uint32_t a0[2][8], a1[2][8];  // A buffers of half 0 and half 1
  SetChunk<T, kBits> sc;

  int slot = 0;
  uint32_t phase = 0;
  for (int j = 0;; ++j) {
    int n_chunks;
    {
      Piece pc;
      if (!piece_of<kRows, kTiles>(sk, w, cps, j, pc)) break;
      n_chunks = pc.n;
    }
    const int n_units = 2 * kSets * n_chunks;
    auto turn_begin = [&](int u) {
      if (pingpong && (cw == 1 || u > 0)) named_bar_sync(bar_mine);
    };
    auto turn_end = [&](int u) {
      if (pingpong && (cw == 0 || u + 1 < n_units)) named_bar_arrive(bar_other);
    };
#pragma unroll
    for (int i = 0; i < kRows / 2; ++i) acc0[i] = 0.0f;
    if constexpr (kSets == 2) {
#pragma unroll
      for (int i = 0; i < kRows / 2; ++i) acc1[i] = 0.0f;
    }
    if (n_chunks > 0) {
      const uint32_t codes0 = meta0 + slot * kMetaStage;
      wgp::mbar_wait(full0 + 8 * slot, phase);
      load_set<T, kBits, kTiles>(codes0, ta0, lane, sc);
      dequant_half<T, kBits, kTiles, 0>(codes0, ta0, lane, sc, a0);
    }
    for (int i = 0; i < n_chunks; ++i) {
      const uint32_t slot_addr = base + slot * kXBytes, codes_s = meta0 + slot * kMetaStage;
      const uint64_t desc0 = wg::desc_sw128(slot_addr);
      constexpr int kUnits = 2 * kSets;  // units per chunk
      // Unit u: the 4 wgmmas of one half of the chunk (half::value) on accumulators acc from A buffer a.
      auto issue_unit = [&](int u, auto half, auto& acc, const uint32_t(&a)[2][8]) {
        turn_begin(u);
        wg::fence();
        wg::fence_operands(acc);
        issue_half<kBf16, kRows, decltype(half)::value>(acc, a, desc0);
        wg::commit();
        turn_end(u);
      };
      issue_unit(kUnits * i, std::integral_constant<int, 0>{}, acc0, a0);  // unit (i, 0, 0)
      wg::wait<1>();  // the chunk's previous unit retired: buffer 1 is free and chunk i - 1's stage is read
      if (i > 0 && lane == 0) wgp::mbar_arrive(empty0 + 8 * (slot == 0 ? kS - 1 : slot - 1));
      dequant_half<T, kBits, kTiles, 1>(codes_s, ta0, lane, sc, a1);
      issue_unit(kUnits * i + 1, std::integral_constant<int, 1>{}, acc0, a1);  // unit (i, 0, 1)
      wg::wait<1>();  // unit (i, 0, 0) retired: buffer 0 is free
      if constexpr (kSets == 2) {
        load_set<T, kBits, kTiles>(codes_s, ta1, lane, sc);
        dequant_half<T, kBits, kTiles, 0>(codes_s, ta1, lane, sc, a0);
        issue_unit(kUnits * i + 2, std::integral_constant<int, 0>{}, acc1, a0);  // unit (i, 1, 0)
        wg::wait<1>();  // unit (i, 0, 1) retired: buffer 1 free, set 0's sums final for chunk i
        wg::fence_operands(acc0);
        dequant_half<T, kBits, kTiles, 1>(codes_s, ta1, lane, sc, a1);
        issue_unit(kUnits * i + 3, std::integral_constant<int, 1>{}, acc1, a1);  // unit (i, 1, 1)
        wg::wait<1>();  // unit (i, 1, 0) retired: buffer 0 is free
      }
      if (++slot == kS) slot = 0, phase ^= 1u;
      if (i + 1 < n_chunks) {
        const uint32_t next_codes = meta0 + slot * kMetaStage;
        wgp::mbar_wait(full0 + 8 * slot, phase);
        load_set<T, kBits, kTiles>(next_codes, ta0, lane, sc);
        dequant_half<T, kBits, kTiles, 0>(next_codes, ta0, lane, sc, a0);
      }
    }
    wg::wait<0>();
    wg::fence_operands(acc0);
    if constexpr (kSets == 2) wg::fence_operands(acc1);
    // The piece's last stage back to the producer (it may hold the next piece's chunks).
    if (n_chunks > 0 && lane == 0) wgp::mbar_arrive(empty0 + 8 * (slot == 0 ? kS - 1 : slot - 1));
    Piece pc;
    piece_of<kRows, kTiles>(sk, w, cps, opaque(j), pc);

    if (pc.out >= 0) {  // a stream-K piece: its fp32 sums to the block's slot, for the fix-up launch
#pragma unroll
      for (int s = 0; s < kSets; ++s)
        wsk::store_piece<kRows, kTiles>(partial, pc.out, s, tid - kProducerThreads, s == 0 ? acc0 : acc1);
      continue;
    }
    // d[4i + e] of set s: weight row 16 warp + g + 8 (e / 2) of the set's 64, x row 8i + 2t + e % 2.
#pragma unroll
    for (int s = 0; s < kSets; ++s)
      wsk::store_set<T, kRows>(
          s == 0 ? acc0 : acc1, w,
          static_cast<int64_t>(pc.tile0 + cw * 8 * kSets + 8 * s) * kTileRows + 16 * warp + g, pc.m0, t, M, y,
          partial && sk.blocks == 0 ? partial + static_cast<int64_t>(split) * M * w.n : nullptr);
  }
#else
  __trap();
#endif
}

template <typename T, int kBits, int kRows>
int launch_rows(const PackedView& w, const Plan& p, const XTileMaps& x_maps, void* y, int64_t M,
                float* partial, cudaStream_t s) {
  constexpr int kTiles = wgmma_wide_tiles(kRows);
  const WgmmaStreamK& sk = p.wgmma_sk;
  if (sk.blocks > 0) {  // stream-K: a persistent grid, then the fix-up of the tiles cut between blocks
    if (p.wgmma_pingpong || (sk.sk_tiles > 0 && !partial) || sk.m_tiles != (M + kRows - 1) / kRows ||
        sk.chunks != w.chunks)
      return kBadArgument;
    wgmma_wide_kernel<T, kBits, kRows>
        <<<sk.blocks, kWgmmaWsThreads, wgmma_wide_smem_bytes(kBits, kRows), s>>>(
            w, x_maps, static_cast<T*>(y), partial, static_cast<int>(M), p.chunks_per_split, false, sk);
    if (cudaGetLastError() != cudaSuccess) return kLaunchFailed;
    return wsk::launch_sk_fixup<T, kRows, kTiles>(w, partial, y, M, sk, s) == cudaSuccess ? kOk
                                                                                          : kLaunchFailed;
  }
  const dim3 grid(static_cast<unsigned>((M + kRows - 1) / kRows),
                  static_cast<unsigned>((w.n8_tiles + kTiles - 1) / kTiles), static_cast<unsigned>(p.splits));
  wgmma_wide_kernel<T, kBits, kRows><<<grid, kWgmmaWsThreads, wgmma_wide_smem_bytes(kBits, kRows), s>>>(
      w, x_maps, static_cast<T*>(y), p.splits > 1 ? partial : nullptr, static_cast<int>(M),
      p.chunks_per_split, p.wgmma_pingpong, WgmmaStreamK{});
  return cudaGetLastError() == cudaSuccess ? kOk : kLaunchFailed;
}

template <typename T, int kBits>
int launch_bits(const PackedView& w, const Plan& p, const XTileMaps& x_maps, void* y, int64_t M,
                float* partial, cudaStream_t s) {
  switch (p.wgmma_rows) {
    case 64:
      return launch_rows<T, kBits, 64>(w, p, x_maps, y, M, partial, s);
    case 128:
      return launch_rows<T, kBits, 128>(w, p, x_maps, y, M, partial, s);
    case 256:
      return launch_rows<T, kBits, 256>(w, p, x_maps, y, M, partial, s);
    default:
      return kBadArgument;
  }
}

template <typename T>
int launch_type(const PackedView& w, const Plan& p, const XTileMaps& x_maps, void* y, int64_t M,
                float* partial, cudaStream_t s) {
  switch (w.bits) {
    case 2:
      return launch_bits<T, 2>(w, p, x_maps, y, M, partial, s);
    case 3:
      return launch_bits<T, 3>(w, p, x_maps, y, M, partial, s);
    case 4:
      return launch_bits<T, 4>(w, p, x_maps, y, M, partial, s);
    case 8:
      return launch_bits<T, 8>(w, p, x_maps, y, M, partial, s);
    default:
      return kBadArgument;
  }
}

template <typename T, int kBits, int kRows>
cudaError_t allow_rows() {
  return cudaFuncSetAttribute(wgmma_wide_kernel<T, kBits, kRows>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(wgmma_wide_smem_bytes(kBits, kRows)));
}
template <typename T, int kBits>
cudaError_t allow_bits() {
  cudaError_t e;
  if ((e = allow_rows<T, kBits, 64>()) != cudaSuccess) return e;
  if ((e = allow_rows<T, kBits, 128>()) != cudaSuccess) return e;
  return allow_rows<T, kBits, 256>();
}

template <typename T>
cudaError_t allow_type() {
  cudaError_t e;
  if ((e = allow_bits<T, 2>()) != cudaSuccess) return e;
  if ((e = allow_bits<T, 3>()) != cudaSuccess) return e;
  if ((e = allow_bits<T, 4>()) != cudaSuccess) return e;
  return allow_bits<T, 8>();
}

}  // namespace

cudaError_t prepare_wgmma_wide_kernels() {
  const cudaError_t e = allow_type<__half>();
  return e != cudaSuccess ? e : allow_type<__nv_bfloat16>();
}

int launch_wgmma_wide(const PackedView& w, const Plan& plan, const XTileMaps& x_maps, void* y, int64_t M,
                      bool bf16, float* partial, cudaStream_t stream) {
  return bf16 ? launch_type<__nv_bfloat16>(w, plan, x_maps, y, M, partial, stream)
              : launch_type<__half>(w, plan, x_maps, y, M, partial, stream);
}

}  // namespace ark::cuda
