// Pieces shared by the layout codecs (gptq_codec.cpp, awq_codec.cpp) and the public decode/encode
// (codec.cpp). Shapes and dtypes are validated in codec.cpp before any of these run, so they index without
// checking.
#pragma once

#include <cstdint>

#include "ark/format.h"
#include "ark/tensor.h"

namespace ark::format_detail {

// GPTQ: qweight I32 [K*bits/32, N], packed along K; qzeros I32 [G, N*bits/32], packed along N.
void decode_gptq_codes(const TensorView& qweight, int bits, int64_t k, int64_t n, uint8_t* codes);
void decode_gptq_zeros(const TensorView& qzeros, int bits, bool v1, int64_t g, int64_t n, int32_t* zeros);
Tensor encode_gptq_codes(const QuantizedWeight& w);
Tensor encode_gptq_zeros(const QuantizedWeight& w, bool v1, GptqV1ZeroOfZero zero_of_zero);

// AWQ: qweight I32 [K, N/8] and qzeros I32 [G, N/8], nibble p of a word holding column kAwqOrder[p] of its 8.
inline constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
void decode_awq_codes(const TensorView& qweight, int64_t k, int64_t n, uint8_t* codes);
void decode_awq_zeros(const TensorView& qzeros, int64_t g, int64_t n, int32_t* zeros);
Tensor encode_awq_codes(const QuantizedWeight& w);
Tensor encode_awq_zeros(const QuantizedWeight& w);

// Rounds an fp32 value to a scale dtype (F16, BF16: nearest even, as torch does; F32: unchanged) and back.
float round_to_scale_dtype(float v, DType scale_dtype);

}  // namespace ark::format_detail
