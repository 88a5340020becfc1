#include "kernels/cuda/tensor_map.h"

#include <cuda_runtime.h>

namespace ark::cuda {
namespace {

// cuTensorMapEncodeTiled through the runtime's driver entry point, so that the library needs no link to
// libcuda. Looked up once; null when the driver predates tensor maps (CUDA 12.0).
using EncodeTiled = decltype(&cuTensorMapEncodeTiled);
EncodeTiled encoder() {
  static const EncodeTiled fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      return EncodeTiled{nullptr};
    return reinterpret_cast<EncodeTiled>(p);
  }();
  return fn;
}

}  // namespace

bool tensor_maps_available() {
  return encoder() != nullptr;
}

bool encode_x_map(CUtensorMap* map, const void* x, bool bf16, int64_t cols, int64_t rows, int64_t stride,
                  int box_rows) {
  const EncodeTiled encode = encoder();
  if (!encode || cols < 1 || rows < 1 || stride < cols || box_rows < 1 || box_rows > 256) return false;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(stride) * 2};  // bytes between rows
  const cuuint32_t box[2] = {64, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  // L2 promotion of 256 bytes: a box row is 128 bytes of a longer row that the next chunk's box continues.
  return encode(map, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2,
                const_cast<void*>(x), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

bool encode_x_maps(XTileMaps* maps, const void* x, bool bf16, int64_t cols, int64_t rows, int64_t stride,
                   int tile_rows) {
  if (!encode_x_map(&maps->full, x, bf16, cols, rows, stride, tile_rows)) return false;
  maps->last = x_tail(rows, tile_rows);
  return maps->last.rows == 0 || encode_x_map(&maps->tail, x, bf16, cols, rows, stride, maps->last.rows);
}

}  // namespace ark::cuda
