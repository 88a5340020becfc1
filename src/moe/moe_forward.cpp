// The fused MoE forward.
//
// Every call first groups the (token, slot) pairs by expert with a counting sort, so each expert's rows are
// contiguous and its weights stream once per call whatever T is; the shared expert, when there is one, takes
// every token. Then the experts run side by side, as work items of ark's pool:
//   up items:   (gate/up layer, row block, N-tile range) of every expert with rows;
//   act:        per expert, h = silu(gate) * up and the down layer's activations (packed-K order; int8 mode:
//               quantized per group);
//   down items: (down layer, row block, N-tile range), one output row per (token, slot);
//   reduce:     per token, the routing-weighted sum of its slots' rows, then the shared expert's row.
// Two schedules:
//   decode (T <= 16): ONE parallel region. Each thread takes gate/up items while any is left; the thread that
//     finishes an expert's last gate/up item runs that expert's act step and appends the expert's down items
//     to a ready list, from which threads then take items in order. A thread waits only when every gate/up
//     item is taken and no down item is ready (nothing else to do); a region run on one thread (a nested or
//     concurrent call) finishes every gate/up item before it reaches the list, so it never waits. The gate/up
//     activations of a token are prepared once per activation class (layers that share the packed-K layout)
//     and shared by all its experts; the small steps run on the calling thread.
//     The reduce sums each token's slots in slot order.
//   prefill (larger T): the experts in waves of bounded scratch (kWaveBytes), each wave one region per step
//     (activations, up, act, down, add), each split over threads; each wave adds its experts' rows to y, so a
//     token's slots are summed in increasing expert id whatever the waves are.
// A kernel that asks for heap scratch (LinearImpl::scratch_bytes: the exact bf16 GEMM's whole-K panels) gets
// one slice per thread of the call from the call's arena, as QuantLinear::forward hands it; the kernel
// regions then run one task per thread over a shared item counter. The kernel gives the same bytes either
// way, faster with the slices.
// Each output element is computed by one thread in a fixed order, so the results do not depend on the thread
// count, and forward equals forward_routed given moe_route's routing (the two schedules sum in different
// orders, so they may differ in the last bits). The kernels are QuantLinear's own, resolved at its post_init
// and called on sub-ranges through QuantLinear::Impl.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "ark/error.h"
#include "ark/moe.h"
#include "ark/thread_pool.h"
#include "kernels/dispatch.h"
#include "linear/activations.h"
#include "linear/quant_linear_impl.h"
#include "moe/moe_impl.h"
#include "moe/moe_route_impl.h"

namespace ark {

namespace {

// Token counts up to this run the one-region decode schedule.
constexpr int64_t kDecodeTokens = 16;
// Prefill runs the experts in waves whose per-call scratch stays under this many bytes (see run_prefill).
constexpr int64_t kWaveBytes = 16 << 20;

// ARK_MOE_DECODE_TOKENS (0: always the step-by-step schedule) and ARK_MOE_WAVE_BYTES override the two
// constants, read at each call, so schedules can be compared on one machine and tests can force small waves;
// ARK_MOE_KERNEL_SCRATCH=0 withholds the kernels' heap scratch (their stack path, same bytes), so the two
// paths can be compared in one process.
int64_t env_or(const char* name, int64_t fallback) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  return (end != env && *end == '\0' && v >= 0) ? static_cast<int64_t>(v) : fallback;
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// Scratch carved out of one allocation per call, in 64-byte aligned pieces.
class Arena {
 public:
  size_t reserve(size_t bytes) {
    const size_t at = size_;
    size_ += (bytes + 63) / 64 * 64;
    return at;
  }
  void allocate() {
    if (size_ == 0) return;
    data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, size_)));
    if (!data_) throw std::bad_alloc();
  }
  template <typename T>
  T* at(size_t offset) {
    return reinterpret_cast<T*>(data_.get() + offset);
  }

 private:
  size_t size_ = 0;
  std::unique_ptr<uint8_t, AlignedFree> data_;
};

// One layer's run over one expert's rows: its kernel, operands and where its scratch lives.
struct LayerRun {
  const QuantLinear::Impl* layer = nullptr;
  const LinearImpl* kernel = nullptr;
  LinearArgs a;
  int slot = 0;         // expert index (E for the shared expert)
  int act_class = -1;   // gate/up runs: the activation class
  float* xf = nullptr;  // run-private fp32 rows [m][kp], when the kernel cannot read its source as it is
  bool own_xf = false, own_xq = false;  // whether the run needs private fp32 / int8 rows
  // Whether the run hands its kernel bf16 rows rounded once (LinearImpl::prepare_bf16, as QuantLinear's
  // forward does), so a bf16 GEMM does not round the fp32 rows again for every panel.
  bool own_xb = false;
  size_t xf_at = 0, xq_at = 0, side_at = 0, xb_at = 0;
};

struct KernelItem {
  int run;
  int64_t m0, m1, t0, t1;
};

struct RowItem {
  int run;  // index into a stage's runs; -1: the shared gate of tokens [r0, r1)
  int64_t r0, r1;
};

inline float silu(float v) {
  return v / (1.0f + std::exp(-v));
}

inline void cpu_relax() {
  __builtin_ia32_pause();
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

int64_t rows_per_chunk(int64_t row_elems, int64_t elems) {
  return std::max<int64_t>(1, elems / std::max<int64_t>(1, row_elems));
}

LayerRun make_run(const QuantLinear& layer, int slot, int64_t rows) {
  LayerRun r;
  r.layer = &QuantLinear::Impl::of(layer);
  r.slot = slot;
  r.kernel = rows < r.layer->spec.kernel_switch_threshold ? r.layer->small_m : r.layer->large_m;
  r.a.m = rows;
  r.a.y_dtype = DType::F32;
  r.a.bias = r.layer->packed.bias.empty() ? nullptr : r.layer->packed.bias.data();
  return r;
}

bool int8_of(const LayerRun& r) {
  return r.layer->mode == ComputeMode::kInt8;
}

bool takes_bf16_rows(const LayerRun& r) {
  return !int8_of(r) && r.kernel->prepare_bf16 != nullptr;
}

void reserve_run(Arena& arena, LayerRun& r) {
  const PackedWeight& w = r.layer->packed;
  const int64_t m = r.a.m, kp = w.k_padded();
  if (r.own_xf) r.xf_at = arena.reserve(static_cast<size_t>(m * kp) * 4);
  if (r.own_xq) {
    r.xq_at = arena.reserve(static_cast<size_t>(m * kp));
    r.side_at = arena.reserve(static_cast<size_t>(m * w.num_groups) * 8);
  }
  if (r.own_xb) r.xb_at = arena.reserve(static_cast<size_t>(m * kp) * 2);
}

void bind_run(Arena& arena, LayerRun& r) {
  const PackedWeight& w = r.layer->packed;
  const int64_t kp = w.k_padded();
  if (r.own_xf) {
    r.xf = arena.at<float>(r.xf_at);
    r.a.x = r.xf;
    r.a.ldx = kp;
  }
  if (r.own_xq) {
    r.a.xq = arena.at<int8_t>(r.xq_at);
    r.a.ldxq = kp;
    float* side = arena.at<float>(r.side_at);
    r.a.x_scale = side;
    r.a.xq_sum = reinterpret_cast<int32_t*>(side + r.a.m * w.num_groups);
  }
  if (r.own_xb) {
    r.a.xb = arena.at<uint16_t>(r.xb_at);
    r.a.ldxb = kp;
  }
}

// Rows [r0, r1) of a run whose fp32 rows (a.x, a.ldx) are ready: quantized (int8 mode) or rounded to bf16
// (a run with own_xb).
void prepare_run_rows(const LayerRun& r, int64_t r0, int64_t r1) {
  if (r.own_xb)
    r.kernel->prepare_bf16(r.a.x, r.a.ldx, r0, r1, r.layer->packed.k_padded(), const_cast<uint16_t*>(r.a.xb),
                           r.a.ldxb);
  if (!int8_of(r)) return;
  r.layer->quantize_rows(r.layer->packed, r.a.x, r.a.ldx, r0, r1, const_cast<int8_t*>(r.a.xq), r.a.ldxq,
                         const_cast<float*>(r.a.x_scale), const_cast<int32_t*>(r.a.xq_sum));
}

// Work items of a kernel stage: each run cut into row blocks (the kernel's m_block; decode kernels take all
// rows at once so each weight byte streams once) and N-tile ranges, sized so that the stage splits into about
// 4 items per thread in proportion to each item's cost (weight bytes streamed plus row work).
void add_kernel_items(const std::vector<LayerRun>& runs, int threads, std::vector<KernelItem>& items) {
  auto cost = [](const LayerRun& r, int64_t rows, int64_t tiles) {
    const PackedWeight& w = r.layer->packed;
    return static_cast<double>(tiles) * static_cast<double>(w.k_blocks) * static_cast<double>(w.bits + rows);
  };
  double total = 0;
  for (const LayerRun& r : runs) total += cost(r, r.a.m, r.layer->packed.n_tiles);
  const double target = total / (4.0 * threads);
  for (int i = 0; i < static_cast<int>(runs.size()); ++i) {
    const LayerRun& r = runs[i];
    const int64_t M = r.a.m, tiles = r.layer->packed.n_tiles;
    const int64_t m_block = r.kernel->m_block > 0 ? r.kernel->m_block : M;
    for (int64_t m0 = 0; m0 < M; m0 += m_block) {
      const int64_t m1 = std::min(M, m0 + m_block);
      const int64_t parts =
          threads == 1 ? 1 : std::clamp<int64_t>(std::llround(cost(r, m1 - m0, tiles) / target), 1, tiles);
      const int64_t base = tiles / parts, extra = tiles % parts;
      for (int64_t p = 0; p < parts; ++p) {
        const int64_t t0 = p * base + std::min(p, extra), t1 = t0 + base + (p < extra ? 1 : 0);
        items.push_back({i, m0, m1, t0, t1});
      }
    }
  }
}

// `slice`: the running thread's scratch slice (null when the call has none), handed to kernels that ask for
// heap scratch.
void run_item(const std::vector<LayerRun>& runs, const KernelItem& it, void* slice) {
  const LayerRun& r = runs[it.run];
  if (slice == nullptr || r.kernel->scratch_bytes == nullptr) {
    r.kernel->run(r.layer->packed, r.a, it.m0, it.m1, it.t0, it.t1);
    return;
  }
  LinearArgs a = r.a;
  a.scratch = slice;
  r.kernel->run(r.layer->packed, a, it.m0, it.m1, it.t0, it.t1);
}

// One call's plan and scratch.
class MoeCall {
 public:
  MoeCall(const QuantMoE::Impl& im, const float* x, const int32_t* ids, const float* weights, float* y,
          int64_t T)
      : im_(im),
        x_(x),
        ids_(ids),
        w_(weights),
        y_(y),
        T_(T),
        H_(im.spec.hidden_size),
        E_(im.spec.num_experts),
        k_(im.spec.top_k),
        S_(im.num_slots()),
        pool_(default_thread_pool()) {
    threads_ =
        im.spec.num_threads == 0 ? pool_.num_threads() : std::min(im.spec.num_threads, pool_.num_threads());
    group();
  }

  void run() {
    if (im_.has_shared()) sg_.resize(static_cast<size_t>(T_));
    // A call this small finishes before a worker would wake up.
    double work = 0;
    for (int s = 0; s < S_; ++s)
      work += static_cast<double>(rows(s)) * 2.0 * static_cast<double>(im_.experts[s].intermediate) * H_;
    if (work < 256.0 * 1024.0) threads_ = 1;
    if (T_ <= env_or("ARK_MOE_DECODE_TOKENS", kDecodeTokens)) {
      plan(true, 0, S_);
      run_decode();
    } else {
      run_prefill();
    }
  }

 private:
  // Counting sort of the (token, slot) pairs by expert: rows [offset[s], offset[s+1]) belong to slot s, in
  // token order; pos[t*k + j] is the row of token t's slot j.
  void group() {
    offset_.assign(static_cast<size_t>(S_ + 1), 0);
    for (int64_t i = 0; i < T_ * k_; ++i) ++offset_[ids_[i] + 1];
    if (im_.has_shared()) offset_[E_ + 1] = T_;
    for (int s = 0; s < S_; ++s) offset_[s + 1] += offset_[s];
    row_token_.resize(static_cast<size_t>(offset_[S_]));
    pos_.resize(static_cast<size_t>(T_ * k_));
    std::vector<int64_t> fill(offset_.begin(), offset_.end() - 1);
    for (int64_t t = 0; t < T_; ++t)
      for (int j = 0; j < k_; ++j) {
        const int64_t r = fill[ids_[t * k_ + j]]++;
        row_token_[r] = t;
        pos_[t * k_ + j] = r;
      }
    if (im_.has_shared())
      for (int64_t t = 0; t < T_; ++t) row_token_[offset_[E_] + t] = t;
  }

  int64_t rows(int s) const { return offset_[s + 1] - offset_[s]; }

  // Whether a run's rows can point into its class's prepared token rows (one token, or every token in order).
  bool direct(const LayerRun& r) const {
    return r.a.m == 1 || (r.a.m == T_ && r.slot == E_ && im_.has_shared());
  }

  // Runs and scratch for slots [lo, hi) (every slot for the decode schedule, one wave for prefill).
  void plan(bool decode, int lo, int hi) {
    up_.clear();
    down_.clear();
    arena_ = Arena();
    for (int s = lo; s < hi; ++s) {
      if (rows(s) == 0) continue;
      const MoeExpert& xp = im_.experts[s];
      if (xp.fused()) {
        up_.push_back(make_run(*xp.gate_up, s, rows(s)));
        up_.back().act_class = xp.act_class[0];
      } else {
        up_.push_back(make_run(*xp.gate, s, rows(s)));
        up_.back().act_class = xp.act_class[0];
        up_.push_back(make_run(*xp.up, s, rows(s)));
        up_.back().act_class = xp.act_class[1];
      }
      down_.push_back(make_run(*xp.down, s, rows(s)));
    }
    // gate/up operands. Prefill: private rows per run, gathered (and quantized) from x. Decode: prepared once
    // per class and token (x itself when the packed K is the identity in exact mode), private rows only for
    // an expert with several tokens.
    if (decode) {
      class_used_.assign(im_.act_classes.size(), 0);
      for (const LayerRun& r : up_) class_used_[r.act_class] = 1;
      cls_.resize(im_.act_classes.size());
      for (size_t c = 0; c < cls_.size(); ++c) {
        if (!class_used_[c]) continue;
        const QuantLinear::Impl& l = *im_.act_classes[c];
        const PackedWeight& w = l.packed;
        ClassRows& cr = cls_[c];
        cr.own_xf = !w.identity_k;
        if (cr.own_xf) cr.xf_at = arena_.reserve(static_cast<size_t>(T_ * w.k_padded()) * 4);
        if (l.mode == ComputeMode::kInt8) {
          cr.xq_at = arena_.reserve(static_cast<size_t>(T_ * w.k_padded()));
          cr.side_at = arena_.reserve(static_cast<size_t>(T_ * w.num_groups) * 8);
        }
      }
      for (LayerRun& r : up_) {
        if (direct(r)) continue;
        r.own_xf = !int8_of(r);
        r.own_xq = int8_of(r);
      }
    } else {
      for (LayerRun& r : up_) {
        // int8 over an identity packed K quantizes straight from x's rows.
        r.own_xf = !(int8_of(r) && r.layer->packed.identity_k);
        r.own_xq = int8_of(r);
        r.own_xb = takes_bf16_rows(r);
      }
    }
    // (Decode gate/up runs copy or point into class rows and are not prepared: a bf16 kernel there rounds
    // the fp32 rows itself, with the same result.)
    for (LayerRun& r : down_) {
      r.own_xf = !r.layer->packed.identity_k;
      r.own_xq = int8_of(r);
      r.own_xb = takes_bf16_rows(r);
    }
    for (LayerRun& r : up_) reserve_run(arena_, r);
    for (LayerRun& r : down_) reserve_run(arena_, r);
    // Kernel scratch: one slice per thread of the call, as large as the largest any run's kernel asks for
    // (LinearImpl::scratch_bytes, bounded by each kernel: at most 480 KiB for the bf16 GEMM), shared by the
    // up and down stages, which run one after the other. The arena thus grows by at most threads x 480 KiB
    // beyond the wave's rows, which kWaveBytes bounds; nothing when no run's kernel asks.
    slice_bytes_ = 0;
    if (env_or("ARK_MOE_KERNEL_SCRATCH", 1) != 0)
      for (const std::vector<LayerRun>* runs : {&up_, &down_})
        for (const LayerRun& r : *runs)
          if (r.kernel->scratch_bytes != nullptr)
            slice_bytes_ = std::max(slice_bytes_, (r.kernel->scratch_bytes(r.layer->packed) + 63) / 64 * 64);
    const size_t slices_at = arena_.reserve(slice_bytes_ * static_cast<size_t>(threads_));
    // Per expert with rows: gate/up outputs [c][2I] (gate in columns [0, I), up in [I, 2I)) and h [c][I].
    gu_at_.assign(S_, 0);
    h_at_.assign(S_, 0);
    for (const LayerRun& r : down_) {
      const int64_t c = r.a.m, I = im_.experts[r.slot].intermediate;
      gu_at_[r.slot] = arena_.reserve(static_cast<size_t>(c * 2 * I) * 4);
      h_at_[r.slot] = arena_.reserve(static_cast<size_t>(c * I) * 4);
    }
    const size_t yo_at = arena_.reserve(static_cast<size_t>((offset_[hi] - offset_[lo]) * H_) * 4);
    arena_.allocate();
    yo_ = arena_.at<float>(yo_at);
    slices_ = slice_bytes_ > 0 ? arena_.at<uint8_t>(slices_at) : nullptr;
    yo_base_ = offset_[lo];
    for (size_t c = 0; c < cls_.size(); ++c) {
      if (!class_used_[c]) continue;
      const QuantLinear::Impl& l = *im_.act_classes[c];
      ClassRows& cr = cls_[c];
      cr.ldx = cr.own_xf ? l.packed.k_padded() : H_;
      cr.xf = cr.own_xf ? arena_.at<float>(cr.xf_at) : x_;
      if (l.mode == ComputeMode::kInt8) {
        cr.xq = arena_.at<int8_t>(cr.xq_at);
        cr.scale = arena_.at<float>(cr.side_at);
        cr.sum = reinterpret_cast<int32_t*>(cr.scale + T_ * l.packed.num_groups);
      }
    }
    for (size_t i = 0; i < up_.size(); ++i) {
      LayerRun& r = up_[i];
      bind_run(arena_, r);
      const int64_t I = im_.experts[r.slot].intermediate;
      const bool second = i > 0 && up_[i - 1].slot == r.slot;  // the up layer of an unfused pair
      r.a.y = arena_.at<float>(gu_at_[r.slot]) + (second ? I : 0);
      r.a.ldy = 2 * I;
      if (decode && direct(r)) {  // point into the class rows of the run's first token
        const ClassRows& cr = cls_[r.act_class];
        const int64_t t = row_token_[offset_[r.slot]], G = r.layer->packed.num_groups;
        r.a.x = cr.xf + t * cr.ldx;
        r.a.ldx = cr.ldx;
        if (int8_of(r)) {
          r.a.xq = cr.xq + t * r.layer->packed.k_padded();
          r.a.ldxq = r.layer->packed.k_padded();
          r.a.x_scale = cr.scale + t * G;
          r.a.xq_sum = cr.sum + t * G;
        }
      }
    }
    for (LayerRun& r : down_) {
      bind_run(arena_, r);
      if (!r.own_xf) {  // identity packed K: the kernel reads h as it is
        r.a.x = arena_.at<float>(h_at_[r.slot]);
        r.a.ldx = im_.experts[r.slot].intermediate;
      }
      r.a.y = yo_ + (offset_[r.slot] - yo_base_) * H_;
      r.a.ldy = H_;
    }
  }

  // --- steps shared by both schedules -------------------------------------------------------------------

  void shared_gate_rows(int64_t t0, int64_t t1) {
    const float* g = im_.shared_gate.data();
    for (int64_t t = t0; t < t1; ++t) {
      const float* xt = x_ + t * H_;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t h = 0;
      for (; h + 8 <= H_; h += 8)
        for (int l = 0; l < 8; ++l) acc[l] += xt[h + l] * g[h + l];
      float dot = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      for (; h < H_; ++h) dot += xt[h] * g[h];
      sg_[t] = 1.0f / (1.0f + std::exp(-dot));
    }
  }

  // Prefill: rows [r0, r1) of an up run gathered from x (and quantized; straight from x's rows when the
  // packed K is the identity).
  void up_rows_from_x(const LayerRun& r, int64_t r0, int64_t r1) {
    const PackedWeight& w = r.layer->packed;
    const int64_t base = offset_[r.slot], kp = w.k_padded(), G = w.num_groups;
    if (!r.own_xf) {
      for (int64_t m = r0; m < r1; ++m)
        r.layer->quantize_rows(
            w, x_ + row_token_[base + m] * H_, H_, 0, 1, const_cast<int8_t*>(r.a.xq) + m * kp, kp,
            const_cast<float*>(r.a.x_scale) + m * G, const_cast<int32_t*>(r.a.xq_sum) + m * G);
      return;
    }
    for (int64_t m = r0; m < r1; ++m)
      gather_activation_rows(w, x_ + row_token_[base + m] * H_, DType::F32, 0, 1, r.xf + m * kp, kp);
    prepare_run_rows(r, r0, r1);
  }

  // Decode: tokens [t0, t1) of an activation class prepared once.
  void class_rows(size_t c, int64_t t0, int64_t t1) {
    const QuantLinear::Impl& l = *im_.act_classes[c];
    const PackedWeight& w = l.packed;
    ClassRows& cr = cls_[c];
    if (cr.own_xf) gather_activation_rows(w, x_, DType::F32, t0, t1, arena_.at<float>(cr.xf_at), cr.ldx);
    if (l.mode == ComputeMode::kInt8)
      l.quantize_rows(w, cr.xf, cr.ldx, t0, t1, cr.xq, w.k_padded(), cr.scale, cr.sum);
  }

  // Decode: an up run with several tokens copies its rows from the class rows.
  void up_rows_from_class(const LayerRun& r) {
    const ClassRows& cr = cls_[r.act_class];
    const PackedWeight& w = r.layer->packed;
    const int64_t base = offset_[r.slot], kp = w.k_padded(), G = w.num_groups;
    for (int64_t m = 0; m < r.a.m; ++m) {
      const int64_t t = row_token_[base + m];
      if (int8_of(r)) {
        std::memcpy(const_cast<int8_t*>(r.a.xq) + m * kp, cr.xq + t * kp, static_cast<size_t>(kp));
        std::memcpy(const_cast<float*>(r.a.x_scale) + m * G, cr.scale + t * G, static_cast<size_t>(G) * 4);
        std::memcpy(const_cast<int32_t*>(r.a.xq_sum) + m * G, cr.sum + t * G, static_cast<size_t>(G) * 4);
      } else {
        std::memcpy(r.xf + m * kp, cr.xf + t * cr.ldx, static_cast<size_t>(cr.own_xf ? kp : w.k) * 4);
      }
    }
  }

  // h = silu(gate) * up for rows [r0, r1) of down run `di`, then the down layer's activations.
  void act_rows(const LayerRun& r, int64_t r0, int64_t r1) {
    const int64_t I = im_.experts[r.slot].intermediate;
    const float* gu = arena_.at<float>(gu_at_[r.slot]);
    float* h = arena_.at<float>(h_at_[r.slot]);
    for (int64_t m = r0; m < r1; ++m) {
      const float* g = gu + m * 2 * I;
      float* hm = h + m * I;
      for (int64_t c = 0; c < I; ++c) hm[c] = silu(g[c]) * g[I + c];
    }
    if (r.own_xf)
      gather_activation_rows(r.layer->packed, h, DType::F32, r0, r1, r.xf, r.layer->packed.k_padded());
    prepare_run_rows(r, r0, r1);
  }

  // y[t] = sum_j weights[t][j] * yo[pos[t][j]] (+ sg[t] * shared row) over columns [h0, h1).
  void reduce(int64_t t0, int64_t t1, int64_t h0, int64_t h1) {
    const int64_t shared_base = im_.has_shared() ? offset_[E_] : -1;
    for (int64_t t = t0; t < t1; ++t) {
      float* yt = y_ + t * H_;
      const float w0 = w_[t * k_];
      const float* r0 = yo_ + pos_[t * k_] * H_;
      for (int64_t h = h0; h < h1; ++h) yt[h] = w0 * r0[h];
      for (int j = 1; j < k_; ++j) {
        const float wj = w_[t * k_ + j];
        const float* rj = yo_ + pos_[t * k_ + j] * H_;
        for (int64_t h = h0; h < h1; ++h) yt[h] += wj * rj[h];
      }
      if (shared_base >= 0) {
        const float gs = sg_[t];
        const float* rs = yo_ + (shared_base + t) * H_;
        for (int64_t h = h0; h < h1; ++h) yt[h] += gs * rs[h];
      }
    }
  }

  void shared_gate_all() {
    if (!im_.has_shared()) return;
    if (im_.shared_gate.empty())
      std::fill(sg_.begin(), sg_.end(), 1.0f);
    else
      shared_gate_rows(0, T_);
  }

  // --- the decode schedule: one region -----------------------------------------------------------------

  void run_decode() {
    // On the calling thread: a few tokens' activations per class, the copies for experts with several
    // tokens, the shared gate.
    for (size_t c = 0; c < cls_.size(); ++c)
      if (class_used_[c]) class_rows(c, 0, T_);
    for (const LayerRun& r : up_)
      if (!direct(r)) up_rows_from_class(r);
    shared_gate_all();

    std::vector<KernelItem> up_items, down_items;
    add_kernel_items(up_, threads_, up_items);
    add_kernel_items(down_, threads_, down_items);
    const int64_t n_up = static_cast<int64_t>(up_items.size()),
                  n_down = static_cast<int64_t>(down_items.size());
    // Per slot: gate/up items left, and its down items [down_begin[s], down_begin[s+1]) (they follow run
    // order, and down runs follow slot order).
    std::unique_ptr<std::atomic<int64_t>[]> left(new std::atomic<int64_t>[S_]);
    for (int s = 0; s < S_; ++s) left[s].store(0, std::memory_order_relaxed);
    for (const KernelItem& it : up_items) left[up_[it.run].slot].fetch_add(1, std::memory_order_relaxed);
    std::vector<int> down_of(S_, -1);
    for (int i = 0; i < static_cast<int>(down_.size()); ++i) down_of[down_[i].slot] = i;
    std::vector<int64_t> down_begin(down_.size() + 1, 0);
    for (const KernelItem& it : down_items) ++down_begin[it.run + 1];
    for (size_t i = 0; i < down_.size(); ++i) down_begin[i + 1] += down_begin[i];
    // Down items become ready, expert by expert, in the order the act steps finish: an append-only list
    // (entries -1 until written) that threads take from in order. A thread waits only when every gate/up item
    // is taken and no down item is ready yet, i.e. when there is nothing it could do.
    std::unique_ptr<std::atomic<int64_t>[]> ready(new std::atomic<int64_t>[n_down]);
    for (int64_t i = 0; i < n_down; ++i) ready[i].store(-1, std::memory_order_relaxed);
    std::atomic<int64_t> next_up{0}, next_ready{0}, appended{0};
    auto task = [&](int64_t me) {
      for (int64_t i; (i = next_up.fetch_add(1, std::memory_order_relaxed)) < n_up;) {
        const KernelItem& it = up_items[i];
        run_item(up_, it, slice(me));
        const int s = up_[it.run].slot;
        if (left[s].fetch_sub(1, std::memory_order_acq_rel) != 1) continue;
        const int d = down_of[s];
        act_rows(down_[d], 0, down_[d].a.m);  // the expert's last gate/up item: its act step
        const int64_t b = down_begin[d], e = down_begin[d + 1];
        const int64_t at = appended.fetch_add(e - b, std::memory_order_relaxed);
        for (int64_t j = b; j < e; ++j) ready[at + j - b].store(j, std::memory_order_release);
      }
      for (int64_t p; (p = next_ready.fetch_add(1, std::memory_order_relaxed)) < n_down;) {
        int64_t j;
        for (int spin = 0; (j = ready[p].load(std::memory_order_acquire)) < 0; ++spin) {
          // Spin briefly, then give the core away: on an oversubscribed machine the thread this one waits
          // for may need it.
          if (spin < 4096)
            cpu_relax();
          else
            std::this_thread::yield();
        }
        run_item(down_, down_items[j], slice(me));
      }
    };
    pool_.parallel_for(threads_, task, threads_);
    reduce_all();
  }

  void reduce_all() {
    if (T_ * H_ * (k_ + 1) < (1 << 17) || threads_ == 1) {
      reduce(0, T_, 0, H_);
      return;
    }
    const int64_t h_step = std::min<int64_t>(H_, 512), h_parts = ceil_div(H_, h_step);
    const int64_t t_step = rows_per_chunk(H_ * (k_ + 1), 1 << 15), t_parts = ceil_div(T_, t_step);
    pool_.parallel_for(
        t_parts * h_parts,
        [&](int64_t i) {
          const int64_t t0 = (i / h_parts) * t_step, h0 = (i % h_parts) * h_step;
          reduce(t0, std::min(T_, t0 + t_step), h0, std::min(H_, h0 + h_step));
        },
        threads_);
  }

  // --- the prefill schedule: one region per step -------------------------------------------------------

  // Prefill scratch per row of slot s, in bytes (sizes the waves): gate/up activations, [gate | up]
  // outputs, h, down activations (fp32, and int8 or bf16), the output row.
  int64_t row_bytes(int s) const {
    const int64_t I = im_.experts[s].intermediate;
    return H_ * 9 + I * 12 + I * 6 + H_ * 4 + 256;
  }

  void run_prefill() {
    // The shared expert's gate for every token; y starts at zero and each wave adds its experts' rows.
    {
      const bool gated = im_.has_shared() && !im_.shared_gate.empty();
      const int64_t g_step = rows_per_chunk(H_, 1 << 16), z_step = rows_per_chunk(H_, 1 << 16);
      const int64_t g_items = gated ? ceil_div(T_, g_step) : 0, z_items = ceil_div(T_, z_step);
      if (im_.has_shared() && !gated) std::fill(sg_.begin(), sg_.end(), 1.0f);
      pool_.parallel_for(
          g_items + z_items,
          [&](int64_t i) {
            if (i < g_items) {
              shared_gate_rows(i * g_step, std::min(T_, (i + 1) * g_step));
            } else {
              const int64_t t0 = (i - g_items) * z_step, t1 = std::min(T_, t0 + z_step);
              std::fill(y_ + t0 * H_, y_ + t1 * H_, 0.0f);
            }
          },
          threads_);
    }
    // Each token's slots in increasing expert id: the order the waves add them in, whatever the waves are.
    order_.resize(static_cast<size_t>(T_ * k_));
    for (int64_t t = 0; t < T_; ++t) {
      int32_t* o = order_.data() + t * k_;
      for (int j = 0; j < k_; ++j) o[j] = j;
      std::stable_sort(o, o + k_, [&](int32_t a, int32_t b) { return ids_[t * k_ + a] < ids_[t * k_ + b]; });
    }
    // Waves of consecutive experts whose scratch stays under kWaveBytes, so the intermediate rows stay in
    // cache and the scratch in reused heap memory; every expert is in exactly one wave, so its weights still
    // stream once per call.
    const int64_t wave_bytes = env_or("ARK_MOE_WAVE_BYTES", kWaveBytes);
    for (int lo = 0; lo < S_;) {
      int hi = lo;
      int64_t bytes = 0;
      while (hi < S_ && (bytes == 0 || bytes + rows(hi) * row_bytes(hi) <= wave_bytes)) {
        bytes += rows(hi) * row_bytes(hi);
        ++hi;
      }
      plan(false, lo, hi);
      if (!up_.empty()) run_wave(lo, hi);
      lo = hi;
    }
  }

  void run_wave(int lo, int hi) {
    {
      std::vector<RowItem> items;
      for (int i = 0; i < static_cast<int>(up_.size()); ++i) {
        const int64_t M = up_[i].a.m, step = rows_per_chunk(H_, 1 << 15);
        for (int64_t r0 = 0; r0 < M; r0 += step) items.push_back({i, r0, std::min(M, r0 + step)});
      }
      pool_.parallel_for(
          static_cast<int64_t>(items.size()),
          [&](int64_t i) { up_rows_from_x(up_[items[i].run], items[i].r0, items[i].r1); }, threads_);
    }
    run_kernels(up_);
    {
      std::vector<RowItem> items;
      for (int i = 0; i < static_cast<int>(down_.size()); ++i) {
        const int64_t M = down_[i].a.m, I = im_.experts[down_[i].slot].intermediate;
        const int64_t step = rows_per_chunk(I, 1 << 13);
        for (int64_t r0 = 0; r0 < M; r0 += step) items.push_back({i, r0, std::min(M, r0 + step)});
      }
      pool_.parallel_for(
          static_cast<int64_t>(items.size()),
          [&](int64_t i) { act_rows(down_[items[i].run], items[i].r0, items[i].r1); }, threads_);
    }
    run_kernels(down_);
    // y[t] += w[t][j] * row of (t, j) for the slots of this wave, in increasing expert id, then the shared
    // expert's term.
    const int64_t h_step = std::min<int64_t>(H_, 512), h_parts = ceil_div(H_, h_step);
    const int64_t t_step = rows_per_chunk(H_, 1 << 15), t_parts = ceil_div(T_, t_step);
    const bool shared_here = im_.has_shared() && lo <= E_ && E_ < hi;
    pool_.parallel_for(
        t_parts * h_parts,
        [&](int64_t i) {
          const int64_t t0 = (i / h_parts) * t_step, t1 = std::min(T_, t0 + t_step);
          const int64_t h0 = (i % h_parts) * h_step, h1 = std::min(H_, h0 + h_step);
          for (int64_t t = t0; t < t1; ++t) {
            float* yt = y_ + t * H_;
            for (int idx = 0; idx < k_; ++idx) {
              const int j = order_[t * k_ + idx];
              const int32_t e = ids_[t * k_ + j];
              if (e < lo || e >= hi) continue;
              const float wj = w_[t * k_ + j];
              const float* r = yo_ + (pos_[t * k_ + j] - yo_base_) * H_;
              for (int64_t h = h0; h < h1; ++h) yt[h] += wj * r[h];
            }
            if (shared_here) {
              const float gs = sg_[t];
              const float* r = yo_ + (offset_[E_] + t - yo_base_) * H_;
              for (int64_t h = h0; h < h1; ++h) yt[h] += gs * r[h];
            }
          }
        },
        threads_);
  }

  void run_kernels(const std::vector<LayerRun>& runs) {
    std::vector<KernelItem> items;
    add_kernel_items(runs, threads_, items);
    const int64_t n = static_cast<int64_t>(items.size());
    if (slices_ == nullptr) {
      pool_.parallel_for(
          n, [&](int64_t i) { run_item(runs, items[i], nullptr); }, threads_);
      return;
    }
    // With scratch: one task per thread, each owning slice `task` and taking items in order from a shared
    // counter, as QuantLinear::forward runs them (a task the pool runs on a busy caller's thread finds the
    // items taken or takes them all).
    std::atomic<int64_t> next{0};
    pool_.parallel_for(
        threads_,
        [&](int64_t task) {
          for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;)
            run_item(runs, items[i], slice(task));
        },
        threads_);
  }

  // Task `task`'s kernel scratch slice (tasks are numbered [0, threads_) in every region that hands slices).
  void* slice(int64_t task) const {
    return slices_ == nullptr ? nullptr : slices_ + static_cast<size_t>(task) * slice_bytes_;
  }

  struct ClassRows {
    bool own_xf = false;
    size_t xf_at = 0, xq_at = 0, side_at = 0;
    const float* xf = nullptr;
    int64_t ldx = 0;
    int8_t* xq = nullptr;
    float* scale = nullptr;
    int32_t* sum = nullptr;
  };

  const QuantMoE::Impl& im_;
  const float* x_;
  const int32_t* ids_;
  const float* w_;
  float* y_;
  const int64_t T_, H_;
  const int E_, k_, S_;
  ThreadPool& pool_;
  int threads_ = 1;
  std::vector<int64_t> offset_, row_token_, pos_;
  std::vector<LayerRun> up_, down_;
  std::vector<ClassRows> cls_;
  std::vector<char> class_used_;
  Arena arena_;
  std::vector<size_t> gu_at_, h_at_;
  float* yo_ = nullptr;
  int64_t yo_base_ = 0;         // row of yo_[0] in the call's sorted rows
  size_t slice_bytes_ = 0;      // bytes per kernel scratch slice (0: none)
  uint8_t* slices_ = nullptr;   // threads_ slices in arena_, or null
  std::vector<float> sg_;       // the shared expert's gate per token
  std::vector<int32_t> order_;  // prefill: each token's slots in increasing expert id
};

}  // namespace

void QuantMoE::forward(const float* x, const float* router_logits, float* y, int64_t T) const {
  const Impl& im = *impl_;
  ARK_CHECK(im.ready.load(std::memory_order_acquire),
            "QuantMoE::forward: call post_init() after loading every expert");
  ARK_CHECK(T >= 0, "QuantMoE::forward: T = ", T, " must be >= 0");
  if (T == 0) return;
  ARK_CHECK(router_logits != nullptr, "QuantMoE::forward: router_logits is null");
  check_router_logits(im.spec, router_logits, T);
  const int E = im.spec.num_experts, k = im.spec.top_k;
  std::vector<int32_t> ids(static_cast<size_t>(T * k));
  std::vector<float> weights(static_cast<size_t>(T * k));
  ThreadPool& pool = default_thread_pool();
  const int threads =
      im.spec.num_threads == 0 ? pool.num_threads() : std::min(im.spec.num_threads, pool.num_threads());
  // Routing is T·E exponentials: split over threads only when there are many tokens.
  const int64_t chunk = rows_per_chunk(E, 1 << 14);
  const int64_t parts = threads == 1 ? 1 : ceil_div(T, chunk);
  std::vector<float> scratch(static_cast<size_t>(parts * E));
  pool.parallel_for(
      parts,
      [&](int64_t p) {
        const int64_t t0 = p * chunk, t1 = parts == 1 ? T : std::min(T, t0 + chunk);
        route_tokens(im.spec, router_logits, parts == 1 ? 0 : t0, t1, ids.data(), weights.data(),
                     scratch.data() + p * E);
      },
      threads);
  forward_routed(x, ids.data(), weights.data(), y, T);
}

void QuantMoE::forward_routed(const float* x, const int32_t* ids, const float* weights, float* y,
                              int64_t T) const {
  const Impl& im = *impl_;
  ARK_CHECK(im.ready.load(std::memory_order_acquire),
            "QuantMoE::forward_routed: call post_init() after loading every expert");
  ARK_CHECK(T >= 0, "QuantMoE::forward_routed: T = ", T, " must be >= 0");
  if (T == 0) return;
  ARK_CHECK(x != nullptr && y != nullptr, "QuantMoE::forward_routed: x or y is null");
  ARK_CHECK(ids != nullptr && weights != nullptr, "QuantMoE::forward_routed: ids or weights is null");
  const int E = im.spec.num_experts, k = im.spec.top_k;
  for (int64_t i = 0; i < T * k; ++i)
    ARK_CHECK(ids[i] >= 0 && ids[i] < E, "QuantMoE::forward_routed: ids[", i / k, "][", i % k, "] = ", ids[i],
              " is not an expert id in [0, ", E, ")");
  MoeCall call(im, x, ids, weights, y, T);
  call.run();
}

}  // namespace ark
