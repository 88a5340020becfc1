// The hand-over primitives of the warp-specialized wgmma kernel (linear_wgmma.cu): mbarriers between the
// producer warpgroup (it issues the copies of a ring stage) and the consumer warpgroups (they dequantize and
// issue the MMAs), and the register reallocation between them. sm_90a only: callers guard with
// __CUDA_ARCH_FEAT_SM90_ALL (setmaxnreg exists only there).
//
// Why mbarriers and not __syncthreads: a block barrier makes every warp wait for the slowest one every chunk,
// so the copies, the dequantization and the tensor core run in lock step and their latencies add up. With
// one full/empty barrier pair per stage a consumer waits only for the stage it is about to read, and the
// producer only for the stage it is about to overwrite.
#pragma once

#include <cstdint>

namespace ark::cuda::wgp {

__device__ __forceinline__ void mbar_init(uint32_t a, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory");
}
// A plain arrive (release: this thread's earlier shared-memory reads and writes happen before the phase
// completes).
__device__ __forceinline__ void mbar_arrive(uint32_t a) {
  asm volatile("{\n .reg .b64 st;\n mbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(a) : "memory");
}
// The arrive fires when every cp.async this thread issued so far has landed. .noinc: the arrival counts
// against the barrier's expected count (one per producer thread), no matching plain arrive is needed.
__device__ __forceinline__ void mbar_arrive_cp_async(uint32_t a) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(a) : "memory");
}
// Raises the current phase's expected transaction bytes (no arrival): the phase completes only when the
// tensor copies that signal this barrier have delivered that many bytes, besides the arrivals.
__device__ __forceinline__ void mbar_expect_tx(uint32_t a, uint32_t bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(bytes) : "memory");
}
// A TMA copy of the box at (inner, outer) of a 2-D tensor map (`map`: the generic address of a
// __grid_constant__ kernel parameter) to shared memory at dst, its bytes counted against mbarrier `bar`.
// Positions outside the tensor arrive as zeros.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const void* map, int inner, int outer,
                                            uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
      "l"(map), "r"(inner), "r"(outer), "r"(bar)
      : "memory");
}
// Waits until the phase with parity `parity` has completed (acquire). try_wait lets the hardware suspend the
// warp for a while instead of spinning on issue slots.
__device__ __forceinline__ void mbar_wait(uint32_t a, uint32_t parity) {
  uint32_t done;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, "
        "p;\n}\n"
        : "=r"(done)
        : "r"(a), "r"(parity)
        : "memory");
  } while (!done);
}

// Register reallocation between warpgroups: the producer needs a few dozen registers, the consumers hold the
// accumulators and two sets of A registers. The counts must be multiples of 8 in [24, 256].
template <int kRegs>
__device__ __forceinline__ void regs_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void regs_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}

}  // namespace ark::cuda::wgp
