// Model::load: plan (validate everything), then decode + pack each layer, copying unquantized tensors out of
// the mapping, and drop each tensor's mapped pages as soon as it has been consumed.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>

#include "ark/error.h"
#include "ark/format.h"
#include "ark/model.h"
#include "ark/moe.h"
#include "ark/safetensors.h"
#include "ark/thread_pool.h"
#include "runtime/model_impl.h"
#include "runtime/model_names.h"

namespace ark {

namespace {

// The mapping is read-only and file-backed, so dropping its pages loses nothing (a later read would fetch
// them again); it keeps peak resident memory near the packed size instead of packed + checkpoint.
void drop_pages(const TensorView& v) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(v.data) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(v.data) + v.nbytes()) & ~(page - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

int64_t default_max_model_len(const ModelConfig& c) {
  const double phys =
      static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  const double per_token = 2.0 * c.num_layers * c.num_kv_heads * c.head_dim * sizeof(float);
  const int64_t by_memory = static_cast<int64_t>(phys / 4 / per_token);
  return std::max<int64_t>(1, std::min(c.max_position_embeddings, by_memory));
}

class Loader {
 public:
  Loader(const SafetensorsStore& store, const LoadOptions& o, Model::Impl& m) : store_(store), o_(o), m_(m) {}

  TensorView take(const std::string& name) {
    const TensorView v = store_.get(name);
    taken_.push_back(v);
    return v;
  }
  void release_taken() {
    for (const TensorView& v : taken_) drop_pages(v);
    taken_.clear();
  }

  RuntimeLinear linear(const CheckpointLayer& l) {
    RuntimeLinear r;
    r.in_features = l.in_features;
    r.out_features = l.out_features;
    if (l.kind == CheckpointLayer::Kind::kQuantizedLinear) {
      QuantLinearSpec spec;
      spec.in_features = l.in_features;
      spec.out_features = l.out_features;
      spec.bits = l.scheme->bits;
      spec.group_size = l.scheme->group_size;
      spec.sym = l.scheme->sym;
      spec.bias = l.bias;
      spec.act_order = l.act_order;
      spec.mode = o_.mode;
      spec.max_isa = o_.max_isa;
      if (o_.kernel_switch_threshold > 0) spec.kernel_switch_threshold = o_.kernel_switch_threshold;
      r.quantized = std::make_unique<QuantLinear>(spec);
      const TensorView qweight = take(l.name + ".qweight"), qzeros = take(l.name + ".qzeros"),
                       scales = take(l.name + ".scales");
      std::optional<TensorView> g_idx;
      if (l.act_order) g_idx = take(l.name + ".g_idx");
      try {
        r.quantized->load_checkpoint(l.scheme->layout, qweight, qzeros, scales, g_idx ? &*g_idx : nullptr);
        if (l.bias) {
          const auto b = runtime::copy_vector_f32(take(l.name + ".bias"), l.out_features, l.name + ".bias");
          r.quantized->load_bias(b.data(), DType::F32, l.out_features);
        }
        r.quantized->post_init();
      } catch (const Error& e) {
        throw_error(m_.plan.dir.string(), ": layer '", l.name, "': ", e.what());
      }
      m_.packed_bytes += r.quantized->packed_bytes();
    } else {
      r.dense = runtime::DenseMatrix::copy_from(take(l.name + ".weight"), l.name + ".weight");
      if (l.bias) r.dense.set_bias(runtime::copy_vector_f32(take(l.name + ".bias"), l.out_features, l.name));
      m_.unquantized_bytes += r.dense.bytes();
    }
    done(l);
    return r;
  }

  // Whether parts can be one QuantLinear: all quantized with one scheme and K, and no act-order (each part
  // would bring its own K permutation).
  static bool can_fuse(const std::vector<const CheckpointLayer*>& parts) {
    const CheckpointLayer& a = *parts[0];
    for (const CheckpointLayer* l : parts) {
      if (l->kind != CheckpointLayer::Kind::kQuantizedLinear || l->act_order || !l->scheme) return false;
      const QuantScheme &x = *l->scheme, &y = *a.scheme;
      if (x.bits != y.bits || x.group_size != y.group_size || x.sym != y.sym || x.layout != y.layout ||
          l->in_features != a.in_features)
        return false;
    }
    return true;
  }

  // parts decoded one by one and concatenated along N (rows of codes, scales and zeros are per output
  // feature), biases likewise with zeros for a part without one.
  RuntimeLinear fused_linear(const std::vector<const CheckpointLayer*>& parts) {
    const CheckpointLayer& a = *parts[0];
    QuantizedWeight w;
    std::vector<float> bias;
    bool any_bias = false;
    for (const CheckpointLayer* l : parts) any_bias = any_bias || l->bias;
    for (const CheckpointLayer* l : parts) {
      try {
        QuantizedWeight p = decode(*l->scheme, l->in_features, l->out_features, take(l->name + ".qweight"),
                                   take(l->name + ".qzeros"), take(l->name + ".scales"));
        if (w.out_features == 0) {
          w = std::move(p);
        } else {
          w.out_features += p.out_features;
          w.codes.insert(w.codes.end(), p.codes.begin(), p.codes.end());
          w.scales.insert(w.scales.end(), p.scales.begin(), p.scales.end());
          w.zeros.insert(w.zeros.end(), p.zeros.begin(), p.zeros.end());
        }
        if (l->bias) {
          const auto b =
              runtime::copy_vector_f32(take(l->name + ".bias"), l->out_features, l->name + ".bias");
          bias.insert(bias.end(), b.begin(), b.end());
        } else if (any_bias) {
          bias.insert(bias.end(), static_cast<size_t>(l->out_features), 0.0f);
        }
      } catch (const Error& e) {
        throw_error(m_.plan.dir.string(), ": layer '", l->name, "': ", e.what());
      }
      done(*l);
    }
    RuntimeLinear r;
    r.in_features = a.in_features;
    r.out_features = w.out_features;
    QuantLinearSpec spec;
    spec.in_features = a.in_features;
    spec.out_features = w.out_features;
    spec.bits = a.scheme->bits;
    spec.group_size = a.scheme->group_size;
    spec.sym = a.scheme->sym;
    spec.bias = any_bias;
    spec.mode = o_.mode;
    spec.max_isa = o_.max_isa;
    if (o_.kernel_switch_threshold > 0) spec.kernel_switch_threshold = o_.kernel_switch_threshold;
    try {
      r.quantized = std::make_unique<QuantLinear>(spec);
      r.quantized->load(std::move(w));
      if (any_bias) r.quantized->load_bias(bias.data(), DType::F32, r.out_features);
      r.quantized->post_init();
    } catch (const Error& e) {
      throw_error(m_.plan.dir.string(), ": fused layer starting at '", a.name, "': ", e.what());
    }
    m_.packed_bytes += r.quantized->packed_bytes();
    return r;
  }

  // Decodes the quantized linears `ls`, three per expert (gate, up, down), and hands each expert's three to
  // `consume(g, gate, up, down)`, one task per expert on the default pool: decoding and QuantMoE's packing of
  // different experts run in parallel (QuantMoE::load_expert allows concurrent calls for different experts).
  // The views are taken, and afterwards released, on this thread.
  using ExpertSink = std::function<void(size_t, QuantizedWeight, QuantizedWeight, QuantizedWeight)>;
  void expert_groups(const std::vector<const CheckpointLayer*>& ls, const ExpertSink& consume) {
    struct Views {
      TensorView qweight, qzeros, scales;
      std::optional<TensorView> g_idx;
    };
    std::vector<Views> views;
    views.reserve(ls.size());
    for (const CheckpointLayer* l : ls) {
      Views v{take(l->name + ".qweight"), take(l->name + ".qzeros"), take(l->name + ".scales"), std::nullopt};
      if (l->act_order) v.g_idx = take(l->name + ".g_idx");
      views.push_back(std::move(v));
    }
    const size_t groups = ls.size() / 3;
    std::vector<std::string> errors(groups);
    default_thread_pool().parallel_for(static_cast<int64_t>(groups), [&](int64_t g) {
      const CheckpointLayer* at = ls[3 * g];
      try {  // the pool's tasks must not throw
        QuantizedWeight w[3];
        for (int k = 0; k < 3; ++k) {
          at = ls[3 * g + k];
          const Views& v = views[3 * g + k];
          w[k] = decode(*at->scheme, at->in_features, at->out_features, v.qweight, v.qzeros, v.scales,
                        v.g_idx ? &*v.g_idx : nullptr);
        }
        at = ls[3 * g];
        consume(static_cast<size_t>(g), std::move(w[0]), std::move(w[1]), std::move(w[2]));
      } catch (const std::exception& e) {
        errors[g] = "layer '" + at->name + "': " + e.what();
      }
    });
    for (const std::string& e : errors)
      if (!e.empty()) throw_error(m_.plan.dir.string(), ": ", e);
    for (const CheckpointLayer* l : ls) done(*l);
  }

  // A [1][H] float gate (Qwen2-MoE's shared_expert_gate) as H floats.
  std::vector<float> gate_vector(const CheckpointLayer& l) {
    const auto g = runtime::DenseMatrix::copy_from(take(l.name + ".weight"), l.name + ".weight");
    std::vector<float> v(static_cast<size_t>(l.in_features));
    g.row_to_f32(0, v.data());
    m_.unquantized_bytes += v.size() * sizeof(float);
    done(l);
    return v;
  }

  // Sparse layer i: the router, then every expert into one QuantMoE, packed once.
  void moe_layer(int64_t i, DecoderLayer& d,
                 const std::function<const CheckpointLayer&(const std::string&)>& layer) {
    const ModelConfig& c = m_.plan.config;
    const MoeNames& mn = moe_names(m_.plan.moe_naming);
    d.router = linear(layer(moe_router(i, mn)));
    QuantMoESpec spec;
    spec.hidden_size = c.hidden_size;
    spec.intermediate_size = c.moe.expert_intermediate_size;
    spec.num_experts = static_cast<int>(c.moe.num_experts);
    spec.top_k = static_cast<int>(c.moe.top_k);
    spec.routing = MoeRouting::kSoftmaxThenTopK;  // transformers' order for all three architectures
    spec.norm_topk_prob = c.moe.norm_topk_prob;
    spec.shared_intermediate_size = c.moe.shared_intermediate_size;
    spec.mode = o_.mode;
    spec.max_isa = o_.max_isa;
    spec.kernel_switch_threshold = o_.kernel_switch_threshold;  // 0 keeps the default, as for QuantLinear
    size_t routed_bytes = 0, shared_bytes = 0;
    const std::string where = m_.plan.dir.string() + ": experts of layer " + std::to_string(i);
    try {
      d.moe = std::make_unique<QuantMoE>(spec);
      // 32 experts at a time, so that the mapped pages of at most 32 experts are resident before release.
      constexpr int64_t kChunk = 32;
      for (int64_t e0 = 0; e0 < c.moe.num_experts; e0 += kChunk) {
        const int64_t e1 = std::min(c.moe.num_experts, e0 + kChunk);
        std::vector<const CheckpointLayer*> parts;  // expert e's gate, up, down at 3 (e - e0)
        for (int64_t e = e0; e < e1; ++e)
          for (int w = 0; w < 3; ++w) parts.push_back(&layer(expert_module(i, e, mn, w)));
        for (const CheckpointLayer* l : parts) routed_bytes += l->checkpoint_bytes;
        expert_groups(parts, [&](size_t g, QuantizedWeight gw, QuantizedWeight uw, QuantizedWeight dw) {
          d.moe->load_expert(static_cast<int>(e0 + static_cast<int64_t>(g)), std::move(gw), std::move(uw),
                             std::move(dw));
        });
      }
      if (c.moe.shared_intermediate_size > 0) {
        std::vector<const CheckpointLayer*> parts;
        for (int w = 0; w < 3; ++w) parts.push_back(&layer(shared_expert_module(i, w)));
        for (const CheckpointLayer* l : parts) shared_bytes += l->checkpoint_bytes;
        std::vector<float> gate = gate_vector(layer(shared_expert_gate(i)));
        expert_groups(parts, [&](size_t, QuantizedWeight gw, QuantizedWeight uw, QuantizedWeight dw) {
          d.moe->load_shared_expert(std::move(gw), std::move(uw), std::move(dw), std::move(gate));
        });
      }
      d.moe->post_init();
    } catch (const Error& e) {
      const std::string msg = e.what();
      if (msg.starts_with(m_.plan.dir.string())) throw;
      throw_error(where, ": ", msg);
    }
    m_.packed_bytes += d.moe->packed_bytes();
    const double per_token = static_cast<double>(shared_bytes) + static_cast<double>(routed_bytes) *
                                                                     static_cast<double>(c.moe.top_k) /
                                                                     static_cast<double>(c.moe.num_experts);
    d.moe_fraction_per_token = per_token / static_cast<double>(shared_bytes + routed_bytes);
  }

  std::vector<float> norm(const CheckpointLayer& l) {
    auto v = runtime::copy_vector_f32(take(l.name + ".weight"), l.in_features, l.name + ".weight");
    m_.unquantized_bytes += v.size() * sizeof(float);
    done(l);
    return v;
  }

  void done(const CheckpointLayer& l) {
    release_taken();
    bytes_done_ += l.checkpoint_bytes;
    if (o_.progress) o_.progress(bytes_done_, m_.plan.checkpoint_bytes);
  }

 private:
  const SafetensorsStore& store_;
  const LoadOptions& o_;
  Model::Impl& m_;
  std::vector<TensorView> taken_;
  size_t bytes_done_ = 0;
};

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

Model Model::load(const std::filesystem::path& dir, const LoadOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  auto m = std::make_unique<Impl>();
  m->plan = plan_checkpoint(dir);
  const ModelConfig& c = m->plan.config;

  // Options are checked before any weight is touched, like the checkpoint itself.
  ARK_CHECK(options.block_size >= 1 && options.block_size <= 4096, "--block-size ", options.block_size,
            " must be in [1, 4096]");
  ARK_CHECK(options.max_model_len >= 0, "--max-model-len ", options.max_model_len,
            " must be >= 0 (0: default)");
  ARK_CHECK(options.max_model_len <= c.max_position_embeddings, "--max-model-len ", options.max_model_len,
            " exceeds the model's max_position_embeddings ", c.max_position_embeddings);
  m->max_model_len = options.max_model_len > 0 ? options.max_model_len : default_max_model_len(c);
  m->block_size = options.block_size;
  m->inv_freq = c.rope_inv_freq();

  std::map<std::string, const CheckpointLayer*> by_name;
  for (const CheckpointLayer& l : m->plan.layers) by_name[l.name] = &l;
  const std::function<const CheckpointLayer&(const std::string&)> layer =
      [&](const std::string& name) -> const CheckpointLayer& { return *by_name.at(name); };

  {
    const SafetensorsStore store = SafetensorsStore::open(dir.string());
    Loader ld(store, options, *m);
    {
      const CheckpointLayer& e = layer("model.embed_tokens");
      m->embed =
          runtime::DenseMatrix::copy_from(ld.take("model.embed_tokens.weight"), "model.embed_tokens.weight");
      m->unquantized_bytes += m->embed.bytes();
      ld.done(e);
    }
    m->layers.resize(c.num_layers);
    for (int64_t i = 0; i < c.num_layers; ++i) {
      DecoderLayer& d = m->layers[i];
      d.input_norm = ld.norm(layer(layer_module(i, "input_layernorm")));
      RuntimeLinear* slots[] = {&d.q, &d.k, &d.v, &d.o, &d.gate, &d.up, &d.down};
      // A sparse layer has no dense gate / up / down in the plan.
      const size_t dense_slots = c.is_moe_layer(i) ? 4 : std::size(kLayerLinears);
      const CheckpointLayer* parts[std::size(kLayerLinears)] = {};
      for (size_t s = 0; s < dense_slots; ++s) parts[s] = &layer(layer_module(i, kLayerLinears[s].name));
      // Fused groups: slots [0, 3) (q, k, v) and [4, 6) (gate, up); the order in kLayerLinears is fixed.
      auto load_group = [&](size_t begin, size_t end, RuntimeLinear* fused) {
        const std::vector<const CheckpointLayer*> group(parts + begin, parts + end);
        if (Loader::can_fuse(group)) {
          *fused = ld.fused_linear(group);
          for (size_t s = begin; s < end; ++s) {
            slots[s]->in_features = parts[s]->in_features;
            slots[s]->out_features = parts[s]->out_features;
          }
        } else {
          for (size_t s = begin; s < end; ++s) *slots[s] = ld.linear(*parts[s]);
        }
      };
      load_group(0, 3, &d.qkv);
      *slots[3] = ld.linear(*parts[3]);
      if (c.is_moe_layer(i)) {
        ld.moe_layer(i, d, layer);
      } else {
        load_group(4, 6, &d.gate_up);
        *slots[6] = ld.linear(*parts[6]);
      }
      if (c.qk_norm) {
        d.q_norm = ld.norm(layer(layer_module(i, "self_attn.q_norm")));
        d.k_norm = ld.norm(layer(layer_module(i, "self_attn.k_norm")));
      }
      d.post_norm = ld.norm(layer(layer_module(i, "post_attention_layernorm")));
    }
    m->final_norm = ld.norm(layer("model.norm"));
    if (m->plan.lm_head_tied) {
      m->lm_head.dense = m->embed;  // shares the bytes
      m->lm_head.in_features = c.hidden_size;
      m->lm_head.out_features = c.vocab_size;
    } else {
      m->lm_head = ld.linear(layer("lm_head"));
    }
  }  // the store (every mapping) is released here
  m->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return Model(std::move(m));
}

const ModelConfig& Model::config() const {
  return impl_->plan.config;
}
const CheckpointPlan& Model::plan() const {
  return impl_->plan;
}
int64_t Model::max_model_len() const {
  return impl_->max_model_len;
}
int64_t Model::block_size() const {
  return impl_->block_size;
}
KvCache Model::new_cache() const {
  return KvCache(config(), impl_->max_model_len, impl_->block_size);
}
size_t Model::packed_bytes() const {
  return impl_->packed_bytes;
}
size_t Model::unquantized_bytes() const {
  return impl_->unquantized_bytes;
}
double Model::load_seconds() const {
  return impl_->load_seconds;
}

size_t Model::bytes_read_per_token() const {
  size_t bytes = impl_->lm_head.bytes();
  for (const DecoderLayer& d : impl_->layers) {
    for (const RuntimeLinear* l : d.weighted_linears()) bytes += l->bytes();
    if (d.moe)
      bytes += static_cast<size_t>(static_cast<double>(d.moe->packed_bytes()) * d.moe_fraction_per_token);
    bytes += (d.input_norm.size() + d.post_norm.size() + d.q_norm.size() + d.k_norm.size()) * sizeof(float);
  }
  return bytes + impl_->final_norm.size() * sizeof(float);
}

std::string Model::describe_kernels(int64_t M) const {
  for (const DecoderLayer& d : impl_->layers)
    for (const RuntimeLinear* l : d.weighted_linears())
      if (l->quantized) return l->quantized->kernel_name(M);
  for (const DecoderLayer& d : impl_->layers)
    if (d.moe) return "experts: " + d.moe->describe();
  return "none (no quantized layer)";
}

}  // namespace ark
