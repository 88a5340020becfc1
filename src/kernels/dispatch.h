// Kernel selection for QuantLinear: ordered implementation lists (oneDNN's pattern). At post_init the layer
// walks a list and keeps the first implementation whose accepts() says yes, as a plain function pointer; the
// reference is last and accepts everything, so a choice always exists. There is one list per regime:
//   small-M (decode, M < kernel_switch_threshold): stream each packed byte once;
//   large-M (prefill): blocked GEMM reusing dequantized tiles across rows.
// To add an implementation: define `extern const LinearImpl kYourImpl = {...};` in your own kernel file
// (under src/kernels/x86/<isa>/ for ISA code) and add one line `ARK_LINEAR_IMPL(kYourImpl),` to the list in
// dispatch.cpp, best first.
#pragma once

#include <cstdint>
#include <string_view>

#include "ark/dtype.h"
#include "ark/quant_linear.h"
#include "kernels/cpu_features.h"
#include "linear/packed_weight.h"

namespace ark {

// What a kernel is asked to do, known at post_init.
struct LinearProblem {
  int bits = 4;
  int64_t n = 0, k = 0, num_groups = 0;
  bool scales_f16 = true;
  ComputeMode mode = ComputeMode::kExact;  // resolved: kExact or kInt8, never kAuto
  IsaLevel isa = IsaLevel::kRef;           // highest level the kernel may use
  bool avx_vnni = false;                   // the CPU has AVX-VNNI (VEX int8 dot products) and isa >= kAvx2
};

// One forward's operands, prepared by QuantLinear before the kernels run (activations already in packed-K
// order, padding zeroed). Kernels read, never write, past nothing: they write exactly y[m][n] for their rows.
struct LinearArgs {
  int64_t m = 0;
  // exact mode: fp32 activations [m][ldx], packed-K order, positions past k_padded unused.
  const float* x = nullptr;
  int64_t ldx = 0;
  // exact mode, for kernels with LinearImpl::prepare_bf16: the same rows rounded to bf16 [m][ldxb] by it, or
  // null (a caller that prepares only fp32 rows; the kernel then rounds them itself).
  const uint16_t* xb = nullptr;
  int64_t ldxb = 0;
  // int8 mode: xq[m][ldxq] = round(x / x_scale) in [-127, 127], packed-K order; per row and group:
  // x_scale[m * G + g] = max|x| / 127 over the group (0 for an all-zero group), xq_sum[m * G + g] = sum of
  // xq.
  const int8_t* xq = nullptr;
  int64_t ldxq = 0;
  const float* x_scale = nullptr;
  const int32_t* xq_sum = nullptr;
  // output rows y[m][ldy] of dtype y_dtype (F32, BF16 or F16); bias (fp32, n values) is added if not null.
  void* y = nullptr;
  int64_t ldy = 0;
  DType y_dtype = DType::F32;
  const float* bias = nullptr;
  // Kernels with LinearImpl::scratch_bytes: scratch_bytes(w) bytes, 64-byte aligned, that this run() call
  // alone uses (the caller's per-call, per-thread slice), or null: the kernel then works in its stack budget
  // and gives the same outputs, slower.
  void* scratch = nullptr;
};

// Computes rows [m_begin, m_end) x N-tiles [tile_begin, tile_end). Called concurrently on disjoint ranges; no
// allocation, locks or exceptions; stack scratch (keep it under 64 KiB) and LinearArgs::scratch only.
using LinearKernelFn = void (*)(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end,
                                int64_t tile_begin, int64_t tile_end);

// The LinearKernelFn of a kernel written as a template over the bit width: picks the instance for the packed
// weight's bits (2, 3, 4 or 8) once per call, e.g. run_for_bits<run<2>, run<3>, run<4>, run<8>>.
template <LinearKernelFn kRun2, LinearKernelFn kRun3, LinearKernelFn kRun4, LinearKernelFn kRun8>
void run_for_bits(const PackedWeight& w, const LinearArgs& a, int64_t m_begin, int64_t m_end,
                  int64_t tile_begin, int64_t tile_end) {
  const LinearKernelFn run = w.bits == 2 ? kRun2 : w.bits == 3 ? kRun3 : w.bits == 4 ? kRun4 : kRun8;
  run(w, a, m_begin, m_end, tile_begin, tile_end);
}

struct LinearImpl {
  const char* name;  // XNNPACK-style: gemv_qd8_w4_avx512vnni, gemm_f32_wN_avx512, ref, ...
  bool (*accepts)(const LinearProblem& p);
  LinearKernelFn run;
  // Rows per work item the layer hands one thread (0: all rows at once, as decode kernels want: each weight
  // byte is streamed once for every row). The layer splits N-tiles across threads for each row block.
  int64_t m_block;
  // Optional, exact-mode bf16 kernels: rounds fp32 rows [m0, m1) x [0, k) of x to bf16 into xb, once per
  // call, so the kernel reads half the bytes and converts nothing per panel (LinearArgs::xb).
  void (*prepare_bf16)(const float* x, int64_t ldx, int64_t m0, int64_t m1, int64_t k, uint16_t* xb,
                       int64_t ldxb) = nullptr;
  // Optional: bytes of heap scratch one run() call may use beyond its stack (LinearArgs::scratch), for any
  // work item of up to m_block rows; bounded (the kernel's header says by what). The caller allocates it per
  // forward, one slice per thread that runs the kernel at once, so concurrent forwards share nothing.
  size_t (*scratch_bytes)(const PackedWeight& w) = nullptr;
};

enum class Regime : uint8_t { kSmallM, kLargeM };

// First implementation of the regime's list that accepts p (the reference at worst).
const LinearImpl& select_linear_impl(Regime regime, const LinearProblem& p);

// The reference: scalar, reads the layout through its definition; accepts every problem in both modes.
extern const LinearImpl kRefLinearImpl;

}  // namespace ark
