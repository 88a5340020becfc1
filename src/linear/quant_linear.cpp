// QuantLinear: validation, packing, kernel choice, and the forward driver (activation preparation, then the
// kernel over a grid of row blocks x N-tile ranges on the thread pool).
#include "ark/quant_linear.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <sstream>

#include "ark/format.h"
#include "ark/thread_pool.h"
#include "kernels/cpu_features.h"
#include "kernels/dispatch.h"
#include "linear/activations.h"
#include "linear/packed_weight.h"
#include "linear/quant_linear_impl.h"
#include "linear/tile_ranges.h"

namespace ark {

std::string_view compute_mode_name(ComputeMode mode) {
  switch (mode) {
    case ComputeMode::kAuto:
      return "auto";
    case ComputeMode::kExact:
      return "exact";
    default:
      return "int8";
  }
}

ComputeMode parse_compute_mode(std::string_view name) {
  if (name == "auto") return ComputeMode::kAuto;
  if (name == "exact") return ComputeMode::kExact;
  if (name == "int8") return ComputeMode::kInt8;
  throw_error("compute mode '", name, "' is not one of auto, exact, int8");
}

QuantLinear::QuantLinear(QuantLinearSpec spec) : impl_(std::make_unique<Impl>()) {
  const QuantLinearSpec& s = spec;
  ARK_CHECK(s.in_features > 0, "QuantLinear: in_features ", s.in_features, " must be positive");
  ARK_CHECK(s.out_features > 0, "QuantLinear: out_features ", s.out_features, " must be positive");
  ARK_CHECK(s.bits == 2 || s.bits == 3 || s.bits == 4 || s.bits == 8, "QuantLinear: bits ", s.bits,
            " is not supported (expected 2, 3, 4 or 8)");
  ARK_CHECK(s.group_size == -1 || (s.group_size > 0 && s.group_size <= s.in_features),
            "QuantLinear: group_size ", s.group_size, " must be -1 or in [1, in_features=", s.in_features,
            "]");
  ARK_CHECK(s.kernel_switch_threshold >= 1, "QuantLinear: kernel_switch_threshold ",
            s.kernel_switch_threshold, " must be at least 1");
  ARK_CHECK(s.num_threads >= 0, "QuantLinear: num_threads ", s.num_threads, " must be >= 0 (0: all)");
  ARK_CHECK(s.mode == ComputeMode::kAuto || s.mode == ComputeMode::kExact || s.mode == ComputeMode::kInt8,
            "QuantLinear: unknown compute mode ", static_cast<int>(s.mode));
  if (s.max_isa.empty()) {
    impl_->isa = active_isa_level();
  } else {
    const IsaLevel requested = parse_isa_level(s.max_isa);  // throws naming the accepted names
    impl_->isa = std::min(requested, detected_isa_level());
  }
  impl_->group_size = s.group_size == -1 ? s.in_features : s.group_size;
  impl_->spec = std::move(spec);
}

QuantLinear::~QuantLinear() = default;
QuantLinear::QuantLinear(QuantLinear&&) noexcept = default;
QuantLinear& QuantLinear::operator=(QuantLinear&&) noexcept = default;

const QuantLinearSpec& QuantLinear::spec() const {
  return impl_->spec;
}

void QuantLinear::load(QuantizedWeight weight) {
  const QuantLinearSpec& s = impl_->spec;
  ARK_CHECK(weight.in_features == s.in_features && weight.out_features == s.out_features,
            "QuantLinear::load: weight is ", weight.out_features, "x", weight.in_features,
            " (out x in), spec expects ", s.out_features, "x", s.in_features);
  ARK_CHECK(weight.bits == s.bits, "QuantLinear::load: weight has ", weight.bits, " bits, spec expects ",
            s.bits);
  ARK_CHECK(weight.group_size == impl_->group_size, "QuantLinear::load: weight group_size ",
            weight.group_size, ", spec expects ", impl_->group_size);
  weight.validate();
  ARK_CHECK(s.act_order || !weight.has_act_order(),
            "QuantLinear::load: weight has an act-order g_idx but the spec says act_order = false");
  // Checkpoint size for the memory figure: codes at `bits` bits, fp16 scales, zero points at `bits` bits,
  // g_idx.
  const int64_t ng = weight.out_features * weight.num_groups();
  impl_->checkpoint_bytes = static_cast<size_t>(
      weight.out_features * weight.in_features * weight.bits / 8 + ng * 2 + ng * weight.bits / 8 +
      (weight.g_idx.empty() ? 0 : weight.in_features * 4) + (impl_->spec.bias ? weight.out_features * 2 : 0));
  impl_->weight = std::move(weight);
  impl_->packed_ready = false;
}

void QuantLinear::load_checkpoint(PackingLayout layout, const TensorView& qweight, const TensorView& qzeros,
                                  const TensorView& scales, const TensorView* g_idx) {
  const QuantLinearSpec& s = impl_->spec;
  QuantScheme scheme;
  scheme.bits = s.bits;
  scheme.group_size = s.group_size;
  scheme.sym = s.sym;
  scheme.layout = layout;
  load(decode(scheme, s.in_features, s.out_features, qweight, qzeros, scales, g_idx));
}

void QuantLinear::load_bias(const void* bias, DType dtype, int64_t n) {
  const QuantLinearSpec& s = impl_->spec;
  ARK_CHECK(s.bias, "QuantLinear::load_bias: the spec says bias = false");
  ARK_CHECK(bias != nullptr, "QuantLinear::load_bias: bias is null");
  ARK_CHECK(n == s.out_features, "QuantLinear::load_bias: ", n,
            " values, expected out_features=", s.out_features);
  ARK_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16,
            "QuantLinear::load_bias: dtype ", dtype_name(dtype), " is not F32, BF16 or F16");
  std::vector<float> b(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == DType::F32)
      b[i] = static_cast<const float*>(bias)[i];
    else if (dtype == DType::BF16)
      b[i] = bf16_to_float(static_cast<const uint16_t*>(bias)[i]);
    else
      b[i] = fp16_to_float(static_cast<const uint16_t*>(bias)[i]);
  }
  impl_->bias = std::move(b);
  impl_->packed_ready = false;
}

namespace {

// The compute mode `auto` resolves to, with the reason describe() prints. int8 is the faster mode wherever
// integer dot products exist (vpdpbusd: 64 multiply-adds per instruction against 16 for fp32 FMA, and no
// int->float conversion per weight); its error stays inside the bound of docs/KERNELS.md. AVX2 without VNNI
// (vpmaddubsw + vpmaddwd) still measures faster than fp32; only the scalar reference level runs exact.
ComputeMode resolve_mode(ComputeMode requested, IsaLevel isa, std::string* reason) {
  if (requested == ComputeMode::kExact) {
    *reason = "exact (requested)";
    return requested;
  }
  if (requested == ComputeMode::kInt8) {
    *reason = "int8 (requested)";
    return requested;
  }
  if (isa >= IsaLevel::kAvx512Vnni) {
    *reason =
        "int8 (auto: AVX-512 VNNI integer dot products are the fastest path; error within the int8 bound)";
    return ComputeMode::kInt8;
  }
  if (isa >= IsaLevel::kAvx2 && cpu_features().avx_vnni) {
    *reason = "int8 (auto: AVX-VNNI integer dot products are the fastest path; error within the int8 bound)";
    return ComputeMode::kInt8;
  }
  if (isa >= IsaLevel::kAvx2) {
    // vpmaddubsw + vpmaddwd: measured 1.4-2.3x the exact kernels at M = 1..16 and ~5x at M >= 128 on AVX2
    // (docs/PERFORMANCE.md), with the same int8 error bound.
    *reason = "int8 (auto: AVX2 integer dot products beat the fp32 kernels; error within the int8 bound)";
    return ComputeMode::kInt8;
  }
  *reason =
      "exact (auto: no integer dot-product kernels at ISA level " + std::string(isa_level_name(isa)) + ")";
  return ComputeMode::kExact;
}

}  // namespace

void QuantLinear::post_init() {
  Impl& im = *impl_;
  if (im.packed_ready && !im.weight) return;  // already packed, nothing new loaded
  ARK_CHECK(im.weight.has_value(),
            "QuantLinear::post_init: no weight loaded (call load or load_checkpoint first)");
  ARK_CHECK(!im.spec.bias || im.bias.size() == static_cast<size_t>(im.spec.out_features),
            "QuantLinear::post_init: the spec says bias = true but no bias was loaded (call load_bias)");
  im.packed = pack_weight(*im.weight);
  im.weight.reset();  // one packed copy per layer
  im.packed.bias = im.bias;
  im.mode = resolve_mode(im.spec.mode, im.isa, &im.mode_reason);

  LinearProblem p;
  p.bits = im.packed.bits;
  p.n = im.packed.n;
  p.k = im.packed.k;
  p.num_groups = im.packed.num_groups;
  p.scales_f16 = im.packed.scales_f16;
  p.mode = im.mode;
  p.isa = im.isa;
  p.avx_vnni = im.isa >= IsaLevel::kAvx2 && cpu_features().avx_vnni;
  im.small_m = &select_linear_impl(Regime::kSmallM, p);
  im.large_m = &select_linear_impl(Regime::kLargeM, p);
  // auto picks int8 for its speed; should a regime have no int8 kernel at this ISA level, the scalar
  // reference would run instead, so exact mode is the faster choice (a guard: every level above ref has both
  // today).
  const bool int8_falls_to_ref = im.small_m == &kRefLinearImpl || im.large_m == &kRefLinearImpl;
  if (im.spec.mode == ComputeMode::kAuto && im.mode == ComputeMode::kInt8 && im.isa != IsaLevel::kRef &&
      int8_falls_to_ref) {
    im.mode = p.mode = ComputeMode::kExact;
    im.mode_reason = "exact (auto: no int8 kernel for both regimes at ISA level " +
                     std::string(isa_level_name(im.isa)) + ")";
    im.small_m = &select_linear_impl(Regime::kSmallM, p);
    im.large_m = &select_linear_impl(Regime::kLargeM, p);
  }
  im.quantize_rows = select_quantize_rows(im.isa);
  im.packed_ready = true;
}

bool QuantLinear::ready() const {
  return impl_->packed_ready;
}

namespace {

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// Splits [0, n) into `parts` nearly equal contiguous ranges; returns range i.
std::pair<int64_t, int64_t> split_range(int64_t n, int64_t parts, int64_t i) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = i * base + std::min(i, extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

}  // namespace

void QuantLinear::forward(const void* x, void* y, int64_t M, DType dtype) const {
  const Impl& im = *impl_;
  ARK_CHECK(im.packed_ready, "QuantLinear::forward: call post_init() after loading the weight");
  ARK_CHECK(M >= 0, "QuantLinear::forward: M = ", M, " must be >= 0");
  ARK_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16,
            "QuantLinear::forward: dtype ", dtype_name(dtype),
            " is not supported (expected F32, BF16 or F16)");
  if (M == 0) return;
  ARK_CHECK(x != nullptr, "QuantLinear::forward: x is null");
  ARK_CHECK(y != nullptr, "QuantLinear::forward: y is null");

  const PackedWeight& w = im.packed;
  const bool int8 = im.mode == ComputeMode::kInt8;
  const bool small = M < im.spec.kernel_switch_threshold;
  const LinearImpl& kernel = small ? *im.small_m : *im.large_m;
  const int64_t G = w.num_groups, kp = w.k_padded();

  // Per-call scratch, sized from the packed layout: fp32 activations in packed-K order unless x already is
  // that, and in int8 mode the quantized rows with their scales and sums.
  const bool need_xf = !(w.identity_k && dtype == DType::F32);
  const int64_t ldx = need_xf ? kp : w.k;
  const size_t xf_bytes = need_xf ? static_cast<size_t>(M * kp) * 4 : 0;
  const size_t xq_bytes = int8 ? (static_cast<size_t>(M * kp) + 63) / 64 * 64 : 0;
  const size_t side_bytes = int8 ? static_cast<size_t>(M * G) * 8 : 0;
  // A bf16 GEMM gets the rows rounded once here rather than once per panel of its own (LinearArgs::xb).
  const bool need_xb = !int8 && kernel.prepare_bf16 != nullptr;
  const size_t xb_bytes = need_xb ? (static_cast<size_t>(M * kp) * 2 + 63) / 64 * 64 : 0;
  // A kernel that wants heap scratch (LinearImpl::scratch_bytes) gets one slice per thread of this call,
  // here rather than in the layer, so concurrent forwards share nothing.
  const size_t slice_bytes = kernel.scratch_bytes ? (kernel.scratch_bytes(w) + 63) / 64 * 64 : 0;
  const size_t total = (xf_bytes + 63) / 64 * 64 + xq_bytes + side_bytes + xb_bytes;
  ThreadPool& pool = default_thread_pool();
  int threads =
      im.spec.num_threads == 0 ? pool.num_threads() : std::min(im.spec.num_threads, pool.num_threads());
  // A layer this small finishes before a worker would wake up.
  if (static_cast<double>(M) * static_cast<double>(w.n) * static_cast<double>(w.k) < 256.0 * 1024.0)
    threads = 1;

  const size_t all_bytes = (total + 63) / 64 * 64 + slice_bytes * static_cast<size_t>(threads);
  std::unique_ptr<uint8_t, AlignedFree> scratch;
  if (all_bytes > 0) {
    scratch.reset(static_cast<uint8_t*>(std::aligned_alloc(64, all_bytes)));
    if (!scratch) throw std::bad_alloc();
  }
  uint8_t* const slices = scratch.get() + (total + 63) / 64 * 64;
  uint8_t* at = scratch.get();
  float* xf = need_xf ? reinterpret_cast<float*>(at) : nullptr;
  at += (xf_bytes + 63) / 64 * 64;

  LinearArgs a;
  a.m = M;
  a.x = need_xf ? xf : static_cast<const float*>(x);
  a.ldx = ldx;
  a.y = y;
  a.ldy = w.n;
  a.y_dtype = dtype;
  a.bias = w.bias.empty() ? nullptr : w.bias.data();
  if (int8) {
    int8_t* xq = reinterpret_cast<int8_t*>(at);
    at += xq_bytes;
    float* xs = reinterpret_cast<float*>(at);
    int32_t* sums = reinterpret_cast<int32_t*>(at + static_cast<size_t>(M * G) * 4);
    a.xq = xq;
    a.ldxq = kp;
    a.x_scale = xs;
    a.xq_sum = sums;
    at += side_bytes;
  }
  if (need_xb) {
    a.xb = reinterpret_cast<uint16_t*>(at);
    a.ldxb = kp;
  }

  // Activations: rows are independent, so split them across the threads when there are enough.
  const int64_t prep_parts = std::min<int64_t>(M, threads);
  pool.parallel_for(
      prep_parts,
      [&](int64_t part) {
        const auto [m0, m1] = split_range(M, prep_parts, part);
        if (need_xf) gather_activation_rows(w, x, dtype, m0, m1, xf, ldx);
        if (need_xb) kernel.prepare_bf16(a.x, a.ldx, m0, m1, kp, const_cast<uint16_t*>(a.xb), a.ldxb);
        if (int8)
          im.quantize_rows(w, a.x, a.ldx, m0, m1, const_cast<int8_t*>(a.xq), a.ldxq,
                           const_cast<float*>(a.x_scale), const_cast<int32_t*>(a.xq_sum));
      },
      threads);

  // The kernel over (row block) x (range of N-tiles). Decode kernels take all rows at once so each weight
  // byte is streamed once.
  const int64_t m_block = kernel.m_block > 0 ? kernel.m_block : M;
  const int64_t m_items = (M + m_block - 1) / m_block;
  if (small && m_items == 1 && slice_bytes == 0 && threads > 1) {
    // Decode: one contiguous range of N-tiles per thread, in up to 4 chunks of at least kMinChunkBytes of
    // codes, balanced by stealing (linear/tile_ranges.h). A pool task is one chunk of the running thread's
    // range.
    constexpr size_t kMinChunkBytes = 16 * 1024;
    const size_t range_bytes = static_cast<size_t>((w.n_tiles + threads - 1) / threads) * w.tile_code_bytes();
    TileRanges ranges(w.n_tiles, threads, std::clamp<int64_t>(range_bytes / kMinChunkBytes, 1, 4));
    pool.parallel_for(
        ranges.total_chunks(),
        [&](int64_t) {
          int64_t t0, t1;
          if (ranges.next(ThreadPool::current_thread_index(), &t0, &t1)) kernel.run(w, a, 0, M, t0, t1);
        },
        threads);
    return;
  }
  // GEMMs: N is cut into a few ranges per thread so the threads finish together.
  const int64_t n_parts =
      threads == 1 ? 1 : std::clamp<int64_t>((4 * threads + m_items - 1) / m_items, 1, w.n_tiles);
  auto run_item = [&](const LinearArgs& args, int64_t item) {
    const int64_t mi = item / n_parts, ni = item % n_parts;
    const auto [t0, t1] = split_range(w.n_tiles, n_parts, ni);
    const int64_t m0 = mi * m_block, m1 = std::min(M, m0 + m_block);
    if (t0 < t1) kernel.run(w, args, m0, m1, t0, t1);
  };
  if (slice_bytes == 0) {
    pool.parallel_for(
        m_items * n_parts, [&](int64_t item) { run_item(a, item); }, threads);
    return;
  }
  // With scratch: one task per thread, each owning slice `task` and taking items in order from a shared
  // counter (the same dynamic balance as a task per item; a task the pool runs on a busy caller's thread
  // finds the items taken or takes them all).
  std::atomic<int64_t> next_item{0};
  pool.parallel_for(
      threads,
      [&](int64_t task) {
        LinearArgs own = a;
        own.scratch = slices + static_cast<size_t>(task) * slice_bytes;
        for (int64_t item; (item = next_item.fetch_add(1, std::memory_order_relaxed)) < m_items * n_parts;)
          run_item(own, item);
      },
      threads);
}

std::string QuantLinear::describe() const {
  const Impl& im = *impl_;
  std::ostringstream out;
  const QuantLinearSpec& s = im.spec;
  out << "QuantLinear " << s.in_features << "->" << s.out_features << " int" << s.bits << " g"
      << (s.group_size == -1 ? std::string("K") : std::to_string(s.group_size)) << (s.sym ? " sym" : " asym")
      << (s.act_order ? " act-order" : "") << (s.bias ? " bias" : "") << "; isa " << isa_level_name(im.isa);
  if (!im.packed_ready) {
    out << "; not packed yet (call post_init)";
    return out.str();
  }
  out << "; mode " << im.mode_reason << "; M < " << s.kernel_switch_threshold << ": " << im.small_m->name
      << ", M >= " << s.kernel_switch_threshold << ": " << im.large_m->name << "; packed " << packed_bytes()
      << " bytes (scales " << (im.packed.scales_f16 ? "fp16" : "fp32") << ")";
  if (im.checkpoint_bytes > 0)
    out << ", "
        << (100.0 * static_cast<double>(packed_bytes()) / static_cast<double>(im.checkpoint_bytes) - 100.0)
        << "% vs checkpoint";
  return out.str();
}

std::string QuantLinear::kernel_name(int64_t M) const {
  ARK_CHECK(impl_->packed_ready, "QuantLinear::kernel_name: call post_init() first");
  return M < impl_->spec.kernel_switch_threshold ? impl_->small_m->name : impl_->large_m->name;
}

size_t QuantLinear::packed_bytes() const {
  return impl_->packed_ready ? impl_->packed.total_bytes() : 0;
}

}  // namespace ark
