// CudaQuantLinear: validation, loading, packing (host) and upload, and the forward that checks its arguments
// and calls the C-style launcher (launch.h). Every CUDA or cuBLAS failure becomes an ark::Error naming the call.
#include "ark/cuda_linear.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <sstream>
#include <vector>

#include "ark/format.h"
#include "kernels/cuda/cuda_pack.h"
#include "kernels/cuda/launch.h"

namespace ark {
namespace {

void check_cuda(cudaError_t e, const char* what) {
  ARK_CHECK(e == cudaSuccess, "CudaQuantLinear: ", what, " failed: ", cudaGetErrorString(e));
}

// Device memory owned by the layer, freed on the device it was allocated on.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  int device = 0;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { release(); }
  void release() {
    if (!ptr) return;
    int prev = 0;
    cudaGetDevice(&prev);
    cudaSetDevice(device);
    cudaFree(ptr);
    cudaSetDevice(prev);
    ptr = nullptr;
    bytes = 0;
  }
  void allocate(size_t n, int dev) {
    release();
    device = dev;
    bytes = n;
    if (n) check_cuda(cudaMalloc(&ptr, n), "cudaMalloc");
  }
  template <typename T>
  void upload(const std::vector<T>& v, int dev) {
    allocate(v.size() * sizeof(T), dev);
    if (bytes) check_cuda(cudaMemcpy(ptr, v.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
  }
};

}  // namespace

std::string_view cuda_kernel_name(CudaKernel k) {
  switch (k) {
    case CudaKernel::kAuto:
      return "auto";
    case CudaKernel::kMma:
      return "mma";
    case CudaKernel::kDequantGemm:
      return "dequant_gemm";
    case CudaKernel::kSimt:
      return "simt";
    case CudaKernel::kGemv:
      return "gemv";
    case CudaKernel::kWgmma:
      return "wgmma";
  }
  return "?";
}

CudaKernel parse_cuda_kernel(std::string_view name) {
  for (CudaKernel k : {CudaKernel::kAuto, CudaKernel::kMma, CudaKernel::kDequantGemm, CudaKernel::kSimt,
                       CudaKernel::kGemv, CudaKernel::kWgmma})
    if (cuda_kernel_name(k) == name) return k;
  throw_error("cuda kernel '", name, "' is not one of auto, mma, dequant_gemm, simt, gemv, wgmma");
}

bool cuda_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

struct CudaQuantLinear::Impl {
  CudaLinearSpec spec;
  int64_t group_size = 0;
  std::optional<QuantizedWeight> weight;
  std::vector<float> bias;
  bool ready = false;
  int device = 0;
  cuda::DeviceInfo dev;
  cuda::PackedView view;
  DeviceBuffer codes, scales, zeros, block_group, k_source, bias_dev, workspace;
  cublasLtHandle_t cublaslt = nullptr;
  cuda::GemmAlgoCache* algos = nullptr;

  ~Impl() {
    if (cublaslt) cublasLtDestroy(cublaslt);
    cuda::destroy_algo_cache(algos);
  }

  cuda::Family family_for(int64_t M) const {
    switch (spec.kernel) {
      case CudaKernel::kMma:
        return cuda::Family::kMma;
      case CudaKernel::kDequantGemm:
        return cuda::Family::kDequantGemm;
      case CudaKernel::kSimt:
        return cuda::Family::kSimt;
      case CudaKernel::kGemv:
        return cuda::Family::kGemv;  // make_plan runs mma above gemv's M range
      case CudaKernel::kWgmma:
        return cuda::Family::kWgmma;  // make_plan runs mma where the device has no wgmma
      case CudaKernel::kAuto:
        break;
    }
    return cuda::auto_family(view, M, spec.large_m_threshold, dev);
  }
  cuda::Plan plan(int64_t M) const {
    return cuda::make_plan(view, M, family_for(M), dev, spec.mma_splits, spec.gemv_block_tiles);
  }
};

CudaQuantLinear::CudaQuantLinear(CudaLinearSpec spec) : impl_(std::make_unique<Impl>()) {
  ARK_CHECK(spec.in_features > 0, "CudaLinearSpec.in_features: ", spec.in_features, " must be positive");
  ARK_CHECK(spec.out_features > 0, "CudaLinearSpec.out_features: ", spec.out_features, " must be positive");
  ARK_CHECK(spec.bits == 2 || spec.bits == 3 || spec.bits == 4 || spec.bits == 8, "CudaLinearSpec.bits: ",
            spec.bits, " is not supported (expected 2, 3, 4 or 8)");
  ARK_CHECK(spec.group_size == -1 || (spec.group_size > 0 && spec.group_size <= spec.in_features),
            "CudaLinearSpec.group_size: ", spec.group_size, " must be -1 or in [1, in_features=",
            spec.in_features, "]");
  ARK_CHECK(spec.large_m_threshold >= 1, "CudaLinearSpec.large_m_threshold: ", spec.large_m_threshold,
            " must be at least 1");
  ARK_CHECK(spec.max_m >= 0, "CudaLinearSpec.max_m: ", spec.max_m, " must not be negative");
  ARK_CHECK(spec.mma_splits >= 0, "CudaLinearSpec.mma_splits: ", spec.mma_splits,
            " must not be negative (0: the cost model)");
  ARK_CHECK(spec.gemv_block_tiles == 0 || spec.gemv_block_tiles == 1 || spec.gemv_block_tiles == 2 ||
                spec.gemv_block_tiles == 4 || spec.gemv_block_tiles == 8,
            "CudaLinearSpec.gemv_block_tiles: ", spec.gemv_block_tiles,
            " is not 0 (the cost model), 1, 2, 4 or 8");
  impl_->group_size = spec.group_size == -1 ? spec.in_features : spec.group_size;
  impl_->spec = spec;
}

CudaQuantLinear::~CudaQuantLinear() = default;
CudaQuantLinear::CudaQuantLinear(CudaQuantLinear&&) noexcept = default;
CudaQuantLinear& CudaQuantLinear::operator=(CudaQuantLinear&&) noexcept = default;

const CudaLinearSpec& CudaQuantLinear::spec() const { return impl_->spec; }

void CudaQuantLinear::load(QuantizedWeight w) {
  const CudaLinearSpec& s = impl_->spec;
  ARK_CHECK(w.out_features == s.out_features && w.in_features == s.in_features,
            "CudaQuantLinear::load: weight is ", w.out_features, "x", w.in_features, ", expected ",
            s.out_features, "x", s.in_features);
  ARK_CHECK(w.bits == s.bits, "CudaQuantLinear::load: weight has ", w.bits, " bits, expected ", s.bits);
  ARK_CHECK(w.group_size == impl_->group_size, "CudaQuantLinear::load: weight has group size ", w.group_size,
            ", expected ", impl_->group_size);
  ARK_CHECK(!s.act_order || !w.g_idx.empty(), "CudaQuantLinear::load: spec.act_order is set but the weight has "
            "no g_idx");
  w.validate();
  impl_->weight = std::move(w);
  impl_->ready = false;
}

void CudaQuantLinear::load_checkpoint(PackingLayout layout, const TensorView& qweight, const TensorView& qzeros,
                                      const TensorView& scales, const TensorView* g_idx) {
  const CudaLinearSpec& s = impl_->spec;
  QuantScheme scheme;
  scheme.bits = s.bits;
  scheme.group_size = s.group_size;
  scheme.sym = s.sym;
  scheme.layout = layout;
  load(decode(scheme, s.in_features, s.out_features, qweight, qzeros, scales, g_idx));
}

void CudaQuantLinear::load_bias(const void* bias, DType dtype, int64_t n) {
  ARK_CHECK(impl_->spec.bias, "CudaQuantLinear::load_bias: the spec has bias = false");
  ARK_CHECK(bias != nullptr, "CudaQuantLinear::load_bias: null pointer");
  ARK_CHECK(n == impl_->spec.out_features, "CudaQuantLinear::load_bias: ", n, " values, expected ",
            impl_->spec.out_features);
  std::vector<float> b(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == DType::F32) {
      b[i] = static_cast<const float*>(bias)[i];
    } else if (dtype == DType::BF16) {
      b[i] = bf16_to_float(static_cast<const uint16_t*>(bias)[i]);
    } else if (dtype == DType::F16) {
      b[i] = fp16_to_float(static_cast<const uint16_t*>(bias)[i]);
    } else {
      throw_error("CudaQuantLinear::load_bias: dtype ", dtype_name(dtype), " is not F32, BF16 or F16");
    }
  }
  impl_->bias = std::move(b);
  impl_->ready = false;
}

void CudaQuantLinear::post_init() {
  Impl& m = *impl_;
  ARK_CHECK(m.weight.has_value() || m.ready, "CudaQuantLinear::post_init: no weight loaded");
  ARK_CHECK(!m.spec.bias || !m.bias.empty(), "CudaQuantLinear::post_init: spec.bias is set but no bias was "
            "loaded");
  if (m.ready && !m.weight) return;
  const cuda::HostPacked hp = cuda::pack_for_cuda(*m.weight);

  int prev = 0;
  check_cuda(cudaGetDevice(&prev), "cudaGetDevice");
  m.device = m.spec.device >= 0 ? m.spec.device : prev;
  check_cuda(cudaSetDevice(m.device), "cudaSetDevice");
  struct Restore {
    int d;
    ~Restore() { cudaSetDevice(d); }
  } restore{prev};
  check_cuda(cudaDeviceGetAttribute(&m.dev.sm_count, cudaDevAttrMultiProcessorCount, m.device),
             "cudaDeviceGetAttribute(multiprocessor count)");
  check_cuda(cudaDeviceGetAttribute(&m.dev.smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, m.device),
             "cudaDeviceGetAttribute(shared memory per multiprocessor)");
  check_cuda(cudaDeviceGetAttribute(&m.dev.smem_per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, m.device),
             "cudaDeviceGetAttribute(shared memory per block, opt-in)");
  m.dev.wgmma = cuda::wgmma_supported(m.device);
  int s = cuda::prepare_kernels(m.dev.smem_per_block);
  if (s == cuda::kOk) s = cuda::prepare_gemv_kernels(m.dev.smem_per_block);
  if (s == cuda::kOk && m.dev.wgmma) s = cuda::prepare_wgmma_kernels(m.dev.smem_per_block);
  ARK_CHECK(s == cuda::kOk, "CudaQuantLinear::post_init: raising the kernels' shared-memory limit failed (",
            cuda::status_message(s), ")");
  if (!m.cublaslt)
    ARK_CHECK(cublasLtCreate(&m.cublaslt) == CUBLAS_STATUS_SUCCESS, "CudaQuantLinear::post_init: cublasLtCreate "
              "failed");
  if (!m.algos) {
    m.algos = cuda::create_algo_cache();
    ARK_CHECK(m.algos != nullptr, "CudaQuantLinear::post_init: out of host memory for the cuBLASLt cache");
  }

  m.codes.upload(hp.codes, m.device);
  m.scales.upload(hp.scales, m.device);
  m.zeros.upload(hp.zeros, m.device);
  m.block_group.upload(hp.block_group, m.device);
  m.k_source.upload(hp.k_source, m.device);
  m.bias_dev.upload(m.bias, m.device);
  cuda::PackedView v;
  v.codes = static_cast<const uint32_t*>(m.codes.ptr);
  v.scales = static_cast<const float*>(m.scales.ptr);
  v.zeros = static_cast<const uint16_t*>(m.zeros.ptr);
  v.block_group = static_cast<const int32_t*>(m.block_group.ptr);
  v.k_source = hp.k_source.empty() ? nullptr : static_cast<const int32_t*>(m.k_source.ptr);
  v.bias = m.bias.empty() ? nullptr : static_cast<const float*>(m.bias_dev.ptr);
  v.n = hp.n;
  v.k = hp.k;
  v.groups = hp.groups;
  v.n8_tiles = hp.n8_tiles;
  v.chunks = hp.chunks;
  v.chunk_group_step = hp.chunk_group_step;
  v.chunk_one_group = hp.chunk_one_group;
  v.bits = hp.bits;
  m.view = v;

  size_t ws = 0;
  if (m.spec.max_m > 0) {
    // The largest plan up to max_m (host arithmetic only; the split factor does not grow monotonically with M).
    for (int64_t M = 1; M <= m.spec.max_m; ++M) ws = std::max(ws, m.plan(M).workspace_bytes);
  }
  m.workspace.allocate(ws, m.device);
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize after upload");
  m.weight.reset();
  m.ready = true;
}

bool CudaQuantLinear::ready() const { return impl_->ready; }

size_t CudaQuantLinear::workspace_bytes(int64_t M) const {
  ARK_CHECK(impl_->ready, "CudaQuantLinear::workspace_bytes: call post_init first");
  ARK_CHECK(M >= 0, "CudaQuantLinear::workspace_bytes: M = ", M, " is negative");
  return M == 0 ? 0 : impl_->plan(M).workspace_bytes;
}

void CudaQuantLinear::forward(const void* x, void* y, int64_t M, DType dtype, CUstream_st* stream,
                              void* workspace, size_t workspace_size) const {
  const Impl& m = *impl_;
  ARK_CHECK(m.ready, "CudaQuantLinear::forward: not packed; call post_init first");
  ARK_CHECK(M >= 0, "CudaQuantLinear::forward: M = ", M, " is negative");
  if (M == 0) return;
  ARK_CHECK(x != nullptr && y != nullptr, "CudaQuantLinear::forward: null x or y");
  ARK_CHECK(dtype == DType::F16 || dtype == DType::BF16, "CudaQuantLinear::forward: dtype ", dtype_name(dtype),
            " is not supported (expected F16 or BF16)");
  const cuda::Plan plan = m.plan(M);
  if (!workspace) {
    workspace = m.workspace.ptr;
    workspace_size = m.workspace.bytes;
  }
  ARK_CHECK(plan.workspace_bytes == 0 || workspace_size >= plan.workspace_bytes,
            "CudaQuantLinear::forward: M = ", M, " needs a workspace of ", plan.workspace_bytes,
            " bytes (workspace_bytes(M)); got ", workspace_size, " (spec.max_m = ", m.spec.max_m, ")");
  const int s = cuda::launch_linear(m.view, plan, x, y, M, dtype == DType::BF16, workspace, workspace_size,
                                    stream, m.cublaslt, m.algos);
  ARK_CHECK(s == cuda::kOk, "CudaQuantLinear::forward: ", kernel_name(M), " failed: ", cuda::status_message(s),
            " (", cudaGetErrorString(cudaGetLastError()), ")");
}

void CudaQuantLinear::set_mma_splits(int splits) {
  ARK_CHECK(splits >= 0, "CudaQuantLinear::set_mma_splits: ", splits,
            " must not be negative (0: the cost model)");
  impl_->spec.mma_splits = splits;
}

void CudaQuantLinear::set_gemv_block_tiles(int tiles) {
  ARK_CHECK(tiles == 0 || tiles == 1 || tiles == 2 || tiles == 4 || tiles == 8,
            "CudaQuantLinear::set_gemv_block_tiles: ", tiles, " is not 0 (the cost model), 1, 2, 4 or 8");
  impl_->spec.gemv_block_tiles = tiles;
}

std::string CudaQuantLinear::kernel_name(int64_t M) const {
  ARK_CHECK(impl_->ready, "CudaQuantLinear::kernel_name: call post_init first");
  ARK_CHECK(M >= 1, "CudaQuantLinear::kernel_name: M = ", M, " must be at least 1");
  const cuda::Plan p = impl_->plan(M);
  std::ostringstream o;
  const int bits = impl_->spec.bits;
  switch (p.family) {
    case cuda::Family::kMma:
      o << "mma_w" << bits << "_m" << 16 * p.m_tiles << "_splitk" << p.splits;
      break;
    case cuda::Family::kDequantGemm:
      o << "dequant_w" << bits << "_cublaslt" << (p.gather ? "_gather" : "");
      break;
    case cuda::Family::kSimt:
      o << "simt_w" << bits;
      break;
    case cuda::Family::kGemv:
      o << "gemv_w" << bits << "_t" << p.block_tiles;
      if (p.gemv_stream_k)
        o << "_sk" << p.gemv_sk_blocks;  // the stream-K schedule over that many blocks
      else
        o << "_splitk" << p.splits << (p.gemv_cluster ? "_cluster" : "");  // summed in a thread-block cluster
      break;
    case cuda::Family::kWgmma:
      o << "wgmma_w" << bits << "_n"
        << (p.wgmma_wide ? cuda::wgmma_wide_tiles(p.wgmma_rows) : cuda::kWgmmaBlockTiles) * cuda::kTileRows
        << (p.wgmma_pingpong ? "pp" : "") << "_m" << p.wgmma_rows
        << (p.wgmma_scale_after ? "_sa" : "");  // each chunk's sums scaled after its wgmmas
      if (p.wgmma_sk.blocks > 0)
        o << "_sk" << p.wgmma_sk.blocks;  // the stream-K schedule over that many blocks
      else
        o << "_splitk" << p.splits;
      break;
  }
  return o.str();
}

std::string CudaQuantLinear::describe() const {
  const Impl& m = *impl_;
  std::ostringstream o;
  o << "cuda: " << m.spec.in_features << "->" << m.spec.out_features << " int" << m.spec.bits << " g"
    << m.group_size << (m.spec.sym ? " sym" : " asym") << ", kernel " << cuda_kernel_name(m.spec.kernel)
    << ", large_m_threshold " << m.spec.large_m_threshold;
  if (m.ready)
    o << ", device " << m.device << " (" << m.dev.sm_count << " SMs), packed " << packed_bytes() << " bytes, "
      << (m.view.k_source ? "K reordered" : "K identity") << ", M=1: " << kernel_name(1) << ", M="
      << m.spec.large_m_threshold << ": " << kernel_name(m.spec.large_m_threshold);
  return o.str();
}

size_t CudaQuantLinear::packed_bytes() const {
  const Impl& m = *impl_;
  return m.codes.bytes + m.scales.bytes + m.zeros.bytes + m.block_group.bytes + m.k_source.bytes +
         m.bias_dev.bytes;
}

}  // namespace ark
