// The reference linear kernel: scalar, reading the packed layout only through its definition (packed_code,
// packed_scale, packed_zero), in both compute modes. It is the last entry of both implementation lists, so
// every problem has a kernel, and the structure every faster kernel follows:
//   exact: y = sum over groups of s * sum_k x[k] * (q[k] - z)
//   int8:  y = sum over groups of s * d * (sum_k q[k] * xq[k] - z * sum_k xq[k])
// Sums are in double here, so the reference is at least as accurate as the fp32 kernels it stands in for.
#include "kernels/dispatch.h"
#include "kernels/linear_output.h"

namespace ark {

namespace {

bool ref_accepts(const LinearProblem&) {
  return true;
}

void ref_run(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end, int64_t tile_begin,
             int64_t tile_end) {
  const int64_t G = w.num_groups;
  const bool int8 = a.xq != nullptr;
  float out[kTileN];
  for (int64_t m = m_begin; m < m_end; ++m) {
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
      const int64_t rows = tile_rows(w, tile);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t n = tile * kTileN + r;
        double y = 0.0;
        for (int64_t g = 0; g < G; ++g) {
          const int64_t kp0 = static_cast<int64_t>(w.group_block_begin[g]) * kBlockK;
          const int64_t kp1 = static_cast<int64_t>(w.group_block_begin[g + 1]) * kBlockK;
          const double s = packed_scale(w, n, g);
          const int z = packed_zero(w, n, g);
          if (int8) {
            int64_t dot = 0;
            for (int64_t kp = kp0; kp < kp1; ++kp) dot += packed_code(w, n, kp) * a.xq[m * a.ldxq + kp];
            const int64_t corrected = dot - static_cast<int64_t>(z) * a.xq_sum[m * G + g];
            y += s * static_cast<double>(a.x_scale[m * G + g]) * static_cast<double>(corrected);
          } else {
            double dot = 0.0;
            for (int64_t kp = kp0; kp < kp1; ++kp)
              dot += static_cast<double>(a.x[m * a.ldx + kp]) * (packed_code(w, n, kp) - z);
            y += s * dot;
          }
        }
        out[r] = static_cast<float>(y);
      }
      store_linear_outputs(a, m, tile * kTileN, rows, out);
    }
  }
}

}  // namespace

extern const LinearImpl kRefLinearImpl = {"ref", ref_accepts, ref_run, 0};

}  // namespace ark
