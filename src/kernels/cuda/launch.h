// The C-style launch layer of the CUDA backend: plain structs in, status codes out, no exceptions, so the
// kernels can be driven from any binding; CudaQuantLinear (src/kernels/cuda/cuda_linear.cpp) turns a non-zero
// status into ark::Error. Nothing here allocates device memory: scratch comes from the caller's workspace.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_layout.h"

struct CUstream_st;

namespace ark::cuda {

enum Status : int {
  kOk = 0,
  kBadArgument = 1,        // a pointer, size or dtype the launch cannot take
  kWorkspaceTooSmall = 2,  // the caller's workspace is below Plan::workspace_bytes
  kLaunchFailed = 3,       // a kernel launch returned an error (cudaGetLastError)
  kCublasFailed = 4,       // cuBLASLt found no algorithm or failed
  kTensorMapFailed = 5,    // the driver could not describe x for TMA (cuTensorMapEncodeTiled)
};
const char* status_message(int status);

// kGemv: the streaming decode kernel (linear_gemv.cu), M <= kGemvMaxRows. kWgmma: the Hopper warpgroup-MMA
// GEMM (linear_wgmma.cu), sm_90a only.
enum class Family : int { kMma, kDequantGemm, kSimt, kGemv, kWgmma };

// The stream-K schedule of the wide wgmma kernel (Plan::wgmma_sk; blocks == 0: the grid of whole tiles
// times split-K). A persistent grid of `blocks` blocks (one per SM) walks the layer's output tiles (m_tiles
// x-row tiles per 256-row weight range, the x-row tile fastest): block b first takes whole tiles b, b +
// blocks, ... (dp_waves of them), then its equal share of the last sk_tiles tiles' (tile, 128-k chunk)
// iterations, cut anywhere, crossing tile boundaries: [wgmma_sk_begin(b), wgmma_sk_begin(b + 1)) of the
// sk_tiles * chunks iterations, tile-major. A tile covered by one block is written to y directly; the
// pieces of a tile cut between blocks go to fp32 slots in the workspace (2 per block: its range's first and
// last piece) and a fix-up launch sums them in block order, so reruns give bit-identical results.
struct WgmmaStreamK {
  int blocks = 0;    // grid size (0: not stream-K)
  int m_tiles = 1;   // x-row tiles (Plan::wgmma_rows each)
  int dp_waves = 0;  // whole tiles per block before its stream-K share
  int sk_tiles = 0;  // the tiles after dp_waves * blocks, shared out by chunks
  int chunks = 1;    // 128-k chunks per tile (the layer's)
};
// 32-bit arithmetic (no 64-bit division in the kernels): wgmma_stream_k keeps sk_tiles * chunks * blocks
// below 2^31, else the layer keeps the split-K grid.
inline constexpr int64_t kWgmmaSkMaxProduct = int64_t{1} << 31;
ARK_HD int wgmma_sk_begin(const WgmmaStreamK& s, int b) {
  return static_cast<int>(static_cast<uint32_t>(s.sk_tiles * s.chunks) * static_cast<uint32_t>(b) /
                          static_cast<uint32_t>(s.blocks));
}
// The block whose share holds iteration p (the last one starting at or before p; shares are never empty
// where one holds p).
ARK_HD int wgmma_sk_block_of(const WgmmaStreamK& s, int p) {
  const uint32_t total = static_cast<uint32_t>(s.sk_tiles * s.chunks);
  const int b =
      static_cast<int>((static_cast<uint32_t>(p + 1) * static_cast<uint32_t>(s.blocks) + total - 1) / total) -
      1;
  return b < s.blocks - 1 ? b : s.blocks - 1;
}
// Piece j of block b's work under the schedule, false past its last: tile (in the layer's order: x-row tile
// tile % m_tiles, 256-row weight range tile / m_tiles), chunks c0 .. c0 + n - 1; out < 0: the whole tile,
// written to y; 0 / 1: a piece of a tile cut between blocks, to the block's fp32 slot 0 (the piece that
// starts its stream-K share) or 1 (the one that ends it). The kernel's producer and consumers, the fix-up
// and the host tests all walk this.
struct WgmmaPiece {
  int tile = 0, c0 = 0, n = 0, out = -1;
};
ARK_HD bool wgmma_sk_piece(const WgmmaStreamK& sk, int b, int j, WgmmaPiece& pc) {
  if (j < sk.dp_waves) {
    pc.tile = b + j * sk.blocks;
    pc.c0 = 0;
    pc.n = sk.chunks;
    pc.out = -1;
    return true;
  }
  if (sk.sk_tiles == 0) return false;
  const int q = j - sk.dp_waves;
  const int begin = wgmma_sk_begin(sk, b), end = wgmma_sk_begin(sk, b + 1);
  const int t = begin / sk.chunks + q, start = q == 0 ? begin : t * sk.chunks;
  if (start >= end) return false;
  pc.tile = sk.dp_waves * sk.blocks + t;
  pc.c0 = start - t * sk.chunks;
  pc.n = (end < (t + 1) * sk.chunks ? end : (t + 1) * sk.chunks) - start;
  pc.out = pc.n == sk.chunks ? -1 : q == 0 ? 0 : 1;
  return true;
}
// The fix-up's view of stream-K tile t (0 .. sk_tiles - 1): the blocks wgmma_sk_block_of(t * chunks) ..
// wgmma_sk_block_of((t + 1) * chunks - 1) hold its pieces (one block: the tile was written whole), and
// block b's piece of it is in b's slot wgmma_sk_slot_of (-1: b's share is empty).
ARK_HD int wgmma_sk_slot_of(const WgmmaStreamK& sk, int t, int b) {
  const int begin = wgmma_sk_begin(sk, b);
  if (begin == wgmma_sk_begin(sk, b + 1)) return -1;
  return begin >= t * sk.chunks ? 0 : 1;  // the piece starts b's share, or ends it
}

// How one forward of M rows runs: resolved on the host from the layer's sizes and the device's SM count.
struct Plan {
  Family family = Family::kMma;
  int m_tiles = 1;           // mma: m16 tiles per block (1, 2 or 4)
  int block_tiles = 1;       // gemv: warps along N (1, 2, 4 or 8, kGemvWarpTiles tiles each), 8 / it along K
  int splits = 1;            // mma, gemv: split-K factor (fp32 partials in the workspace when > 1)
  int chunks_per_split = 1;  // mma, gemv: 128-k chunks per split
  size_t smem_bytes = 0;     // mma: the cp.async ring and block-group table; gemv: table, x, reduction
  int64_t rows_per_chunk = 0;  // dequant_gemm: weight rows dequantized per cuBLAS call
  bool gather = false;         // x is reordered/padded into packed-K order in the workspace first
  size_t partial_bytes = 0;    // mma: split-K partials at the start of the workspace
  size_t workspace_bytes = 0;
  int wgmma_rows = 64;           // wgmma: rows of x per block (the wgmma N: 64, 128 or 256)
  bool gemv_cluster = false;     // gemv: the splits of a tile range are one cluster, summed in the kernel
  int gemv_x_ahead = 2;          // gemv, 8 x 1 x ring: iterations the x ring is filled ahead (kGemvXAhead)
  bool gemv_two_wide = false;    // gemv, 17..32 rows, 8 x 1 x ring: the kernel of two blocks per SM
  bool gemv_early_meta = false;  // gemv: the first stages' scales copied beside their codes (where affine)
  // gemv: the stream-K schedule (gemv_sk_*): gemv_sk_blocks blocks, each an equal share of the (tile range,
  // chunk) units; splits is then 1 and chunks_per_split the longest piece (shared memory)
  bool gemv_stream_k = false;
  int gemv_sk_blocks = 0;
  // gemv: split-K's or stream-K's reduce is a programmatic dependent launch (sm_90: its launch overlaps the
  // decode kernel's end; set_gemv_pdl)
  bool gemv_pdl = false;
  // gemv: the decode kernel itself is a programmatic dependent launch (sm_90): it copies its first weight
  // stages while the previous kernel on the stream finishes, and reads x after it (set_gemv_pdl_in)
  bool gemv_pdl_in = false;
  bool gemv_one_per_sm = false;  // gemv: smem_bytes padded to half an SM's (set_gemv_one_per_sm)
  // wgmma: the warp-specialized kernel (producer warpgroup, mbarrier ring) rather than the all-threads one
  bool wgmma_ws = false;
  // wgmma: the wide warp-specialized kernel (256 weight rows per block, two 64-row sets per consumer
  // warpgroup); with wgmma_pingpong its consumers take turns on the tensor core
  bool wgmma_wide = false;
  bool wgmma_pingpong = false;
  // wgmma, warp-specialized kernel at <= 64 rows of x on a layer with PackedView::chunk_one_group: the
  // weights enter the wgmmas as q - z (exact), each chunk's sums are scaled once in fp32
  // (set_wgmma_scale_after)
  bool wgmma_scale_after = false;
  WgmmaStreamK wgmma_sk;  // wgmma, wide kernel: the stream-K schedule (blocks == 0: whole tiles x split-K)
};

// What the planner needs to know of the device (read once at post_init).
struct DeviceInfo {
  int sm_count = 1;
  int smem_per_sm = 0;     // bytes usable by blocks of one SM
  int smem_per_block = 0;  // the opt-in maximum of one block
  bool wgmma = false;      // compute capability 9.x and the wgmma kernel was built for sm_90a
};

// n8 tiles per warp of the mma kernel's 16-row blocks: 4 (default) gives 2 blocks of 8 warps per SM with more
// weight bytes per instruction; 2 gives 3 blocks per SM with more warps to hide latency (a build-time knob
// for measuring the two on the device; blocks of 32 or 64 rows always take 2).
#ifndef ARK_MMA_DECODE_TILES
#define ARK_MMA_DECODE_TILES 4
#endif
// n8 tiles per mma block (8 warps) and the blocks per SM its launch bounds and shared memory allow at most.
constexpr int mma_block_tiles(int m_tiles) {
  return m_tiles == 1 ? 8 * ARK_MMA_DECODE_TILES : 16;
}
constexpr int mma_max_blocks_per_sm(int m_tiles) {
  return m_tiles == 1 && ARK_MMA_DECODE_TILES == 2 ? 3 : 2;
}
// Depth of the mma kernel's cp.async ring: 4 stages (3 chunks in flight while one is computed); 3 for 64-row
// blocks, whose larger x stages would otherwise leave room for only one block per SM.
constexpr int mma_stages(int m_tiles) {
  return m_tiles == 4 ? 3 : 4;
}  // linear_mma.cu: kStages
inline constexpr size_t kDequantChunkBytes = 64u << 20;  // dequantized weight rows per cuBLAS call
inline constexpr size_t kCublasWorkspaceBytes = 32u << 20;

// The streaming decode kernel (linear_gemv.cu): 8 warps per block, each owning kGemvWarpTiles n8 tiles;
// Plan::block_tiles warps side by side along N, the other 8 / block_tiles along K. At most
// gemv_max_blocks_per_sm(M) blocks per SM (launch bounds), M <= kGemvMaxRows. Each warp streams its
// tiles through a private ring of gemv_ring_stages(bits) chunk slots in shared memory (about
// ARK_GEMV_RING_BYTES of codes, all slots but one in flight). Build-time knobs, to measure variants on the
// device: ARK_GEMV_WARP_TILES, ARK_GEMV_BLOCKS_PER_SM, ARK_GEMV_RING_BYTES, ARK_GEMV_L2_PREFETCH,
// ARK_GEMV_WARP_RANGES, ARK_GEMV_EARLY_META.
#ifndef ARK_GEMV_WARP_TILES
#define ARK_GEMV_WARP_TILES 4
#endif
#ifndef ARK_GEMV_BLOCKS_PER_SM
#define ARK_GEMV_BLOCKS_PER_SM 2
#endif
#ifndef ARK_GEMV_L2_PREFETCH  // 0, 128 or 256: cp.async's L2 prefetch size for the weights
#define ARK_GEMV_L2_PREFETCH 0
#endif
#ifndef ARK_GEMV_WARP_RANGES  // 1: the warps along K take contiguous chunk runs instead of interleaving
#define ARK_GEMV_WARP_RANGES 0
#endif
#ifndef ARK_GEMV_RING_BYTES
#define ARK_GEMV_RING_BYTES 8192
#endif
#ifndef ARK_GEMV_WIDE_BLOCKS_PER_SM  // 2: the 17..32-row kernels at 128 registers (ptxas: 80-156 B spilled)
#define ARK_GEMV_WIDE_BLOCKS_PER_SM 1
#endif
#ifndef ARK_GEMV_X_STAGES  // slots of the x ring: 8, or 4 (two 32-row blocks fit an SM; no 4 x 2 blocks)
#define ARK_GEMV_X_STAGES 8
#endif
#ifndef ARK_GEMV_EARLY_META  // 1: the first stages' scales are copied before the prologue's block barrier
#define ARK_GEMV_EARLY_META 0
#endif
inline constexpr int kGemvWarps = 8;
inline constexpr int kGemvWarpTiles = ARK_GEMV_WARP_TILES;
inline constexpr int kGemvMaxBlocksPerSm = ARK_GEMV_BLOCKS_PER_SM;
inline constexpr int kGemvWideBlocksPerSm = ARK_GEMV_WIDE_BLOCKS_PER_SM;
// Up to 32 rows: rows 8h .. 8h + 7 of x are the n8 B operand of one mma per k16 step on the same dequantized
// weight registers, so the weight stream and its dequantization are shared by all rows.
inline constexpr int64_t kGemvMaxRows = 32;
ARK_HD constexpr int gemv_ring_stages(int bits) {
  return ARK_GEMV_RING_BYTES / (kGemvWarpTiles * bits * 128) > 3
             ? ARK_GEMV_RING_BYTES / (kGemvWarpTiles * bits * 128)
             : 3;
}
// One warp's ring: per slot and tile the 32 lanes' code words and 48 bytes of scales (8 fp32) and zeros (8
// uint16). After the loop it holds the warp's partial sums (kGemvWarpTiles x 32 lanes x 4 fp32 per 8 rows).
ARK_HD constexpr int gemv_ring_bytes(int bits) {
  return gemv_ring_stages(bits) * kGemvWarpTiles * (bits * 128 + 48);
}
// x staging. Up to 8 rows, or when more than kGemvXRingMaxWarpsK warps share a block along K, x is staged
// once per block for the block's whole split (fragment order, 256 bytes per row and chunk). Above 8 rows in
// blocks of 8 warps along N (all warps walk the same chunks) or 4 along N and 2 along K (the two take
// alternate chunks), x goes through a block-wide ring instead: kGemvXStages chunk slots of M rows in natural
// order (a row's 128 k = 256 bytes plus 16 of padding, so ldmatrix's 8 row addresses hit distinct banks),
// filled kGemvXAhead iterations ahead by all threads with 16-byte cp.async and handed over with mbarriers
// (full: the chunk landed; empty: the warps that take the chunk have read it), so the shared memory does not
// grow with K. The 4 x 2 shape halves the tiles per block: twice the blocks, so at M = 9..16 two blocks (16
// warps) per SM where a layer has fewer tile ranges of 8 warps than SMs.
inline constexpr int kGemvXStages = ARK_GEMV_X_STAGES, kGemvXAhead = 2, kGemvXRowBytes = 272,
                     kGemvBarrierBytes = 128;
inline constexpr int kGemvXRingMaxWarpsK = 2;
// What the planner picks by default (overrides below): the 8 x 1 ring's lookahead, and whether it weighs
// the two-block 17..32-row kernel.
inline constexpr int kGemvAutoXAhead = 2;
inline constexpr bool kGemvAutoTwoWide = false;
inline constexpr bool kGemvAutoEarlyMeta = true;
// The 4 x 2 blocks need room for both warps' chunks of kGemvXAhead + 1 iterations, and interleaved chunks.
inline constexpr bool kGemvRing4x2Built =
    !ARK_GEMV_WARP_RANGES && kGemvXRingMaxWarpsK * (kGemvXAhead + 1) <= kGemvXStages;
ARK_HD constexpr bool gemv_x_ring(int64_t M, int block_tiles) {
  return M > 8 && (block_tiles == kGemvWarps || (kGemvRing4x2Built && block_tiles == kGemvWarps / 2));
}
// Split-K without the second launch (sm_90 devices: DeviceInfo::wgmma): the splits of one tile range run as a
// thread-block cluster of up to kGemvMaxClusterSplits blocks (the portable cluster size) and rank 0 sums
// their shared-memory partials in split order. Measured slower than the reduce launch on an H200 (2026-11-27,
// every shape and M: a tie at 2 splits, 1.07x / 1.25x / 1.38x slower in the median at 3 / 4 / 8;
// docs/CUDA.md), so it is off. The 4 x 2 x-ring blocks are off in the planner too: fastest of the shapes
// timed at M = 32 on the 7B shapes and 8192x8192 (H200), but the planner's own choice there was not timed
// in that sweep. set_gemv_cluster_reduce(true) / set_gemv_ring_4x2(true) let the planner weigh them,
// process-wide (benchmarks timing both in one process, tests covering both); forced block shapes run the
// 4 x 2 ring either way. Read at plan time, not in a kernel.
inline constexpr int kGemvMaxClusterSplits = 8;
void set_gemv_cluster_reduce(bool allowed);
bool gemv_cluster_reduce();
void set_gemv_ring_4x2(bool allowed);
bool gemv_ring_4x2();
// Blocks per SM the launch bounds allow: the 17..32-row kernels keep twice the accumulators and run one
// block of 8 warps per SM without spilling; their two-block variant (two_wide) caps registers at 128.
constexpr int gemv_max_blocks_per_sm(int64_t M, bool two_wide = false) {
  return two_wide ? 2 : M > 16 ? kGemvWideBlocksPerSm : kGemvMaxBlocksPerSm;
}
// The 17..32-row 8 x 1 x-ring kernel at two blocks of 8 warps per SM (gemv_kernel's kTwoWide): launch bounds
// of 2 blocks (128 registers) and an x ring of kGemvTwoWideXStages slots, so that two blocks' shared memory
// fits an SM (2 x 107 KB at int4, M = 32). One more instance per bits x dtype, chosen per plan
// (Plan::gemv_two_wide), so it is timed against the one-block kernel in one process.
inline constexpr int kGemvTwoWideXStages = 4;
constexpr bool gemv_two_wide_fits(int64_t M, int block_tiles) {
  return M > 16 && block_tiles == kGemvWarps && gemv_x_ring(M, block_tiles);
}
// Shared memory of one gemv block: mbarriers (x ring only), block-group table, the warps' rings, x.
constexpr size_t gemv_smem_bytes(int64_t M, int64_t chunks_per_split, int bits, int block_tiles,
                                 bool two_wide = false) {
  const bool ring = gemv_x_ring(M, block_tiles);
  const int x_slots = two_wide ? kGemvTwoWideXStages : kGemvXStages;
  return static_cast<size_t>((ring ? kGemvBarrierBytes : 0) + chunks_per_split * 16 +
                             kGemvWarps * gemv_ring_bytes(bits) +
                             (ring ? x_slots * M * kGemvXRowBytes : chunks_per_split * M * 256));
}
// Process-wide overrides of the two choices above, read at plan time (benchmarks timing old and new in one
// process, tests covering both): set_gemv_x_ahead(a), a > 0, fills the 8 x 1 x ring a iterations ahead
// (clamped to 1 .. slots - 1; 0: the planner's kGemvAutoXAhead); set_gemv_two_wide(mode): 1 runs the
// two-block kernel wherever it applies, -1 never, 0 where the planner's model prefers it (kGemvAutoTwoWide).
void set_gemv_x_ahead(int a);
int gemv_x_ahead_override();
void set_gemv_two_wide(int mode);
int gemv_two_wide_mode();
// set_gemv_early_meta(mode): 1 copies the first ring stages' scales and zeros beside their codes, before the
// prologue's block barrier, in layers whose chunks' groups follow from the chunk (PackedView::
// chunk_group_step; others read the table after the barrier), -1 never, 0 as kGemvAutoEarlyMeta says. (Its
// first version read each group from global memory first and measured slower: docs/CUDA.md v7.)
void set_gemv_early_meta(int mode);
int gemv_early_meta_mode();
// set_gemv_model_v6(true): the planner's previous fit (two blocks per SM cost every kernel twice the time
// per chunk), so a benchmark times the previous choices beside the current ones in one process.
void set_gemv_model_v6(bool on);
bool gemv_model_v6();
// The stream-K schedule (gemv_sk_kernel): split-K's whole factors cannot spread e.g. 112 tile ranges of 64
// chunks evenly over 132 SMs (8192x28672 at 32 tiles per block: s1 leaves 20 SMs idle, s2 puts 2 blocks on 92
// SMs and 1 on 40). Instead the units (tile range, chunk), range-major, are cut into G contiguous shares,
// G about the SMs times the blocks per SM, so every block streams units / G chunks (+-1) and a share may span
// the end of one range and the start of the next. Pieces of a range split between blocks leave fp32 sums in
// two workspace slots per block (a share's first and last piece; a piece between them covers its range and
// stores y), summed in block order by a reduce kernel: deterministic, no atomics, no zeroed memory.
ARK_HD constexpr int64_t gemv_sk_units(int64_t n8_tiles, int64_t chunks, int block_warps_n) {
  return (n8_tiles + int64_t{block_warps_n} * kGemvWarpTiles - 1) /
         (int64_t{block_warps_n} * kGemvWarpTiles) * chunks;
}
ARK_HD constexpr int64_t gemv_sk_begin(int64_t block, int64_t blocks,
                                       int64_t units) {  // first unit of a share
  return block * units / blocks;
}
ARK_HD constexpr int64_t gemv_sk_block_of(int64_t unit, int64_t blocks, int64_t units) {  // blocks <= units
  return ((unit + 1) * blocks - 1) / units;
}
// Workspace of a stream-K plan: two slots of M x (the block's rows) fp32 per block.
constexpr size_t gemv_sk_partial_bytes(int64_t blocks, int64_t M, int block_warps_n) {
  return static_cast<size_t>(2 * blocks * M * block_warps_n * kGemvWarpTiles * kTileRows) * sizeof(float);
}
// Whether the planner weighs stream-K plans by default; set_gemv_stream_k(mode): 1 gives every gemv plan the
// stream-K schedule where it applies (not the 4 x 2 x ring, the two-block kernel or the cluster reduction),
// -1 never, 0 as kGemvAutoStreamK says. set_gemv_sk_grid(g), g > 0: a stream-K plan takes exactly g blocks
// (at most the units; tests, sweeps), 0: the model's choice of one or two blocks per SM. Read at plan time.
inline constexpr bool kGemvAutoStreamK = false;
// set_gemv_pdl(mode): 1 launches gemv's reduce (split-K or stream-K) as a programmatic dependent launch on
// sm_90 devices (DeviceInfo::wgmma), -1 never, 0 as kGemvAutoPdl says.
inline constexpr bool kGemvAutoPdl = true;
void set_gemv_pdl(int mode);
int gemv_pdl_mode();
// set_gemv_pdl_in(mode): 1 launches the gemv decode kernel itself as a programmatic dependent launch on sm_90
// devices (Plan::gemv_pdl_in), -1 never, 0 as kGemvAutoPdlIn says. Back-to-back calls then overlap: the next
// kernel's blocks take SMs as the previous one's finish and copy their first weight stages before waiting.
// With the padding below, 1.006-1.23x the plain launch on every shape and M = 1..32 timed on an H100
// (docs/CUDA.md, v9).
inline constexpr bool kGemvAutoPdlIn = true;
void set_gemv_pdl_in(int mode);
int gemv_pdl_in_mode();
// set_gemv_one_per_sm(mode): 1 pads the shared memory of a gemv plan of at most one block per SM whose blocks
// could share an SM (M <= 16, or the two-block 17..32-row kernel) to half an SM's, so that the block scheduler cannot place two on one SM while
// others idle (Plan::gemv_one_per_sm); -1 never; 0 as kGemvAutoOnePerSm says. On with the dependent launch:
// without it, blocks placed early while the previous kernel still holds the SMs landed two to an SM on some
// of those grids, 0.84-0.95x the plain launch (v9); alone it changes nothing measurable.
inline constexpr bool kGemvAutoOnePerSm = true;
void set_gemv_one_per_sm(int mode);
int gemv_one_per_sm_mode();
// set_gemv_cluster_pairs(mode): 1 sums a gemv plan of exactly two splits inside the kernel by a cluster of
// two blocks (Plan::gemv_cluster, sm_90 only; the shape the model chose is kept), -1 never (the reduce
// launch), 0 as kGemvAutoClusterPairs says. On an H100 with the dependent launches, 8192x28672 at M = 16 (t8
// s2) ran 58.6 against 62.3 us (1.06x, three runs); at 4 and 8 splits the cluster was 0.43-0.76x, which is
// why set_gemv_cluster_reduce (the model weighing clusters of 2..8) stays off (docs/CUDA.md, v10).
inline constexpr bool kGemvAutoClusterPairs = true;
void set_gemv_cluster_pairs(int mode);
int gemv_cluster_pairs_mode();
void set_gemv_stream_k(int mode);
int gemv_stream_k_mode();
void set_gemv_sk_grid(int blocks);
int gemv_sk_grid();

// Where kAuto runs gemv instead of mma: where it measured faster on the H100 (docs/CUDA.md, sweep of
// 2026-11-27 20:50 UTC): M <= 32, int4, at most one group starting per chunk (g >= 128 or per-channel), and
// a layer of at least kGemvAutoMinTileChunks (tile, chunk) pairs (4096x4096, the smallest shape measured).
// M = 9..32 runs the x ring: 1.03-1.07x mma at M = 16, 1.07-1.16x at M = 32 on 8192x8192 and the 70B
// shapes, 0.99-1.0x on the 7B shapes at M = 32 (M = 1..8: 1.02-1.16x).
inline constexpr int64_t kGemvAutoMaxM = 32;
inline constexpr int64_t kGemvAutoMinTileChunks = int64_t{1} << 14;
bool gemv_preferred(const PackedView& w, int64_t M);

// The wgmma GEMM (linear_wgmma.cu): blocks of 2 consumer warpgroups, each 64 weight rows (8 n8 tiles), times
// Plan::wgmma_rows rows of x; a ring of wgmma_stages(rows) 128-k chunks (x tile with the 128-byte swizzle,
// the codes, the chunk's group records) filled by cp.async.
inline constexpr int kWgmmaThreads = 256;
inline constexpr int kWgmmaBlockTiles = 16;
// Ring depth: 6 stages for 64 rows of x (5 chunks of weights in flight: at M = 64 the kernel streams), 4
// for 128 (larger x tiles).
ARK_HD constexpr int wgmma_stages(int rows) {
  return rows <= 64 ? 6 : 4;
}
// Bytes of one ring stage of a block of `tiles` n8 tiles, rounded to the 1024-byte alignment of the swizzled
// x tile.
ARK_HD constexpr size_t wgmma_stage_bytes(int bits, int rows, int tiles = kWgmmaBlockTiles) {
  return (static_cast<size_t>(rows) * kChunkK * 2 + static_cast<size_t>(tiles) * kChunkK * bits +
          4 * static_cast<size_t>(tiles) * 48 + 16 + 1023) /
         1024 * 1024;
}
ARK_HD constexpr size_t wgmma_smem_bytes(int bits, int rows) {
  return wgmma_stages(rows) * wgmma_stage_bytes(bits, rows) + 1024;  // + alignment slack of the dynamic base
}
// One block per SM: two sets of A registers (64) plus the accumulators need more than the 128 registers that
// two blocks of 256 threads would leave.
ARK_HD constexpr int wgmma_max_blocks_per_sm(int) {
  return 1;
}
// The warp-specialized variant (wgmma_ws_kernel): kWgmmaWsThreads = 3 warpgroups, the first only copying
// (x by TMA, the rest by cp.async into the ring, then an mbarrier arrival that fires when its copies land),
// the other two the
// consumers above, which wait on the stage's `full` mbarrier, dequantize, issue the wgmmas and arrive on its
// `empty` one: no block barrier in the main loop. The ring takes as many stages as fit in one block's shared
// memory, up to kWgmmaWsMaxStages (8 at 64 rows of x, 5 at 128 for int4); per stage 16 bytes of mbarriers.
inline constexpr int kWgmmaWsThreads = 384;
inline constexpr int kWgmmaWsMaxStages = 8;
inline constexpr size_t kWgmmaWsSmemBudget = 232448;  // an H100's / H200's opt-in shared memory per block
ARK_HD constexpr int wgmma_ws_stages(int bits, int rows, int tiles = kWgmmaBlockTiles) {
  return (kWgmmaWsSmemBudget - 1024 - 16 * kWgmmaWsMaxStages) / wgmma_stage_bytes(bits, rows, tiles) <
                 static_cast<size_t>(kWgmmaWsMaxStages)
             ? static_cast<int>((kWgmmaWsSmemBudget - 1024 - 16 * kWgmmaWsMaxStages) /
                                wgmma_stage_bytes(bits, rows, tiles))
             : kWgmmaWsMaxStages;
}
ARK_HD constexpr size_t wgmma_ws_smem_bytes(int bits, int rows, int tiles = kWgmmaBlockTiles) {
  return wgmma_ws_stages(bits, rows, tiles) * wgmma_stage_bytes(bits, rows, tiles) + 16 * kWgmmaWsMaxStages +
         1024;
}
// The wide warp-specialized kernel (wgmma_wide_kernel): the same producer and mbarrier ring, but
// kWgmmaWideTiles n8 tiles (256 weight rows) per block, each consumer warpgroup owning two 64-row sets (an
// accumulator set each) and dequantizing half a chunk at a time into two A buffers. Why: per chunk a block of
// 128 weight rows and 128 rows of x fills 43 KB of shared memory from L2 (x 32 KB of it) for 2 M MACs, and
// the 128-row kernels' H100 / H200 timings all work out to 4-6 TB/s of such fills whatever M is
// (docs/CUDA.md): the x tile, re-read by every weight range, is most of it. With 256 weight rows per x tile
// a block fills 54 KB per 4 M MACs at 128 rows of x (33 KB per 2 M MACs at 64), and at M <= 64 a 70B
// layer's 8192x28672 is one wave of 112 blocks instead of 224 blocks on 132 SMs.
inline constexpr int kWgmmaWideTiles = 32;
// The tall form of the same kernel (WgmmaVariant::kTall, Plan::wgmma_rows = 256): 256 rows of x
// (m64n256k16, 128 fp32 accumulators per consumer thread, as many as the wide kernel's two sets at 128 rows)
// times kWgmmaTallTiles n8 tiles (128 weight rows, one 64-row set per consumer warpgroup). Per 128-k chunk a
// block does the wide kernel's 4 M MACs at 128 rows of x with half the dequantization (the consumers'
// dequantization chain is what bounds the wide kernel at M >= 256: docs/CUDA.md, wgmma "what the profiler
// shows"), for 1.5x its shared-memory fills (x 64 KB + codes 8 KB per chunk: 3 stages at int4).
inline constexpr int kWgmmaTallTiles = 16;
ARK_HD constexpr int wgmma_wide_tiles(int rows) {
  return rows > 128 ? kWgmmaTallTiles : kWgmmaWideTiles;
}
// fp32 slots of the stream-K pieces: 2 per block, `rows` rows of x x the block's weight rows each (`tiles`
// n8 tiles; 0: the wide kernel's at these rows).
ARK_HD constexpr size_t wgmma_sk_slot_floats(int rows, int tiles = 0) {
  return static_cast<size_t>(rows) * (tiles > 0 ? tiles : wgmma_wide_tiles(rows)) * kTileRows;
}
// The wide kernel's ring (both forms): the x tiles of all stages first (rows x 256 bytes each, a multiple of
// 1024, so every tile keeps the swizzle's 1024-byte alignment), then each stage's codes, group records and
// block groups (wgmma_wide_meta_bytes, 16-byte aligned), then the mbarriers. No stage is padded to 1024 bytes
// as in wgmma_stage_bytes' layout: at 256 rows of x and int4 that padding (1008 bytes a stage) left room for
// 2 stages instead of 3. At 64 and 128 rows the stage counts are those of that layout (5 and 4 at int4).
ARK_HD constexpr size_t wgmma_wide_meta_bytes(int bits, int rows) {
  return (static_cast<size_t>(wgmma_wide_tiles(rows)) * (kChunkK * bits + 4 * 48) + 16 + 15) / 16 * 16;
}
ARK_HD constexpr size_t wgmma_wide_stage_bytes(int bits, int rows) {
  return static_cast<size_t>(rows) * kChunkK * 2 + wgmma_wide_meta_bytes(bits, rows);
}
ARK_HD constexpr int wgmma_wide_stages(int bits, int rows) {
  return (kWgmmaWsSmemBudget - 1024 - 16 * kWgmmaWsMaxStages) / wgmma_wide_stage_bytes(bits, rows) <
                 static_cast<size_t>(kWgmmaWsMaxStages)
             ? static_cast<int>((kWgmmaWsSmemBudget - 1024 - 16 * kWgmmaWsMaxStages) /
                                wgmma_wide_stage_bytes(bits, rows))
             : kWgmmaWsMaxStages;
}
ARK_HD constexpr size_t wgmma_wide_smem_bytes(int bits, int rows) {
  return wgmma_wide_stages(bits, rows) * wgmma_wide_stage_bytes(bits, rows) + 16 * kWgmmaWsMaxStages + 1024;
}
// Which kernel kAuto runs, by layer size in (n8 tile, chunk) pairs and M, from the H200 sweeps of 2026-11-28
// 01:15 and 01:31 UTC (ark_cuda_bench --sweep-wgmma --quick / --small: int4 g128 bf16, every kernel timed in
// one process on the six shapes at M = 64..1024; docs/CUDA.md). The warp-specialized kernel was at least as
// fast as the all-threads one at every point (up to 1.11x), so kAuto no longer runs the latter:
//   >= kWgmmaWideMinTileChunks (the 70B layers): the wide kernel at every M (1.14-1.31x the previous choice:
//     8192x28672 M = 64 87.8 us against the all-threads kernel's 104.2, M = 128 112.0 / 149.7);
//   M <= 64: the wide kernel where N > kWgmmaWideMinN (4096x11008: 24.3 us, warp-specialized 25.7), else
//     the warp-specialized one (8192x8192 28.3 / wide 29.6; 11008x4096 20.6 / 22.8; 4096x4096 11.2 / 13.7);
//   M > 64: the wide kernel from kWgmmaWideMidTileChunks (8192x8192, 4096x11008, 11008x4096: 1.02-1.32x),
//     the warp-specialized one below (4096x4096: 16.1 us at M = 128, wide 18.7).
//   M >= kWgmmaTallMinM: the tall form, on every shape (H200, 2026-11-28 09:11 UTC, ark_cuda_bench
//     --sweep-wgmma --quick and --small with each kernel forced and its planned schedule, µs against the
//     previous kAuto: 8192x28672 M = 256 / 512 187.5 / 348.9 against 205.4 / 389.6; 28672x8192 179.9 /
//     330.0 / 655.7 at 256 / 512 / 1024 against 201.1 / 377.6 / 745.4; 8192x8192 62.9 / 101.2 against 69.3
//     / 117.6; 11008x4096 43.7 / 77.4 against 49.6 / 87.4; 4096x11008 52.0 at 256 against 55.5;
//     4096x4096 23.1 against 24.4 at 256). kWgmmaTallMinM = 129: at M = 160 / 192 / 224 the tall form's one
//     x-row tile of 256 rows beat the wide kernel's two of 128 on all six shapes, 1.07-1.21x (H200, 09:33
//     UTC, ARK_SWEEP_MS=160,192,224 ark_cuda_bench --sweep-wgmma --quick / --small; 8192x28672 M = 160
//     187.1 against 206.7 us, 4096x4096 M = 160 20.7 against 25.1).
//   Except 256 < M <= kWgmmaWsMaxM on layers with in_features <= kWgmmaWsMaxK where the warp-specialized
//     kernel's grid of whole 128-row tiles fills at most kWgmmaWsMaxWaves waves of the SMs: that kernel
//     (H200, x by TMA, 11:57 and 12:01 UTC, ARK_SWEEP_MS=288,...,768 ark_cuda_bench --sweep-wgmma --small:
//     4096x11008 at M = 288 / 320 / 384, 258 tiles, 58.1 / 58.2 / 57.7 us against the tall form's 68.3 /
//     68.1 / 68.3; 4096x4096 at 288..512, 96-128 tiles, 29.1-29.6 against 29.7-33.7, where the tall form's
//     64 tiles need split-K 2 and its reduce). Where the ws grid needs a third wave the tall form wins
//     (4096x11008 at 448 / 512: 344 tiles, 86 us against 71), and on the longer-K layers (11008x4096 at
//     288..384: tall 60.8-62.1 against 69.8; 8192x8192 at 288: 81.5 against 94.3).
//   M <= 64 on layers whose chunks each lie in one group (PackedView::chunk_one_group): the warp-specialized
//     kernel, which scales after its wgmmas there (Plan::wgmma_scale_after), on every shape (H200, 2026-11-28
//     13:12 UTC, ARK_SWEEP_MS=16,32,48,64 ark_cuda_bench --sweep-wgmma --quick / --small: against the wide
//     kernel 1.07-1.14x on the 70B layers, 8192x28672 M = 64 79.3 against 84.6 us, 28672x8192 71.3 / 81.0;
//     4096x11008 21.8 / 24.7; the kernel with the scale folded into A took 89.8 / 80.1 / 24.7 there).
// The ping-pong form of the wide kernel measured 1-5% slower than the free-running one everywhere: forced
// only.
inline constexpr int64_t kWgmmaWideMinTileChunks = int64_t{1} << 17,
                         kWgmmaWideMidTileChunks = int64_t{1} << 15, kWgmmaWideMinN = 8192;
inline constexpr int64_t kWgmmaTallMinM = 129;
inline constexpr int64_t kWgmmaWsMaxM = 512, kWgmmaWsMaxK = 4096, kWgmmaWsMaxWaves = 2;

// Which wgmma kernel make_plan picks: kAuto lets the planner choose; the others force one process-wide (for
// benchmarks timing both in one process, and tests covering both). Read at plan time, not in a kernel.
// kWide: wgmma_wide_kernel; kWidePingPong: the same with the two consumer warpgroups issuing their wgmmas in
// strict turns (named barriers), so one dequantizes while the other's run; kTall: wgmma_wide_kernel with 256
// rows of x and 128 weight rows per block where M > 128 (the wide kernel's 64 or 128 rows below; kAuto's
// choice there, kWgmmaTallMinM).
enum class WgmmaVariant : int {
  kAuto = 0,
  kAllThreads = 1,
  kWarpSpecialized = 2,
  kWide = 3,
  kWidePingPong = 4,
  kTall = 5
};
void set_wgmma_variant(WgmmaVariant v);
WgmmaVariant wgmma_variant();
// Where the warp-specialized kernel runs at <= 64 rows of x on a layer whose chunks each lie in one group
// (PackedView::chunk_one_group), its consumers can dequantize to q - z alone (exact in T: 2 instructions per
// A register instead of the 5 that fold the scale in with one rounding) and scale each chunk's fp32 sums
// by the rows' scales once the chunk's wgmmas are done (Plan::wgmma_scale_after; one FMA per accumulator
// and chunk, a second accumulator set per chunk in flight). mode 0: kAuto's choice (kWgmmaAutoScaleAfter),
// 1 wherever it applies, -1 never. Process-wide, read at plan time.
void set_wgmma_scale_after(int mode);
int wgmma_scale_after_mode();
inline constexpr bool kWgmmaAutoScaleAfter = true;
// How the wide kernel's work is laid on the SMs: kAuto as the planner decides (wgmma_auto_schedule); kSplitK
// the grid of whole tiles times the split-K factor of the cost model; kStreamK the stream-K schedule with the
// tiles past the last whole wave shared out (all tiles where there is less than one wave); kStreamK2 the
// same with the last whole wave shared out too (a wider stream-K region: more chunks per block where the
// remainder is small). Stream-K applies to the free-running wide kernel only (ping-pong, the other kernels
// and a forced split-K factor keep the split-K grid). blocks > 0: that many blocks instead of the SM count
// (tests cutting tiles into chosen pieces). Process-wide, read at plan time, like set_wgmma_variant.
enum class WgmmaSchedule : int { kAuto = 0, kSplitK = 1, kStreamK = 2, kStreamK2 = 3 };
void set_wgmma_schedule(WgmmaSchedule s, int blocks = 0);
WgmmaSchedule wgmma_schedule();
int wgmma_schedule_blocks();
// The schedule kAuto gives the wide kernel for M rows of this layer on sm_count SMs, where the split-K grid
// the cost model picked has `splits` splits: stream-K where that grid's blocks fill less than
// kWgmmaSkMaxFill of its waves' slots (its last wave leaves SMs idle), else split-K. From two H200 sweeps
// (ark_cuda_bench --sweep-wgmma-sk, 2026-11-28 03:37 and 03:55 UTC; docs/CUDA.md, wgmma v6), split-K timed
// before and after stream-K in one process, 03:55 figures:
//   fill 0.85 (8192x28672: 112 weight ranges per x-row tile): stream-K 1.04 / 1.01 / 1.10 / 1.15x at M =
//     64 / 128 / 256 / 512 (85.96 against 89.47 / 88.85 us at 64; 393.6 against 453.2 at 512);
//   fill 0.65 (4096x11008 at M = 256: 86 tiles): 1.11x (55.3 against 61.6 us);
//   fill 0.97 (28672x8192 at every M, 8192x8192 and 11008x4096 above 64 rows: 128 blocks): 0.96-1.02x, where
//     the fix-up and the pieces' start-up cost as much as the 4 idle SMs (28672x8192 M = 512: 384.5 against
//     380.6 us; 8192x8192 M = 512: 126.3 against 115.1).
// The wider region (kStreamK2) was slower than kStreamK at every point timed: forced only.
// The warp-specialized kernel takes the same rule where it scales after its wgmmas (kAuto's kernel at M <=
// 64, 16 tiles per block): on an H200 (2026-11-28 14:11 UTC, ARK_SWEEP_MS=17,32,64 ark_cuda_bench) stream-K
// ran 8192x28672 (224 blocks on 132 SMs) in 67.1 / 67.6 / 73.3 us at M = 17 / 32 / 64 and 4096x11008 (86
// blocks) in 18.0 / 18.2 / 21.2, where split-K had taken 71.1 / 71.8 / 79.8 and 19.4 / 19.5 / 21.8 in the
// 13:16-13:27 UTC runs; the other four shapes fill 97% of a wave and keep split-K.
inline constexpr double kWgmmaSkMaxFill = 0.95;
// tiles: n8 tiles per block (0: the wide kernel's at these rows; the warp-specialized kernel has
// kWgmmaBlockTiles).
WgmmaSchedule wgmma_auto_schedule(const PackedView& w, int64_t M, int rows, int sm_count, int splits,
                                  int tiles = 0);
// The stream-K schedule of M rows of this layer on `blocks` blocks (the wide kernel, rows of x per tile);
// two_waves: kStreamK2's wider region.
WgmmaStreamK wgmma_stream_k(const PackedView& w, int64_t M, int rows, int blocks, bool two_waves,
                            int tiles = 0);
// The kernel kAuto runs for M rows of this layer on sm_count SMs (kWarpSpecialized, kWide or kTall; above).
WgmmaVariant wgmma_auto_variant(const PackedView& w, int64_t M, int sm_count);
// Whether the wgmma kernel can run on `device` (compute capability 9.x, sm_90a code in this build, and the
// driver's tensor-map encoder for the TMA loads).
bool wgmma_supported(int device);

// The family kAuto runs for M rows: dequant_gemm at or above large_m_threshold, gemv where gemv_preferred,
// else mma; the overload with the device runs wgmma where wgmma_preferred.
Family auto_family(const PackedView& w, int64_t M, int64_t large_m_threshold);
Family auto_family(const PackedView& w, int64_t M, int64_t large_m_threshold, const DeviceInfo& dev);
// Where kAuto runs wgmma: an sm_90a device, int4, kWgmmaAutoMinM <= M <= kWgmmaAutoMaxM on every layer, and
// from kWgmmaScaledMinM on layers whose chunks each lie in one group (PackedView::chunk_one_group: g128,
// one group), where the warp-specialized kernel scales after its wgmmas (Plan::wgmma_scale_after) and runs
// 32 rows of x up to M = 32. From 33 rows mma runs 64-row blocks, as slow as at M = 64, where wgmma measured
// 1.35-1.55x faster (H100, docs/CUDA.md, 2026-11-27). At 17..32 rows the scaled-after 32-row kernel beat the
// gemv family on all six bench shapes, 1.02-1.24x (H200, 2026-11-28 13:12 and 13:16 UTC, ARK_SWEEP_MS=17,
// 20,24,28,32 ark_cuda_bench --sweep-wgmma --quick / --small: 8192x28672 M = 17 71.1 against gemv's 79.7
// us, M = 32 71.4 / 81.1; 11008x4096 M = 32 16.3 / 20.2; 4096x11008 M = 17 19.4 / 19.7). With its producer
// computing the groups (v10) it ties or beats gemv's 9..16-row kernel at M = 16 on four shapes but loses on
// 28672x8192 (51.0 against 49.2 us) and 4096x4096 (7.84 / 7.70), and at 9..12 rows gemv wins on three to four
// (H200, 2026-11-28 15:31 UTC, ARK_SWEEP_MS=9,12,14,16 --sweep-wgmma): 17 stays. Since x comes by TMA, the
// tall form beats dequant + cuBLAS on all six bench shapes up to 2048 rows (H200, ark_cuda_bench
// --sweep-wgmma --small and --quick with ARK_SWEEP_MS, 2026-11-28 11:31 UTC), at 1024 by 1.11-1.41x
// (4096x11008 129.4 against 143.6 us, 11008x4096 107.8 against 151.8) and at 2048 by 1.04-1.30x (4096x11008
// 238.4 against 247.8, 4096x4096 89.7 against 93.0, 28672x8192 1066.8 against 1390.3); larger M not measured.
inline constexpr int64_t kWgmmaAutoMinM = 33, kWgmmaScaledMinM = 17, kWgmmaAutoMaxM = 2048;
bool wgmma_preferred(const PackedView& w, int64_t M, const DeviceInfo& dev);

// forced_splits > 0: the mma / gemv split-K factor nearest it that divides the chunks evenly, when it fits;
// forced_block_tiles > 0: gemv's warps along N per block (1, 2, 4 or 8).
Plan make_plan(const PackedView& w, int64_t M, Family family, const DeviceInfo& dev, int forced_splits = 0,
               int forced_block_tiles = 0);

// Shared memory of one stage of the mma ring (linear_mma.cu's StageLayout).
size_t mma_stage_bytes(int bits, int m_tiles);

// Once per device, before the first launch: raises the shared-memory limit of the mma kernels.
int prepare_kernels(int max_smem_per_block);

// cuBLASLt algorithms of one layer, looked up once per (dtype, M bucket) and kept: the heuristic is a host
// call of tens of microseconds. Fixed capacity, filled on first use under a lock; hits read without one.
struct GemmAlgoCache;
GemmAlgoCache* create_algo_cache();
void destroy_algo_cache(GemmAlgoCache* cache);

// y = x · Wᵀ + bias for M rows; x, y, workspace are device pointers; bf16 selects BF16 over F16.
// cublaslt: a cublasLtHandle_t (needed by Family::kDequantGemm only).
int launch_linear(const PackedView& w, const Plan& plan, const void* x, void* y, int64_t M, bool bf16,
                  void* workspace, size_t workspace_size, CUstream_st* stream, void* cublaslt,
                  GemmAlgoCache* algos);

// The pieces, launched by launch_linear (defined in linear_mma.cu and linear_simple.cu).
// x_stride: elements between rows of x; x_direct: x is the caller's (K % 8 == 0, 16-byte aligned, identity
// order: packed positions past K read as zero) rather than the gathered copy (x_stride = packed K).
int launch_mma(const PackedView& w, const Plan& plan, const void* x, int64_t x_stride, bool x_direct, void* y,
               int64_t M, bool bf16, float* partial, CUstream_st* stream);
int launch_reduce(const PackedView& w, const float* partial, int splits, void* y, int64_t M, bool bf16,
                  CUstream_st* stream);
int launch_simt(const PackedView& w, const void* x, void* y, int64_t M, bool bf16, CUstream_st* stream);
// x_vec: x rows may be read in 16-byte pieces (identity order, K % 8 == 0, 16-byte aligned); else
// element-wise through k_source.
int launch_gemv(const PackedView& w, const Plan& plan, const void* x, bool x_vec, void* y, int64_t M,
                bool bf16, float* partial, CUstream_st* stream);
int prepare_gemv_kernels(int max_smem_per_block);  // once per device, like prepare_kernels
// x_stride, x_direct: as launch_mma's (x 16-byte aligned).
int launch_wgmma(const PackedView& w, const Plan& plan, const void* x, int64_t x_stride, bool x_direct,
                 void* y, int64_t M, bool bf16, float* partial, CUstream_st* stream);
int prepare_wgmma_kernels(int max_smem_per_block);  // once per device, where wgmma_supported
int launch_gather(const PackedView& w, const void* x, void* xg, int64_t M, bool bf16, CUstream_st* stream);
int launch_dequant(const PackedView& w, int64_t n0, int64_t rows, void* wt, bool bf16, CUstream_st* stream);
int launch_bias_fill(const PackedView& w, void* y, int64_t M, bool bf16, CUstream_st* stream);

}  // namespace ark::cuda
