// The CUDA packed layout (src/kernels/cuda/cuda_layout.h), checked on the host: no GPU needed, so CI runs it.
// Known-answer words written by hand from the mma.sync m16n8k16 B-fragment rule, then round trips over every
// bits x group x act-order with tails: every code, scale and zero read back through the layout equals the
// canonical weight's, padding reads as code 0 with x = 0, and each input channel appears exactly once.
#include <gtest/gtest.h>

#include <vector>

#include "ark/error.h"
#include "kernels/cuda/cuda_pack.h"
#include "quant_linear_test_util.h"

namespace ark {
namespace {

QuantizedWeight counting_weight(int64_t n, int64_t k) {
  QuantizedWeight w;
  w.out_features = n;
  w.in_features = k;
  w.bits = 4;
  w.group_size = k;
  w.sym = true;
  w.codes.resize(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) w.codes[r * k + c] = static_cast<uint8_t>((c + r) % 16);
  w.scales.assign(static_cast<size_t>(n), 1.0f);
  w.zeros.assign(static_cast<size_t>(n), 8);
  return w;
}

// Lane l of a warp holds, for row n = l / 4 and t = l % 4, the k = 8j + 2t + e (j = 0..3, e = 0, 1) of each
// k32 block, code of (j, e) in nibble j + 4e: nibbles j and j + 4 form B register j's two halves.
TEST(CudaPack, Int4KnownAnswerWords) {
  const cuda::HostPacked p = cuda::pack_for_cuda(counting_weight(8, 128));
  ASSERT_EQ(p.chunks, 1);
  ASSERT_EQ(p.codes.size(), 32u * 4u);
  // Lane 0: n = 0, k in {0,1, 8,9, 16,17, 24,25} -> codes 0,1, 8,9, 0,1, 8,9.
  EXPECT_EQ(p.codes[0 * 4 + 0], 0x91918080u);
  // Lane 5: n = 1, t = 1, k in {2,3, 10,11, 18,19, 26,27} -> codes (k + 1) % 16 = 3,4, 11,12, 3,4, 11,12.
  EXPECT_EQ(p.codes[5 * 4 + 0], 0xc4c4b3b3u);
  // Lane 0, block 1 (k + 32): codes 0,1, 8,9 again ((32 + k) % 16 == k % 16).
  EXPECT_EQ(p.codes[0 * 4 + 1], 0x91918080u);
  EXPECT_TRUE(p.k_source.empty());  // 128 channels, one group: the identity
}

TEST(CudaPack, EveryCodeScaleAndZeroReadsBack) {
  uint64_t id = 50;
  for (int bits : {2, 3, 4, 8})
    for (int64_t g : {32, 64, 128, -1, 48})
      for (bool act : {false, true}) {
        ql_test::WeightConfig c;
        c.n = 21;
        c.k = 200;
        c.bits = bits;
        c.group_size = g;
        c.sym = (id % 2) == 0;
        c.act_order = act;
        auto rng = ql_test::rng_for(id++);
        const QuantizedWeight w = ql_test::random_weight(c, rng);
        const cuda::HostPacked p = cuda::pack_for_cuda(w);
        const cuda::PackedView v = p.view();
        SCOPED_TRACE(testing::Message() << "int" << bits << " g" << g << (act ? " act-order" : ""));
        ASSERT_EQ(p.block_group.size(), static_cast<size_t>(p.chunks * 4));
        std::vector<int> seen(static_cast<size_t>(c.k), 0);
        for (int64_t kp = 0; kp < v.k_packed(); ++kp) {
          const int64_t src = cuda::source_k(v, kp);
          for (int64_t n = 0; n < c.n; ++n) {
            if (src < 0) {
              ASSERT_EQ(cuda::packed_code(v, n, kp), 0u) << "padding at kp " << kp;
              continue;
            }
            ASSERT_EQ(cuda::packed_code(v, n, kp), w.codes[n * c.k + src]) << "n " << n << " kp " << kp;
            ASSERT_EQ(v.block_group[kp / 32], w.group_of(src));
            ASSERT_EQ(cuda::packed_weight(v, n, kp), w.dequant(n, src)) << "n " << n << " kp " << kp;
          }
          if (src >= 0) ++seen[static_cast<size_t>(src)];
        }
        for (int64_t k = 0; k < c.k; ++k) ASSERT_EQ(seen[k], 1) << "channel " << k;
        // Rows past N (the last n8 tile) are zero.
        for (int64_t n = c.n; n < p.n8_tiles * 8; ++n)
          for (int64_t kp = 0; kp < v.k_packed(); ++kp) ASSERT_EQ(cuda::packed_code(v, n, kp), 0u);
      }
}

// PackedView::chunk_group_step: chunk c's first k32 block is in group c * step (one group: 0; g = 128, 64,
// 32: 1, 2, 4, a K tail included; g = 48, padded to 64: 2) wherever the layout has it, and -1 where it does
// not (g = 256: two chunks per group; g = 96: three k32 blocks per group); the table always agrees.
TEST(CudaPack, ChunkGroupStepFollowsTheTable) {
  struct Expect {
    int64_t k, group;
    int32_t step;
  };
  uint64_t id = 90;
  for (const Expect& e : {Expect{512, -1, 0}, Expect{512, 128, 1}, Expect{200, 128, 1}, Expect{512, 64, 2},
                          Expect{512, 32, 4}, Expect{100, 32, 0}, Expect{1024, 256, -1}, Expect{768, 96, -1},
                          Expect{512, 48, 2}}) {
    ql_test::WeightConfig c;
    c.n = 16;
    c.k = e.k;
    c.bits = 4;
    c.group_size = e.group;
    auto rng = ql_test::rng_for(id++);
    const cuda::HostPacked p = cuda::pack_for_cuda(ql_test::random_weight(c, rng));
    const std::string what = "K=" + std::to_string(e.k) + " g" + std::to_string(e.group);
    EXPECT_EQ(p.chunk_group_step, e.step) << what;
    EXPECT_EQ(p.view().chunk_group_step, p.chunk_group_step) << what;
    if (p.chunk_group_step < 0) continue;
    for (int64_t ch = 0; ch < p.chunks; ++ch)
      EXPECT_EQ(p.block_group[static_cast<size_t>(4 * ch)], ch * p.chunk_group_step) << what << " chunk " << ch;
  }
}

// PackedView::chunk_one_group: true where every chunk's k32 blocks lie in one group (one group, g = 128
// with a K tail whose last chunk ends in padding, g = 256, act-order with g = 128 on K = 512: each group
// exactly one chunk), false where a chunk holds several (g = 64, 32, 96, 48; g = 32 on one chunk); checked
// against the table, padding blocks aside.
TEST(CudaPack, ChunkOneGroupFollowsTheTable) {
  struct Expect {
    int64_t k, group;
    bool act_order, one;
  };
  uint64_t id = 95;
  for (const Expect& e :
       {Expect{512, -1, false, true}, Expect{512, 128, false, true}, Expect{200, 128, false, true},
        Expect{1024, 256, false, true}, Expect{512, 128, true, true}, Expect{512, 64, false, false},
        Expect{512, 32, false, false}, Expect{100, 32, false, false}, Expect{768, 96, false, false},
        Expect{512, 48, false, false}}) {
    ql_test::WeightConfig c;
    c.n = 16;
    c.k = e.k;
    c.bits = 4;
    c.group_size = e.group;
    c.act_order = e.act_order;
    auto rng = ql_test::rng_for(id++);
    const QuantizedWeight w = ql_test::random_weight(c, rng);
    const cuda::HostPacked p = cuda::pack_for_cuda(w);
    const std::string what =
        "K=" + std::to_string(e.k) + " g" + std::to_string(e.group) + (e.act_order ? " act-order" : "");
    EXPECT_EQ(p.chunk_one_group, e.one) << what;
    EXPECT_EQ(p.view().chunk_one_group, p.chunk_one_group) << what;
    // The table: the blocks holding real channels (their packed positions' sources) agree with their
    // chunk's first block wherever the flag is set.
    if (!p.chunk_one_group) continue;
    for (int64_t kp = 0; kp < p.chunks * cuda::kChunkK; ++kp) {
      if (cuda::source_k(p.view(), kp) < 0) continue;
      const int64_t chunk_first = kp / cuda::kChunkK * 4;
      EXPECT_EQ(p.block_group[static_cast<size_t>(kp / cuda::kBlockK)],
                p.block_group[static_cast<size_t>(chunk_first)])
          << what << " kp " << kp;
    }
  }
}

TEST(CudaPack, InvalidWeightThrows) {
  QuantizedWeight w = counting_weight(8, 128);
  w.codes[3] = 16;  // out of range for 4 bits
  EXPECT_THROW(cuda::pack_for_cuda(w), Error);
  w = counting_weight(8, 128);
  w.scales.pop_back();
  EXPECT_THROW(cuda::pack_for_cuda(w), Error);
}

}  // namespace
}  // namespace ark
