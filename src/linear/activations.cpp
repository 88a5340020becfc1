#include "linear/activations.h"

#include <cmath>
#include <cstring>

namespace ark {

namespace {

template <typename Load>
void gather_rows(const PackedWeight& w, int64_t m0, int64_t m1, float* xf, int64_t ldx, Load load) {
  const int64_t kp = w.k_padded();
  for (int64_t m = m0; m < m1; ++m) {
    float* dst = xf + m * ldx;
    if (w.identity_k) {
      for (int64_t k = 0; k < w.k; ++k) dst[k] = load(m * w.k + k);
    } else {
      for (int64_t i = 0; i < kp; ++i) {
        const int32_t k = w.k_source[i];
        dst[i] = k < 0 ? 0.0f : load(m * w.k + k);
      }
    }
  }
}

}  // namespace

void gather_activation_rows(const PackedWeight& w, const void* x, DType dtype, int64_t m0, int64_t m1,
                            float* xf, int64_t ldx) {
  switch (dtype) {
    case DType::F32: {
      const float* src = static_cast<const float*>(x);
      gather_rows(w, m0, m1, xf, ldx, [src](int64_t i) { return src[i]; });
      break;
    }
    case DType::BF16: {
      const uint16_t* src = static_cast<const uint16_t*>(x);
      gather_rows(w, m0, m1, xf, ldx, [src](int64_t i) { return bf16_to_float(src[i]); });
      break;
    }
    default: {
      const uint16_t* src = static_cast<const uint16_t*>(x);
      gather_rows(w, m0, m1, xf, ldx, [src](int64_t i) { return fp16_to_float(src[i]); });
      break;
    }
  }
}

void quantize_activation_rows_ref(const PackedWeight& w, const float* xf, int64_t ldx, int64_t m0, int64_t m1,
                                  int8_t* xq, int64_t ldxq, float* scale, int32_t* sum) {
  const int64_t G = w.num_groups;
  for (int64_t m = m0; m < m1; ++m) {
    for (int64_t g = 0; g < G; ++g) {
      const int64_t kp0 = static_cast<int64_t>(w.group_block_begin[g]) * kBlockK;
      const int64_t kp1 = static_cast<int64_t>(w.group_block_begin[g + 1]) * kBlockK;
      const float* x = xf + m * ldx;
      float amax = 0.0f;
      for (int64_t i = kp0; i < kp1; ++i) amax = std::fmax(amax, std::fabs(x[i]));
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      int32_t s = 0;
      for (int64_t i = kp0; i < kp1; ++i) {
        const int32_t q = static_cast<int32_t>(std::nearbyint(x[i] * inv));
        xq[m * ldxq + i] = static_cast<int8_t>(q);
        s += q;
      }
      scale[m * G + g] = amax / 127.0f;
      sum[m * G + g] = s;
    }
  }
}

}  // namespace ark
