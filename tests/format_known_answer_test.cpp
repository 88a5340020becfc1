// Known-answer vectors for the packed layouts. Every word and every expected value below was worked out by
// hand from the bit rules in docs/FORMATS.md, never produced by the code under test.
#include <gtest/gtest.h>

#include <vector>

#include "ark/format.h"
#include "format_test_util.h"

namespace ark {
namespace {

using format_test::f16_view;
using format_test::i32_view;
using format_test::words_of;

QuantScheme scheme(int bits, int64_t group, bool sym, PackingLayout layout) {
  QuantScheme s;
  s.bits = bits;
  s.group_size = group;
  s.sym = sym;
  s.layout = layout;
  return s;
}

// fp16 scales: 1.0, 0.5, -2.0, 0.25, then 1.0 repeated.
std::vector<uint16_t> f16_scales(int64_t n) {
  std::vector<uint16_t> s(static_cast<size_t>(n), 0x3C00);
  const uint16_t head[] = {0x3C00, 0x3800, 0xC000, 0x3400};
  for (int64_t i = 0; i < n && i < 4; ++i) s[i] = head[i];
  return s;
}

// A weight with the given zeros, one group, codes i % 2^bits and scale 1, for encode-side known answers.
QuantizedWeight weight_with_zeros(int bits, const std::vector<int32_t>& zeros, int64_t k) {
  QuantizedWeight w;
  w.out_features = static_cast<int64_t>(zeros.size());
  w.in_features = k;
  w.bits = bits;
  w.group_size = k;
  w.sym = false;
  w.codes.resize(static_cast<size_t>(w.out_features * k));
  for (size_t i = 0; i < w.codes.size(); ++i) w.codes[i] = static_cast<uint8_t>(i % (1u << bits));
  w.scales.assign(zeros.size(), 1.0f);
  w.zeros = zeros;
  return w;
}

TEST(FormatKnownAnswer, Gptq4BitWord) {
  // K=8, N=8, one group: qweight is one row of 8 words, word n holding input channels 0..7 of output n,
  // lowest nibble first.
  std::vector<uint32_t> qw = {0x76543210, 0xFEDCBA98, 0x0F1E2D3C, 0x89ABCDEF,
                              0x13579BDF, 0x02468ACE, 0xA5A5A5A5, 0x5A5A5A5A};
  std::vector<uint32_t> qz = {
      0x12345678};  // zeros of outputs 0..7: 8, 7, 6, 5, 4, 3, 2, 1 (lowest nibble first)
  const auto sc = f16_scales(8);
  for (auto layout : {PackingLayout::kGptqV2, PackingLayout::kGptqV1}) {
    const int32_t plus = layout == PackingLayout::kGptqV1 ? 1 : 0;
    QuantizedWeight w = decode(scheme(4, -1, false, layout), 8, 8, i32_view(qw, {1, 8}), i32_view(qz, {1, 1}),
                               f16_view(sc, {1, 8}));
    const std::vector<std::vector<int>> codes = {{0, 1, 2, 3, 4, 5, 6, 7},     {8, 9, 10, 11, 12, 13, 14, 15},
                                                 {12, 3, 13, 2, 14, 1, 15, 0}, {15, 14, 13, 12, 11, 10, 9, 8},
                                                 {15, 13, 11, 9, 7, 5, 3, 1},  {14, 12, 10, 8, 6, 4, 2, 0},
                                                 {5, 10, 5, 10, 5, 10, 5, 10}, {10, 5, 10, 5, 10, 5, 10, 5}};
    for (int n = 0; n < 8; ++n) {
      for (int k = 0; k < 8; ++k) EXPECT_EQ(w.codes[n * 8 + k], codes[n][k]) << "n=" << n << " k=" << k;
      EXPECT_EQ(w.zeros[n], 8 - n + plus) << "n=" << n;
    }
    EXPECT_EQ(w.scales[2], -2.0f);
    // W[n][k] = scale[n] * (q - zero): output 2, input 0 is -2 * (12 - 6) in v2 and -2 * (12 - 7) in v1.
    EXPECT_EQ(w.dequant(2, 0), plus ? -10.0f : -12.0f);
    EXPECT_EQ(w.dequant(1, 7), plus ? 0.5f * (15 - 8) : 0.5f * (15 - 7));
    // And back: the same words.
    PackedTensors p = encode(w, layout);
    EXPECT_EQ(words_of(p.qweight), qw);
    EXPECT_EQ(words_of(p.qzeros), qz);
  }
}

TEST(FormatKnownAnswer, Gptq2BitWord) {
  // K=16, N=16: 0xE4 = 11 10 01 00, so 0xE4E4E4E4 holds 0, 1, 2, 3 four times; 0x1B = 00 01 10 11 holds 3, 2,
  // 1, 0.
  std::vector<uint32_t> qw(16, 0x55555555);  // every code 1
  qw[0] = 0xE4E4E4E4;
  qw[1] = 0x0000001B;
  std::vector<uint32_t> qz = {0x0000009C};  // 0x9C = 10 01 11 00: zeros 0, 3, 1, 2, then 0
  std::vector<uint16_t> sc = f16_scales(16);
  QuantizedWeight w = decode(scheme(2, -1, false, PackingLayout::kGptqV2), 16, 16, i32_view(qw, {1, 16}),
                             i32_view(qz, {1, 1}), f16_view(sc, {1, 16}));
  for (int k = 0; k < 16; ++k) {
    EXPECT_EQ(w.codes[k], k % 4);
    EXPECT_EQ(w.codes[16 + k], k < 4 ? 3 - k : 0);
    EXPECT_EQ(w.codes[5 * 16 + k], 1);
  }
  const int zeros[] = {0, 3, 1, 2, 0, 0};
  for (int n = 0; n < 6; ++n) EXPECT_EQ(w.zeros[n], zeros[n]);
  EXPECT_EQ(w.dequant(1, 0), 0.5f * (3 - 3));
  EXPECT_EQ(w.dequant(3, 5), 0.25f * (1 - 2));
}

TEST(FormatKnownAnswer, Gptq8BitWord) {
  // K=4, N=4: 0x80FF017F holds 0x7F, 0x01, 0xFF, 0x80 for input channels 0..3.
  std::vector<uint32_t> qw = {0x80FF017F, 0x00000000, 0x01020304, 0xFFFFFFFF};
  std::vector<uint32_t> qz = {0x03C8FF00};  // zeros 0, 255, 200, 3
  std::vector<uint16_t> sc = f16_scales(4);
  QuantizedWeight w = decode(scheme(8, -1, false, PackingLayout::kGptqV2), 4, 4, i32_view(qw, {1, 4}),
                             i32_view(qz, {1, 1}), f16_view(sc, {1, 4}));
  const int col0[] = {127, 1, 255, 128}, col2[] = {4, 3, 2, 1};
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(w.codes[k], col0[k]);
    EXPECT_EQ(w.codes[8 + k], col2[k]);
    EXPECT_EQ(w.codes[12 + k], 255);
  }
  EXPECT_EQ(w.zeros, (std::vector<int32_t>{0, 255, 200, 3}));
  EXPECT_EQ(w.dequant(0, 2), 255.0f);
  EXPECT_EQ(w.dequant(3, 0), 0.25f * (255 - 3));
}

// 32 three-bit values fill three words as one 96-bit little-endian stream: value 10 takes bits 30, 31 of word
// 0 and bit 0 of word 1; value 21 takes bit 31 of word 1 and bits 0, 1 of word 2.
TEST(FormatKnownAnswer, Gptq3BitTripleStraddles) {
  const int64_t k = 32, n = 32;
  std::vector<uint32_t> qw(3 * n, 0);
  // Output 0: value 0 = 3 (word0 bits 0-2 = 011), value 10 = 5 (101: word0 bit30, word1 bit0), value 11 = 7
  // (word1 bits 1-3), value 21 = 6 (110: word1 bit31 = 0, word2 bits 0, 1 = 1), value 22 = 1 (word2 bit 2),
  // value 31 = 4 (100: word2 bit 31).
  qw[0 * n + 0] = 0x40000003;
  qw[1 * n + 0] = 0x0000000F;
  qw[2 * n + 0] = 0x80000007;
  // Output 1: all ones, every value 7.
  qw[0 * n + 1] = qw[1 * n + 1] = qw[2 * n + 1] = 0xFFFFFFFF;
  // Output 2: word 0 all ones: values 0..9 = 7, value 10 = 011 = 3 (its top bit is word 1 bit 0, clear).
  qw[0 * n + 2] = 0xFFFFFFFF;
  // Output 3: word1 bit31 and word2 bit0: value 21 = 011 = 3, nothing else.
  qw[1 * n + 3] = 0x80000000;
  qw[2 * n + 3] = 0x00000001;
  // The zeros of group 0 across outputs use the same three words as output 0's codes.
  std::vector<uint32_t> qz = {0x40000003, 0x0000000F, 0x80000007};
  std::vector<uint16_t> sc = f16_scales(n);

  for (auto layout : {PackingLayout::kGptqV2, PackingLayout::kGptqV1}) {
    const int32_t plus = layout == PackingLayout::kGptqV1 ? 1 : 0;
    QuantizedWeight w = decode(scheme(3, -1, false, layout), k, n, i32_view(qw, {3, n}), i32_view(qz, {1, 3}),
                               f16_view(sc, {1, n}));
    std::vector<int> out0(32, 0), out2(32, 0), out3(32, 0);
    out0[0] = 3, out0[10] = 5, out0[11] = 7, out0[21] = 6, out0[22] = 1, out0[31] = 4;
    for (int i = 0; i < 10; ++i) out2[i] = 7;
    out2[10] = 3;
    out3[21] = 3;
    for (int i = 0; i < 32; ++i) {
      EXPECT_EQ(w.codes[0 * k + i], out0[i]) << "value " << i;
      EXPECT_EQ(w.codes[1 * k + i], 7) << "value " << i;
      EXPECT_EQ(w.codes[2 * k + i], out2[i]) << "value " << i;
      EXPECT_EQ(w.codes[3 * k + i], out3[i]) << "value " << i;
      EXPECT_EQ(w.zeros[i], out0[i] + plus) << "zero of output " << i;
    }
    PackedTensors p = encode(w, layout);
    EXPECT_EQ(words_of(p.qweight), qw);
    EXPECT_EQ(words_of(p.qzeros), qz);
  }
}

TEST(FormatKnownAnswer, AwqInterleavedWord) {
  // Nibble p of a word holds column [0, 2, 4, 6, 1, 3, 5, 7][p] of its 8: 0x76543210 puts p in nibble p, so
  // the columns 0..7 read 0, 4, 1, 5, 2, 6, 3, 7.
  std::vector<uint32_t> qw = {0x76543210, 0xFEDCBA98};  // K=2 rows, N=8
  std::vector<uint32_t> qz = {0x12345678};              // nibbles 8,7,6,5,4,3,2,1 -> columns 0,2,4,6,1,3,5,7
  std::vector<uint16_t> sc = f16_scales(8);
  QuantizedWeight w = decode(scheme(4, -1, false, PackingLayout::kAwq), 2, 8, i32_view(qw, {2, 1}),
                             i32_view(qz, {1, 1}), f16_view(sc, {1, 8}));
  const int row0[] = {0, 4, 1, 5, 2, 6, 3, 7};
  const int zeros[] = {8, 4, 7, 3, 6, 2, 5, 1};
  for (int n = 0; n < 8; ++n) {
    EXPECT_EQ(w.codes[n * 2 + 0], row0[n]) << "column " << n;
    EXPECT_EQ(w.codes[n * 2 + 1], row0[n] + 8) << "column " << n;
    EXPECT_EQ(w.zeros[n], zeros[n]) << "column " << n;
  }
  EXPECT_EQ(w.dequant(1, 1), 0.5f * (12 - 4));
  PackedTensors p = encode(w, PackingLayout::kAwq);
  EXPECT_EQ(words_of(p.qweight), qw);
  EXPECT_EQ(words_of(p.qzeros), qz);
  EXPECT_FALSE(p.g_idx.has_value());
}

TEST(FormatKnownAnswer, V1SymmetricWordMeansZeroEight) {
  // What AutoRound writes for 4-bit symmetric: every stored zero 7, read back as 7 + 1 = 8 = 2^(4-1).
  std::vector<uint32_t> qw(8, 0x89ABCDEF);
  std::vector<uint32_t> qz = {0x77777777};
  std::vector<uint16_t> sc = f16_scales(8);
  QuantizedWeight w = decode(scheme(4, -1, true, PackingLayout::kGptqV1), 8, 8, i32_view(qw, {1, 8}),
                             i32_view(qz, {1, 1}), f16_view(sc, {1, 8}));
  for (int n = 0; n < 8; ++n) EXPECT_EQ(w.zeros[n], 8);
  EXPECT_EQ(w.dequant(0, 0), 7.0f);   // 1.0 * (15 - 8)
  EXPECT_EQ(w.dequant(2, 7), 0.0f);   // -2 * (8 - 8)
  EXPECT_EQ(w.dequant(3, 6), 0.25f);  // 0.25 * (9 - 8)
  EXPECT_EQ(words_of(encode(w, PackingLayout::kGptqV1).qzeros), qz);
}

// A v1 asymmetric zero of 0 is stored as -1. The exporter ORs (uint32)-1 << 8 into the word, setting
// bits 8..31, so fields 2..7 all read 15 and decode as 15 + 1 = 16.
TEST(FormatKnownAnswer, V1AsymStoredMinusOneBorrows) {
  const std::vector<int32_t> zeros = {3, 5, 0, 7, 2, 9, 4, 1};
  QuantizedWeight w = weight_with_zeros(4, zeros, 8);
  const PackedTensors borrow = encode(w, PackingLayout::kGptqV1, DType::F16, GptqV1ZeroOfZero::kBorrow);
  ASSERT_EQ(words_of(borrow.qzeros), std::vector<uint32_t>{0xFFFFFF42});
  QuantizedWeight back = decode(scheme(4, -1, false, PackingLayout::kGptqV1), 8, 8, borrow.qweight.view(),
                                borrow.qzeros.view(), borrow.scales.view());
  EXPECT_EQ(back.zeros, (std::vector<int32_t>{3, 5, 16, 16, 16, 16, 16, 16}));
  EXPECT_EQ(back.codes, w.codes);
  // AutoRound 0.16 clamps zero - 1 at 0 instead: stored 2,4,0,6,1,8,3,0 from the lowest nibble up.
  const PackedTensors clamp = encode(w, PackingLayout::kGptqV1, DType::F16, GptqV1ZeroOfZero::kClamp);
  ASSERT_EQ(words_of(clamp.qzeros), std::vector<uint32_t>{0x03816042});
  back = decode(scheme(4, -1, false, PackingLayout::kGptqV1), 8, 8, clamp.qweight.view(), clamp.qzeros.view(),
                clamp.scales.view());
  EXPECT_EQ(back.zeros, (std::vector<int32_t>{3, 5, 1, 7, 2, 9, 4, 1}));
}

TEST(FormatKnownAnswer, V1BorrowInEightAndThreeBits) {
  // 8-bit: zeros 5, 0, 3, 200 store 4, -1, 2, 199; the -1 fills bytes 1..3: 0xFFFFFF04 -> 5, 256, 256, 256.
  QuantizedWeight w8 = weight_with_zeros(8, {5, 0, 3, 200}, 4);
  PackedTensors p8 = encode(w8, PackingLayout::kGptqV1);
  ASSERT_EQ(words_of(p8.qzeros), std::vector<uint32_t>{0xFFFFFF04});
  EXPECT_EQ(decode(scheme(8, -1, false, PackingLayout::kGptqV1), 4, 4, p8.qweight.view(), p8.qzeros.view(),
                   p8.scales.view())
                .zeros,
            (std::vector<int32_t>{5, 256, 256, 256}));

  // 3-bit, 32 outputs with zero 1 (stored 0) except one zero of 0.
  struct Case {
    int at;
    std::vector<uint32_t> words;
    std::vector<int> decoded_as_8;  // outputs that read 7 + 1
    int four_at;                    // output that reads 3 + 1, or -1
  };
  const Case cases[] = {
      // Output 0: -1 << 0 fills word 0; value 10 gets bits 30, 31 but not its top bit (word 1 bit 0): 011
      // -> 4.
      {0, {0xFFFFFFFF, 0, 0}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 10},
      // Output 10 straddles: -1 << 30 sets word0 bits 30, 31; its top bit goes to word 1 bit 0, masked to 1.
      {10, {0xC0000000, 0x00000001, 0}, {10}, -1},
      // Output 21 straddles: word1 bit 31, then (0xFFFFFFFF >> 1) & 3 = 3 into word 2.
      {21, {0, 0x80000000, 0x00000003}, {21}, -1},
  };
  for (const Case& c : cases) {
    std::vector<int32_t> zeros(32, 1);
    zeros[c.at] = 0;
    QuantizedWeight w = weight_with_zeros(3, zeros, 32);
    PackedTensors p = encode(w, PackingLayout::kGptqV1);
    EXPECT_EQ(words_of(p.qzeros), c.words) << "zero of 0 at output " << c.at;
    QuantizedWeight back = decode(scheme(3, -1, false, PackingLayout::kGptqV1), 32, 32, p.qweight.view(),
                                  p.qzeros.view(), p.scales.view());
    std::vector<int32_t> expected(32, 1);
    for (int o : c.decoded_as_8) expected[o] = 8;
    if (c.four_at >= 0) expected[c.four_at] = 4;
    EXPECT_EQ(back.zeros, expected) << "zero of 0 at output " << c.at;
  }
}

TEST(FormatKnownAnswer, GroupsAndGIdx) {
  // K=16, N=8, group 8: two qzeros rows, scales [2, 8]; g_idx sends channels 0..15 to groups given by hand.
  std::vector<uint32_t> qw(2 * 8, 0x76543210);  // codes k % 8 in both rows (rows hold k 0..7 and 8..15)
  std::vector<uint32_t> qz = {0x11111111, 0x33333333};
  std::vector<uint16_t> sc(16, 0x3C00);
  for (int n = 0; n < 8; ++n) sc[8 + n] = 0x4000;  // group 1: scale 2
  std::vector<uint32_t> gi = {1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1};
  const TensorView gv = i32_view(gi, {16});
  QuantizedWeight w = decode(scheme(4, 8, false, PackingLayout::kGptqV2), 16, 8, i32_view(qw, {2, 8}),
                             i32_view(qz, {2, 1}), f16_view(sc, {2, 8}), &gv);
  EXPECT_TRUE(w.has_act_order());
  EXPECT_EQ(w.dequant(0, 0), 2.0f * (0 - 3));  // g_idx[0] = 1: scale 2, zero 3
  EXPECT_EQ(w.dequant(0, 2), 1.0f * (2 - 1));  // g_idx[2] = 0: scale 1, zero 1
  EXPECT_EQ(w.dequant(5, 15), 2.0f * (7 - 3));
  PackedTensors p = encode(w, PackingLayout::kGptqV2);
  ASSERT_TRUE(p.g_idx.has_value());
  EXPECT_EQ(words_of(*p.g_idx), gi);
}

}  // namespace
}  // namespace ark
