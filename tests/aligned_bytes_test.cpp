// AlignedBytes from each of its sources (malloc below 64 KiB, the huge-page arena to 8 MiB, an own mapping
// above): zeroed, 64-byte aligned (2 MiB for own mappings), the exact size reported, buffers disjoint, and
// arena space handed out again after a free reads as zero.
#include "common/aligned_bytes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

namespace ark {
namespace {

bool all_zero(const AlignedBytes& b) {
  return std::all_of(b.data(), b.data() + b.size(), [](uint8_t v) { return v == 0; });
}

TEST(AlignedBytes, EmptyHasNoStorage) {
  AlignedBytes b(0);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.data(), nullptr);
}

TEST(AlignedBytes, EverySourceIsZeroedAndAligned) {
  for (size_t n : {size_t{1}, size_t{63}, size_t{4097}, (size_t{64} << 10) - 1, size_t{64} << 10,
                   (size_t{2} << 20) + 3, size_t{8} << 20, (size_t{8} << 20) + 1, (size_t{9} << 20) + 5}) {
    AlignedBytes b(n);
    EXPECT_EQ(b.size(), n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u) << n;
    if (n > (size_t{8} << 20)) EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (size_t{2} << 20), 0u) << n;
    EXPECT_TRUE(all_zero(b)) << n;
    b.data()[n - 1] = 7;  // the whole requested range is writable
    EXPECT_EQ(b.data()[n - 1], 7);
  }
}

TEST(AlignedBytes, ArenaBuffersAreDisjointAndReusedZeroed) {
  // More than one 32 MiB arena chunk's worth, in sizes that do not divide it.
  std::vector<AlignedBytes> bufs;
  for (int i = 0; i < 40; ++i) bufs.emplace_back((size_t{1} << 20) + 4096 * static_cast<size_t>(i) + 100);
  for (size_t i = 0; i < bufs.size(); ++i)
    std::memset(bufs[i].data(), static_cast<int>(i + 1), bufs[i].size());
  for (size_t i = 0; i < bufs.size(); ++i) {
    const uint8_t want = static_cast<uint8_t>(i + 1);
    EXPECT_TRUE(
        std::all_of(bufs[i].data(), bufs[i].data() + bufs[i].size(), [&](uint8_t v) { return v == want; }))
        << "buffer " << i << " was overwritten by a neighbour";
  }
  bufs.clear();  // every chunk empties: the filled one is rewound, the others returned
  for (int i = 0; i < 40; ++i) {
    AlignedBytes b((size_t{1} << 20) + 64 * static_cast<size_t>(i));
    EXPECT_TRUE(all_zero(b)) << i;
    std::memset(b.data(), 0xff, b.size());  // dirty it before the next one takes its place
  }
}

// Layers are packed from several threads at once (the model loader, QuantMoE): the arena hands out and takes
// back buffers concurrently without overlap.
TEST(AlignedBytes, ConcurrentArenaUseKeepsBuffersApart) {
  constexpr int kThreads = 4, kRounds = 60;
  std::vector<int> bad(kThreads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t)
    pool.emplace_back([t, &bad] {
      std::vector<AlignedBytes> live;
      for (int i = 0; i < kRounds; ++i) {
        const uint8_t tag = static_cast<uint8_t>(16 * t + i % 16 + 1);
        live.emplace_back((size_t{64} << 10) + 4096 * static_cast<size_t>((i * 7 + t) % 97));
        if (!std::all_of(live.back().data(), live.back().data() + live.back().size(),
                         [](uint8_t v) { return v == 0; }))
          ++bad[t];
        std::memset(live.back().data(), tag, live.back().size());
        if (i % 3 == 2) live.erase(live.begin());  // free some while others allocate
        for (const AlignedBytes& b : live)
          if (b.data()[0] == 0 || b.data()[b.size() - 1] != b.data()[0]) ++bad[t];
      }
    });
  for (std::thread& th : pool) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

TEST(AlignedBytes, MovesTransferOwnership) {
  for (size_t n : {size_t{100}, size_t{3} << 20, size_t{12} << 20}) {
    AlignedBytes a(n), b(100);
    a.data()[5] = 9;
    const uint8_t* pa = a.data();
    b = std::move(a);  // b's buffer is freed, a's moves
    EXPECT_EQ(b.data(), pa);
    EXPECT_EQ(b.size(), n);
    EXPECT_EQ(b.data()[5], 9);
    EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    AlignedBytes c(std::move(b));
    EXPECT_EQ(c.data(), pa);
    EXPECT_EQ(b.size(), 0u);  // NOLINT(bugprone-use-after-move)
  }
}

}  // namespace
}  // namespace ark
