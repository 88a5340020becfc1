// The module names and shapes of the decoder layers, as Hugging Face's Qwen2 / Llama / Qwen3 name them; the
// checkpoint planner, the loader and make-model all follow this one table.
#pragma once

#include <cstdint>
#include <string>

#include "ark/model_config.h"

namespace ark {

enum class Slot : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown };

struct LinearSlot {
  Slot slot;
  const char* name;  // relative to model.layers.<i>
};

inline constexpr LinearSlot kLayerLinears[] = {
    {Slot::kQ, "self_attn.q_proj"}, {Slot::kK, "self_attn.k_proj"}, {Slot::kV, "self_attn.v_proj"},
    {Slot::kO, "self_attn.o_proj"}, {Slot::kGate, "mlp.gate_proj"}, {Slot::kUp, "mlp.up_proj"},
    {Slot::kDown, "mlp.down_proj"},
};

inline std::string layer_module(int64_t layer, const char* name) {
  return "model.layers." + std::to_string(layer) + "." + name;
}

// in_features K and out_features N of a layer's linear.
inline void linear_shape(const ModelConfig& c, Slot slot, int64_t* K, int64_t* N) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  switch (slot) {
    case Slot::kQ:
      *K = H, *N = q;
      break;
    case Slot::kK:
    case Slot::kV:
      *K = H, *N = kv;
      break;
    case Slot::kO:
      *K = q, *N = H;
      break;
    case Slot::kGate:
    case Slot::kUp:
      *K = H, *N = I;
      break;
    case Slot::kDown:
      *K = I, *N = H;
      break;
  }
}

}  // namespace ark
