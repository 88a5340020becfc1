// Unquantized matrices (dense_matrix.h).
#include "runtime/dense_matrix.h"

#include <algorithm>
#include <cstring>

#include "ark/error.h"
#include "ark/thread_pool.h"
#include "runtime/vec_ops.h"

namespace ark::runtime {

namespace {

bool is_float_dtype(DType t) {
  return t == DType::F32 || t == DType::BF16 || t == DType::F16;
}

// Rows per task with several tokens: enough work per task to amortise the hand-out, many tasks so two to many
// threads balance, and few enough bytes that a task's rows stay in L2 while every token uses them.
constexpr int64_t kRowsPerTask = 128;
// With one token (decode) each row is read once, so a task is a stretch of one memory stream: longer tasks
// restart the hardware prefetcher less often. The bf16 lm_head of Qwen2.5-0.5B (151936 x 896) streamed at
// 42-50 GB/s in 128-row (229 KiB) tasks and 49-57 in 1024-row (1.8 MiB) ones when the probe read 46-56 (2
// threads, this Zen 4 VM; equal when the host's memory is busy). Still at least 4 tasks per thread.
constexpr size_t kDecodeTaskBytes = size_t{2} << 20;

}  // namespace

DenseMatrix DenseMatrix::copy_from(const TensorView& view, const std::string& name) {
  ARK_CHECK(is_float_dtype(view.dtype), "tensor '", name, "': dtype ", dtype_name(view.dtype),
            " is not supported for an unquantized weight (expected F32, BF16 or F16)");
  ARK_CHECK(view.shape.size() == 2, "tensor '", name, "': expected 2 dimensions, got ", view.shape.size());
  DenseMatrix m;
  m.dtype_ = view.dtype;
  m.rows_ = view.shape[0];
  m.cols_ = view.shape[1];
  auto bytes = std::make_shared<AlignedBytes>(view.nbytes());
  std::memcpy(bytes->data(), view.data, view.nbytes());
  m.data_ = std::move(bytes);
  return m;
}

void DenseMatrix::row_to_f32(int64_t r, float* out) const {
  widen_to_f32(row(r), dtype_, cols_, out);
}

void DenseMatrix::matmul(const float* x, int64_t M, float* y) const {
  ThreadPool& pool = default_thread_pool();
  int64_t rows_per_task = kRowsPerTask;
  if (M == 1) {
    const int64_t row_bytes = cols_ * static_cast<int64_t>(dtype_size(dtype_));
    const int64_t by_bytes = static_cast<int64_t>(kDecodeTaskBytes) / std::max<int64_t>(1, row_bytes);
    const int64_t by_balance = rows_ / (4 * static_cast<int64_t>(pool.num_threads()));
    rows_per_task = std::max(kRowsPerTask, std::min(by_bytes, by_balance));
  }
  const int64_t tasks = (rows_ + rows_per_task - 1) / rows_per_task;
  pool.parallel_for(tasks, [&](int64_t t) {
    const int64_t r0 = t * rows_per_task, r1 = std::min(rows_, r0 + rows_per_task);
    for (int64_t m = 0; m < M; ++m) {
      float* out = y + m * rows_;
      dot_weight_rows(x + m * cols_, row(r0), dtype_, r1 - r0, cols_, out + r0);
      if (!bias_.empty())
        for (int64_t r = r0; r < r1; ++r) out[r] += bias_[r];
    }
  });
}

std::vector<float> copy_vector_f32(const TensorView& view, int64_t expected_len, const std::string& name) {
  ARK_CHECK(is_float_dtype(view.dtype), "tensor '", name, "': dtype ", dtype_name(view.dtype),
            " is not supported (expected F32, BF16 or F16)");
  ARK_CHECK(view.shape.size() == 1 && view.shape[0] == expected_len, "tensor '", name, "': expected shape [",
            expected_len, "]");
  std::vector<float> out(expected_len);
  widen_to_f32(view.data, view.dtype, expected_len, out.data());
  return out;
}

}  // namespace ark::runtime
