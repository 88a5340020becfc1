// Float checkpoint -> AutoRound-format checkpoint with ark's RTN quantizer (ark/quantize_checkpoint.h).
#include "ark/quantize_checkpoint.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "ark/error.h"
#include "ark/format.h"
#include "ark/model.h"
#include "ark/safetensors.h"
#include "runtime/autoround_config_json.h"

namespace ark {

namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

// Files besides weights and config.json that a checkpoint directory carries and the output keeps.
constexpr const char* kCopiedFiles[] = {
    "generation_config.json",  "tokenizer.json",     "tokenizer_config.json",
    "special_tokens_map.json", "vocab.json",         "merges.txt",
    "chat_template.jinja",     "chat_template.json", "added_tokens.json"};

PackingLayout layout_of(const std::string& format) {
  if (format == "auto_round:auto_gptq" || format == "auto_round:gptq") return PackingLayout::kGptqV1;
  if (format == "auto_round" || format == "auto_round:gptqmodel") return PackingLayout::kGptqV2;
  if (format == "auto_round:auto_awq") return PackingLayout::kAwq;
  throw_error("quantize: format '", format,
              "' is not one of auto_round:auto_gptq, auto_round:gptqmodel, auto_round, auto_round:auto_awq");
}

bool ends_with(const std::string& s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// AutoRound quantizes the Linear layers inside the decoder blocks; routers stay in float.
bool is_block_linear(const CheckpointLayer& l) {
  return l.kind == CheckpointLayer::Kind::kLinear && l.name.rfind("model.layers.", 0) == 0 &&
         !ends_with(l.name, ".gate") && !ends_with(l.name, ".shared_expert_gate");
}

bool packable(const QuantScheme& s, int64_t K, int64_t N) {
  try {
    packed_shapes(s, K, N);
    return s.group_size == -1 || s.group_size <= K;
  } catch (const Error&) {
    return false;
  }
}

ordered_json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  ARK_CHECK(in, "quantize: cannot open '", path.string(), "'");
  std::ostringstream s;
  s << in.rdbuf();
  try {
    return ordered_json::parse(s.str());
  } catch (const nlohmann::json::exception& e) {
    throw_error("quantize: '", path.string(), "' is not valid JSON (", e.what(), ")");
  }
}

}  // namespace

QuantizeCheckpointReport quantize_checkpoint(const fs::path& in, const fs::path& out,
                                             const QuantizeCheckpointOptions& o) {
  ARK_CHECK(o.bits == 2 || o.bits == 3 || o.bits == 4 || o.bits == 8, "quantize: bits ", o.bits,
            " is not one of 2, 3, 4, 8");
  ARK_CHECK(o.group_size == -1 || o.group_size > 0, "quantize: group size ", o.group_size,
            " must be positive, or -1 for per-channel");
  ARK_CHECK(o.scale_dtype == DType::F16 || o.scale_dtype == DType::BF16 || o.scale_dtype == DType::F32,
            "quantize: scale dtype must be F16, BF16 or F32");
  const QuantScheme scheme{o.bits, o.group_size, o.sym, layout_of(o.packing_format)};
  ARK_CHECK(scheme.layout != PackingLayout::kAwq || o.bits == 4,
            "quantize: auto_round:auto_awq holds 4-bit "
            "weights only, not ",
            o.bits, "-bit");
  std::error_code ec;
  ARK_CHECK(!fs::exists(out) || !fs::equivalent(in, out, ec), "quantize: --out '", out.string(),
            "' is the input directory; give a new one");

  const CheckpointPlan plan = plan_checkpoint(in);  // validates every tensor against config.json
  ordered_json config = read_json(in / "config.json");
  ARK_CHECK(!config.contains("quantization_config"), "quantize: '", in.string(),
            "' is already quantized (config.json has quantization_config); give a float checkpoint");

  QuantizeCheckpointReport report;
  std::set<std::string> to_quantize;
  ordered_json extra = ordered_json::object();
  for (const CheckpointLayer& l : plan.layers) {
    ARK_CHECK(l.kind != CheckpointLayer::Kind::kQuantizedLinear, "quantize: '", in.string(), "': layer ",
              l.name, " is already quantized");
    if (!is_block_linear(l)) continue;
    if (packable(scheme, l.in_features, l.out_features)) {
      to_quantize.insert(l.name + ".weight");
      report.quantized.push_back(l.name);
    } else {
      report.kept_float.push_back(l.name);
      extra[l.name] = {{"bits", 16}, {"data_type", "float"}};
    }
  }
  ARK_CHECK(!report.quantized.empty(), "quantize: '", in.string(), "' has no decoder-block linear that ",
            o.bits, "-bit group ", o.group_size, " ", o.packing_format, " can hold");

  const SafetensorsStore store = SafetensorsStore::open(in.string());
  std::vector<NamedTensor> tensors;
  std::vector<std::unique_ptr<Tensor>> owned;  // packed tensors, alive until written
  for (const std::string& name : store.names()) {
    const TensorView v = store.get(name);
    report.input_bytes += v.nbytes();
    if (!to_quantize.count(name)) {
      tensors.push_back({name, v});
      continue;
    }
    const std::string module = name.substr(0, name.size() - std::string(".weight").size());
    const QuantizedWeight q = quantize_rtn(v, scheme, nullptr, o.scale_dtype);
    PackedTensors p = encode(q, scheme.layout, o.scale_dtype);
    auto keep = [&](Tensor t, const char* suffix) {
      owned.push_back(std::make_unique<Tensor>(std::move(t)));
      tensors.push_back({module + suffix, owned.back()->view()});
    };
    keep(std::move(p.qweight), ".qweight");
    keep(std::move(p.qzeros), ".qzeros");
    keep(std::move(p.scales), ".scales");
    if (p.g_idx) keep(std::move(*p.g_idx), ".g_idx");
  }

  config["quantization_config"] =
      runtime::autoround_quantization_config(o.bits, o.group_size, o.sym, o.packing_format, extra);

  fs::create_directories(out);
  write_safetensors((out / "model.safetensors").string(), tensors, {{"format", "pt"}});
  report.output_bytes = fs::file_size(out / "model.safetensors");
  {
    std::ofstream f(out / "config.json");
    f << config.dump(2) << "\n";
    ARK_CHECK(f.good(), "quantize: cannot write '", (out / "config.json").string(), "'");
  }
  for (const char* file : kCopiedFiles)
    if (fs::is_regular_file(in / file))
      fs::copy_file(in / file, out / file, fs::copy_options::overwrite_existing);
  return report;
}

}  // namespace ark
