// What the warp-specialized wgmma kernels share (linear_wgmma.cu: wgmma_ws_kernel; linear_wgmma_wide.cu:
// wgmma_wide_kernel): the cp.async helpers and the producer warpgroup that fills their mbarrier ring, plus
// the wide kernel's launch entry points. Device code only in sm_90a images (the callers' kernels guard with
// __CUDA_ARCH_FEAT_SM90_ALL).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/ptx_shared.cuh"
#include "kernels/cuda/tensor_map.h"
#include "kernels/cuda/wgmma_pipeline.cuh"

namespace ark::cuda {

// The wide kernel (linear_wgmma_wide.cu), launched by launch_wgmma when Plan::wgmma_wide; its shared-memory
// limits raised once per device by prepare_wgmma_kernels.
// x_maps: x as tensor_map.h describes it, in tiles of plan.wgmma_rows rows.
int launch_wgmma_wide(const PackedView& w, const Plan& plan, const XTileMaps& x_maps, void* y, int64_t M,
                      bool bf16, float* partial, cudaStream_t stream);
cudaError_t prepare_wgmma_wide_kernels();

namespace wgk {

using ptx::lds128;
using ptx::lds32;

// The device helpers exist only where the kernels have a body (sm_90a; the host pass needs their
// declarations).
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

#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Where the producer is in its ring: the next slot and its use mod 2. It carries over from one piece of
// work to the next (the wide kernel's stream-K schedule gives a block several), so the copies of the next
// piece start while the consumers finish the current one.
struct RingCursor {
  int slot = 0;
  uint32_t phase = 0;
};

// The producer warpgroup of the warp-specialized kernels: copies of chunk c0 + j into the ring's next
// slots of a block of kTiles n8 tiles (x tile, the tiles' codes, group records, block groups), each stage's
// `full` mbarrier completing when its copies have landed; a slot is refilled once its `empty` phase
// completed. The caller waits for its last cp.async copies (cp_async_wait_all) before it exits. Ring
// layout: kSplit false, each stage whole in wgmma_stage_bytes (x tile, then the rest); true, the wide
// kernel's (launch.h: wgmma_wide_stage_bytes): all x tiles, then all stages' codes and records.
//
// The x tile, [2 halves of 64 k][kRows][128 bytes] with the 128-byte swizzle, comes as two TMA boxes
// (tensor_map.h: x.full, or x.tail for the last x-row tile when M leaves it part full; rows past M and
// positions past K arrive as zeros, rows past the tail box stay stale), issued by thread 0 after it raised
// the stage's expected bytes; the codes and records by cp.async from every thread. At 256 rows of x a
// thread's share of the x tile was 32 cp.async per chunk: issue slots and registers the producer no longer
// spends.
//
// kOneGroup (the warp-specialized kernel scaling after its wgmmas: every chunk's blocks in one group): only
// k32 block 0's records are copied, and no block groups. Where the layout gives block 0's group as chunk x
// chunk_group_step (g = 128, one group), the producer computes it: no table load, whose latency would
// otherwise sit in the producer's chain once per chunk.
template <int kBits, int kRows, int kTiles, int kS, bool kSplit = false, bool kOneGroup = false>
__device__ __forceinline__ void ws_produce(const PackedView& w, const XTileMaps& x, int64_t m0, int64_t tile0,
                                           int64_t c0, int n_chunks, uint32_t base, uint32_t full0,
                                           uint32_t empty0, int pt, RingCursor& ring) {
  constexpr int kXBytes = kRows * kChunkK * 2;
  constexpr int kTileCodeBytes = kChunkK * kBits;
  constexpr int kCodeBytes = kTiles * kTileCodeBytes;
  constexpr int kMetaBytes = 4 * kTiles * 48;
  static_assert(!kSplit || kTiles == wgmma_wide_tiles(kRows), "the split ring is the wide kernel's");
  constexpr int kXStride = kSplit ? kXBytes : static_cast<int>(wgmma_stage_bytes(kBits, kRows, kTiles));
  constexpr int kMetaStride = kSplit ? static_cast<int>(wgmma_wide_meta_bytes(kBits, kRows)) : kXStride;
  const uint32_t meta0 = kSplit ? base + kS * kXBytes : base + kXBytes;  // slot 0's codes
  constexpr int kProducerThreads = 128;
  // Addresses worked out once, outside the loop.
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
    m_dst[r] = kCodeBytes + (mb * kTiles + mt) * 48 + mp * 16;  // from the slot's codes
  }
  // The chunk's 4 block groups, loaded one chunk ahead (the copies need them; their latency stays off the
  // copy issue); kOneGroup where the step gives them: computed.
  const int step = kOneGroup ? w.chunk_group_step : -1;
  auto block_groups = [&](int64_t c) {
    if (step >= 0) {
      const int g = static_cast<int>(c) * step;
      return make_int4(g, g, g, g);
    }
    return __ldg(reinterpret_cast<const int4*>(w.block_group) + c);
  };
  int4 bg = n_chunks > 0 ? block_groups(c0) : make_int4(0, 0, 0, 0);
  int slot = ring.slot;
  uint32_t phase = ring.phase;  // use of the slot, mod 2
  for (int j = 0; j < n_chunks; ++j) {
    const int4 bg_next = j + 1 < n_chunks ? block_groups(c0 + j + 1) : bg;
    // A slot's use u waits for the release of use u - 1: the phase of parity (u - 1) & 1 of its `empty`
    // barrier. For u = 0 that is parity 1, the phase before the barrier's first, which counts as complete:
    // the wait returns at once (no count of the chunks copied so far has to be kept).
    wgp::mbar_wait(empty0 + 8 * slot, phase ^ 1u);
    const uint32_t dst = base + slot * kXStride, meta = meta0 + slot * kMetaStride;
    if (pt == 0) {  // before its own arrival below, so the phase cannot complete without the x bytes
      const uint32_t full = full0 + 8 * slot;
      const int k = static_cast<int>((c0 + j) * kChunkK), m = static_cast<int>(m0);
      const bool tail = m0 >= x.last.m0;
      const CUtensorMap* map = tail ? &x.tail : &x.full;
      wgp::mbar_expect_tx(full, tail ? x.last.rows * 256 : kXBytes);
      wgp::tma_load_2d(dst, map, k, m, full);
      wgp::tma_load_2d(dst + kRows * 128, map, k + 64, m, full);
    }
    if constexpr (kProducerThreads % kPiecesPerTile == 0) {  // 2, 4, 8 bits: a constant step per copy
      const uint32_t* cp = c_base + j * chunk_words;
#pragma unroll
      for (int i = 0; i < kCodeCopies; ++i) {
        if ((c_ok >> i) & 1u) cp16(meta + (pt + i * kProducerThreads) * 16, cp);
        cp += c_step;
      }
    } else {
      const uint32_t* cj = w.codes + (c0 + j) * chunk_words;
#pragma unroll
      for (int i = 0; i < kCodeCopies; ++i) {
        const int p = pt + i * kProducerThreads;
        if ((c_ok >> i) & 1u)
          cp16(meta + p * 16,
               cj + (tile0 + p / kPiecesPerTile) * w.chunks * chunk_words + (p % kPiecesPerTile) * 4);
      }
    }
    const int g4[4] = {bg.x, bg.y, bg.z, bg.w};
#pragma unroll
    for (int r = 0; r < kMetaCopies; ++r) {
      const int mb = m_block[r];
      const int gcur = mb == 0 ? g4[0] : mb == 1 ? g4[1] : mb == 2 ? g4[2] : g4[3];
      const int gprev = mb == 0 ? -1 : mb == 1 ? g4[0] : mb == 2 ? g4[1] : g4[2];
      if (kOneGroup && mb != 0) continue;
      if (((m_ok >> r) & 1u) && gcur != gprev)
        cp16(meta + m_dst[r], m_src[r] + static_cast<int64_t>(gcur) * m_stride[r]);
    }
    // The block groups, for the consumers that read them, by a thread with fewer record pieces.
    if (!kOneGroup && pt == kMetaPieces % kProducerThreads)
      cp16(meta + kCodeBytes + kMetaBytes, w.block_group + (c0 + j) * 4);
    wgp::mbar_arrive_cp_async(full0 + 8 * slot);
    bg = bg_next;
    if (++slot == kS) slot = 0, phase ^= 1u;
  }
  ring.slot = slot;
  ring.phase = phase;
}
#endif

}  // namespace wgk
}  // namespace ark::cuda
