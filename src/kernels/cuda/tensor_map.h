// The TMA descriptor of x for the warp-specialized wgmma kernels (wgmma_producer.cuh): their producer loads
// each chunk's x tile with two tensor copies instead of kRows / 8 cp.async per thread.
#pragma once

#include <cuda.h>  // CUtensorMap and its enums (types only: the encoder is looked up in the driver)

#include <climits>
#include <cstdint>

namespace ark::cuda {

// Whether the driver has the tensor-map encoder (CUDA 12.0 on): the warp-specialized wgmma kernels need it.
bool tensor_maps_available();

// Describes x, `rows` rows of `cols` 2-byte elements (bf16: bf16, else fp16) `stride` elements apart, read in
// boxes of 64 elements (128 bytes) x box_rows rows, stored with the 128-byte swizzle the wgmma B operand
// reads (16-byte piece c of box row r at c ^ (r % 8)); elements past cols or rows read as zero. False when
// the driver has no encoder or rejects the description (x not 16-byte aligned, stride not a multiple of 8).
bool encode_x_map(CUtensorMap* map, const void* x, bool bf16, int64_t cols, int64_t rows, int64_t stride,
                  int box_rows);

// The last x-row tile of `rows` rows in tiles of tile_rows when it is part full: its first row and its box's
// rows (the rows left, rounded up to 8); {INT64_MAX, 0} when every tile is whole.
struct XTail {
  int64_t m0 = INT64_MAX;
  int rows = 0;
};
inline XTail x_tail(int64_t rows, int tile_rows) {
  const int64_t left = tile_rows > 0 ? rows % tile_rows : 0;
  if (left == 0) return {};
  return {rows - left, static_cast<int>((left + 7) / 8 * 8)};
}

// What the kernels load x through, a __grid_constant__ parameter: `full`, boxes of a whole x-row tile; for
// the last tile when M leaves it part full (from row last.m0 on), `tail`, boxes of its last.rows rows. Why
// two: a box mostly past M was slow to arrive (the tall form's 256-row box at M = 288 ran 1.6x slower than
// it needed to on the 70B layers, H200), and the shared rows the tail box leaves stale feed only output
// rows past M, which are never written.
struct XTileMaps {
  CUtensorMap full;
  CUtensorMap tail;
  XTail last;
};
// x as encode_x_map describes it, in tiles of tile_rows rows (the tail map where x_tail finds a tail).
bool encode_x_maps(XTileMaps* maps, const void* x, bool bf16, int64_t cols, int64_t rows, int64_t stride,
                   int tile_rows);

}  // namespace ark::cuda
