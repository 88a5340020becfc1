// The module names and shapes of the decoder layers, as Hugging Face's Qwen2 / Llama / Qwen3 (and their MoE
// variants) name them; the checkpoint planner, the loader and make-model all follow this one table.
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

// The sparse MLP of a MoE layer, in the three namings of MoeNaming (w1 = gate, w3 = up, w2 = down).
struct MoeNames {
  const char* block;  // module holding the router ("<block>.gate") and the experts ("<block>.experts.<e>.")
  const char* gate;
  const char* up;
  const char* down;
};
inline constexpr MoeNames kMoeNames{"mlp", "gate_proj", "up_proj", "down_proj"};
inline constexpr MoeNames kBlockSparseMoeNames{"block_sparse_moe", "gate_proj", "up_proj", "down_proj"};
inline constexpr MoeNames kMixtralW123Names{"block_sparse_moe", "w1", "w3", "w2"};

inline const MoeNames& moe_names(MoeNaming n) {
  return n == MoeNaming::kMixtralW123      ? kMixtralW123Names
         : n == MoeNaming::kBlockSparseMoe ? kBlockSparseMoeNames
                                           : kMoeNames;
}

inline std::string moe_router(int64_t layer, const MoeNames& n) {
  return layer_module(layer, n.block) + ".gate";
}
// which: 0 gate, 1 up, 2 down.
inline std::string expert_module(int64_t layer, int64_t expert, const MoeNames& n, int which) {
  const char* part = which == 0 ? n.gate : which == 1 ? n.up : n.down;
  return layer_module(layer, n.block) + ".experts." + std::to_string(expert) + "." + part;
}
// Qwen2-MoE's shared expert (which: 0 gate, 1 up, 2 down) and its sigmoid gate, a [1][H] Linear.
inline std::string shared_expert_module(int64_t layer, int which) {
  return layer_module(layer, which == 0   ? "mlp.shared_expert.gate_proj"
                             : which == 1 ? "mlp.shared_expert.up_proj"
                                          : "mlp.shared_expert.down_proj");
}
inline std::string shared_expert_gate(int64_t layer) {
  return layer_module(layer, "mlp.shared_expert_gate");
}

}  // namespace ark
