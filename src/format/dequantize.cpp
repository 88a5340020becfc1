// Dense reconstruction of a quantized weight: the reference every kernel's dequantization is checked against.
#include "ark/format.h"

namespace ark {

std::vector<float> dequantize(const QuantizedWeight& w) {
  w.validate();
  const int64_t n = w.out_features, k = w.in_features, g = w.num_groups();
  std::vector<float> out(static_cast<size_t>(n * k));
  for (int64_t row = 0; row < n; ++row)
    for (int64_t col = 0; col < k; ++col) {
      const int64_t ng = row * g + w.group_of(col);
      out[row * k + col] =
          w.scales[ng] * static_cast<float>(static_cast<int32_t>(w.codes[row * k + col]) - w.zeros[ng]);
    }
  return out;
}

}  // namespace ark
