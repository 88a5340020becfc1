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
  const size_t huge_bytes = n / kHugePageBytes * kHugePageBytes;  // whole huge pages the buffer covers
  const size_t align = huge_bytes > 0 ? kHugePageBytes : kLineBytes;
  const size_t rounded = round_up(n, kLineBytes);
  // glibc's aligned_alloc takes any size for a power-of-two alignment (C17 no longer requires a multiple).
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
  // Only the whole 2 MiB pages: a huge page under the tail would hold up to 2 MiB the buffer never uses
  // (measured: +80 MiB resident on Qwen2.5-0.5B when the tails were advised too). Advice only: an error
  // (THP compiled out, a kernel that refuses) leaves ordinary pages, which is correct.
  if (huge_bytes > 0) (void)madvise(p, huge_bytes, MADV_HUGEPAGE);
#endif
  std::memset(p, 0, rounded);
  data_.reset(static_cast<uint8_t*>(p));
}

}  // namespace ark
