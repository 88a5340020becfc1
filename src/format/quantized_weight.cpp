#include "ark/quantized_weight.h"

namespace ark {

void QuantizedWeight::validate() const {
  ARK_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 8, "quantized weight: bits ", bits,
            " is not supported (expected 2, 3, 4 or 8)");
  ARK_CHECK(out_features > 0 && in_features > 0, "quantized weight: shape ", out_features, "x", in_features,
            " must be positive");
  ARK_CHECK(group_size > 0 && group_size <= in_features, "quantized weight: group_size ", group_size,
            " must be in [1, in_features=", in_features, "]");
  const int64_t n = out_features, k = in_features, g = num_groups();
  ARK_CHECK(static_cast<int64_t>(codes.size()) == n * k, "quantized weight: ", codes.size(), " codes, expected ",
            n * k);
  ARK_CHECK(static_cast<int64_t>(scales.size()) == n * g, "quantized weight: ", scales.size(),
            " scales, expected ", n * g);
  ARK_CHECK(static_cast<int64_t>(zeros.size()) == n * g, "quantized weight: ", zeros.size(), " zeros, expected ",
            n * g);
  const int max_code = (1 << bits) - 1;
  for (uint8_t c : codes) ARK_CHECK(c <= max_code, "quantized weight: code ", int(c), " exceeds ", max_code);
  for (int32_t z : zeros)
    ARK_CHECK(z >= 0 && z <= max_code + 1, "quantized weight: zero point ", z, " outside [0, ", max_code + 1, "]");
  if (!g_idx.empty()) {
    ARK_CHECK(static_cast<int64_t>(g_idx.size()) == k, "quantized weight: g_idx has ", g_idx.size(),
              " entries, expected in_features=", k);
    for (int32_t gi : g_idx)
      ARK_CHECK(gi >= 0 && gi < g, "quantized weight: g_idx value ", gi, " outside [0, ", g, ")");
  }
}

}  // namespace ark
