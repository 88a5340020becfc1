#include "common/aligned_bytes.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace ark {

namespace {

constexpr size_t kLineBytes = 64;
constexpr size_t kHugePageBytes = size_t{2} << 20;
constexpr size_t kPageBytes = 4096;

size_t round_up(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}

// An anonymous mapping of `length` bytes (a multiple of 4 KiB) starting on a 2 MiB boundary: map 2 MiB
// more, then unmap the unaligned head and the rest of the tail. Anonymous pages read as zero.
uint8_t* map_huge_aligned(size_t length) {
  const size_t over = length + kHugePageBytes;
  void* raw = mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (begin + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
  if (aligned > begin) munmap(raw, aligned - begin);
  const uintptr_t end = begin + over, used_end = aligned + length;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  return reinterpret_cast<uint8_t*>(aligned);
}

}  // namespace

AlignedBytes::AlignedBytes(size_t n) : size_(n) {
  if (n == 0) return;
  const size_t huge_bytes = n / kHugePageBytes * kHugePageBytes;  // whole huge pages the buffer covers
  if (huge_bytes == 0) {
    const size_t rounded = round_up(n, kLineBytes);
    void* p = std::aligned_alloc(kLineBytes, rounded);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    data_ = static_cast<uint8_t*>(p);
    return;
  }
  mapped_ = round_up(n, kPageBytes);
  data_ = map_huge_aligned(mapped_);
#if defined(MADV_HUGEPAGE)
  // Advice only: an error (THP compiled out, a kernel that refuses) leaves ordinary pages, which is correct.
  (void)madvise(data_, huge_bytes, MADV_HUGEPAGE);
#endif
}

void AlignedBytes::release() {
  if (data_ == nullptr) return;
  if (mapped_ > 0)
    munmap(data_, mapped_);
  else
    std::free(data_);
  data_ = nullptr;
  size_ = mapped_ = 0;
}

AlignedBytes::~AlignedBytes() {
  release();
}

AlignedBytes::AlignedBytes(AlignedBytes&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      mapped_(std::exchange(o.mapped_, 0)) {}

AlignedBytes& AlignedBytes::operator=(AlignedBytes&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, 0);
  }
  return *this;
}

}  // namespace ark
