// The AWQ layout (AutoAWQ's GEMM format, which AutoRound exports as auto_round:auto_awq): 4-bit only.
//
//   qweight I32 [K, N/8]: row k, word c holds output channels 8c..8c+7 of input channel k, nibble p (bits
//   4p..4p+3)
//                         holding channel 8c + kAwqOrder[p]. The interleave lets AWQ's kernels unpack two
//                         channels per shift into fp16 pairs.
//   qzeros  I32 [G, N/8]: the zero points of group g in the same order, stored as they are (no minus one).
#include <algorithm>

#include "format/codec_internal.h"

namespace ark::format_detail {
namespace {

// Unpacks rows of N/8 interleaved words into `out[j * out_stride + row]` for every channel j.
void unpack_rows(const uint32_t* words, int64_t rows, int64_t n, int64_t out_stride, uint8_t* codes8,
                 int32_t* codes32) {
  const int64_t cols = n / 8;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t word = words[r * cols + c];
      for (int p = 0; p < 8; ++p) {
        const int64_t j = 8 * c + kAwqOrder[p];
        const uint32_t v = (word >> (4 * p)) & 0xFu;
        if (codes8) codes8[j * out_stride + r] = static_cast<uint8_t>(v);
        if (codes32) codes32[j * out_stride + r] = static_cast<int32_t>(v);
      }
    }
  }
}

template <typename T>
Tensor pack_rows(const T* values, int64_t rows, int64_t n, int64_t in_stride) {
  const int64_t cols = n / 8;
  Tensor t(DType::I32, {rows, cols});
  auto* words = t.as<uint32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      uint32_t word = 0;
      for (int p = 0; p < 8; ++p)
        word |= static_cast<uint32_t>(values[(8 * c + kAwqOrder[p]) * in_stride + r]) << (4 * p);
      words[r * cols + c] = word;
    }
  }
  return t;
}

}  // namespace

void decode_awq_codes(const TensorView& qweight, int64_t k, int64_t n, uint8_t* codes) {
  unpack_rows(qweight.as<uint32_t>(), k, n, k, codes, nullptr);
}

void decode_awq_zeros(const TensorView& qzeros, int64_t g, int64_t n, int32_t* zeros) {
  unpack_rows(qzeros.as<uint32_t>(), g, n, g, nullptr, zeros);
}

Tensor encode_awq_codes(const QuantizedWeight& w) {
  return pack_rows(w.codes.data(), w.in_features, w.out_features, w.in_features);
}

Tensor encode_awq_zeros(const QuantizedWeight& w) {
  return pack_rows(w.zeros.data(), w.num_groups(), w.out_features, w.num_groups());
}

}  // namespace ark::format_detail
