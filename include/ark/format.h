// On-disk integer weight layouts that AutoRound exports, and the round-to-nearest quantizer that makes them.
//
// A checkpoint stores one quantized Linear layer as up to four tensors (qweight, qzeros, scales, g_idx); this
// header converts between them and the canonical ark::QuantizedWeight (ark/quantized_weight.h), bit-exactly
// in both directions. docs/FORMATS.md states each layout with a worked example. In short (N = out_features,
// K = in_features, b = bits, G = number of groups):
//
//   layout          qweight              qzeros               scales        zeros stored as
//   kGptqV1         I32 [K*b/32, N]      I32 [G, N*b/32]      [G, N]        zero - 1 (borrowing, see below)
//   kGptqV2         I32 [K*b/32, N]      I32 [G, N*b/32]      [G, N]        zero
//   kAwq (b = 4)    I32 [K, N/8]         I32 [G, N/8]         [G, N]        zero
//
//   scales may be F16, BF16 or F32; g_idx, when present, is I32 [K] with values in [0, G).
//
// Public API:
//   decode(scheme, in_features, out_features, qweight, qzeros, scales, g_idx) -> QuantizedWeight
//   encode(weight, layout, scale_dtype, zero_of_zero)                           -> PackedTensors
//   quantize_rtn(w, N, K, scheme, act_order_perm, scale_dtype)                  -> QuantizedWeight
//   quantize_rtn(view [N, K] F32/F16/BF16, scheme, act_order_perm, scale_dtype) -> QuantizedWeight
//   packed_shapes(scheme, in_features, out_features)                            -> PackedShapes
//   dequantize(weight)                                                          -> std::vector<float> [N][K]
//   layout_name(layout)                                                         -> "gptq-v1" | "gptq-v2" |
//   "awq"
//
// Every function validates its arguments and throws ark::Error naming the tensor or argument, what it got and
// what was expected; none aborts.
//
// GPTQ-v1 borrow: the exporter writes (zero - 1) as an unsigned 32-bit value shifted into the word and ORed,
// so a zero of 0 (stored -1 = 0xFFFFFFFF) sets every bit from its field up to bit 31 of that word. Readers
// (and we) take each field as ((word >> shift) & mask) + 1, so the fields above such a one decode as 2^bits.
// decode() reproduces exactly that; encode() reproduces exactly the exporter's words, so encode(decode(x)) ==
// x for any file, and decode(encode(w)) == w unless w has a zero of 0 below another field of the same word.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "ark/dtype.h"
#include "ark/quantized_weight.h"
#include "ark/tensor.h"

namespace ark {

// The tensors of one quantized layer as a checkpoint stores them (the bias is not the format's concern).
struct PackedTensors {
  Tensor qweight;
  Tensor qzeros;
  Tensor scales;
  std::optional<Tensor> g_idx;  // present when the weight has g_idx
};

// Shapes a checkpoint must have for a scheme (dtypes: I32 for qweight/qzeros/g_idx; scales F16, BF16 or F32).
struct PackedShapes {
  std::vector<int64_t> qweight;
  std::vector<int64_t> qzeros;
  std::vector<int64_t> scales;
  std::vector<int64_t> g_idx;  // {K}
};

std::string_view layout_name(PackingLayout layout);

// Throws ark::Error when the scheme cannot describe a layer of this size: bits not in {2,3,4,8}; group_size
// not -1 and not in [1, K]; GPTQ with K not a multiple of 32 (3-bit) or 32/bits; GPTQ with N*bits not a
// multiple of 32 (3-bit: N a multiple of 32, as the exporter's qzeros packing assumes); AWQ with bits != 4 or
// N % 8 != 0. AWQ's qweight packs along N, so any K works there.
PackedShapes packed_shapes(const QuantScheme& scheme, int64_t in_features, int64_t out_features);

// Reads a layer's tensors into the canonical form. Every shape and dtype is checked against the scheme; g_idx
// may be null (then groups are k / group_size); scales are converted exactly to fp32. A stored g_idx is kept
// even when it is the trivial k / group_size (QuantizedWeight::has_act_order tells the two apart).
QuantizedWeight decode(const QuantScheme& scheme, int64_t in_features, int64_t out_features,
                       const TensorView& qweight, const TensorView& qzeros, const TensorView& scales,
                       const TensorView* g_idx = nullptr);

// What encode() writes for a zero point of 0 in the GPTQ-v1 layout, which stores zero - 1 and so cannot hold
// it.
enum class GptqV1ZeroOfZero : uint8_t {
  kBorrow,  // store -1 as 0xFFFFFFFF ORed in at the field (AutoGPTQ and AutoRound before its clamp, see
            // FORMATS.md)
  kClamp,   // store 0, which reads back as zero 1 (AutoRound 0.16's exporter clamps zero - 1 to [0, 2^bits -
            // 1])
};

// Writes the canonical form in a layout, bit-exact with AutoRound's exporter. scale_dtype is F16 (what the
// exporter writes), BF16 or F32; fp32 scales are rounded to it to nearest even, as torch's
// .half()/.bfloat16() do. Zeros must fit the stored field: [0, 2^bits] for v1 (2^bits only arises from a
// decoded borrow), [0, 2^bits) otherwise.
// AWQ has no g_idx: encoding a weight with real act-order as AWQ throws, and a trivial g_idx is left out.
PackedTensors encode(const QuantizedWeight& weight, PackingLayout layout, DType scale_dtype = DType::F16,
                     GptqV1ZeroOfZero zero_of_zero = GptqV1ZeroOfZero::kBorrow);

// Round-to-nearest quantization as AutoRound does it with iters=0 and disable_opt_rtn=True (its data types
// "int_sym" / "int_asym" with no tuning), per group of scheme.group_size input channels of each output row
// (lo = min(w_min, 0), hi = max(w_max, 0), b = bits, t = 1e-5, or 1e-8 when scale_dtype is F32):
//   asym: scale = to_scale_dtype((hi - lo) / (2^b - 1)), clamped to >= t; zero = round(-lo / scale);
//         q = clamp(round(w / scale) + zero, 0, 2^b - 1)
//   sym:  m = (-lo > hi) ? -lo : -hi (the larger extreme, sign flipped when it is the positive one);
//         scale = to_scale_dtype(m / 2^(b-1)), magnitude clamped to >= t keeping its sign; zero = 2^(b-1);
//         q = clamp(round(w / scale), -2^(b-1), 2^(b-1) - 1) + zero
//         (so the larger-magnitude extreme lands on code 0, and scales are often negative)
// round is half to even (torch.round); arithmetic is fp32 (AutoRound computes in the layer's dtype: identical
// for fp32 layers, may differ in rare ties for 16-bit ones). Scales are rounded to scale_dtype before the
// codes are computed, so decode(encode(q, layout, scale_dtype)) gives back exactly the scales the codes were
// made with. An all-zero group gets scale t and codes equal to its zero; asym then has zero 0, which GPTQ-v1
// cannot store without borrowing (see above). act_order_perm (optional, a permutation of [0, K)): input
// channel perm[i] is the i-th in quantization order, so group j holds channels perm[j*g .. j*g+g) and
// g_idx[perm[i]] = i / group_size. w is row-major [N][K].
QuantizedWeight quantize_rtn(const float* w, int64_t out_features, int64_t in_features,
                             const QuantScheme& scheme, const int32_t* act_order_perm = nullptr,
                             DType scale_dtype = DType::F16);
// The same for a [N, K] tensor of F32, F16 or BF16 (converted exactly to fp32 first).
QuantizedWeight quantize_rtn(const TensorView& w, const QuantScheme& scheme,
                             const int32_t* act_order_perm = nullptr, DType scale_dtype = DType::F16);

// The dense fp32 weight [N][K] the quantized one stands for (scale * (code - zero), computed in fp32).
std::vector<float> dequantize(const QuantizedWeight& weight);

}  // namespace ark
