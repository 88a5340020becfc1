// Zero-initialised, 64-byte aligned byte storage for weights that every decode step streams from DRAM.
//
// Buffers of 2 MiB and more start on a 2 MiB boundary, and their whole 2 MiB pages are advised for
// transparent huge pages (MADV_HUGEPAGE, before the first touch) where the kernel allows them. Why: Linux's
// default THP mode on servers is `madvise`, so without the hint a packed layer sits on 4 KiB pages, and a
// decode step that streams all of a model's weights walks the page tables once per 4 KiB (Qwen2.5-0.5B:
// ~110,000 walks per token). Where THP is off the hint is a no-op and the buffer is an ordinary one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace ark {

class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(size_t n);
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t[], Free> data_;
  size_t size_ = 0;
};

}  // namespace ark
