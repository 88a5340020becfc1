// QuantMoE: spec validation, loading (each expert is packed as soon as it is loaded, so a model loader holds
// at most one expert's canonical weights at a time), post_init and describe. The forward is in
// moe_forward.cpp.
#include <cmath>
#include <map>
#include <sstream>

#include "ark/error.h"
#include "ark/moe.h"
#include "linear/quant_linear_impl.h"
#include "moe/moe_impl.h"
#include "moe/moe_route_impl.h"

namespace ark {

namespace {

// An act-order g_idx that only restates k / group_size carries no permutation; dropping it lets such a
// layer fuse with one that stores none.
void drop_trivial_g_idx(QuantizedWeight& w) {
  if (!w.g_idx.empty() && !w.has_act_order()) w.g_idx.clear();
}

std::unique_ptr<QuantLinear> make_layer(const QuantMoESpec& spec, QuantizedWeight w) {
  QuantLinearSpec s;
  s.in_features = w.in_features;
  s.out_features = w.out_features;
  s.bits = w.bits;
  s.group_size = w.group_size;
  s.sym = w.sym;
  s.act_order = !w.g_idx.empty();
  s.mode = spec.mode;
  s.max_isa = spec.max_isa;
  s.num_threads = spec.num_threads;
  if (spec.kernel_switch_threshold > 0) s.kernel_switch_threshold = spec.kernel_switch_threshold;
  auto layer = std::make_unique<QuantLinear>(s);
  layer->load(std::move(w));
  layer->post_init();
  return layer;
}

void check_shape(const QuantizedWeight& w, int64_t out, int64_t in, const char* what, const char* name) {
  ARK_CHECK(w.out_features == out && w.in_features == in, what, ": ", name, " is ", w.out_features, "x",
            w.in_features, " (out x in), expected ", out, "x", in);
}

}  // namespace

size_t MoeExpert::packed_bytes() const {
  size_t b = 0;
  for (const auto* l : {&gate_up, &gate, &up, &down})
    if (*l) b += (*l)->packed_bytes();
  return b;
}

MoeExpert make_moe_expert(const QuantMoESpec& spec, int64_t i_size, QuantizedWeight gate, QuantizedWeight up,
                          QuantizedWeight down, const char* what) {
  const int64_t H = spec.hidden_size;
  check_shape(gate, i_size, H, what, "gate");
  check_shape(up, i_size, H, what, "up");
  check_shape(down, H, i_size, what, "down");
  MoeExpert x;
  x.intermediate = i_size;
  try {
    gate.validate();
    up.validate();
    drop_trivial_g_idx(gate);
    drop_trivial_g_idx(up);
    drop_trivial_g_idx(down);
    const bool fuse = gate.bits == up.bits && gate.group_size == up.group_size && gate.g_idx == up.g_idx;
    if (fuse) {
      // Rows [gate | up]: codes, scales and zero points are per output row, so concatenation along N is the
      // fused layer.
      QuantizedWeight w = std::move(gate);
      w.out_features += up.out_features;
      w.sym = w.sym && up.sym;  // informative only: zero points are stored either way
      w.codes.insert(w.codes.end(), up.codes.begin(), up.codes.end());
      w.scales.insert(w.scales.end(), up.scales.begin(), up.scales.end());
      w.zeros.insert(w.zeros.end(), up.zeros.begin(), up.zeros.end());
      up = QuantizedWeight{};
      x.gate_up = make_layer(spec, std::move(w));
    } else {
      x.gate = make_layer(spec, std::move(gate));
      x.up = make_layer(spec, std::move(up));
    }
    x.down = make_layer(spec, std::move(down));
  } catch (const Error& e) {
    throw_error(what, ": ", e.what());
  }
  return x;
}

QuantMoE::QuantMoE(QuantMoESpec spec) : impl_(std::make_unique<Impl>()) {
  check_moe_spec(spec);
  impl_->spec = std::move(spec);
  impl_->experts.resize(static_cast<size_t>(impl_->num_slots()));
}

QuantMoE::~QuantMoE() = default;
QuantMoE::QuantMoE(QuantMoE&&) noexcept = default;
QuantMoE& QuantMoE::operator=(QuantMoE&&) noexcept = default;

const QuantMoESpec& QuantMoE::spec() const {
  return impl_->spec;
}

void QuantMoE::load_expert(int e, QuantizedWeight gate, QuantizedWeight up, QuantizedWeight down) {
  const QuantMoESpec& s = impl_->spec;
  ARK_CHECK(e >= 0 && e < s.num_experts, "QuantMoE::load_expert: expert ", e,
            " is not in [0, num_experts=", s.num_experts, ")");
  const std::string what = "QuantMoE::load_expert(" + std::to_string(e) + ")";
  impl_->experts[e] =
      make_moe_expert(s, s.intermediate_size, std::move(gate), std::move(up), std::move(down), what.c_str());
  impl_->ready.store(false, std::memory_order_relaxed);
}

void QuantMoE::load_shared_expert(QuantizedWeight gate, QuantizedWeight up, QuantizedWeight down,
                                  std::vector<float> shared_gate) {
  const QuantMoESpec& s = impl_->spec;
  ARK_CHECK(impl_->has_shared(),
            "QuantMoE::load_shared_expert: the spec has no shared expert (shared_intermediate_size = 0)");
  ARK_CHECK(shared_gate.empty() || static_cast<int64_t>(shared_gate.size()) == s.hidden_size,
            "QuantMoE::load_shared_expert: shared_gate has ", shared_gate.size(),
            " values, expected hidden_size=", s.hidden_size, " (or none)");
  for (size_t i = 0; i < shared_gate.size(); ++i)
    ARK_CHECK(std::isfinite(shared_gate[i]), "QuantMoE::load_shared_expert: shared_gate[", i,
              "] = ", shared_gate[i], " is not finite");
  impl_->experts[s.num_experts] =
      make_moe_expert(s, s.shared_intermediate_size, std::move(gate), std::move(up), std::move(down),
                      "QuantMoE::load_shared_expert");
  impl_->shared_gate = std::move(shared_gate);
  impl_->ready.store(false, std::memory_order_relaxed);
}

void QuantMoE::post_init() {
  Impl& im = *impl_;
  for (int e = 0; e < im.spec.num_experts; ++e)
    ARK_CHECK(im.experts[e].loaded(), "QuantMoE::post_init: expert ", e, " of ", im.spec.num_experts,
              " was not loaded (call load_expert for every expert)");
  if (im.has_shared())
    ARK_CHECK(
        im.experts[im.spec.num_experts].loaded(),
        "QuantMoE::post_init: the spec has a shared expert but none was loaded (call load_shared_expert)");
  // Activation classes of the gate/up layers (see MoeExpert::act_class), found once here so a forward needs
  // no comparison of layouts.
  im.act_classes.clear();
  auto class_of = [&](const QuantLinear& layer) {
    const QuantLinear::Impl& l = QuantLinear::Impl::of(layer);
    for (size_t c = 0; c < im.act_classes.size(); ++c) {
      const QuantLinear::Impl& r = *im.act_classes[c];
      const PackedWeight &p = l.packed, &q = r.packed;
      if (l.mode == r.mode && l.quantize_rows == r.quantize_rows && p.k == q.k && p.k_blocks == q.k_blocks &&
          p.num_groups == q.num_groups && p.identity_k == q.identity_k &&
          p.group_block_begin == q.group_block_begin && p.k_source == q.k_source)
        return static_cast<int>(c);
    }
    im.act_classes.push_back(&l);
    return static_cast<int>(im.act_classes.size() - 1);
  };
  for (MoeExpert& x : im.experts) {
    if (x.fused()) {
      x.act_class[0] = class_of(*x.gate_up);
    } else {
      x.act_class[0] = class_of(*x.gate);
      x.act_class[1] = class_of(*x.up);
    }
  }
  im.ready.store(true, std::memory_order_release);
}

bool QuantMoE::ready() const {
  return impl_->ready.load(std::memory_order_acquire);
}

namespace {

std::string scheme_of(const QuantLinear& l) {
  const QuantLinearSpec& s = l.spec();
  std::ostringstream o;
  o << "int" << s.bits << " g" << s.group_size << (s.sym ? " sym" : " asym")
    << (s.act_order ? " act-order" : "");
  return o.str();
}

}  // namespace

std::string QuantMoE::describe() const {
  const Impl& im = *impl_;
  const QuantMoESpec& s = im.spec;
  std::ostringstream out;
  out << "QuantMoE H " << s.hidden_size << ", " << s.num_experts << " experts of I " << s.intermediate_size
      << ", top-" << s.top_k << " "
      << (s.routing == MoeRouting::kSoftmaxThenTopK ? "softmax-then-topk" : "topk-then-softmax")
      << (s.norm_topk_prob && s.routing == MoeRouting::kSoftmaxThenTopK ? " (renormalized)" : "");
  if (im.has_shared())
    out << ", shared expert of I " << s.shared_intermediate_size
        << (im.shared_gate.empty() ? " (no gate)" : " (sigmoid gate)");
  int loaded = 0, fused = 0;
  std::map<std::string, int> schemes, kernels;
  std::string mode;
  for (const MoeExpert& x : im.experts) {
    if (!x.loaded()) continue;
    ++loaded;
    fused += x.fused() ? 1 : 0;
    for (const auto* l : {&x.gate_up, &x.gate, &x.up, &x.down}) {
      if (!*l) continue;
      ++schemes[scheme_of(**l)];
      const QuantLinear::Impl& li = QuantLinear::Impl::of(**l);
      ++kernels[std::string(li.small_m->name) + " / " + li.large_m->name];
      mode = li.mode_reason;
    }
  }
  out << "; " << loaded << " of " << im.experts.size() << " experts loaded, gate/up fused in " << fused;
  out << "; schemes:";
  for (const auto& [k, n] : schemes) out << " " << k << " x" << n;
  out << "; mode " << mode << "; kernels (decode / GEMM):";
  for (const auto& [k, n] : kernels) out << " " << k << " x" << n;
  out << "; packed " << packed_bytes() << " bytes" << (im.ready.load() ? "" : "; not ready (call post_init)");
  return out.str();
}

size_t QuantMoE::packed_bytes() const {
  size_t b = 0;
  for (const MoeExpert& x : impl_->experts) b += x.packed_bytes();
  return b + impl_->shared_gate.size() * sizeof(float);
}

}  // namespace ark
