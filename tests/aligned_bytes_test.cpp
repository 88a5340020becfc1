// AlignedBytes: zeroed, the promised alignment (2 MiB from 2 MiB up, for huge pages), the exact size
// reported.
#include "common/aligned_bytes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>

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

TEST(AlignedBytes, SmallBuffersAreZeroedAndLineAligned) {
  for (size_t n : {size_t{1}, size_t{63}, size_t{64}, size_t{4097}, (size_t{2} << 20) - 1}) {
    AlignedBytes b(n);
    EXPECT_EQ(b.size(), n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u) << n;
    EXPECT_TRUE(all_zero(b)) << n;
  }
}

TEST(AlignedBytes, LargeBuffersStartOnHugePageBoundaries) {
  for (size_t n : {size_t{2} << 20, (size_t{5} << 20) + 3}) {
    AlignedBytes b(n);
    EXPECT_EQ(b.size(), n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % (size_t{2} << 20), 0u) << n;
    EXPECT_TRUE(all_zero(b)) << n;
    b.data()[n - 1] = 7;  // the whole requested range is writable
    EXPECT_EQ(b.data()[n - 1], 7);
  }
}

TEST(AlignedBytes, MovesTransferOwnership) {
  AlignedBytes a(size_t{3} << 20), b(100);
  a.data()[5] = 9;
  const uint8_t* pa = a.data();
  b = std::move(a);  // b's small buffer is freed, a's mapping moves
  EXPECT_EQ(b.data(), pa);
  EXPECT_EQ(b.size(), size_t{3} << 20);
  EXPECT_EQ(b.data()[5], 9);
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  AlignedBytes c(std::move(b));
  EXPECT_EQ(c.data(), pa);
  EXPECT_EQ(b.size(), 0u);  // NOLINT(bugprone-use-after-move)
}

}  // namespace
}  // namespace ark
