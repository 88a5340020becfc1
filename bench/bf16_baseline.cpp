// oneDNN matmul as the bf16 baseline. Built only when CMake found oneDNN (ARK_HAVE_DNNL); otherwise every
// entry point reports that the baseline is unavailable, so `ark bench` still runs and says so.
#include "bf16_baseline.h"

#include <random>
#include <vector>

#include "ark/dtype.h"
#include "ark/error.h"

#ifdef ARK_HAVE_DNNL
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace ark::bench {

#ifdef ARK_HAVE_DNNL

struct Bf16Baseline::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::matmul prim;
  dnnl::memory src, weights, dst;
  std::string impl_name;
  int threads = 1;
};

Bf16Baseline::Bf16Baseline(int64_t m, int64_t n, int64_t k, int threads, uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
  ARK_CHECK(m > 0 && n > 0 && k > 0, "Bf16Baseline: M, N, K must be positive, got ", m, ", ", n, ", ", k);
  ARK_CHECK(threads >= 1, "Bf16Baseline: threads must be >= 1, got ", threads);
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  impl_->threads = threads;
  omp_set_num_threads(threads);
  const dnnl::memory::desc src_md({m, k}, dt::bf16, tag::ab);
  const dnnl::memory::desc user_w_md({k, n}, dt::bf16, tag::ab);
  const dnnl::memory::desc any_w_md({k, n}, dt::bf16, tag::any);
  const dnnl::memory::desc dst_md({m, n}, dt::f32, tag::ab);
  try {
    // oneDNN 2.x API (Debian 12 ships 2.6): an operation descriptor, then the primitive descriptor.
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, any_w_md, dst_md), impl_->engine);
    impl_->impl_name = pd.impl_info_str();
    impl_->prim = dnnl::matmul(pd);
    impl_->src = dnnl::memory(src_md, impl_->engine);
    impl_->dst = dnnl::memory(dst_md, impl_->engine);
    dnnl::memory user_w(user_w_md, impl_->engine);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    auto fill = [&](dnnl::memory& mem, int64_t count) {
      auto* p = static_cast<uint16_t*>(mem.get_data_handle());
      for (int64_t i = 0; i < count; ++i) p[i] = float_to_bf16(dist(rng));
    };
    fill(impl_->src, m * k);
    fill(user_w, k * n);
    // The weights are reordered once, outside the timed region, like a framework's prepacked weights.
    impl_->weights = dnnl::memory(pd.weights_desc(), impl_->engine);
    dnnl::reorder(user_w, impl_->weights).execute(impl_->stream, user_w, impl_->weights);
    impl_->stream.wait();
  } catch (const dnnl::error& e) {
    throw_error("Bf16Baseline: oneDNN refused matmul ", m, "x", k, " * ", k, "x", n, ": ", e.what());
  }
}

Bf16Baseline::~Bf16Baseline() = default;

void Bf16Baseline::run() {
  omp_set_num_threads(impl_->threads);
  impl_->prim.execute(
      impl_->stream,
      {{DNNL_ARG_SRC, impl_->src}, {DNNL_ARG_WEIGHTS, impl_->weights}, {DNNL_ARG_DST, impl_->dst}});
  impl_->stream.wait();
}

bool Bf16Baseline::available() {
  return true;
}

std::string Bf16Baseline::description() const {
  const dnnl_version_t* v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + " matmul bf16:bf16:f32 (" + impl_->impl_name + ")";
}

#else  // !ARK_HAVE_DNNL

struct Bf16Baseline::Impl {};

Bf16Baseline::Bf16Baseline(int64_t, int64_t, int64_t, int, uint64_t) {
  throw_error("Bf16Baseline: this build has no oneDNN (install libdnnl-dev and reconfigure)");
}
Bf16Baseline::~Bf16Baseline() = default;
void Bf16Baseline::run() {}
bool Bf16Baseline::available() {
  return false;
}
std::string Bf16Baseline::description() const {
  return "unavailable";
}

#endif

}  // namespace ark::bench
