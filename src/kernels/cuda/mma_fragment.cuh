// Device helpers that turn a lane's packed code words (cuda_layout.h) into mma.sync m16n8k16 B fragments
// holding q - z exactly, and the mma itself. Used by the streaming decode kernel (linear_gemv.cu); they are
// the same operations as linear_mma.cu's (which still has its own copies).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>

#include "kernels/cuda/cuda_layout.h"

namespace ark::cuda::frag {

template <typename T>
struct Traits;
template <>
struct Traits<__half> {
  using T2 = __half2;
  static constexpr uint32_t kMagic = 0x64006400u;  // fp16 1024.0 in both halves: 1024 + q for q < 1024
  __device__ static T2 pair(float lo, float hi) { return __floats2half2_rn(lo, hi); }
  __device__ static __half from_float(float v) { return __float2half_rn(v); }
  __device__ static float to_float(__half v) { return __half2float(v); }
};
template <>
struct Traits<__nv_bfloat16> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u;  // bf16 128.0: 128 + q for q < 128
  __device__ static T2 pair(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
  __device__ static __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
  __device__ static float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
};

template <typename T2>
__device__ __forceinline__ uint32_t bits_of(T2 v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}
template <typename T2>
__device__ __forceinline__ T2 from_bits(uint32_t u) {
  T2 v;
  memcpy(&v, &u, 4);
  return v;
}

// c += a · b for one m16n8k16 step (fp32 accumulators).
template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                          uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                                  uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                                         uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;  // (a & b) | c in one LOP3
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// What dequant_block subtracts: for 4-bit codes the pair magic + z (exact; the magic's bits plus z in both
// halves, z <= 16 with GPTQ v1's borrow), for other widths z itself.
template <typename T, int kBits>
__device__ __forceinline__ uint32_t zero_term(int z) {
  if constexpr (kBits == 4)
    return (Traits<T>::kMagic & 0xffffu) * 0x10001u + static_cast<uint32_t>(z) * 0x10001u;
  else
    return static_cast<uint32_t>(z);
}

// The four B registers (two k16 steps) of k32 block `block` of one lane's words, holding q - z exactly;
// zt is zero_term<T, kBits>(z).
template <typename T, int kBits>
__device__ __forceinline__ void dequant_block(const uint32_t (&w)[kBits], int block, uint32_t zt,
                                              uint32_t (&b)[4]) {
  using Tr = Traits<T>;
  using T2 = typename Tr::T2;
  if constexpr (kBits == 4) {
    // Nibbles j and j + 4 are the two values of register j: mask them into the magic's mantissa (magic + q)
    // and subtract magic + z.
    const uint32_t word = w[block];
#pragma unroll
    for (int j = 0; j < 4; ++j)
      b[j] = bits_of(
          __hsub2(from_bits<T2>(lop3_and_or(word >> (4 * j), 0x000f000fu, Tr::kMagic)), from_bits<T2>(zt)));
  } else {
    const int z = static_cast<int>(zt);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int lo = static_cast<int>(extract_code(w, 8 * kBits * block + kBits * j, kBits));
      const int hi = static_cast<int>(extract_code(w, 8 * kBits * block + kBits * (j + 4), kBits));
      b[j] = bits_of(Tr::pair(static_cast<float>(lo - z), static_cast<float>(hi - z)));
    }
  }
}

}  // namespace ark::cuda::frag
