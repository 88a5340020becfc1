// Device helpers that turn a lane's packed code words (cuda_layout.h) into mma.sync m16n8k16 B fragments
// holding q - z exactly, and the mma itself. Used by the streaming decode kernel (linear_gemv.cu); the
// tensor-core kernel (linear_mma.cu) takes its dtype traits and bit casts from here too.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>
#include <type_traits>

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

// c += a · b for one m16n8k16 step (fp32 accumulators). Not volatile: a pure register operation, which
// the compiler may schedule between the loads.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                          uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                                  uint32_t a3, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                                         uint32_t a3, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// d = a · b for one m16n8k16 step: the first step of a group's sums, which then need no zeroing (the
// accumulator inputs are constant zeros, which the mma reads from the zero register).
template <typename T>
__device__ __forceinline__ void mma_16816_zero(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                               uint32_t a3, uint32_t b0, uint32_t b1) {
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  const float z = 0.0f;
  if constexpr (kBf16)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%10,%10,%10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(z));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%10,%10,%10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(z));
}

__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;  // (a & b) | c in one LOP3
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// What dequant_block subtracts: for 4-bit codes the pair magic + z (exact; the magic's bits plus z in both
// halves, z <= 16 with GPTQ v1's borrow), for other widths z itself. .y: for fp16 4-bit codes the pair
// -(64 + z) (fp16 bits 0xd400 + 16 z: exact), which the high nibbles' fused multiply-add adds.
template <typename T, int kBits>
__device__ __forceinline__ uint2 zero_term(int z) {
  if constexpr (kBits == 4)
    return make_uint2((Traits<T>::kMagic & 0xffffu) * 0x10001u + static_cast<uint32_t>(z) * 0x10001u,
                      0xd400d400u + static_cast<uint32_t>(z) * 0x100010u);
  else
    return make_uint2(static_cast<uint32_t>(z), 0u);
}

// The four B registers (two k16 steps) of k32 block `block` of one lane's words, holding q - z exactly;
// zt is zero_term<T, kBits>(z).
template <typename T, int kBits>
__device__ __forceinline__ void dequant_block(const uint32_t (&w)[kBits], int block, uint2 zt,
                                              uint32_t (&b)[4]) {
  using Tr = Traits<T>;
  using T2 = typename Tr::T2;
  if constexpr (kBits == 4 && std::is_same_v<T, __half>) {
    // fp16 has 10 mantissa bits, so a nibble can stay where it is: (word & 0x00f000f0) | magic is
    // 1024 + 16 q, and one fused multiply-add by 1/16 with -(64 + z) gives q - z exactly. Two registers per
    // shift instead of one (Marlin's trick).
    const uint32_t lo = w[block], hi = w[block] >> 8;
    const T2 sixteenth = from_bits<T2>(0x2c002c00u);  // 1/16
    b[0] = bits_of(__hsub2(from_bits<T2>(lop3_and_or(lo, 0x000f000fu, Tr::kMagic)), from_bits<T2>(zt.x)));
    b[1] = bits_of(
        __hfma2(from_bits<T2>(lop3_and_or(lo, 0x00f000f0u, Tr::kMagic)), sixteenth, from_bits<T2>(zt.y)));
    b[2] = bits_of(__hsub2(from_bits<T2>(lop3_and_or(hi, 0x000f000fu, Tr::kMagic)), from_bits<T2>(zt.x)));
    b[3] = bits_of(
        __hfma2(from_bits<T2>(lop3_and_or(hi, 0x00f000f0u, Tr::kMagic)), sixteenth, from_bits<T2>(zt.y)));
  } else if constexpr (kBits == 4) {
    // bf16 has 7 mantissa bits: each nibble pair is shifted down. Nibbles j and j + 4 are the two values of
    // register j: mask them into the magic's mantissa (magic + q) and subtract magic + z.
    const uint32_t word = w[block];
#pragma unroll
    for (int j = 0; j < 4; ++j)
      b[j] = bits_of(
          __hsub2(from_bits<T2>(lop3_and_or(word >> (4 * j), 0x000f000fu, Tr::kMagic)), from_bits<T2>(zt.x)));
  } else {
    const int z = static_cast<int>(zt.x);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int lo = static_cast<int>(extract_code(w, 8 * kBits * block + kBits * j, kBits));
      const int hi = static_cast<int>(extract_code(w, 8 * kBits * block + kBits * (j + 4), kBits));
      b[j] = bits_of(Tr::pair(static_cast<float>(lo - z), static_cast<float>(hi - z)));
    }
  }
}

}  // namespace ark::cuda::frag
