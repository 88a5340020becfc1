// The Hopper GEMM for prefill-sized M (sm_90a; kAuto runs it at 33 <= M <= 512, int4): y^T = W x^T on
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
// x (64 or 128: the wgmma N). Grid: x = tiles of x rows (fastest, so the blocks that share a weight range run
// together and read it from DRAM once), y = 128-row weight ranges, z = split-K (fp32 partials summed by
// launch_reduce in split order). In wgmma_kernel all threads copy; wgmma_ws_kernel (below) has a producer
// warpgroup. The planner runs wgmma_ws_kernel from 65 rows of x on 70B-sized layers, wgmma_kernel elsewhere
// (launch.h: kWgmmaWsMinM, kWgmmaWsMinTileChunks).
//
// Ring: wgmma_stages(kRows) stages of one 128-k chunk each, filled by cp.async: x [2 halves of 64
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

namespace ark::cuda {
namespace {

using frag::Traits;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::lds128;
using ptx::lds16;
using ptx::lds32;
using ptx::smem_addr;

// The device helpers exist only where the kernel has a body (sm_90a; the host pass needs their declarations).
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
// 16-byte copy; src_bytes < 16 fills the rest with zeros (rows past M, x positions past K).
__device__ __forceinline__ void cp16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}

template <int kBits>
__device__ __forceinline__ void read_words(uint32_t a, uint32_t (&w)[kBits]) {
  if constexpr (kBits % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kBits; i += 4) {
      const uint4 v = lds128(a + 4 * i);
      w[i] = v.x, w[i + 1] = v.y, w[i + 2] = v.z, w[i + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kBits; ++i) w[i] = lds32(a + 4 * i);
  }
}

#endif

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
  const int64_t n_base = (tile0 + wg * 8) * kTileRows + 16 * warp + g;
#pragma unroll
  for (int i = 0; i < kRows / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t m = m0 + 8 * i + 2 * t + (e % 2), n = n_base + 8 * (e / 2);
      if (m >= M || n >= w.n) continue;
      if (partial)
        partial[(static_cast<int64_t>(split) * M + m) * w.n + n] = acc[4 * i + e];
      else
        y[m * w.n + n] = Traits<T>::from_float(acc[4 * i + e] + (w.bias ? w.bias[n] : 0.0f));
    }
#else
  // Built for an architecture without wgmma: the planner never launches this (wgmma_supported).
  __trap();
#endif
}

#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
// The producer warpgroup of the warp-specialized kernels: copies of chunk c0 + j into ring slot j % kS of a
// block of kTiles n8 tiles (x tile, the tiles' codes, group records, block groups), each stage's `full`
// mbarrier arriving when its copies have landed; a slot is refilled once its `empty` phase completed.
template <typename T, int kBits, int kRows, int kTiles, int kS>
__device__ __forceinline__ void ws_produce(const PackedView& w, const T* __restrict__ x, int64_t x_stride,
                                           bool x_direct, int M, int64_t m0, int64_t tile0, int64_t c0,
                                           int n_chunks, uint32_t base, uint32_t full0, uint32_t empty0,
                                           int pt) {
  constexpr int kXBytes = kRows * kChunkK * 2;
  constexpr int kTileCodeBytes = kChunkK * kBits;
  constexpr int kCodeBytes = kTiles * kTileCodeBytes;
  constexpr int kMetaBytes = 4 * kTiles * 48;
  constexpr int kStage = static_cast<int>(wgmma_stage_bytes(kBits, kRows, kTiles));
  constexpr int kProducerThreads = 128;
  // Addresses worked out once, outside the loop.
  //   x: piece (h, c) = ((pt / 8) % 2, pt % 8) of rows pt / 16 + 8 i (so row % 8 = pt / 16: one swizzle).
  const int xr0 = pt / 16, xh = (pt / 8) % 2, xc = pt % 8;
  constexpr int kXCopies = kRows / 8;
  const uint32_t x_dst = xh * (kRows * 128) + xr0 * 128 + ((xc ^ xr0) * 16);     // + i * 1024
  const T* x_src = x + (m0 + xr0) * x_stride + c0 * kChunkK + xh * 64 + xc * 8;  // + 8 i rows
  uint32_t x_rows_ok = 0;
#pragma unroll
  for (int i = 0; i < kXCopies; ++i) x_rows_ok |= (m0 + xr0 + 8 * i < M ? 1u : 0u) << i;
  const int64_t x_kp0 = c0 * kChunkK + xh * 64 + xc * 8;
  //   codes: piece p = pt + 128 i of the block's [kTiles tiles][8 bits pieces].
  constexpr int kPiecesPerTile = kTileCodeBytes / 16;
  constexpr int kCodeCopies = kTiles * kPiecesPerTile / kProducerThreads;  // = kTiles * bits / 16
  static_assert(kTiles * kPiecesPerTile % kProducerThreads == 0, "whole copies per thread");
  const int64_t chunk_words = kWarpLanes * kBits;  // one tile's words of one chunk
  uint32_t c_ok = 0;
#pragma unroll
  for (int i = 0; i < kCodeCopies; ++i) {
    const int p = pt + i * kProducerThreads;
    c_ok |= (tile0 + p / kPiecesPerTile < w.n8_tiles ? 1u : 0u) << i;
  }
  // This thread's first piece (tile tile0 + pt / pieces per tile), then kProducerThreads pieces further
  // on per copy: a fixed number of tiles on where the pieces per tile divide the producer's threads.
  const int64_t c_tile = c_ok & 1u ? tile0 + pt / kPiecesPerTile : 0;
  const uint32_t* c_base = w.codes + (c_tile * w.chunks + c0) * chunk_words + (pt % kPiecesPerTile) * 4;
  const int64_t c_step = (kProducerThreads / kPiecesPerTile) * w.chunks * chunk_words;
  //   group records: pieces q = pt + 128 r of [4 blocks][kTiles tiles][3 pieces of 16 bytes].
  constexpr int kMetaPieces = 4 * kTiles * 3;
  constexpr int kMetaCopies = (kMetaPieces + kProducerThreads - 1) / kProducerThreads;
  const unsigned char* m_src[kMetaCopies];
  int m_stride[kMetaCopies], m_block[kMetaCopies];
  uint32_t m_dst[kMetaCopies], m_ok = 0;
#pragma unroll
  for (int r = 0; r < kMetaCopies; ++r) {
    const int q = pt + r * kProducerThreads, mb = q / (3 * kTiles), mt = (q / 3) % kTiles, mp = q % 3;
    const bool ok = q < kMetaPieces && tile0 + mt < w.n8_tiles;
    m_ok |= (ok ? 1u : 0u) << r;
    const int64_t t = ok ? tile0 + mt : 0;
    m_src[r] = mp < 2 ? reinterpret_cast<const unsigned char*>(w.scales + (t * w.groups) * kTileRows + 4 * mp)
                      : reinterpret_cast<const unsigned char*>(w.zeros + (t * w.groups) * kTileRows);
    m_stride[r] = mp < 2 ? kTileRows * 4 : kTileRows * 2;
    m_block[r] = mb;
    m_dst[r] = kXBytes + kCodeBytes + (mb * kTiles + mt) * 48 + mp * 16;
  }
  // The chunk's 4 block groups, loaded one chunk ahead (the copies need them; their latency stays off the
  // copy issue).
  int4 bg = n_chunks > 0 ? __ldg(reinterpret_cast<const int4*>(w.block_group) + c0) : make_int4(0, 0, 0, 0);
  int slot = 0;
  uint32_t phase = 0;  // use of the slot, mod 2
  for (int j = 0; j < n_chunks; ++j) {
    const int4 bg_next =
        j + 1 < n_chunks ? __ldg(reinterpret_cast<const int4*>(w.block_group) + c0 + j + 1) : bg;
    if (j >= kS) wgp::mbar_wait(empty0 + 8 * slot, phase ^ 1u);
    const uint32_t dst = base + slot * kStage;
    const bool k_ok = !x_direct || x_kp0 + j * kChunkK < w.k;
    const T* xs = x_src + j * kChunkK;
#pragma unroll
    for (int i = 0; i < kXCopies; ++i) {
      const bool ok = k_ok && ((x_rows_ok >> i) & 1u);
      cp16(dst + x_dst + i * 1024, ok ? xs : x, ok ? 16 : 0);
      xs += 8 * x_stride;
    }
    if constexpr (kProducerThreads % kPiecesPerTile == 0) {  // 2, 4, 8 bits: a constant step per copy
      const uint32_t* cp = c_base + j * chunk_words;
#pragma unroll
      for (int i = 0; i < kCodeCopies; ++i) {
        if ((c_ok >> i) & 1u) cp16(dst + kXBytes + (pt + i * kProducerThreads) * 16, cp);
        cp += c_step;
      }
    } else {
      const uint32_t* cj = w.codes + (c0 + j) * chunk_words;
#pragma unroll
      for (int i = 0; i < kCodeCopies; ++i) {
        const int p = pt + i * kProducerThreads;
        if ((c_ok >> i) & 1u)
          cp16(dst + kXBytes + p * 16,
               cj + (tile0 + p / kPiecesPerTile) * w.chunks * chunk_words + (p % kPiecesPerTile) * 4);
      }
    }
    const int g4[4] = {bg.x, bg.y, bg.z, bg.w};
#pragma unroll
    for (int r = 0; r < kMetaCopies; ++r) {
      const int mb = m_block[r];
      const int gcur = mb == 0 ? g4[0] : mb == 1 ? g4[1] : mb == 2 ? g4[2] : g4[3];
      const int gprev = mb == 0 ? -1 : mb == 1 ? g4[0] : mb == 2 ? g4[1] : g4[2];
      if (((m_ok >> r) & 1u) && gcur != gprev)
        cp16(dst + m_dst[r], m_src[r] + static_cast<int64_t>(gcur) * m_stride[r]);
    }
    if (pt == kMetaPieces % kProducerThreads)  // a thread with fewer record pieces copies the block groups
      cp16(dst + kXBytes + kCodeBytes + kMetaBytes, w.block_group + (c0 + j) * 4);
    wgp::mbar_arrive_cp_async(full0 + 8 * slot);
    bg = bg_next;
    if (++slot == kS) slot = 0, phase ^= 1u;
  }
  wgp::cp_async_wait_all();  // exit only with no copy of ours in flight
}
#endif

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
// Per stage s: full[s] expects one cp.async-tracked arrival per producer thread (the phase completes when
// all of the stage's copies have landed); empty[s] one arrival per consumer warp (lane 0, after the
// warpgroup's wgmma.wait_group has retired the wgmmas that read the stage's x tile and its dequantizer has
// read the codes). Use u of slot s (chunk j = u kS + s) completes phase u of full[s]: consumers wait for
// parity u & 1; the producer refilling the slot for use u waits for phase u - 1 of empty[s].
template <typename T, int kBits, int kRows>
__global__ void __launch_bounds__(kWgmmaWsThreads, 1)
    wgmma_ws_kernel(PackedView w, const T* __restrict__ x, int64_t x_stride, bool x_direct, T* __restrict__ y,
                    float* __restrict__ partial, int M, int cps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kS = wgmma_ws_stages(kBits, kRows);
  static_assert(kS >= 2, "the ring needs two stages");
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
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int64_t tile0 = static_cast<int64_t>(blockIdx.y) * kWgmmaBlockTiles;
  const int split = blockIdx.z;
  const int64_t c0 = static_cast<int64_t>(split) * cps;
  const int n_chunks = static_cast<int>(min(static_cast<int64_t>(cps), w.chunks - c0));

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
    ws_produce<T, kBits, kRows, kWgmmaBlockTiles, kS>(w, x, x_stride, x_direct, M, m0, tile0, c0, n_chunks,
                                                      base, full0, empty0, tid);
    return;
  }

  // ---- consumer warpgroups 1 and 2: 64 weight rows each.
  wgp::regs_inc<kConsumerRegs>();
  const int cw = tid / 128 - 1, warp = (tid / 32) % 4, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int ta = cw * 8 + 2 * warp;  // this lane's tiles: ta, ta + 1 (row g of each)
  float acc[kRows / 2];
#pragma unroll
  for (int i = 0; i < kRows / 2; ++i) acc[i] = 0.0f;

  auto dequant_chunk = [&](uint32_t slot_addr, uint32_t(&a)[4][8]) {
    const uint32_t codes_s = slot_addr + kXBytes;
    uint32_t wa[kBits], wb[kBits];
    read_words<kBits>(codes_s + ta * kTileCodeBytes + lane * kBits * 4, wa);
    read_words<kBits>(codes_s + (ta + 1) * kTileCodeBytes + lane * kBits * 4, wb);
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
  // Step i: chunk i's 8 wgmmas from `cur`, then wait_group 1 (chunk i - 1 retired: its slot goes back to the
  // producer), then chunk i + 1 waited for and dequantized into `nxt` while chunk i's wgmmas run.
  int slot = 0;  // slot of chunk i
  uint32_t phase = 0;
  auto step = [&](int i, uint32_t(&cur)[4][8], uint32_t(&nxt)[4][8]) {
    const uint32_t slot_addr = base + slot * kStage;
    const uint64_t desc0 = wg::desc_sw128(slot_addr);
    wg::fence();
    wg::fence_operands(acc);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const uint64_t desc = desc0 + ((k / 4) * (kRows * 128) + (k % 4) * 32) / 16;
      const int b = k / 2, s = k % 2;
      wg::Mma<kRows>::template run<kBf16>(acc, cur[b][2 * s], cur[b][4 + 2 * s], cur[b][2 * s + 1],
                                          cur[b][4 + 2 * s + 1], desc);
    }
    wg::commit();
    wg::wait<1>();
    wg::fence_operands(acc);
    const int prev = slot == 0 ? kS - 1 : slot - 1;
    if (i > 0 && lane == 0) wgp::mbar_arrive(empty0 + 8 * prev);
    if (++slot == kS) slot = 0, phase ^= 1u;
    if (i + 1 < n_chunks) {
      wgp::mbar_wait(full0 + 8 * slot, phase);
      wgp::fence_proxy_async();  // the landed x tile, seen by this thread, also for its wgmmas' reads
      dequant_chunk(base + slot * kStage, nxt);
    }
  };

  uint32_t a0[4][8], a1[4][8];
  if (n_chunks > 0) {
    wgp::mbar_wait(full0, 0);
    wgp::fence_proxy_async();
    dequant_chunk(base, a0);
  }
  for (int i = 0; i < n_chunks; i += 2) {
    step(i, a0, a1);
    if (i + 1 < n_chunks) step(i + 1, a1, a0);
  }
  wg::wait<0>();
  wg::fence_operands(acc);

  const int64_t n_base = (tile0 + cw * 8) * kTileRows + 16 * warp + g;
#pragma unroll
  for (int i = 0; i < kRows / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t m = m0 + 8 * i + 2 * t + (e % 2), n = n_base + 8 * (e / 2);
      if (m >= M || n >= w.n) continue;
      if (partial)
        partial[(static_cast<int64_t>(split) * M + m) * w.n + n] = acc[4 * i + e];
      else
        y[m * w.n + n] = Traits<T>::from_float(acc[4 * i + e] + (w.bias ? w.bias[n] : 0.0f));
    }
#else
  __trap();
#endif
}

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

// The wide warp-specialized kernel (launch.h: kWgmmaWideTiles): wgmma_ws_kernel's producer warpgroup and
// mbarrier ring, 256 weight rows per block. Consumer warpgroup c owns weight sets 2c and 2c + 1 (64 rows
// each: tiles 16c + 8s + 2 warp and + 1), one fp32 accumulator set per weight set, and two A buffers of half
// a chunk each (16 registers: k32 blocks 2h, 2h + 1). A consumer's work is a stream of "units" (chunk i, set
// s, half h), 4 per chunk in the order (0,0) (0,1) (1,0) (1,1); unit u's 4 wgmmas read buffer h, and
//   issue unit u; commit; wait_group 1 (unit u - 1 retired: its buffer is free); dequantize unit u + 1
// into that buffer while unit u's wgmmas run (and the other warpgroup's). So a buffer is written only after
// the wgmmas that read it retired (no serialization, ptxas C7513), and at 128 rows of x the registers hold
// 2 x 64 accumulators + 32 A + a set's words and scales (~190 of 208). Chunk i - 1's stage goes back to the
// producer once unit (i - 1, 1, 1) retired, i.e. after unit (i, 0, 0) is issued.
//
// pingpong: the consumers issue their units in strict turns (warpgroup 1's unit 0, warpgroup 2's unit 0,
// warpgroup 1's unit 1, ...): a consumer syncs on its barrier before it issues and arrives on the other's
// after. Warpgroup 1 syncs 4n - 1 times on barrier 1 (not before its first unit) and warpgroup 2 arrives
// there 4n - 1 times (not after its last); warpgroup 1 arrives 4n times on barrier 2, warpgroup 2 syncs 4n.
template <typename T, int kBits, int kRows>
__global__ void __launch_bounds__(kWgmmaWsThreads, 1)
    wgmma_wide_kernel(PackedView w, const T* __restrict__ x, int64_t x_stride, bool x_direct,
                      T* __restrict__ y, float* __restrict__ partial, int M, int cps, bool pingpong) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kTiles = kWgmmaWideTiles;
  constexpr int kS = wgmma_ws_stages(kBits, kRows, kTiles);
  static_assert(kS >= 2, "the ring needs two stages");
  constexpr int kXBytes = kRows * kChunkK * 2;
  constexpr int kStage = static_cast<int>(wgmma_stage_bytes(kBits, kRows, kTiles));
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  constexpr int kProducerThreads = 128, kConsumerWarps = 8;
  // 80 / 208: 63488 of the block's 64512. The consumers use up to 205 at 128 rows of x (ptxas); the
  // producer's copies of 32 tiles spilled 4-36 bytes at 72 (128 rows of x).
  constexpr int kProducerRegs = 80, kConsumerRegs = 208;
  static_assert(kProducerThreads * kProducerRegs + 2 * kProducerThreads * kConsumerRegs <=
                    kWgmmaWsThreads * (65536 / kWgmmaWsThreads / 8 * 8),
                "setmaxnreg: the consumers would wait forever for registers the block does not hold");
  extern __shared__ unsigned char smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t full0 = base + kS * kStage, empty0 = full0 + 8 * kS;

  const int tid = threadIdx.x;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int64_t tile0 = static_cast<int64_t>(blockIdx.y) * kTiles;
  const int split = blockIdx.z;
  const int64_t c0 = static_cast<int64_t>(split) * cps;
  const int n_chunks = static_cast<int>(min(static_cast<int64_t>(cps), w.chunks - c0));

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
    ws_produce<T, kBits, kRows, kTiles, kS>(w, x, x_stride, x_direct, M, m0, tile0, c0, n_chunks, base, full0,
                                            empty0, tid);
    return;
  }

  wgp::regs_inc<kConsumerRegs>();
  const int cw = tid / 128 - 1, warp = (tid / 32) % 4, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int ta0 = cw * 16 + 2 * warp, ta1 = ta0 + 8;  // this lane's tiles of set 0 and set 1
  const int bar_mine = cw == 0 ? 1 : 2, bar_other = cw == 0 ? 2 : 1;
  const int n_units = 4 * n_chunks;
  auto turn_begin = [&](int u) {
    if (pingpong && (cw == 1 || u > 0)) named_bar_sync(bar_mine);
  };
  auto turn_end = [&](int u) {
    if (pingpong && (cw == 0 || u + 1 < n_units)) named_bar_arrive(bar_other);
  };
  float acc0[kRows / 2], acc1[kRows / 2];
#pragma unroll
  for (int i = 0; i < kRows / 2; ++i) acc0[i] = 0.0f, acc1[i] = 0.0f;
  uint32_t a0[2][8], a1[2][8];  // A buffers of half 0 and half 1
  SetChunk<T, kBits> sc;

  int slot = 0;
  uint32_t phase = 0;
  if (n_chunks > 0) {
    wgp::mbar_wait(full0, 0);
    wgp::fence_proxy_async();
    load_set<T, kBits, kTiles>(base + kXBytes, ta0, lane, sc);
    dequant_half<T, kBits, kTiles, 0>(base + kXBytes, ta0, lane, sc, a0);
  }
  for (int i = 0; i < n_chunks; ++i) {
    const uint32_t slot_addr = base + slot * kStage, codes_s = slot_addr + kXBytes;
    const uint64_t desc0 = wg::desc_sw128(slot_addr);
    // unit (i, 0, 0)
    turn_begin(4 * i);
    wg::fence();
    wg::fence_operands(acc0);
    issue_half<kBf16, kRows, 0>(acc0, a0, desc0);
    wg::commit();
    turn_end(4 * i);
    wg::wait<1>();  // unit (i - 1, 1, 1) retired: buffer 1 is free and chunk i - 1's stage is read
    if (i > 0 && lane == 0) wgp::mbar_arrive(empty0 + 8 * (slot == 0 ? kS - 1 : slot - 1));
    dequant_half<T, kBits, kTiles, 1>(codes_s, ta0, lane, sc, a1);
    // unit (i, 0, 1)
    turn_begin(4 * i + 1);
    wg::fence();
    wg::fence_operands(acc0);
    issue_half<kBf16, kRows, 1>(acc0, a1, desc0);
    wg::commit();
    turn_end(4 * i + 1);
    wg::wait<1>();  // unit (i, 0, 0) retired: buffer 0 is free
    load_set<T, kBits, kTiles>(codes_s, ta1, lane, sc);
    dequant_half<T, kBits, kTiles, 0>(codes_s, ta1, lane, sc, a0);
    // unit (i, 1, 0)
    turn_begin(4 * i + 2);
    wg::fence();
    wg::fence_operands(acc1);
    issue_half<kBf16, kRows, 0>(acc1, a0, desc0);
    wg::commit();
    turn_end(4 * i + 2);
    wg::wait<1>();  // unit (i, 0, 1) retired: buffer 1 is free, set 0's accumulators are final for chunk i
    wg::fence_operands(acc0);
    dequant_half<T, kBits, kTiles, 1>(codes_s, ta1, lane, sc, a1);
    // unit (i, 1, 1)
    turn_begin(4 * i + 3);
    wg::fence();
    wg::fence_operands(acc1);
    issue_half<kBf16, kRows, 1>(acc1, a1, desc0);
    wg::commit();
    turn_end(4 * i + 3);
    wg::wait<1>();  // unit (i, 1, 0) retired: buffer 0 is free
    if (++slot == kS) slot = 0, phase ^= 1u;
    if (i + 1 < n_chunks) {
      const uint32_t next_codes = base + slot * kStage + kXBytes;
      wgp::mbar_wait(full0 + 8 * slot, phase);
      wgp::fence_proxy_async();
      load_set<T, kBits, kTiles>(next_codes, ta0, lane, sc);
      dequant_half<T, kBits, kTiles, 0>(next_codes, ta0, lane, sc, a0);
    }
  }
  wg::wait<0>();
  wg::fence_operands(acc0);
  wg::fence_operands(acc1);

  // d[4i + e] of set s: weight row 16 warp + g + 8 (e / 2) of the set's 64, x row 8i + 2t + e % 2.
#pragma unroll
  for (int s = 0; s < 2; ++s) {
    const float* acc = s == 0 ? acc0 : acc1;
    const int64_t n_base = (tile0 + cw * 16 + 8 * s) * kTileRows + 16 * warp + g;
#pragma unroll
    for (int i = 0; i < kRows / 8; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t m = m0 + 8 * i + 2 * t + (e % 2), n = n_base + 8 * (e / 2);
        if (m >= M || n >= w.n) continue;
        if (partial)
          partial[(static_cast<int64_t>(split) * M + m) * w.n + n] = acc[4 * i + e];
        else
          y[m * w.n + n] = Traits<T>::from_float(acc[4 * i + e] + (w.bias ? w.bias[n] : 0.0f));
      }
  }
#else
  __trap();
#endif
}

template <typename T, int kBits, int kRows>
int launch_rows(const PackedView& w, const Plan& p, const void* x, int64_t x_stride, bool x_direct, void* y,
                int64_t M, float* partial, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((M + kRows - 1) / kRows),
                  static_cast<unsigned>((w.n8_tiles + kWgmmaBlockTiles - 1) / kWgmmaBlockTiles),
                  static_cast<unsigned>(p.splits));
  if (p.wgmma_wide) {
    const dim3 wgrid(grid.x, static_cast<unsigned>((w.n8_tiles + kWgmmaWideTiles - 1) / kWgmmaWideTiles),
                     grid.z);
    wgmma_wide_kernel<T, kBits, kRows>
        <<<wgrid, kWgmmaWsThreads, wgmma_ws_smem_bytes(kBits, kRows, kWgmmaWideTiles), s>>>(
            w, static_cast<const T*>(x), x_stride, x_direct, static_cast<T*>(y),
            p.splits > 1 ? partial : nullptr, static_cast<int>(M), p.chunks_per_split, p.wgmma_pingpong);
    return cudaGetLastError() == cudaSuccess ? kOk : kLaunchFailed;
  }
  if (p.wgmma_ws) {
    wgmma_ws_kernel<T, kBits, kRows><<<grid, kWgmmaWsThreads, wgmma_ws_smem_bytes(kBits, kRows), s>>>(
        w, static_cast<const T*>(x), x_stride, x_direct, static_cast<T*>(y), p.splits > 1 ? partial : nullptr,
        static_cast<int>(M), p.chunks_per_split);
    return cudaGetLastError() == cudaSuccess ? kOk : kLaunchFailed;
  }
  wgmma_kernel<T, kBits, kRows><<<grid, kWgmmaThreads, wgmma_smem_bytes(kBits, kRows), s>>>(
      w, static_cast<const T*>(x), x_stride, x_direct, static_cast<T*>(y), p.splits > 1 ? partial : nullptr,
      static_cast<int>(M), p.chunks_per_split);
  return cudaGetLastError() == cudaSuccess ? kOk : kLaunchFailed;
}

template <typename T, int kBits>
int launch_bits(const PackedView& w, const Plan& p, const void* x, int64_t x_stride, bool x_direct, void* y,
                int64_t M, float* partial, cudaStream_t s) {
  switch (p.wgmma_rows) {
    case 64:
      return launch_rows<T, kBits, 64>(w, p, x, x_stride, x_direct, y, M, partial, s);
    case 128:
      return launch_rows<T, kBits, 128>(w, p, x, x_stride, x_direct, y, M, partial, s);
    default:
      return kBadArgument;
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

template <typename T, int kBits>
cudaError_t allow_bits(bool ws) {
  cudaError_t e = cudaSuccess;
  if (ws) {  // the planner runs the warp-specialized kernels only where their shared memory fits
    e = cudaFuncSetAttribute(wgmma_wide_kernel<T, kBits, 64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(wgmma_ws_smem_bytes(kBits, 64, kWgmmaWideTiles)));
    if (e != cudaSuccess) return e;
    e = cudaFuncSetAttribute(wgmma_wide_kernel<T, kBits, 128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(wgmma_ws_smem_bytes(kBits, 128, kWgmmaWideTiles)));
    if (e != cudaSuccess) return e;
    e = cudaFuncSetAttribute(wgmma_ws_kernel<T, kBits, 64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(wgmma_ws_smem_bytes(kBits, 64)));
    if (e != cudaSuccess) return e;
    e = cudaFuncSetAttribute(wgmma_ws_kernel<T, kBits, 128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(wgmma_ws_smem_bytes(kBits, 128)));
    if (e != cudaSuccess) return e;
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
  return a.ptxVersion >= 90 && a.binaryVersion >= 90;
}

int prepare_wgmma_kernels(int max_smem_per_block) {
  if (static_cast<size_t>(max_smem_per_block) < wgmma_smem_bytes(8, 128)) return kBadArgument;
  const bool ws = static_cast<size_t>(max_smem_per_block) >= kWgmmaWsSmemBudget;
  if (allow_type<__half>(ws) != cudaSuccess) return kLaunchFailed;
  if (allow_type<__nv_bfloat16>(ws) != cudaSuccess) return kLaunchFailed;
  return kOk;
}

int launch_wgmma(const PackedView& w, const Plan& plan, const void* x, int64_t x_stride, bool x_direct,
                 void* y, int64_t M, bool bf16, float* partial, CUstream_st* stream) {
  if (M < 1 || M > INT32_MAX || plan.splits < 1 || plan.chunks_per_split < 1) return kBadArgument;
  return bf16 ? launch_type<__nv_bfloat16>(w, plan, x, x_stride, x_direct, y, M, partial, stream)
              : launch_type<__half>(w, plan, x, x_stride, x_direct, y, M, partial, stream);
}

}  // namespace ark::cuda
