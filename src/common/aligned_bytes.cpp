#include "common/aligned_bytes.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <utility>

namespace ark {

namespace {

constexpr size_t kLineBytes = 64;
constexpr size_t kPageBytes = 4096;
constexpr size_t kHugePageBytes = size_t{2} << 20;
constexpr size_t kArenaMinBytes = size_t{64} << 10;
constexpr size_t kArenaMaxBytes = size_t{8} << 20;
constexpr size_t kArenaChunkBytes = size_t{32} << 20;

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

// Advice only: an error (THP compiled out, a kernel that refuses) leaves ordinary pages, which is correct.
void advise_huge(uint8_t* p, size_t bytes) {
#if defined(MADV_HUGEPAGE)
  if (bytes > 0) (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
}

// Chunks of kArenaChunkBytes on huge pages, handed out front to back; a chunk is unmapped when its last
// buffer is freed (the chunk being filled is rewound instead). Allocation is not a hot path: one mutex.
class HugePageArena {
 public:
  uint8_t* allocate(size_t n) {
    n = round_up(n, kLineBytes);
    std::lock_guard<std::mutex> lock(mu_);
    if (current_ == nullptr || current_->used + n > kArenaChunkBytes) {
      uint8_t* base = map_huge_aligned(kArenaChunkBytes);
      advise_huge(base, kArenaChunkBytes);
      current_ = &chunks_[reinterpret_cast<uintptr_t>(base)];
      current_->base = base;
    }
    uint8_t* p = current_->base + current_->used;
    current_->used += n;
    ++current_->live;
    std::memset(p, 0, n);  // a rewound chunk's bytes may have been used before
    return p;
  }

  void release(uint8_t* p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::prev(chunks_.upper_bound(reinterpret_cast<uintptr_t>(p)));
    Chunk& c = it->second;
    if (--c.live > 0) return;
    if (&c == current_) {
      c.used = 0;
      return;
    }
    munmap(c.base, kArenaChunkBytes);
    chunks_.erase(it);
  }

 private:
  struct Chunk {
    uint8_t* base = nullptr;
    size_t used = 0;
    size_t live = 0;  // buffers not yet freed
  };
  std::mutex mu_;
  std::map<uintptr_t, Chunk> chunks_;  // by base address (std::map: stable addresses for current_)
  Chunk* current_ = nullptr;
};

// Never destroyed: buffers in static objects may be freed after any static destructor would have run.
HugePageArena& arena() {
  static HugePageArena* const a = new HugePageArena;
  return *a;
}

}  // namespace

AlignedBytes::AlignedBytes(size_t n) : size_(n) {
  if (n == 0) return;
  if (n < kArenaMinBytes) {
    const size_t rounded = round_up(n, kLineBytes);
    void* p = std::aligned_alloc(kLineBytes, rounded);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    data_ = static_cast<uint8_t*>(p);
    source_ = Source::kMalloc;
  } else if (n <= kArenaMaxBytes) {
    data_ = arena().allocate(n);
    source_ = Source::kArena;
  } else {
    mapped_ = round_up(n, kPageBytes);
    data_ = map_huge_aligned(mapped_);
    advise_huge(data_, n / kHugePageBytes * kHugePageBytes);
    source_ = Source::kMapping;
  }
}

void AlignedBytes::release() {
  switch (source_) {
    case Source::kMalloc:
      std::free(data_);
      break;
    case Source::kArena:
      arena().release(data_);
      break;
    case Source::kMapping:
      munmap(data_, mapped_);
      break;
    case Source::kNone:
      break;
  }
  data_ = nullptr;
  size_ = mapped_ = 0;
  source_ = Source::kNone;
}

AlignedBytes::~AlignedBytes() {
  release();
}

AlignedBytes::AlignedBytes(AlignedBytes&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      mapped_(std::exchange(o.mapped_, 0)),
      source_(std::exchange(o.source_, Source::kNone)) {}

AlignedBytes& AlignedBytes::operator=(AlignedBytes&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, 0);
    source_ = std::exchange(o.source_, Source::kNone);
  }
  return *this;
}

}  // namespace ark
