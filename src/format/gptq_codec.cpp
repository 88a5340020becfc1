// The GPTQ layout (AutoGPTQ's, which AutoRound exports as auto_round:auto_gptq "v1" and auto_round "v2").
//
//   qweight I32 [K*bits/32, N]: column n is one bit stream (bit_stream.h) of the codes q[n][0..K), running
//   down
//                               the rows, so row r holds input channels [32r/bits, 32(r+1)/bits).
//   qzeros  I32 [G, N*bits/32]: row g is one bit stream of the zero points of group g, across output
//   channels. v1 stores zero - 1 in each field and reads ((word >> shift) & mask) + 1; v2 stores the zero as
//   it is.
#include <algorithm>

#include "format/bit_stream.h"
#include "format/codec_internal.h"

namespace ark::format_detail {

void decode_gptq_codes(const TensorView& qweight, int bits, int64_t k, int64_t n, uint8_t* codes) {
  const auto* words = qweight.as<uint32_t>();
  // Walk a block of 32 input channels (`bits` rows) at a time for all columns: the reads stay on a few rows
  // and each column's 32 codes are written contiguously.
  for (int64_t k0 = 0; k0 < k; k0 += 32) {
    const uint32_t* block = words + (k0 / 32) * bits * n;
    const int64_t block_len = std::min<int64_t>(32, k - k0);  // 2/4/8-bit K may end inside a block
    for (int64_t j = 0; j < n; ++j) {
      uint8_t* out = codes + j * k + k0;
      for (int64_t i = 0; i < block_len; ++i)
        out[i] = static_cast<uint8_t>(read_field(block + j, n, i, bits));
    }
  }
}

void decode_gptq_zeros(const TensorView& qzeros, int bits, bool v1, int64_t g, int64_t n, int32_t* zeros) {
  const auto* words = qzeros.as<uint32_t>();
  const int64_t row_words = n * bits / 32;
  const int32_t offset = v1 ? 1 : 0;
  for (int64_t gi = 0; gi < g; ++gi)
    for (int64_t j = 0; j < n; ++j)
      zeros[j * g + gi] = static_cast<int32_t>(read_field(words + gi * row_words, 1, j, bits)) + offset;
}

Tensor encode_gptq_codes(const QuantizedWeight& w) {
  const int64_t k = w.in_features, n = w.out_features;
  const int bits = w.bits;
  Tensor t(DType::I32, {k * bits / 32, n});
  auto* words = t.as<uint32_t>();
  std::fill(words, words + t.numel(), 0u);
  for (int64_t k0 = 0; k0 < k; k0 += 32) {
    uint32_t* block = words + (k0 / 32) * bits * n;
    const int64_t block_len = std::min<int64_t>(32, k - k0);
    for (int64_t j = 0; j < n; ++j) {
      const uint8_t* in = w.codes.data() + j * k + k0;
      for (int64_t i = 0; i < block_len; ++i) or_field(block + j, n, i, bits, in[i]);
    }
  }
  return t;
}

Tensor encode_gptq_zeros(const QuantizedWeight& w, bool v1, GptqV1ZeroOfZero zero_of_zero) {
  const int64_t n = w.out_features, g = w.num_groups();
  const int bits = w.bits;
  const int64_t row_words = n * bits / 32;
  Tensor t(DType::I32, {g, row_words});
  auto* words = t.as<uint32_t>();
  std::fill(words, words + t.numel(), 0u);
  for (int64_t gi = 0; gi < g; ++gi) {
    for (int64_t j = 0; j < n; ++j) {
      int32_t stored = w.zeros[j * g + gi] - (v1 ? 1 : 0);
      if (stored < 0 && zero_of_zero == GptqV1ZeroOfZero::kClamp) stored = 0;
      // A stored -1 becomes 0xFFFFFFFF, exactly as numpy's astype(uint32) makes it in the exporters.
      or_field(words + gi * row_words, 1, j, bits, static_cast<uint32_t>(stored));
    }
  }
  return t;
}

}  // namespace ark::format_detail
