// Round-to-nearest quantization, matching AutoRound's untuned path (iters=0, disable_opt_rtn=True: its
// "int_sym" / "int_asym" data types with no rounding offset and min/max scale 1). The formulas are stated in
// format.h; what matters for bit-exactness is the order of roundings, which this file keeps: the scale is
// computed in fp32, rounded to the scale dtype, clamped to a small threshold, and only then used for zeros
// and codes.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ark/format.h"
#include "format/codec_internal.h"

namespace ark {
namespace {

// torch.round: half to even (the default floating-point rounding mode).
float round_even(float v) {
  return std::nearbyint(v);
}

// AutoRound clamps scales away from zero (q_scale_thresh) so that a constant-zero group does not divide by
// zero; it uses 1e-8 when scales are kept in fp32 and 1e-5 otherwise, and the clamp happens in the scale
// dtype.
float scale_threshold(DType scale_dtype) {
  return format_detail::round_to_scale_dtype(scale_dtype == DType::F32 ? 1e-8f : 1e-5f, scale_dtype);
}

}  // namespace

QuantizedWeight quantize_rtn(const float* w, int64_t n, int64_t k, const QuantScheme& scheme,
                             const int32_t* perm, DType scale_dtype) {
  ARK_CHECK(w != nullptr, "quantize_rtn: weight pointer is null");
  ARK_CHECK(n > 0 && k > 0, "quantize_rtn: shape ", n, "x", k, " must be positive");
  ARK_CHECK(scheme.bits == 2 || scheme.bits == 3 || scheme.bits == 4 || scheme.bits == 8,
            "quantize_rtn: bits ", scheme.bits, " is not supported (expected 2, 3, 4 or 8)");
  ARK_CHECK(scheme.group_size == -1 || (scheme.group_size >= 1 && scheme.group_size <= k),
            "quantize_rtn: group_size ", scheme.group_size, " must be -1 or in [1, in_features=", k, "]");
  ARK_CHECK(scale_dtype == DType::F16 || scale_dtype == DType::BF16 || scale_dtype == DType::F32,
            "quantize_rtn: scale dtype ", dtype_name(scale_dtype),
            " is not supported (expected F16, BF16 or F32)");

  QuantizedWeight q;
  q.out_features = n;
  q.in_features = k;
  q.bits = scheme.bits;
  q.group_size = scheme.group_size == -1 ? k : scheme.group_size;
  q.sym = scheme.sym;
  const int64_t gs = q.group_size, g = q.num_groups();

  // order[i] = the input channel quantized i-th; groups are runs of gs along it.
  std::vector<int32_t> order(static_cast<size_t>(k));
  if (perm) {
    std::vector<uint8_t> seen(static_cast<size_t>(k), 0);
    for (int64_t i = 0; i < k; ++i) {
      ARK_CHECK(perm[i] >= 0 && perm[i] < k && !seen[perm[i]],
                "quantize_rtn: act_order_perm is not a "
                "permutation of [0, ",
                k, "): entry ", i, " is ", perm[i], " (out of range or repeated)");
      seen[perm[i]] = 1;
      order[i] = perm[i];
    }
    q.g_idx.resize(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) q.g_idx[order[i]] = static_cast<int32_t>(i / gs);
  } else {
    for (int64_t i = 0; i < k; ++i) order[i] = static_cast<int32_t>(i);
  }

  for (int64_t i = 0; i < n * k; ++i)
    ARK_CHECK(std::isfinite(w[i]), "quantize_rtn: weight [", i / k, ", ", i % k, "] is ", w[i],
              " (expected a finite value)");

  q.codes.resize(static_cast<size_t>(n * k));
  q.scales.resize(static_cast<size_t>(n * g));
  q.zeros.resize(static_cast<size_t>(n * g));
  const float thresh = scale_threshold(scale_dtype);
  const int max_code = (1 << scheme.bits) - 1;
  const int half = 1 << (scheme.bits - 1);

  for (int64_t row = 0; row < n; ++row) {
    const float* wr = w + row * k;
    for (int64_t gi = 0; gi < g; ++gi) {
      const int64_t begin = gi * gs, end = std::min(k, begin + gs);
      // Both extremes are clamped through zero, so a group's range always contains 0 (and padding the last
      // group with zeros, as AutoRound does, changes nothing).
      float lo = 0.0f, hi = 0.0f;
      for (int64_t i = begin; i < end; ++i) {
        lo = std::min(lo, wr[order[i]]);
        hi = std::max(hi, wr[order[i]]);
      }
      float scale;
      int32_t zero;
      if (scheme.sym) {
        // The larger extreme maps to -2^(b-1) (code 0), the one value the signed range has to spare; when the
        // positive side is larger (or equal) that takes a negative scale.
        const float m = (hi < -lo) ? -lo : -hi;
        scale = format_detail::round_to_scale_dtype(m / static_cast<float>(half), scale_dtype);
        scale = scale < 0.0f ? std::min(scale, -thresh) : std::max(scale, thresh);
        zero = half;
      } else {
        scale = format_detail::round_to_scale_dtype((hi - lo) / static_cast<float>(max_code), scale_dtype);
        scale = std::max(scale, thresh);
        // AutoRound leaves this unclamped; it can only leave [0, 2^b-1] for subnormal fp16 scales, where
        // storing it would corrupt the neighbouring field, so it is clamped here.
        zero = static_cast<int32_t>(std::clamp(round_even(-lo / scale), 0.0f, static_cast<float>(max_code)));
      }
      q.scales[row * g + gi] = scale;
      q.zeros[row * g + gi] = zero;
      for (int64_t i = begin; i < end; ++i) {
        const int64_t col = order[i];
        float v = round_even(wr[col] / scale);
        if (scheme.sym) v = std::clamp(v, static_cast<float>(-half), static_cast<float>(half - 1));
        v = std::clamp(v + static_cast<float>(scheme.sym ? half : zero), 0.0f, static_cast<float>(max_code));
        q.codes[row * k + col] = static_cast<uint8_t>(v);
      }
    }
  }
  return q;
}

QuantizedWeight quantize_rtn(const TensorView& w, const QuantScheme& scheme, const int32_t* perm,
                             DType scale_dtype) {
  ARK_CHECK(w.shape.size() == 2, "quantize_rtn: weight has ", w.shape.size(),
            " dimensions, expected 2 ([out_features, in_features])");
  ARK_CHECK(w.dtype == DType::F32 || w.dtype == DType::F16 || w.dtype == DType::BF16,
            "quantize_rtn: weight dtype ", dtype_name(w.dtype),
            " is not supported (expected F32, F16 or BF16)");
  ARK_CHECK(w.data != nullptr, "quantize_rtn: weight has no data");
  const int64_t n = w.shape[0], k = w.shape[1];
  if (w.dtype == DType::F32) return quantize_rtn(w.as<float>(), n, k, scheme, perm, scale_dtype);
  std::vector<float> f(static_cast<size_t>(n * k));
  const auto* h = w.as<uint16_t>();
  for (size_t i = 0; i < f.size(); ++i)
    f[i] = w.dtype == DType::F16 ? fp16_to_float(h[i]) : bf16_to_float(h[i]);
  return quantize_rtn(f.data(), n, k, scheme, perm, scale_dtype);
}

}  // namespace ark
