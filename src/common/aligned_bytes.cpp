#include "common/aligned_bytes.h"

#include <sys/mman.h>

#include <cstring>
#include <new>

namespace ark {

namespace {

constexpr size_t kLineBytes = 64;
constexpr size_t kHugePageBytes = size_t{2} << 20;

size_t round_up(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}

}  // namespace

AlignedBytes::AlignedBytes(size_t n) : size_(n) {
  if (n == 0) return;
  const bool huge = n >= kHugePageBytes;
  const size_t align = huge ? kHugePageBytes : kLineBytes;
  const size_t rounded = round_up(n, align);
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
  // Advice only: an error (THP compiled out, a kernel that refuses) leaves ordinary pages, which is correct.
  if (huge) (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
  std::memset(p, 0, rounded);
  data_.reset(static_cast<uint8_t*>(p));
}

}  // namespace ark
