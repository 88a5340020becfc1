// Times CudaQuantLinear (int4 g128 sym by default) against cuBLAS bf16 (cuBLASLt, the kernel behind torch's
// F.linear) on the issue-6 shapes, and measures the device-to-device copy bandwidth in the same process.
// Weights are rotated over more than 200 MB of copies (more than L2) and each timed loop is one CUDA graph of
// one forward per copy, so launch overhead and L2 residency are both out of the figures. Prints CSV; never
// passes or fails on time. torch's int4 kernel is timed by bench/cuda_torch_baselines.py.
//
//   ark_cuda_bench [--quick] [--auto-only] [--sweep-splits] [--sweep-gemv [--quick]] [--sweep-gemv-auto]
//                  [--sweep-gemv-pdl] [--sweep-gemv-pairs] [--sweep-gemv-sk]
//                  [--sweep-wgmma [--quick | --small]] [--sweep-wgmma-sk]
//                  [--once K N M auto|mma|gemv|wgmma] [--bits B] [--group G]
// --auto-only: the table with its kAuto and cuBLAS columns only (the family columns print 0), to compare
// build variants in a short call.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ark/cuda_linear.h"
#include "ark/dtype.h"
#include "kernels/cuda/launch.h"  // cuda::set_wgmma_variant: both wgmma kernels timed in one process
#include "kernels/cuda/launch.h"  // the gemv planner's overrides, for same-process comparisons

using namespace ark;

namespace {

#define CHECK_CUDA(call)                                                                       \
  do {                                                                                         \
    cudaError_t e_ = (call);                                                                   \
    if (e_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)

constexpr size_t kRotateBytes = 200u << 20;

// How many copies of a `bytes`-sized weight one rotation cycles through so that every call reads from DRAM.
int rotation_copies(size_t bytes) {
  return static_cast<int>(kRotateBytes / bytes) + 2;
}

// One call's device buffers: the activations (rows x K bf16, small finite values), the output (rows x N) and
// a workspace of ws_bytes; freed when it goes out of scope.
struct CallBuffers {
  void* x = nullptr;
  void* y = nullptr;
  void* ws = nullptr;
  CallBuffers(int64_t rows, int64_t K, int64_t N, size_t ws_bytes) {
    CHECK_CUDA(cudaMalloc(&x, static_cast<size_t>(rows * K) * 2));
    CHECK_CUDA(cudaMemset(x, 0x3c, static_cast<size_t>(rows * K) * 2));
    CHECK_CUDA(cudaMalloc(&y, static_cast<size_t>(rows * N) * 2));
    CHECK_CUDA(cudaMalloc(&ws, ws_bytes));
  }
  ~CallBuffers() {
    cudaFree(x);
    cudaFree(y);
    cudaFree(ws);
  }
  CallBuffers(const CallBuffers&) = delete;
  CallBuffers& operator=(const CallBuffers&) = delete;
};

// The cuBLASLt baseline's dense bf16 weight (bytes each, small finite values), in rotation_copies(bytes)
// copies so that every call reads it from DRAM; freed when it goes out of scope.
struct Bf16Copies {
  std::vector<void*> copies;
  explicit Bf16Copies(size_t bytes) : copies(rotation_copies(bytes)) {
    for (auto& p : copies) {
      CHECK_CUDA(cudaMalloc(&p, bytes));
      CHECK_CUDA(cudaMemset(p, 0x3c, bytes));
    }
  }
  ~Bf16Copies() {
    for (void* p : copies) cudaFree(p);
  }
  Bf16Copies(const Bf16Copies&) = delete;
  Bf16Copies& operator=(const Bf16Copies&) = delete;
  void* operator[](int i) const { return copies[static_cast<size_t>(i)]; }
  size_t size() const { return copies.size(); }
};

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

QuantizedWeight random_weight(int64_t N, int64_t K, int bits, int64_t group, uint64_t seed) {
  QuantizedWeight w;
  w.out_features = N;
  w.in_features = K;
  w.bits = bits;
  w.group_size = group == -1 ? K : group;
  w.sym = true;
  w.codes.resize(static_cast<size_t>(N * K));
  uint64_t s = seed;
  for (size_t i = 0; i < w.codes.size(); i += 8) {
    const uint64_t r = splitmix(s);
    for (size_t j = 0; j < 8 && i + j < w.codes.size(); ++j)
      w.codes[i + j] = static_cast<uint8_t>((r >> (8 * j)) & ((1u << bits) - 1));
  }
  const int64_t G = w.num_groups();
  w.scales.resize(static_cast<size_t>(N * G));
  w.zeros.assign(static_cast<size_t>(N * G), 1 << (bits - 1));
  for (auto& v : w.scales) v = 0.001f + static_cast<float>(splitmix(s) % 1000) * 1e-5f;
  return w;
}

// One layer holding `w` (group: the scheme's group size, -1 per channel) with `kernel` forced (kAuto: the
// planner's choice), loaded and packed on the device.
std::unique_ptr<CudaQuantLinear> make_layer(const QuantizedWeight& w, int64_t group, CudaKernel kernel) {
  CudaLinearSpec spec;
  spec.in_features = w.in_features;
  spec.out_features = w.out_features;
  spec.bits = w.bits;
  spec.group_size = group;
  spec.kernel = kernel;
  auto l = std::make_unique<CudaQuantLinear>(spec);
  l->load(w);
  l->post_init();
  return l;
}

// Mean time of one call, from CUDA events around `reps` launches of a graph holding `per_graph` calls.
template <typename F>
double time_graph(cudaStream_t s, int per_graph, int reps, F&& body) {
  cudaGraph_t g;
  cudaGraphExec_t e;
  CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < per_graph; ++i) body(i);
  CHECK_CUDA(cudaStreamEndCapture(s, &g));
  CHECK_CUDA(cudaGraphInstantiate(&e, g, 0));
  for (int i = 0; i < 2; ++i) CHECK_CUDA(cudaGraphLaunch(e, s));
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a, s);
  for (int i = 0; i < reps; ++i) CHECK_CUDA(cudaGraphLaunch(e, s));
  cudaEventRecord(b, s);
  CHECK_CUDA(cudaEventSynchronize(b));
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaGraphExecDestroy(e);
  cudaGraphDestroy(g);
  return 1e-3 * ms / (static_cast<double>(reps) * per_graph);
}

// Bandwidth references, measured in this process on 1 GiB buffers (far above L2):
//   copy: a kernel copying with 16-byte loads and stores, (bytes read + bytes written) / time. This is the
//         denominator of frac_copy_bw. (A cudaMemcpyAsync node in a graph may go through the copy engines
//         and reads lower: 2.77 TB/s on an H200 where kernels copy at ~4.3 TB/s; it is printed too.)
//   read: a kernel that only reads (XOR of every word), bytes / time: the ceiling of a weight stream.
__global__ void copy_kernel(const uint4* __restrict__ a, uint4* __restrict__ b, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    b[i] = a[i];
}
__global__ void read_kernel(const uint4* __restrict__ a, size_t n, unsigned* out) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint4 v = a[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *out = acc;  // keeps the loads; practically never stores
}

struct Bandwidth {
  double copy = 0, read = 0, memcpy = 0;  // bytes per second
};

Bandwidth measure_bandwidth(cudaStream_t s, int sm_count) {
  const size_t n = size_t{1} << 30;
  void *a, *b;
  CHECK_CUDA(cudaMalloc(&a, n));
  CHECK_CUDA(cudaMalloc(&b, n));
  CHECK_CUDA(cudaMemset(a, 1, n));
  const unsigned blocks = static_cast<unsigned>(sm_count) * 8;
  const size_t v = n / 16;
  Bandwidth bw;
  bw.copy = 2.0 * n / time_graph(s, 1, 10, [&](int) {
    copy_kernel<<<blocks, 256, 0, s>>>(static_cast<const uint4*>(a), static_cast<uint4*>(b), v);
  });
  bw.read = 1.0 * n / time_graph(s, 1, 10, [&](int) {
    read_kernel<<<blocks, 256, 0, s>>>(static_cast<const uint4*>(a), v, static_cast<unsigned*>(b));
  });
  bw.memcpy = 2.0 * n / time_graph(s, 1, 10, [&](int) { cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, s); });
  cudaFree(a);
  cudaFree(b);
  return bw;
}

// cuBLASLt bf16: y[M][N] = x[M][K] · W[N][K]ᵀ, fp32 accumulation, as torch's F.linear calls it.
struct CublasBf16 {
  cublasLtHandle_t h = nullptr;
  void* ws = nullptr;
  size_t ws_bytes = 32u << 20;
  CublasBf16() {
    cublasLtCreate(&h);
    CHECK_CUDA(cudaMalloc(&ws, ws_bytes));
  }
  ~CublasBf16() {
    cudaFree(ws);
    cublasLtDestroy(h);
  }
  // Returns false when cuBLASLt has no algorithm for the shape.
  bool run(const void* w, const void* x, void* y, int64_t N, int64_t K, int64_t M, cudaStream_t s) {
    cublasLtMatmulDesc_t d;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t);
    cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n);
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, K, N, K);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, K, M, K);
    cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, N, M, N);
    cublasLtMatmulPreference_t p;
    cublasLtMatmulPreferenceCreate(&p);
    cublasLtMatmulPreferenceSetAttribute(p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes);
    cublasLtMatmulHeuristicResult_t r{};
    int found = 0;
    cublasLtMatmulAlgoGetHeuristic(h, d, la, lb, lc, lc, p, 1, &r, &found);
    const float alpha = 1, beta = 0;
    bool ok = found > 0 && cublasLtMatmul(h, d, &alpha, w, la, x, lb, &beta, y, lc, y, lc, &r.algo, ws, ws_bytes,
                                          s) == CUBLAS_STATUS_SUCCESS;
    cublasLtMatmulPreferenceDestroy(p);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatmulDescDestroy(d);
    return ok;
  }
};

// --sweep-splits: the mma kernel's time at M = 1 and 16 for each split-K factor (spec.mma_splits), next to
// the cost model's choice (splits 0), to check the planner against the card.
int sweep_splits(cudaStream_t s, int bits, int64_t group, double bw) {
  std::printf("sweep,K,N,M,kernel,us,frac_copy_bw\n");
  const int64_t shapes[][2] = {{4096, 4096}, {4096, 11008}, {11008, 4096},
                               {8192, 8192}, {8192, 28672}, {28672, 8192}};
  for (const auto& sh : shapes) {
    const int64_t K = sh[0], N = sh[1];
    const QuantizedWeight w = random_weight(N, K, bits, group, 1234 + K * 7 + N);
    const int copies = rotation_copies(static_cast<size_t>(N * K) * bits / 8);
    std::vector<std::unique_ptr<CudaQuantLinear>> layers;
    for (int c = 0; c < copies; ++c) layers.push_back(make_layer(w, group, CudaKernel::kMma));
    const size_t ws_bytes = 256u << 20;
    const CallBuffers io(16, K, N, ws_bytes);
    void *x = io.x, *y = io.y, *ws = io.ws;
    for (int64_t M : {1, 16}) {
      std::string last;
      for (int splits : {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 48, 64}) {
        for (auto& l : layers) l->set_mma_splits(splits);
        const std::string name = layers[0]->kernel_name(M);
        if (splits > 0 && name == last) continue;
        last = splits > 0 ? name : "";
        if (layers[0]->workspace_bytes(M) > ws_bytes) continue;
        const double t = time_graph(s, copies, 10, [&](int i) {
          layers[i]->forward(x, y, M, DType::BF16, s, ws, ws_bytes);
        });
        std::printf("%s,%lld,%lld,%lld,%s,%.2f,%.3f\n", splits == 0 ? "auto" : "forced",
                    static_cast<long long>(K), static_cast<long long>(N), static_cast<long long>(M),
                    name.c_str(), t * 1e6, layers[0]->packed_bytes() / t / bw);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

// --sweep-gemv: at M = 1, 4, 8, 16, 32 on the six shapes, the mma kernel as its planner runs it (the
// baseline), the gemv kernel as its planner runs it, and gemv forced to each block shape (1, 2, 4, 8 tiles)
// and split factor: to see whether gemv wins, up to which M, and whether its planner picks the fastest shape.
// Besides the planner's choice (auto): its choice with the 4 x 2 x-ring blocks allowed (auto_4x2) and with
// the cluster split-K reduction allowed (auto_cluster; sm_90 only); both are off by default (launch.h).
// Every forced shape is timed, the planner's own included, so its choice can be checked against the rest.
int sweep_gemv(cudaStream_t s, int bits, int64_t group, double bw, bool quick) {
  std::printf("sweep,K,N,M,kernel,us,frac_copy_bw\n");
  // The 70B shapes first: the targets' shapes, timed before a device call's time limit can cut the sweep.
  std::vector<std::vector<int64_t>> shapes = {{8192, 28672}, {28672, 8192}, {4096, 4096},
                                              {4096, 11008}, {11008, 4096}, {8192, 8192}};
  std::vector<int64_t> ms = {1, 8, 16, 32};
  if (quick) {  // --quick: a build variant's headline cases
    shapes = {{4096, 4096}, {8192, 28672}, {28672, 8192}};
    ms = {1, 16, 32};
  }
  // The gemv variants of issue 6's occupancy work, timed beside the planner's default in this process: the
  // 8 x 1 x ring filled 1, 3, 4 or 6 iterations ahead instead of 2 (auto_xa<a>), at 17..32 rows the kernel
  // of two blocks per SM (auto_2wide, its x ring 3 ahead too: auto_2wide_xa3), and the first stages' scales
  // copied before the prologue's barrier (auto_early; forced_early at M = 1).
  auto variants = [&](auto&& time_tagged, int64_t M) {
    cuda::set_gemv_early_meta(1);  // the first scales copied before the prologue's barrier
    time_tagged("auto_early");
    cuda::set_gemv_early_meta(0);
    if (M <= 8) return;
    for (int a : {1, 3, 4, 6}) {
      cuda::set_gemv_x_ahead(a);
      const std::string tag = "auto_xa" + std::to_string(a);
      time_tagged(tag.c_str());
    }
    cuda::set_gemv_x_ahead(0);
    if (M <= 16) return;
    cuda::set_gemv_two_wide(1);
    time_tagged("auto_2wide");
    cuda::set_gemv_x_ahead(3);
    time_tagged("auto_2wide_xa3");
    cuda::set_gemv_x_ahead(0);
    cuda::set_gemv_two_wide(0);
  };
  for (const auto& sh : shapes) {
    const int64_t K = sh[0], N = sh[1];
    // M = 8 on the 70B shapes only (the targets' shapes), to keep one device call short.
    const std::vector<int64_t> shape_ms = K * N >= int64_t{8192} * 28672 ? ms : std::vector<int64_t>{1, 16, 32};
    const QuantizedWeight w = random_weight(N, K, bits, group, 1234 + K * 7 + N);
    const int copies = rotation_copies(static_cast<size_t>(N * K) * bits / 8);
    std::vector<std::unique_ptr<CudaQuantLinear>> mma, gemv;
    for (int c = 0; c < copies; ++c)
      for (auto kernel : {CudaKernel::kMma, CudaKernel::kGemv})
        (kernel == CudaKernel::kMma ? mma : gemv).push_back(make_layer(w, group, kernel));
    const size_t ws_bytes = 256u << 20;
    const CallBuffers io(32, K, N, ws_bytes);
    void *x = io.x, *y = io.y, *ws = io.ws;
    // cuBLASLt bf16 on the dense weight (rotated copies), once per M: the speedups the issue's targets name.
    CublasBf16 cublas;
    const Bf16Copies wb(static_cast<size_t>(N * K) * 2);
    auto time_cublas = [&](int64_t M) {
      bool ok = true;
      const double t = time_graph(s, static_cast<int>(wb.size()), 10,
                                  [&](int i) { ok = cublas.run(wb[i], x, y, N, K, M, s) && ok; });
      std::printf("cublas,%lld,%lld,%lld,cublaslt_bf16%s,%.2f,0\n", static_cast<long long>(K),
                  static_cast<long long>(N), static_cast<long long>(M), ok ? "" : "_failed", t * 1e6);
    };
    auto time_layers = [&](std::vector<std::unique_ptr<CudaQuantLinear>>& ls, int64_t M, const char* tag) {
      if (ls[0]->workspace_bytes(M) > ws_bytes) return;
      const double t =
          time_graph(s, copies, 10, [&](int i) { ls[i]->forward(x, y, M, DType::BF16, s, ws, ws_bytes); });
      std::printf("%s,%lld,%lld,%lld,%s,%.2f,%.3f\n", tag, static_cast<long long>(K),
                  static_cast<long long>(N), static_cast<long long>(M), ls[0]->kernel_name(M).c_str(),
                  t * 1e6, ls[0]->packed_bytes() / t / bw);
      std::fflush(stdout);
    };
    for (int64_t M : shape_ms) {
      time_cublas(M);
      time_layers(mma, M, "mma");
      for (auto& l : gemv) l->set_gemv_block_tiles(0), l->set_mma_splits(0);
      time_layers(gemv, M, "auto");
      if (!std::getenv("ARK_SWEEP_SKIP_V6")) {  // v6's variants, measured slower (docs/CUDA.md)
        cuda::set_gemv_ring_4x2(true);
        time_layers(gemv, M, "auto_4x2");
        cuda::set_gemv_ring_4x2(false);
        cuda::set_gemv_cluster_reduce(true);
        time_layers(gemv, M, "auto_cluster");
        cuda::set_gemv_cluster_reduce(false);
      }
      variants([&](const char* tag) { time_layers(gemv, M, tag); }, M);
      for (int tiles : {1, 2, 4, 8}) {
        // Above 8 rows the whole-split staging (1 and 2 warps along N) measured 1.2-1.8x slower than the x
        // ring at every shape (H100, 2026-11-27): the ring's shapes only.
        if (M > 8 && !cuda::gemv_x_ring(M, tiles)) continue;
        std::string last;
        for (int splits : {1, 2, 3, 4, 6, 8, 12, 16, 32}) {
          for (auto& l : gemv) l->set_gemv_block_tiles(tiles), l->set_mma_splits(splits);
          const std::string name = gemv[0]->kernel_name(M);
          if (name == last) continue;
          last = name;
          time_layers(gemv, M, "forced");
          if (M == 1) {
            cuda::set_gemv_early_meta(1);
            time_layers(gemv, M, "forced_early");
            cuda::set_gemv_early_meta(0);
          }
          if (tiles == 8 && M > 8) {  // the 8 x 1 ring's variants at every split
            cuda::set_gemv_x_ahead(4);
            time_layers(gemv, M, "forced_xa4");
            cuda::set_gemv_x_ahead(0);
          }
          if (tiles == 8 && M > 16) {
            cuda::set_gemv_two_wide(1);
            time_layers(gemv, M, "forced_2wide");
            cuda::set_gemv_x_ahead(3);
            time_layers(gemv, M, "forced_2wide_xa3");
            cuda::set_gemv_x_ahead(0);
            cuda::set_gemv_two_wide(0);
          }
        }
      }
      for (auto& l : gemv) l->set_gemv_block_tiles(0), l->set_mma_splits(0);
    }
  }
  return 0;
}

// --sweep-gemv-auto: the gemv planner as kAuto runs it against its previous fit (auto_v6: set_gemv_model_v6)
// and, above 16 rows, with the two-block kernel (auto_2wide), beside cuBLAS bf16, at M = 1..32 on the six
// shapes: a short run that times what the planner now picks, old and new in one process.
// --sweep-gemv-sk (sk: the SM count): instead of the previous fit and the two-block kernel, kAuto against
// the previous kAuto (split-K, reduce launched plainly), one block per SM, and stream-K forced to one or two
// blocks per SM, all in one process (tags below).
// --sweep-gemv-pairs (pairs): kAuto, then kAuto with two splits summed by the reduce launch instead of a
// cluster of the two blocks (set_gemv_cluster_pairs(-1): no_pairs), then kAuto again (auto_again); above 16
// rows also the two-block kernel at t8 s2 with the pair and with the reduce launch.
// --sweep-gemv-pdl (pdl): kAuto against kAuto with the decode kernel launched as a dependent launch or
// plainly, each with and without the one-block-per-SM padding (tags below).
int sweep_gemv_auto(cudaStream_t s, int bits, int64_t group, double bw, int sk = 0, bool pdl = false,
                    bool pairs = false) {
  std::printf("sweep,K,N,M,kernel,us,frac_copy_bw\n");
  const std::vector<std::vector<int64_t>> shapes = {{8192, 28672}, {28672, 8192}, {4096, 4096},
                                                    {4096, 11008}, {11008, 4096}, {8192, 8192}};
  for (const auto& sh : shapes) {
    const int64_t K = sh[0], N = sh[1];
    const QuantizedWeight w = random_weight(N, K, bits, group, 1234 + K * 7 + N);
    const int copies = rotation_copies(static_cast<size_t>(N * K) * bits / 8);
    std::vector<std::unique_ptr<CudaQuantLinear>> gemv;
    for (int c = 0; c < copies; ++c) gemv.push_back(make_layer(w, group, CudaKernel::kGemv));
    const size_t ws_bytes = 256u << 20;
    const CallBuffers io(32, K, N, ws_bytes);
    void *x = io.x, *y = io.y, *ws = io.ws;
    CublasBf16 cublas;
    const Bf16Copies wb(static_cast<size_t>(N * K) * 2);
    for (int64_t M : {1, 4, 8, 12, 16, 24, 32}) {
      bool ok = true;
      const double tb = time_graph(s, static_cast<int>(wb.size()), 10,
                                   [&](int i) { ok = cublas.run(wb[i], x, y, N, K, M, s) && ok; });
      std::printf("cublas,%lld,%lld,%lld,cublaslt_bf16%s,%.2f,0\n", static_cast<long long>(K),
                  static_cast<long long>(N), static_cast<long long>(M), ok ? "" : "_failed", tb * 1e6);
      auto timed = [&](const char* tag) {
        if (gemv[0]->workspace_bytes(M) > ws_bytes) return;
        const double t = time_graph(s, copies, 10,
                                    [&](int i) { gemv[i]->forward(x, y, M, DType::BF16, s, ws, ws_bytes); });
        std::printf("%s,%lld,%lld,%lld,%s,%.2f,%.3f\n", tag, static_cast<long long>(K),
                    static_cast<long long>(N), static_cast<long long>(M), gemv[0]->kernel_name(M).c_str(),
                    t * 1e6, gemv[0]->packed_bytes() / t / bw);
        std::fflush(stdout);
      };
      timed("auto");
      if (pairs) {
        cuda::set_gemv_cluster_pairs(-1);
        timed("no_pairs");
        cuda::set_gemv_cluster_pairs(0);
        timed("auto_again");
        if (M > 16) {  // the two-block 17..32-row kernel at 8 warps along N and two splits: pair or reduce
          cuda::set_gemv_two_wide(1);
          for (auto& l : gemv) l->set_gemv_block_tiles(8), l->set_mma_splits(2);
          timed("2wide_s2_pair");
          cuda::set_gemv_cluster_pairs(-1);
          timed("2wide_s2_reduce");
          cuda::set_gemv_cluster_pairs(0);
          for (auto& l : gemv) l->set_gemv_block_tiles(0), l->set_mma_splits(0);
          cuda::set_gemv_two_wide(0);
        }
        continue;
      }
      if (pdl) {
        // pdl_in / plain: the decode kernel launched as a dependent or plainly; _pad: grids of at most one
        // block per SM padded so that no SM takes two (set_gemv_one_per_sm), _nopad: not padded.
        for (int in : {1, -1})
          for (int pad : {1, -1}) {
            cuda::set_gemv_pdl_in(in);
            cuda::set_gemv_one_per_sm(pad);
            timed(in > 0 ? (pad > 0 ? "pdl_in_pad" : "pdl_in_nopad") : (pad > 0 ? "plain_pad" : "plain_nopad"));
          }
        cuda::set_gemv_pdl_in(0);
        cuda::set_gemv_one_per_sm(0);
        continue;
      }
      if (sk > 0) {
        // splitk: the previous kAuto (no dependent launch, no padding); splitk_pad: one block per SM
        // (set_gemv_one_per_sm) with the dependent launch; t8s1_pad (M <= 8): 8 warps along N, no split,
        // padded; sk_t<n>_g<b>: stream-K over b blocks per SM (g1 padded to one per SM), dependent launch.
        cuda::set_gemv_stream_k(-1);
        cuda::set_gemv_pdl(-1);
        cuda::set_gemv_one_per_sm(-1);
        timed("splitk");
        cuda::set_gemv_pdl(1);
        cuda::set_gemv_one_per_sm(1);
        timed("splitk_pad");
        if (M <= 8) {
          for (auto& l : gemv) l->set_gemv_block_tiles(8), l->set_mma_splits(1);
          timed("t8s1_pad");
          for (auto& l : gemv) l->set_gemv_block_tiles(0), l->set_mma_splits(0);
        }
        cuda::set_gemv_stream_k(1);
        char tag[32];
        for (int t : {8, 4})
          for (int g : {1, 2}) {
            if ((t < 8 && M > 8) || (g > 1 && M > 16)) continue;
            for (auto& l : gemv) l->set_gemv_block_tiles(t);
            cuda::set_gemv_sk_grid(g * sk);
            std::snprintf(tag, sizeof tag, "sk_t%d_g%d", t, g);
            timed(tag);
          }
        for (auto& l : gemv) l->set_gemv_block_tiles(0);
        cuda::set_gemv_sk_grid(0);
        cuda::set_gemv_stream_k(0);
        cuda::set_gemv_pdl(0);
        cuda::set_gemv_one_per_sm(0);
        continue;
      }
      cuda::set_gemv_model_v6(true);
      timed("auto_v6");
      cuda::set_gemv_model_v6(false);
      if (M > 16) {
        cuda::set_gemv_two_wide(1);
        timed("auto_2wide");
        cuda::set_gemv_two_wide(-1);
        timed("auto_1wide");
        cuda::set_gemv_two_wide(0);
      }
    }
  }
  return 0;
}

// --sweep-wgmma: at M = 32..1024 on the six shapes, the wgmma kernel as its planner runs it and forced to
// each split factor (M <= 128), next to mma and dequant_gemm as planned and cuBLAS bf16, and what kAuto runs
// ("auto"): to place wgmma's range and check its split-K model. "wgmma" is what the planner runs;
// "wgmma_allthreads", "wgmma_ws" (warp-specialized), "wgmma_wide" and "wgmma_widepp" (256 weight rows,
// free-running or ping-pong consumers) and "wgmma_tall" (its 256-rows-of-x form above 128 rows) force each
// kernel; "wgmma_ws_noscale" (M <= 64) the warp-specialized kernel with its scale folded into A
// (set_wgmma_scale_after(-1)).
// The sweeps' rows of x: ARK_SWEEP_MS=m1,m2,... (e.g. "160,192,224") where it is set, else `fallback`.
std::vector<int64_t> sweep_ms(std::vector<int64_t> fallback) {
  const char* list = std::getenv("ARK_SWEEP_MS");
  if (!list) return fallback;
  std::vector<int64_t> ms;
  for (const char* p = list; *p;) {
    char* end = nullptr;
    const long long m = std::strtoll(p, &end, 10);
    if (end == p || m < 1) break;
    ms.push_back(m);
    p = *end == ',' ? end + 1 : end;
  }
  return ms.empty() ? fallback : ms;
}

// --quick: the two 70B shapes and 8192x8192 at M = 64, 128, 256, 512 and 1024; --small: the three 7B shapes
// at the same M; ARK_SWEEP_MS=m1,m2,...: those M instead.
int sweep_wgmma(cudaStream_t s, int bits, int64_t group, bool quick, bool small) {
  std::printf("sweep,K,N,M,kernel,us,speedup_vs_cublas,cublas_us\n");
  std::vector<std::vector<int64_t>> shapes = {{4096, 4096}, {4096, 11008}, {11008, 4096},
                                              {8192, 8192}, {8192, 28672}, {28672, 8192}};
  std::vector<int64_t> ms = {32, 64, 128, 256, 512, 1024};
  if (quick) {
    shapes = {{8192, 28672}, {28672, 8192}, {8192, 8192}};
    ms = {64, 128, 256, 512, 1024};
  }
  if (small) {
    shapes = {{4096, 4096}, {4096, 11008}, {11008, 4096}};
    ms = {64, 128, 256, 512, 1024};
  }
  ms = sweep_ms(ms);
  CublasBf16 cublas;
  for (const auto& sh : shapes) {
    const int64_t K = sh[0], N = sh[1];
    const QuantizedWeight w = random_weight(N, K, bits, group, 1234 + K * 7 + N);
    const int copies = rotation_copies(static_cast<size_t>(N * K) * bits / 8);
    const int dcopies = std::min(copies, 3);
    std::vector<std::unique_ptr<CudaQuantLinear>> mma, deq, wg, autol;
    for (int c = 0; c < copies; ++c)
      for (auto kernel :
           {CudaKernel::kMma, CudaKernel::kDequantGemm, CudaKernel::kWgmma, CudaKernel::kAuto}) {
        if (kernel == CudaKernel::kDequantGemm && c >= dcopies) continue;
        (kernel == CudaKernel::kMma     ? mma
         : kernel == CudaKernel::kWgmma ? wg
         : kernel == CudaKernel::kAuto  ? autol
                                        : deq)
            .push_back(make_layer(w, group, kernel));
      }
    const Bf16Copies wb(static_cast<size_t>(N * K) * 2);
    const int bcopies = static_cast<int>(wb.size());
    const int64_t max_m = *std::max_element(ms.begin(), ms.end());
    const size_t ws_bytes = 512u << 20;
    const CallBuffers io(max_m, K, N, ws_bytes);
    void *x = io.x, *y = io.y, *ws = io.ws;
    for (int64_t M : ms) {
      const int reps = M >= 256 ? 3 : 8;
      bool ok = true;
      const double t_blas = time_graph(s, bcopies, reps, [&](int i) {
        ok = cublas.run(wb[i], x, y, N, K, M, s) && ok;
      });
      auto report = [&](const char* tag, const std::string& name, double t) {
        std::printf("%s,%lld,%lld,%lld,%s,%.2f,%.3f,%.2f%s\n", tag, static_cast<long long>(K),
                    static_cast<long long>(N), static_cast<long long>(M), name.c_str(), t * 1e6, t_blas / t,
                    t_blas * 1e6, ok ? "" : ",cublas_failed");
        std::fflush(stdout);
      };
      auto time_layers = [&](std::vector<std::unique_ptr<CudaQuantLinear>>& ls, int n, const char* tag) {
        if (ls[0]->workspace_bytes(M) > ws_bytes) return;
        const double t =
            time_graph(s, n, reps, [&](int i) { ls[i]->forward(x, y, M, DType::BF16, s, ws, ws_bytes); });
        report(tag, ls[0]->kernel_name(M), t);
      };
      time_layers(autol, copies, "auto");
      time_layers(mma, copies, "mma");
      if (M >= 64) time_layers(deq, dcopies, "dequant");
      for (auto& l : wg) l->set_mma_splits(0);
      time_layers(wg, copies, "wgmma");  // as planned; then each kernel forced (same split model)
      const std::pair<cuda::WgmmaVariant, const char*> variants[] = {
          {cuda::WgmmaVariant::kAllThreads, "wgmma_allthreads"},
          {cuda::WgmmaVariant::kWarpSpecialized, "wgmma_ws"},
          {cuda::WgmmaVariant::kWide, "wgmma_wide"},
          {cuda::WgmmaVariant::kWidePingPong, "wgmma_widepp"},
          {cuda::WgmmaVariant::kTall, "wgmma_tall"}};
      for (const auto& [variant, tag] : variants) {
        cuda::set_wgmma_variant(variant);
        time_layers(wg, copies, tag);
      }
      if (M <= 64) {  // the warp-specialized kernel with the scale folded into A (where it scales after)
        cuda::set_wgmma_variant(cuda::WgmmaVariant::kWarpSpecialized);
        cuda::set_wgmma_scale_after(-1);
        time_layers(wg, copies, "wgmma_ws_noscale");
        cuda::set_wgmma_scale_after(0);
      }
      cuda::set_wgmma_variant(cuda::WgmmaVariant::kAuto);
      if (M <= 128) {  // the split factors of the planner's kernel (quick too: no new layers)
        const std::string chosen = wg[0]->kernel_name(M);
        for (int splits : {1, 2, 3, 4, 6, 8}) {
          for (auto& l : wg) l->set_mma_splits(splits);
          if (wg[0]->kernel_name(M) != chosen) time_layers(wg, copies, "wgmma_forced");
        }
        for (auto& l : wg) l->set_mma_splits(0);
      }
    }
  }
  return 0;
}

// --sweep-wgmma-sk: the schedules (cuda::set_wgmma_schedule) of the wide wgmma kernel (M <= 128) and of its
// tall form (M > 128, kAuto's kernel there) on the six shapes at M = 64..1024 (ARK_SWEEP_MS: those M), the
// 70B shapes first: the split-K grid of whole tiles (<form>_splitk: timed twice, first and last, to show the
// noise), stream-K with the tiles past the last whole wave shared out (<form>_sk) and with the last whole
// wave shared too (<form>_sk2, where it differs), next to the wgmma planner's kernel and schedule
// (wgmma_auto; "# auto" names what kAuto's family choice runs), dequant_gemm from M = 512 and cuBLAS bf16,
// all in this process.
// sk_geometry: whole waves + shared tiles of the stream-K plan on this device's SMs.
int sweep_wgmma_sk(cudaStream_t s, int bits, int64_t group, int sm_count) {
  std::printf("sweep,K,N,M,kernel,us,speedup_vs_cublas,cublas_us,sk_geometry\n");
  const int64_t shapes[][2] = {{8192, 28672}, {28672, 8192}, {8192, 8192},
                               {4096, 11008}, {11008, 4096}, {4096, 4096}};
  CublasBf16 cublas;
  for (const auto& sh : shapes) {
    const int64_t K = sh[0], N = sh[1];
    const QuantizedWeight w = random_weight(N, K, bits, group, 1234 + K * 7 + N);
    const int copies = rotation_copies(static_cast<size_t>(N * K) * bits / 8);
    const int dcopies = std::min(copies, 3);
    std::vector<std::unique_ptr<CudaQuantLinear>> wg, deq;
    for (int c = 0; c < copies; ++c) {
      wg.push_back(make_layer(w, group, CudaKernel::kWgmma));
      if (c < dcopies) deq.push_back(make_layer(w, group, CudaKernel::kDequantGemm));
    }
    const auto autol = make_layer(w, group, CudaKernel::kAuto);  // only for kernel_name(M)
    const Bf16Copies wb(static_cast<size_t>(N * K) * 2);
    const int bcopies = static_cast<int>(wb.size());
    const std::vector<int64_t> ms = sweep_ms({64, 128, 256, 512, 1024});
    const int64_t max_m = *std::max_element(ms.begin(), ms.end());
    const size_t ws_bytes = 512u << 20;
    const CallBuffers io(max_m, K, N, ws_bytes);
    void *x = io.x, *y = io.y, *ws = io.ws;
    cuda::PackedView v;
    v.k = K;
    v.n = N;
    v.bits = bits;
    v.chunks = (K + 127) / 128;
    v.n8_tiles = (N + 7) / 8;
    for (int64_t M : ms) {
      const int reps = M >= 256 ? 3 : 8;
      bool ok = true;
      const double t_blas = time_graph(s, bcopies, reps, [&](int i) {
        ok = cublas.run(wb[i], x, y, N, K, M, s) && ok;
      });
      const bool tall = M >= cuda::kWgmmaTallMinM;
      const int rows = M <= 64 ? 64 : tall ? 256 : 128;
      const std::string form = tall ? "tall" : "wide";
      auto time_layers = [&](std::vector<std::unique_ptr<CudaQuantLinear>>& ls, int n, const std::string& tag,
                             const std::string& geometry) {
        if (ls[0]->workspace_bytes(M) > ws_bytes) return;
        const double t =
            time_graph(s, n, reps, [&](int i) { ls[i]->forward(x, y, M, DType::BF16, s, ws, ws_bytes); });
        std::printf("%s,%lld,%lld,%lld,%s,%.2f,%.3f,%.2f,%s%s\n", tag.c_str(), static_cast<long long>(K),
                    static_cast<long long>(N), static_cast<long long>(M), ls[0]->kernel_name(M).c_str(),
                    t * 1e6, t_blas / t, t_blas * 1e6, geometry.c_str(), ok ? "" : ",cublas_failed");
        std::fflush(stdout);
      };
      auto geometry = [&](bool two) {
        const cuda::WgmmaStreamK sk = cuda::wgmma_stream_k(v, M, rows, sm_count, two);
        return std::to_string(sk.dp_waves) + "w+" + std::to_string(sk.sk_tiles) + "t/" + std::to_string(sk.blocks);
      };
      std::printf("# auto at M=%lld: %s\n", static_cast<long long>(M), autol->kernel_name(M).c_str());
      time_layers(wg, copies, "wgmma_auto", "");  // the wgmma planner's kernel and schedule
      if (M >= 512) time_layers(deq, dcopies, "dequant", "");
      cuda::set_wgmma_variant(tall ? cuda::WgmmaVariant::kTall : cuda::WgmmaVariant::kWide);
      cuda::set_wgmma_schedule(cuda::WgmmaSchedule::kSplitK);
      time_layers(wg, copies, form + "_splitk", "");
      cuda::set_wgmma_schedule(cuda::WgmmaSchedule::kStreamK);
      time_layers(wg, copies, form + "_sk", geometry(false));
      if (geometry(true) != geometry(false)) {
        cuda::set_wgmma_schedule(cuda::WgmmaSchedule::kStreamK2);
        time_layers(wg, copies, form + "_sk2", geometry(true));
      }
      cuda::set_wgmma_schedule(cuda::WgmmaSchedule::kSplitK);
      time_layers(wg, copies, form + "_splitk", "");
      cuda::set_wgmma_schedule(cuda::WgmmaSchedule::kAuto);
      cuda::set_wgmma_variant(cuda::WgmmaVariant::kAuto);
    }
  }
  return 0;
}

// --once K N M FAMILY: three eager forwards of one layer (auto, mma or gemv), for a profiler (ncu -k ...).
// ARK_ONCE_GEMV_SK=G: the gemv stream-K schedule over G blocks; ARK_ONCE_GEMV_TILES=t: its block shape.
int run_once(cudaStream_t s, int bits, int64_t group, int64_t K, int64_t N, int64_t M, const char* family) {
  const auto layer = make_layer(random_weight(N, K, bits, group, 99), group, parse_cuda_kernel(family));
  if (const char* g = std::getenv("ARK_ONCE_GEMV_SK")) {
    cuda::set_gemv_stream_k(1);
    cuda::set_gemv_sk_grid(std::atoi(g));
  }
  if (const char* t = std::getenv("ARK_ONCE_GEMV_TILES")) layer->set_gemv_block_tiles(std::atoi(t));
  const size_t ws_bytes = std::max<size_t>(layer->workspace_bytes(M), 256);
  const CallBuffers io(M, K, N, ws_bytes);
  void *x = io.x, *y = io.y, *ws = io.ws;
  for (int i = 0; i < 3; ++i) layer->forward(x, y, M, DType::BF16, s, ws, ws_bytes);
  CHECK_CUDA(cudaStreamSynchronize(s));
  std::printf("once: %s\n", layer->kernel_name(M).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, sweep = false, sweep_g = false, sweep_w = false, sweep_ga = false;
  bool small_shapes = false;  // --sweep-wgmma --small
  bool sweep_sk = false;      // --sweep-gemv-sk
  bool sweep_pdl = false;     // --sweep-gemv-pdl
  bool sweep_pairs = false;   // --sweep-gemv-pairs
  bool sweep_wsk = false;     // --sweep-wgmma-sk
  bool auto_only = false;     // --auto-only: the table's kAuto and cuBLAS columns only
  int64_t once_k = 0, once_n = 0, once_m = 0;
  const char* once_family = nullptr;
  int bits = 4;
  int64_t group = 128;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--small"))
      small_shapes = true;
    else if (!std::strcmp(argv[i], "--sweep-splits"))
      sweep = true;
    else if (!std::strcmp(argv[i], "--sweep-gemv"))
      sweep_g = true;
    else if (!std::strcmp(argv[i], "--sweep-wgmma"))
      sweep_w = true;
    else if (!std::strcmp(argv[i], "--sweep-gemv-auto"))
      sweep_ga = true;
    else if (!std::strcmp(argv[i], "--sweep-gemv-sk"))
      sweep_ga = sweep_sk = true;
    else if (!std::strcmp(argv[i], "--sweep-gemv-pdl"))
      sweep_ga = sweep_pdl = true;
    else if (!std::strcmp(argv[i], "--sweep-gemv-pairs"))
      sweep_ga = sweep_pairs = true;
    else if (!std::strcmp(argv[i], "--sweep-wgmma-sk"))
      sweep_wsk = true;
    else if (!std::strcmp(argv[i], "--auto-only"))
      auto_only = true;
    else if (!std::strcmp(argv[i], "--once") && i + 4 < argc) {
      once_k = std::atoll(argv[i + 1]), once_n = std::atoll(argv[i + 2]), once_m = std::atoll(argv[i + 3]);
      once_family = argv[i + 4];
      i += 4;
    } else if (!std::strcmp(argv[i], "--bits") && i + 1 < argc)
      bits = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--group") && i + 1 < argc) group = std::atoll(argv[++i]);
  }
  if (!cuda_available()) {
    std::printf("no CUDA device\n");
    return 0;
  }
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t s;
  CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  if (once_family) return run_once(s, bits, group, once_k, once_n, once_m, once_family);
  const Bandwidth bws = measure_bandwidth(s, prop.multiProcessorCount);
  const double bw = bws.copy;
  std::printf("# device: %s, %d SMs, L2 %d MB; copy kernel (read + write) %.2f TB/s, read-only kernel %.2f TB/s, "
              "cudaMemcpyAsync D2D in a graph (read + write) %.2f TB/s\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, bws.copy * 1e-12, bws.read * 1e-12,
              bws.memcpy * 1e-12);
  std::printf("# int%d g%lld sym, weights rotated over > %zu MB, CUDA graphs, times per call\n", bits,
              static_cast<long long>(group), kRotateBytes >> 20);
  // ark_us is kAuto timed on its own copies of the layer (gemv, mma, wgmma or dequant_gemm, as its planner
  // picks); mma_us, dequant_gemm_us and gemv_us are each family forced, to place the thresholds. frac_copy_bw: weight bytes per second
  // over the copy kernel's bandwidth (read + write), the figure the issue's targets use; weight bytes are
  // everything forward reads of the layer (codes, scales, zeros: packed_bytes()); frac_read_bw: the same
  // over the read-only kernel's bandwidth.
  if (sweep) return sweep_splits(s, bits, group, bw);
  if (sweep_g) return sweep_gemv(s, bits, group, bw, quick);
  if (sweep_ga)
    return sweep_gemv_auto(s, bits, group, bw, sweep_sk ? prop.multiProcessorCount : 0, sweep_pdl,
                           sweep_pairs);
  if (sweep_w) return sweep_wgmma(s, bits, group, quick, small_shapes);
  if (sweep_wsk) return sweep_wgmma_sk(s, bits, group, prop.multiProcessorCount);
  std::printf(
      "K,N,M,kernel,ark_us,cublas_bf16_us,weight_TBps,frac_copy_bw,speedup_vs_cublas,"
      "mma_us,dequant_gemm_us,frac_read_bw,gemv_us\n");

  struct Shape {
    int64_t K, N;
  };
  std::vector<Shape> shapes = {{4096, 4096}, {4096, 11008}, {11008, 4096},
                               {8192, 8192}, {8192, 28672}, {28672, 8192}};
  std::vector<int64_t> ms = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  if (quick) {
    shapes = {{4096, 4096}, {8192, 28672}};
    ms = {1, 4, 16, 256};
  }
  ms = sweep_ms(ms);  // ARK_SWEEP_MS=m1,m2,...: those M only
  CublasBf16 cublas;
  const int64_t max_m = *std::max_element(ms.begin(), ms.end());
  for (const Shape& sh : shapes) {
    const QuantizedWeight w = random_weight(sh.N, sh.K, bits, group, 1234 + sh.K * 7 + sh.N);
    const size_t qbytes = static_cast<size_t>(sh.N * sh.K) * bits / 8;
    const int copies = rotation_copies(qbytes);
    std::vector<std::unique_ptr<CudaQuantLinear>> mma, deq, gem, aut;
    // dequant_gemm rewrites a 16-bit copy of the weight each call, so a few copies keep it out of L2 too.
    const int dcopies = std::min(copies, 3);
    for (int c = 0; c < copies; ++c)
      for (auto kernel : {CudaKernel::kMma, CudaKernel::kDequantGemm, CudaKernel::kGemv, CudaKernel::kAuto}) {
        if (kernel == CudaKernel::kDequantGemm && c >= dcopies) continue;
        if (auto_only && kernel != CudaKernel::kAuto) continue;
        (kernel == CudaKernel::kMma    ? mma
         : kernel == CudaKernel::kGemv ? gem
         : kernel == CudaKernel::kAuto ? aut
                                       : deq)
            .push_back(make_layer(w, group, kernel));
      }
    const Bf16Copies wb(static_cast<size_t>(sh.N * sh.K) * 2);
    const int bcopies = static_cast<int>(wb.size());
    size_t ws_bytes = 0;
    for (int64_t M : ms)
      for (const auto* family : {&mma, &deq, &gem, &aut})
        if (!family->empty()) ws_bytes = std::max(ws_bytes, family->front()->workspace_bytes(M));
    const CallBuffers io(max_m, sh.K, sh.N, ws_bytes);
    void *x = io.x, *y = io.y, *ws = io.ws;
    for (int64_t M : ms) {
      const int reps = M >= 256 ? 3 : 10;
      const double t_mma = auto_only ? 0.0 : time_graph(s, copies, reps, [&](int i) {
        mma[i]->forward(x, y, M, DType::BF16, s, ws, ws_bytes);
      });
      const double t_gemv =
          M <= 32 && !auto_only
              ? time_graph(s, copies, reps,
                           [&](int i) { gem[i]->forward(x, y, M, DType::BF16, s, ws, ws_bytes); })
              : 0.0;
      const double t_deq =
          M >= 64 && !auto_only
              ? time_graph(s, dcopies, reps,
                           [&](int i) { deq[i]->forward(x, y, M, DType::BF16, s, ws, ws_bytes); })
              : 0.0;
      bool ok = true;
      const double t_blas = time_graph(s, bcopies, reps, [&](int i) {
        ok = cublas.run(wb[i], x, y, sh.N, sh.K, M, s) && ok;
      });
      // ark's time is kAuto's own, timed on its own copies: the family columns beside it are each forced,
      // and no family stands in for another (wgmma, for one, has no forced column here).
      const std::string kname = aut[0]->kernel_name(M);
      const double t = time_graph(s, kname.rfind("dequant", 0) == 0 ? dcopies : copies, reps,
                                  [&](int i) { aut[i]->forward(x, y, M, DType::BF16, s, ws, ws_bytes); });
      const double tbps = static_cast<double>(aut[0]->packed_bytes()) / t;
      std::printf("%lld,%lld,%lld,%s,%.2f,%.2f,%.3f,%.3f,%.3f,%.2f,%.2f,%.3f,%.2f%s\n",
                  static_cast<long long>(sh.K), static_cast<long long>(sh.N), static_cast<long long>(M),
                  kname.c_str(), t * 1e6, t_blas * 1e6, tbps * 1e-12, tbps / bw, t_blas / t, t_mma * 1e6,
                  t_deq * 1e6, tbps / bws.read, t_gemv * 1e6, ok ? "" : ",cublas_failed");
      std::fflush(stdout);
    }
  }
  return 0;
}
