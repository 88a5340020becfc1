// Plans and launches one forward: the split-K shape of the tensor-core kernel, or the chunks of the
// dequantize + cuBLASLt path, or the SIMT kernel. Host code; no exceptions, no device allocation; the only
// lock is the cuBLASLt algorithm cache's, on the first call of an M bucket.
#include "kernels/cuda/launch.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <new>

namespace ark::cuda {
namespace {

constexpr size_t kAlign = 256;

size_t align_up(size_t v) {
  return (v + kAlign - 1) / kAlign * kAlign;
}
int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// The split-K planner's model of one mma launch, in nanoseconds (rough H100/H200 figures; only the ranking of
// split factors matters). A block streams its chunks through the ring at the slower of: its share of the SM's
// DRAM bandwidth, the ring's latency bound (kStages - 1 chunks per memory latency), and the tensor-core issue
// rate. Blocks beyond one wave run in further waves; each wave pays a fill latency; split-K adds a reduce
// launch and the fp32 partials' traffic.
constexpr double kBytesPerNsPerSm = 4.0e3 / 132;                             // ~4 TB/s over 132 SMs
constexpr double kLatencyNs = 2000, kFillNs = 1500, kReduceLaunchNs = 2000;  // loaded DRAM latency
constexpr double kMmaPerNsPerSm = 1.0;  // m16n8k16 mma.sync per ns per SM (~2 clocks each)

// 16-row blocks (decode) follow a model fitted to a split-K sweep on an H200 (ark_cuda_bench --sweep-splits,
// int4 g128, six shapes, M = 1 and 16): there a block's chunk takes about kDecodeChunkNs when it is alone on
// its SM and 1.45x that when two share it (the loop is bound by latency and issue, not by DRAM: two blocks
// together stream only 1.45x what one does), so the time is set by the busiest SM's blocks, not by the
// average. The busiest SM holds ceil(blocks / SMs) blocks, run blocks_per_sm at a time, each round paying a
// start-up (prologue, ring fill, epilogue: ~2 us measured per extra round). The fp32 partials are scattered
// 4-byte stores and a reduce pass: counted at half the copy bandwidth, which matched M = 16 (where 16 splits
// lost to 8 on 4096x4096 although they win at M = 1).
constexpr double kDecodeChunkNs = 1280, kDecodeShare = 0.45, kDecodeRoundNs = 2000;

double decode_cost_ns(const PackedView& w, int64_t M, int64_t blocks_per_sm, int sm_count, int64_t splits,
                      int64_t cps) {
  const int64_t blocks = ceil_div(w.n8_tiles, mma_block_tiles(1)) * ceil_div(M, 16) * splits;
  const int64_t busiest = ceil_div(blocks, sm_count);
  const double chunk_bytes =
      mma_block_tiles(1) * (kChunkK * w.bits / 8.0 * kTileRows + 4 * kTileRows * 6 / 4.0);
  auto chunk_ns = [&](int64_t resident) {  // one chunk of each of `resident` blocks sharing an SM
    return std::max(kDecodeChunkNs * (1 + kDecodeShare * static_cast<double>(resident - 1)),
                    static_cast<double>(resident) * chunk_bytes / kBytesPerNsPerSm);
  };
  const int64_t full = busiest / blocks_per_sm, rest = busiest % blocks_per_sm;
  double t = static_cast<double>(ceil_div(busiest, blocks_per_sm)) * kDecodeRoundNs +
             static_cast<double>(cps) *
                 (static_cast<double>(full) * chunk_ns(blocks_per_sm) + (rest > 0 ? chunk_ns(rest) : 0.0));
  if (splits > 1) t += kReduceLaunchNs + 2.0 * splits * M * w.n * 4 / (0.5 * kBytesPerNsPerSm * sm_count);
  return t;
}

double mma_cost_ns(const PackedView& w, int64_t M, int m_tiles, int64_t blocks_per_sm, int sm_count,
                   int64_t splits, int64_t cps) {
  if (m_tiles == 1) return decode_cost_ns(w, M, blocks_per_sm, sm_count, splits, cps);
  const int64_t n_blocks = ceil_div(w.n8_tiles, mma_block_tiles(m_tiles));
  const int64_t m_groups = ceil_div(M, 16 * m_tiles);
  const int64_t blocks = n_blocks * m_groups * splits;
  const int64_t cap = std::max<int64_t>(1, blocks_per_sm * sm_count);
  const int64_t waves = ceil_div(blocks, cap);
  const double resident = static_cast<double>(std::min(blocks, cap)) / sm_count;  // blocks per SM
  const double chunk_bytes =
      mma_block_tiles(m_tiles) * (kChunkK * w.bits / 8.0 * kTileRows + 4 * kTileRows * 6 / 4.0);
  const int used_mt = static_cast<int>(std::min<int64_t>(m_tiles, ceil_div(M, 16)));
  const double mmas = mma_block_tiles(m_tiles) * (kChunkK / 16) * used_mt;
  const double per_chunk =
      std::max({chunk_bytes * resident / kBytesPerNsPerSm, kLatencyNs / (mma_stages(m_tiles) - 1),
                mmas * resident / kMmaPerNsPerSm});
  double t = waves * (kFillNs + cps * per_chunk);
  if (splits > 1) t += kReduceLaunchNs + 2.0 * splits * M * w.n * 4 / (kBytesPerNsPerSm * sm_count);
  return t;
}

// The gemv planner's model (linear_gemv.cu), fitted to a sweep of every block shape and split factor on an
// H200 (ark_cuda_bench --sweep-gemv, int4 g128, six shapes, M = 1, 8, 16, 32, 2026-11-28 01:10 UTC;
// docs/CUDA.md, v7), among the split factors that sweep times (kGemvSplitCandidates). A warp takes about
// kGemvChunkNs per 128-k chunk of its 4 tiles when its block is alone on the SM and (1 + share) times that
// when two blocks share it: kGemvShare for the kernels that stage x for the whole split (M <= 8: two blocks
// streamed no more than one, and their x staging competes), kGemvRingShare for the 9..16-row x-ring kernel
// (latency-bound with 8 warps per SM: a second block adds ~1.6x the throughput, e.g. 8192x28672 M = 16 t8
// s2 55.9 us against s1 62.6, 28672x8192 s8 49.8 against s4 57.2); the 17..32-row kernels kGemvWideChunk
// times that (four mma per step, one block per SM), the 4 x 2 x-ring blocks kGemvRing2kChunk times (more ring
// bookkeeping per chunk: 440 against 397 instructions at M = 16); blocks beyond one wave run in further
// rounds, each paying a start-up (ring fill, x staged from L2 at kGemvStageBytesPerNs: the whole split, or
// with the x ring its first chunks); split-K adds the reduce kernel and the fp32 partials, or with the
// cluster reduction kGemvClusterNs (a first guess: it is off). With these it picks the fastest shape timed,
// or one within 0.2% of it, in 19 of the 20 (shape, M) cases of that sweep (4096x11008 M = 16: 2.3% off).
constexpr double kGemvLaunchNs = 1000, kGemvChunkNs = 800, kGemvShare = 1.2, kGemvRingShare = 0.6,
                 kGemvStageBytesPerNs = 8, kGemvRoundNs = 2000, kGemvReduceNs = 3000, kGemvClusterNs = 800,
                 kGemvWideChunk = 2.0, kGemvRing2kChunk = 1.3, kGemvIdleSmPenaltyM1 = 1.0;
// The two-block 17..32-row kernel (Plan::gemv_two_wide), not picked by default (kGemvAutoTwoWide): measured
// 1.2-1.35x slower than the one-block kernel at the same shape (H200, 01:10 UTC; 128 registers spill).
constexpr double kGemvTwoWideShare = 0.6;
// The split factors the planner weighs: those ark_cuda_bench --sweep-gemv times (each rounded, like a forced
// factor, to the factor that divides the chunks evenly), plus 64 for very long K.
constexpr int kGemvSplitCandidates[] = {1, 2, 3, 4, 6, 8, 12, 16, 32, 64};

double gemv_cost_ns(const PackedView& w, int64_t M, int block_tiles, int64_t per_sm, int sm_count,
                    int64_t splits, int64_t cps, bool cluster, bool two_wide) {
  const int64_t blocks = ceil_div(w.n8_tiles, static_cast<int64_t>(block_tiles) * kGemvWarpTiles) * splits;
  const int64_t rounds = ceil_div(blocks, per_sm * sm_count);
  const int64_t resident = std::min(per_sm, ceil_div(blocks, sm_count));  // blocks on the busiest SM
  const int64_t warps_k = kGemvWarps / block_tiles;
  const int64_t warp_chunks = ceil_div(cps, warps_k);
  const bool ring = gemv_x_ring(M, block_tiles);
  const double share = gemv_model_v6() ? 1.0  // the previous fit, for same-process comparisons
                       : two_wide      ? kGemvTwoWideShare
                       : ring          ? kGemvRingShare
                                       : kGemvShare;
  const double chunk_ns = kGemvChunkNs * (1 + share * static_cast<double>(resident - 1)) * w.bits / 4.0 *
                          (M > 16 ? kGemvWideChunk : 1.0) * (ring && warps_k > 1 ? kGemvRing2kChunk : 1.0);
  // x: staged for the whole split before the loop, or (the x ring) only the first kGemvXAhead iterations'.
  const int64_t staged = ring ? std::min<int64_t>(cps, kGemvXAhead * warps_k) : cps;  // (fill depth: ~2)
  const double stage_ns = static_cast<double>(M * staged * 256) / kGemvStageBytesPerNs;
  double t = kGemvLaunchNs + static_cast<double>(rounds) *
                                 (static_cast<double>(warp_chunks) * chunk_ns + stage_ns + kGemvRoundNs);
  // M = 1: a shape that leaves SMs idle loses to one that fills them at the same load on the busiest SM
  // (8192x28672: t4 s1, 224 blocks, 39.97 us against t8 s1, 112 blocks, 41.15 in one process; H200, 01:30
  // UTC), which the per-SM model above does not see. Not at M = 2..8, where the one-block shapes won.
  if (M == 1 && blocks < sm_count && !gemv_model_v6())
    t *= 1 + kGemvIdleSmPenaltyM1 * static_cast<double>(sm_count - blocks) / sm_count;
  if (splits > 1 && cluster)
    t += kGemvClusterNs;
  else if (splits > 1)
    t += kGemvReduceNs + 2.0 * splits * M * w.n * 4 / (0.5 * kBytesPerNsPerSm * sm_count);
  return t;
}

// A stream-K plan (gemv_sk_kernel) in the same terms: every block resident at once (G <= blocks per SM x
// SMs), the busiest block streams ceil(units / G) chunks split over its warps along K, in up to two pieces
// when a share is shorter than a range (more when longer), each piece paying a start-up (ring fill, x
// staging); a reduce launch and the pieces' partials when some range is split. First guesses of the split-K
// model's constants; kGemvSkPieceNs is the start-up of a piece after the first (no launch, L2-warm x).
constexpr double kGemvSkPieceNs = 1500;

double gemv_sk_cost_ns(const PackedView& w, int64_t M, int block_tiles, int64_t per_sm, int sm_count,
                       int64_t blocks) {
  const int64_t units = gemv_sk_units(w.n8_tiles, w.chunks, block_tiles);
  const int64_t share = ceil_div(units, blocks);
  const int64_t pieces = share >= w.chunks ? ceil_div(share, w.chunks) + 1 : (w.chunks % share ? 2 : 1);
  const int64_t warps_k = kGemvWarps / block_tiles;
  const int64_t warp_chunks = ceil_div(share, warps_k) + (warps_k > 1 ? pieces - 1 : 0);
  const int64_t resident = std::min(per_sm, ceil_div(blocks, sm_count));
  const bool ring = gemv_x_ring(M, block_tiles);
  const double share_f = ring ? kGemvRingShare : kGemvShare;
  const double chunk_ns = kGemvChunkNs * (1 + share_f * static_cast<double>(resident - 1)) * w.bits / 4.0 *
                          (M > 16 ? kGemvWideChunk : 1.0);
  const int64_t staged = ring ? std::min<int64_t>(share, kGemvXAhead * warps_k) * pieces : share;
  const double stage_ns = static_cast<double>(M * staged * 256) / kGemvStageBytesPerNs;
  double t = kGemvLaunchNs + kGemvRoundNs + static_cast<double>(pieces - 1) * kGemvSkPieceNs +
             static_cast<double>(warp_chunks) * chunk_ns + stage_ns;
  if (units % blocks != 0 || units / blocks % w.chunks != 0)  // some range is split: the reduce launch
    t += kGemvReduceNs + 2.0 * static_cast<double>(gemv_sk_partial_bytes(blocks, M, block_tiles)) /
                             (0.5 * kBytesPerNsPerSm * sm_count);
  return t;
}

std::atomic<bool> g_gemv_cluster_reduce{false};  // set_gemv_cluster_reduce: a benchmark/test override
std::atomic<bool> g_gemv_ring_4x2{false};        // set_gemv_ring_4x2: likewise
std::atomic<int> g_gemv_x_ahead{0};              // set_gemv_x_ahead: likewise (0: the planner's)
std::atomic<int> g_gemv_two_wide{0};             // set_gemv_two_wide: likewise (0: the planner's)
std::atomic<int> g_gemv_early_meta{0};           // set_gemv_early_meta: likewise (0: the planner's)
std::atomic<bool> g_gemv_model_v6{false};        // set_gemv_model_v6: likewise
std::atomic<int> g_gemv_stream_k{0};             // set_gemv_stream_k: likewise (0: the planner's)
std::atomic<int> g_gemv_sk_grid{0};              // set_gemv_sk_grid: likewise (0: the planner's)
std::atomic<int> g_gemv_pdl{0};                  // set_gemv_pdl: likewise (0: the planner's)
std::atomic<int> g_gemv_pdl_in{0};               // set_gemv_pdl_in: likewise (0: the planner's)
std::atomic<int> g_gemv_one_per_sm{0};           // set_gemv_one_per_sm: likewise (0: the planner's)
std::atomic<int> g_gemv_cluster_pairs{0};        // set_gemv_cluster_pairs: likewise (0: the planner's)

// The wgmma planner's model of one launch (rough H100 figures; only the ranking of split factors matters): a
// block's 128-k chunk takes the longer of its tensor-core time (2 warpgroups x 64 x rows x 128 MACs at ~1
// dense MAC per clock per 1/2048 of an SM at ~1.7 GHz, shared by the blocks resident on the SM) and its
// weight bytes at the SM's share of DRAM bandwidth; blocks beyond one wave run in further waves, each paying
// a ring fill; split-K adds the reduce launch and the partials' traffic.
constexpr double kWgmmaMacsPerNsPerSm = 2048 * 1.7, kWgmmaFillNs = 2000;

double wgmma_cost_ns(const PackedView& w, int64_t M, int rows, int64_t per_sm, int sm_count, int64_t splits,
                     int64_t cps, int tiles = kWgmmaBlockTiles) {
  const int64_t blocks = ceil_div(M, rows) * ceil_div(w.n8_tiles, tiles) * splits;
  const int64_t slots = std::max<int64_t>(1, per_sm * sm_count);
  const int64_t waves = ceil_div(blocks, slots);
  // Blocks on the busiest SM: a block alone on its SM still takes a whole chunk time (idle SMs do not help).
  const double resident = static_cast<double>(ceil_div(std::min(blocks, slots), sm_count));
  const double macs = tiles * kTileRows * rows * static_cast<double>(kChunkK);
  const double bytes = tiles * (kChunkK * w.bits / 8.0 * kTileRows + 4 * kTileRows * 6 / 4.0);
  const double per_chunk =
      std::max(macs * resident / kWgmmaMacsPerNsPerSm, bytes * resident / kBytesPerNsPerSm);
  double t = waves * (kWgmmaFillNs + cps * per_chunk);
  if (splits > 1) t += kReduceLaunchNs + 2.0 * splits * M * w.n * 4 / (kBytesPerNsPerSm * sm_count);
  return t;
}

}  // namespace

Family auto_family(const PackedView& w, int64_t M, int64_t large_m_threshold) {
  if (M >= large_m_threshold) return Family::kDequantGemm;
  return gemv_preferred(w, M) ? Family::kGemv : Family::kMma;
}

Family auto_family(const PackedView& w, int64_t M, int64_t large_m_threshold, const DeviceInfo& dev) {
  if (wgmma_preferred(w, M, dev)) return Family::kWgmma;
  return auto_family(w, M, large_m_threshold);
}

namespace {
std::atomic<int> g_wgmma_variant{0};          // WgmmaVariant; a benchmark/test override, read at plan time
std::atomic<int> g_wgmma_schedule{0};         // WgmmaSchedule; likewise
std::atomic<int> g_wgmma_schedule_blocks{0};  // its block count (0: the SM count); likewise
std::atomic<int> g_wgmma_scale_after{0};      // set_wgmma_scale_after's mode; likewise
}  // namespace

void set_wgmma_scale_after(int mode) {
  g_wgmma_scale_after.store(mode, std::memory_order_relaxed);
}
int wgmma_scale_after_mode() {
  return g_wgmma_scale_after.load(std::memory_order_relaxed);
}

void set_wgmma_schedule(WgmmaSchedule s, int blocks) {
  g_wgmma_schedule.store(static_cast<int>(s), std::memory_order_relaxed);
  g_wgmma_schedule_blocks.store(blocks > 0 ? blocks : 0, std::memory_order_relaxed);
}
WgmmaSchedule wgmma_schedule() {
  return static_cast<WgmmaSchedule>(g_wgmma_schedule.load(std::memory_order_relaxed));
}
int wgmma_schedule_blocks() {
  return g_wgmma_schedule_blocks.load(std::memory_order_relaxed);
}

WgmmaSchedule wgmma_auto_schedule(const PackedView& w, int64_t M, int rows, int sm_count, int splits,
                                  int tiles) {
  const int64_t blocks = ceil_div(M, rows) *
                         ceil_div(w.n8_tiles, tiles > 0 ? tiles : wgmma_wide_tiles(rows)) *
                         std::max(splits, 1);
  const int64_t slots = ceil_div(blocks, std::max(sm_count, 1)) * std::max(sm_count, 1);
  return static_cast<double>(blocks) < kWgmmaSkMaxFill * static_cast<double>(slots) ? WgmmaSchedule::kStreamK
                                                                                    : WgmmaSchedule::kSplitK;
}

WgmmaStreamK wgmma_stream_k(const PackedView& w, int64_t M, int rows, int blocks, bool two_waves,
                            int block_tiles) {
  WgmmaStreamK s;
  s.m_tiles = static_cast<int>(ceil_div(M, rows));
  s.chunks = static_cast<int>(std::max<int64_t>(w.chunks, 1));
  const int64_t tiles =
      s.m_tiles * ceil_div(w.n8_tiles, block_tiles > 0 ? block_tiles : wgmma_wide_tiles(rows));
  blocks = std::max(blocks, 1);
  if (tiles <= blocks) {  // less than one wave: every tile shared out, no block without a chunk
    s.blocks = static_cast<int>(std::min<int64_t>(blocks, tiles * s.chunks));
    s.sk_tiles = static_cast<int>(tiles);
    return s;
  }
  s.blocks = blocks;
  s.dp_waves = static_cast<int>(tiles / blocks);
  s.sk_tiles = static_cast<int>(tiles % blocks);
  if (two_waves && s.sk_tiles > 0) --s.dp_waves, s.sk_tiles += blocks;
  if (static_cast<int64_t>(s.sk_tiles) * s.chunks * (s.blocks + 1) >= kWgmmaSkMaxProduct)
    return WgmmaStreamK{};
  return s;
}

void set_wgmma_variant(WgmmaVariant v) {
  g_wgmma_variant.store(static_cast<int>(v), std::memory_order_relaxed);
}
WgmmaVariant wgmma_variant() {
  return static_cast<WgmmaVariant>(g_wgmma_variant.load(std::memory_order_relaxed));
}

WgmmaVariant wgmma_auto_variant(const PackedView& w, int64_t M, int sm_count) {
  if (M >= kWgmmaTallMinM) {
    const int64_t ws_tiles = ceil_div(M, 128) * ceil_div(w.n8_tiles, kWgmmaBlockTiles);
    const bool ws = M > 256 && M <= kWgmmaWsMaxM && w.k <= kWgmmaWsMaxK &&
                    ws_tiles <= kWgmmaWsMaxWaves * static_cast<int64_t>(std::max(sm_count, 1));
    return ws ? WgmmaVariant::kWarpSpecialized : WgmmaVariant::kTall;
  }
  if (M <= 64 && w.chunk_one_group) return WgmmaVariant::kWarpSpecialized;  // it scales after its wgmmas
  const int64_t tile_chunks = w.n8_tiles * w.chunks;
  if (tile_chunks >= kWgmmaWideMinTileChunks) return WgmmaVariant::kWide;
  const bool wide = M <= 64 ? w.n > kWgmmaWideMinN : tile_chunks >= kWgmmaWideMidTileChunks;
  return wide ? WgmmaVariant::kWide : WgmmaVariant::kWarpSpecialized;
}

bool wgmma_preferred(const PackedView& w, int64_t M, const DeviceInfo& dev) {
  return dev.wgmma && w.bits == 4 && M >= (w.chunk_one_group ? kWgmmaScaledMinM : kWgmmaAutoMinM) &&
         M <= kWgmmaAutoMaxM;
}

void set_gemv_cluster_reduce(bool allowed) {
  g_gemv_cluster_reduce.store(allowed, std::memory_order_relaxed);
}
bool gemv_cluster_reduce() {
  return g_gemv_cluster_reduce.load(std::memory_order_relaxed);
}
void set_gemv_ring_4x2(bool allowed) {
  g_gemv_ring_4x2.store(allowed, std::memory_order_relaxed);
}
bool gemv_ring_4x2() {
  return g_gemv_ring_4x2.load(std::memory_order_relaxed);
}
void set_gemv_x_ahead(int a) {
  g_gemv_x_ahead.store(a, std::memory_order_relaxed);
}
int gemv_x_ahead_override() {
  return g_gemv_x_ahead.load(std::memory_order_relaxed);
}
void set_gemv_two_wide(int mode) {
  g_gemv_two_wide.store(mode, std::memory_order_relaxed);
}
int gemv_two_wide_mode() {
  return g_gemv_two_wide.load(std::memory_order_relaxed);
}
void set_gemv_model_v6(bool on) {
  g_gemv_model_v6.store(on, std::memory_order_relaxed);
}
bool gemv_model_v6() {
  return g_gemv_model_v6.load(std::memory_order_relaxed);
}
void set_gemv_stream_k(int mode) {
  g_gemv_stream_k.store(mode, std::memory_order_relaxed);
}
int gemv_stream_k_mode() {
  return g_gemv_stream_k.load(std::memory_order_relaxed);
}
void set_gemv_cluster_pairs(int mode) {
  g_gemv_cluster_pairs.store(mode, std::memory_order_relaxed);
}
int gemv_cluster_pairs_mode() {
  return g_gemv_cluster_pairs.load(std::memory_order_relaxed);
}
void set_gemv_one_per_sm(int mode) {
  g_gemv_one_per_sm.store(mode, std::memory_order_relaxed);
}
int gemv_one_per_sm_mode() {
  return g_gemv_one_per_sm.load(std::memory_order_relaxed);
}
void set_gemv_pdl(int mode) {
  g_gemv_pdl.store(mode, std::memory_order_relaxed);
}
int gemv_pdl_mode() {
  return g_gemv_pdl.load(std::memory_order_relaxed);
}
void set_gemv_pdl_in(int mode) {
  g_gemv_pdl_in.store(mode, std::memory_order_relaxed);
}
int gemv_pdl_in_mode() {
  return g_gemv_pdl_in.load(std::memory_order_relaxed);
}
void set_gemv_sk_grid(int blocks) {
  g_gemv_sk_grid.store(blocks, std::memory_order_relaxed);
}
int gemv_sk_grid() {
  return g_gemv_sk_grid.load(std::memory_order_relaxed);
}
void set_gemv_early_meta(int mode) {
  g_gemv_early_meta.store(mode, std::memory_order_relaxed);
}
int gemv_early_meta_mode() {
  return g_gemv_early_meta.load(std::memory_order_relaxed);
}

bool gemv_preferred(const PackedView& w, int64_t M) {
  return M <= kGemvAutoMaxM && w.bits == 4 && w.groups <= w.chunks &&
         w.n8_tiles * w.chunks >= kGemvAutoMinTileChunks;
}

const char* status_message(int status) {
  switch (status) {
    case kOk:
      return "ok";
    case kBadArgument:
      return "bad argument";
    case kWorkspaceTooSmall:
      return "workspace too small";
    case kLaunchFailed:
      return "kernel launch failed";
    case kCublasFailed:
      return "cuBLASLt failed";
    case kTensorMapFailed:
      return "the driver could not describe x for TMA (cuTensorMapEncodeTiled; needs a CUDA 12 driver)";
    default:
      return "unknown status";
  }
}

Plan make_plan(const PackedView& w, int64_t M, Family family, const DeviceInfo& dev, int forced_splits,
               int forced_block_tiles) {
  Plan p;
  p.family = family;
  const int64_t kpn = w.k_packed();
  // x must be gathered into packed-K order when the order is not the identity, or (mma) when rows of x cannot
  // be copied in 16-byte pieces.
  if (family == Family::kGemv && M > kGemvMaxRows) family = Family::kMma;  // 4 row groups of 8 at most
  if (family == Family::kWgmma && !dev.wgmma) family = Family::kMma;       // not sm_90a: the mma.sync kernel
  p.family = family;
  // gemv stages x itself, through k_source and at any alignment: it never gathers.
  p.gather = family != Family::kGemv &&
             (w.k_source != nullptr ||
              (family == Family::kMma || family == Family::kWgmma ? w.k % 8 != 0 : kpn != w.k));
  const size_t gather_bytes = p.gather ? align_up(static_cast<size_t>(M * kpn * 2)) : 0;
  if (family == Family::kMma) {
    p.m_tiles = M <= 16 ? 1 : M <= 32 ? 2 : 4;
    const size_t stage = mma_stage_bytes(w.bits, p.m_tiles);
    const int max_blocks = mma_max_blocks_per_sm(p.m_tiles);  // linear_mma.cu's launch bounds
    double best = 0;
    const int64_t forced_cps =
        forced_splits > 0 ? ceil_div(w.chunks, std::min<int64_t>(forced_splits, w.chunks)) : 0;
    for (int pass = forced_cps > 0 ? 0 : 1; pass < 2 && best == 0; ++pass)  // forced first, else the model
      for (int64_t s = 1; s <= std::min<int64_t>(w.chunks, pass == 0 ? w.chunks : 64); ++s) {
        const int64_t cps = ceil_div(w.chunks, s);
        if (ceil_div(w.chunks, cps) != s) continue;  // the same split as a smaller s
        if (pass == 0 && cps != forced_cps) continue;
        const size_t smem = mma_stages(p.m_tiles) * stage + static_cast<size_t>(cps) * 16;
        if (dev.smem_per_block > 0 && smem > static_cast<size_t>(dev.smem_per_block)) continue;
        const int64_t fit =
            dev.smem_per_sm > 0 ? dev.smem_per_sm / static_cast<int64_t>(smem + 1024) : max_blocks;
        const int64_t per_sm = std::clamp<int64_t>(fit, 1, max_blocks);
        const double t = mma_cost_ns(w, M, p.m_tiles, per_sm, std::max(dev.sm_count, 1), s, cps);
        if (best == 0 || t < best) {
          best = t;
          p.splits = static_cast<int>(s);
          p.chunks_per_split = static_cast<int>(cps);
          p.smem_bytes = smem;
        }
      }
    if (best == 0) {  // a K too long for any split <= 64 in shared memory: more splits, small chunks each
      p.chunks_per_split = 16;
      p.splits = static_cast<int>(ceil_div(w.chunks, 16));
      p.smem_bytes = mma_stages(p.m_tiles) * stage + 16 * 16;
    }
    p.partial_bytes = p.splits > 1 ? align_up(static_cast<size_t>(p.splits * M * w.n) * sizeof(float)) : 0;
    p.workspace_bytes = p.partial_bytes + gather_bytes;
  } else if (family == Family::kGemv) {
    const bool clusters = dev.wgmma && gemv_cluster_reduce();  // sm_90: split-K inside one launch
    const bool ring_4x2 = gemv_ring_4x2();
    const int two_wide_mode = gemv_two_wide_mode();
    double best = 0;
    const int64_t forced_cps =
        forced_splits > 0 ? ceil_div(w.chunks, std::min<int64_t>(forced_splits, w.chunks)) : 0;
    // One block shape, split factor and (17..32 rows, 8 x 1 ring) kernel of one or two blocks per SM: its
    // shared memory must fit; the model's time decides.
    auto consider_one = [&](int bt, int64_t s, int64_t cps, bool two_wide) {
      const size_t smem = gemv_smem_bytes(M, cps, w.bits, bt, two_wide);
      if (dev.smem_per_block > 0 && smem > static_cast<size_t>(dev.smem_per_block)) return;
      const int64_t max_per_sm = gemv_max_blocks_per_sm(M, two_wide);
      const int64_t fit =
          dev.smem_per_sm > 0 ? dev.smem_per_sm / static_cast<int64_t>(smem + 1024) : max_per_sm;
      const int64_t per_sm = std::clamp<int64_t>(fit, 1, max_per_sm);
      const bool cluster = clusters && s > 1 && s <= kGemvMaxClusterSplits;
      const double t = gemv_cost_ns(w, M, bt, per_sm, std::max(dev.sm_count, 1), s, cps, cluster, two_wide);
      if (best == 0 || t < best) {
        best = t;
        p.block_tiles = bt;
        p.splits = static_cast<int>(s);
        p.chunks_per_split = static_cast<int>(cps);
        p.smem_bytes = smem;
        p.gemv_cluster = cluster;
        p.gemv_two_wide = two_wide;
      }
    };
    auto consider = [&](int bt, int64_t s, int64_t cps) {
      const bool fits = gemv_two_wide_fits(M, bt);
      if (!fits || two_wide_mode <= 0) consider_one(bt, s, cps, false);
      if (fits && (two_wide_mode > 0 || (two_wide_mode == 0 && kGemvAutoTwoWide)))
        consider_one(bt, s, cps, true);
    };
    for (int pass = forced_cps > 0 || forced_block_tiles > 0 ? 0 : 1; pass < 2 && best == 0; ++pass)
      for (int bt : {1, 2, 4, 8}) {
        if (pass == 0 && forced_block_tiles > 0 && bt != forced_block_tiles) continue;
        if (pass == 1 && !ring_4x2 && bt == kGemvWarps / 2 && gemv_x_ring(M, bt)) continue;
        if (pass == 0) {  // forced: every factor (or the forced one), each split counted once
          for (int64_t s = 1; s <= w.chunks; ++s) {
            const int64_t cps = ceil_div(w.chunks, s);
            if (ceil_div(w.chunks, cps) != s) continue;  // the same split as a smaller s
            if (forced_cps > 0 && cps != forced_cps) continue;
            consider(bt, s, cps);
          }
          continue;
        }
        // The model: the candidates, each rounded like a forced factor (to the one that divides the chunks
        // evenly), so it picks among the shapes the sweep times.
        int64_t last_cps = 0;
        for (int c : kGemvSplitCandidates) {
          const int64_t cps = ceil_div(w.chunks, std::min<int64_t>(c, w.chunks));
          if (cps == last_cps) continue;  // the same split as a smaller candidate
          last_cps = cps;
          consider(bt, ceil_div(w.chunks, cps), cps);
        }
      }
    if (best == 0) {  // a K too long for 64 splits in shared memory: more splits of a few chunks each
      p.block_tiles = 1;
      p.chunks_per_split = 8;
      p.splits = static_cast<int>(ceil_div(w.chunks, 8));
      p.smem_bytes = gemv_smem_bytes(M, 8, w.bits, 1);
      p.gemv_cluster = false;
      p.gemv_two_wide = false;
    }
    // The stream-K schedule: weighed against the split-K choice above (kGemvAutoStreamK), or forced
    // (set_gemv_stream_k(1): the best stream-K plan wherever one applies, the block shape forced with it when
    // it is); never for a forced split factor, the cluster reduction or the two-block kernel. G: what
    // set_gemv_sk_grid asks, else one or two blocks per SM as the model prefers; at most one block per unit.
    const int sk_mode = gemv_stream_k_mode();
    if (sk_mode > 0 || (sk_mode == 0 && kGemvAutoStreamK)) {
      double sk_best = 0;
      Plan sk = p;
      for (int bt : {1, 2, 4, 8}) {
        if (forced_block_tiles > 0 && bt != forced_block_tiles) continue;
        if (forced_cps > 0 || p.gemv_cluster || p.gemv_two_wide) break;
        if (bt == kGemvWarps / 2 && gemv_x_ring(M, bt)) continue;  // the 4 x 2 ring: no stream-K instance
        const int64_t units = gemv_sk_units(w.n8_tiles, w.chunks, bt);
        const int64_t max_per_sm = gemv_max_blocks_per_sm(M);
        for (int64_t per = 1; per <= max_per_sm; ++per) {
          const int64_t want = gemv_sk_grid() > 0 ? gemv_sk_grid() : per * std::max(dev.sm_count, 1);
          const int64_t blocks = std::min(want, units);
          const int64_t cps = std::min<int64_t>(w.chunks, ceil_div(units, blocks));
          const size_t smem = gemv_smem_bytes(M, cps, w.bits, bt);
          if (dev.smem_per_block > 0 && smem > static_cast<size_t>(dev.smem_per_block)) continue;
          const int64_t fit =
              dev.smem_per_sm > 0 ? dev.smem_per_sm / static_cast<int64_t>(smem + 1024) : max_per_sm;
          const int64_t per_sm = std::clamp<int64_t>(fit, 1, max_per_sm);
          if (gemv_sk_grid() <= 0 && per > per_sm) continue;  // two blocks do not fit one SM
          const double t = gemv_sk_cost_ns(w, M, bt, per_sm, std::max(dev.sm_count, 1), blocks);
          if (sk_best == 0 || t < sk_best) {
            sk_best = t;
            sk.block_tiles = bt;
            sk.gemv_sk_blocks = static_cast<int>(blocks);
            sk.chunks_per_split = static_cast<int>(cps);
            sk.smem_bytes = smem;
          }
          if (gemv_sk_grid() > 0) break;
        }
      }
      if (sk_best > 0 && (sk_mode > 0 || sk_best < best)) {
        p = sk;
        p.gemv_stream_k = true;
        p.splits = 1;
      }
    }
    // Two splits: summed by a cluster of the two blocks (sm_90) instead of partials and a reduce launch.
    const int pairs = gemv_cluster_pairs_mode();
    if (dev.wgmma && p.splits == 2 && !p.gemv_stream_k && !p.gemv_cluster &&
        (pairs > 0 || (pairs == 0 && kGemvAutoClusterPairs)))
      p.gemv_cluster = true;
    // The 8 x 1 x ring's lookahead: at most its slots - 1 (each fill waits for the slot's previous chunk to
    // be released by every warp; launch_gemv checks the range).
    const int x_slots = p.gemv_two_wide ? kGemvTwoWideXStages : kGemvXStages;
    const int ahead = gemv_x_ahead_override() > 0 ? gemv_x_ahead_override() : kGemvAutoXAhead;
    p.gemv_x_ahead = std::clamp(ahead, 1, x_slots - 1);
    // One block per SM: a grid of at most one block per SM whose blocks could share one (two fit) gets half
    // an SM's shared memory, so none shares.
    const int one = gemv_one_per_sm_mode();
    const int64_t grid_blocks =
        p.gemv_stream_k ? p.gemv_sk_blocks
                        : ceil_div(w.n8_tiles, int64_t{p.block_tiles} * kGemvWarpTiles) * p.splits;
    if ((one > 0 || (one == 0 && kGemvAutoOnePerSm)) && dev.smem_per_sm > 0 && dev.sm_count > 0 &&
        grid_blocks <= dev.sm_count && gemv_max_blocks_per_sm(M, p.gemv_two_wide) > 1 &&
        2 * (p.smem_bytes + 1024) <= static_cast<size_t>(dev.smem_per_sm) &&
        static_cast<size_t>(dev.smem_per_sm / 2) <= static_cast<size_t>(dev.smem_per_block)) {
      p.smem_bytes = static_cast<size_t>(dev.smem_per_sm / 2);
      p.gemv_one_per_sm = true;
    }
    const int pdl = gemv_pdl_mode();
    p.gemv_pdl = dev.wgmma && (pdl > 0 || (pdl == 0 && kGemvAutoPdl));
    const int pdl_in = gemv_pdl_in_mode();
    p.gemv_pdl_in = dev.wgmma && (pdl_in > 0 || (pdl_in == 0 && kGemvAutoPdlIn));
    const int early = gemv_early_meta_mode();
    p.gemv_early_meta = early > 0 || (early == 0 && kGemvAutoEarlyMeta);
    p.partial_bytes = p.gemv_stream_k ? align_up(gemv_sk_partial_bytes(p.gemv_sk_blocks, M, p.block_tiles))
                      : p.splits > 1 && !p.gemv_cluster
                          ? align_up(static_cast<size_t>(p.splits * M * w.n) * sizeof(float))
                          : 0;
    p.workspace_bytes = p.partial_bytes;
  } else if (family == Family::kWgmma) {
    // The kernel: kAuto's by layer size and M (wgmma_auto_variant), or the one set_wgmma_variant forces; a
    // warp-specialized ring that does not fit the device's shared memory falls back to the all-threads
    // kernel. Rows of x per block: 64 up to M = 64 (the warp-specialized kernel: 32 up to 32), else 128 (the
    // tall form: 256). Split-K where the weight ranges alone leave SMs idle (e.g. 28672x8192: 64 ranges of
    // 128 rows for 132 SMs).
    const WgmmaVariant forced = wgmma_variant();
    const WgmmaVariant v = forced == WgmmaVariant::kAuto ? wgmma_auto_variant(w, M, dev.sm_count) : forced;
    p.wgmma_rows = M <= 64 ? 64 : M <= 128 || v != WgmmaVariant::kTall ? 128 : 256;
    auto fits = [&](size_t bytes) {
      return dev.smem_per_block <= 0 || bytes <= static_cast<size_t>(dev.smem_per_block);
    };
    p.wgmma_wide =
        (v == WgmmaVariant::kWide || v == WgmmaVariant::kWidePingPong || v == WgmmaVariant::kTall) &&
        fits(wgmma_wide_smem_bytes(w.bits, p.wgmma_rows));
    if (!p.wgmma_wide && p.wgmma_rows > 128) p.wgmma_rows = 128;  // the other kernels stop at 128 rows
    p.wgmma_pingpong = p.wgmma_wide && v == WgmmaVariant::kWidePingPong;
    p.wgmma_ws = v == WgmmaVariant::kWarpSpecialized && fits(wgmma_ws_smem_bytes(w.bits, p.wgmma_rows));
    if (p.wgmma_ws && M <= 32) p.wgmma_rows = 32;  // its m64n32 form: half the x tile of 64 rows
    const int scale_after = wgmma_scale_after_mode();
    p.wgmma_scale_after = p.wgmma_ws && p.wgmma_rows <= 64 && w.chunk_one_group &&
                          (scale_after > 0 || (scale_after == 0 && kWgmmaAutoScaleAfter));
    const int tiles = p.wgmma_wide ? wgmma_wide_tiles(p.wgmma_rows) : kWgmmaBlockTiles;
    const int64_t per_sm = wgmma_max_blocks_per_sm(p.wgmma_rows);
    const int64_t forced_cps =
        forced_splits > 0 ? ceil_div(w.chunks, std::min<int64_t>(forced_splits, w.chunks)) : 0;
    double best = 0;
    for (int64_t s = 1; s <= std::min<int64_t>(w.chunks, 16); ++s) {
      const int64_t cps = ceil_div(w.chunks, s);
      if (ceil_div(w.chunks, cps) != s) continue;  // the same split as a smaller s
      if (forced_cps > 0 && cps != forced_cps) continue;
      const double t = wgmma_cost_ns(w, M, p.wgmma_rows, per_sm, std::max(dev.sm_count, 1), s, cps, tiles);
      if (best == 0 || t < best) {
        best = t;
        p.splits = static_cast<int>(s);
        p.chunks_per_split = static_cast<int>(cps);
      }
    }
    if (best == 0) {  // a forced factor above 16: take it as asked
      p.chunks_per_split = static_cast<int>(forced_cps);
      p.splits = static_cast<int>(ceil_div(w.chunks, forced_cps));
    }
    // Stream-K (the free-running wide kernel or the warp-specialized one, no forced split factor): the
    // schedule set_wgmma_schedule forces, or kAuto's (the warp-specialized kernel where it scales after);
    // the pieces' slots instead of split-K planes in the workspace.
    const bool sk_ok = (p.wgmma_wide && !p.wgmma_pingpong) || p.wgmma_ws;
    if (sk_ok && forced_cps == 0) {
      const WgmmaSchedule forced_sched = wgmma_schedule();
      const bool auto_sk = p.wgmma_wide || p.wgmma_scale_after;
      const WgmmaSchedule sched =
          forced_sched != WgmmaSchedule::kAuto ? forced_sched
          : auto_sk ? wgmma_auto_schedule(w, M, p.wgmma_rows, std::max(dev.sm_count, 1), p.splits, tiles)
                    : WgmmaSchedule::kSplitK;
      if (sched == WgmmaSchedule::kStreamK || sched == WgmmaSchedule::kStreamK2) {
        const int blocks = wgmma_schedule_blocks() > 0 ? wgmma_schedule_blocks() : std::max(dev.sm_count, 1);
        p.wgmma_sk = wgmma_stream_k(w, M, p.wgmma_rows, blocks, sched == WgmmaSchedule::kStreamK2, tiles);
        if (p.wgmma_sk.blocks > 0) {  // else a layer too large for its 32-bit iteration count: split-K
          p.splits = 1;
          p.chunks_per_split = static_cast<int>(w.chunks);
        }
      }
    }
    p.smem_bytes = p.wgmma_wide ? wgmma_wide_smem_bytes(w.bits, p.wgmma_rows)
                   : p.wgmma_ws ? wgmma_ws_smem_bytes(w.bits, p.wgmma_rows)
                                : wgmma_smem_bytes(w.bits, p.wgmma_rows);
    p.partial_bytes = p.splits > 1 ? align_up(static_cast<size_t>(p.splits * M * w.n) * sizeof(float)) : 0;
    if (p.wgmma_sk.blocks > 0 && p.wgmma_sk.sk_tiles > 0)
      p.partial_bytes = align_up(2 * static_cast<size_t>(p.wgmma_sk.blocks) *
                                 wgmma_sk_slot_floats(p.wgmma_rows, tiles) * sizeof(float));
    p.workspace_bytes = p.partial_bytes + gather_bytes;
  } else if (family == Family::kDequantGemm) {
    const int64_t rows = static_cast<int64_t>(kDequantChunkBytes) / (2 * kpn) / 128 * 128;
    p.rows_per_chunk = std::min(std::max<int64_t>(rows, 128), w.n8_tiles * kTileRows);
    p.workspace_bytes =
        gather_bytes + align_up(static_cast<size_t>(p.rows_per_chunk * kpn * 2)) + kCublasWorkspaceBytes;
  }
  return p;
}

struct GemmAlgoCache {
  struct Entry {
    std::atomic<int64_t> key{-1};
    cublasLtMatmulAlgo_t algo{};
  };
  std::mutex mu;  // taken only on a miss (the first call of a bucket)
  Entry entries[48];
};

GemmAlgoCache* create_algo_cache() {
  return new (std::nothrow) GemmAlgoCache();
}
void destroy_algo_cache(GemmAlgoCache* cache) {
  delete cache;
}

namespace {

// The descriptors of y[M][rows] (leading dimension ldy) = x[M][kp] · wt[rows][kp]ᵀ + beta · y in cuBLASLt's
// column-major terms (C = wtᵀᵀ·xᵀ: the weight operand transposed). Initialised in place on the caller's
// stack: no allocation per call.
struct GemmDescs {
  cublasLtMatmulDescOpaque_t desc;
  cublasLtMatrixLayoutOpaque_t la, lb, lc;
  bool init(bool bf16, int64_t rows, int64_t M, int64_t kpn, int64_t ldy) {
    const cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const cublasOperation_t trans = CUBLAS_OP_T, no = CUBLAS_OP_N;
    return cublasLtMatmulDescInit(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
           cublasLtMatmulDescSetAttribute(&desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)) ==
               CUBLAS_STATUS_SUCCESS &&
           cublasLtMatmulDescSetAttribute(&desc, CUBLASLT_MATMUL_DESC_TRANSB, &no, sizeof(no)) ==
               CUBLAS_STATUS_SUCCESS &&
           cublasLtMatrixLayoutInit(&la, t, kpn, rows, kpn) == CUBLAS_STATUS_SUCCESS &&
           cublasLtMatrixLayoutInit(&lb, t, kpn, M, kpn) == CUBLAS_STATUS_SUCCESS &&
           cublasLtMatrixLayoutInit(&lc, t, rows, M, ldy) == CUBLAS_STATUS_SUCCESS;
  }
};

bool heuristic(cublasLtHandle_t h, GemmDescs& d, size_t ws_bytes, cublasLtMatmulAlgo_t* algo) {
  cublasLtMatmulPreferenceOpaque_t pref;
  if (cublasLtMatmulPreferenceInit(&pref) != CUBLAS_STATUS_SUCCESS) return false;
  cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                       sizeof(ws_bytes));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (cublasLtMatmulAlgoGetHeuristic(h, &d.desc, &d.la, &d.lb, &d.lc, &d.lc, &pref, 1, &result, &found) !=
          CUBLAS_STATUS_SUCCESS ||
      found == 0)
    return false;
  *algo = result.algo;
  return true;
}

// The algorithm for (dtype, M bucket, full or last chunk): looked up for the bucket's largest M (a power of
// two), so its workspace need covers every M of the bucket; kept in the layer's cache.
bool cached_algo(cublasLtHandle_t h, GemmAlgoCache* cache, bool bf16, bool last, int64_t rows, int64_t M,
                 int64_t kpn, int64_t ldy, size_t ws_bytes, cublasLtMatmulAlgo_t* algo) {
  int log2m = 0;
  while ((int64_t{1} << log2m) < M) ++log2m;
  const int64_t key = (static_cast<int64_t>(log2m) << 2) | (bf16 ? 1 : 0) | (last ? 2 : 0);
  if (cache)
    for (auto& e : cache->entries)
      if (e.key.load(std::memory_order_acquire) == key) {
        *algo = e.algo;
        return true;
      }
  GemmDescs d;
  if (!d.init(bf16, rows, int64_t{1} << log2m, kpn, ldy) || !heuristic(h, d, ws_bytes, algo)) return false;
  if (cache) {
    std::lock_guard<std::mutex> lock(cache->mu);
    for (auto& e : cache->entries) {
      const int64_t k = e.key.load(std::memory_order_relaxed);
      if (k == key) return true;  // another thread got there first
      if (k == -1) {
        e.algo = *algo;
        e.key.store(key, std::memory_order_release);
        return true;
      }
    }
  }
  return true;  // cache full: use it uncached
}

int cublas_chunk(cublasLtHandle_t h, GemmAlgoCache* cache, bool bf16, bool last, const void* wt,
                 const void* x, void* y, int64_t rows, int64_t M, int64_t kpn, int64_t ldy, float beta,
                 void* ws, size_t ws_bytes, cudaStream_t stream) {
  GemmDescs d;
  if (!d.init(bf16, rows, M, kpn, ldy)) return kCublasFailed;
  const float alpha = 1.0f;
  cublasLtMatmulAlgo_t algo;
  if (cached_algo(h, cache, bf16, last, rows, M, kpn, ldy, ws_bytes, &algo) &&
      cublasLtMatmul(h, &d.desc, &alpha, wt, &d.la, x, &d.lb, &beta, y, &d.lc, y, &d.lc, &algo, ws, ws_bytes,
                     stream) == CUBLAS_STATUS_SUCCESS)
    return kOk;
  // The bucket's algorithm does not take this exact M: ask for this M alone.
  if (!heuristic(h, d, ws_bytes, &algo)) return kCublasFailed;
  return cublasLtMatmul(h, &d.desc, &alpha, wt, &d.la, x, &d.lb, &beta, y, &d.lc, y, &d.lc, &algo, ws,
                        ws_bytes, stream) == CUBLAS_STATUS_SUCCESS
             ? kOk
             : kCublasFailed;
}

}  // namespace

int launch_linear(const PackedView& w, const Plan& plan, const void* x, void* y, int64_t M, bool bf16,
                  void* workspace, size_t workspace_size, CUstream_st* stream, void* cublaslt,
                  GemmAlgoCache* algos) {
  if (M <= 0) return M == 0 ? kOk : kBadArgument;
  if (!x || !y || !w.codes) return kBadArgument;
  if (plan.workspace_bytes > 0 && (!workspace || workspace_size < plan.workspace_bytes))
    return kWorkspaceTooSmall;
  auto* base = static_cast<unsigned char*>(workspace);
  const int64_t kpn = w.k_packed();
  switch (plan.family) {
    case Family::kSimt:
      return launch_simt(w, x, y, M, bf16, stream);
    case Family::kGemv: {
      float* partial = reinterpret_cast<float*>(base);
      const bool x_vec = !w.k_source && w.k % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
      int s = launch_gemv(w, plan, x, x_vec, y, M, bf16, partial, stream);
      if (s == kOk && plan.splits > 1 && !plan.gemv_cluster && !plan.gemv_pdl)  // (gemv_pdl: launch_gemv's)
        s = launch_reduce(w, partial, plan.splits, y, M, bf16, stream);
      return s;
    }
    case Family::kMma:
    case Family::kWgmma: {  // the same staging of x; the tensor-core kernel differs
      float* partial = reinterpret_cast<float*>(base);
      const void* xs = x;
      int64_t x_stride = w.k;
      if (plan.gather) {
        xs = base + plan.partial_bytes;
        x_stride = kpn;
        const int s = launch_gather(w, x, base + plan.partial_bytes, M, bf16, stream);
        if (s != kOk) return s;
      } else if (reinterpret_cast<uintptr_t>(x) % 16 != 0) {
        return launch_simt(w, x, y, M, bf16, stream);  // rows of x not in 16-byte pieces (a rare view)
      }
      int s = plan.family == Family::kMma
                  ? launch_mma(w, plan, xs, x_stride, !plan.gather, y, M, bf16, partial, stream)
                  : launch_wgmma(w, plan, xs, x_stride, !plan.gather, y, M, bf16, partial, stream);
      if (s == kOk && plan.splits > 1) s = launch_reduce(w, partial, plan.splits, y, M, bf16, stream);
      return s;
    }
    case Family::kDequantGemm: {
      if (!cublaslt) return kBadArgument;
      const void* xs = x;
      size_t off = 0;
      if (plan.gather) {
        int s = launch_gather(w, x, base, M, bf16, stream);
        if (s != kOk) return s;
        xs = base;
        off = align_up(static_cast<size_t>(M * kpn * 2));
      }
      void* wt = base + off;
      off += align_up(static_cast<size_t>(plan.rows_per_chunk * kpn * 2));
      void* cublas_ws = base + off;
      float beta = 0.0f;
      if (w.bias) {
        int s = launch_bias_fill(w, y, M, bf16, stream);
        if (s != kOk) return s;
        beta = 1.0f;
      }
      for (int64_t n0 = 0; n0 < w.n; n0 += plan.rows_per_chunk) {
        const int64_t rows = std::min(plan.rows_per_chunk, w.n - n0);
        int s = launch_dequant(w, n0, rows, wt, bf16, stream);
        if (s != kOk) return s;
        s = cublas_chunk(static_cast<cublasLtHandle_t>(cublaslt), algos, bf16, rows < plan.rows_per_chunk, wt,
                         xs, static_cast<unsigned char*>(y) + n0 * 2, rows, M, kpn, w.n, beta, cublas_ws,
                         kCublasWorkspaceBytes, stream);
        if (s != kOk) return s;
      }
      return kOk;
    }
  }
  return kBadArgument;
}

}  // namespace ark::cuda
