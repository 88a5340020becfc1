// Hopper warpgroup MMA (wgmma.mma_async, sm_90a) for the large-M kernel (linear_wgmma.cu): the A operand (the
// weights, 64 rows x k16) comes from registers, the B operand (x, k16 x N rows of x) from shared memory
// through a matrix descriptor, fp32 accumulators in registers. Plus the dequantizer that writes A with the
// scale folded in. Only compiled into sm_90a code: the callers guard with __CUDA_ARCH_FEAT_SM90_ALL.
//
// A from registers: warp w of the warpgroup holds rows 16w..16w+15 of the 64-row A tile in exactly the
// m16n8k16 A-fragment layout, so a lane's packed words of the two n8 tiles 2w and 2w + 1 (cuda_layout.h) are
// its A registers once dequantized: {tile 2w reg j, tile 2w+1 reg j, tile 2w reg j+1, tile 2w+1 reg j+1} (the
// "swapped product" of linear_gemv.cu, a warpgroup wide).
//
// D (64 weight rows x N rows of x), per lane (g = lane / 4, t = lane % 4) of warp w: d[4i + e] is weight row
// 16w + g + 8 (e / 2), x row 8i + 2t + e % 2.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/mma_fragment.cuh"

namespace ark::cuda::wg {

// The accumulator operand lists of the four shapes the kernels run (N = 32, 64, 128 and 256 rows of x: 16,
// 32, 64 and 128 fp32 per thread), spelled out once: each list is the one before it and the rest.
#define ARK_WGMMA_REGS16 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
#define ARK_WGMMA_ACC16                                                                           \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
#define ARK_WGMMA_REGS32 \
  ARK_WGMMA_REGS16       \
  ", "                   \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define ARK_WGMMA_ACC32                                                                          \
  ARK_WGMMA_ACC16, "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), \
      "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), \
      "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define ARK_WGMMA_REGS64                                                           \
  ARK_WGMMA_REGS32                                                                 \
  ", "                                                                             \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47" \
  ", "                                                                             \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define ARK_WGMMA_ACC64                                                                          \
  ARK_WGMMA_ACC32, "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), \
      "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), \
      "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), \
      "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), \
      "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define ARK_WGMMA_REGS128                                                                      \
  ARK_WGMMA_REGS64                                                                             \
  ", "                                                                                         \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79"             \
  ", "                                                                                         \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95"             \
  ", "                                                                                         \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111" \
  ", "                                                                                         \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
#define ARK_WGMMA_ACC128                                                                                \
  ARK_WGMMA_ACC64, "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]),        \
      "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]),        \
      "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]),        \
      "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]),        \
      "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]),        \
      "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]),   \
      "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
      "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), \
      "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), \
      "+f"(d[126]), "+f"(d[127])
template <int kN>
struct Mma;
// Mma<kN>::run: one wgmma of kN rows of x (kN / 2 accumulators per thread) for T = bf16 or fp16; kAddD
// false: d = A B, the accumulators' previous values ignored (the wgmma's scale-d operand 0), so a fresh sum
// needs no zeroing. REGS numbers the accumulators, ACC binds them, A_OPS names the four A registers, the B
// descriptor and scale-d that follow.
#define ARK_WGMMA_MMA(kN, REGS, ACC, A_OPS)                                                               \
  template <>                                                                                             \
  struct Mma<kN> {                                                                                        \
    template <bool kBf16, bool kAddD = true>                                                              \
    __device__ __forceinline__ static void run(float (&d)[kN / 2], uint32_t a0, uint32_t a1, uint32_t a2, \
                                               uint32_t a3, uint64_t desc_b) {                            \
      if constexpr (kBf16)                                                                                \
        asm volatile("wgmma.mma_async.sync.aligned.m64n" #kN "k16.f32.bf16.bf16 {" REGS "}, " A_OPS       \
                     ", 1, 1, 0;\n"                                                                       \
                     : ACC                                                                                \
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc_b), "n"(kAddD ? 1 : 0)                \
                     : "memory");                                                                         \
      else                                                                                                \
        asm volatile("wgmma.mma_async.sync.aligned.m64n" #kN "k16.f32.f16.f16 {" REGS "}, " A_OPS         \
                     ", 1, 1, 0;\n"                                                                       \
                     : ACC                                                                                \
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc_b), "n"(kAddD ? 1 : 0)                \
                     : "memory");                                                                         \
    }                                                                                                     \
  };
ARK_WGMMA_MMA(32, ARK_WGMMA_REGS16, ARK_WGMMA_ACC16, "{%16, %17, %18, %19}, %20, %21")
ARK_WGMMA_MMA(64, ARK_WGMMA_REGS32, ARK_WGMMA_ACC32, "{%32, %33, %34, %35}, %36, %37")
ARK_WGMMA_MMA(128, ARK_WGMMA_REGS64, ARK_WGMMA_ACC64, "{%64, %65, %66, %67}, %68, %69")
ARK_WGMMA_MMA(256, ARK_WGMMA_REGS128, ARK_WGMMA_ACC128, "{%128, %129, %130, %131}, %132, %133")

#undef ARK_WGMMA_MMA
#undef ARK_WGMMA_REGS16
#undef ARK_WGMMA_ACC16
#undef ARK_WGMMA_REGS32
#undef ARK_WGMMA_REGS64
#undef ARK_WGMMA_ACC32
#undef ARK_WGMMA_ACC64
#undef ARK_WGMMA_REGS128
#undef ARK_WGMMA_ACC128

// Orders this thread's register writes (A fragments, accumulators) before the wgmma that reads them.
__device__ __forceinline__ void fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
// Waits until at most kPending committed groups of this warpgroup are still running.
template <int kPending>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving accumulator reads or writes across the asynchronous MMAs.
template <int kN>
__device__ __forceinline__ void fence_operands(float (&d)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// Descriptor of a K-major operand tile with the 128-byte swizzle: rows of 128 bytes (64 16-bit k values),
// 8-row groups 1024 bytes apart (the stride byte offset), the tile's base 1024-byte aligned (the swizzle is a
// function of the address bits, so a k16 step inside the 128-byte row is a plain +32 bytes on the start
// address). The leading byte offset is unused for swizzled K-major layouts (1 by convention).
__device__ __forceinline__ uint64_t desc_sw128(uint32_t smem_addr) {
  return static_cast<uint64_t>((smem_addr & 0x3ffffu) >> 4) | (uint64_t{1} << 16) |
         (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}

// The scale-folded dequantizer: A = s * (q - z) rounded once to T, from a lane's words (one row per tile).
// q - z is exact in T (the magic-number conversion of mma_fragment.cuh); then
//   bf16: s = s_hi + s_lo (both bf16, s_lo the rounded rest), A = fma(s_hi, q - z, s_lo * (q - z)): one
//   rounding
//         of s * (q - z) up to 2 u^2 relative (u = 2^-8), three HFMA2-class instructions per register;
//   fp16: s_lo would often be subnormal in fp16, so q - z goes to fp32, times s, rounded once (exact
//   rounding). other widths: the codes are extracted one by one and scaled in fp32 (exact rounding; not the
//   fast path).
template <typename T>
struct ScaleTerm {
  uint32_t zt = 0;  // 4-bit: magic + z in both halves; else z
  uint32_t hi = 0;  // bf16: s_hi in both halves
  uint32_t lo = 0;  // bf16: s_lo in both halves
  float s = 0.0f;   // fp32 scale
};

template <typename T, int kBits>
__device__ __forceinline__ ScaleTerm<T> scale_term(float s, int z) {
  ScaleTerm<T> r;
  r.s = s;
  r.zt = frag::zero_term<T, kBits>(z).x;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat16 h = __float2bfloat16_rn(s);
    const __nv_bfloat16 l = __float2bfloat16_rn(s - __bfloat162float(h));
    r.hi = frag::bits_of(__nv_bfloat162(h, h));
    r.lo = frag::bits_of(__nv_bfloat162(l, l));
  }
  return r;
}

// The four registers (two k16 steps: regs 0, 1 step 0; 2, 3 step 1) of k32 block `block` of one lane's words.
template <typename T, int kBits>
__device__ __forceinline__ void dequant_scaled(const uint32_t (&w)[kBits], int block, const ScaleTerm<T>& st,
                                               uint32_t (&a)[4]) {
  using Tr = frag::Traits<T>;
  using T2 = typename Tr::T2;
  if constexpr (kBits == 4) {
    const uint32_t word = w[block];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const T2 d = __hsub2(frag::from_bits<T2>(frag::lop3_and_or(word >> (4 * j), 0x000f000fu, Tr::kMagic)),
                           frag::from_bits<T2>(st.zt));
      if constexpr (std::is_same_v<T, __nv_bfloat16>) {
        a[j] = frag::bits_of(__hfma2(d, frag::from_bits<T2>(st.hi), __hmul2(d, frag::from_bits<T2>(st.lo))));
      } else {
        const float2 f = __half22float2(d);
        a[j] = frag::bits_of(Tr::pair(f.x * st.s, f.y * st.s));
      }
    }
  } else {
    const int z = static_cast<int>(st.zt);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int lo = static_cast<int>(extract_code(w, 8 * kBits * block + kBits * j, kBits));
      const int hi = static_cast<int>(extract_code(w, 8 * kBits * block + kBits * (j + 4), kBits));
      a[j] = frag::bits_of(Tr::pair(st.s * static_cast<float>(lo - z), st.s * static_cast<float>(hi - z)));
    }
  }
}

}  // namespace ark::cuda::wg
