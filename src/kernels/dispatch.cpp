#include "kernels/dispatch.h"

#include "linear/activations.h"

namespace ark {

// Declares an implementation defined in another file and yields its address, so adding one is one line here.
#define ARK_LINEAR_IMPL(name)     \
  [] {                            \
    extern const LinearImpl name; \
    return &name;                 \
  }()

// The lists live in namespace ark (not an unnamed one) so ARK_LINEAR_IMPL's block-scope extern declarations
// name ark::<impl>, which is where implementations are defined.

// Decode (M < kernel_switch_threshold), best first; the reference stays last.
static const LinearImpl* const kSmallMImpls[] = {
    ARK_LINEAR_IMPL(kGemvQd8Avx512Vnni),
    ARK_LINEAR_IMPL(kGemvF32Avx512),
    ARK_LINEAR_IMPL(kGemvQd8AvxVnni),
    ARK_LINEAR_IMPL(kGemvQd8Avx2),
    ARK_LINEAR_IMPL(kGemvF32Avx2),
    &kRefLinearImpl,
};

// Prefill GEMM (M >= kernel_switch_threshold), best first; the reference stays last.
static const LinearImpl* const kLargeMImpls[] = {
    ARK_LINEAR_IMPL(kGemmBf16Amx),
    ARK_LINEAR_IMPL(kGemmQd8Amx),
    ARK_LINEAR_IMPL(kGemmBf16Avx512Bf16),
    ARK_LINEAR_IMPL(kGemmQd8Avx512Vnni),
    ARK_LINEAR_IMPL(kGemmF32Avx512),
    ARK_LINEAR_IMPL(kGemmQd8AvxVnni),
    ARK_LINEAR_IMPL(kGemmQd8Avx2),
    ARK_LINEAR_IMPL(kGemmF32Avx2),
    &kRefLinearImpl,
};

namespace {

template <size_t N>
const LinearImpl& first_accepting(const LinearImpl* const (&list)[N], const LinearProblem& p) {
  for (const LinearImpl* impl : list)
    if (impl->accepts(p)) return *impl;
  return kRefLinearImpl;
}

}  // namespace

const LinearImpl& select_linear_impl(Regime regime, const LinearProblem& p) {
  return regime == Regime::kSmallM ? first_accepting(kSmallMImpls, p) : first_accepting(kLargeMImpls, p);
}

QuantizeRowsFn select_quantize_rows(IsaLevel isa) {
  return isa >= IsaLevel::kAvx512 ? quantize_activation_rows_avx512 : quantize_activation_rows_ref;
}

}  // namespace ark
