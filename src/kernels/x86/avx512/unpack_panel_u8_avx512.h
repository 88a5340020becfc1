// Unpacks one N-tile's k-blocks of the packed layout into an unsigned-byte "quad panel" [quad][kPanelN][4]:
// one 64-byte row holds 4 consecutive codes of 16 columns, which is both the unsigned operand of vpdpbusd
// and, read 8 or 16 rows at a time, an AMX-INT8 B tile. k-block kb0 + b fills quads [8 b, 8 b + 8).
//
// Include only from AVX-512 F/BW units; internal linkage, see unpack_quads_avx512.h.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/x86/avx512/unpack_quads_avx512.h"
#include "linear/packed_weight.h"

namespace ark::x86 {
namespace {

template <int kBits, int kPanelN>
inline void unpack_tile_u8(const PackedWeight& w, int64_t tile, int64_t kb0, int nb, int v, uint8_t* panel) {
  const uint8_t* codes = w.tile_codes(tile);
  for (int b = 0; b < nb; ++b) {
    __m512i quads[8];
    unpack_block_quads_avx512<kBits>(codes + (kb0 + b) * w.block_bytes(), quads);
    for (int q = 0; q < 8; ++q)
      _mm512_store_si512(panel + ((8 * b + q) * kPanelN + v * kTileN) * 4, quads[q]);
  }
}

}  // namespace
}  // namespace ark::x86
