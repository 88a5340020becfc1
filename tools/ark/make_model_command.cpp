// `ark make-model`: writes a random-weight checkpoint directory (ark/model_maker.h) for tests and benchmarks.
//
//   ark make-model --out DIR [--preset tiny|qwen2.5-0.5b|tiny-qwen3-moe|tiny-qwen2-moe|tiny-mixtral]
//                  [--arch qwen2|llama|qwen3|qwen2-moe|qwen3-moe|mixtral] [--hidden N] ...
//                  [--experts E --experts-per-tok K --moe-intermediate I --shared-intermediate S ...]
//                  [--moe-names mlp|block_sparse_moe|w123]
//                  [--format auto_round:auto_gptq|auto_round:gptqmodel|auto_round|auto_round:auto_awq|none]
//                  [--bits B] [--group-size G] [--asym] [--tokenizer DIR] [--shards N] [--seed S]
// Flags given after the preset override its values.
#include <iostream>
#include <memory>

#include "ark/error.h"
#include "ark/model_maker.h"
#include "commands.h"

namespace ark::tools {

namespace {

struct MakeModelArgs {
  std::string out, preset = "tiny", arch, format, dtype, scale_dtype, tokenizer;
  int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = -1, vocab = 0;
  int64_t max_pos = 0, group_size = 0;
  int bits = 0, shards = 0;
  double theta = 0;
  bool asym = false, tied = false, untied = false, attention_bias = false, llama3_rope = false;
  bool rope_parameters = false, quantize_lm_head = false;
  std::vector<std::string> unquantized;
  uint64_t seed = 1;
  // MoE
  int64_t experts = 0, experts_per_tok = 0, moe_intermediate = 0, shared_intermediate = 0, sparse_step = 0;
  std::string norm_topk_prob;
  std::vector<int64_t> mlp_only_layers;
  bool router_ties = false;
  std::string moe_names;
  // The parser: a size flag that was given replaces the preset's value, whatever it is (0 included, which the
  // model maker then refuses), so "given" is the flag's count, not a value a user could also type.
  const CLI::App* app = nullptr;
  bool given(const char* flag) const { return app && app->get_option(flag)->count() > 0; }
};

DType parse_float_dtype(const std::string& s, const char* flag) {
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "f16" || s == "fp16" || s == "float16") return DType::F16;
  if (s == "f32" || s == "fp32" || s == "float32") return DType::F32;
  throw_error(flag, " '", s, "' is not one of bf16, f16, f32");
}

void run(const MakeModelArgs& a) {
  MakeModelOptions o = make_model_preset(a.preset);
  if (!a.arch.empty()) {
    if (a.arch == "qwen2") {
      o.arch = Architecture::kQwen2;
    } else if (a.arch == "llama") {
      o.arch = Architecture::kLlama;
    } else if (a.arch == "qwen3") {
      o.arch = Architecture::kQwen3;
    } else if (a.arch == "qwen2-moe") {
      o.arch = Architecture::kQwen2Moe;
    } else if (a.arch == "qwen3-moe") {
      o.arch = Architecture::kQwen3Moe;
    } else if (a.arch == "mixtral") {
      o.arch = Architecture::kMixtral;
    } else {
      throw_error("--arch '", a.arch, "' is not one of qwen2, llama, qwen3, qwen2-moe, qwen3-moe, mixtral");
    }
  }
  if (a.given("--experts")) o.num_experts = a.experts;
  if (a.given("--experts-per-tok")) o.num_experts_per_tok = a.experts_per_tok;
  if (a.given("--moe-intermediate")) o.moe_intermediate_size = a.moe_intermediate;
  if (a.given("--shared-intermediate")) o.shared_expert_intermediate_size = a.shared_intermediate;
  if (a.given("--decoder-sparse-step")) o.decoder_sparse_step = a.sparse_step;
  if (!a.norm_topk_prob.empty()) {
    ARK_CHECK(a.norm_topk_prob == "true" || a.norm_topk_prob == "false", "--norm-topk-prob '",
              a.norm_topk_prob, "' is not true or false");
    o.norm_topk_prob = a.norm_topk_prob == "true";
  }
  if (!a.mlp_only_layers.empty()) o.mlp_only_layers = a.mlp_only_layers;
  if (a.router_ties) o.router_ties = true;
  if (a.moe_names == "mlp") {
    o.moe_naming = MoeNaming::kMlp;
  } else if (a.moe_names == "block_sparse_moe") {
    o.moe_naming = MoeNaming::kBlockSparseMoe;
  } else if (a.moe_names == "w123") {
    o.moe_naming = MoeNaming::kMixtralW123;
  } else if (!a.moe_names.empty()) {
    throw_error("--moe-names '", a.moe_names, "' is not one of mlp, block_sparse_moe, w123");
  }
  if (a.given("--hidden")) o.hidden_size = a.hidden;
  if (a.given("--intermediate")) o.intermediate_size = a.intermediate;
  if (a.given("--layers")) o.num_layers = a.layers;
  if (a.given("--heads")) o.num_heads = a.heads;
  if (a.given("--kv-heads")) o.num_kv_heads = a.kv_heads;
  if (a.head_dim >= 0) o.head_dim = a.head_dim;
  if (a.given("--vocab")) o.vocab_size = a.vocab;
  if (a.given("--max-position-embeddings")) o.max_position_embeddings = a.max_pos;
  if (a.given("--rope-theta")) o.rope_theta = a.theta;
  if (!a.format.empty()) o.packing_format = a.format;
  if (a.given("--bits")) o.bits = a.bits;
  if (a.given("--group-size")) o.group_size = a.group_size;
  if (a.asym) o.sym = false;
  if (a.tied) o.tie_word_embeddings = true;
  if (a.untied) o.tie_word_embeddings = false;
  if (a.attention_bias) o.attention_bias = true;
  if (a.llama3_rope) o.llama3_rope_scaling = true;
  if (a.rope_parameters) o.rope_parameters_style = true;
  if (a.quantize_lm_head) o.quantize_lm_head = true;
  if (!a.unquantized.empty()) o.unquantized_layers = a.unquantized;
  if (!a.dtype.empty()) o.dtype = parse_float_dtype(a.dtype, "--dtype");
  if (!a.scale_dtype.empty()) o.scale_dtype = parse_float_dtype(a.scale_dtype, "--scale-dtype");
  if (!a.tokenizer.empty()) o.tokenizer_dir = a.tokenizer;
  if (a.given("--shards")) o.num_shards = a.shards;
  o.seed = a.seed;
  make_model(a.out, o);
  const bool moe = o.arch == Architecture::kQwen2Moe || o.arch == Architecture::kQwen3Moe ||
                   o.arch == Architecture::kMixtral;
  std::cout << "wrote " << a.out << " (" << architecture_name(o.arch) << ", " << o.num_layers
            << " layers, hidden " << o.hidden_size
            << (moe ? ", " + std::to_string(o.num_experts) + " experts top-" +
                          std::to_string(o.num_experts_per_tok)
                    : std::string())
            << ", " << o.packing_format << (o.packing_format == "none" ? "" : ", int")
            << (o.packing_format == "none" ? "" : std::to_string(o.bits)) << ", random weights)\n";
}

}  // namespace

void add_make_model_command(CLI::App& app) {
  auto a = std::make_shared<MakeModelArgs>();
  CLI::App* c = app.add_subcommand("make-model", "Write a random-weight checkpoint (tests and benchmarks)");
  c->add_option("--out", a->out, "output directory")->required();
  c->add_option("--preset", a->preset,
                "tiny, qwen2.5-0.5b, tiny-qwen3-moe, tiny-qwen2-moe or tiny-mixtral; later flags override it")
      ->capture_default_str();
  c->add_option("--arch", a->arch, "qwen2, llama, qwen3, qwen2-moe, qwen3-moe or mixtral");
  c->add_option("--experts", a->experts, "MoE: routed experts per layer");
  c->add_option("--experts-per-tok", a->experts_per_tok, "MoE: experts each token is routed to (top-k)");
  c->add_option("--moe-intermediate", a->moe_intermediate,
                "Qwen MoE: each expert's intermediate size (Mixtral's experts take --intermediate)");
  c->add_option("--shared-intermediate", a->shared_intermediate,
                "Qwen2-MoE: the shared expert's intermediate size");
  c->add_option("--norm-topk-prob", a->norm_topk_prob,
                "Qwen MoE: renormalize the top-k weights (true or false)");
  c->add_option("--decoder-sparse-step", a->sparse_step, "Qwen MoE: every n-th layer is sparse");
  c->add_option("--mlp-only-layers", a->mlp_only_layers,
                "Qwen MoE: layers with a dense MLP instead of experts");
  c->add_flag("--router-ties", a->router_ties, "MoE: experts 2j and 2j+1 share a router row (exact ties)");
  c->add_option(
      "--moe-names", a->moe_names,
      "Mixtral tensor names: mlp (transformers 5), block_sparse_moe (AutoRound 0.16's export) or w123 "
      "(block_sparse_moe.experts.<e>.w1/w3/w2, the original)");
  c->add_option("--hidden", a->hidden, "hidden size");
  c->add_option("--intermediate", a->intermediate, "MLP intermediate size");
  c->add_option("--layers", a->layers, "decoder layers");
  c->add_option("--heads", a->heads, "attention heads");
  c->add_option("--kv-heads", a->kv_heads, "key/value heads");
  c->add_option("--head-dim", a->head_dim, "head dimension (0: hidden / heads)");
  c->add_option("--vocab", a->vocab, "vocabulary size");
  c->add_option("--max-position-embeddings", a->max_pos, "max_position_embeddings");
  c->add_option("--rope-theta", a->theta, "rope_theta");
  c->add_flag("--llama3-rope-scaling", a->llama3_rope, "write a llama3 rope_scaling (factor 8)");
  c->add_flag("--rope-parameters", a->rope_parameters, "write the rope_parameters config style");
  c->add_flag("--tied", a->tied, "tie_word_embeddings (no lm_head tensor)");
  c->add_flag("--untied", a->untied, "a separate lm_head");
  c->add_flag("--attention-bias", a->attention_bias, "attention_bias (Llama, Qwen3)");
  c->add_option("--format", a->format,
                "auto_round:auto_gptq, auto_round:gptqmodel, auto_round, auto_round:auto_awq or none");
  c->add_option("--bits", a->bits, "2, 3, 4 or 8");
  c->add_option("--group-size", a->group_size, "group size (-1: per channel)");
  c->add_flag("--asym", a->asym, "asymmetric quantization (zero points)");
  c->add_flag("--quantize-lm-head", a->quantize_lm_head, "quantize lm_head too (through extra_config)");
  c->add_option("--unquantized", a->unquantized, "module names left unquantized through extra_config");
  c->add_option("--dtype", a->dtype, "dtype of unquantized tensors: bf16, f16, f32");
  c->add_option("--scale-dtype", a->scale_dtype, "dtype of scales: f16, bf16, f32");
  c->add_option("--tokenizer", a->tokenizer, "directory with tokenizer.json (and tokenizer_config.json)");
  c->add_option("--shards", a->shards, "number of safetensors shards");
  c->add_option("--seed", a->seed, "seed of the random weights")->capture_default_str();
  a->app = c;
  c->callback([a] { run(*a); });
}

}  // namespace ark::tools
