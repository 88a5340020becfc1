// The quantization_config block ark writes into config.json, as AutoRound writes it for a round-to-nearest
// (iters = 0) export. One writer for `ark quantize` and `ark make-model`, so their checkpoints cannot drift
// apart.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace ark::runtime {

// extra: AutoRound's extra_config (per-layer overrides); left out when empty.
inline nlohmann::ordered_json autoround_quantization_config(int bits, int64_t group_size, bool sym,
                                                            const std::string& packing_format,
                                                            const nlohmann::ordered_json& extra) {
  nlohmann::ordered_json qc = {{"bits", bits},
                               {"group_size", group_size},
                               {"sym", sym},
                               {"data_type", "int"},
                               {"iters", 0},
                               {"quant_method", "auto-round"},
                               {"packing_format", packing_format}};
  if (!extra.empty()) qc["extra_config"] = extra;
  return qc;
}

}  // namespace ark::runtime
