// The Hopper GEMM for prefill-sized M (sm_90a; kAuto runs it at 33 <= M <= 2048 on int4 layers, from 17 on
// those whose chunks each lie in one group): y^T = W x^T on
// warpgroup MMAs (wgmma.mma_async), the weights dequantized in the main loop straight into the A operand's
// registers, x the B operand in shared memory.
//
// Why this shape. mma.sync (linear_mma.cu) is compute-bound at 64-128 rows of x, and the large-M path
// (dequant.cu + cuBLASLt) writes and re-reads a 16-bit copy of the weight each call. wgmma is the H100's
// full-rate tensor-core path and reads its B operand from shared memory itself, so the registers and issue
// slots of a warp go to dequantization. The packed layout needs no change: warp w of a warpgroup holds rows
// 16w..16w+15 of the 64-row A tile in the m16n8k16 A-fragment layout, which is exactly a lane's B fragments
// of n8 tiles 2w and 2w + 1 (cuda_layout.h; linear_gemv.cu's swapped product, a warpgroup wide).
//
// Block: 2 consumer warpgroups (256 threads), each owning 64 weight rows (8 n8 tiles), times `kRows` rows of
// x (64 or 128: the wgmma N; the warp-specialized kernel also 32). Grid: x = tiles of x rows (fastest, so the
// blocks that share a weight range run
// together and read it from DRAM once), y = 128-row weight ranges, z = split-K (fp32 partials summed by
// launch_reduce in split order). In wgmma_kernel all threads copy; wgmma_ws_kernel (below) has a producer
// warpgroup; wgmma_wide_kernel (linear_wgmma_wide.cu) the same producer with 256 weight rows per block.
// The planner picks by layer size and M (launch.h: wgmma_auto_variant): above 128 rows the wide kernel's tall
// form (256 rows of x, 128 weight rows); up to 64 the warp-specialized one, scaling each chunk's sums after
// its wgmmas, where every chunk lies in one group; else the wide kernel on the larger layers and the
// warp-specialized one on the smaller ones; wgmma_kernel only when forced (cuda::set_wgmma_variant). The
// wide kernel can instead run a stream-K schedule (a persistent grid of one block per SM sharing tiles out
// by chunks, launch.h: WgmmaStreamK), which kAuto takes where whole tiles leave SMs idle
// (wgmma_auto_schedule).
//
// Ring: wgmma_stages(kRows) stages of one 128-k chunk each, filled by cp.async (the warp-specialized
// kernels take x by TMA, wgmma_producer.cuh, into the same layout): x [2 halves of 64
// k][kRows][128 bytes] in the canonical K-major layout with the 128-byte swizzle (16-byte piece c of row r at
// c ^ (r % 8)), rows past M zero-filled; the 16 tiles' code words as they lie in the layout (128 * bits
// contiguous bytes per tile); per k32 block whose group differs from the previous block's, each tile's
// 48-byte group record (8 fp32 scales, 8 uint16 zeros). Chunk i + stages - 1 is copied while chunk i is
// computed: the slot it overwrites held chunk i - 1, whose wgmmas every warpgroup has waited for before the
// barrier.
//
// Per chunk and warpgroup: the 8 wgmmas of chunk i (A in 32 registers), wgmma.wait_group 1 (chunk i - 1
// done), then, while chunk i's run, chunk i + 1 is dequantized into the other set of 32 registers. ptxas
// serializes wgmmas when a non-wgmma instruction writes an input register of a wgmma between the pipeline
// stage's first wgmma and its wait (C7513), so a block-by-block interleave (dequantize block b, issue its
// wgmmas) is not an option: the next chunk's registers are written while the current chunk's wgmmas run, and
// read only after.
//
// Arithmetic: A = s * (q - z) rounded once to T (wgmma_ops.cuh; bf16 through s = s_hi + s_lo, within 2u^2 of
// one rounding), products summed in fp32 by the tensor core, bias added in fp32, one rounding to T at the
// end. That is the dequant + cuBLAS path's rounding (docs/CUDA.md's bound with u_T * sum|x w|, plus
// 2 u_T^2 * sum|x w| for bf16's split scale).
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

using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::lds128;
using ptx::lds16;
using ptx::lds32;
using ptx::smem_addr;
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)  // where the helpers exist
using wgk::cp16;
using wgk::read_words;
using wgk::ws_produce;
#endif
using wsk::Piece;
using wsk::piece_of;

template <typename T, int kBits, int kRows>
__global__ void __launch_bounds__(kWgmmaThreads, wgmma_max_blocks_per_sm(kRows))
    wgmma_kernel(PackedView w, const T* __restrict__ x, int64_t x_stride, bool x_direct, T* __restrict__ y,
                 float* __restrict__ partial, int M, int cps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kS = wgmma_stages(kRows);
  constexpr int kXBytes = kRows * kChunkK * 2;                   // one stage's x tile
  constexpr int kTileCodeBytes = kChunkK * kBits;                // one tile's words of one chunk
  constexpr int kCodeBytes = kWgmmaBlockTiles * kTileCodeBytes;  // the block's 16 tiles
  constexpr int kMetaBytes = 4 * kWgmmaBlockTiles * 48;  // group records; then 16 bytes of block groups
  constexpr int kStage = static_cast<int>(wgmma_stage_bytes(kBits, kRows));
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;  // the swizzle needs 1024-byte alignment

  const int tid = threadIdx.x, wg = tid / 128, warp = (tid / 32) % 4, lane = tid % 32, g = lane / 4,
            t = lane % 4;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int64_t tile0 = static_cast<int64_t>(blockIdx.y) * kWgmmaBlockTiles;
  const int split = blockIdx.z;
  const int64_t c0 = static_cast<int64_t>(split) * cps;
  const int n_chunks = static_cast<int>(min(static_cast<int64_t>(cps), w.chunks - c0));

  // Copies of chunk c0 + j into ring slot j % kS. Every address is worked out once here, outside the loop:
  // the copies are issued from the same loop that dequantizes, so their instructions count (a first version
  // that recomputed 64-bit addresses per piece spent ~480 of ~800 instructions per chunk and warp on copies).
  //   x: thread tid copies 16-byte piece (h, c) = ((tid / 8) % 2, tid % 8) of rows tid / 16 + 16 i.
  const int xr0 = tid / 16, xh = (tid / 8) % 2, xc = tid % 8;
  constexpr int kXCopies = kRows * 16 / kWgmmaThreads;
  const uint32_t x_dst = xh * (kRows * 128) + xr0 * 128 + ((xc ^ (xr0 % 8)) * 16);  // + i * 2048
  const T* x_src = x + (m0 + xr0) * x_stride + c0 * kChunkK + xh * 64 + xc * 8;     // + i * 16 rows
  uint32_t x_rows_ok = 0;
#pragma unroll
  for (int i = 0; i < kXCopies; ++i) x_rows_ok |= (m0 + xr0 + 16 * i < M ? 1u : 0u) << i;
  const int64_t x_kp0 = c0 * kChunkK + xh * 64 + xc * 8;  // this thread's k of chunk c0; + 128 per chunk
  //   codes: piece p = tid + 256 i of the block's [16 tiles][8 * bits pieces].
  constexpr int kPiecesPerTile = kTileCodeBytes / 16;
  constexpr int kCodeCopies = (kWgmmaBlockTiles * kPiecesPerTile + kWgmmaThreads - 1) / kWgmmaThreads;
  const uint32_t* c_src[kCodeCopies];
  uint32_t c_ok = 0;
#pragma unroll
  for (int i = 0; i < kCodeCopies; ++i) {
    const int p = tid + i * kWgmmaThreads, tt = p / kPiecesPerTile, piece = p % kPiecesPerTile;
    const int64_t tile = tile0 + tt;
    const bool ok = p < kWgmmaBlockTiles * kPiecesPerTile && tile < w.n8_tiles;
    c_ok |= (ok ? 1u : 0u) << i;
    c_src[i] = w.codes + ((ok ? tile : 0) * w.chunks + c0) * (kWarpLanes * kBits) + piece * 4;  // + chunk
  }
  //   group records: thread tid < 192 copies piece tid % 3 of tile (tid / 3) % 16's record of k32 block
  //   tid / 48's group, when that block starts a new group; thread 192 copies the chunk's 4 block-group
  //   entries (the dequantizer reads them from shared memory). The group indices of the next chunk to copy
  //   are loaded one copy ahead, so no global load latency sits between the barrier and the copies.
  const int mb = tid / (3 * kWgmmaBlockTiles), mt = (tid / 3) % kWgmmaBlockTiles, mp = tid % 3;
  const bool meta_lane = tid < 4 * kWgmmaBlockTiles * 3 && tile0 + mt < w.n8_tiles;
  const unsigned char* m_src =
      mp < 2
          ? reinterpret_cast<const unsigned char*>(w.scales + ((tile0 + mt) * w.groups) * kTileRows + 4 * mp)
          : reinterpret_cast<const unsigned char*>(w.zeros + ((tile0 + mt) * w.groups) * kTileRows);
  const int m_stride = mp < 2 ? kTileRows * 4 : kTileRows * 2;  // bytes per group
  const uint32_t m_dst = kXBytes + kCodeBytes + (mb * kWgmmaBlockTiles + mt) * 48 + mp * 16;
  int pf_group = 0, pf_prev = 0;  // the group of block mb (and of block mb - 1) of the next chunk to copy
  auto prefetch_groups = [&](int j) {
    if (meta_lane && j < n_chunks) {
      pf_group = __ldg(w.block_group + (c0 + j) * 4 + mb);
      pf_prev = mb > 0 ? __ldg(w.block_group + (c0 + j) * 4 + mb - 1) : -1;
    }
  };
  prefetch_groups(0);
  auto issue = [&](int j) {
    const uint32_t slot = base + (j % kS) * kStage;
    const bool k_ok = !x_direct || x_kp0 + j * kChunkK < w.k;  // x_direct: positions past K read as zero
#pragma unroll
    for (int i = 0; i < kXCopies; ++i) {
      const bool ok = k_ok && ((x_rows_ok >> i) & 1u);
      cp16(slot + x_dst + i * 2048, ok ? x_src + (16 * i) * x_stride + j * kChunkK : x, ok ? 16 : 0);
    }
#pragma unroll
    for (int i = 0; i < kCodeCopies; ++i)
      if ((c_ok >> i) & 1u)
        cp16(slot + kXBytes + (tid + i * kWgmmaThreads) * 16, c_src[i] + j * (kWarpLanes * kBits));
    if (meta_lane && pf_group != pf_prev)
      cp16(slot + m_dst, m_src + static_cast<int64_t>(pf_group) * m_stride);
    if (tid == 4 * kWgmmaBlockTiles * 3)
      cp16(slot + kXBytes + kCodeBytes + kMetaBytes, w.block_group + (c0 + j) * 4);
    prefetch_groups(j + 1);
  };

  float acc[kRows / 2];
#pragma unroll
  for (int i = 0; i < kRows / 2; ++i) acc[i] = 0.0f;

#pragma unroll
  for (int j = 0; j < kS - 1; ++j) {
    if (j < n_chunks) issue(j);
    cp_async_commit();
  }

  // This lane's two tiles: rows g of tiles 2 warp and 2 warp + 1 of its warpgroup's 8.
  const int ta = wg * 8 + 2 * warp;
  // Chunk j's A operand (all 8 k16 steps) from its ring slot: per k32 block b, registers 0-3 of tile 2w, then
  // 0-3 of tile 2w + 1.
  auto dequant_chunk = [&](int j, uint32_t(&a)[4][8]) {
    const uint32_t codes_s = base + (j % kS) * kStage + kXBytes;
    uint32_t wa[kBits], wb[kBits];
    read_words<kBits>(codes_s + ta * kTileCodeBytes + lane * kBits * 4, wa);
    read_words<kBits>(codes_s + (ta + 1) * kTileCodeBytes + lane * kBits * 4, wb);
    const uint4 bg = lds128(codes_s + kCodeBytes + kMetaBytes);
    const int bgs[4] = {static_cast<int>(bg.x), static_cast<int>(bg.y), static_cast<int>(bg.z),
                        static_cast<int>(bg.w)};
    wg::ScaleTerm<T> sa, sb;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      if (b == 0 || bgs[b] != bgs[b - 1]) {  // a new group (uniform across the block)
        const uint32_t rec = codes_s + kCodeBytes + (b * kWgmmaBlockTiles + ta) * 48;
        sa = wg::scale_term<T, kBits>(__uint_as_float(lds32(rec + 4 * g)),
                                      static_cast<int>(lds16(rec + 32 + 2 * g)));
        sb = wg::scale_term<T, kBits>(__uint_as_float(lds32(rec + 48 + 4 * g)),
                                      static_cast<int>(lds16(rec + 48 + 32 + 2 * g)));
      }
      uint32_t ra[4], rb[4];
      wg::dequant_scaled<T, kBits>(wa, b, sa, ra);
      wg::dequant_scaled<T, kBits>(wb, b, sb, rb);
#pragma unroll
      for (int r = 0; r < 4; ++r) a[b][r] = ra[r], a[b][4 + r] = rb[r];
    }
  };
  // Copy groups are committed one per chunk (empty ones past the end too): chunks 0 .. kS - 2 in the
  // prologue, chunk i + kS - 1 in step i. So chunk 0 has landed when at most kS - 2 groups are pending, and
  // in step i (groups up to chunk i + kS - 2 committed) chunk i + 1 has when at most kS - 3 are.
  auto wait_chunk = [&](auto pending) {
    cp_async_wait<decltype(pending)::value>();
    __syncthreads();  // everyone's copies have landed and are visible
  };
  // One chunk: its 8 wgmmas from `cur` (one group), then wgmma.wait_group 1: chunk i - 1's wgmmas are done,
  // chunk i's stay queued on the tensor core (it never drains between chunks). While they run, the copies of
  // chunk i + kS - 1 go into the slot chunk i - 1 used (every warpgroup has passed its wait before the
  // barrier) and chunk i + 1 is dequantized into `nxt`, the registers chunk i - 1 read.
  auto step = [&](int i, uint32_t(&cur)[4][8], uint32_t(&nxt)[4][8]) {
    // The descriptor's start address is in 16-byte units in its low bits (no carry out for shared addresses),
    // so the k16 steps are constant offsets from the slot's descriptor.
    const uint64_t desc0 = wg::desc_sw128(base + (i % kS) * kStage);
    wg::fence();
    wg::fence_operands(acc);
#pragma unroll
    for (int k = 0; k < 8; ++k) {  // k16 step: half k / 4 of the x tile, 32 bytes per step inside it
      const uint64_t desc = desc0 + ((k / 4) * (kRows * 128) + (k % 4) * 32) / 16;
      const int b = k / 2, s = k % 2;
      wg::Mma<kRows>::template run<kBf16>(acc, cur[b][2 * s], cur[b][4 + 2 * s], cur[b][2 * s + 1],
                                          cur[b][4 + 2 * s + 1], desc);
    }
    wg::commit();
    wg::wait<1>();  // chunk i - 1's wgmmas are done; chunk i's run on behind the copies and the dequantizing
    wg::fence_operands(acc);
    if (i + 1 < n_chunks) {
      wait_chunk(std::integral_constant<int, kS - 3>{});
      if (i + kS - 1 < n_chunks) issue(i + kS - 1);
      cp_async_commit();
      dequant_chunk(i + 1, nxt);
    }
  };

  uint32_t a0[4][8], a1[4][8];
  if (n_chunks > 0) {
    wait_chunk(std::integral_constant<int, kS - 2>{});
    dequant_chunk(0, a0);
  }
  for (int i = 0; i < n_chunks; i += 2) {  // two steps per trip: the register buffers swap without moves
    step(i, a0, a1);
    if (i + 1 < n_chunks) step(i + 1, a1, a0);
  }
  wg::wait<0>();
  wg::fence_operands(acc);
  cp_async_wait<0>();

  // d[4i + e]: weight row 16 warp + g + 8 (e / 2) of the warpgroup's 64, x row 8i + 2t + e % 2.
  wsk::store_set<T, kRows>(acc, w, (tile0 + wg * 8) * kTileRows + 16 * warp + g, m0, t, M, y,
                           partial ? partial + static_cast<int64_t>(split) * M * w.n : nullptr);
#else
  // Built for an architecture without wgmma: the planner never launches this (wgmma_supported).
  __trap();
#endif
}

// The warp-specialized kernel: the same block tile, ring contents and arithmetic as wgmma_kernel, but
// warpgroup 0 only copies and warpgroups 1 and 2 only dequantize and issue the wgmmas; stages are handed over
// with mbarriers instead of a block barrier per chunk.
//
// Why. Profiled on an H200 (ncu), wgmma_kernel's warps had no instruction ready 53-62% of the cycles and
// the tensor core idled half the time at M = 1024: every warp copied, waited for its copies, met all the
// others at the barrier, then dequantized, so nothing overlapped the copy latency but the ring itself, and
// the barrier aligned all warps' stalls. Here the producer runs up to kS - 1 stages ahead on its own, and a
// consumer warpgroup waits only for the `full` barrier of the chunk it is about to dequantize; the two
// consumer warpgroups drift apart freely (each releases a stage on its own arrivals).
//
// Registers: launch bounds of 384 threads leave 168 per thread; the producer gives part of its share back
// (setmaxnreg.dec to kProducerRegs) and the consumers take it (setmaxnreg.inc to kConsumerRegs):
// 128 x 72 + 256 x 208 = 62464 of the 64512 (384 x 168) the block holds from its launch. setmaxnreg.inc
// takes only registers a dec of the same block gave back, and blocks until it can: a split that asks for
// more than the launch allocation hangs the consumers (a 256-row version at 80/216 did, on an H200; the
// static_assert keeps that out). ptxas allocates each side within its count: at 40 or 56
// the producer spilled (its copy addresses), at 72 nothing spills in any of the 16 instances.
//
// Per stage s: full[s] expects one cp.async-tracked arrival per producer thread and the x tile's bytes from
// the TMA (the phase completes when all of the stage's copies have landed); empty[s] one arrival per consumer
// warp (lane 0, after the warpgroup's wgmma.wait_group has retired the wgmmas that read the stage's x tile
// and its dequantizer has read the codes). Use u of slot s (chunk j = u kS + s) completes phase u of full[s]:
// consumers wait for parity u & 1; the producer refilling the slot for use u waits for phase u - 1 of
// empty[s].
//
// kScaleAfter (Plan::wgmma_scale_after: <= 64 rows of x, every chunk in one group): the consumers write A =
// q - z (exact in T, frag::dequant_block: 2 instructions per register where the scale-folding dequantizer
// needs 5), chunk i's wgmmas sum into a fresh accumulator set `part` (scale-d 0 on its first k16 step), and
// once they are done acc += s * part, in fp32, with the two rows' scales of the chunk's group (step_scaled
// below). One FMA per accumulator and chunk: 32 at 64 rows against the 64 instructions the 32 A registers
// save, and the scale is applied in fp32 instead of rounded into A. Its producer copies only k32 block 0's
// records and, where the layout has a chunk_group_step, computes the chunk's group rather than loading it
// (ws_produce<..., kOneGroup>): that load had made the producer the bound (docs/CUDA.md, wgmma v10).
// Tried and slower: the chunk's 8 wgmmas split over 2 or 4 interleaved accumulator sets (shorter chains of
// dependent wgmmas, 1.01-1.07x slower on every shape, v10).
template <typename T, int kBits, int kRows, bool kScaleAfter>
__global__ void __launch_bounds__(kWgmmaWsThreads, 1)
    wgmma_ws_kernel(PackedView w, const __grid_constant__ XTileMaps x_maps, T* __restrict__ y,
                    float* __restrict__ partial, int M, int cps, WgmmaStreamK sk) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kS = wgmma_ws_stages(kBits, kRows);
  static_assert(kS >= 2, "the ring needs two stages");
  static_assert(!kScaleAfter || kRows <= 64, "one more accumulator set fits the registers at <= 64 rows");
  constexpr int kXBytes = kRows * kChunkK * 2;
  constexpr int kTileCodeBytes = kChunkK * kBits;
  constexpr int kCodeBytes = kWgmmaBlockTiles * kTileCodeBytes;
  constexpr int kMetaBytes = 4 * kWgmmaBlockTiles * 48;
  constexpr int kStage = static_cast<int>(wgmma_stage_bytes(kBits, kRows));
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kProducerThreads = 128, kConsumerWarps = 8;
  constexpr int kProducerRegs = 72, kConsumerRegs = 208;  // setmaxnreg counts (above)
  static_assert(kProducerThreads * kProducerRegs + 2 * kProducerThreads * kConsumerRegs <=
                    kWgmmaWsThreads * (65536 / kWgmmaWsThreads / 8 * 8),
                "setmaxnreg: the consumers would wait forever for registers the block does not hold");
  extern __shared__ unsigned char smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t full0 = base + kS * kStage, empty0 = full0 + 8 * kS;  // 8-byte mbarriers

  const int tid = threadIdx.x;
  const int split = sk.blocks > 0 ? 0 : blockIdx.z;

  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < kS; ++s) {
      wgp::mbar_init(full0 + 8 * s, kProducerThreads);
      wgp::mbar_init(empty0 + 8 * s, kConsumerWarps);
    }
  }
  __syncthreads();  // the only block barrier: the mbarriers are initialized before anyone uses them

  if (tid < kProducerThreads) {
    wgp::regs_dec<kProducerRegs>();
    wgk::RingCursor ring;
    Piece pc;
    for (int j = 0; piece_of<kRows, kWgmmaBlockTiles>(sk, w, cps, j, pc); ++j)
      ws_produce<kBits, kRows, kWgmmaBlockTiles, kS, false, kScaleAfter>(
          w, x_maps, pc.m0, pc.tile0, pc.c0, pc.n, base, full0, empty0, tid, ring);
    wgp::cp_async_wait_all();  // exit only with no copy of ours in flight
    return;
  }

  // ---- consumer warpgroups 1 and 2: 64 weight rows each.
  wgp::regs_inc<kConsumerRegs>();
  const int cw = tid / 128 - 1, warp = (tid / 32) % 4, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int ta = cw * 8 + 2 * warp;  // this lane's tiles: ta, ta + 1 (row g of each)
  float acc[kRows / 2];
#pragma unroll
  for (int i = 0; i < kRows / 2; ++i) acc[i] = 0.0f;
  // kScaleAfter: the sums of the chunk in flight, and the scales of the chunks in a0 / a1's registers (rows g
  // of tiles ta (.x) and ta + 1 (.y); d[4i + e] is a row of tile ta + e / 2).
  float part[kRows / 2];
  if constexpr (kScaleAfter) {
#pragma unroll
    for (int i = 0; i < kRows / 2; ++i) part[i] = 0.0f;  // never read (scale-d 0), but defined
  }
  float2 scale0 = {}, scale1 = {};
  int n_chunks = 0;  // of the current piece

  // This thread's shared-memory addresses in slot 0 (a slot's are kStage further on per slot): its code
  // words of tile ta, and (kScaleAfter) its rows' scale and zero point in k32 block 0's records. Worked out
  // once and kept opaque: left to itself the compiler re-derived them from the thread index every chunk (17
  // instructions of the consumer's ~184 per chunk at 32 rows), and the stage's wgmma descriptor from the
  // block's shared-memory window (10 more).
  uint32_t codes0 = base + kXBytes + ta * kTileCodeBytes + lane * kBits * 4;
  uint32_t scale_rec0 = base + kXBytes + kCodeBytes + ta * 48 + 4 * g;
  uint32_t zero_rec0 = base + kXBytes + kCodeBytes + ta * 48 + 32 + 2 * g;
  uint64_t desc_slot0 = wg::desc_sw128(base);
  asm volatile("" : "+r"(codes0), "+r"(scale_rec0), "+r"(zero_rec0), "+l"(desc_slot0));
  // The descriptor of a slot: its start address field is the shared address / 16 (< 2^14 for every slot).
  auto slot_desc = [&](int s) { return desc_slot0 + static_cast<uint64_t>(s * (kStage >> 4)); };

  // Chunk's A registers; kScaleAfter: q - z, with the scales of the chunk's group in `scale`.
  auto dequant_chunk = [&](int s, uint32_t(&a)[4][8], float2& scale) {
    const uint32_t slot_addr = base + s * kStage, codes_s = slot_addr + kXBytes;
    uint32_t wa[kBits], wb[kBits];
    read_words<kBits>(codes0 + s * kStage, wa);
    read_words<kBits>(codes0 + s * kStage + kTileCodeBytes, wb);
    if constexpr (kScaleAfter) {
      const uint32_t sr = scale_rec0 + s * kStage, zr = zero_rec0 + s * kStage;  // the chunk's group
      scale = make_float2(__uint_as_float(lds32(sr)), __uint_as_float(lds32(sr + 48)));
      const uint2 za = frag::zero_term<T, kBits>(static_cast<int>(lds16(zr)));
      const uint2 zb = frag::zero_term<T, kBits>(static_cast<int>(lds16(zr + 48)));
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        uint32_t ra[4], rb[4];
        frag::dequant_block<T, kBits>(wa, b, za, ra);
        frag::dequant_block<T, kBits>(wb, b, zb, rb);
#pragma unroll
        for (int r = 0; r < 4; ++r) a[b][r] = ra[r], a[b][4 + r] = rb[r];
      }
      return;
    }
    const uint4 bgs4 = lds128(codes_s + kCodeBytes + kMetaBytes);
    const int bgs[4] = {static_cast<int>(bgs4.x), static_cast<int>(bgs4.y), static_cast<int>(bgs4.z),
                        static_cast<int>(bgs4.w)};
    wg::ScaleTerm<T> sa, sb;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      if (b == 0 || bgs[b] != bgs[b - 1]) {
        const uint32_t rec = codes_s + kCodeBytes + (b * kWgmmaBlockTiles + ta) * 48;
        sa = wg::scale_term<T, kBits>(__uint_as_float(lds32(rec + 4 * g)),
                                      static_cast<int>(lds16(rec + 32 + 2 * g)));
        sb = wg::scale_term<T, kBits>(__uint_as_float(lds32(rec + 48 + 4 * g)),
                                      static_cast<int>(lds16(rec + 48 + 32 + 2 * g)));
      }
      uint32_t ra[4], rb[4];
      wg::dequant_scaled<T, kBits>(wa, b, sa, ra);
      wg::dequant_scaled<T, kBits>(wb, b, sb, rb);
#pragma unroll
      for (int r = 0; r < 4; ++r) a[b][r] = ra[r], a[b][4 + r] = rb[r];
    }
  };
  // The 8 wgmmas of a chunk into d; fresh: the first ignores d's previous values.
  auto mma_chunk = [&](float(&d)[kRows / 2], const uint32_t(&a)[4][8], uint64_t desc0, auto fresh) {
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const uint64_t desc = desc0 + ((k / 4) * (kRows * 128) + (k % 4) * 32) / 16;
      const int b = k / 2, s = k % 2;
      if (decltype(fresh)::value && k == 0)
        wg::Mma<kRows>::template run<kBf16, false>(d, a[b][2 * s], a[b][4 + 2 * s], a[b][2 * s + 1],
                                                   a[b][4 + 2 * s + 1], desc);
      else
        wg::Mma<kRows>::template run<kBf16>(d, a[b][2 * s], a[b][4 + 2 * s], a[b][2 * s + 1],
                                            a[b][4 + 2 * s + 1], desc);
    }
  };
  // Step i: chunk i's 8 wgmmas from `cur`, then wait_group 1 (chunk i - 1 retired: its slot goes back to the
  // producer), then chunk i + 1 waited for and dequantized into `nxt` while chunk i's wgmmas run.
  int slot = 0;  // slot of chunk i
  uint32_t phase = 0;
  auto step = [&](int i, uint32_t(&cur)[4][8], uint32_t(&nxt)[4][8]) {
    wg::fence();
    wg::fence_operands(acc);
    mma_chunk(acc, cur, slot_desc(slot), std::false_type{});
    wg::commit();
    wg::wait<1>();
    wg::fence_operands(acc);
    const int prev = slot == 0 ? kS - 1 : slot - 1;
    if (i > 0 && lane == 0) wgp::mbar_arrive(empty0 + 8 * prev);
    if (++slot == kS) slot = 0, phase ^= 1u;
    if (i + 1 < n_chunks) {
      wgp::mbar_wait(full0 + 8 * slot, phase);
      dequant_chunk(slot, nxt, scale0);  // (its scale output unused)
    }
  };
  // kScaleAfter, step i: chunk i's 8 wgmmas from `cur` into `part` (fresh sums), chunk i + 1 waited for and
  // dequantized into `nxt` (its scales into `scale_nxt`) while they run, then wait_group 0 and acc +=
  // scale_cur * part; chunk i's slot goes back to the producer. The sums are read only after wait_group 0:
  // read after wait_group 1 (chunk i - 1's sums while chunk i's wgmmas run, a second set of sums), ptxas
  // serialized every wgmma of the kernel (C7514). The tensor core idles between a warpgroup's chunks for the
  // fold's 32 FMAs; at <= 64 rows of x it is far from busy (ncu at M = 64: 37%), and the other consumer
  // warpgroup's wgmmas fill the gap.
  auto step_scaled = [&](int i, uint32_t(&cur)[4][8], uint32_t(&nxt)[4][8], const float2& scale_cur,
                         float2& scale_nxt) {
    const int chunk_slot = slot;
    wg::fence();
    wg::fence_operands(part);
    mma_chunk(part, cur, slot_desc(slot), std::true_type{});
    wg::commit();
    if (++slot == kS) slot = 0, phase ^= 1u;
    if (i + 1 < n_chunks) {
      wgp::mbar_wait(full0 + 8 * slot, phase);
      dequant_chunk(slot, nxt, scale_nxt);
    }
    wg::wait<0>();
    wg::fence_operands(part);
#pragma unroll
    for (int r = 0; r < kRows / 2; ++r)
      acc[r] = fmaf((r % 4) / 2 ? scale_cur.y : scale_cur.x, part[r], acc[r]);
    if (lane == 0) wgp::mbar_arrive(empty0 + 8 * chunk_slot);
  };

  // The block's pieces (one on the grid of whole tiles; several in a row on the stream-K schedule, the ring
  // carrying over from one to the next, as in the wide kernel).
  uint32_t a0[4][8], a1[4][8];
  Piece pc;
  for (int j = 0; piece_of<kRows, kWgmmaBlockTiles>(sk, w, cps, j, pc); ++j) {
    n_chunks = pc.n;
#pragma unroll
    for (int i = 0; i < kRows / 2; ++i) acc[i] = 0.0f;
    if (n_chunks > 0) {
      wgp::mbar_wait(full0 + 8 * slot, phase);
      dequant_chunk(slot, a0, scale0);
    }
    for (int i = 0; i < n_chunks; i += 2) {
      if constexpr (kScaleAfter) {
        step_scaled(i, a0, a1, scale0, scale1);
        if (i + 1 < n_chunks) step_scaled(i + 1, a1, a0, scale1, scale0);
      } else {
        step(i, a0, a1);
        if (i + 1 < n_chunks) step(i + 1, a1, a0);
      }
    }
    wg::wait<0>();
    wg::fence_operands(acc);
    // The piece's last stage back to the producer (it may hold the next piece's chunks); step_scaled
    // released every stage already.
    if (!kScaleAfter && n_chunks > 0 && lane == 0)
      wgp::mbar_arrive(empty0 + 8 * (slot == 0 ? kS - 1 : slot - 1));

    if (pc.out >= 0) {  // a stream-K piece: its fp32 sums to the block's slot, for the fix-up launch
      wsk::store_piece<kRows, kWgmmaBlockTiles>(partial, pc.out, 0, tid - kProducerThreads, acc);
      continue;
    }
    wsk::store_set<T, kRows>(
        acc, w, (static_cast<int64_t>(pc.tile0) + cw * 8) * kTileRows + 16 * warp + g, pc.m0, t, M, y,
        partial && sk.blocks == 0 ? partial + static_cast<int64_t>(split) * M * w.n : nullptr);
  }
#else
  __trap();
#endif
}

// x_maps: x for the warp-specialized kernel (tensor_map.h), null for the all-threads one.
template <typename T, int kBits, int kRows>
int launch_rows(const PackedView& w, const Plan& p, const void* x, int64_t x_stride, bool x_direct,
                const XTileMaps* x_maps, void* y, int64_t M, float* partial, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((M + kRows - 1) / kRows),
                  static_cast<unsigned>((w.n8_tiles + kWgmmaBlockTiles - 1) / kWgmmaBlockTiles),
                  static_cast<unsigned>(p.splits));
  float* const part = p.splits > 1 ? partial : nullptr;
  if (p.wgmma_ws) {
    if (!x_maps) return kBadArgument;
    // Stream-K: a persistent grid of sk.blocks blocks, then the fix-up of the tiles cut between blocks.
    const WgmmaStreamK& sk = p.wgmma_sk;
    if (sk.blocks > 0 &&
        ((sk.sk_tiles > 0 && !partial) || sk.m_tiles != (M + kRows - 1) / kRows || sk.chunks != w.chunks))
      return kBadArgument;
    const dim3 ws_grid = sk.blocks > 0 ? dim3(static_cast<unsigned>(sk.blocks)) : grid;
    float* const ws_part = sk.blocks > 0 ? partial : part;
    constexpr size_t smem = wgmma_ws_smem_bytes(kBits, kRows);
    bool scaled = false;
    if constexpr (kRows <= 64) {
      if (p.wgmma_scale_after) {
        wgmma_ws_kernel<T, kBits, kRows, true><<<ws_grid, kWgmmaWsThreads, smem, s>>>(
            w, *x_maps, static_cast<T*>(y), ws_part, static_cast<int>(M), p.chunks_per_split, sk);
        scaled = true;
      }
    }
    if (!scaled)
      wgmma_ws_kernel<T, kBits, kRows, false><<<ws_grid, kWgmmaWsThreads, smem, s>>>(
          w, *x_maps, static_cast<T*>(y), ws_part, static_cast<int>(M), p.chunks_per_split, sk);
    if (cudaGetLastError() != cudaSuccess) return kLaunchFailed;
    if (sk.blocks == 0) return kOk;
    return wsk::launch_sk_fixup<T, kRows, kWgmmaBlockTiles>(w, partial, y, M, sk, s) == cudaSuccess
               ? kOk
               : kLaunchFailed;
  }
  if constexpr (kRows == 32) {
    return kBadArgument;  // 32 rows of x: the warp-specialized kernel only
  } else {
    wgmma_kernel<T, kBits, kRows><<<grid, kWgmmaThreads, wgmma_smem_bytes(kBits, kRows), s>>>(
        w, static_cast<const T*>(x), x_stride, x_direct, static_cast<T*>(y), part, static_cast<int>(M),
        p.chunks_per_split);
    return cudaGetLastError() == cudaSuccess ? kOk : kLaunchFailed;
  }
}

template <typename T, int kBits>
int launch_bits(const PackedView& w, const Plan& p, const void* x, int64_t x_stride, bool x_direct,
                const XTileMaps* x_maps, void* y, int64_t M, float* partial, cudaStream_t s) {
  switch (p.wgmma_rows) {
    case 32:
      return launch_rows<T, kBits, 32>(w, p, x, x_stride, x_direct, x_maps, y, M, partial, s);
    case 64:
      return launch_rows<T, kBits, 64>(w, p, x, x_stride, x_direct, x_maps, y, M, partial, s);
    case 128:
      return launch_rows<T, kBits, 128>(w, p, x, x_stride, x_direct, x_maps, y, M, partial, s);
    default:
      return kBadArgument;
  }
}

template <typename T>
int launch_type(const PackedView& w, const Plan& p, const void* x, int64_t x_stride, bool x_direct,
                const XTileMaps* x_maps, void* y, int64_t M, float* partial, cudaStream_t s) {
  switch (w.bits) {
    case 2:
      return launch_bits<T, 2>(w, p, x, x_stride, x_direct, x_maps, y, M, partial, s);
    case 3:
      return launch_bits<T, 3>(w, p, x, x_stride, x_direct, x_maps, y, M, partial, s);
    case 4:
      return launch_bits<T, 4>(w, p, x, x_stride, x_direct, x_maps, y, M, partial, s);
    case 8:
      return launch_bits<T, 8>(w, p, x, x_stride, x_direct, x_maps, y, M, partial, s);
    default:
      return kBadArgument;
  }
}

template <typename T, int kBits>
cudaError_t allow_bits(bool ws) {
  cudaError_t e = cudaSuccess;
  if (ws) {  // the planner runs the warp-specialized kernels only where their shared memory fits
    auto allow = [](auto kernel, int rows) {
      return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(wgmma_ws_smem_bytes(kBits, rows)));
    };
    if ((e = allow(wgmma_ws_kernel<T, kBits, 32, false>, 32)) != cudaSuccess ||
        (e = allow(wgmma_ws_kernel<T, kBits, 32, true>, 32)) != cudaSuccess ||
        (e = allow(wgmma_ws_kernel<T, kBits, 64, false>, 64)) != cudaSuccess ||
        (e = allow(wgmma_ws_kernel<T, kBits, 64, true>, 64)) != cudaSuccess ||
        (e = allow(wgmma_ws_kernel<T, kBits, 128, false>, 128)) != cudaSuccess)
      return e;
  }
  e = cudaFuncSetAttribute(wgmma_kernel<T, kBits, 64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(wgmma_smem_bytes(kBits, 64)));
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(wgmma_kernel<T, kBits, 128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(wgmma_smem_bytes(kBits, 128)));
}

template <typename T>
cudaError_t allow_type(bool ws) {
  cudaError_t e;
  if ((e = allow_bits<T, 2>(ws)) != cudaSuccess) return e;
  if ((e = allow_bits<T, 3>(ws)) != cudaSuccess) return e;
  if ((e = allow_bits<T, 4>(ws)) != cudaSuccess) return e;
  return allow_bits<T, 8>(ws);
}

}  // namespace

bool wgmma_supported(int device) {
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess || major != 9)
    return false;
  // sm_90a code is in this build when the kernel's image was compiled from compute_90a (a JIT from the
  // compute_80 PTX would report 80 and hold only the trap).
  cudaFuncAttributes a{};
  if (cudaFuncGetAttributes(&a, wgmma_kernel<__nv_bfloat16, 4, 64>) != cudaSuccess) return false;
  // The warp-specialized kernels, kAuto's, load x by TMA: without the driver's tensor-map encoder the planner
  // keeps to the mma family.
  return a.ptxVersion >= 90 && a.binaryVersion >= 90 && tensor_maps_available();
}

int prepare_wgmma_kernels(int max_smem_per_block) {
  if (static_cast<size_t>(max_smem_per_block) < wgmma_smem_bytes(8, 128)) return kBadArgument;
  const bool ws = static_cast<size_t>(max_smem_per_block) >= kWgmmaWsSmemBudget;
  if (allow_type<__half>(ws) != cudaSuccess) return kLaunchFailed;
  if (allow_type<__nv_bfloat16>(ws) != cudaSuccess) return kLaunchFailed;
  if (ws && prepare_wgmma_wide_kernels() != cudaSuccess) return kLaunchFailed;
  return kOk;
}

int launch_wgmma(const PackedView& w, const Plan& plan, const void* x, int64_t x_stride, bool x_direct,
                 void* y, int64_t M, bool bf16, float* partial, CUstream_st* stream) {
  if (M < 1 || M > INT32_MAX || plan.splits < 1 || plan.chunks_per_split < 1) return kBadArgument;
  // The warp-specialized kernels load x by TMA: its map, boxes of the plan's rows of x.
  XTileMaps x_maps;
  const bool tma = plan.wgmma_wide || plan.wgmma_ws;
  if (tma && !encode_x_maps(&x_maps, x, bf16, x_direct ? w.k : x_stride, M, x_stride, plan.wgmma_rows))
    return kTensorMapFailed;
  if (plan.wgmma_wide) return launch_wgmma_wide(w, plan, x_maps, y, M, bf16, partial, stream);
  return bf16 ? launch_type<__nv_bfloat16>(w, plan, x, x_stride, x_direct, tma ? &x_maps : nullptr, y, M,
                                           partial, stream)
              : launch_type<__half>(w, plan, x, x_stride, x_direct, tma ? &x_maps : nullptr, y, M, partial,
                                    stream);
}

}  // namespace ark::cuda
