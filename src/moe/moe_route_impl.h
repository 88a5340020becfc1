// Routing pieces the forward reuses without moe_route's per-call checks and allocation.
#pragma once

#include <cstdint>

#include "ark/moe.h"

namespace ark {

// Throws ark::Error naming the first bad field of the spec.
void check_moe_spec(const QuantMoESpec& spec);
// Throws ark::Error naming the first non-finite logit (top-k over NaN has no defined order).
void check_router_logits(const QuantMoESpec& spec, const float* logits, int64_t T);
// Routes tokens [t0, t1); scratch holds num_experts floats. Arguments pre-validated.
void route_tokens(const QuantMoESpec& spec, const float* logits, int64_t t0, int64_t t1, int32_t* ids,
                  float* weights, float* scratch);

}  // namespace ark
