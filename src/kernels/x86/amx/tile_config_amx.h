// The AMX tile configuration (the 64-byte block LDTILECFG reads) and a guard that loads it for one kernel
// call and releases the tiles after, so no tile state outlives the call (a thread may run other code, or
// another kernel with another configuration, next). Include only from units built with AMX flags (internal
// linkage).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace ark::x86 {
namespace {

struct alignas(64) TileConfig {
  uint8_t palette_id = 1;  // palette 1: 8 tiles of up to 16 rows x 64 bytes
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row of tile i
  uint8_t rows[16] = {};    // rows of tile i

  void set(int tile, int rows_, int colsb_) {
    rows[tile] = static_cast<uint8_t>(rows_);
    colsb[tile] = static_cast<uint16_t>(colsb_);
  }
};
static_assert(sizeof(TileConfig) == 64);

class TileScope {
 public:
  explicit TileScope(const TileConfig& cfg) { _tile_loadconfig(&cfg); }
  ~TileScope() { _tile_release(); }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;
};

}  // namespace
}  // namespace ark::x86
