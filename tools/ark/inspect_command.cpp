// `ark inspect --model DIR`: what ark would load, without loading it: architecture, sizes, RoPE, the
// quantization_config summary, the MoE structure (experts, routing, which layers are sparse), and each
// layer's scheme and bytes.
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

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

// "0-3, 5" style list of the layers for which pred holds.
template <typename Pred>
std::string layer_list(int64_t n, Pred pred) {
  std::ostringstream s;
  for (int64_t i = 0; i < n;) {
    if (!pred(i)) {
      ++i;
      continue;
    }
    int64_t j = i;
    while (j + 1 < n && pred(j + 1)) ++j;
    s << (s.tellp() > 0 ? ", " : "") << i;
    if (j > i) s << "-" << j;
    i = j + 1;
  }
  return s.tellp() > 0 ? s.str() : "none";
}

// Decoder layer index of a "model.layers.<i>." name, or -1.
int64_t layer_index(const std::string& name) {
  if (!name.starts_with("model.layers.")) return -1;
  return std::stoll(name.substr(13));
}

void print_moe(const CheckpointPlan& p) {
  const ModelConfig& c = p.config;
  const MoeConfig& m = c.moe;
  std::cout << "experts      " << m.num_experts << " per sparse layer, top-" << m.top_k
            << " (softmax over all, top-k" << (m.norm_topk_prob ? ", renormalized" : ", not renormalized")
            << "), expert intermediate " << m.expert_intermediate_size;
  if (m.shared_intermediate_size > 0)
    std::cout << "; shared expert intermediate " << m.shared_intermediate_size << " with sigmoid gate";
  std::cout << "\nsparse       layers "
            << layer_list(c.num_layers, [&](int64_t i) { return c.is_moe_layer(i); })
            << " (decoder_sparse_step " << m.decoder_sparse_step << ")\n";
  if (c.arch != Architecture::kMixtral)
    std::cout << "dense MLP    layers "
              << layer_list(c.num_layers, [&](int64_t i) { return !c.is_moe_layer(i); }) << " (intermediate "
              << c.intermediate_size << ")\n";
  for (const CheckpointLayer& l : p.layers) {
    if (l.name.ends_with(".gate") && l.kind == CheckpointLayer::Kind::kLinear) {
      std::cout << "router       " << dtype_name(l.dtype) << " [" << l.out_features << "][" << l.in_features
                << "] " << l.name
                << (p.moe_naming == MoeNaming::kMixtralW123 ? " (experts' w1 / w3 / w2)" : "") << "\n";
      break;
    }
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
  std::cout << "\n";
  if (c.is_moe()) print_moe(p);
  std::cout << "checkpoint   " << std::fixed << std::setprecision(1) << p.checkpoint_bytes / 1048576.0
            << " MiB in tensors\n\n";
  std::cout << std::left << std::setw(44) << "layer" << std::setw(11) << "kind" << std::setw(14) << "K x N"
            << std::setw(28) << "scheme"
            << "MiB\n";
  // Without --all: layer 0, and the first layer of the other kind (sparse / dense) when there is one; of a
  // sparse layer, expert 0 and the shared expert.
  int64_t first_other = -1;
  for (int64_t i = 1; i < c.num_layers && first_other < 0; ++i)
    if (c.is_moe_layer(i) != c.is_moe_layer(0)) first_other = i;
  for (const CheckpointLayer& l : p.layers) {
    const int64_t li = layer_index(l.name);
    if (!all_layers && li > 0 && li != first_other) continue;
    if (!all_layers && l.expert > 0) {
      if (l.expert == 1 && l.name.ends_with(p.moe_naming == MoeNaming::kMixtralW123 ? ".w1" : ".gate_proj"))
        std::cout << "  (experts 1.." << c.moe.num_experts - 1 << " as expert 0; --all lists every one)\n";
      continue;
    }
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
    std::cout << "(other layers as layer 0" << (first_other > 0 ? " or " + std::to_string(first_other) : "")
              << " in shape; --all lists every one)\n";
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
