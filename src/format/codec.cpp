// The public decode/encode: validation of shapes, dtypes and values against the scheme, the parts every
// layout shares (scales, g_idx), and dispatch to the layout's codes/zeros packing.
#include <algorithm>
#include <sstream>
#include <string>

#include "ark/format.h"
#include "format/codec_internal.h"

namespace ark {
namespace {

using format_detail::round_to_scale_dtype;

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

bool is_scale_dtype(DType t) {
  return t == DType::F16 || t == DType::BF16 || t == DType::F32;
}

void check_tensor(const char* name, const TensorView& t, bool scale, const std::vector<int64_t>& expected,
                  const QuantScheme& scheme) {
  const bool dtype_ok = scale ? is_scale_dtype(t.dtype) : t.dtype == DType::I32;
  ARK_CHECK(dtype_ok, layout_name(scheme.layout), " ", scheme.bits, "-bit: tensor '", name, "' has dtype ",
            dtype_name(t.dtype), ", expected ", scale ? "F16, BF16 or F32" : "I32");
  ARK_CHECK(t.shape == expected, layout_name(scheme.layout), " ", scheme.bits, "-bit: tensor '", name,
            "' has shape ", shape_str(t.shape), ", expected ", shape_str(expected));
  ARK_CHECK(t.data != nullptr || t.numel() == 0, "tensor '", name, "' has no data");
}

float load_scale(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::F16:
      return fp16_to_float(t.as<uint16_t>()[i]);
    case DType::BF16:
      return bf16_to_float(t.as<uint16_t>()[i]);
    default:
      return t.as<float>()[i];
  }
}

void store_scale(Tensor& t, int64_t i, float v) {
  switch (t.dtype) {
    case DType::F16:
      t.as<uint16_t>()[i] = float_to_fp16(v);
      break;
    case DType::BF16:
      t.as<uint16_t>()[i] = float_to_bf16(v);
      break;
    default:
      t.as<float>()[i] = v;
  }
}

}  // namespace

namespace format_detail {
float round_to_scale_dtype(float v, DType scale_dtype) {
  switch (scale_dtype) {
    case DType::F16:
      return fp16_to_float(float_to_fp16(v));
    case DType::BF16:
      return bf16_to_float(float_to_bf16(v));
    default:
      return v;
  }
}
}  // namespace format_detail

std::string_view layout_name(PackingLayout layout) {
  switch (layout) {
    case PackingLayout::kGptqV1:
      return "gptq-v1";
    case PackingLayout::kGptqV2:
      return "gptq-v2";
    case PackingLayout::kAwq:
      return "awq";
  }
  return "unknown layout";
}

PackedShapes packed_shapes(const QuantScheme& s, int64_t k, int64_t n) {
  ARK_CHECK(s.layout == PackingLayout::kGptqV1 || s.layout == PackingLayout::kGptqV2 ||
                s.layout == PackingLayout::kAwq,
            "packing layout ", static_cast<int>(s.layout), " is not one of gptq-v1, gptq-v2, awq");
  const std::string_view name = layout_name(s.layout);
  ARK_CHECK(s.bits == 2 || s.bits == 3 || s.bits == 4 || s.bits == 8, name, ": bits ", s.bits,
            " is not supported (expected 2, 3, 4 or 8)");
  ARK_CHECK(k > 0 && n > 0, name, ": in_features ", k, " and out_features ", n, " must be positive");
  ARK_CHECK(s.group_size == -1 || (s.group_size >= 1 && s.group_size <= k), name, ": group_size ",
            s.group_size, " must be -1 or in [1, in_features=", k, "]");
  const int64_t group = s.group_size == -1 ? k : s.group_size;
  const int64_t g = (k + group - 1) / group;
  PackedShapes out;
  out.scales = {g, n};
  out.g_idx = {k};
  if (s.layout == PackingLayout::kAwq) {
    ARK_CHECK(s.bits == 4, name, ": bits ", s.bits, " is not supported (the AWQ layout is 4-bit only)");
    ARK_CHECK(n % 8 == 0, name, ": out_features ", n, " must be a multiple of 8 (8 columns per int32 word)");
    out.qweight = {k, n / 8};
    out.qzeros = {g, n / 8};
    return out;
  }
  // 32 values fill `bits` words exactly, and the exporters pack whole blocks of 32 (3-bit) or whole words.
  const int64_t multiple = s.bits == 3 ? 32 : 32 / s.bits;
  ARK_CHECK(k % multiple == 0, name, " ", s.bits, "-bit: in_features ", k, " must be a multiple of ",
            multiple, " (qweight packs ", multiple, " input channels per ",
            s.bits == 3 ? "3 words" : "int32 word", ")");
  ARK_CHECK(n % multiple == 0, name, " ", s.bits, "-bit: out_features ", n, " must be a multiple of ",
            multiple, " (qzeros packs ", multiple, " output channels per ",
            s.bits == 3 ? "3 words" : "int32 word", ")");
  out.qweight = {k * s.bits / 32, n};
  out.qzeros = {g, n * s.bits / 32};
  return out;
}

QuantizedWeight decode(const QuantScheme& scheme, int64_t k, int64_t n, const TensorView& qweight,
                       const TensorView& qzeros, const TensorView& scales, const TensorView* g_idx) {
  const PackedShapes shapes = packed_shapes(scheme, k, n);
  check_tensor("qweight", qweight, false, shapes.qweight, scheme);
  check_tensor("qzeros", qzeros, false, shapes.qzeros, scheme);
  check_tensor("scales", scales, true, shapes.scales, scheme);
  if (g_idx) {
    ARK_CHECK(scheme.layout != PackingLayout::kAwq,
              "awq: the AWQ layout has no g_idx tensor, but one was given");
    check_tensor("g_idx", *g_idx, false, shapes.g_idx, scheme);
  }

  QuantizedWeight w;
  w.out_features = n;
  w.in_features = k;
  w.bits = scheme.bits;
  w.group_size = scheme.group_size == -1 ? k : scheme.group_size;
  w.sym = scheme.sym;
  const int64_t g = w.num_groups();
  w.codes.resize(static_cast<size_t>(n * k));
  w.zeros.resize(static_cast<size_t>(n * g));
  w.scales.resize(static_cast<size_t>(n * g));

  if (scheme.layout == PackingLayout::kAwq) {
    format_detail::decode_awq_codes(qweight, k, n, w.codes.data());
    format_detail::decode_awq_zeros(qzeros, g, n, w.zeros.data());
  } else {
    format_detail::decode_gptq_codes(qweight, scheme.bits, k, n, w.codes.data());
    format_detail::decode_gptq_zeros(qzeros, scheme.bits, scheme.layout == PackingLayout::kGptqV1, g, n,
                                     w.zeros.data());
  }
  for (int64_t gi = 0; gi < g; ++gi)
    for (int64_t j = 0; j < n; ++j) w.scales[j * g + gi] = load_scale(scales, gi * n + j);

  if (g_idx) {
    const int32_t* src = g_idx->as<int32_t>();
    w.g_idx.assign(src, src + k);
    for (int64_t i = 0; i < k; ++i)
      ARK_CHECK(src[i] >= 0 && src[i] < g, layout_name(scheme.layout), ": tensor 'g_idx' value ", src[i],
                " at index ", i, " is outside [0, ", g, ") (", g, " groups)");
  }
  return w;
}

PackedTensors encode(const QuantizedWeight& w, PackingLayout layout, DType scale_dtype,
                     GptqV1ZeroOfZero zero_of_zero) {
  w.validate();
  ARK_CHECK(is_scale_dtype(scale_dtype), "encode: scale dtype ", dtype_name(scale_dtype),
            " is not supported (expected F16, BF16 or F32)");
  QuantScheme scheme;
  scheme.bits = w.bits;
  scheme.group_size = w.group_size;
  scheme.sym = w.sym;
  scheme.layout = layout;
  const PackedShapes shapes = packed_shapes(scheme, w.in_features, w.out_features);
  const int64_t n = w.out_features, g = w.num_groups();
  const int32_t max_stored = (1 << w.bits) - 1;
  const bool v1 = layout == PackingLayout::kGptqV1;
  for (int64_t i = 0; i < n * g; ++i) {
    const int32_t z = w.zeros[i];
    // v1 stores zero - 1, so 2^bits fits there and 0 needs the borrow or clamp; the others store zero as is.
    ARK_CHECK(v1 ? z <= max_stored + 1 : z <= max_stored, "encode ", layout_name(layout), ": zero point ", z,
              " of output ", i / g, " group ", i % g, " does not fit ", w.bits, " bits (allowed [0, ",
              v1 ? max_stored + 1 : max_stored, "])");
  }
  if (layout == PackingLayout::kAwq)
    ARK_CHECK(!w.has_act_order(),
              "encode awq: the AWQ layout has no g_idx, so a weight with act-order "
              "(g_idx other than k / group_size) cannot be stored in it");

  PackedTensors out;
  if (layout == PackingLayout::kAwq) {
    out.qweight = format_detail::encode_awq_codes(w);
    out.qzeros = format_detail::encode_awq_zeros(w);
  } else {
    out.qweight = format_detail::encode_gptq_codes(w);
    out.qzeros = format_detail::encode_gptq_zeros(w, v1, zero_of_zero);
  }
  out.scales = Tensor(scale_dtype, shapes.scales);
  for (int64_t gi = 0; gi < g; ++gi)
    for (int64_t j = 0; j < n; ++j) store_scale(out.scales, gi * n + j, w.scales[j * g + gi]);
  if (!w.g_idx.empty() && layout != PackingLayout::kAwq) {
    Tensor t(DType::I32, shapes.g_idx);
    std::copy(w.g_idx.begin(), w.g_idx.end(), t.as<int32_t>());
    out.g_idx = std::move(t);
  }
  return out;
}

}  // namespace ark
