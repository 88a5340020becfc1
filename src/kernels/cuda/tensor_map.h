// The TMA descriptor of x for the warp-specialized wgmma kernels (wgmma_producer.cuh): their producer loads
// each chunk's x tile with two tensor copies instead of kRows / 8 cp.async per thread.
#pragma once

#include <cuda.h>  // CUtensorMap and its enums (types only: the encoder is looked up in the driver)

#include <cstdint>

namespace ark::cuda {

// Describes x, `rows` rows of `cols` 2-byte elements (bf16: bf16, else fp16) `stride` elements apart, read in
// boxes of 64 elements (128 bytes) x box_rows rows, stored with the 128-byte swizzle the wgmma B operand
// reads (16-byte piece c of box row r at c ^ (r % 8)); elements past cols or rows read as zero. False when
// the driver has no encoder or rejects the description (x not 16-byte aligned, stride not a multiple of 8).
bool encode_x_map(CUtensorMap* map, const void* x, bool bf16, int64_t cols, int64_t rows, int64_t stride,
                  int box_rows);

}  // namespace ark::cuda
