// `ark inspect --model DIR`: what ark would load, without loading it: architecture, sizes, RoPE, the
// quantization_config summary, and each layer's scheme and bytes.
#include <iomanip>
#include <iostream>
#include <memory>

#include "ark/format.h"
#include "ark/model.h"
#include "commands.h"

namespace ark::tools {

namespace {

const char* kind_name(CheckpointLayer::Kind k) {
  switch (k) {
    case CheckpointLayer::Kind::kQuantizedLinear:
      return "quantized";
    case CheckpointLayer::Kind::kLinear:
      return "linear";
    case CheckpointLayer::Kind::kEmbedding:
      return "embedding";
    default:
      return "norm";
  }
}

void run(const std::string& dir, bool all_layers) {
  const CheckpointPlan p = plan_checkpoint(dir);
  const ModelConfig& c = p.config;
  std::cout << "model        " << dir << "\n"
            << "architecture " << architecture_name(c.arch) << "\n"
            << "sizes        hidden " << c.hidden_size << ", intermediate " << c.intermediate_size
            << ", layers " << c.num_layers << ", heads " << c.num_heads << " (kv " << c.num_kv_heads
            << ", dim " << c.head_dim << "), vocab " << c.vocab_size << "\n"
            << "rope         theta " << c.rope_theta << ", scaling " << c.rope_scaling.type;
  if (c.rope_scaling.type != "default") std::cout << " (factor " << c.rope_scaling.factor << ")";
  std::cout << "\n"
            << "context      max_position_embeddings " << c.max_position_embeddings << "\n"
            << "embeddings   " << (p.lm_head_tied ? "tied (lm_head = embed_tokens)" : "separate lm_head")
            << "\n"
            << "quantization " << p.quant_summary << "\n"
            << "eos ids      ";
  for (size_t i = 0; i < c.eos_token_ids.size(); ++i) std::cout << (i ? ", " : "") << c.eos_token_ids[i];
  std::cout << "\ncheckpoint   " << std::fixed << std::setprecision(1) << p.checkpoint_bytes / 1048576.0
            << " MiB in tensors\n\n";
  std::cout << std::left << std::setw(44) << "layer" << std::setw(11) << "kind" << std::setw(14) << "K x N"
            << std::setw(28) << "scheme"
            << "MiB\n";
  for (const CheckpointLayer& l : p.layers) {
    // Layers beyond the first repeat its shape; --all lists them too.
    if (!all_layers && l.name.starts_with("model.layers.") && !l.name.starts_with("model.layers.0."))
      continue;
    std::string scheme;
    if (l.scheme) {
      scheme = "int" + std::to_string(l.scheme->bits) + " g" + std::to_string(l.scheme->group_size) +
               (l.scheme->sym ? " sym " : " asym ") + std::string(layout_name(l.scheme->layout)) +
               (l.act_order ? " act" : "");
    } else {
      scheme = std::string(dtype_name(l.dtype));
    }
    if (l.bias) scheme += " +bias";
    std::cout << std::setw(44) << l.name << std::setw(11) << kind_name(l.kind) << std::setw(14)
              << (std::to_string(l.in_features) + "x" + std::to_string(l.out_features)) << std::setw(28)
              << scheme << std::setprecision(3) << l.checkpoint_bytes / 1048576.0 << "\n";
  }
  if (!all_layers && c.num_layers > 1)
    std::cout << "(layers 1.." << c.num_layers - 1 << " as layer 0 in shape; --all lists every one)\n";
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  CLI::App* c =
      app.add_subcommand("inspect", "Print a checkpoint's architecture, per-layer schemes and sizes");
  c->add_option("--model", *dir, "checkpoint directory")->required();
  c->add_flag("--all", *all, "list every decoder layer, not only layer 0");
  c->callback([dir, all] { run(*dir, *all); });
}

}  // namespace ark::tools
