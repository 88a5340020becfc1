// Zero-initialised, 64-byte aligned byte storage for weights that every decode step streams from DRAM.
//
// Where the bytes come from, by size:
//   - below 64 KiB: malloc (biases, small scale tables);
//   - 64 KiB up to 8 MiB: a process-wide arena of 32 MiB chunks on transparent huge pages (MADV_HUGEPAGE,
//     before the first touch), handed out in order, so a model's small layers share huge pages;
//   - above 8 MiB: an own anonymous mapping on a 2 MiB boundary, its whole 2 MiB pages advised the same way
//     (the tail past the last whole page keeps 4 KiB pages: a huge page there would be mostly unused).
// Why huge pages: Linux's usual THP mode is `madvise`, so without the hint weights sit on 4 KiB pages, and a
// decode step streams every weight once: the hardware prefetcher restarts at every 4 KiB page and each page
// costs a table walk. Measured on Zen 4 (one thread, weights cold): a 896x896 int4 layer took 38 µs on 4 KiB
// pages and 22 µs on a huge page. Why not 2 MiB-aligned malloc blocks: they left holes in malloc's heap
// (+27 MiB peak RSS on Qwen2.5-0.5B). Where THP is off the hint is a no-op.
//
// Arena chunks are returned to the system when their last buffer is freed; until then a freed buffer's bytes
// stay mapped (loading allocates a model's layers together and frees them together, so little is held).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ark {

class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(size_t n);
  ~AlignedBytes();
  AlignedBytes(AlignedBytes&& o) noexcept;
  AlignedBytes& operator=(AlignedBytes&& o) noexcept;
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  enum class Source : uint8_t { kNone, kMalloc, kArena, kMapping };
  void release();

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // length of the own mapping (kMapping)
  Source source_ = Source::kNone;
};

}  // namespace ark
