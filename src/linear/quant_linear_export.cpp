// Packed layer -> canonical weight, the inverse of pack_weight (packed_weight.h documents the layout). Used
// to save a post_init'ed layer back in its checkpoint layout: the packed copy is the only resident one, and
// the on-disk tensors are rebuilt on demand.
#include "linear/quant_linear_export.h"

#include "ark/error.h"
#include "ark/quant_linear.h"
#include "linear/quant_linear_impl.h"

namespace ark {

QuantizedWeight unpack_weight(const PackedWeight& p, int64_t group_size, bool sym) {
  ARK_CHECK(group_size > 0, "unpack_weight: group_size ", group_size, " must be positive (resolved)");
  ARK_CHECK(p.num_groups == (p.k + group_size - 1) / group_size, "unpack_weight: packed weight has ",
            p.num_groups, " groups, group_size ", group_size, " over K=", p.k, " gives ",
            (p.k + group_size - 1) / group_size);
  QuantizedWeight w;
  w.out_features = p.n;
  w.in_features = p.k;
  w.bits = p.bits;
  w.group_size = group_size;
  w.sym = sym;
  const int64_t N = p.n, K = p.k, G = p.num_groups;
  w.codes.assign(static_cast<size_t>(N * K), 0);
  w.scales.resize(static_cast<size_t>(N * G));
  w.zeros.resize(static_cast<size_t>(N * G));

  // Each packed position's group follows from the k-block ranges; its source channel from k_source.
  std::vector<int32_t> g_idx(static_cast<size_t>(K), -1);
  std::vector<int32_t> kp_of_k(static_cast<size_t>(K), -1);
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t kp = int64_t{p.group_block_begin[g]} * kBlockK;
         kp < int64_t{p.group_block_begin[g + 1]} * kBlockK; ++kp) {
      const int32_t k = p.k_source[kp];
      if (k < 0) continue;
      g_idx[k] = static_cast<int32_t>(g);
      kp_of_k[k] = static_cast<int32_t>(kp);
    }
  }
  bool permuted = false;
  for (int64_t k = 0; k < K; ++k) {
    ARK_CHECK(kp_of_k[k] >= 0, "unpack_weight: input channel ", k, " has no packed position");
    permuted |= g_idx[k] != static_cast<int32_t>(k / group_size);
  }
  for (int64_t n = 0; n < N; ++n) {
    uint8_t* row = w.codes.data() + n * K;
    for (int64_t k = 0; k < K; ++k) row[k] = static_cast<uint8_t>(packed_code(p, n, kp_of_k[k]));
    for (int64_t g = 0; g < G; ++g) {
      w.scales[n * G + g] = packed_scale(p, n, g);
      w.zeros[n * G + g] = packed_zero(p, n, g);
    }
  }
  if (permuted) w.g_idx = std::move(g_idx);
  return w;
}

QuantizedWeight QuantLinear::unpack() const {
  ARK_CHECK(impl_->packed_ready, "QuantLinear::unpack: call post_init() first");
  return unpack_weight(impl_->packed, impl_->group_size, impl_->spec.sym);
}

}  // namespace ark
