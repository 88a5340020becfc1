// Helpers shared by the format tests: a per-run random seed (printed, overridable by ARK_TEST_SEED) and views
// over hand-written words.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "ark/tensor.h"

namespace ark::format_test {

// One fresh seed per process, printed once so a failure can be replayed with ARK_TEST_SEED=<seed>.
inline uint64_t run_seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("ARK_TEST_SEED");
    const uint64_t s = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    std::printf("format tests: seed %llu (replay with ARK_TEST_SEED=%llu)\n",
                static_cast<unsigned long long>(s), static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

inline TensorView i32_view(const std::vector<uint32_t>& words, std::vector<int64_t> shape) {
  return TensorView{DType::I32, std::move(shape), reinterpret_cast<const std::byte*>(words.data())};
}

inline TensorView f16_view(const std::vector<uint16_t>& halves, std::vector<int64_t> shape) {
  return TensorView{DType::F16, std::move(shape), reinterpret_cast<const std::byte*>(halves.data())};
}

inline TensorView f32_view(const std::vector<float>& v, std::vector<int64_t> shape) {
  return TensorView{DType::F32, std::move(shape), reinterpret_cast<const std::byte*>(v.data())};
}

inline std::vector<uint32_t> words_of(const Tensor& t) {
  const auto* p = t.as<uint32_t>();
  return std::vector<uint32_t>(p, p + t.numel());
}

}  // namespace ark::format_test
