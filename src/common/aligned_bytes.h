// Zero-initialised, 64-byte aligned byte storage for weights that every decode step streams from DRAM.
//
// Buffers of 2 MiB and more are mapped on their own (anonymous mmap), start on a 2 MiB boundary, and their
// whole 2 MiB pages are advised for transparent huge pages (MADV_HUGEPAGE, before the first touch) where the
// kernel allows them. Why huge pages: Linux's usual THP mode is `madvise`, so without the hint a packed layer
// sits on 4 KiB pages, and a decode step that streams all of a model's weights walks the page tables once per
// 4 KiB (Qwen2.5-0.5B: ~110,000 walks per token). Why their own mapping: 2 MiB-aligned blocks from malloc
// leave up to 2 MiB holes in its heap beside every buffer (measured: +27 MiB peak RSS on Qwen2.5-0.5B). The
// tail past the last whole 2 MiB page keeps 4 KiB pages (a huge page there would be mostly unused). Where
// THP is off the hint is a no-op and the buffer is an ordinary mapping.
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
  void release();

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // length of the own mapping, 0 when data_ came from malloc
};

}  // namespace ark
