// Little-endian bit streams of packed integers, the one idea behind every GPTQ/AWQ word layout.
//
// Values of `bits` bits are laid end to end: value i occupies stream bits [i*bits, (i+1)*bits), and stream
// bit j is bit (j % 32) of word j / 32. For 2, 4 and 8 bits no value crosses a word; for 3 bits 32 values
// fill exactly three words and values 10 and 21 straddle words 0/1 and 1/2. The words of one stream need not
// be adjacent in memory (GPTQ's qweight packs down a column), so every helper takes the distance between
// consecutive words.
#pragma once

#include <cstdint>

namespace ark::format_detail {

// Reads value `index` of a stream whose word w sits at words[w * stride].
inline uint32_t read_field(const uint32_t* words, int64_t stride, int64_t index, int bits) {
  const int64_t bit = index * bits;
  const int64_t w = bit >> 5;
  const int shift = static_cast<int>(bit & 31);
  uint64_t window = words[w * stride];
  if (shift + bits > 32) window |= static_cast<uint64_t>(words[(w + 1) * stride]) << 32;
  return static_cast<uint32_t>(window >> shift) & ((1u << bits) - 1u);
}

// ORs `value` into field `index` the way the exporters do: the value is shifted as an unsigned 32-bit number
// into the word where its field starts (so bits of a value wider than the field, such as 0xFFFFFFFF for a
// GPTQ-v1 zero of 0, land in the higher fields of that word), and only the field's own remaining bits go into
// the next word when the field straddles two words (the exporters mask that part).
inline void or_field(uint32_t* words, int64_t stride, int64_t index, int bits, uint32_t value) {
  const int64_t bit = index * bits;
  const int64_t w = bit >> 5;
  const int shift = static_cast<int>(bit & 31);
  words[w * stride] |= value << shift;
  const int spill = shift + bits - 32;
  if (spill > 0) words[(w + 1) * stride] |= (value >> (32 - shift)) & ((1u << spill) - 1u);
}

}  // namespace ark::format_detail
