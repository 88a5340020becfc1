// How a decode forward shares its N-tiles among threads: one contiguous range per thread, cut into a few
// fixed chunks; a thread takes the chunks of its own range in order, then, once its range is empty, the next
// chunks of the following ranges (work stealing).
//
// Why contiguous: a decode call streams each weight byte once, and a stream that jumps costs a ramp-up each
// time (the kernels prefetch a few KiB ahead of the block they work on, so a new region starts cold and the
// old one's tail prefetches bytes another thread reads). Handing out items in order (thread 0 gets items 0,
// 2, 4, ..., thread 1 gets 1, 3, 5, ...) made every item a new region for both threads.
// Why steal from the front of the following range: when the other thread is late or descheduled (a shared
// machine), the thread that ran out goes on exactly where its own range ended, so its stream stays one
// region. Stealing from the back instead kept the victim's stream whole but made the stealer walk backwards
// chunk by chunk: 8% slower decode steps with the second thread starved, against 1% for the front.
// Why fixed chunks: the total is known up front, so a pool task can be exactly one chunk; a thread holds a
// claim only while it works on it, and the caller never waits on a thread that was merely handed a task.
//
// Each range's next-chunk counter sits on its own cache line, written by its owner until someone steals.
// Which thread computes a tile never changes a result (each output is computed by one kernel call, in a
// fixed order).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

namespace ark {

class TileRanges {
 public:
  // [0, n_tiles) in `parts` nearly equal contiguous ranges, each cut into chunks_per_part nearly equal
  // chunks (fewer when a range has fewer tiles; an empty range has none).
  TileRanges(int64_t n_tiles, int parts, int64_t chunks_per_part)
      : n_tiles_(n_tiles), parts_(parts), chunks_per_part_(std::max<int64_t>(1, chunks_per_part)) {
    if (parts > kLocal) heap_ = std::make_unique<Next[]>(static_cast<size_t>(parts));
    total_chunks_ = 0;
    for (int i = 0; i < parts; ++i) total_chunks_ += chunks(i);
  }
  TileRanges(const TileRanges&) = delete;
  TileRanges& operator=(const TileRanges&) = delete;

  // Chunks over all ranges: as many pool tasks as this each find one chunk.
  int64_t total_chunks() const { return total_chunks_; }

  // The next chunk [*t0, *t1) for a thread that owns range `part` (taken modulo the range count): the next of
  // its own range, else the next of the first following range that has one. False when every chunk is taken.
  bool next(int part, int64_t* t0, int64_t* t1) {
    Next* n = nexts();
    part %= parts_;
    for (int i = 0; i < parts_; ++i) {
      const int r = (part + i) % parts_;
      const int64_t count = chunks(r);
      // Look before taking, so a range that is done costs a read, not a write to another thread's line.
      if (n[r].v.load(std::memory_order_relaxed) >= count) continue;
      const int64_t c = n[r].v.fetch_add(1, std::memory_order_relaxed);
      if (c < count) {
        chunk_tiles(r, c, t0, t1);
        return true;
      }
    }
    return false;
  }

 private:
  static constexpr int kLocal = 16;  // ranges held inline; more threads than this take one allocation
  struct alignas(64) Next {
    std::atomic<int64_t> v{0};
  };
  Next* nexts() { return heap_ ? heap_.get() : local_; }

  // Part i of [0, n) cut into `parts`: [begin, end).
  static void split(int64_t n, int64_t parts, int64_t i, int64_t* begin, int64_t* end) {
    const int64_t base = n / parts, extra = n % parts;
    *begin = i * base + std::min(i, extra);
    *end = *begin + base + (i < extra ? 1 : 0);
  }
  int64_t chunks(int range) const {
    int64_t b, e;
    split(n_tiles_, parts_, range, &b, &e);
    return std::min(chunks_per_part_, e - b);
  }
  void chunk_tiles(int range, int64_t chunk, int64_t* t0, int64_t* t1) const {
    int64_t b, e, c0, c1;
    split(n_tiles_, parts_, range, &b, &e);
    split(e - b, chunks(range), chunk, &c0, &c1);
    *t0 = b + c0;
    *t1 = b + c1;
  }

  int64_t n_tiles_;
  int parts_;
  int64_t chunks_per_part_;
  int64_t total_chunks_ = 0;
  Next local_[kLocal];
  std::unique_ptr<Next[]> heap_;
};

}  // namespace ark
