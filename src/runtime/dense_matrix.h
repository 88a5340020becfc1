// An unquantized weight matrix held in the dtype the checkpoint stores it in (fp32, bf16 or fp16): the
// embedding, an unquantized lm_head, and linears that extra_config leaves unquantized. Keeping bf16 as bf16
// halves the bytes a decode step streams compared with widening to fp32, and widening in registers is exact.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ark/dtype.h"
#include "ark/tensor.h"
#include "common/aligned_bytes.h"

namespace ark::runtime {

class DenseMatrix {
 public:
  DenseMatrix() = default;
  // Copies a [rows, cols] tensor of F32, BF16 or F16 out of the mapping; `name` is for error messages.
  static DenseMatrix copy_from(const TensorView& view, const std::string& name);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  DType dtype() const { return dtype_; }
  size_t bytes() const { return data_ ? data_->size() : 0; }
  const void* row(int64_t r) const {
    return data_->data() + static_cast<size_t>(r) * static_cast<size_t>(cols_) * dtype_size(dtype_);
  }
  // Row r widened to fp32 (the embedding lookup).
  void row_to_f32(int64_t r, float* out) const;

  // y[M][rows] = x[M][cols] · Wᵀ (+ bias when set), spread over the default thread pool.
  void matmul(const float* x, int64_t M, float* y) const;

  void set_bias(std::vector<float> bias) { bias_ = std::move(bias); }
  bool has_bias() const { return !bias_.empty(); }

 private:
  DType dtype_ = DType::F32;
  int64_t rows_ = 0, cols_ = 0;
  // Shared: a tied lm_head is the embedding. AlignedBytes: an lm_head is streamed every decode step, so it
  // gets huge pages like the packed layers.
  std::shared_ptr<const AlignedBytes> data_;
  std::vector<float> bias_;
};

// A 1-D tensor (norm weight, bias) of F32, BF16 or F16 widened to fp32; checks its length.
std::vector<float> copy_vector_f32(const TensorView& view, int64_t expected_len, const std::string& name);

}  // namespace ark::runtime
