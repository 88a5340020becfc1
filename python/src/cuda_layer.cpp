// ark._C.CudaLayer: CudaQuantLinear (ark/cuda_linear.h) for the Python package (python/ark/_cuda.py).
//
// Checkpoint tensors arrive as raw CPU tuples (data_ptr, shape, strides, dtype name), like the CPU layer's;
// forward takes bare device addresses and torch's current stream as integers: the Python side has checked
// devices, shapes, dtypes and contiguity, and allocated y and the workspace with torch's caching allocator
// (which is what keeps forward free of allocation and safe to capture in a CUDA graph). The GIL is released
// while the launch is enqueued.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "ark/cuda_linear.h"
#include "ark/dtype.h"
#include "ark/error.h"
#include "ark/tensor.h"

namespace py = pybind11;

namespace ark::python {
namespace {

struct HostTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uintptr_t data = 0;
  TensorView view() const { return TensorView{dtype, shape, reinterpret_cast<const std::byte*>(data)}; }
};

HostTensor parse_host(const py::handle& obj, const char* name) {
  ARK_CHECK(py::isinstance<py::tuple>(obj) && py::len(obj) == 4, name,
            ": expected a (data_ptr, shape, strides, dtype) tuple");
  const auto t = py::reinterpret_borrow<py::tuple>(obj);
  HostTensor h;
  h.data = t[0].cast<uintptr_t>();
  h.shape = t[1].cast<std::vector<int64_t>>();
  const auto strides = t[2].cast<std::vector<int64_t>>();
  const auto dtype = t[3].cast<std::string>();
  ARK_CHECK(parse_dtype(dtype, &h.dtype), name, ": unknown dtype '", dtype, "'");
  ARK_CHECK(strides.size() == h.shape.size(), name, ": shape and strides differ in rank");
  int64_t expected = 1;
  for (size_t i = h.shape.size(); i-- > 0;) {
    ARK_CHECK(h.shape[i] == 1 || strides[i] == expected, name, ": expected a contiguous tensor");
    expected *= h.shape[i];
  }
  ARK_CHECK(h.data != 0 || expected == 0, name, ": null data pointer");
  return h;
}

PackingLayout layout_of(const std::string& name) {
  if (name == "gptq-v1") return PackingLayout::kGptqV1;
  if (name == "gptq-v2") return PackingLayout::kGptqV2;
  if (name == "awq") return PackingLayout::kAwq;
  throw_error("layout '", name, "' is not one of gptq-v1, gptq-v2, awq");
}

class CudaLayer {
 public:
  CudaLayer(int64_t in_features, int64_t out_features, int bits, int64_t group_size, bool sym, bool bias,
            bool act_order, int64_t large_m_threshold, const std::string& kernel, int device)
      : layer_(spec(in_features, out_features, bits, group_size, sym, bias, act_order, large_m_threshold, kernel,
                    device)) {}

  void load_checkpoint(const std::string& layout, const py::handle& qweight, const py::handle& qzeros,
                       const py::handle& scales, const py::handle& g_idx) {
    const HostTensor qw = parse_host(qweight, "qweight"), qz = parse_host(qzeros, "qzeros"),
                     sc = parse_host(scales, "scales");
    std::optional<HostTensor> gi;
    if (!g_idx.is_none()) gi = parse_host(g_idx, "g_idx");
    const TensorView gv = gi ? gi->view() : TensorView{};
    layer_.load_checkpoint(layout_of(layout), qw.view(), qz.view(), sc.view(), gi ? &gv : nullptr);
  }
  void load_bias(const py::handle& bias) {
    const HostTensor b = parse_host(bias, "bias");
    ARK_CHECK(b.shape.size() == 1, "bias: expected a 1-D tensor");
    layer_.load_bias(reinterpret_cast<const void*>(b.data), b.dtype, b.shape[0]);
  }
  void post_init() { layer_.post_init(); }
  size_t workspace_bytes(int64_t M) const { return layer_.workspace_bytes(M); }
  void forward(uintptr_t x, uintptr_t y, int64_t M, const std::string& dtype, uintptr_t stream, uintptr_t ws,
               size_t ws_bytes) {
    DType t;
    ARK_CHECK(parse_dtype(dtype, &t), "x: unknown dtype '", dtype, "'");
    py::gil_scoped_release release;
    layer_.forward(reinterpret_cast<const void*>(x), reinterpret_cast<void*>(y), M, t,
                   reinterpret_cast<CUstream_st*>(stream), reinterpret_cast<void*>(ws), ws_bytes);
  }
  std::string describe() const { return layer_.describe(); }
  std::string kernel_name(int64_t M) const { return layer_.kernel_name(M); }
  size_t packed_bytes() const { return layer_.packed_bytes(); }

 private:
  static CudaLinearSpec spec(int64_t in_features, int64_t out_features, int bits, int64_t group_size, bool sym,
                             bool bias, bool act_order, int64_t large_m_threshold, const std::string& kernel,
                             int device) {
    CudaLinearSpec s;
    s.in_features = in_features;
    s.out_features = out_features;
    s.bits = bits;
    s.group_size = group_size;
    s.sym = sym;
    s.bias = bias;
    s.act_order = act_order;
    s.large_m_threshold = large_m_threshold;
    s.kernel = parse_cuda_kernel(kernel);
    s.device = device;
    return s;
  }
  CudaQuantLinear layer_;
};

}  // namespace

void register_cuda(py::module_& m) {
  py::class_<CudaLayer>(m, "CudaLayer")
      .def(py::init<int64_t, int64_t, int, int64_t, bool, bool, bool, int64_t, const std::string&, int>(),
           py::arg("in_features"), py::arg("out_features"), py::arg("bits"), py::arg("group_size"),
           py::arg("sym"), py::arg("bias"), py::arg("act_order"), py::arg("large_m_threshold") = 256,
           py::arg("kernel") = "auto", py::arg("device") = -1)
      .def("load_checkpoint", &CudaLayer::load_checkpoint, py::arg("layout"), py::arg("qweight"),
           py::arg("qzeros"), py::arg("scales"), py::arg("g_idx") = py::none())
      .def("load_bias", &CudaLayer::load_bias, py::arg("bias"))
      .def("post_init", &CudaLayer::post_init)
      .def("workspace_bytes", &CudaLayer::workspace_bytes, py::arg("M"))
      .def("forward", &CudaLayer::forward, py::arg("x"), py::arg("y"), py::arg("M"), py::arg("dtype"),
           py::arg("stream"), py::arg("workspace"), py::arg("workspace_bytes"))
      .def("describe", &CudaLayer::describe)
      .def("kernel_name", &CudaLayer::kernel_name, py::arg("M"))
      .def_property_readonly("packed_bytes", &CudaLayer::packed_bytes);
  m.attr("has_cuda") = true;
}

}  // namespace ark::python
