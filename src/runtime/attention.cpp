// Grouped-query causal attention (attention.h).
//
// A decode step streams ~460 MB of weights, which flushes the caches, so every step reads the layer's keys
// and values from DRAM again: at 640 positions of Qwen2.5-0.5B 15 MB per step in block_size x head_dim
// pieces (4 KiB at the defaults), one piece per (block, layer, KV head). One task per (query head) used to
// wait on each piece's misses in turn, and its group's other heads re-read the same pieces: attention took
// ~19% of a decode step at 512-640 positions (perf, 2 threads). So a task now takes a KV head with its
// group of query heads (split further only when there are fewer tasks than threads), reads each piece once
// for the whole group while it is in L1, and prefetches the pieces ahead while it computes on this one; the
// cache's blocks sit on huge pages (kv_cache.cpp). bench/cpu_time/attention_decode.cpp times a step's
// attention alone.
#include "runtime/attention.h"

#include <algorithm>
#include <vector>

#include "runtime/vec_ops.h"

namespace ark::runtime {

namespace {

// Prefetches part `part` of `parts` of the first 4 KiB of a KV piece (a whole piece at the default block
// size; the hardware prefetcher follows a longer piece on its own). Each head of the group asks for its share
// just before it computes on the current piece: the whole piece asked for at once measured no faster than no
// prefetch, as its 64 requests queue behind the core's few miss buffers and stall the loads behind them.
// Always inlined: a function that only prefetches has no side effects in GCC's eyes, so GCC 12 drops calls to
// it that it has not inlined early (at -O1 and above no prefetch was left in this file).
[[gnu::always_inline]] inline void prefetch_piece_part(const float* piece, int64_t floats, int64_t part,
                                                       int64_t parts) {
  const int64_t lines = std::min<int64_t>(floats * static_cast<int64_t>(sizeof(float)), 4096) / 64;
  const int64_t per_part = (lines + parts - 1) / parts;
  const auto* b = reinterpret_cast<const char*>(piece);
  for (int64_t i = part * per_part; i < std::min(lines, (part + 1) * per_part); ++i)
    __builtin_prefetch(b + 64 * i, 0, 2);
}

// Pieces prefetched ahead of the one in hand, into L2 (hint T1: more misses in flight than L1 keeps). On the
// decode microbenchmark (bench/cpu_time/attention_decode.cpp) 2 ahead with T1 took 1.14-1.16 ms per step
// where 1 ahead took 1.28-1.37 (T0) and 1.27-1.31 (T1); 3 and 4 ahead were within noise of 2.
constexpr int64_t kPiecesAhead = 2;

}  // namespace

void causal_attention(const float* q, const KvCache& cache, int64_t layer, int64_t p0, int64_t n,
                      const AttentionShape& shape, float* out, ThreadPool& pool) {
  const int64_t nh = shape.num_heads, nkv = shape.num_kv_heads, D = shape.head_dim;
  const int64_t group = nh / nkv, bs = cache.block_size();
  // Decode has only n x nkv = nkv tasks; split each group's heads so that every thread gets one.
  const int64_t tasks_unsplit = n * nkv;
  const int64_t splits =
      std::clamp<int64_t>((pool.num_threads() + tasks_unsplit - 1) / tasks_unsplit, 1, group);
  const int64_t heads_per_task = (group + splits - 1) / splits;
  pool.parallel_for(tasks_unsplit * splits, [&](int64_t task) {
    const int64_t t = task / (nkv * splits), kvh = task / splits % nkv, part = task % splits;
    const int64_t h0 = kvh * group + part * heads_per_task;
    const int64_t h1 = std::min(kvh * group + group, h0 + heads_per_task);
    if (h0 >= h1) return;
    const int64_t len = p0 + t + 1;  // token t sees positions [0, p0 + t]
    thread_local std::vector<float> scores;
    if (static_cast<int64_t>(scores.size()) < (h1 - h0) * len) scores.resize((h1 - h0) * len);
    const float* q_t = q + t * nh * D;
    float* out_t = out + t * nh * D;

    // Keys, then (after the softmax) values, one piece per block; each piece is read once for all the heads.
    for (int kv = 0; kv < 2; ++kv) {
      if (kv == 1)
        for (int64_t h = h0; h < h1; ++h) {
          softmax_f32(scores.data() + (h - h0) * len, len);
          std::fill(out_t + h * D, out_t + (h + 1) * D, 0.0f);
        }
      for (int64_t p = 0; p < std::min(len, kPiecesAhead * bs); p += bs)  // the first pieces, at once
        prefetch_piece_part(kv == 0 ? cache.key(layer, kvh, p) : cache.value(layer, kvh, p),
                            std::min(bs, len - p) * D, 0, 1);
      for (int64_t p = 0; p < len; p += bs) {
        const int64_t ahead = p + kPiecesAhead * bs;
        const int64_t count = std::min(bs, len - p), next_count = std::min(bs, len - ahead);
        const float* piece = kv == 0 ? cache.key(layer, kvh, p) : cache.value(layer, kvh, p);
        const float* next = next_count <= 0 ? nullptr
                            : kv == 0       ? cache.key(layer, kvh, ahead)
                                            : cache.value(layer, kvh, ahead);
        for (int64_t h = h0; h < h1; ++h) {
          if (next) prefetch_piece_part(next, next_count * D, h - h0, h1 - h0);
          float* s = scores.data() + (h - h0) * len + p;
          if (kv == 0)
            dot_rows_f32(q_t + h * D, piece, count, D, shape.scale, s);
          else
            weighted_sum_rows_f32(s, piece, count, D, out_t + h * D);
        }
      }
    }
  });
}

}  // namespace ark::runtime
