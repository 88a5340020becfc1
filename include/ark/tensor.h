// Tensors as the library passes them around: a non-owning view (e.g. into a memory-mapped safetensors file) and
// an owning tensor (e.g. produced by an encoder, before it is written).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ark/dtype.h"

namespace ark {

inline int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Row-major, contiguous. Does not own `data`; the owner (a file mapping, a Tensor) must outlive it.
struct TensorView {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(data);
  }
};

// Row-major, contiguous, owning its bytes.
struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;

  Tensor() = default;
  Tensor(DType t, std::vector<int64_t> s) : dtype(t), shape(std::move(s)) {
    bytes.resize(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype));
  }
  int64_t numel() const { return shape_numel(shape); }
  TensorView view() const { return TensorView{dtype, shape, bytes.data()}; }
  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(bytes.data());
  }
  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(bytes.data());
  }
};

}  // namespace ark
