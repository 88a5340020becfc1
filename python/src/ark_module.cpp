// ark._C: the pybind11 extension under the Python package `ark`.
//
// It takes tensors as raw (data pointer, shape, strides, dtype name) tuples rather than torch tensors, so the
// extension never links libtorch and one build serves every torch version (Debian's 1.13, PyPI's 2.x). The
// Python side (python/ark/_raw.py) builds the tuples and keeps the tensors alive across each call; this file
// checks every tuple against what the call expects before any pointer is read, and raises ValueError (through
// ark.ArkError) naming the argument.
//
// forward releases the GIL: the kernels run on ark's own thread pool, and several Python threads may run
// forwards on one packed layer at once (QuantLinear::forward is thread-safe).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "ark/chat_template.h"
#include "ark/dtype.h"
#include "ark/error.h"
#include "ark/format.h"
#include "ark/moe.h"
#include "ark/quant_config.h"
#include "ark/quant_linear.h"
#include "ark/tensor.h"
#include "linear/quant_linear_export.h"

namespace py = pybind11;

namespace ark::python {
namespace {

// One tensor argument as Python passes it: strides are in elements, as torch reports them.
struct RawTensor {
  uintptr_t data = 0;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  DType dtype = DType::F32;
  std::string name;  // the argument's name, for messages

  int64_t numel() const { return shape_numel(shape); }
  bool contiguous() const {
    int64_t expected = 1;
    for (size_t i = shape.size(); i-- > 0;) {
      if (shape[i] != 1 && strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }
  TensorView view() const { return TensorView{dtype, shape, reinterpret_cast<const std::byte*>(data)}; }
};

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

RawTensor parse_raw(const py::handle& obj, const char* name) {
  ARK_CHECK(py::isinstance<py::tuple>(obj) && py::len(obj) == 4, name,
            ": expected a (data_ptr, shape, strides, dtype) tuple");
  const auto t = py::reinterpret_borrow<py::tuple>(obj);
  RawTensor r;
  r.name = name;
  r.data = t[0].cast<uintptr_t>();
  r.shape = t[1].cast<std::vector<int64_t>>();
  r.strides = t[2].cast<std::vector<int64_t>>();
  const auto dtype = t[3].cast<std::string>();
  ARK_CHECK(parse_dtype(dtype, &r.dtype), name, ": unknown dtype '", dtype, "'");
  ARK_CHECK(r.shape.size() == r.strides.size(), name, ": shape ", shape_str(r.shape), " and strides ",
            shape_str(r.strides), " differ in rank");
  for (int64_t d : r.shape) ARK_CHECK(d >= 0, name, ": negative dimension in shape ", shape_str(r.shape));
  ARK_CHECK(r.data != 0 || r.numel() == 0, name, ": null data pointer");
  return r;
}

// A tensor the call reads or writes as a whole: contiguous (the Python side makes it so).
RawTensor parse_dense(const py::handle& obj, const char* name) {
  RawTensor r = parse_raw(obj, name);
  ARK_CHECK(r.contiguous(), name, ": expected a contiguous tensor, got shape ", shape_str(r.shape),
            " with strides ", shape_str(r.strides));
  return r;
}

void expect(const RawTensor& r, DType dtype, const std::vector<int64_t>& shape) {
  ARK_CHECK(r.dtype == dtype, r.name, ": expected dtype ", dtype_name(dtype), ", got ", dtype_name(r.dtype));
  ARK_CHECK(r.shape == shape, r.name, ": expected shape ", shape_str(shape), ", got ", shape_str(r.shape));
}

bool is_float_activation(DType t) {
  return t == DType::F32 || t == DType::BF16 || t == DType::F16;
}

PackingLayout parse_layout(const std::string& name) {
  if (name == "gptq-v1") return PackingLayout::kGptqV1;
  if (name == "gptq-v2") return PackingLayout::kGptqV2;
  if (name == "awq") return PackingLayout::kAwq;
  throw_error("layout '", name, "' is not one of gptq-v1, gptq-v2, awq");
}

QuantScheme make_scheme(int bits, int64_t group_size, bool sym, const std::string& layout) {
  QuantScheme s;
  s.bits = bits;
  s.group_size = group_size;
  s.sym = sym;
  s.layout = parse_layout(layout);
  return s;
}

// Copies an encoder's output into a tensor the caller allocated with the on-disk shape.
void copy_into(const Tensor& from, const RawTensor& to) {
  expect(to, from.dtype, from.shape);
  std::memcpy(reinterpret_cast<void*>(to.data), from.bytes.data(), from.bytes.size());
}

void write_checkpoint(const QuantizedWeight& w, PackingLayout layout, DType scale_dtype,
                      const py::handle& qweight, const py::handle& qzeros, const py::handle& scales,
                      const py::handle& g_idx) {
  const PackedTensors t = encode(w, layout, scale_dtype);
  copy_into(t.qweight, parse_dense(qweight, "qweight"));
  copy_into(t.qzeros, parse_dense(qzeros, "qzeros"));
  copy_into(t.scales, parse_dense(scales, "scales"));
  if (g_idx.is_none()) return;
  const RawTensor gi = parse_dense(g_idx, "g_idx");
  expect(gi, DType::I32, {w.in_features});
  auto* out = reinterpret_cast<int32_t*>(gi.data);
  for (int64_t k = 0; k < w.in_features; ++k) out[k] = static_cast<int32_t>(w.group_of(k));
}

// The Python-facing layer: ark::QuantLinear plus the argument checks of raw tensors.
class Layer {
 public:
  Layer(int64_t in_features, int64_t out_features, int bits, int64_t group_size, bool sym, bool bias,
        bool act_order, int64_t kernel_switch_threshold, const std::string& compute,
        const std::string& max_isa, int num_threads)
      : layer_(make_spec(in_features, out_features, bits, group_size, sym, bias, act_order,
                         kernel_switch_threshold, compute, max_isa, num_threads)) {}

  void load_checkpoint(const std::string& layout, const py::handle& qweight, const py::handle& qzeros,
                       const py::handle& scales, const py::handle& g_idx) {
    const RawTensor qw = parse_dense(qweight, "qweight"), qz = parse_dense(qzeros, "qzeros"),
                    sc = parse_dense(scales, "scales");
    std::optional<RawTensor> gi;
    if (!g_idx.is_none()) gi = parse_dense(g_idx, "g_idx");
    const TensorView gv = gi ? gi->view() : TensorView{};
    layer_.load_checkpoint(parse_layout(layout), qw.view(), qz.view(), sc.view(), gi ? &gv : nullptr);
  }

  void load_bias(const py::handle& bias) {
    const RawTensor b = parse_dense(bias, "bias");
    ARK_CHECK(b.shape.size() == 1, "bias: expected shape [", layer_.spec().out_features, "], got ",
              shape_str(b.shape));
    layer_.load_bias(reinterpret_cast<const void*>(b.data), b.dtype, b.shape[0]);
  }

  void post_init() { layer_.post_init(); }
  bool ready() const { return layer_.ready(); }

  // x [M, K] and y [M, N], contiguous, one dtype of F32/BF16/F16.
  void forward(const py::handle& x, const py::handle& y) {
    const RawTensor xr = parse_dense(x, "x"), yr = parse_dense(y, "y");
    const QuantLinearSpec& s = layer_.spec();
    ARK_CHECK(xr.shape.size() == 2 && xr.shape[1] == s.in_features, "x: expected shape [M, ", s.in_features,
              "], got ", shape_str(xr.shape));
    ARK_CHECK(is_float_activation(xr.dtype), "x: dtype ", dtype_name(xr.dtype),
              " is not supported (expected F32, BF16 or F16)");
    expect(yr, xr.dtype, {xr.shape[0], s.out_features});
    const void* xp = reinterpret_cast<const void*>(xr.data);
    void* yp = reinterpret_cast<void*>(yr.data);
    const int64_t M = xr.shape[0];
    const DType dtype = xr.dtype;
    py::gil_scoped_release release;
    layer_.forward(xp, yp, M, dtype);
  }

  // Writes the checkpoint tensors rebuilt from the packed layer into tensors the caller allocated.
  void export_checkpoint(const std::string& layout, const std::string& scale_dtype, const py::handle& qweight,
                         const py::handle& qzeros, const py::handle& scales, const py::handle& g_idx) const {
    DType sd;
    ARK_CHECK(parse_dtype(scale_dtype, &sd), "scale_dtype: unknown dtype '", scale_dtype, "'");
    write_checkpoint(layer_.unpack(), parse_layout(layout), sd, qweight, qzeros, scales, g_idx);
  }

  std::string describe() const { return layer_.describe(); }
  std::string kernel_name(int64_t M) const { return layer_.kernel_name(M); }
  size_t packed_bytes() const { return layer_.packed_bytes(); }

 private:
  static QuantLinearSpec make_spec(int64_t in_features, int64_t out_features, int bits, int64_t group_size,
                                   bool sym, bool bias, bool act_order, int64_t kernel_switch_threshold,
                                   const std::string& compute, const std::string& max_isa, int num_threads) {
    QuantLinearSpec s;
    s.in_features = in_features;
    s.out_features = out_features;
    s.bits = bits;
    s.group_size = group_size;
    s.sym = sym;
    s.bias = bias;
    s.act_order = act_order;
    s.kernel_switch_threshold = kernel_switch_threshold;
    s.mode = parse_compute_mode(compute);
    s.max_isa = max_isa;
    s.num_threads = num_threads;
    return s;
  }

  QuantLinear layer_;
};

// The Python-facing fused MoE (ark.QuantMoE): each expert linear arrives as its checkpoint tensors with its
// own scheme, as the tuple (bits, group_size, sym, layout, qweight, qzeros, scales, g_idx or None).
class Moe {
 public:
  Moe(int64_t hidden_size, int64_t intermediate_size, int num_experts, int top_k, const std::string& routing,
      bool norm_topk_prob, int64_t shared_intermediate_size, const std::string& compute,
      const std::string& max_isa, int num_threads)
      : moe_(make_spec(hidden_size, intermediate_size, num_experts, top_k, routing, norm_topk_prob,
                       shared_intermediate_size, compute, max_isa, num_threads)) {}

  void load_expert(int e, const py::handle& gate, const py::handle& up, const py::handle& down) {
    const QuantMoESpec& s = moe_.spec();
    moe_.load_expert(e, decode_linear(gate, "gate", s.hidden_size, s.intermediate_size),
                     decode_linear(up, "up", s.hidden_size, s.intermediate_size),
                     decode_linear(down, "down", s.intermediate_size, s.hidden_size));
  }

  void load_shared_expert(const py::handle& gate, const py::handle& up, const py::handle& down,
                          const py::handle& shared_gate) {
    const QuantMoESpec& s = moe_.spec();
    std::vector<float> g;
    if (!shared_gate.is_none()) {
      const RawTensor r = parse_dense(shared_gate, "shared_gate");
      expect(r, DType::F32, {s.hidden_size});
      const auto* p = reinterpret_cast<const float*>(r.data);
      g.assign(p, p + s.hidden_size);
    }
    const int64_t I = s.shared_intermediate_size;
    moe_.load_shared_expert(decode_linear(gate, "shared gate_proj", s.hidden_size, I),
                            decode_linear(up, "shared up_proj", s.hidden_size, I),
                            decode_linear(down, "shared down_proj", I, s.hidden_size), std::move(g));
  }

  void post_init() { moe_.post_init(); }
  bool ready() const { return moe_.ready(); }

  // x [T, H], router_logits [T, E], y [T, H]: float32, contiguous.
  void forward(const py::handle& x, const py::handle& logits, const py::handle& y) {
    const QuantMoESpec& s = moe_.spec();
    const RawTensor xr = parse_dense(x, "x"), lr = parse_dense(logits, "router_logits"), yr = parse_dense(y, "y");
    ARK_CHECK(xr.shape.size() == 2, "x: expected shape [T, ", s.hidden_size, "], got ", shape_str(xr.shape));
    const int64_t T = xr.shape[0];
    expect(xr, DType::F32, {T, s.hidden_size});
    expect(lr, DType::F32, {T, s.num_experts});
    expect(yr, DType::F32, {T, s.hidden_size});
    py::gil_scoped_release release;
    moe_.forward(reinterpret_cast<const float*>(xr.data), reinterpret_cast<const float*>(lr.data),
                 reinterpret_cast<float*>(yr.data), T);
  }

  // ids int32 [T, top_k], weights float32 [T, top_k].
  void forward_routed(const py::handle& x, const py::handle& ids, const py::handle& weights, const py::handle& y) {
    const QuantMoESpec& s = moe_.spec();
    const RawTensor xr = parse_dense(x, "x"), ir = parse_dense(ids, "topk_ids"),
                    wr = parse_dense(weights, "topk_weights"), yr = parse_dense(y, "y");
    ARK_CHECK(xr.shape.size() == 2, "x: expected shape [T, ", s.hidden_size, "], got ", shape_str(xr.shape));
    const int64_t T = xr.shape[0];
    expect(xr, DType::F32, {T, s.hidden_size});
    expect(ir, DType::I32, {T, s.top_k});
    expect(wr, DType::F32, {T, s.top_k});
    expect(yr, DType::F32, {T, s.hidden_size});
    py::gil_scoped_release release;
    moe_.forward_routed(reinterpret_cast<const float*>(xr.data), reinterpret_cast<const int32_t*>(ir.data),
                        reinterpret_cast<const float*>(wr.data), reinterpret_cast<float*>(yr.data), T);
  }

  // moe_route: router_logits [T, E] float32 -> ids int32 [T, top_k], weights float32 [T, top_k].
  void route(const py::handle& logits, const py::handle& ids, const py::handle& weights) const {
    const QuantMoESpec& s = moe_.spec();
    const RawTensor lr = parse_dense(logits, "router_logits"), ir = parse_dense(ids, "topk_ids"),
                    wr = parse_dense(weights, "topk_weights");
    ARK_CHECK(lr.shape.size() == 2, "router_logits: expected shape [T, ", s.num_experts, "], got ",
              shape_str(lr.shape));
    const int64_t T = lr.shape[0];
    expect(lr, DType::F32, {T, s.num_experts});
    expect(ir, DType::I32, {T, s.top_k});
    expect(wr, DType::F32, {T, s.top_k});
    moe_route(s, reinterpret_cast<const float*>(lr.data), T, reinterpret_cast<int32_t*>(ir.data),
              reinterpret_cast<float*>(wr.data));
  }

  std::string describe() const { return moe_.describe(); }
  size_t packed_bytes() const { return moe_.packed_bytes(); }

 private:
  static QuantMoESpec make_spec(int64_t hidden_size, int64_t intermediate_size, int num_experts, int top_k,
                                const std::string& routing, bool norm_topk_prob,
                                int64_t shared_intermediate_size, const std::string& compute,
                                const std::string& max_isa, int num_threads) {
    QuantMoESpec s;
    s.hidden_size = hidden_size;
    s.intermediate_size = intermediate_size;
    s.num_experts = num_experts;
    s.top_k = top_k;
    if (routing == "softmax_topk")
      s.routing = MoeRouting::kSoftmaxThenTopK;
    else if (routing == "topk_softmax")
      s.routing = MoeRouting::kTopKThenSoftmax;
    else
      throw_error("routing '", routing, "' is not one of softmax_topk, topk_softmax");
    s.norm_topk_prob = norm_topk_prob;
    s.shared_intermediate_size = shared_intermediate_size;
    s.mode = parse_compute_mode(compute);
    s.max_isa = max_isa;
    s.num_threads = num_threads;
    return s;
  }

  static QuantizedWeight decode_linear(const py::handle& obj, const char* name, int64_t in, int64_t out) {
    ARK_CHECK(py::isinstance<py::tuple>(obj) && py::len(obj) == 8, name,
              ": expected (bits, group_size, sym, layout, qweight, qzeros, scales, g_idx or None)");
    const auto t = py::reinterpret_borrow<py::tuple>(obj);
    const QuantScheme scheme =
        make_scheme(t[0].cast<int>(), t[1].cast<int64_t>(), t[2].cast<bool>(), t[3].cast<std::string>());
    const std::string n = name;
    const RawTensor qw = parse_dense(t[4], (n + ".qweight").c_str()), qz = parse_dense(t[5], (n + ".qzeros").c_str()),
                    sc = parse_dense(t[6], (n + ".scales").c_str());
    std::optional<RawTensor> gi;
    if (!t[7].is_none()) gi = parse_dense(t[7], (n + ".g_idx").c_str());
    const TensorView gv = gi ? gi->view() : TensorView{};
    try {
      return decode(scheme, in, out, qw.view(), qz.view(), sc.view(), gi ? &gv : nullptr);
    } catch (const Error& e) {
      throw_error(name, ": ", e.what());
    }
  }

  QuantMoE moe_;
};

py::dict packed_shapes_py(int bits, int64_t group_size, bool sym, const std::string& layout,
                          int64_t in_features, int64_t out_features) {
  const QuantScheme scheme = make_scheme(bits, group_size, sym, layout);
  const PackedShapes s = packed_shapes(scheme, in_features, out_features);
  py::dict d;
  d["qweight"] = s.qweight;
  d["qzeros"] = s.qzeros;
  d["scales"] = s.scales;
  d["g_idx"] = s.g_idx;
  return d;
}

// ark's RTN quantizer writing on-disk tensors: how tests and benchmarks make real checkpoints.
void quantize_rtn_py(const py::handle& w, int bits, int64_t group_size, bool sym, const std::string& layout,
                     const py::handle& act_order_perm, const std::string& scale_dtype,
                     const py::handle& qweight, const py::handle& qzeros, const py::handle& scales,
                     const py::handle& g_idx) {
  const RawTensor wr = parse_dense(w, "weight");
  ARK_CHECK(wr.shape.size() == 2, "weight: expected shape [out_features, in_features], got ",
            shape_str(wr.shape));
  const QuantScheme scheme = make_scheme(bits, group_size, sym, layout);
  DType sd;
  ARK_CHECK(parse_dtype(scale_dtype, &sd), "scale_dtype: unknown dtype '", scale_dtype, "'");
  std::optional<RawTensor> perm;
  if (!act_order_perm.is_none()) {
    perm = parse_dense(act_order_perm, "act_order_perm");
    expect(*perm, DType::I32, {wr.shape[1]});
  }
  const QuantizedWeight q =
      quantize_rtn(wr.view(), scheme, perm ? reinterpret_cast<const int32_t*>(perm->data) : nullptr, sd);
  write_checkpoint(q, scheme.layout, sd, qweight, qzeros, scales, g_idx);
}

// The dense fp32 weight [N, K] a layer's checkpoint tensors stand for (backward and baselines use it).
void dequantize_checkpoint_py(int bits, int64_t group_size, bool sym, const std::string& layout,
                              int64_t in_features, int64_t out_features, const py::handle& qweight,
                              const py::handle& qzeros, const py::handle& scales, const py::handle& g_idx,
                              const py::handle& out) {
  const QuantScheme scheme = make_scheme(bits, group_size, sym, layout);
  const RawTensor qw = parse_dense(qweight, "qweight"), qz = parse_dense(qzeros, "qzeros"),
                  sc = parse_dense(scales, "scales"), o = parse_dense(out, "out");
  expect(o, DType::F32, {out_features, in_features});
  std::optional<RawTensor> gi;
  if (!g_idx.is_none()) gi = parse_dense(g_idx, "g_idx");
  const TensorView gv = gi ? gi->view() : TensorView{};
  std::vector<float> dense;
  {
    py::gil_scoped_release release;
    dense = dequantize(
        decode(scheme, in_features, out_features, qw.view(), qz.view(), sc.view(), gi ? &gv : nullptr));
  }
  std::memcpy(reinterpret_cast<void*>(o.data), dense.data(), dense.size() * sizeof(float));
}

// quantization_config (JSON text: the object itself or a whole config.json) and the names of every Linear
// layer -> {name: (bits, group_size, sym, layout)} for the layers it quantizes, by the rules the runtime
// applies (include/ark/quant_config.h), so framework loaders (python/ark/hf.py, python/ark/vllm) never
// re-implement them.
py::dict resolve_quant_config_py(const std::string& json_text, const std::vector<std::string>& layer_names) {
  const auto config = ark::QuantConfig::from_json_string(json_text, "quantization_config");
  py::dict out;
  for (const auto& [name, s] : config.resolve(layer_names))
    out[py::str(name)] = py::make_tuple(s.bits, s.group_size, s.sym, std::string(ark::layout_name(s.layout)));
  return out;
}

}  // namespace
}  // namespace ark::python

#ifdef ARK_HAVE_CUDA
namespace ark::python {
void register_cuda(py::module_& m);  // python/src/cuda_layer.cpp: ark._C.CudaLayer
}
#endif

PYBIND11_MODULE(_C, m) {
  using namespace ark::python;
  m.doc() = "ark's C++ QuantLinear and weight formats over raw tensor pointers (see python/ark)";
  // A ValueError subclass: every bad argument, shape, dtype or option the library rejects.
  py::register_exception<ark::Error>(m, "ArkError", PyExc_ValueError);

  py::class_<Layer>(m, "Layer")
      .def(py::init<int64_t, int64_t, int, int64_t, bool, bool, bool, int64_t, const std::string&,
                    const std::string&, int>(),
           py::arg("in_features"), py::arg("out_features"), py::arg("bits"), py::arg("group_size"),
           py::arg("sym"), py::arg("bias"), py::arg("act_order"), py::arg("kernel_switch_threshold"),
           py::arg("compute") = "auto", py::arg("max_isa") = "", py::arg("num_threads") = 0)
      .def("load_checkpoint", &Layer::load_checkpoint, py::arg("layout"), py::arg("qweight"),
           py::arg("qzeros"), py::arg("scales"), py::arg("g_idx") = py::none())
      .def("load_bias", &Layer::load_bias, py::arg("bias"))
      .def("post_init", &Layer::post_init)
      .def_property_readonly("ready", &Layer::ready)
      .def("forward", &Layer::forward, py::arg("x"), py::arg("y"))
      .def("export_checkpoint", &Layer::export_checkpoint, py::arg("layout"), py::arg("scale_dtype"),
           py::arg("qweight"), py::arg("qzeros"), py::arg("scales"), py::arg("g_idx") = py::none())
      .def("describe", &Layer::describe)
      .def("kernel_name", &Layer::kernel_name, py::arg("M"))
      .def_property_readonly("packed_bytes", &Layer::packed_bytes);

  py::class_<Moe>(m, "Moe")
      .def(py::init<int64_t, int64_t, int, int, const std::string&, bool, int64_t, const std::string&,
                    const std::string&, int>(),
           py::arg("hidden_size"), py::arg("intermediate_size"), py::arg("num_experts"), py::arg("top_k"),
           py::arg("routing") = "softmax_topk", py::arg("norm_topk_prob") = false,
           py::arg("shared_intermediate_size") = 0, py::arg("compute") = "auto", py::arg("max_isa") = "",
           py::arg("num_threads") = 0)
      .def("load_expert", &Moe::load_expert, py::arg("e"), py::arg("gate"), py::arg("up"), py::arg("down"))
      .def("load_shared_expert", &Moe::load_shared_expert, py::arg("gate"), py::arg("up"), py::arg("down"),
           py::arg("shared_gate") = py::none())
      .def("post_init", &Moe::post_init)
      .def_property_readonly("ready", &Moe::ready)
      .def("forward", &Moe::forward, py::arg("x"), py::arg("router_logits"), py::arg("y"))
      .def("forward_routed", &Moe::forward_routed, py::arg("x"), py::arg("topk_ids"), py::arg("topk_weights"),
           py::arg("y"))
      .def("route", &Moe::route, py::arg("router_logits"), py::arg("topk_ids"), py::arg("topk_weights"))
      .def("describe", &Moe::describe)
      .def_property_readonly("packed_bytes", &Moe::packed_bytes);

  m.def("packed_shapes", &packed_shapes_py, py::arg("bits"), py::arg("group_size"), py::arg("sym"),
        py::arg("layout"), py::arg("in_features"), py::arg("out_features"));
  m.def("quantize_rtn", &quantize_rtn_py, py::arg("weight"), py::arg("bits"), py::arg("group_size"),
        py::arg("sym"), py::arg("layout"), py::arg("act_order_perm"), py::arg("scale_dtype"),
        py::arg("qweight"), py::arg("qzeros"), py::arg("scales"), py::arg("g_idx"));
  m.def("dequantize_checkpoint", &dequantize_checkpoint_py, py::arg("bits"), py::arg("group_size"),
        py::arg("sym"), py::arg("layout"), py::arg("in_features"), py::arg("out_features"),
        py::arg("qweight"), py::arg("qzeros"), py::arg("scales"), py::arg("g_idx"), py::arg("out"));
#ifdef ARK_HAVE_CUDA
  register_cuda(m);
#endif
  m.def("resolve_quant_config", &resolve_quant_config_py, py::arg("json_text"), py::arg("layer_names"));
  // A chat template (source text, or a checkpoint directory's) rendered with variables given as a JSON
  // object (ark/chat_template.h: ChatTemplate::render_json); for the tests against jinja2/transformers.
  using TokenMap = std::map<std::string, std::string>;
  m.def(
      "render_chat_template",
      [](const std::string& source, const std::string& variables_json, const TokenMap& tokens) {
        return ark::ChatTemplate::from_jinja(source, tokens).render_json(variables_json);
      },
      py::arg("source"), py::arg("variables_json"), py::arg("special_tokens") = TokenMap{});
  m.def(
      "render_chat_template_dir",
      [](const std::string& dir, const std::string& variables_json) {
        return ark::ChatTemplate::from_dir(dir).render_json(variables_json);
      },
      py::arg("dir"), py::arg("variables_json"));
}
