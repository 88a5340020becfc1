#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ark/dtype.h"
#include "ark/error.h"
#include "kernels/cpu_features.h"

namespace ark {
namespace {

TEST(DType, NamesRoundTrip) {
  for (const char* name : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"}) {
    DType t;
    ASSERT_TRUE(parse_dtype(name, &t)) << name;
    EXPECT_EQ(dtype_name(t), name);
  }
  DType t;
  EXPECT_FALSE(parse_dtype("F128", &t));
  EXPECT_FALSE(parse_dtype("f32", &t));
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F8_E5M2), 1u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
}

// Known answers from the IEEE 754 binary16 definition.
TEST(DType, Fp16KnownAnswers) {
  EXPECT_EQ(fp16_to_float(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_float(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_float(0x0400), std::ldexp(1.0f, -14));
  EXPECT_TRUE(std::isinf(fp16_to_float(0x7c00)));
  EXPECT_TRUE(std::isnan(fp16_to_float(0x7e00)));
  EXPECT_EQ(float_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7c00);           // rounds up to infinity
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -25)), 0);   // tie between 0 and the smallest subnormal: even
  EXPECT_EQ(float_to_fp16(std::ldexp(3.0f, -25)), 2);   // tie between 1 and 2 subnormal units: even
  EXPECT_EQ(float_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie: even
  EXPECT_EQ(float_to_fp16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);  // tie: even (up)
  EXPECT_EQ(float_to_fp16(-0.0f), 0x8000);
}

TEST(DType, Fp16RoundTripsEveryFiniteValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    if ((bits & 0x7c00) == 0x7c00) continue;  // inf / nan
    ASSERT_EQ(float_to_fp16(fp16_to_float(bits)), bits) << std::hex << h;
  }
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(float_to_bf16(bits_float(0x3f808000u)), 0x3f80);  // tie: even
  EXPECT_EQ(float_to_bf16(bits_float(0x3f818000u)), 0x3f82);  // tie: even (up)
  EXPECT_EQ(float_to_bf16(bits_float(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(CpuFeatures, IsaNamesParseAndUnknownIsAnError) {
  for (const char* name : {"ref", "avx2", "avx512", "avx512_vnni", "avx512_bf16", "amx"})
    EXPECT_EQ(isa_level_name(parse_isa_level(name)), name);
  try {
    parse_isa_level("sse9");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sse9"), std::string::npos);
  }
  EXPECT_LE(active_isa_level(), detected_isa_level());
}

}  // namespace
}  // namespace ark
