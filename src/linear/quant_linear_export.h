// Reading a packed layer back into the canonical QuantizedWeight, so a model that was post_init'ed can still
// be saved in its checkpoint layout (format.h's encode) without keeping the checkpoint tensors resident next
// to the packed copy.
#pragma once

#include <cstdint>

#include "ark/quantized_weight.h"
#include "linear/packed_weight.h"

namespace ark {

// Inverts pack_weight: codes, scales and zero points of every (row, input channel), in the original channel
// order. g_idx is filled only when the packing permuted K (act-order), since a trivial one is implied by
// group_size. `group_size` is the resolved group size (K for per-channel) and `sym` is carried through; the
// packed layout records neither. Bit-exact: packed scales are fp16 only when the fp32 value round-trips.
QuantizedWeight unpack_weight(const PackedWeight& packed, int64_t group_size, bool sym);

}  // namespace ark
