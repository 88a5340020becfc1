// GPU tests of CudaQuantLinear (ark_gpu_tests; needs an NVIDIA GPU, run by scripts/device_cuda_check.sh).
//
// Every kernel family (mma, dequant_gemm, simt) against an fp64 CPU oracle computed from the canonical
// weight, on fresh random inputs (seed printed; ARK_TEST_SEED replays), outputs poisoned with NaN before each
// call, over every bits x group x sym x act-order x dtype and M across tile tails. Tolerances (docs/CUDA.md):
//   mma, simt:     (Kp + 64) * 2^-23 * sum|x w|  + u_T * |y|     (fp32 sums; weights exact as q - z; one
//                                                                 rounding of the output to T)
//   dequant_gemm:  the same + u_T * sum|x w|                      (weights rounded to T for cuBLAS)
// with u_T = 2^-11 (fp16) or 2^-8 (bf16); x is generated exactly representable in T. Also: graph capture
// replay equals eager, two streams on one layer give identical results, bad input raises ark::Error.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ark/cuda_linear.h"
#include "ark/dtype.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/tensor_map.h"
#include "quant_linear_test_util.h"

namespace ark {
namespace {

using ql_test::rng_for;
using ql_test::WeightConfig;

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DevBuf(size_t n) : bytes(n) {
    if (n) {
      EXPECT_EQ(cudaMalloc(&p, n), cudaSuccess);
    }
  }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
};

bool have_gpu() {
  return cuda_available();
}
#define REQUIRE_GPU() \
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device"

uint16_t to_t(float v, bool bf16) {
  return bf16 ? float_to_bf16(v) : float_to_fp16(v);
}
float from_t(uint16_t v, bool bf16) {
  return bf16 ? bf16_to_float(v) : fp16_to_float(v);
}

// x as T bits, and the same values as floats (exactly representable).
struct Activations {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};
Activations make_x(int64_t M, int64_t K, bool bf16, std::mt19937_64& rng) {
  Activations a;
  a.values = ql_test::random_activations(M, K, rng);
  a.bits.resize(a.values.size());
  for (size_t i = 0; i < a.values.size(); ++i) {
    a.bits[i] = to_t(a.values[i], bf16);
    a.values[i] = from_t(a.bits[i], bf16);
  }
  return a;
}

struct Case {
  WeightConfig w;
  bool bf16 = false;
  bool bias = false;
  std::string name() const {
    char b[160];
    std::snprintf(b, sizeof b, "N=%lld K=%lld int%d g%lld %s%s %s%s", static_cast<long long>(w.n),
                  static_cast<long long>(w.k), w.bits, static_cast<long long>(w.group_size),
                  w.sym ? "sym" : "asym", w.act_order ? " act-order" : "", bf16 ? "bf16" : "fp16",
                  bias ? " bias" : "");
    return b;
  }
};

// Every bits x group x sym x act-order x dtype case of an n x k layer, in the order the sweeps below number
// them (bias left to the caller).
std::vector<Case> every_combination(int64_t n, int64_t k,
                                    std::initializer_list<int64_t> groups = {32, 64, 128, -1}) {
  std::vector<Case> cases;
  for (int bits : {2, 3, 4, 8})
    for (int64_t g : groups)
      for (bool sym : {true, false})
        for (bool act : {false, true})
          for (bool bf16 : {false, true}) {
            Case c;
            c.w.n = n;
            c.w.k = k;
            c.w.bits = bits;
            c.w.group_size = g;
            c.w.sym = sym;
            c.w.act_order = act;
            c.bf16 = bf16;
            cases.push_back(c);
          }
  return cases;
}

// Checks y (T bits, M x N) against the fp64 oracle; returns the number of failures (prints the first few).
// split_scale: the wgmma kernel's bf16 weights s_hi * (q - z) + s_lo * (q - z), within 2 u^2 of one rounding.
int check_output(const QuantizedWeight& w, const std::vector<float>& bias, const Activations& x, int64_t M,
                 const std::vector<uint16_t>& y, bool bf16, bool weights_rounded, const std::string& what,
                 bool split_scale = false) {
  const int64_t N = w.out_features, K = w.in_features;
  const int64_t kp = (K + 127) / 128 * 128 + w.num_groups() * 32;  // packed K is at most this
  const double u32 = std::ldexp(1.0, -23), ut = bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  std::vector<double> wd(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) wd[n * K + k] = ql_test::dequant64(w, n, k);
  int failures = 0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = bias.empty() ? 0.0 : bias[n], mag = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double p = x.values[m * K + k] * wd[n * K + k];
        acc += p;
        mag += std::fabs(p);
      }
      const double tol = (kp + 64) * u32 * mag + (weights_rounded ? ut * mag : 0.0) +
                         (split_scale ? 2 * ut * ut * mag : 0.0) + 1.01 * ut * std::fabs(acc) +
                         std::ldexp(1.0, -24) + (bias.empty() ? 0.0 : ut * std::fabs(bias[n]));
      const double got = from_t(y[m * N + n], bf16);
      if (!(std::fabs(got - acc) <= tol)) {
        if (failures < 5)
          ADD_FAILURE() << what << ": y[" << m << "][" << n << "] = " << got << ", expected " << acc << " +- "
                        << tol;
        ++failures;
      }
    }
  return failures;
}

QuantizedWeight make_weight(const Case& c, uint64_t id, std::vector<float>* bias, std::mt19937_64& rng) {
  QuantizedWeight w = ql_test::random_weight(c.w, rng);
  (void)id;
  bias->clear();
  if (c.bias) {
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    // Bias values exact in T: the large-M path adds it through cuBLAS's beta * C with C in T.
    for (int64_t n = 0; n < c.w.n; ++n) bias->push_back(from_t(to_t(d(rng), c.bf16), c.bf16));
  }
  return w;
}

CudaQuantLinear make_layer(const Case& c, const QuantizedWeight& w, const std::vector<float>& bias,
                           CudaKernel kernel, int64_t max_m = 0) {
  CudaLinearSpec s;
  s.in_features = c.w.k;
  s.out_features = c.w.n;
  s.bits = c.w.bits;
  s.group_size = c.w.group_size;
  s.sym = c.w.sym;
  s.bias = c.bias;
  s.act_order = c.w.act_order;
  s.kernel = kernel;
  s.max_m = max_m;
  CudaQuantLinear layer(s);
  layer.load(w);
  if (c.bias) layer.load_bias(bias.data(), DType::F32, c.w.n);
  layer.post_init();
  return layer;
}

// Runs one forward of M rows through `layer` and returns y (T bits); y is poisoned with NaN first.
std::vector<uint16_t> run(const CudaQuantLinear& layer, const Activations& x, int64_t M, int64_t N, bool bf16,
                          cudaStream_t stream = nullptr) {
  const int64_t K = static_cast<int64_t>(x.bits.size()) / M;
  DevBuf dx(x.bits.size() * 2), dy(static_cast<size_t>(M * N) * 2), ws(layer.workspace_bytes(M));
  cudaMemcpy(dx.p, x.bits.data(), dx.bytes, cudaMemcpyHostToDevice);
  cudaMemset(dy.p, 0xff, dy.bytes);  // 0xffff is NaN in fp16 and bf16
  // The copies and the poison ran on the legacy stream, which a non-blocking stream does not wait for.
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  (void)K;
  layer.forward(dx.p, dy.p, M, bf16 ? DType::BF16 : DType::F16, stream, ws.p, ws.bytes);
  std::vector<uint16_t> y(static_cast<size_t>(M * N));
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(y.data(), dy.p, dy.bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  return y;
}

// The same forward captured into a CUDA graph on a non-blocking stream and replayed 3 times; y is poisoned
// first and checked to be still poison after the capture (nothing may run while capturing).
std::vector<uint16_t> run_graph(const CudaQuantLinear& layer, const Activations& x, int64_t M, int64_t N,
                                bool bf16) {
  cudaStream_t s;
  EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  DevBuf dx(x.bits.size() * 2), dy(static_cast<size_t>(M * N) * 2), ws(layer.workspace_bytes(M));
  EXPECT_EQ(cudaMemcpy(dx.p, x.bits.data(), dx.bytes, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemset(dy.p, 0xff, dy.bytes), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<uint16_t> y(static_cast<size_t>(M * N), 0xffff);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  EXPECT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  layer.forward(dx.p, dy.p, M, bf16 ? DType::BF16 : DType::F16, s, ws.p, ws.bytes);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  if (graph == nullptr || cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
    ADD_FAILURE() << "graph capture or instantiation failed";
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaStreamDestroy(s);
    return y;  // poison: compares unequal to any finite result
  }
  EXPECT_EQ(cudaMemcpy(y.data(), dy.p, dy.bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(y[0], 0xffff) << "forward ran during capture";
  for (int rep = 0; rep < 3; ++rep) EXPECT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(y.data(), dy.p, dy.bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
  return y;
}

// kGemv runs M <= 32 itself and hands larger M to mma (make_plan), so every sweep covers it over its range.
const CudaKernel kFamilies[] = {CudaKernel::kMma, CudaKernel::kDequantGemm, CudaKernel::kSimt,
                                CudaKernel::kGemv};

// One case, each kernel family of `families` (default: all), each M of `ms`.
void check_case(const Case& c, const std::vector<int64_t>& ms, uint64_t id,
                const std::vector<CudaKernel>& families = {std::begin(kFamilies), std::end(kFamilies)}) {
  auto rng = rng_for(id);
  std::vector<float> bias;
  const QuantizedWeight w = make_weight(c, id, &bias, rng);
  for (CudaKernel kernel : families) {
    CudaQuantLinear layer = make_layer(c, w, bias, kernel);
    for (int64_t M : ms) {
      if (kernel == CudaKernel::kWgmma) {  // the wgmma tests run only where it is supported: no fallback
        ASSERT_EQ(layer.kernel_name(M).rfind("wgmma_w", 0), 0u) << layer.kernel_name(M);
      }
      if (kernel == CudaKernel::kGemv && M <= cuda::kGemvMaxRows) {
        ASSERT_EQ(layer.kernel_name(M).rfind("gemv_w", 0), 0u) << layer.kernel_name(M);
      }
      const Activations x = make_x(M, c.w.k, c.bf16, rng);
      const std::string what = c.name() + " " + layer.kernel_name(M) + " M=" + std::to_string(M);
      const auto y = run(layer, x, M, c.w.n, c.bf16);
      const bool wg = kernel == CudaKernel::kWgmma;  // weights rounded to T like dequant_gemm's
      if (check_output(w, bias, x, M, y, c.bf16, kernel == CudaKernel::kDequantGemm || wg, what,
                       wg && c.bf16) > 0)
        return;
    }
  }
}

const std::vector<int64_t> kAllM = {1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 64, 127, 128, 129, 300, 1024};

// ARK_TEST_GEMV_STREAM_K=1 runs every test with the gemv stream-K schedule forced wherever a plan can take it
// (cuda::set_gemv_stream_k(1); device_cuda_check.sh gemv8), so the tests that run kAuto cover both schedules.
int gemv_stream_k_default() {
  const char* e = std::getenv("ARK_TEST_GEMV_STREAM_K");
  return e && std::atoi(e) > 0 ? 1 : 0;
}
// ARK_TEST_GEMV_ONE_PER_SM=1 likewise pads every gemv plan that can take it to one block per SM.
[[maybe_unused]] const bool kGemvStreamKFromEnv = [] {
  cuda::set_gemv_stream_k(gemv_stream_k_default());
  const char* e = std::getenv("ARK_TEST_GEMV_ONE_PER_SM");
  if (e && std::atoi(e) > 0) cuda::set_gemv_one_per_sm(1);
  return true;
}();

TEST(CudaLinear, EveryCombinationSmallShapes) {
  REQUIRE_GPU();
  uint64_t id = 100;
  // N = 203: a partial n8 tile and a partial 128-column block; K = 320: packed K padded to 384 (a partial
  // chunk), and g128 leaves a 64-wide last group.
  for (Case c : every_combination(203, 320)) {
    c.bias = (id % 3) == 0;
    SCOPED_TRACE(c.name());
    check_case(c, {1, 17, 129}, id++);
    if (HasFailure()) return;
  }
}

TEST(CudaLinear, Int4EveryM) {
  REQUIRE_GPU();
  uint64_t id = 1000;
  for (bool act : {false, true})
    for (bool sym : {true, false})
      for (bool bf16 : {false, true}) {
        Case c;
        c.w.n = 264;
        c.w.k = 1024;
        c.w.bits = 4;
        c.w.group_size = 128;
        c.w.sym = sym;
        c.w.act_order = act;
        c.bf16 = bf16;
        c.bias = true;
        SCOPED_TRACE(c.name());
        check_case(c, kAllM, id++);
        if (HasFailure()) return;
      }
}

TEST(CudaLinear, Int8EveryM) {
  REQUIRE_GPU();
  Case c;
  c.w.n = 136;
  c.w.k = 512;
  c.w.bits = 8;
  c.w.group_size = 64;
  c.w.sym = false;
  c.bf16 = true;
  SCOPED_TRACE(c.name());
  check_case(c, kAllM, 2000);
}

// K tails: any K works (packed K is padded and x reads 0 there); group sizes that are not multiples of 32.
TEST(CudaLinear, OddShapes) {
  REQUIRE_GPU();
  uint64_t id = 3000;
  for (auto [n, k, g] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, -1},
                         {5, 33, 11},
                         {17, 100, 50},
                         {130, 129, 129},
                         {9, 4000, 1000}}) {
    Case c;
    c.w.n = n;
    c.w.k = k;
    c.w.group_size = g;
    c.w.sym = false;
    c.bias = true;
    SCOPED_TRACE(c.name());
    check_case(c, {1, 5, 20, 70}, id++);
    if (HasFailure()) return;
  }
}

// A layer-sized problem: mma and dequant_gemm against the device simt kernel (the CPU oracle would take too
// long here); same tolerance arguments, with simt's own error added.
TEST(CudaLinear, LargeLayerAgainstSimt) {
  REQUIRE_GPU();
  Case c;
  c.w.n = 4096;
  c.w.k = 4096;
  c.w.bits = 4;
  c.w.group_size = 128;
  c.bf16 = true;
  auto rng = rng_for(4000);
  std::vector<float> bias;
  const QuantizedWeight w = make_weight(c, 4000, &bias, rng);
  CudaQuantLinear simt = make_layer(c, w, bias, CudaKernel::kSimt);
  CudaQuantLinear autol = make_layer(c, w, bias, CudaKernel::kAuto);
  for (int64_t M : {1, 16, 64, 256}) {
    const Activations x = make_x(M, c.w.k, c.bf16, rng);
    const auto a = run(simt, x, M, c.w.n, c.bf16), b = run(autol, x, M, c.w.n, c.bf16);
    double ss = 0;
    for (uint16_t v : a) ss += from_t(v, true) * from_t(v, true);
    const double rms = std::sqrt(ss / static_cast<double>(a.size()));
    ASSERT_GT(rms, 0.0);
    int bad = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double va = from_t(a[i], true), vb = from_t(b[i], true);
      // Both round y to bf16 (2^-8 |y| each); dequant_gemm also rounds each weight to bf16, which moves y by
      // about 2^-9 * sqrt(sum (xw)^2), well under 2% of the outputs' rms for random data.
      if (!(std::fabs(va - vb) <= std::ldexp(1.0, -7) * std::fabs(va) + 0.02 * rms)) {
        if (bad++ < 5)
          ADD_FAILURE() << autol.kernel_name(M) << " M=" << M << " i=" << i << ": " << vb << " vs simt "
                        << va;
      }
    }
  }
}

TEST(CudaLinear, GraphCaptureReplayEqualsEager) {
  REQUIRE_GPU();
  Case c;
  c.w.n = 1000;
  c.w.k = 768;
  c.w.act_order = true;
  c.bias = true;
  auto rng = rng_for(5000);
  std::vector<float> bias;
  const QuantizedWeight w = make_weight(c, 5000, &bias, rng);
  for (int64_t M : {1, 16, 300}) {
    CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kAuto);
    const Activations x = make_x(M, c.w.k, c.bf16, rng);
    const auto eager = run(layer, x, M, c.w.n, c.bf16);
    EXPECT_EQ(run_graph(layer, x, M, c.w.n, c.bf16), eager)
        << layer.kernel_name(M) << " M=" << M << ": graph replay differs from eager";
  }
}

TEST(CudaLinear, TwoStreamsGiveIdenticalResults) {
  REQUIRE_GPU();
  Case c;
  c.w.n = 2048;
  c.w.k = 2048;
  c.bf16 = true;
  auto rng = rng_for(6000);
  std::vector<float> bias;
  const QuantizedWeight w = make_weight(c, 6000, &bias, rng);
  CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kAuto);
  for (int64_t M : {1, 33, 512}) {
    const Activations x = make_x(M, c.w.k, c.bf16, rng);
    const auto ref = run(layer, x, M, c.w.n, c.bf16);
    std::vector<uint16_t> out[2];
    auto worker = [&](int i) {
      cudaStream_t s;
      cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
      for (int rep = 0; rep < 20; ++rep) out[i] = run(layer, x, M, c.w.n, c.bf16, s);
      cudaStreamDestroy(s);
    };
    std::thread t0(worker, 0), t1(worker, 1);
    t0.join();
    t1.join();
    EXPECT_EQ(out[0], ref) << "stream 0, M=" << M;
    EXPECT_EQ(out[1], ref) << "stream 1, M=" << M;
  }
}

// The subset scripts/device_cuda_check.sh runs under compute-sanitizer memcheck: tails, act-order, every
// family, every bit width, split-K on and off.
TEST(CudaLinear, MemcheckSubset) {
  REQUIRE_GPU();
  uint64_t id = 7000;
  for (int bits : {2, 3, 4, 8}) {
    Case c;
    c.w.n = 77;
    c.w.k = 300;
    c.w.bits = bits;
    c.w.group_size = 64;
    c.w.sym = bits != 4;
    c.w.act_order = bits == 4 || bits == 3;
    c.bias = true;
    c.bf16 = bits % 2 == 0;
    SCOPED_TRACE(c.name());
    check_case(c, {1, 19, 260}, id++);
  }
}

TEST(CudaLinear, BadInputThrows) {
  REQUIRE_GPU();
  CudaLinearSpec s;
  s.in_features = 256;
  s.out_features = 64;
  s.bits = 5;
  EXPECT_THROW(CudaQuantLinear{s}, Error);
  s.bits = 4;
  s.group_size = 0;
  EXPECT_THROW(CudaQuantLinear{s}, Error);
  s.group_size = 128;
  CudaQuantLinear layer(s);
  EXPECT_THROW(layer.post_init(), Error);  // nothing loaded
  DevBuf d(1 << 20);
  EXPECT_THROW(layer.forward(d.p, d.p, 1, DType::F16, nullptr), Error);  // not packed
  Case c;
  c.w.n = 64;
  c.w.k = 256;
  c.w.group_size = 128;
  auto rng = rng_for(8000);
  std::vector<float> bias;
  QuantizedWeight w = make_weight(c, 8000, &bias, rng);
  QuantizedWeight wrong = w;
  wrong.out_features = 65;
  EXPECT_THROW(layer.load(wrong), Error);
  layer.load(w);
  layer.post_init();
  EXPECT_THROW(layer.forward(d.p, d.p, 1, DType::F32, nullptr), Error);  // fp32 activations
  EXPECT_THROW(layer.forward(nullptr, d.p, 1, DType::F16, nullptr), Error);
  EXPECT_THROW(layer.forward(d.p, d.p, -1, DType::F16, nullptr), Error);
  layer.forward(d.p, d.p, 0, DType::F16, nullptr);  // M = 0 does nothing
  if (layer.workspace_bytes(1) > 0) {  // split-K needs a workspace, and this layer has none of its own
    EXPECT_THROW(layer.forward(d.p, d.p, 1, DType::F16, nullptr, d.p, 16), Error);
  }
  s.bias = true;
  CudaQuantLinear with_bias(s);
  with_bias.load(w);
  EXPECT_THROW(with_bias.post_init(), Error);  // promised bias missing
  EXPECT_THROW(with_bias.load_bias(bias.data(), DType::F32, 3), Error);
}

// spec.mma_splits / set_mma_splits: a forced split-K factor is rounded to one that divides the chunks evenly
// (8 chunks here: 3 -> 3 splits of 3, 3 and 2 chunks; 5 -> 4 of 2; 100 -> 8 of 1), and every split count,
// uneven last split included, gives the oracle's result.
TEST(CudaLinear, ForcedSplitsMatchOracle) {
  REQUIRE_GPU();
  Case c;
  c.w.n = 200;
  c.w.k = 1000;  // 8 groups of 128, the last 104 wide and padded: 8 chunks
  c.bf16 = true;
  auto rng = rng_for(9500);
  std::vector<float> bias;
  const QuantizedWeight w = make_weight(c, 9500, &bias, rng);
  CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kMma);
  const std::pair<int, int> expect[] = {{1, 1}, {2, 2}, {3, 3}, {5, 4}, {8, 8}, {100, 8}};
  for (auto [forced, splits] : expect)
    for (int64_t M : {1, 16}) {
      layer.set_mma_splits(forced);
      const std::string name = layer.kernel_name(M);
      EXPECT_EQ(name, "mma_w4_m16_splitk" + std::to_string(splits)) << "forced " << forced;
      const Activations x = make_x(M, c.w.k, c.bf16, rng);
      EXPECT_EQ(check_output(w, bias, x, M, run(layer, x, M, c.w.n, c.bf16), c.bf16, false, name), 0);
    }
  EXPECT_THROW(layer.set_mma_splits(-1), Error);
  CudaLinearSpec bad;
  bad.in_features = 256;
  bad.out_features = 64;
  bad.mma_splits = -2;
  EXPECT_THROW(CudaQuantLinear{bad}, Error);
}

// What the host-side planner tests (CudaPlan.*) plan for: an H100's (or H200's) 132 SMs and shared memory,
// with or without an sm_90a image (wgmma); the issue's six benchmark layers (K x N); and a packed layer as
// the planner sees it (group 128 unless told, 128-k chunks, n8 tiles; tails rounded up).
// Plans without the one-block-per-SM padding that kAuto adds (CudaPlan.GemvOnePerSmPadding covers it), for
// the planner tests that compare a plan's shared memory with gemv_smem_bytes.
struct UnpaddedPlans {
  const int saved = cuda::gemv_one_per_sm_mode();
  UnpaddedPlans() { cuda::set_gemv_one_per_sm(-1); }
  ~UnpaddedPlans() { cuda::set_gemv_one_per_sm(saved); }
};

cuda::DeviceInfo hopper_device(bool wgmma) {
  cuda::DeviceInfo dev;
  dev.sm_count = 132;
  dev.smem_per_sm = 233472;
  dev.smem_per_block = 232448;
  dev.wgmma = wgmma;
  return dev;
}
constexpr int64_t kBenchShapes[][2] = {{4096, 4096}, {4096, 11008}, {11008, 4096},
                                       {8192, 8192}, {8192, 28672}, {28672, 8192}};
cuda::PackedView planner_view(int64_t k, int64_t n, int bits = 4, int64_t group = 128) {
  cuda::PackedView v;
  v.k = k;
  v.n = n;
  v.bits = bits;
  v.chunks = (k + 127) / 128;
  v.groups = v.chunks * (128 / group);
  v.n8_tiles = (n + 7) / 8;
  v.chunk_one_group = group >= 128;  // as pack_for_cuda sets it without act-order
  return v;
}

// The decode planner (16-row blocks) picks, on an H200's figures, the split-K factor the sweep of
// 2026-11-27 measured fastest (ark_cuda_bench --sweep-splits, int4 g128; docs/CUDA.md). Host-only.
TEST(CudaPlan, DecodeSplitsFollowTheSweep) {
  cuda::DeviceInfo dev = hopper_device(false);
  struct Want {
    int64_t k, n, m;
    int splits;
  };
  const Want wants[] = {{4096, 4096, 1, 16}, {4096, 4096, 16, 8},  {8192, 8192, 1, 8},  {8192, 8192, 16, 8},
                        {8192, 28672, 1, 2}, {8192, 28672, 16, 2}, {28672, 8192, 1, 8}, {28672, 8192, 16, 8},
                        {4096, 11008, 1, 6}, {11008, 4096, 1, 15}};
  for (const Want& t : wants) {
    const cuda::PackedView v = planner_view(t.k, t.n);
    const cuda::Plan p = cuda::make_plan(v, t.m, cuda::Family::kMma, dev);
    EXPECT_EQ(p.m_tiles, 1);
    EXPECT_EQ(p.splits, t.splits) << t.k << "x" << t.n << " M=" << t.m;
  }
}

// The streaming gemv family over its whole M range (1..32: rows 0-7 only, then one mma per 8 rows from
// M = 9, two blocks of 8 rows from M = 17), every bits x group x sym x act-order x dtype, N with a partial
// tile and partial blocks of 2, 4 and 8 tiles, K with a partial chunk (and a 64-wide last group).
TEST(CudaLinear, GemvEveryCombination) {
  REQUIRE_GPU();
  uint64_t id = 11000;
  for (Case c : every_combination(203, 320)) {
    c.bias = (id % 2) == 0;
    SCOPED_TRACE(c.name());
    check_case(c, {1, 2, 5, 8, 9, 16, 17, 32}, id++, {CudaKernel::kGemv});
    if (HasFailure()) return;
  }
}

// Groups changing inside one chunk with padding after them: K = 33 in groups of 11 and K = 90 in groups of
// 30 pack to k32 blocks of groups {0, 1, 2, 0} (padding blocks carry group 0), so a chunk's first and last
// block share a group while the middle ones differ. gemv's one-group fast path once took such a chunk for
// one group (OddShapes caught it in fp16 int4); here every bits x sym x dtype, M on both sides of 8.
TEST(CudaLinear, GemvGroupsChangingInsideOneChunk) {
  REQUIRE_GPU();
  uint64_t id = 13000;
  for (auto [n, k, g] : {std::tuple<int64_t, int64_t, int64_t>{5, 33, 11}, {37, 90, 30}})
    for (int bits : {2, 3, 4, 8})
      for (bool sym : {true, false})
        for (bool bf16 : {false, true}) {
          Case c;
          c.w.n = n;
          c.w.k = k;
          c.w.bits = bits;
          c.w.group_size = g;
          c.w.sym = sym;
          c.bf16 = bf16;
          c.bias = (id % 2) == 0;
          SCOPED_TRACE(c.name());
          check_case(c, {1, 3, 9, 20}, id++, {CudaKernel::kGemv});
          if (HasFailure()) return;
        }
}

// Every block shape (1, 2, 4, 8 warps along N, each with 4 tiles; 8, 4, 2, 1 warps along K) and split-K
// factor of gemv, forced, against the oracle: more warps along K than chunks, uneven last split, N not a
// multiple of the block's tiles nor of a warp's 4, x read element-wise (K % 8 != 0).
TEST(CudaLinear, GemvForcedShapesMatchOracle) {
  REQUIRE_GPU();
  uint64_t id = 12000;
  for (auto [n, k] : {std::pair<int64_t, int64_t>{200, 1000}, {60, 1500}, {1, 130}}) {
    Case c;
    c.w.n = n;
    c.w.k = k;
    c.bf16 = id % 2 == 0;
    c.bias = true;
    SCOPED_TRACE(c.name());
    auto rng = rng_for(id);
    std::vector<float> bias;
    const QuantizedWeight w = make_weight(c, id++, &bias, rng);
    CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kGemv);
    for (int tiles : {1, 2, 4, 8})
      for (int splits : {1, 3, 8})
        for (int64_t M : {1, 7, 16, 25, 32}) {
          layer.set_gemv_block_tiles(tiles);
          layer.set_mma_splits(splits);
          const std::string name = layer.kernel_name(M);
          EXPECT_EQ(name.rfind("gemv_w4_t" + std::to_string(tiles) + "_splitk", 0), 0u) << name;
          const Activations x = make_x(M, c.w.k, c.bf16, rng);
          EXPECT_EQ(check_output(w, bias, x, M, run(layer, x, M, c.w.n, c.bf16), c.bf16, false,
                                 name + " M=" + std::to_string(M)),
                    0);
          if (HasFailure()) return;
        }
  }
  CudaLinearSpec bad;
  bad.in_features = 256;
  bad.out_features = 64;
  bad.gemv_block_tiles = 3;
  EXPECT_THROW(CudaQuantLinear{bad}, Error);
  bad.gemv_block_tiles = 0;
  CudaQuantLinear ok(bad);
  EXPECT_THROW(ok.set_gemv_block_tiles(16), Error);
  EXPECT_THROW(ok.set_gemv_block_tiles(-1), Error);
}

// Above 8 rows gemv stages x two ways: blocks of 8 warps along N, or 4 along N and 2 along K (alternate
// chunks), take it through the block-wide x ring (mbarriers, ldmatrix from natural order), other block shapes
// stage the whole split in fragment order. All three, forced, over every bits x group x sym x act-order x
// dtype at M = 9..32; then a K of 32 chunks, so the x ring's 8 slots wrap several times (both barrier
// parities) with and without split-K (odd chunk counts per split: one warp along K takes one chunk less), x
// aligned or read element-wise (K % 8 != 0).
TEST(CudaLinear, GemvXRingAndWholeStagingMatchOracle) {
  REQUIRE_GPU();
  uint64_t id = 14000;
  auto check = [&](const Case& c, std::initializer_list<int> tiles_list,
                   std::initializer_list<int> splits_list, std::initializer_list<int64_t> ms) {
    auto rng = rng_for(id);
    std::vector<float> bias;
    const QuantizedWeight w = make_weight(c, id++, &bias, rng);
    CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kGemv);
    for (int tiles : tiles_list)
      for (int splits : splits_list)
        for (int64_t M : ms) {
          layer.set_gemv_block_tiles(tiles);
          layer.set_mma_splits(splits);
          const std::string name = layer.kernel_name(M);
          EXPECT_EQ(name.rfind("gemv_w" + std::to_string(c.w.bits) + "_t" + std::to_string(tiles), 0), 0u)
              << name;
          const Activations x = make_x(M, c.w.k, c.bf16, rng);
          EXPECT_EQ(check_output(w, bias, x, M, run(layer, x, M, c.w.n, c.bf16), c.bf16, false,
                                 c.name() + " " + name + " M=" + std::to_string(M)),
                    0);
          if (::testing::Test::HasFailure()) return;
        }
  };
  for (Case c : every_combination(203, 320, {32, 128, -1})) {
    c.bias = (id % 2) == 0;
    SCOPED_TRACE(c.name());
    check(c, {8, 4, 1}, {1}, {9, 17, 32});
    if (HasFailure()) return;
  }
  for (auto [n, k] : {std::pair<int64_t, int64_t>{200, 4096}, {72, 4092}})
    for (bool act : {false, true}) {
      Case c;
      c.w.n = n;
      c.w.k = k;
      c.w.act_order = act;
      c.bf16 = act;
      c.bias = true;
      SCOPED_TRACE(c.name());
      check(c, {8, 4}, {1, 3}, {12, 32});
      if (HasFailure()) return;
    }
}

// The 8 x 1 x ring's lookahead (cuda::set_gemv_x_ahead: 1 .. slots - 1 iterations; the planner's default 2)
// and the two-block 17..32-row kernel (cuda::set_gemv_two_wide(1): 128 registers, a 4-slot x ring), forced,
// then the early scales (set_gemv_early_meta(1)) at M = 1..27, against the oracle: every bits x dtype with
// sym/asym and act-order at M = 9..32 on a layer with a partial tile range; then a K of 32 chunks (the ring
// wraps many times, both barrier parities) with and without split-K (an uneven last split), x aligned or read
// element-wise (K % 8 != 0), g128 and g32 (groups changing inside a chunk: the two-block kernel's general
// path); last, graph replay of the two-block kernel.
TEST(CudaLinear, GemvVariantsMatchOracle) {
  REQUIRE_GPU();
  struct Restore {
    ~Restore() {
      cuda::set_gemv_x_ahead(0);
      cuda::set_gemv_two_wide(0);
      cuda::set_gemv_early_meta(0);
    }
  } restore;
  uint64_t id = 16000;
  auto check = [&](const Case& c, std::initializer_list<int> splits_list, std::initializer_list<int64_t> ms) {
    auto rng = rng_for(id);
    std::vector<float> bias;
    const QuantizedWeight w = make_weight(c, id++, &bias, rng);
    CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kGemv);
    layer.set_gemv_block_tiles(8);
    for (int two_wide : {-1, 1})
      for (int ahead : {1, 3, 7})
        for (int splits : splits_list)
          for (int64_t M : ms) {
            if (two_wide > 0 && (M <= 16 || ahead > 3)) continue;  // 4 slots: at most 3 ahead
            cuda::set_gemv_two_wide(two_wide);
            cuda::set_gemv_x_ahead(ahead);
            layer.set_mma_splits(splits);
            const std::string name = c.name() + " " + layer.kernel_name(M) + " M=" + std::to_string(M) +
                                     (two_wide > 0 ? " two-wide" : "") + " ahead " + std::to_string(ahead);
            EXPECT_EQ(layer.kernel_name(M).rfind("gemv_w" + std::to_string(c.w.bits) + "_t8", 0), 0u) << name;
            const Activations x = make_x(M, c.w.k, c.bf16, rng);
            EXPECT_EQ(check_output(w, bias, x, M, run(layer, x, M, c.w.n, c.bf16), c.bf16, false, name), 0);
            if (::testing::Test::HasFailure()) return;
          }
    // The early scales (set_gemv_early_meta(1)) in every row-group kernel, whole-split and ring staging.
    cuda::set_gemv_two_wide(0);
    cuda::set_gemv_x_ahead(0);
    cuda::set_gemv_early_meta(1);
    for (int tiles : {1, 8})
      for (int splits : splits_list)
        for (int64_t M : {int64_t{1}, int64_t{5}, int64_t{12}, int64_t{27}}) {
          layer.set_gemv_block_tiles(tiles);
          layer.set_mma_splits(splits);
          const std::string name =
              c.name() + " " + layer.kernel_name(M) + " M=" + std::to_string(M) + " early";
          const Activations x = make_x(M, c.w.k, c.bf16, rng);
          EXPECT_EQ(check_output(w, bias, x, M, run(layer, x, M, c.w.n, c.bf16), c.bf16, false, name), 0);
          if (::testing::Test::HasFailure()) break;
        }
    cuda::set_gemv_early_meta(0);
  };
  for (int bits : {2, 3, 4, 8})
    for (bool bf16 : {false, true}) {
      Case c;
      c.w.n = 203;
      c.w.k = 320;
      c.w.bits = bits;
      c.w.group_size = 128;
      c.w.sym = bits % 2 == 0;
      c.w.act_order = bits == 3;
      c.bf16 = bf16;
      c.bias = bf16;
      SCOPED_TRACE(c.name());
      check(c, {1}, {9, 17, 32});
      if (HasFailure()) return;
    }
  for (auto [k, g] : {std::pair<int64_t, int64_t>{4096, 128}, {4092, 32}}) {
    Case c;
    c.w.n = 264;
    c.w.k = k;
    c.w.group_size = g;
    c.bf16 = g == 128;
    c.bias = true;
    SCOPED_TRACE(c.name());
    check(c, {1, 3}, {12, 24, 32});
    if (HasFailure()) return;
  }
  Case c;
  c.w.n = 300;
  c.w.k = 2048;
  c.bf16 = true;
  auto rng = rng_for(id);
  std::vector<float> bias;
  const QuantizedWeight w = make_weight(c, id, &bias, rng);
  CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kGemv);
  layer.set_gemv_block_tiles(8);
  layer.set_mma_splits(2);
  cuda::set_gemv_two_wide(1);
  cuda::set_gemv_x_ahead(3);
  const Activations x = make_x(27, c.w.k, c.bf16, rng);
  const auto eager = run(layer, x, 27, c.w.n, c.bf16);
  EXPECT_EQ(check_output(w, bias, x, 27, eager, c.bf16, false, "two-wide eager"), 0);
  EXPECT_EQ(run_graph(layer, x, 27, c.w.n, c.bf16), eager) << "two-wide graph replay";
}

// The variants in the plans (host-only, an H100's figures): by default the lookahead is kGemvAutoXAhead and
// the two-block kernel runs only where kGemvAutoTwoWide lets the model pick it; set_gemv_two_wide(1) gives it
// to every 17..32-row plan of 8 warps along N (two blocks' shared memory fit one SM, bad shapes never get
// it), -1 to none; set_gemv_x_ahead clamps to the ring's slots. launch_gemv refuses a lookahead out of range.
TEST(CudaPlan, GemvVariantOverrides) {
  const UnpaddedPlans unpadded;
  struct Restore {
    ~Restore() {
      cuda::set_gemv_x_ahead(0);
      cuda::set_gemv_two_wide(0);
      cuda::set_gemv_early_meta(0);
      cuda::set_gemv_model_v6(false);
    }
  } restore;
  cuda::DeviceInfo dev = hopper_device(true);
  const auto& shapes = kBenchShapes;
  int two_wide_plans = 0;
  for (const auto& sh : shapes)
    for (int64_t M : {1, 8, 9, 16, 17, 24, 32}) {
      const cuda::PackedView v = planner_view(sh[0], sh[1]);
      const std::string what =
          std::to_string(sh[0]) + "x" + std::to_string(sh[1]) + " M=" + std::to_string(M);
      cuda::set_gemv_two_wide(0);
      cuda::set_gemv_x_ahead(0);
      const cuda::Plan def = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
      EXPECT_EQ(def.gemv_x_ahead, cuda::kGemvAutoXAhead) << what;
      EXPECT_EQ(def.gemv_early_meta, cuda::kGemvAutoEarlyMeta) << what;
      cuda::set_gemv_early_meta(1);
      EXPECT_TRUE(cuda::make_plan(v, M, cuda::Family::kGemv, dev).gemv_early_meta) << what;
      cuda::set_gemv_early_meta(-1);
      EXPECT_FALSE(cuda::make_plan(v, M, cuda::Family::kGemv, dev).gemv_early_meta) << what;
      cuda::set_gemv_early_meta(0);
      if (!cuda::kGemvAutoTwoWide) {
        EXPECT_FALSE(def.gemv_two_wide) << what;
      }
      EXPECT_TRUE(!def.gemv_two_wide || cuda::gemv_two_wide_fits(M, def.block_tiles)) << what;
      cuda::set_gemv_two_wide(1);
      const cuda::Plan on = cuda::make_plan(v, M, cuda::Family::kGemv, dev, 0, 8);
      EXPECT_EQ(on.gemv_two_wide, M > 16) << what;
      EXPECT_EQ(on.smem_bytes, cuda::gemv_smem_bytes(M, on.chunks_per_split, 4, 8, on.gemv_two_wide)) << what;
      if (on.gemv_two_wide) {
        EXPECT_LE(2 * (on.smem_bytes + 1024), static_cast<size_t>(dev.smem_per_sm)) << what;
        EXPECT_LE(on.gemv_x_ahead, cuda::kGemvTwoWideXStages - 1) << what;
      }
      two_wide_plans += on.gemv_two_wide;
      const cuda::Plan t1 = cuda::make_plan(v, M, cuda::Family::kGemv, dev, 0, 1);
      EXPECT_FALSE(t1.gemv_two_wide) << what << ": whole-split staging has no two-block kernel";
      cuda::set_gemv_two_wide(-1);
      EXPECT_FALSE(cuda::make_plan(v, M, cuda::Family::kGemv, dev).gemv_two_wide) << what;
      for (int a : {1, 4, 7, 50}) {
        cuda::set_gemv_x_ahead(a);
        EXPECT_EQ(cuda::make_plan(v, M, cuda::Family::kGemv, dev).gemv_x_ahead, std::min(a, 7)) << what;
      }
      cuda::set_gemv_two_wide(1);
      EXPECT_EQ(cuda::make_plan(v, M, cuda::Family::kGemv, dev, 0, 8).gemv_x_ahead, M > 16 ? 3 : 7) << what;
    }
  EXPECT_GT(two_wide_plans, 0);
  // set_gemv_model_v6: the previous fit's choices at M = 16 on the 70B shapes (one block per SM), the
  // current fit's two.
  struct Pick {
    int64_t k, n;
    int v6_splits, splits;
  };
  for (const Pick& t : {Pick{8192, 28672, 1, 2}, Pick{28672, 8192, 4, 8}}) {
    const cuda::PackedView v = planner_view(t.k, t.n);
    cuda::set_gemv_x_ahead(0);
    cuda::set_gemv_two_wide(0);
    cuda::set_gemv_model_v6(true);
    EXPECT_EQ(cuda::make_plan(v, 16, cuda::Family::kGemv, dev).splits, t.v6_splits) << t.k << "x" << t.n;
    cuda::set_gemv_model_v6(false);
    EXPECT_EQ(cuda::make_plan(v, 16, cuda::Family::kGemv, dev).splits, t.splits) << t.k << "x" << t.n;
  }
}

// Split-K summed inside one launch by a thread-block cluster (cuda::set_gemv_cluster_reduce(true), sm_90
// devices: elsewhere the planner keeps the reduce launch) against the reduce launch (the default):
// bit-identical, the same fp32 sums in split order, and both against the oracle. Every row-group kernel (M =
// 1, 12, 32), x-ring and whole-split block shapes, 2..8 splits with an uneven last one, a partial tile range,
// x aligned and read element-wise (K % 8 != 0); then a cluster launch replayed from a CUDA graph.
TEST(CudaLinear, GemvClusterReduceMatchesReduceLaunch) {
  REQUIRE_GPU();
  struct Restore {
    ~Restore() { cuda::set_gemv_cluster_reduce(false); }
  } restore;
  uint64_t id = 15000;
  for (auto [n, k] : {std::pair<int64_t, int64_t>{200, 2048}, {72, 1500}}) {
    Case c;
    c.w.n = n;
    c.w.k = k;
    c.bf16 = id % 2 == 0;
    c.bias = true;
    SCOPED_TRACE(c.name());
    auto rng = rng_for(id);
    std::vector<float> bias;
    const QuantizedWeight w = make_weight(c, id++, &bias, rng);
    CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kGemv);
    for (int tiles : {8, 4, 1})
      for (int splits : {2, 3, 8})
        for (int64_t M : {1, 12, 32}) {
          layer.set_gemv_block_tiles(tiles);
          layer.set_mma_splits(splits);
          const Activations x = make_x(M, c.w.k, c.bf16, rng);
          cuda::set_gemv_cluster_reduce(true);
          const std::string name = layer.kernel_name(M) + " M=" + std::to_string(M);
          const auto y_cluster = run(layer, x, M, c.w.n, c.bf16);
          cuda::set_gemv_cluster_reduce(false);
          const auto y_reduce = run(layer, x, M, c.w.n, c.bf16);
          EXPECT_EQ(check_output(w, bias, x, M, y_cluster, c.bf16, false, name + " cluster"), 0);
          EXPECT_EQ(y_cluster, y_reduce) << name;
          if (HasFailure()) return;
        }
    layer.set_gemv_block_tiles(8);
    layer.set_mma_splits(4);
    cuda::set_gemv_cluster_reduce(true);
    const Activations x = make_x(12, c.w.k, c.bf16, rng);
    EXPECT_EQ(run_graph(layer, x, 12, c.w.n, c.bf16), run(layer, x, 12, c.w.n, c.bf16)) << "graph replay";
    cuda::set_gemv_cluster_reduce(false);
  }
}

// The cluster reduction in the gemv plans (host-only, an H100's figures): allowed (it is off by default:
// measured slower) on an sm_90 device (wgmma), every plan that splits K 2..8 ways sums in the kernel and asks
// for no workspace; above 8 splits, without sm_90, or with the override off it takes the partials and the
// reduce launch.
TEST(CudaPlan, GemvClusterSplitsNeedNoWorkspace) {
  struct Restore {
    ~Restore() { cuda::set_gemv_cluster_reduce(false); }
  } restore;
  cuda::DeviceInfo dev = hopper_device(true);
  const int64_t shapes[][2] = {{4096, 4096},  {4096, 11008}, {11008, 4096}, {8192, 8192},
                               {8192, 28672}, {28672, 8192}, {320, 203}};
  EXPECT_FALSE(cuda::gemv_cluster_reduce()) << "the cluster reduction is off by default";
  cuda::set_gemv_cluster_reduce(true);
  int clustered = 0;
  for (const auto& sh : shapes) {
    const cuda::PackedView v = planner_view(sh[0], sh[1]);
    for (int64_t M : {1, 4, 8, 9, 16, 17, 32}) {
      const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
      const bool want = p.splits > 1 && p.splits <= cuda::kGemvMaxClusterSplits;
      EXPECT_EQ(p.gemv_cluster, want) << sh[0] << "x" << sh[1] << " M=" << M << " splits " << p.splits;
      EXPECT_EQ(p.workspace_bytes, p.splits > 1 && !want ? p.partial_bytes : 0u);
      clustered += p.gemv_cluster;
    }
    for (int splits : {3, 8, 16}) {
      const cuda::Plan p = cuda::make_plan(v, 16, cuda::Family::kGemv, dev, splits, 8);
      EXPECT_EQ(p.gemv_cluster, p.splits > 1 && p.splits <= 8) << "forced " << splits << " -> " << p.splits;
      EXPECT_EQ(p.partial_bytes > 0, p.splits > 8);
    }
  }
  EXPECT_GT(clustered, 0) << "no plan split K in a cluster";
  const cuda::PackedView v = planner_view(8192, 8192);
  cuda::set_gemv_cluster_reduce(false);
  const cuda::Plan off = cuda::make_plan(v, 16, cuda::Family::kGemv, dev, 4, 8);
  EXPECT_FALSE(off.gemv_cluster);
  EXPECT_EQ(off.workspace_bytes, off.partial_bytes);
  EXPECT_GE(off.partial_bytes, static_cast<size_t>(4 * 16 * 8192 * 4));
  cuda::set_gemv_cluster_reduce(true);
  dev.wgmma = false;  // sm_80 (or an sm_90 device without sm_90a code): no clusters
  const cuda::Plan sm80 = cuda::make_plan(v, 16, cuda::Family::kGemv, dev, 4, 8);
  EXPECT_FALSE(sm80.gemv_cluster);
  EXPECT_GT(sm80.partial_bytes, 0u);
}

// Plans of exactly two splits sum them in a cluster of the two blocks on sm_90 (set_gemv_cluster_pairs,
// kGemvAutoClusterPairs; host-only, an H100's figures): no partials, no workspace, the model's shape
// unchanged (the same block shape and split factor with the override off); three or more splits, the stream-K
// plans and an sm_80 device keep the reduce launch. On the six shapes that is 8192x28672 at M = 9..16 (t8
// s2); CudaLinear.GemvClusterReduceMatchesReduceLaunch checks the cluster's sums on the GPU.
TEST(CudaPlan, GemvTwoSplitsSumInACluster) {
  struct Restore {
    ~Restore() { cuda::set_gemv_cluster_pairs(0); }
  } restore;
  cuda::DeviceInfo dev = hopper_device(true);
  int pairs = 0;
  for (const auto& sh : kBenchShapes)
    for (int64_t M : {1, 4, 8, 9, 12, 16, 17, 24, 32}) {
      const cuda::PackedView v = planner_view(sh[0], sh[1]);
      const std::string what =
          std::to_string(sh[0]) + "x" + std::to_string(sh[1]) + " M=" + std::to_string(M);
      cuda::set_gemv_cluster_pairs(0);
      const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
      const bool want = cuda::kGemvAutoClusterPairs && p.splits == 2 && !p.gemv_stream_k;
      EXPECT_EQ(p.gemv_cluster, want) << what;
      EXPECT_EQ(p.workspace_bytes, p.splits > 1 && !p.gemv_cluster ? p.partial_bytes : 0u) << what;
      pairs += p.gemv_cluster;
      cuda::set_gemv_cluster_pairs(-1);
      const cuda::Plan off = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
      EXPECT_FALSE(off.gemv_cluster) << what;
      EXPECT_EQ(off.block_tiles, p.block_tiles) << what;
      EXPECT_EQ(off.splits, p.splits) << what;
      EXPECT_EQ(off.workspace_bytes, off.splits > 1 ? off.partial_bytes : 0u) << what;
    }
  EXPECT_EQ(pairs > 0, cuda::kGemvAutoClusterPairs) << "8192x28672 at M = 9..16 splits K in two";
  const cuda::PackedView v = planner_view(8192, 8192);
  cuda::set_gemv_cluster_pairs(1);
  EXPECT_TRUE(cuda::make_plan(v, 16, cuda::Family::kGemv, dev, 2, 8).gemv_cluster) << "forced two splits";
  EXPECT_FALSE(cuda::make_plan(v, 16, cuda::Family::kGemv, dev, 3, 8).gemv_cluster) << "three splits";
  dev.wgmma = false;  // sm_80: no clusters
  const cuda::Plan sm80 = cuda::make_plan(v, 16, cuda::Family::kGemv, dev, 2, 8);
  EXPECT_FALSE(sm80.gemv_cluster);
  EXPECT_GT(sm80.partial_bytes, 0u);
}

// The 4 x 2 x-ring blocks are off in the planner by default (set_gemv_ring_4x2): no plan above 8 rows has 4
// warps along N, while a forced shape still runs them (the ring's shared memory); allowed, the planner may
// weigh them and every plan still fits.
TEST(CudaPlan, GemvRing4x2Override) {
  const UnpaddedPlans unpadded;
  struct Restore {
    ~Restore() { cuda::set_gemv_ring_4x2(false); }
  } restore;
  cuda::DeviceInfo dev = hopper_device(false);
  EXPECT_FALSE(cuda::gemv_ring_4x2());
  EXPECT_EQ(cuda::gemv_x_ring(9, 4), cuda::kGemvRing4x2Built);
  EXPECT_FALSE(cuda::gemv_x_ring(8, 4));
  EXPECT_FALSE(cuda::gemv_x_ring(32, 2));
  const auto& shapes = kBenchShapes;
  for (bool allowed : {false, true}) {
    cuda::set_gemv_ring_4x2(allowed);
    for (const auto& sh : shapes)
      for (int64_t M : {9, 16, 17, 32}) {
        const cuda::PackedView v = planner_view(sh[0], sh[1]);
        const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
        if (!allowed) {
          EXPECT_NE(p.block_tiles, 4) << sh[0] << "x" << sh[1] << " M=" << M;
        }
        EXPECT_EQ(p.smem_bytes, cuda::gemv_smem_bytes(M, p.chunks_per_split, 4, p.block_tiles));
        EXPECT_LE(p.smem_bytes, static_cast<size_t>(dev.smem_per_block));
        const cuda::Plan forced = cuda::make_plan(v, M, cuda::Family::kGemv, dev, 2, 4);
        EXPECT_EQ(forced.block_tiles, 4);
        EXPECT_EQ(forced.smem_bytes, cuda::gemv_smem_bytes(M, forced.chunks_per_split, 4, 4));
      }
  }
}

// kAuto's family per M and the gemv plans on an H200's figures (host-only): gemv where it measured faster
// than mma (M <= 32, int4, g >= 128, layers from 4096x4096 up), mma elsewhere below large_m_threshold,
// dequant_gemm from it; every gemv plan fits the block's shared memory, covers K exactly once and asks for
// partials only when it splits K; M above gemv's range falls back to mma.
TEST(CudaPlan, GemvAutoFamilyAndPlansFit) {
  const UnpaddedPlans unpadded;
  cuda::DeviceInfo dev = hopper_device(false);
  const int64_t shapes[][2] = {{4096, 4096},  {4096, 11008}, {11008, 4096}, {8192, 8192}, {8192, 28672},
                               {28672, 8192}, {320, 203},    {128, 8},      {65536, 1024}};
  for (const auto& sh : shapes)
    for (int bits : {2, 3, 4, 8})
      for (int64_t group : {128, 32}) {
        const cuda::PackedView v = planner_view(sh[0], sh[1], bits, group);
        const bool measured = v.n8_tiles * v.chunks >= 512 * 32;  // 4096x4096 and up
        for (int64_t M : {1, 2, 4, 8, 9, 16, 17, 32, 33, 64, 255, 256}) {
          const cuda::Family want = M >= 256 ? cuda::Family::kDequantGemm
                                    : M <= 32 && bits == 4 && group == 128 && measured ? cuda::Family::kGemv
                                                                                       : cuda::Family::kMma;
          EXPECT_EQ(static_cast<int>(cuda::auto_family(v, M, 256)), static_cast<int>(want))
              << sh[0] << "x" << sh[1] << " int" << bits << " g" << group << " M=" << M;
          const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
          if (M > cuda::kGemvMaxRows) {
            EXPECT_EQ(static_cast<int>(p.family), static_cast<int>(cuda::Family::kMma)) << "M=" << M;
            continue;
          }
          EXPECT_EQ(static_cast<int>(p.family), static_cast<int>(cuda::Family::kGemv));
          EXPECT_FALSE(p.gather);
          EXPECT_TRUE(p.block_tiles == 1 || p.block_tiles == 2 || p.block_tiles == 4 || p.block_tiles == 8);
          EXPECT_LE(p.smem_bytes, static_cast<size_t>(dev.smem_per_block));
          EXPECT_EQ(p.smem_bytes, cuda::gemv_smem_bytes(M, p.chunks_per_split, bits, p.block_tiles));
          EXPECT_GE(static_cast<int64_t>(p.splits) * p.chunks_per_split, v.chunks);
          EXPECT_LT(static_cast<int64_t>(p.splits - 1) * p.chunks_per_split, v.chunks);  // no empty split
          EXPECT_EQ(p.workspace_bytes, p.splits > 1 ? p.partial_bytes : 0u);
          EXPECT_GE(p.partial_bytes, p.splits > 1 ? static_cast<size_t>(p.splits * M * v.n * 4) : 0u);
        }
      }
  // Forced shapes are honoured: warps along N exactly, splits rounded to a factor that divides the chunks.
  cuda::PackedView v;
  v.k = 1000;
  v.n = 200;
  v.bits = 4;
  v.groups = 8;
  v.n8_tiles = 25;
  v.chunks = 8;
  const cuda::Plan p = cuda::make_plan(v, 1, cuda::Family::kGemv, dev, 5, 4);
  EXPECT_EQ(p.block_tiles, 4);
  EXPECT_EQ(p.splits, 4);
  EXPECT_EQ(p.chunks_per_split, 2);
}

// The gemv planner's block shape and split factor against the sweep of every block shape and split factor on
// an H200 (2026-11-28 01:10 UTC, ark_cuda_bench --sweep-gemv, int4 g128 bf16, M = 1, 8, 16, 32, docs/CUDA.md
// v7): each pin is the fastest shape measured or within 0.2% of it (8192x28672 M = 1: t4 s1 40.8 us, t8 s1
// 40.9; in the next call, 01:30 UTC, 39.97 against 41.15). Not pinned: 4096x11008 M = 16 (the plan's t8 s3
// 17.9 us against t8 s6 17.5). The earlier pins (an
// H100 sweep of 20:50 UTC and H200 sweeps of 22:50 / 23:05) timed older versions of the kernel; at M = 16 on
// the 70B shapes this sweep has two blocks per SM ahead by 11-14% (8192x28672 t8 s2 55.9 against s1 62.6,
// 28672x8192 t8 s8 49.8 against s4 57.2), which the refitted model follows.
TEST(CudaPlan, GemvShapesFollowTheSweep) {
  cuda::DeviceInfo dev = hopper_device(false);
  struct Want {
    int64_t k, n, m;
    int warps_n, splits;
  };
  const Want wants[] = {
      {4096, 4096, 1, 1, 1},   {4096, 4096, 16, 8, 8},  {4096, 4096, 32, 8, 8},  {4096, 11008, 1, 8, 3},
      {4096, 11008, 32, 8, 3}, {11008, 4096, 1, 1, 1},  {11008, 4096, 16, 8, 8}, {11008, 4096, 32, 8, 8},
      {8192, 8192, 1, 2, 1},   {8192, 8192, 16, 8, 8},  {8192, 8192, 32, 8, 4},  {8192, 28672, 1, 4, 1},
      {8192, 28672, 8, 8, 1},  {8192, 28672, 16, 8, 2}, {8192, 28672, 32, 8, 1}, {28672, 8192, 1, 8, 4},
      {28672, 8192, 8, 8, 4},  {28672, 8192, 16, 8, 8}, {28672, 8192, 32, 8, 4}};
  for (const Want& t : wants) {
    const cuda::PackedView v = planner_view(t.k, t.n);
    const cuda::Plan p = cuda::make_plan(v, t.m, cuda::Family::kGemv, dev);
    EXPECT_EQ(p.block_tiles, t.warps_n) << t.k << "x" << t.n << " M=" << t.m;
    EXPECT_EQ(p.splits, t.splits) << t.k << "x" << t.n << " M=" << t.m;
  }
}

// The gemv stream-K schedule (cuda::set_gemv_stream_k(1), grid forced by set_gemv_sk_grid) against the
// oracle: 3 tile ranges of 8 chunks (N = 600 at 8 warps along N: the last range partial) cut into 1 block
// (three whole ranges in one block: the x ring re-initialised between pieces), 2 (a share longer than a
// range: a whole range between two pieces), 3 (shares = ranges: no reduce), 5 (range 0 in 2 pieces, range 1
// in 3, a block spanning 2 ranges), 7, 11 and 24 blocks (one chunk each); whole-split and x-ring staging (8,
// 2, 1 warps along N), every row-group kernel with M tails; K with a partial chunk read element-wise (K % 8
// != 0), g32 with act-order (groups changing inside a chunk). Each result also bit-identical on a rerun and
// under graph replay (the pieces are summed in a fixed order).
TEST(CudaLinear, GemvStreamKMatchesOracle) {
  REQUIRE_GPU();
  struct Restore {
    ~Restore() {
      cuda::set_gemv_stream_k(gemv_stream_k_default());
      cuda::set_gemv_sk_grid(0);
      cuda::set_gemv_pdl(0);
    }
  } restore;
  uint64_t id = 17000;
  struct Layer {
    int64_t n, k, group;
    bool act, bf16;
  };
  for (const Layer& l : {Layer{600, 1000, 128, false, true}, Layer{300, 999, 32, true, false}}) {
    Case c;
    c.w.n = l.n;
    c.w.k = l.k;
    c.w.group_size = l.group;
    c.w.act_order = l.act;
    c.bf16 = l.bf16;
    c.bias = true;
    SCOPED_TRACE(c.name());
    auto rng = rng_for(id);
    std::vector<float> bias;
    const QuantizedWeight w = make_weight(c, id++, &bias, rng);
    CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kGemv);
    cuda::set_gemv_stream_k(1);
    for (int tiles : {8, 2, 1})
      for (int grid : {1, 2, 3, 5, 7, 11, 24})
        for (int64_t M : {1, 6, 9, 16, 17, 32}) {
          if (l.act && grid % 2 == 0) continue;  // the second layer (2 ranges of 8 chunks): fewer cases
          layer.set_gemv_block_tiles(tiles);
          cuda::set_gemv_sk_grid(grid);
          const std::string name = layer.kernel_name(M) + " M=" + std::to_string(M);
          EXPECT_EQ(name.rfind("gemv_w4_t" + std::to_string(tiles) + "_sk" + std::to_string(grid), 0), 0u)
              << name;
          const Activations x = make_x(M, c.w.k, c.bf16, rng);
          const auto y = run(layer, x, M, c.w.n, c.bf16);
          EXPECT_EQ(check_output(w, bias, x, M, y, c.bf16, false, name), 0);
          EXPECT_EQ(run(layer, x, M, c.w.n, c.bf16), y) << name << ": a rerun differs";
          if (grid == 5 && (M == 1 || M == 17)) {
            EXPECT_EQ(run_graph(layer, x, M, c.w.n, c.bf16), y) << name << ": graph replay differs";
            cuda::set_gemv_pdl(
                1);  // the reduce as a programmatic dependent launch (sm_90), eager and replayed
            EXPECT_EQ(run(layer, x, M, c.w.n, c.bf16), y) << name << " pdl";
            EXPECT_EQ(run_graph(layer, x, M, c.w.n, c.bf16), y) << name << " pdl: graph replay differs";
            cuda::set_gemv_pdl(0);
          }
          if (HasFailure()) return;
        }
  }
}

// A bf16 int4 g128 layer with a bias (on the gemv kernel unless told), its weight and bias kept for the
// oracle: what the launch-schedule tests below run (their own rng, seeded by id).
struct TestLayer {
  Case c;
  std::vector<float> bias;
  std::mt19937_64 rng;
  QuantizedWeight w;
  CudaQuantLinear layer;
  TestLayer(int64_t n, int64_t k, uint64_t id, CudaKernel kernel = CudaKernel::kGemv)
      : c(bf16_with_bias(n, k)),
        rng(rng_for(id)),
        w(make_weight(c, id, &bias, rng)),
        layer(make_layer(c, w, bias, kernel)) {}
  static Case bf16_with_bias(int64_t n, int64_t k) {
    Case c;
    c.w.n = n;
    c.w.k = k;
    c.bf16 = true;
    c.bias = true;
    return c;
  }
};

// Split-K's reduce as a programmatic dependent launch (cuda::set_gemv_pdl(1); sm_90, elsewhere the plan keeps
// the plain launch): bit-identical to the plain reduce launch, eager and replayed from a graph, at M = 1, 12,
// 32 with 3 splits.
TEST(CudaLinear, GemvPdlReduceMatchesReduceLaunch) {
  REQUIRE_GPU();
  struct Restore {
    ~Restore() { cuda::set_gemv_pdl(0); }
  } restore;
  TestLayer t(600, 1000, 17200);
  auto& [c, bias, rng, w, layer] = t;
  layer.set_gemv_block_tiles(8);
  layer.set_mma_splits(3);
  for (int64_t M : {1, 12, 32}) {
    const Activations x = make_x(M, c.w.k, c.bf16, rng);
    cuda::set_gemv_pdl(-1);
    const auto plain = run(layer, x, M, c.w.n, c.bf16);
    cuda::set_gemv_pdl(1);
    const std::string name = layer.kernel_name(M) + " M=" + std::to_string(M);
    EXPECT_EQ(check_output(w, bias, x, M, plain, c.bf16, false, name), 0);
    EXPECT_EQ(run(layer, x, M, c.w.n, c.bf16), plain) << name << " pdl";
    EXPECT_EQ(run_graph(layer, x, M, c.w.n, c.bf16), plain) << name << " pdl graph";
  }
}

// A chain of calls of t.layer on one stream, each call's x the previous call's y, which is NaN poison until
// that call has finished: launched plainly (set_pdl_in(-1)) and as programmatic dependent launches
// (set_pdl_in(1)). A kernel that read x (or wrote its partials into the shared workspace) before the previous
// launch was done would show NaN or wrong sums: each link is checked against the oracle of the x it was
// given, and is bit-identical to the plain chain, eager and replayed from a graph.
void check_dependent_chain(TestLayer& t, int64_t M, void (*set_pdl_in)(int), const std::string& name) {
  constexpr int kLinks = 4;
  const int64_t K = t.c.w.k;
  ASSERT_EQ(t.c.w.n, K) << "a chain needs N == K";
  const Activations x0 = make_x(M, K, t.c.bf16, t.rng);
  const size_t bytes = static_cast<size_t>(M * K) * 2;
  std::vector<std::unique_ptr<DevBuf>> buf;
  for (int i = 0; i <= kLinks; ++i) buf.push_back(std::make_unique<DevBuf>(bytes));
  DevBuf ws(t.layer.workspace_bytes(M));
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  auto poison = [&]() {
    ASSERT_EQ(cudaMemcpy(buf[0]->p, x0.bits.data(), bytes, cudaMemcpyHostToDevice), cudaSuccess);
    for (int i = 1; i <= kLinks; ++i) ASSERT_EQ(cudaMemset(buf[i]->p, 0xff, bytes), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  };
  auto enqueue = [&]() {
    for (int i = 0; i < kLinks; ++i)
      t.layer.forward(buf[i]->p, buf[i + 1]->p, M, DType::BF16, s, ws.p, ws.bytes);
  };
  auto outputs = [&]() {
    EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    std::vector<std::vector<uint16_t>> out(kLinks + 1, std::vector<uint16_t>(static_cast<size_t>(M * K)));
    for (int i = 0; i <= kLinks; ++i)
      EXPECT_EQ(cudaMemcpy(out[i].data(), buf[i]->p, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  };
  set_pdl_in(-1);
  poison();
  enqueue();
  const auto plain = outputs();
  set_pdl_in(1);
  poison();
  enqueue();
  const auto dependent = outputs();
  for (int i = 0; i < kLinks; ++i) {
    Activations xi;
    xi.bits = dependent[i];
    for (uint16_t b : xi.bits) xi.values.push_back(from_t(b, t.c.bf16));
    EXPECT_EQ(check_output(t.w, t.bias, xi, M, dependent[i + 1], t.c.bf16, false,
                           name + " link " + std::to_string(i)),
              0);
    EXPECT_EQ(dependent[i + 1], plain[i + 1]) << name << " link " << i << ": the dependent launch differs";
  }
  poison();
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  enqueue();
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int rep = 0; rep < 3; ++rep) EXPECT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  const auto replayed = outputs();
  for (int i = 1; i <= kLinks; ++i) EXPECT_EQ(replayed[i], plain[i]) << name << " link " << i - 1 << " graph";
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
  set_pdl_in(0);
}

// The decode kernel as a programmatic dependent launch (cuda::set_gemv_pdl_in; sm_90, elsewhere the plan
// keeps the plain launch): check_dependent_chain with and without split-K's reduce between the links, with
// two splits summed in a cluster, in every row-group kernel.
TEST(CudaLinear, GemvPdlInChainReadsThePreviousOutput) {
  REQUIRE_GPU();
  TestLayer t(1536, 1536, 17300);
  for (int splits : {0, 2, 3})  // 2: summed by a cluster of two blocks on sm_90 (set_gemv_cluster_pairs)
    for (int64_t M : {1, 12, 32}) {
      t.layer.set_mma_splits(splits);
      check_dependent_chain(t, M, cuda::set_gemv_pdl_in, t.layer.kernel_name(M) + " M=" + std::to_string(M));
      if (HasFailure()) return;
    }
}

// A memcheck-sized stream-K subset (device_cuda_check.sh gemv8 runs it under compute-sanitizer): pieces
// crossing ranges in every row-group kernel, x ring and whole-split staging, the reduce.
TEST(CudaLinear, GemvStreamKMemcheck) {
  REQUIRE_GPU();
  struct Restore {
    ~Restore() {
      cuda::set_gemv_stream_k(gemv_stream_k_default());
      cuda::set_gemv_sk_grid(0);
    }
  } restore;
  TestLayer t(600, 1000, 17100);
  auto& [c, bias, rng, w, layer] = t;
  cuda::set_gemv_stream_k(1);
  for (int tiles : {8, 1})
    for (int64_t M : {3, 12, 27}) {
      layer.set_gemv_block_tiles(tiles);
      cuda::set_gemv_sk_grid(5);
      const Activations x = make_x(M, c.w.k, c.bf16, rng);
      EXPECT_EQ(check_output(w, bias, x, M, run(layer, x, M, c.w.n, c.bf16), c.bf16, false,
                             layer.kernel_name(M) + " M=" + std::to_string(M)),
                0);
    }
}

// Stream-K gemv plans (host-only, an H100's figures): off unless weighed (kGemvAutoStreamK) or forced;
// forced, every plan where it applies has G <= units blocks, pieces no longer than its shared memory holds,
// the workspace of two slots per block, splits 1; never with a forced split factor, the cluster reduction or
// the two-block kernel; the share arithmetic covers every unit exactly once.
TEST(CudaPlan, GemvStreamKPlans) {
  const UnpaddedPlans unpadded;
  struct Restore {
    ~Restore() {
      cuda::set_gemv_stream_k(gemv_stream_k_default());
      cuda::set_gemv_sk_grid(0);
      cuda::set_gemv_two_wide(0);
      cuda::set_gemv_cluster_reduce(false);
    }
  } restore;
  cuda::DeviceInfo dev = hopper_device(true);
  for (int64_t units : {1, 7, 24, 7168, 14336})
    for (int64_t blocks : {1, 2, 5, 132, 264}) {
      if (blocks > units) continue;
      int64_t covered = 0;
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t lo = cuda::gemv_sk_begin(b, blocks, units),
                      hi = cuda::gemv_sk_begin(b + 1, blocks, units);
        EXPECT_LT(lo, hi) << units << " units, " << blocks << " blocks: block " << b << " has no share";
        for (int64_t u : {lo, hi - 1}) {
          EXPECT_EQ(cuda::gemv_sk_block_of(u, blocks, units), b) << units << " " << blocks << " unit " << u;
        }
        covered += hi - lo;
      }
      EXPECT_EQ(covered, units);
    }
  const int64_t shapes[][2] = {{4096, 4096},  {4096, 11008}, {11008, 4096}, {8192, 8192},
                               {8192, 28672}, {28672, 8192}, {320, 203},    {1000, 600}};
  int sk_plans = 0;
  for (const auto& sh : shapes)
    for (int64_t M : {1, 4, 8, 9, 16, 17, 32}) {
      const cuda::PackedView v = planner_view(sh[0], sh[1]);
      const std::string what =
          std::to_string(sh[0]) + "x" + std::to_string(sh[1]) + " M=" + std::to_string(M);
      cuda::set_gemv_stream_k(-1);
      EXPECT_FALSE(cuda::make_plan(v, M, cuda::Family::kGemv, dev).gemv_stream_k) << what;
      cuda::set_gemv_stream_k(0);
      if (!cuda::kGemvAutoStreamK) {
        EXPECT_FALSE(cuda::make_plan(v, M, cuda::Family::kGemv, dev).gemv_stream_k) << what;
      }
      cuda::set_gemv_stream_k(1);
      const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
      ASSERT_TRUE(p.gemv_stream_k) << what;
      ++sk_plans;
      const int64_t units = cuda::gemv_sk_units(v.n8_tiles, v.chunks, p.block_tiles);
      EXPECT_GE(p.gemv_sk_blocks, 1) << what;
      EXPECT_LE(p.gemv_sk_blocks, std::min<int64_t>(units, 2 * dev.sm_count)) << what;
      EXPECT_EQ(p.splits, 1) << what;
      EXPECT_GE(p.chunks_per_split,
                std::min<int64_t>(v.chunks, (units + p.gemv_sk_blocks - 1) / p.gemv_sk_blocks))
          << what;
      EXPECT_EQ(p.smem_bytes, cuda::gemv_smem_bytes(M, p.chunks_per_split, 4, p.block_tiles)) << what;
      EXPECT_LE(p.smem_bytes, static_cast<size_t>(dev.smem_per_block)) << what;
      EXPECT_GE(p.workspace_bytes, cuda::gemv_sk_partial_bytes(p.gemv_sk_blocks, M, p.block_tiles)) << what;
      EXPECT_FALSE(p.block_tiles == 4 && cuda::gemv_x_ring(M, 4)) << what << ": no 4 x 2 stream-K kernel";
      cuda::set_gemv_sk_grid(5);
      const cuda::Plan g5 = cuda::make_plan(v, M, cuda::Family::kGemv, dev, 0, 8);
      const int64_t units8 = cuda::gemv_sk_units(v.n8_tiles, v.chunks, 8),
                    g5_blocks = std::min<int64_t>(5, units8);
      // 5 blocks of a long K at M <= 8 stage more x than a block's shared memory holds: split-K then
      if (cuda::gemv_smem_bytes(M, std::min(v.chunks, (units8 + g5_blocks - 1) / g5_blocks), 4, 8) <=
          static_cast<size_t>(dev.smem_per_block)) {
        EXPECT_TRUE(g5.gemv_stream_k && g5.block_tiles == 8) << what;
        EXPECT_EQ(g5.gemv_sk_blocks, g5_blocks) << what;
      } else {
        EXPECT_FALSE(g5.gemv_stream_k) << what;
      }
      cuda::set_gemv_sk_grid(0);
      EXPECT_FALSE(cuda::make_plan(v, M, cuda::Family::kGemv, dev, 3).gemv_stream_k)
          << what << ": forced splits";
      cuda::set_gemv_cluster_reduce(true);
      const cuda::Plan cl = cuda::make_plan(v, M, cuda::Family::kGemv, dev, 0, 8);
      EXPECT_TRUE(!cl.gemv_stream_k || !cl.gemv_cluster) << what;
      cuda::set_gemv_cluster_reduce(false);
      cuda::set_gemv_two_wide(1);
      const cuda::Plan tw = cuda::make_plan(v, M, cuda::Family::kGemv, dev, 0, 8);
      EXPECT_TRUE(!tw.gemv_stream_k || !tw.gemv_two_wide) << what;
      cuda::set_gemv_two_wide(0);
    }
  EXPECT_GT(sk_plans, 0);
}

// One block per SM (cuda::set_gemv_one_per_sm(1), host-only, an H100's figures): a gemv plan of at most one
// block per SM whose blocks could share one gets half an SM's shared memory (two no longer fit), others keep
// theirs; off (-1) nothing is padded; kAuto pads (kGemvAutoOnePerSm); the dependent reduce launch and the
// decode kernel as a dependent launch (kGemvAutoPdlIn) only on sm_90 devices, each with its off switch.
TEST(CudaPlan, GemvOnePerSmPadding) {
  struct Restore {
    ~Restore() {
      cuda::set_gemv_one_per_sm(0);
      cuda::set_gemv_pdl(0);
      cuda::set_gemv_pdl_in(0);
    }
  } restore;
  cuda::DeviceInfo dev = hopper_device(true);
  const auto& shapes = kBenchShapes;
  int padded = 0;
  for (const auto& sh : shapes)
    for (int64_t M : {1, 4, 8, 12, 16, 24, 32}) {
      const cuda::PackedView v = planner_view(sh[0], sh[1]);
      const std::string what =
          std::to_string(sh[0]) + "x" + std::to_string(sh[1]) + " M=" + std::to_string(M);
      cuda::set_gemv_one_per_sm(-1);
      const cuda::Plan off = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
      EXPECT_FALSE(off.gemv_one_per_sm) << what;
      cuda::set_gemv_one_per_sm(1);
      const cuda::Plan on = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
      const int64_t blocks = (v.n8_tiles + on.block_tiles * 4 - 1) / (on.block_tiles * 4) * on.splits;
      const bool want = blocks <= dev.sm_count && M <= 16 && 2 * (off.smem_bytes + 1024) <= 233472u;
      EXPECT_EQ(on.gemv_one_per_sm, want) << what;
      EXPECT_EQ(on.block_tiles, off.block_tiles) << what;
      EXPECT_EQ(on.splits, off.splits) << what;
      EXPECT_EQ(on.smem_bytes, want ? 233472u / 2 : off.smem_bytes) << what;
      if (want) {
        EXPECT_GT(2 * (on.smem_bytes + 1024), 233472u) << what;
      }
      padded += want;
      cuda::set_gemv_one_per_sm(0);
      const cuda::Plan def = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
      EXPECT_EQ(def.gemv_one_per_sm, cuda::kGemvAutoOnePerSm && want) << what;
      EXPECT_EQ(def.gemv_pdl_in, cuda::kGemvAutoPdlIn) << what;
      EXPECT_TRUE(on.gemv_pdl) << what;
      cuda::set_gemv_pdl(-1);
      cuda::set_gemv_pdl_in(-1);
      const cuda::Plan plain = cuda::make_plan(v, M, cuda::Family::kGemv, dev);
      EXPECT_FALSE(plain.gemv_pdl) << what;
      EXPECT_FALSE(plain.gemv_pdl_in) << what;
      cuda::set_gemv_pdl_in(1);
      EXPECT_TRUE(cuda::make_plan(v, M, cuda::Family::kGemv, dev).gemv_pdl_in) << what;
      cuda::set_gemv_pdl(0);
      cuda::DeviceInfo sm80 = dev;
      sm80.wgmma = false;
      const cuda::Plan old = cuda::make_plan(v, M, cuda::Family::kGemv, sm80);
      EXPECT_FALSE(old.gemv_pdl) << what << ": sm_80";
      EXPECT_FALSE(old.gemv_pdl_in) << what << ": sm_80";
      cuda::set_gemv_pdl_in(0);
    }
  EXPECT_GT(padded, 0);
}

// spec.max_m: the layer's own workspace serves every M up to it.
TEST(CudaLinear, OwnWorkspace) {
  REQUIRE_GPU();
  Case c;
  c.w.n = 512;
  c.w.k = 512;
  auto rng = rng_for(9000);
  std::vector<float> bias;
  const QuantizedWeight w = make_weight(c, 9000, &bias, rng);
  CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kAuto, 300);
  for (int64_t M : {1, 40, 300}) {
    const Activations x = make_x(M, c.w.k, c.bf16, rng);
    DevBuf dx(x.bits.size() * 2), dy(static_cast<size_t>(M * c.w.n) * 2);
    CUDA_OK(cudaMemcpy(dx.p, x.bits.data(), dx.bytes, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(dy.p, 0xff, dy.bytes));
    layer.forward(dx.p, dy.p, M, DType::F16, nullptr);
    std::vector<uint16_t> y(static_cast<size_t>(M * c.w.n));
    CUDA_OK(cudaMemcpy(y.data(), dy.p, dy.bytes, cudaMemcpyDeviceToHost));
    EXPECT_EQ(check_output(w, bias, x, M, y, false, M >= 256, "own workspace M=" + std::to_string(M)), 0);
  }
}

// x at an address that is not 16-byte aligned (a view into a larger buffer): the mma kernel copies x rows in
// 16-byte pieces, so forward falls back to the SIMT kernel (identity order) or gathers x first (act-order);
// gemv stages x element-wise then.
TEST(CudaLinear, UnalignedActivations) {
  REQUIRE_GPU();
  uint64_t id = 9500;
  for (bool act : {false, true}) {
    Case c;
    c.w.n = 72;
    c.w.k = 256;
    c.w.act_order = act;
    c.bias = true;
    SCOPED_TRACE(c.name());
    auto rng = rng_for(id);
    std::vector<float> bias;
    const QuantizedWeight w = make_weight(c, id++, &bias, rng);
    for (CudaKernel kernel : {CudaKernel::kMma, CudaKernel::kGemv}) {
      CudaQuantLinear layer = make_layer(c, w, bias, kernel);
      for (int64_t M : {1, 5}) {
        const Activations x = make_x(M, c.w.k, c.bf16, rng);
        DevBuf dx(x.bits.size() * 2 + 16), dy(static_cast<size_t>(M * c.w.n) * 2),
            ws(layer.workspace_bytes(M));
        void* xp = static_cast<unsigned char*>(dx.p) + 2;  // 2-byte aligned only
        CUDA_OK(cudaMemcpy(xp, x.bits.data(), x.bits.size() * 2, cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemset(dy.p, 0xff, dy.bytes));
        layer.forward(xp, dy.p, M, DType::F16, nullptr, ws.p, ws.bytes);
        std::vector<uint16_t> y(static_cast<size_t>(M * c.w.n));
        CUDA_OK(cudaMemcpy(y.data(), dy.p, dy.bytes, cudaMemcpyDeviceToHost));
        EXPECT_EQ(check_output(w, bias, x, M, y, false, false,
                               layer.kernel_name(M) + " unaligned x M=" + std::to_string(M)),
                  0);
      }
    }
  }
}

// --- the wgmma family (linear_wgmma.cu, sm_90a)
// -------------------------------------------------------------- Forced kWgmma on an H100/H200 runs the
// warpgroup-MMA kernel at every M (make_plan falls back to mma only where the device or build lacks sm_90a,
// and these tests skip there). Its weights are s * (q - z) rounded to T (bf16: split scale), the dequant_gemm
// bound (docs/CUDA.md).
bool wgmma_device() {
  int d = 0;
  return have_gpu() && cudaGetDevice(&d) == cudaSuccess && cuda::wgmma_supported(d);
}
// ARK_TEST_WGMMA_VARIANT=<n> (a cuda::WgmmaVariant) makes n the process-wide default of the wgmma tests, so
// the tests that run kAuto (every M, every combination) run a forced kernel instead (the device script runs
// them once per new variant); the scopes below restore it.
// ARK_TEST_WGMMA_SCHEDULE=<n> (a cuda::WgmmaSchedule) likewise for the wide kernel's schedule (2: stream-K).
void apply_wgmma_variant_env() {
  if (const char* e = std::getenv("ARK_TEST_WGMMA_VARIANT"))
    cuda::set_wgmma_variant(static_cast<cuda::WgmmaVariant>(std::atoi(e)));
  if (const char* e = std::getenv("ARK_TEST_WGMMA_SCHEDULE"))
    cuda::set_wgmma_schedule(static_cast<cuda::WgmmaSchedule>(std::atoi(e)));
}
#define REQUIRE_WGMMA()                                                                    \
  if (!wgmma_device()) GTEST_SKIP() << "no sm_90a device or no sm_90a code in this build"; \
  apply_wgmma_variant_env()

const std::vector<int64_t> kWgmmaM = {1, 7, 63, 64, 65, 127, 128, 200, 256, 300, 1024, 2000};

// Forces one wgmma kernel for a scope (the planner picks by M and layer size; small test layers get the
// all-threads one).
struct WgmmaVariantScope {
  explicit WgmmaVariantScope(cuda::WgmmaVariant v) : prev(cuda::wgmma_variant()) {
    cuda::set_wgmma_variant(v);
  }
  ~WgmmaVariantScope() { cuda::set_wgmma_variant(prev); }
  cuda::WgmmaVariant prev;
};
// Forces the wide kernel's schedule (and its block count: 0, the SM count) for a scope.
struct WgmmaScheduleScope {
  WgmmaScheduleScope(cuda::WgmmaSchedule s, int blocks)
      : prev(cuda::wgmma_schedule()), prev_blocks(cuda::wgmma_schedule_blocks()) {
    cuda::set_wgmma_schedule(s, blocks);
  }
  ~WgmmaScheduleScope() { cuda::set_wgmma_schedule(prev, prev_blocks); }
  cuda::WgmmaSchedule prev;
  int prev_blocks;
};

constexpr cuda::WgmmaVariant kWgmmaKernels[] = {cuda::WgmmaVariant::kWide, cuda::WgmmaVariant::kWidePingPong,
                                                cuda::WgmmaVariant::kTall, cuda::WgmmaVariant::kAllThreads,
                                                cuda::WgmmaVariant::kWarpSpecialized};
const char* wgmma_kernel_tag(cuda::WgmmaVariant v) {
  switch (v) {
    case cuda::WgmmaVariant::kAllThreads:
      return "all-threads kernel";
    case cuda::WgmmaVariant::kWarpSpecialized:
      return "warp-specialized kernel";
    case cuda::WgmmaVariant::kWide:
      return "wide warp-specialized kernel";
    case cuda::WgmmaVariant::kWidePingPong:
      return "wide ping-pong kernel";
    case cuda::WgmmaVariant::kTall:
      return "tall kernel (256 rows of x above 128)";
    default:
      return "planner's kernel";
  }
}

void expect_wgmma_names(const CudaQuantLinear& layer, std::initializer_list<int64_t> ms) {
  for (int64_t M : ms)
    EXPECT_EQ(layer.kernel_name(M).rfind("wgmma_w", 0), 0u) << layer.kernel_name(M) << " M=" << M;
}

TEST(CudaLinear, WgmmaInt4EveryM) {
  REQUIRE_WGMMA();
  uint64_t id = 20000;
  for (bool bf16 : {true, false})
    for (int64_t g : {128, 32, -1, 256})  // 256: chunks in one group without a chunk_group_step (the
                                          // scaled-after producer then loads each chunk's group)
      for (bool sym : {true, false}) {
        Case c;
        c.w.n = 203;  // a partial n8 tile and a partial 128-row block
        c.w.k = 320;  // 3 chunks, the last one partial
        c.w.bits = 4;
        c.w.group_size = g;
        c.w.sym = sym;
        c.bf16 = bf16;
        c.bias = !sym;
        SCOPED_TRACE(c.name());
        check_case(c, kWgmmaM, id++, {CudaKernel::kWgmma});
      }
  Case c;  // K % 8 != 0 and act-order: x gathered into packed-K order first
  c.w.n = 300;
  c.w.k = 1000;
  c.w.act_order = true;
  c.bf16 = true;
  c.bias = true;
  check_case(c, {1, 64, 65, 300}, id++, {CudaKernel::kWgmma});
}

TEST(CudaLinear, WgmmaEveryCombination) {
  REQUIRE_WGMMA();
  uint64_t id = 21000;
  for (Case c : every_combination(203, 320)) {
    c.bias = c.w.act_order;
    SCOPED_TRACE(c.name());
    check_case(c, {1, 65, 130}, id++, {CudaKernel::kWgmma});
  }
}

// Split-K (fp32 partials, the reduce kernel) forced at several factors, a K long enough that each split holds
// several chunks and the ring wraps; the kernel names say what ran.
TEST(CudaLinear, WgmmaSplitKMatchesOracle) {
  REQUIRE_WGMMA();
  Case c;
  c.w.n = 520;
  c.w.k = 2048;  // 16 chunks
  c.bf16 = true;
  c.bias = true;
  auto rng = rng_for(22000);
  std::vector<float> bias;
  const QuantizedWeight w = make_weight(c, 22000, &bias, rng);
  CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kWgmma);
  for (auto kernel : kWgmmaKernels) {
    WgmmaVariantScope scope(kernel);
    SCOPED_TRACE(wgmma_kernel_tag(kernel));
    for (int splits : {1, 3, 8})
      for (int64_t M : {64, 129}) {
        layer.set_mma_splits(splits);
        const std::string name = layer.kernel_name(M);
        EXPECT_NE(name.find("_splitk" + std::to_string(splits)), std::string::npos) << name;
        const Activations x = make_x(M, c.w.k, c.bf16, rng);
        const auto y = run(layer, x, M, c.w.n, c.bf16);
        EXPECT_EQ(check_output(w, bias, x, M, y, c.bf16, true, name + " M=" + std::to_string(M), true), 0);
      }
  }
  expect_wgmma_names(layer, {1, 64, 1024});
}

TEST(CudaLinear, WgmmaGraphCaptureReplayEqualsEager) {
  REQUIRE_WGMMA();
  Case c;
  c.w.n = 1000;
  c.w.k = 768;
  c.bf16 = true;
  c.bias = true;
  auto rng = rng_for(23000);
  std::vector<float> bias;
  const QuantizedWeight w = make_weight(c, 23000, &bias, rng);
  CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kWgmma);
  for (auto kernel : kWgmmaKernels) {
    WgmmaVariantScope scope(kernel);
    for (int64_t M : {64, 300}) {
      const Activations x = make_x(M, c.w.k, c.bf16, rng);
      const auto eager = run(layer, x, M, c.w.n, c.bf16);
      const auto y = run_graph(layer, x, M, c.w.n, c.bf16);
      EXPECT_EQ(y, eager) << wgmma_kernel_tag(kernel) << " " << layer.kernel_name(M) << " M=" << M
                          << ": graph replay differs from eager";
      EXPECT_EQ(check_output(w, bias, x, M, y, c.bf16, true, layer.kernel_name(M), true), 0);
    }
  }
}

// The compute-sanitizer subset of the wgmma family, both kernels: tails in M, N and K, split-K, a gathered x.
TEST(CudaLinear, WgmmaMemcheckSubset) {
  REQUIRE_WGMMA();
  for (auto kernel : kWgmmaKernels) {
    WgmmaVariantScope scope(kernel);
    SCOPED_TRACE(wgmma_kernel_tag(kernel));
    Case c;
    c.w.n = 203;
    c.w.k = 1000;
    c.bias = true;
    check_case(c, {1, 65, 200}, 24000, {CudaKernel::kWgmma});
    c.w.k = 2048;
    c.bf16 = true;
    auto rng = rng_for(24001);
    std::vector<float> bias;
    const QuantizedWeight w = make_weight(c, 24001, &bias, rng);
    CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kWgmma);
    layer.set_mma_splits(4);
    const Activations x = make_x(70, c.w.k, c.bf16, rng);
    EXPECT_EQ(check_output(w, bias, x, 70, run(layer, x, 70, c.w.n, c.bf16), c.bf16, true,
                           layer.kernel_name(70), true),
              0);
  }
  {  // the warp-specialized kernel scaling after its wgmmas (g128, a K tail): 32 rows of x at 17, 64 at 33;
     // then on the stream-K schedule over 5 blocks, its fix-up included
    WgmmaVariantScope ws(cuda::WgmmaVariant::kWarpSpecialized);
    Case c;
    c.w.n = 203;
    c.w.k = 1000;
    c.w.group_size = 128;
    c.bias = true;
    check_case(c, {17, 33}, 24004, {CudaKernel::kWgmma});
    WgmmaScheduleScope sched(cuda::WgmmaSchedule::kStreamK, 5);
    check_case(c, {17, 33}, 24005, {CudaKernel::kWgmma});
  }
  // The wide kernel's stream-K schedule on 5 blocks: N = 264 (2 ranges), K = 2048 (16 chunks), the fix-up.
  WgmmaVariantScope wide(cuda::WgmmaVariant::kWide);
  WgmmaScheduleScope sched(cuda::WgmmaSchedule::kStreamK, 5);
  Case c;
  c.w.n = 264;
  c.w.k = 2048;
  c.bf16 = true;
  c.bias = true;
  check_case(c, {70, 129}, 24002, {CudaKernel::kWgmma});
  WgmmaVariantScope tall(cuda::WgmmaVariant::kTall);  // its 256-row tiles, 3 weight ranges of 128 rows
  check_case(c, {300}, 24003, {CudaKernel::kWgmma});
}

// The planner runs the warp-specialized wgmma kernel from 65 rows of x on 70B-sized layers and the
// all-threads one elsewhere; each kernel can be forced through cuda::set_wgmma_variant. Each over every
// combination at M = 17, 33, 65 and 130 (the warp-specialized kernel's 32-row form at 17; 64- and 128-row
// blocks, two x tiles at 130; for the wide kernels the N = 203 layer is one 256-row block with 6 of its 32
// tiles missing; g128 and one group scale after the wgmmas at 17 and 33 in the warp-specialized kernel, the
// smaller groups fold the scale into A) and split-K, and each on a K long enough for the ring to wrap many
// times (64 chunks: 8 uses of each of 8 stages at 64 rows, 12-13 of 5 at 128 and of the wide kernel's 5),
// so every mbarrier parity flips repeatedly, in g32 and g128; N = 264 gives the wide kernel a second block
// with 1 of its 32 tiles (and one of its four 64-row sets, partly).
TEST(CudaLinear, WgmmaBothVariantsMatchOracle) {
  REQUIRE_WGMMA();
  for (auto v : kWgmmaKernels) {
    WgmmaVariantScope scope(v);
    SCOPED_TRACE(wgmma_kernel_tag(v));
    uint64_t id = 25000;
    for (Case c : every_combination(203, 320)) {
      c.bias = !c.w.sym;
      SCOPED_TRACE(c.name());
      check_case(c, {17, 33, 65, 130}, id++, {CudaKernel::kWgmma});
      if (HasFailure()) return;
    }
    for (int64_t group : {32, 128}) {
      Case c;
      c.w.n = 264;
      c.w.k = 8192;  // 64 chunks
      c.w.group_size = group;
      c.bf16 = true;
      c.bias = true;
      auto rng = rng_for(25500 + group);
      std::vector<float> bias;
      const QuantizedWeight w = make_weight(c, 25500 + group, &bias, rng);
      CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kWgmma);
      for (int splits : {1, 3})
        for (int64_t M : {32, 64, 129}) {
          layer.set_mma_splits(splits);
          const Activations x = make_x(M, c.w.k, c.bf16, rng);
          const auto y = run(layer, x, M, c.w.n, c.bf16);
          EXPECT_EQ(check_output(w, bias, x, M, y, c.bf16, true,
                                 layer.kernel_name(M) + " M=" + std::to_string(M), true),
                    0);
        }
    }
  }
}

// The wide kernel's stream-K schedule (cuda::set_wgmma_schedule, a few blocks so that small layers are cut
// every way) against the oracle. Every combination on a layer of one 256-row range and 3 chunks over 4
// blocks: at M = 33 / 65 three pieces of one chunk, at M = 130 (two x-row tiles) tiles of 1 + 2 chunks.
// Then N = 264 (two ranges, the second with 1 of its 32 tiles), K = 8192 (64 chunks) on 1, 2, 3, 5 and 7
// blocks, both stream-K forms, M = 64 / 129 / 300 (1, 2, 3 x-row tiles): tiles whole in one block, cut in 2
// and 3 pieces, blocks whose share spans 2 and 3 tiles, whole waves before the shared tiles (129 rows on 3
// blocks: 4 tiles, one shared by all) and a whole tile inside the stream-K region (kStreamK2); each run
// twice, bit-identical. Last: K and N tails with act-order (x gathered) in fp16, and graph replay.
TEST(CudaLinear, WgmmaStreamKMatchesOracle) {
  REQUIRE_WGMMA();
  WgmmaVariantScope wide(cuda::WgmmaVariant::kWide);
  {
    WgmmaScheduleScope sched(cuda::WgmmaSchedule::kStreamK, 4);
    uint64_t id = 26000;
    for (Case c : every_combination(203, 320)) {
      c.bias = !c.w.sym;
      SCOPED_TRACE(c.name());
      check_case(c, {33, 65, 130}, id++, {CudaKernel::kWgmma});
      if (HasFailure()) return;
    }
  }
  Case c;
  c.w.n = 264;
  c.w.k = 8192;
  c.bf16 = true;
  c.bias = true;
  auto rng = rng_for(26500);
  std::vector<float> bias;
  const QuantizedWeight w = make_weight(c, 26500, &bias, rng);
  CudaQuantLinear layer = make_layer(c, w, bias, CudaKernel::kWgmma);
  auto check_and_rerun = [&](int64_t M, const std::string& what) {  // against the oracle, then bit-identical
    const Activations x = make_x(M, c.w.k, c.bf16, rng);
    const auto y = run(layer, x, M, c.w.n, c.bf16);
    EXPECT_EQ(check_output(w, bias, x, M, y, c.bf16, true, what, true), 0);
    EXPECT_EQ(run(layer, x, M, c.w.n, c.bf16), y) << what << ": a rerun differs";
  };
  for (auto s : {cuda::WgmmaSchedule::kStreamK, cuda::WgmmaSchedule::kStreamK2})
    for (int blocks : {1, 2, 3, 5, 7}) {
      WgmmaScheduleScope sched(s, blocks);
      for (int64_t M : {64, 129, 300}) {
        check_and_rerun(M, layer.kernel_name(M) + (s == cuda::WgmmaSchedule::kStreamK2 ? " sk2" : " sk") +
                               " blocks " + std::to_string(blocks) + " M=" + std::to_string(M));
        if (HasFailure()) return;
      }
    }
  {
    WgmmaScheduleScope sched(cuda::WgmmaSchedule::kStreamK, 5);
    Case t;
    t.w.n = 520;   // 3 ranges, the last with 1 of 32 tiles
    t.w.k = 1000;  // 8 chunks, the last partial
    t.w.act_order = true;
    t.bias = true;
    check_case(t, {65, 200}, 26600, {CudaKernel::kWgmma});
    WgmmaScheduleScope sched2(cuda::WgmmaSchedule::kStreamK2, 3);
    const Activations x = make_x(300, c.w.k, c.bf16, rng);
    EXPECT_EQ(run_graph(layer, x, 300, c.w.n, c.bf16), run(layer, x, 300, c.w.n, c.bf16))
        << "stream-K: graph replay differs from eager";
  }
  // The tall form (256 rows of x, 128 weight rows per tile, one set per consumer): N = 264 is 3 weight ranges
  // (the last with 1 of its 16 tiles), M = 300 two x-row tiles, 64 chunks on 1, 3 and 7 blocks; and the K
  // and N tails with act-order.
  WgmmaVariantScope tall(cuda::WgmmaVariant::kTall);
  for (int blocks : {1, 3, 7}) {
    WgmmaScheduleScope sched(cuda::WgmmaSchedule::kStreamK, blocks);
    for (int64_t M : {129, 300}) {
      const std::string what = layer.kernel_name(M) + " blocks " + std::to_string(blocks);
      EXPECT_NE(what.find("_m256_sk"), std::string::npos) << what;
      check_and_rerun(M, what);
      if (HasFailure()) return;
    }
  }
  {
    WgmmaScheduleScope sched(cuda::WgmmaSchedule::kStreamK, 5);
    Case t;
    t.w.n = 520;
    t.w.k = 1000;
    t.w.act_order = true;
    t.bias = true;
    check_case(t, {200, 300}, 26700, {CudaKernel::kWgmma});
  }
  // The warp-specialized kernel (128 weight rows, 32 or 64 rows of x; g128 scales after its wgmmas, g32
  // folds the scale into A): every combination over 4 blocks at M = 17 / 33 (N = 203: 2 ranges, the second
  // with 10 of its 16 tiles; 3 chunks), then 64 chunks in g32 and g128 on 1, 3 and 7 blocks at M = 32 / 64,
  // each run twice, bit-identical, and a graph replay.
  WgmmaVariantScope ws(cuda::WgmmaVariant::kWarpSpecialized);
  {
    WgmmaScheduleScope sched(cuda::WgmmaSchedule::kStreamK, 4);
    uint64_t id = 26800;
    for (Case e : every_combination(203, 320)) {
      e.bias = !e.w.sym;
      SCOPED_TRACE(e.name());
      check_case(e, {17, 33}, id++, {CudaKernel::kWgmma});
      if (HasFailure()) return;
    }
  }
  for (int64_t group : {32, 128}) {
    Case g = c;
    g.w.group_size = group;
    auto grng = rng_for(26900 + group);
    std::vector<float> gbias;
    const QuantizedWeight gw = make_weight(g, 26900 + group, &gbias, grng);
    CudaQuantLinear glayer = make_layer(g, gw, gbias, CudaKernel::kWgmma);
    for (int blocks : {1, 3, 7}) {
      WgmmaScheduleScope sched(cuda::WgmmaSchedule::kStreamK, blocks);
      for (int64_t M : {32, 64}) {
        const std::string what = glayer.kernel_name(M) + " blocks " + std::to_string(blocks);
        EXPECT_NE(what.find("_sk" + std::to_string(blocks)), std::string::npos) << what;
        const Activations x = make_x(M, g.w.k, g.bf16, grng);
        const auto y = run(glayer, x, M, g.w.n, g.bf16);
        EXPECT_EQ(check_output(gw, gbias, x, M, y, g.bf16, true, what, true), 0);
        EXPECT_EQ(run(glayer, x, M, g.w.n, g.bf16), y) << what << ": a rerun differs";
        if (HasFailure()) return;
      }
    }
    WgmmaScheduleScope sched(cuda::WgmmaSchedule::kStreamK, 3);
    const Activations x = make_x(32, g.w.k, g.bf16, grng);
    EXPECT_EQ(run_graph(glayer, x, 32, g.w.n, g.bf16), run(glayer, x, 32, g.w.n, g.bf16))
        << "warp-specialized stream-K: graph replay differs from eager";
  }
}

// The stream-K schedule on the host: for tile counts around whole waves, chunk counts from 1 and block counts
// from 1, both forms: every (tile, chunk) is in exactly one piece; a whole piece covers its tile alone;
// a block has at most one piece per slot (0 first, 1 last); the fix-up's blocks and slots for each shared
// tile are exactly the pieces the blocks wrote; the shares differ by at most one chunk; and the planner gives
// the wide kernel this schedule when forced (workspace: the pieces' slots), never to ping-pong or a forced
// split factor (kAuto's choices: CudaPlan.WgmmaFamilyAndPlans).
// The warp-specialized kernel's stream-K plans count its 16-tile blocks (128 weight rows): 8192x28672 at
// 32 / 64 rows of x is 224 ranges per x-row tile (one whole wave of 132 and 92 shared out), 4096x11008 86
// (all shared out); its slots hold rows x 128 fp32 each; 28672x8192 (64 ranges x split-K 2 = 128 blocks)
// keeps split-K.
TEST(CudaPlan, WgmmaStreamKBlockTiles) {
  const cuda::DeviceInfo dev = hopper_device(true);
  for (int64_t M : {17, 32, 64}) {
    SCOPED_TRACE("M=" + std::to_string(M));
    const int rows = M <= 32 ? 32 : 64;
    const cuda::Plan p = cuda::make_plan(planner_view(8192, 28672), M, cuda::Family::kWgmma, dev);
    ASSERT_TRUE(p.wgmma_ws && p.wgmma_scale_after);
    EXPECT_EQ(p.wgmma_rows, rows);
    EXPECT_EQ(p.wgmma_sk.blocks, 132);
    EXPECT_EQ(p.wgmma_sk.dp_waves, 1);
    EXPECT_EQ(p.wgmma_sk.sk_tiles, 224 - 132);
    EXPECT_EQ(p.splits, 1);
    EXPECT_EQ(cuda::wgmma_sk_slot_floats(rows, cuda::kWgmmaBlockTiles), static_cast<size_t>(rows) * 128);
    EXPECT_EQ(p.partial_bytes, 2 * 132 * cuda::wgmma_sk_slot_floats(rows, cuda::kWgmmaBlockTiles) * 4);
    const cuda::Plan q = cuda::make_plan(planner_view(4096, 11008), M, cuda::Family::kWgmma, dev);
    EXPECT_EQ(q.wgmma_sk.dp_waves, 0);
    EXPECT_EQ(q.wgmma_sk.sk_tiles, 86);
    EXPECT_EQ(cuda::make_plan(planner_view(28672, 8192), M, cuda::Family::kWgmma, dev).wgmma_sk.blocks, 0);
  }
}

TEST(CudaPlan, WgmmaStreamKCoversEveryChunkOnce) {
  for (int64_t nb : {1, 2, 3, 5, 7, 112, 131, 132, 133, 200})
    for (int64_t mt : {1, 2, 3})
      for (int chunks : {1, 2, 3, 7, 64})
        for (int blocks : {1, 2, 3, 5, 132})
          for (bool two : {false, true}) {
            cuda::PackedView v;
            v.n8_tiles = nb * cuda::kWgmmaWideTiles - (nb > 1 ? 31 : 0);  // a last range with 1 tile
            v.chunks = chunks;
            const cuda::WgmmaStreamK sk = cuda::wgmma_stream_k(v, mt * 64, 64, blocks, two);
            const std::string what = "ranges " + std::to_string(nb) + " x-row tiles " + std::to_string(mt) +
                                     " chunks " + std::to_string(chunks) + " blocks " +
                                     std::to_string(blocks) + (two ? " sk2" : " sk");
            SCOPED_TRACE(what);
            const int64_t tiles = nb * mt;
            ASSERT_GE(sk.blocks, 1);
            ASSERT_LE(sk.blocks, blocks);
            ASSERT_EQ(sk.m_tiles, mt);
            ASSERT_EQ(static_cast<int64_t>(sk.dp_waves) * sk.blocks + sk.sk_tiles, tiles);
            std::vector<int> seen(static_cast<size_t>(tiles * chunks), 0);
            std::vector<std::vector<std::pair<int, int>>> writers(static_cast<size_t>(sk.sk_tiles));
            int64_t max_share = 0, min_share = INT64_MAX;
            for (int b = 0; b < sk.blocks; ++b) {
              cuda::WgmmaPiece pc;
              int slots = 0, last_out = -2, share = 0;
              for (int j = 0; cuda::wgmma_sk_piece(sk, b, j, pc); ++j) {
                ASSERT_LT(j, sk.dp_waves + 3 + sk.sk_tiles);
                ASSERT_GE(pc.tile, 0);
                ASSERT_LT(pc.tile, tiles);
                ASSERT_GE(pc.n, 1);
                ASSERT_LE(pc.c0 + pc.n, chunks);
                for (int k = pc.c0; k < pc.c0 + pc.n; ++k) ++seen[static_cast<size_t>(pc.tile * chunks + k)];
                if (j >= sk.dp_waves) share += pc.n;
                if (pc.out < 0) {
                  EXPECT_EQ(pc.c0, 0);
                  EXPECT_EQ(pc.n, chunks);
                } else {
                  ASSERT_GE(pc.tile, static_cast<int64_t>(sk.dp_waves) * sk.blocks);
                  EXPECT_TRUE(pc.out == 0 || pc.out == 1);
                  EXPECT_FALSE(slots & (1 << pc.out)) << "block " << b << " slot " << pc.out << " twice";
                  EXPECT_GT(pc.out, last_out);
                  slots |= 1 << pc.out;
                  last_out = pc.out;
                  writers[static_cast<size_t>(pc.tile - sk.dp_waves * sk.blocks)].push_back({b, pc.out});
                }
              }
              if (sk.sk_tiles > 0) {
                max_share = std::max<int64_t>(max_share, share);
                min_share = std::min<int64_t>(min_share, share);
              }
            }
            for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "tile-chunk " << i;
            if (sk.sk_tiles > 0) {
              EXPECT_LE(max_share - min_share, 1);
            }
            for (int t = 0; t < sk.sk_tiles; ++t) {
              const int b0 = cuda::wgmma_sk_block_of(sk, t * chunks),
                        b1 = cuda::wgmma_sk_block_of(sk, (t + 1) * chunks - 1);
              std::vector<std::pair<int, int>> fix;
              if (b0 != b1)
                for (int b = b0; b <= b1; ++b)
                  if (cuda::wgmma_sk_slot_of(sk, t, b) >= 0)
                    fix.push_back({b, cuda::wgmma_sk_slot_of(sk, t, b)});
              EXPECT_EQ(fix, writers[static_cast<size_t>(t)]) << "shared tile " << t;
              EXPECT_NE(fix.size(), 1u);
            }
          }
  // The planner: forced stream-K on the wide kernel of the six shapes at M = 64..1024 (an H100's 132 SMs).
  cuda::DeviceInfo dev = hopper_device(true);
  const auto& shapes = kBenchShapes;
  for (const auto& sh : shapes) {
    cuda::PackedView v = planner_view(sh[0], sh[1]);
    for (int64_t M : {64, 128, 256, 512, 1024}) {
      SCOPED_TRACE("K=" + std::to_string(sh[0]) + " N=" + std::to_string(sh[1]) + " M=" + std::to_string(M));
      WgmmaVariantScope wide(cuda::WgmmaVariant::kWide);
      for (auto s : {cuda::WgmmaSchedule::kStreamK, cuda::WgmmaSchedule::kStreamK2}) {
        WgmmaScheduleScope sched(s, 0);
        const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kWgmma, dev);
        ASSERT_TRUE(p.wgmma_wide);
        EXPECT_EQ(p.wgmma_sk.blocks, 132);
        EXPECT_EQ(p.splits, 1);
        const int64_t tiles = ((M + p.wgmma_rows - 1) / p.wgmma_rows) * (v.n8_tiles / cuda::kWgmmaWideTiles);
        EXPECT_EQ(static_cast<int64_t>(p.wgmma_sk.dp_waves) * 132 + p.wgmma_sk.sk_tiles, tiles);
        EXPECT_EQ(p.wgmma_sk.sk_tiles, tiles <= 132 ? tiles
                                       : s == cuda::WgmmaSchedule::kStreamK2 && tiles % 132 != 0
                                           ? tiles % 132 + 132
                                           : tiles % 132);
        EXPECT_EQ(p.partial_bytes,
                  p.wgmma_sk.sk_tiles > 0 ? 2 * 132 * cuda::wgmma_sk_slot_floats(p.wgmma_rows) * 4 : 0u);
        EXPECT_EQ(p.workspace_bytes, p.partial_bytes);
        v.k_source = reinterpret_cast<const int32_t*>(16);  // act-order: x gathered after the slots
        const cuda::Plan g = cuda::make_plan(v, M, cuda::Family::kWgmma, dev);
        EXPECT_EQ(g.workspace_bytes, g.partial_bytes + static_cast<size_t>(M * v.k_packed() * 2));
        v.k_source = nullptr;
        const cuda::Plan f = cuda::make_plan(v, M, cuda::Family::kWgmma, dev, 2);  // a forced split factor
        EXPECT_EQ(f.wgmma_sk.blocks, 0);
        EXPECT_EQ(f.splits, 2);
        WgmmaVariantScope pp(cuda::WgmmaVariant::kWidePingPong);
        EXPECT_EQ(cuda::make_plan(v, M, cuda::Family::kWgmma, dev).wgmma_sk.blocks, 0);
      }
      WgmmaScheduleScope split(cuda::WgmmaSchedule::kSplitK, 0);
      EXPECT_EQ(cuda::make_plan(v, M, cuda::Family::kWgmma, dev).wgmma_sk.blocks, 0);
    }
  }
}

// The last x-row tile's TMA box (tensor_map.h): only where M leaves a tile part full, its rows rounded up to
// 8 and never past the tile.
TEST(CudaPlan, WgmmaTailTileBox) {
  for (int tile : {64, 128, 256})
    for (int64_t M : {1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 200, 255, 256, 257, 300, 1000, 2000, 2048}) {
      const cuda::XTail t = cuda::x_tail(M, tile);
      SCOPED_TRACE("tile " + std::to_string(tile) + " M=" + std::to_string(M));
      if (M % tile == 0) {
        EXPECT_EQ(t.rows, 0);
        EXPECT_EQ(t.m0, INT64_MAX);
        continue;
      }
      EXPECT_EQ(t.m0, M / tile * tile);
      EXPECT_GE(t.rows, M - t.m0);
      EXPECT_LT(t.rows, M - t.m0 + 8);
      EXPECT_EQ(t.rows % 8, 0);
      EXPECT_LE(t.rows, tile);
    }
}

// Host-side planner of the wgmma family (no GPU needed).
// Plan::wgmma_scale_after: the warp-specialized kernel at <= 64 rows of x on a layer whose chunks each lie
// in one group (g = 128 or one group), unless set_wgmma_scale_after(-1); never at 128 rows (no registers for
// the extra accumulator sets), never where a chunk holds several groups (g = 32, 64), never in the other
// wgmma kernels.
TEST(CudaPlan, WgmmaScaleAfterPlans) {
  const cuda::DeviceInfo dev = hopper_device(true);
  struct ModeScope {
    ~ModeScope() { cuda::set_wgmma_scale_after(0); }
  } restore;
  for (int64_t group : {32, 64, 128})
    for (int mode : {0, 1, -1})
      for (auto variant :
           {cuda::WgmmaVariant::kWarpSpecialized, cuda::WgmmaVariant::kWide, cuda::WgmmaVariant::kAllThreads})
        for (int64_t M : {1, 17, 32, 33, 64, 65, 128}) {
          WgmmaVariantScope scope(variant);
          cuda::set_wgmma_scale_after(mode);
          const cuda::PackedView v = planner_view(4096, 4096, 4, group);
          const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kWgmma, dev);
          char what[128];
          std::snprintf(what, sizeof what, "g%lld mode %d %s M=%lld", static_cast<long long>(group), mode,
                        wgmma_kernel_tag(variant), static_cast<long long>(M));
          SCOPED_TRACE(what);
          const bool ws = variant == cuda::WgmmaVariant::kWarpSpecialized;
          EXPECT_EQ(p.wgmma_ws, ws);
          EXPECT_EQ(p.wgmma_rows, ws && M <= 32 ? 32 : M <= 64 ? 64 : 128);
          EXPECT_EQ(p.wgmma_scale_after, ws && M <= 64 && group == 128 && mode >= 0);
        }
}

TEST(CudaPlan, WgmmaFamilyAndPlans) {
  cuda::DeviceInfo dev = hopper_device(false);
  const auto& shapes = kBenchShapes;
  for (const auto& sh : shapes)
    for (int bits : {4, 8}) {
      const cuda::PackedView v = planner_view(sh[0], sh[1], bits);
      for (int64_t M : {1, 16, 63, 64, 128, 129, 200, 256, 300, 384, 512, 1024}) {
        SCOPED_TRACE("K=" + std::to_string(sh[0]) + " N=" + std::to_string(sh[1]) + " bits " +
                     std::to_string(bits) + " M=" + std::to_string(M));
        dev.wgmma = false;  // no sm_90a: never wgmma, and a forced wgmma runs mma
        EXPECT_NE(static_cast<int>(cuda::auto_family(v, M, 256, dev)),
                  static_cast<int>(cuda::Family::kWgmma));
        EXPECT_EQ(static_cast<int>(cuda::make_plan(v, M, cuda::Family::kWgmma, dev).family),
                  static_cast<int>(cuda::Family::kMma));
        dev.wgmma = true;
        EXPECT_EQ(cuda::auto_family(v, M, 256, dev) == cuda::Family::kWgmma,
                  cuda::wgmma_preferred(v, M, dev));
        const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kWgmma, dev);
        ASSERT_EQ(static_cast<int>(p.family), static_cast<int>(cuda::Family::kWgmma));
        // The tall form above 128 rows on every shape (H200 sweeps of 09:11 and 09:33 UTC); below, the wide
        // kernel on the 70B layers at every M, on 4096x11008 at every M and on 8192x8192 and 11008x4096 above
        // 64 rows; the warp-specialized one elsewhere (H200 sweeps of 01:15 and 01:31 UTC; the rings fit an
        // H100's 227 KB at every width). The all-threads kernel only when forced.
        // Between 257 and 512 rows the warp-specialized kernel on 4096x4096, and on 4096x11008 up to 384
        // (258 tiles of 128 rows: two waves of 132 SMs; 344 at 512), the tall form elsewhere (H200, 11:57
        // and 12:01 UTC).
        const bool big = sh[1] == 28672 || sh[0] == 28672, small = sh[0] == 4096 && sh[1] == 4096;
        const bool ws_mid = M > 256 && M <= 512 && sh[0] == 4096 && (small || M <= 384);
        const bool tall = M >= cuda::kWgmmaTallMinM && !ws_mid;
        // At <= 64 rows every g128 layer runs the warp-specialized kernel, scaling after its wgmmas.
        EXPECT_EQ(p.wgmma_wide, tall || (!ws_mid && M > 64 && (big || !small)));
        EXPECT_EQ(p.wgmma_ws, !p.wgmma_wide);
        EXPECT_FALSE(p.wgmma_pingpong);
        EXPECT_EQ(static_cast<int>(cuda::wgmma_auto_variant(v, M, dev.sm_count)),
                  static_cast<int>(tall           ? cuda::WgmmaVariant::kTall
                                   : p.wgmma_wide ? cuda::WgmmaVariant::kWide
                                   : p.wgmma_ws   ? cuda::WgmmaVariant::kWarpSpecialized
                                                  : cuda::WgmmaVariant::kAllThreads));
        EXPECT_EQ(p.wgmma_rows, M <= 32 && p.wgmma_ws ? 32 : M <= 64 ? 64 : tall ? 256 : 128);
        // Every chunk in one group (g128): the warp-specialized kernel scales after the wgmmas up to 64 rows.
        EXPECT_EQ(p.wgmma_scale_after, p.wgmma_ws && M <= 64);
        EXPECT_EQ(p.smem_bytes, p.wgmma_wide ? cuda::wgmma_wide_smem_bytes(bits, p.wgmma_rows)
                                : p.wgmma_ws ? cuda::wgmma_ws_smem_bytes(bits, p.wgmma_rows)
                                             : cuda::wgmma_smem_bytes(bits, p.wgmma_rows));
        EXPECT_LE(p.smem_bytes, static_cast<size_t>(dev.smem_per_block));
        EXPECT_GE(p.splits, 1);
        EXPECT_GE(static_cast<int64_t>(p.splits) * p.chunks_per_split, v.chunks);
        EXPECT_LT(static_cast<int64_t>(p.splits - 1) * p.chunks_per_split, v.chunks);  // no empty split
        EXPECT_FALSE(p.gather);
        EXPECT_EQ(p.workspace_bytes, p.partial_bytes);
        EXPECT_EQ(p.partial_bytes > 0, p.splits > 1 || p.wgmma_sk.sk_tiles > 0);
        if (p.splits > 1) {
          EXPECT_GE(p.partial_bytes, static_cast<size_t>(p.splits * M * v.n) * sizeof(float));
        }
        // The wide kernel's schedule: stream-K where the split-K grid the model picks leaves more than 5% of
        // its waves' SMs idle (wgmma_auto_schedule), one block per SM; also the warp-specialized kernel where
        // it scales after (M <= 64: 224 blocks of 132 on 8192x28672, 86 on 4096x11008). Int4: 8192x28672
        // at 65..512 rows (112 tiles per x-row tile: 85% of a wave) and 4096x11008 from 129 rows (43 per
        // x-row tile), where the H200 sweep of 03:55 UTC measured it 1.01-1.15x the split-K grid; not
        // 28672x8192, 8192x8192 or 11008x4096 (128 blocks of 132), where it measured 0.96-1.02x.
        {
          WgmmaScheduleScope split(cuda::WgmmaSchedule::kSplitK, 0);
          const cuda::Plan q = cuda::make_plan(v, M, cuda::Family::kWgmma, dev);
          EXPECT_EQ(q.wgmma_sk.blocks, 0);
          const int tiles = p.wgmma_wide ? cuda::wgmma_wide_tiles(p.wgmma_rows) : cuda::kWgmmaBlockTiles;
          const bool sk = (p.wgmma_wide || p.wgmma_scale_after) &&
                          cuda::wgmma_auto_schedule(v, M, p.wgmma_rows, dev.sm_count, q.splits, tiles) ==
                              cuda::WgmmaSchedule::kStreamK;
          EXPECT_EQ(p.wgmma_sk.blocks, sk ? dev.sm_count : 0);
          if (sk) {
            EXPECT_EQ(p.splits, 1);
          } else {
            EXPECT_EQ(p.splits, q.splits);
          }
          if (bits == 4) {
            const bool pin = (sh[0] == 8192 && sh[1] == 28672 && M <= 512) ||
                             (sh[0] == 4096 && sh[1] == 11008 && (M <= 64 || (M > 128 && !ws_mid)));
            EXPECT_EQ(sk, pin);
          }
        }
      }
    }
  // kAuto on an sm_90a device, int4 g128, every bench shape: wgmma from 17 to 2048 rows (32 rows of x up
  // to 32, the tall form from 129), dequant_gemm above, never at decode sizes; from 33 where a chunk holds
  // several groups (g32); int8 stays on the older families.
  dev.wgmma = true;
  for (const auto& sh : kBenchShapes) {
    cuda::PackedView v = planner_view(sh[0], sh[1]);
    SCOPED_TRACE("K=" + std::to_string(sh[0]) + " N=" + std::to_string(sh[1]));
    for (int64_t M : {1, 8, 16})
      EXPECT_NE(static_cast<int>(cuda::auto_family(v, M, 256, dev)), static_cast<int>(cuda::Family::kWgmma))
          << M;
    for (int64_t M : {17, 32, 33, 64, 128, 256, 300, 512, 1024, 2048})
      EXPECT_EQ(static_cast<int>(cuda::auto_family(v, M, 256, dev)), static_cast<int>(cuda::Family::kWgmma))
          << M;
    const cuda::PackedView g32 = planner_view(sh[0], sh[1], 4, 32);
    EXPECT_NE(static_cast<int>(cuda::auto_family(g32, 32, 256, dev)), static_cast<int>(cuda::Family::kWgmma));
    EXPECT_EQ(static_cast<int>(cuda::auto_family(g32, 33, 256, dev)), static_cast<int>(cuda::Family::kWgmma));
    EXPECT_EQ(static_cast<int>(cuda::auto_family(v, 2049, 256, dev)),
              static_cast<int>(cuda::Family::kDequantGemm));
    EXPECT_TRUE(cuda::make_plan(v, 2048, cuda::Family::kWgmma, dev).wgmma_wide);
    v.bits = 8;
    EXPECT_NE(static_cast<int>(cuda::auto_family(v, 128, 256, dev)), static_cast<int>(cuda::Family::kWgmma));
  }
  {  // the variant: forced either way, or a device whose blocks cannot hold the warp-specialized ring
    cuda::PackedView v;
    v.k = v.n = 4096;
    v.bits = 4;
    v.chunks = v.groups = 32;
    v.n8_tiles = 512;
    for (int64_t M : {64, 128, 200}) {
      const int rows_m = M <= 64 ? 64 : 128;
      SCOPED_TRACE("M=" + std::to_string(M));
      const int stages = cuda::wgmma_ws_stages(4, rows_m);
      EXPECT_GE(stages, 5);
      EXPECT_LE(stages, cuda::kWgmmaWsMaxStages);
      EXPECT_LE(cuda::wgmma_ws_smem_bytes(4, rows_m), cuda::kWgmmaWsSmemBudget);
      if (stages < cuda::kWgmmaWsMaxStages) {  // as deep as fits
        EXPECT_GT(cuda::wgmma_ws_smem_bytes(4, rows_m) + cuda::wgmma_stage_bytes(4, rows_m),
                  cuda::kWgmmaWsSmemBudget);
      }
      {
        WgmmaVariantScope scope(cuda::WgmmaVariant::kAllThreads);
        const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kWgmma, dev);
        EXPECT_FALSE(p.wgmma_ws);
        EXPECT_EQ(p.wgmma_rows, rows_m);
        EXPECT_EQ(p.smem_bytes, cuda::wgmma_smem_bytes(4, p.wgmma_rows));
      }
      for (auto wide : {cuda::WgmmaVariant::kWide, cuda::WgmmaVariant::kWidePingPong}) {
        // the wide kernels: 256 weight rows, their own ring; too little shared memory per block falls back
        // to the all-threads kernel
        WgmmaVariantScope scope(wide);
        const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kWgmma, dev);
        EXPECT_TRUE(p.wgmma_wide);
        EXPECT_FALSE(p.wgmma_ws);
        EXPECT_EQ(p.wgmma_pingpong, wide == cuda::WgmmaVariant::kWidePingPong);
        EXPECT_EQ(p.wgmma_rows, rows_m);
        EXPECT_EQ(p.smem_bytes, cuda::wgmma_wide_smem_bytes(4, rows_m));
        EXPECT_LE(p.smem_bytes, static_cast<size_t>(dev.smem_per_block));
        for (int bits : {2, 3, 4, 8}) EXPECT_GE(cuda::wgmma_wide_stages(bits, rows_m), 3);
        for (int bits : {2, 3, 4, 8})  // the split ring keeps the stage counts of whole 1024-byte stages here
          EXPECT_EQ(cuda::wgmma_wide_stages(bits, rows_m),
                    cuda::wgmma_ws_stages(bits, rows_m, cuda::kWgmmaWideTiles));
        cuda::DeviceInfo small = dev;
        small.smem_per_block = static_cast<int>(p.smem_bytes) - 1;
        const cuda::Plan q = cuda::make_plan(v, M, cuda::Family::kWgmma, small);
        EXPECT_FALSE(q.wgmma_wide);
        EXPECT_FALSE(q.wgmma_pingpong);
        EXPECT_EQ(q.wgmma_rows, rows_m);
      }
      {
        // the tall form: 256 rows of x and 128 weight rows per block above 128 rows, the wide kernel's shape
        // below; the split-K grid only; too little shared memory falls back to the all-threads kernel at 128
        WgmmaVariantScope scope(cuda::WgmmaVariant::kTall);
        const int rows_t = M <= 128 ? rows_m : 256;
        const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kWgmma, dev);
        EXPECT_TRUE(p.wgmma_wide);
        EXPECT_FALSE(p.wgmma_pingpong);
        EXPECT_EQ(p.wgmma_rows, rows_t);
        EXPECT_EQ(p.smem_bytes, cuda::wgmma_wide_smem_bytes(4, rows_t));
        EXPECT_LE(p.smem_bytes, static_cast<size_t>(dev.smem_per_block));
        for (int bits : {2, 3, 4, 8}) EXPECT_GE(cuda::wgmma_wide_stages(bits, rows_t), 2);
        if (rows_t > 128) {
          // the split ring (launch.h: wgmma_wide_stage_bytes) fits a third stage, 1024-byte stages do not
          EXPECT_EQ(cuda::wgmma_wide_stages(4, 256), 3);
          EXPECT_EQ(cuda::wgmma_ws_stages(4, 256, cuda::kWgmmaTallTiles), 2);
        }
        cuda::DeviceInfo small = dev;
        small.smem_per_block = static_cast<int>(p.smem_bytes) - 1;
        const cuda::Plan q = cuda::make_plan(v, M, cuda::Family::kWgmma, small);
        EXPECT_FALSE(q.wgmma_wide);
        EXPECT_EQ(q.wgmma_rows, rows_m);
      }
      WgmmaVariantScope scope(cuda::WgmmaVariant::kWarpSpecialized);
      const cuda::Plan p = cuda::make_plan(v, M, cuda::Family::kWgmma, dev);
      EXPECT_TRUE(p.wgmma_ws);
      EXPECT_FALSE(p.wgmma_wide);
      EXPECT_EQ(p.wgmma_rows, rows_m);
      cuda::DeviceInfo small = dev;
      small.smem_per_block = static_cast<int>(cuda::wgmma_ws_smem_bytes(4, rows_m)) - 1;
      const cuda::Plan q = cuda::make_plan(v, M, cuda::Family::kWgmma, small);
      EXPECT_FALSE(q.wgmma_ws);
      EXPECT_EQ(q.wgmma_rows, rows_m);
      EXPECT_EQ(q.smem_bytes, cuda::wgmma_smem_bytes(4, rows_m));
    }
  }
  // 28672x8192 at M = 64: 32 blocks of 256 weight rows for 132 SMs, so the model splits K (4 ways: 128
  // blocks, close enough to a wave that kAuto keeps the split-K grid).
  cuda::PackedView v = planner_view(28672, 8192);
  EXPECT_GT(cuda::make_plan(v, 64, cuda::Family::kWgmma, dev).splits, 1);
  EXPECT_EQ(cuda::make_plan(v, 64, cuda::Family::kWgmma, dev).wgmma_sk.blocks, 0);
  v.k_source = reinterpret_cast<const int32_t*>(16);  // act-order: x gathered, after the partials
  const cuda::Plan p = cuda::make_plan(v, 64, cuda::Family::kWgmma, dev);
  EXPECT_TRUE(p.gather);
  EXPECT_GE(p.workspace_bytes, p.partial_bytes + static_cast<size_t>(64 * v.k_packed() * 2));
}

}  // namespace
}  // namespace ark
