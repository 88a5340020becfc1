// Measures this machine's memory read bandwidth, so benchmark figures can be stated as a fraction of the
// physical limit measured in the same run (a datasheet number says nothing about a shared, virtualised host).
#pragma once

#include <cstddef>
#include <memory>

namespace ark::bench {

// Read bandwidth in GB/s (1e9 bytes per second), measured as the benchmarks time a kernel: the buffer of
// `bytes` bytes is read `passes` times over in calls of 8 MiB, each call split among `threads` threads of the
// default thread pool (default_thread_pool(): the threads the kernels run on), each streaming its own
// contiguous part; the median call's rate. Choose `bytes` several times the last-level cache so the figure is
// DRAM's, not the cache's (at least 32 MiB). Throws ark::Error on bad arguments.
double measure_read_bandwidth_gbs(size_t bytes, int threads, int passes);

// The same measurement, repeatable: the buffer is allocated and written once, and measure() reads it again
// whenever asked. A shared or virtualised host's bandwidth moves by 2x within minutes, so a benchmark states
// each case against a probe taken right beside it, not against one taken at start.
class ReadBandwidthProbe {
 public:
  ReadBandwidthProbe(size_t bytes, int threads);
  ~ReadBandwidthProbe();
  ReadBandwidthProbe(const ReadBandwidthProbe&) = delete;
  ReadBandwidthProbe& operator=(const ReadBandwidthProbe&) = delete;
  double measure(int passes);  // median call over `passes` reads of the buffer, GB/s

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ark::bench
