// `ark bench model --model DIR`: whole-model figures. Load time; prompt throughput (one forward of
// --prompt-tokens random ids, best of --repeats); decode tokens/s over --decode-tokens greedy steps after
// that prompt; decode against the bandwidth floor (weight bytes one decode step reads / read bandwidth
// measured in the same run); peak resident memory against 1.2 x (packed + unquantized) + the KV cache in use.
// Figures only: it never passes or fails on time.
//
// The floor's bandwidth is read beside the decode, not once after it: a shared or virtualised host's read
// bandwidth moves by 2x within a minute (docs/PERFORMANCE.md), so a single probe says little about the
// seconds the decode ran in. The decode runs in chunks of --probe-every steps with a probe read before the
// first chunk and after each one; a chunk's floor time is its steps x bytes per step / the mean of the two
// probes beside it, and decode's share of the floor is the summed floor time over the decode time. The probe
// buffer is the only allocation beside the model, so it is left out of the peak resident memory (read before
// the probe exists, and at the end less the probe's bytes).
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <vector>

#include "../../bench/memory_bandwidth.h"
#include "ark/error.h"
#include "ark/model.h"
#include "ark/thread_pool.h"
#include "commands.h"

namespace ark::tools {

namespace {

// Under a real-time policy (chrt -f / -r) Linux lets real-time threads run only sched_rt_runtime_us of every
// sched_rt_period_us (950 of 1000 ms by default): the decode's threads, which never block, are idled the rest
// of each period, a share of its wall time that the floor's probe (a median of short calls) does not see.
// Returns that idle share, or 0 when the process is not real-time or the kernel does not throttle.
double realtime_idle_share() {
  const int policy = sched_getscheduler(0);
  if (policy != SCHED_FIFO && policy != SCHED_RR) return 0;
  long long runtime = -1, period = 0;
  std::ifstream("/proc/sys/kernel/sched_rt_runtime_us") >> runtime;
  std::ifstream("/proc/sys/kernel/sched_rt_period_us") >> period;
  if (runtime < 0 || period <= 0 || runtime >= period) return 0;
  return 1.0 - static_cast<double>(runtime) / static_cast<double>(period);
}

struct BenchModelArgs {
  std::string model, mode = "auto";
  int64_t prompt_tokens = 512, decode_tokens = 128;
  int threads = 0, repeats = 2;
  int64_t probe_every = 16;
  double bandwidth_mib = 256;
  uint64_t seed = 1;
};

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;  // Linux reports KiB
}

double current_rss_mib() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

void run(const BenchModelArgs& a) {
  ARK_CHECK(a.prompt_tokens >= 1 && a.decode_tokens >= 1, "--prompt-tokens and --decode-tokens must be >= 1");
  ARK_CHECK(a.repeats >= 1, "--repeats must be >= 1");
  ARK_CHECK(a.probe_every >= 1, "--probe-every must be >= 1");
  ARK_CHECK(a.threads >= 0, "--threads must be >= 0 (0: all)");
  if (a.threads > 0) set_default_num_threads(a.threads);
  const int threads = default_thread_pool().num_threads();
  LoadOptions lo;
  lo.mode = parse_compute_mode(a.mode);
  lo.max_model_len = 0;
  const Model m = Model::load(a.model, lo);
  const ModelConfig& c = m.config();
  ARK_CHECK(a.prompt_tokens + a.decode_tokens <= m.max_model_len(), "--prompt-tokens + --decode-tokens (",
            a.prompt_tokens + a.decode_tokens, ") exceed max-model-len ", m.max_model_len());
  const double rss_after_load = peak_rss_mib();

  std::mt19937_64 rng(a.seed);
  std::vector<int32_t> prompt(a.prompt_tokens);
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % c.vocab_size);
  std::vector<float> logits(c.vocab_size);
  using clock = std::chrono::steady_clock;

  double prompt_s = 1e30;
  KvCache cache = m.new_cache();
  for (int r = 0; r < a.repeats; ++r) {
    cache.clear();
    const auto t0 = clock::now();
    m.forward(prompt, cache, logits.data());
    prompt_s = std::min(prompt_s, std::chrono::duration<double>(clock::now() - t0).count());
  }
  // Decode: greedy steps after the prompt, so attention reads a realistic cache; a probe beside every chunk.
  const double peak_before_probe = peak_rss_mib();
  const size_t probe_bytes = static_cast<size_t>(a.bandwidth_mib * 1048576.0);
  bench::ReadBandwidthProbe probe(probe_bytes, threads);
  std::vector<double> probes{probe.measure(2)};
  // A step reads every weight once and the keys and values of every position it attends to (fp32).
  const double bytes_per_token = static_cast<double>(m.bytes_read_per_token());
  const double kv_bytes_per_position =
      2.0 * static_cast<double>(c.num_layers * c.num_kv_heads * c.head_dim) * sizeof(float);
  double decode_s = 0, floor_s = 0, kv_bytes = 0;
  for (int64_t done = 0; done < a.decode_tokens;) {
    const int64_t steps = std::min(a.probe_every, a.decode_tokens - done);
    double chunk_kv_bytes = 0;  // the step at cache size p attends to p + 1 positions
    for (int64_t i = 0; i < steps; ++i)
      chunk_kv_bytes += kv_bytes_per_position * static_cast<double>(cache.size() + i + 1);
    const auto t0 = clock::now();
    for (int64_t i = 0; i < steps; ++i) {
      const int32_t next =
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      m.forward(std::span<const int32_t>(&next, 1), cache, logits.data());
    }
    decode_s += std::chrono::duration<double>(clock::now() - t0).count();
    probes.push_back(probe.measure(2));
    const double bw = 0.5 * (probes[probes.size() - 2] + probes.back());
    floor_s += (static_cast<double>(steps) * bytes_per_token + chunk_kv_bytes) / (bw * 1e9);
    kv_bytes += chunk_kv_bytes;
    done += steps;
  }
  // The decode phase allocates only KV blocks, so its peak is its end; the probe's pages are all resident.
  const double peak =
      std::max(peak_before_probe, current_rss_mib() - static_cast<double>(probe_bytes) / 1048576.0);
  const double kv_mib = cache.bytes_allocated() / 1048576.0;

  std::vector<double> sorted = probes;
  std::sort(sorted.begin(), sorted.end());
  const double bw_median = sorted[sorted.size() / 2];
  const double decode_tps = a.decode_tokens / decode_s;
  const double floor_tps = a.decode_tokens / floor_s;
  const double weights_mib = (m.packed_bytes() + m.unquantized_bytes()) / 1048576.0;

  std::printf("model            %s (%s, %lld layers, hidden %lld, vocab %lld)\n", a.model.c_str(),
              std::string(architecture_name(c.arch)).c_str(), static_cast<long long>(c.num_layers),
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.vocab_size));
  std::printf("quantization     %s\n", m.plan().quant_summary.c_str());
  std::printf("threads          %d; kernels: decode %s, prompt %s\n", threads, m.describe_kernels(1).c_str(),
              m.describe_kernels(a.prompt_tokens).c_str());
  std::printf("load             %.2f s (peak RSS after load %.0f MiB)\n", m.load_seconds(), rss_after_load);
  std::printf("prompt           %lld tokens in %.3f s: %.1f tokens/s (best of %d)\n",
              static_cast<long long>(a.prompt_tokens), prompt_s, a.prompt_tokens / prompt_s, a.repeats);
  std::printf("decode           %lld tokens in %.3f s: %.2f tokens/s (%.2f ms/token)\n",
              static_cast<long long>(a.decode_tokens), decode_s, decode_tps,
              1e3 * decode_s / a.decode_tokens);
  std::printf(
      "bandwidth        %.1f GB/s median of %zu probes beside the decode (%.1f-%.1f; %d threads, %.0f MiB "
      "buffer)\n",
      bw_median, probes.size(), sorted.front(), sorted.back(), threads, a.bandwidth_mib);
  std::printf(
      "bandwidth floor  %.1f MB read per token (weights %.1f + KV cache %.1f, mean) -> %.2f tokens/s at the "
      "probes beside each chunk of %lld; decode at %.1f%% of the floor\n",
      (bytes_per_token + kv_bytes / a.decode_tokens) / 1e6, bytes_per_token / 1e6,
      kv_bytes / a.decode_tokens / 1e6, floor_tps, static_cast<long long>(a.probe_every),
      100.0 * decode_tps / floor_tps);
  if (const double idle = realtime_idle_share(); idle > 0)
    std::printf(
        "note             this process runs under a real-time policy, which Linux throttles: its threads are "
        "idled %.0f%% of every second (sched_rt_runtime_us), time the decode counts and the floor does not; "
        "run without chrt\n",
        100.0 * idle);
  std::printf(
      "memory           peak RSS %.0f MiB; packed %.0f + unquantized %.0f MiB; KV cache %.1f MiB in use; "
      "bound 1.2 x weights + KV = %.0f MiB (%s)\n",
      peak, m.packed_bytes() / 1048576.0, m.unquantized_bytes() / 1048576.0, kv_mib,
      1.2 * weights_mib + kv_mib, peak <= 1.2 * weights_mib + kv_mib ? "within" : "over");
}

}  // namespace

void add_bench_model_command(CLI::App& app) {
  CLI::App* bench = app.get_subcommand("bench");  // registered by add_bench_command
  auto a = std::make_shared<BenchModelArgs>();
  CLI::App* c =
      bench->add_subcommand("model", "Prompt and decode throughput of a checkpoint, against bandwidth");
  c->add_option("--model", a->model, "checkpoint directory")->required();
  c->add_option("--prompt-tokens", a->prompt_tokens, "prompt length")->capture_default_str();
  c->add_option("--decode-tokens", a->decode_tokens, "decode steps timed")->capture_default_str();
  c->add_option("--threads", a->threads, "threads (0: all)")->capture_default_str();
  c->add_option("--mode", a->mode, "quantized compute mode: auto, exact, int8")->capture_default_str();
  c->add_option("--repeats", a->repeats, "prompt runs (best is reported)")->capture_default_str();
  c->add_option("--bandwidth-mib", a->bandwidth_mib, "buffer of the bandwidth probe (well above the L3)")
      ->capture_default_str();
  c->add_option("--probe-every", a->probe_every, "decode steps between two bandwidth probes")
      ->capture_default_str();
  c->add_option("--seed", a->seed, "seed of the random prompt")->capture_default_str();
  c->callback([a] { run(*a); });
}

}  // namespace ark::tools
