// TileRanges (src/linear/tile_ranges.h): every tile handed out exactly once, in exactly total_chunks()
// claims, whatever the threads do; a thread's chunks run front to back through its own range, then through
// the following ranges.
#include "linear/tile_ranges.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "quant_linear_test_util.h"

namespace ark {
namespace {

// Range i of n tiles in `parts`, as TileRanges splits them.
std::pair<int64_t, int64_t> expected_range(int64_t n, int parts, int i) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = i * base + std::min<int64_t>(i, extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

// One thread alone takes its own range, then each following range in turn, every one front to back: from
// range 0 that is [0, n) in order, one contiguous stream.
TEST(TileRanges, OneThreadAloneWalksTheRangesInOrder) {
  for (int64_t n : {0, 1, 5, 37, 100, 1000})
    for (int parts : {1, 2, 3, 7, 20})  // 20: more ranges than held inline
      for (int64_t chunks : {1, 3, 4})
        for (int part : {0, parts - 1}) {
          TileRanges r(n, parts, chunks);
          int64_t expect_chunks = 0;
          for (int i = 0; i < parts; ++i) {
            const auto [b, e] = expected_range(n, parts, i);
            expect_chunks += std::min(chunks, e - b);
          }
          EXPECT_EQ(r.total_chunks(), expect_chunks) << "n " << n << " parts " << parts;
          std::vector<int> seen(static_cast<size_t>(n), 0);
          int64_t t0 = 0, t1 = 0, claims = 0;
          for (int i = 0; i < parts; ++i) {
            const int range = (part + i) % parts;
            const auto [b0, b1] = expected_range(n, parts, range);
            const int64_t range_chunks = std::min(chunks, b1 - b0);
            for (int64_t front = b0; front < b1; front = t1) {
              ASSERT_TRUE(r.next(part, &t0, &t1));
              ASSERT_EQ(t0, front) << "n " << n << " parts " << parts << " range " << range;
              ASSERT_GT(t1, t0);
              ASSERT_LE(t1 - t0, (b1 - b0 + range_chunks - 1) / range_chunks);
              for (int64_t t = t0; t < t1; ++t) ++seen[static_cast<size_t>(t)];
              ++claims;
            }
          }
          EXPECT_FALSE(r.next(part, &t0, &t1));
          EXPECT_FALSE(r.next((part + 1) % parts, &t0, &t1));
          EXPECT_EQ(claims, r.total_chunks());
          for (int64_t t = 0; t < n; ++t) ASSERT_EQ(seen[static_cast<size_t>(t)], 1) << "tile " << t;
        }
}

// A part index past the range count (a pool worker running a nested call inline) is taken modulo.
TEST(TileRanges, PartIndexWrapsAround) {
  TileRanges r(40, 3, 2);
  int64_t t0 = 0, t1 = 0;
  ASSERT_TRUE(r.next(4, &t0, &t1));  // range 1: tiles [14, 27)
  EXPECT_EQ(t0, 14);
  EXPECT_EQ(t1, 21);
}

TEST(TileRanges, ConcurrentThreadsTakeEveryTileOnce) {
  std::mt19937_64 rng = ql_test::rng_for(0x7135);
  for (int rep = 0; rep < 40; ++rep) {
    const int64_t n = static_cast<int64_t>(rng() % 3000);
    const int parts = 1 + static_cast<int>(rng() % 20);
    const int64_t chunks = 1 + static_cast<int64_t>(rng() % 8);
    // Fewer threads than ranges (the rest must be stolen), or as many, some starting late.
    const int threads = 1 + static_cast<int>(rng() % parts);
    TileRanges r(n, parts, chunks);
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    std::atomic<int64_t> claims{0};
    std::vector<std::thread> pool;
    for (int p = 0; p < threads; ++p)
      pool.emplace_back([&, p, late = rng() % 3 == 0] {
        if (late) std::this_thread::sleep_for(std::chrono::microseconds(200));
        for (int64_t t0, t1; r.next(p, &t0, &t1);) {
          claims.fetch_add(1);
          for (int64_t t = t0; t < t1; ++t) seen[static_cast<size_t>(t)].fetch_add(1);
        }
      });
    for (auto& t : pool) t.join();
    EXPECT_EQ(claims.load(), r.total_chunks());
    for (int64_t t = 0; t < n; ++t)
      ASSERT_EQ(seen[static_cast<size_t>(t)].load(), 1)
          << "tile " << t << " of " << n << ", " << parts << " ranges, " << threads << " threads";
  }
}

}  // namespace
}  // namespace ark
