// `ark perplexity`: perplexity of a checkpoint over a text file, in windows as llama.cpp's tool computes it.
//
//   ark perplexity --model DIR --file TEXT [--ctx 256] [--stride S] [--max-windows W] [--threads N]
//                  [--mode auto|exact|int8] [--json-out F]
//
// The whole file is tokenized at once (no BOS or other special tokens added), cut into windows of --ctx
// tokens every --stride tokens (default: --ctx, so windows do not overlap; a tail shorter than a window is
// dropped), and each window runs from an empty cache. Of each window only the predictions of its last
// ctx - ctx/2 - 1 tokens are scored (positions ctx/2 .. ctx-2 predicting the next token), so every scored
// token has at least ctx/2 tokens of context. ark/perplexity.h has the details. The figure goes to stdout;
// the progress bar and speeds go to stderr.
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "ark/error.h"
#include "ark/model.h"
#include "ark/perplexity.h"
#include "ark/thread_pool.h"
#include "ark/tokenizer.h"
#include "commands.h"

namespace ark::tools {

namespace {

struct PerplexityArgs {
  std::string model, file, mode = "auto", json_out;
  int64_t ctx = 256, stride = 0, max_windows = 0;
  int threads = 0;
  bool no_progress = false;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ARK_CHECK(in, "--file: cannot open '", path, "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void run(const PerplexityArgs& a) {
  ARK_CHECK(a.threads >= 0, "--threads ", a.threads, " must be >= 0 (0: all)");
  ARK_CHECK(a.ctx >= 4, "--ctx ", a.ctx, " must be at least 4");
  ARK_CHECK(a.stride >= 0 && a.max_windows >= 0, "--stride and --max-windows must be >= 0 (0: default)");
  const std::string text = read_file(a.file);
  const Tokenizer tokenizer = Tokenizer::load(a.model);
  const std::vector<int32_t> tokens = tokenizer.encode(text, /*add_special_tokens=*/false);

  if (a.threads > 0) set_default_num_threads(a.threads);
  LoadOptions lo;
  lo.mode = parse_compute_mode(a.mode);
  lo.max_model_len = 0;
  const Model model = Model::load(a.model, lo);
  ARK_CHECK(tokenizer.vocab_size() <= model.config().vocab_size, a.model, ": the tokenizer has ",
            tokenizer.vocab_size(), " ids but the model's vocabulary is ", model.config().vocab_size);

  PerplexityOptions po;
  po.ctx = a.ctx;
  po.stride = a.stride;
  po.max_windows = a.max_windows;
  const int64_t windows = static_cast<int64_t>(perplexity_window_starts(tokens.size(), po).size());
  std::cerr << a.file << ": " << text.size() << " bytes, " << tokens.size() << " tokens; " << windows
            << " windows of " << a.ctx << " tokens (stride " << (a.stride ? a.stride : a.ctx)
            << "), each scoring its last " << a.ctx - a.ctx / 2 - 1 << "; " << model.plan().quant_summary
            << ", mode " << a.mode << ", " << default_thread_pool().num_threads() << " threads\n";
  const bool bar = !a.no_progress && isatty(fileno(stderr));
  const auto start = std::chrono::steady_clock::now();
  int last_pct = -1;
  po.progress = [&](int64_t done, int64_t total, double nll, int64_t scored) {
    const int pct = static_cast<int>(100 * done / total);
    if (!bar && pct / 10 == last_pct / 10 && done != total) return;  // a line per 10% when not a terminal
    if (bar && pct == last_pct && done != total) return;
    last_pct = pct;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    constexpr int kWidth = 30;
    const int filled = pct * kWidth / 100;
    std::fprintf(stderr, "%s[%.*s%*s] %3d%% %lld/%lld windows  ppl %.4f  %.0f tokens/s%s", bar ? "\r" : "",
                 filled, "##############################", kWidth - filled, "", pct,
                 static_cast<long long>(done), static_cast<long long>(total), std::exp(nll / scored),
                 done * a.ctx / std::max(el, 1e-9), bar ? "" : "\n");
    std::fflush(stderr);
  };
  const PerplexityResult r = compute_perplexity(model, tokens, po);
  if (bar) std::fprintf(stderr, "\n");
  std::printf(
      "perplexity %.4f (mean nll %.6f) over %lld scored tokens in %zu windows of %lld; %.0f tokens/s\n",
      r.perplexity(), r.mean_nll(), static_cast<long long>(r.scored), r.windows.size(),
      static_cast<long long>(a.ctx), r.tokens_per_second());
  if (!a.json_out.empty()) {
    nlohmann::json j = {{"model", a.model},
                        {"file", a.file},
                        {"tokens", tokens.size()},
                        {"ctx", a.ctx},
                        {"stride", a.stride ? a.stride : a.ctx},
                        {"mode", a.mode},
                        {"quantization", model.plan().quant_summary},
                        {"perplexity", r.perplexity()},
                        {"nll_sum", r.nll_sum},
                        {"scored", r.scored},
                        {"seconds", r.seconds},
                        {"tokens_per_second", r.tokens_per_second()},
                        {"threads", default_thread_pool().num_threads()}};
    nlohmann::json w = nlohmann::json::array();
    for (const PerplexityWindow& x : r.windows)
      w.push_back({{"start", x.start}, {"nll_sum", x.nll_sum}, {"scored", x.scored}});
    j["windows"] = w;
    std::ofstream out(a.json_out);
    out << j.dump(1) << "\n";
    ARK_CHECK(out.good(), "--json-out: cannot write '", a.json_out, "'");
  }
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  auto a = std::make_shared<PerplexityArgs>();
  CLI::App* c = app.add_subcommand(
      "perplexity",
      "Perplexity over a text file (llama.cpp-style windows): the file is tokenized whole without special "
      "tokens and cut into windows of --ctx tokens every --stride tokens, each run from an empty cache; each "
      "window scores only the predictions of its last ctx-ctx/2-1 tokens (positions ctx/2..ctx-2 predicting "
      "the next), so every scored token has at least ctx/2 tokens of context");
  c->add_option("--model", a->model, "checkpoint directory")->required();
  c->add_option("--file", a->file, "text file (UTF-8)")->required();
  c->add_option("--ctx", a->ctx, "tokens per window")->capture_default_str();
  c->add_option("--stride", a->stride, "tokens between window starts (0: ctx)")->capture_default_str();
  c->add_option("--max-windows", a->max_windows, "score only the first W windows (0: all)")
      ->capture_default_str();
  c->add_option("--threads", a->threads, "threads (0: all)")->capture_default_str();
  c->add_option("--mode", a->mode, "quantized compute mode: auto, exact, int8")->capture_default_str();
  c->add_option("--json-out", a->json_out, "also write the result and each window's sum as JSON");
  c->add_flag("--no-progress", a->no_progress, "no progress bar");
  c->callback([a] { run(*a); });
}

}  // namespace ark::tools
