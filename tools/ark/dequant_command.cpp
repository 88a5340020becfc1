// `ark dequant --model DIR --out FILE`: decode every quantized layer of a checkpoint the way ark reads it
// (the layer's scheme from quantization_config, its tensors through the format codecs) and write the fp32
// weights [N, K] it stands for as "<layer>.weight" in one safetensors file. Other tools can then compare
// ark's reading with their own, tensor by tensor (scripts/autoround_conformance.py does so against AutoRound
// itself).
//
// It also checks that the config and the tensors agree: a layer with a qweight that the config leaves
// unquantized is an error; a plain 2-D weight that the config would quantize is reported.
#include <algorithm>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "ark/error.h"
#include "ark/format.h"
#include "ark/quant_config.h"
#include "ark/safetensors.h"
#include "commands.h"

namespace ark::tools {

namespace {

struct DequantOptions {
  std::string model;
  std::string out;
  std::string filter;
  bool quiet = false;
};

constexpr std::string_view kQweight = ".qweight";
constexpr std::string_view kWeight = ".weight";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The linear layers of the checkpoint: those stored quantized (X.qweight) and those stored plain (a 2-D
// X.weight). Embedding tables are 2-D too but are not linear layers, so AutoRound never quantizes them; they
// are left out so a config without a block list does not claim them.
struct Layers {
  std::vector<std::string> quantized;
  std::vector<std::string> plain;
};

Layers find_layers(const SafetensorsStore& store) {
  Layers out;
  for (const std::string& name : store.names()) {
    if (ends_with(name, kQweight)) {
      out.quantized.push_back(name.substr(0, name.size() - kQweight.size()));
    } else if (ends_with(name, kWeight) && store.get(name).shape.size() == 2) {
      const std::string layer = name.substr(0, name.size() - kWeight.size());
      const std::string last = layer.substr(layer.rfind('.') == std::string::npos ? 0 : layer.rfind('.') + 1);
      if (last.find("embed") == std::string::npos && last != "wte" && last != "wpe")
        out.plain.push_back(layer);
    }
  }
  return out;
}

// K and N from the stored qweight, which packs along K for GPTQ ([K*b/32, N]) and along N for AWQ ([K, N/8]).
std::pair<int64_t, int64_t> layer_dims(const QuantScheme& s, const std::string& layer,
                                       const TensorView& qweight) {
  ARK_CHECK(qweight.shape.size() == 2, "tensor '", layer, ".qweight': expected 2 dims, got ",
            qweight.shape.size());
  if (s.layout == PackingLayout::kAwq) return {qweight.shape[0], qweight.shape[1] * 32 / s.bits};
  return {qweight.shape[0] * 32 / s.bits, qweight.shape[1]};
}

void run_dequant(const DequantOptions& opt) {
  const QuantConfig config = QuantConfig::from_checkpoint_dir(opt.model);
  const SafetensorsStore store = SafetensorsStore::open(opt.model);
  const Layers layers = find_layers(store);

  std::vector<std::string> all = layers.quantized;
  all.insert(all.end(), layers.plain.begin(), layers.plain.end());
  const std::map<std::string, QuantScheme> schemes = config.resolve(all);

  std::optional<std::regex> filter;
  if (!opt.filter.empty()) {
    try {
      filter.emplace(opt.filter);
    } catch (const std::regex_error& e) {
      throw_error("--filter '", opt.filter, "' is not a valid regex: ", e.what());
    }
  }

  std::map<std::string, Tensor> out;
  for (const std::string& layer : layers.quantized) {
    const auto it = schemes.find(layer);
    ARK_CHECK(it != schemes.end(), "checkpoint '", opt.model, "': tensor '", layer,
              ".qweight' is quantized but quantization_config leaves layer '", layer, "' unquantized");
    if (filter && !std::regex_search(layer, *filter)) continue;
    const QuantScheme& s = it->second;
    const TensorView qweight = store.get(layer + ".qweight");
    const auto [k, n] = layer_dims(s, layer, qweight);
    const std::string g_idx_name = layer + ".g_idx";
    std::optional<TensorView> g_idx;
    if (store.has(g_idx_name)) g_idx = store.get(g_idx_name);
    QuantizedWeight w;
    try {
      w = decode(s, k, n, qweight, store.get(layer + ".qzeros"), store.get(layer + ".scales"),
                 g_idx ? &*g_idx : nullptr);
    } catch (const Error& e) {
      throw_error("layer '", layer, "' (", s.bits, "-bit, group_size ", s.group_size, ", ",
                  s.sym ? "sym" : "asym", ", ", layout_name(s.layout), "): ", e.what());
    }
    const std::vector<float> dense = dequantize(w);
    Tensor t(DType::F32, {n, k});
    std::copy(dense.begin(), dense.end(), t.as<float>());
    out.emplace(layer + ".weight", std::move(t));
    if (!opt.quiet)
      std::cout << layer << ": " << s.bits << "-bit, group_size " << s.group_size << ", "
                << (s.sym ? "sym" : "asym") << ", " << layout_name(s.layout) << ", [" << n << ", " << k << "]"
                << (w.has_act_order() ? ", act-order" : "") << "\n";
  }
  size_t claimed_plain = 0;
  for (const std::string& layer : layers.plain) {
    if (schemes.count(layer)) {
      std::cerr << "note: '" << layer
                << ".weight' is stored unquantized, but quantization_config would quantize it\n";
      ++claimed_plain;
    }
  }
  write_safetensors(opt.out, out, {{"format", "pt"}, {"producer", "ark dequant"}});
  std::cout << "wrote " << out.size() << " dequantized layers to " << opt.out
            << " (config: " << config.packing_format() << "; " << layers.plain.size()
            << " plain 2-D weights, " << claimed_plain << " of them claimed by the config)\n";
}

}  // namespace

void add_dequant_command(CLI::App& app) {
  auto opt = std::make_shared<DequantOptions>();
  CLI::App* cmd = app.add_subcommand(
      "dequant",
      "Decode every quantized layer of a checkpoint and write its fp32 weights [N, K] to safetensors");
  cmd->add_option("--model", opt->model, "Checkpoint directory (config.json, *.safetensors)")->required();
  cmd->add_option("--out", opt->out, "Output safetensors file")->required();
  cmd->add_option("--filter", opt->filter, "Only layers whose name matches this regex");
  cmd->add_flag("--quiet", opt->quiet, "Print only the summary line");
  cmd->callback([opt] { run_dequant(*opt); });
}

}  // namespace ark::tools
