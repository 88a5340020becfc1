// How QuantLinear::forward shares a decode call among threads (contiguous N-tile ranges with stealing,
// linear/tile_ranges.h) must never change its bytes: every thread count, every decode kernel, M = 1 and a few
// rows, N not a multiple of the 16-row tile, and four threads forwarding on one layer at once.
#include <gtest/gtest.h>

#include <thread>

#include "ark/thread_pool.h"
#include "quant_linear_test_util.h"

namespace ark {
namespace {

using ql_test::WeightConfig;

using ql_test::same_bytes;
using ql_test::spec_for;

// 1000 x 512: 63 N-tiles (the last one of 8 rows), large enough that every thread count runs the split.
TEST(QuantLinearDecodeSplit, ThreadCountDoesNotChangeBytes) {
  set_default_num_threads(8);  // more threads than the machine has: ranges, stealing and late workers all run
  std::mt19937_64 rng = ql_test::rng_for(0x5a17);
  for (int bits : {4, 3}) {
    const WeightConfig c{1000, 512, bits, 128, bits == 4, false};
    const QuantizedWeight w = ql_test::random_weight(c, rng);
    for (const std::string& isa : ql_test::available_isas())
      for (ComputeMode mode : {ComputeMode::kExact, ComputeMode::kInt8})
        for (int64_t m : {1, 3, 17}) {
          if (isa == "ref" && m > 1) continue;  // the scalar reference is slow; the split is the same code
          const std::vector<float> x = ql_test::random_activations(m, c.k, rng);
          std::vector<float> first;
          for (int threads : {1, 2, 3, 5, 8}) {
            QuantLinear layer(spec_for(c, mode, isa, threads));
            layer.load(w);
            layer.post_init();
            for (int rep = 0; rep < 2; ++rep) {
              std::vector<float> y = ql_test::poisoned(static_cast<size_t>(m * c.n));
              layer.forward(x.data(), y.data(), m);
              if (first.empty())
                first = y;
              else
                ASSERT_TRUE(same_bytes(first, y))
                    << "threads " << threads << " M " << m << " rep " << rep << " " << layer.describe();
            }
          }
        }
  }
  set_default_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

// Concurrent forwards: one caller holds the pool, the others run their calls on their own threads; all give
// the sequential bytes.
TEST(QuantLinearDecodeSplit, ConcurrentForwardsGiveTheSequentialBytes) {
  set_default_num_threads(3);
  std::mt19937_64 rng = ql_test::rng_for(0x5a18);
  const WeightConfig c{1000, 512, 4, 128, true, false};
  QuantLinear layer(spec_for(c, ComputeMode::kAuto, "", 0));
  layer.load(ql_test::random_weight(c, rng));
  layer.post_init();
  for (int64_t m : {1, 4}) {
    const std::vector<float> x = ql_test::random_activations(m, c.k, rng);
    std::vector<float> expected = ql_test::poisoned(static_cast<size_t>(m * c.n));
    layer.forward(x.data(), expected.data(), m);
    std::vector<std::vector<float>> outs(4, ql_test::poisoned(static_cast<size_t>(m * c.n)));
    std::vector<std::thread> threads;
    std::atomic<int> mismatches{0};
    for (auto& out : outs)
      threads.emplace_back([&, p = &out] {
        for (int rep = 0; rep < 50; ++rep) {
          std::fill(p->begin(), p->end(), std::nanf(""));
          layer.forward(x.data(), p->data(), m);
          if (!same_bytes(expected, *p)) mismatches.fetch_add(1);
        }
      });
    for (auto& t : threads) t.join();
    EXPECT_EQ(mismatches.load(), 0) << "M " << m;
  }
  set_default_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

}  // namespace
}  // namespace ark
