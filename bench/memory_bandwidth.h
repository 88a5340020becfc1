// Measures this machine's memory read bandwidth, so benchmark figures can be stated as a fraction of the
// physical limit measured in the same run (a datasheet number says nothing about a shared, virtualised host).
#pragma once

#include <cstddef>

namespace ark::bench {

// Best-of-`repeats` read bandwidth in GB/s (1e9 bytes per second) over a buffer of `bytes` bytes split among
// `threads` threads, each streaming its own contiguous part. Choose `bytes` several times the last-level
// cache so the figure is DRAM's, not the cache's. Throws ark::Error on bad arguments.
double measure_read_bandwidth_gbs(size_t bytes, int threads, int repeats);

}  // namespace ark::bench
