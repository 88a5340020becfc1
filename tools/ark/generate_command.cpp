// `ark generate`: load a checkpoint directory and generate text, streamed as it comes. Without --model it
// runs the default model that ships with the repository (default_model.h).
//
//   ark generate [--model DIR] --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]
//                [--seed S] [--threads N] [--max-model-len L] [--block-size B]
//   ark generate --model DIR --chat [--system TEXT] [--prompt TEXT]   one chat turn, or an interactive chat
//                                                                    on the terminal without --prompt
//   ark generate --model DIR --chat --messages conv.json --print-prompt   the rendered prompt only (no
//   weights)
// Speeds go to stderr, so stdout holds exactly the generated text.
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "ark/chat_template.h"
#include "ark/error.h"
#include "ark/generator.h"
#include "ark/model.h"
#include "ark/sampler.h"
#include "ark/thread_pool.h"
#include "ark/tokenizer.h"
#include "commands.h"
#include "default_model.h"

namespace ark::tools {

namespace {

struct GenerateArgs {
  std::string model, prompt, system, messages, mode = "auto", prompt_ids, logits_out, ids_out;
  bool chat = false, print_prompt = false, no_stats = false, ignore_eos = false, no_think = false;
  int64_t max_tokens = 256, top_k = -1, max_model_len = 0, block_size = 16;
  double temperature = -1, top_p = -1;
  uint64_t seed = 0;
  int threads = 0;
  // The sampling flags as given: a flag left out takes generation_config's value (run below), so "given"
  // comes from the parser, not from a sentinel value that a user could also type.
  CLI::Option *temperature_flag = nullptr, *top_k_flag = nullptr, *top_p_flag = nullptr;
};

std::vector<ChatMessage> read_messages(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ARK_CHECK(in, "--messages: cannot open '", path, "'");
  std::ostringstream s;
  s << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(s.str());
  } catch (const nlohmann::json::exception& e) {
    throw_error("--messages '", path, "': not valid JSON (", e.what(), ")");
  }
  ARK_CHECK(j.is_array(), "--messages '", path, "': expected a list of {\"role\", \"content\"} objects");
  std::vector<ChatMessage> out;
  for (const auto& m : j) {
    ARK_CHECK(m.is_object() && m.contains("role") && m.contains("content") && m.at("role").is_string() &&
                  m.at("content").is_string(),
              "--messages '", path, "': every message needs string 'role' and 'content'");
    out.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  }
  return out;
}

// A one-line bar on stderr, redrawn only when the percentage changes.
class ProgressBar {
 public:
  void update(size_t done, size_t total) {
    const int pct = total ? static_cast<int>(100.0 * done / total) : 100;
    if (pct == last_) return;
    last_ = pct;
    constexpr int kWidth = 30;
    const int filled = pct * kWidth / 100;
    std::fprintf(stderr, "\rloading [%.*s%*s] %3d%% %.0f/%.0f MiB", filled, "##############################",
                 kWidth - filled, "", pct, done / 1048576.0, total / 1048576.0);
    std::fflush(stderr);
  }
  void finish() { std::fprintf(stderr, "\n"); }

 private:
  int last_ = -1;
};

// Common prefix length of two id sequences.
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

std::vector<int32_t> parse_id_list(const std::string& list) {
  std::vector<int32_t> ids;
  std::stringstream s(list);
  std::string item;
  while (std::getline(s, item, ',')) {
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      ARK_CHECK(used == item.size() && v >= 0 && v <= INT32_MAX, "");
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      throw_error("--prompt-ids: '", item, "' is not a token id (expected comma-separated integers)");
    }
  }
  ARK_CHECK(!ids.empty(), "--prompt-ids: no ids");
  return ids;
}

// Token ids in, ids out, no tokenizer: what the correctness tests drive. --logits-out gets the prompt's
// logits (every position, float32 little-endian [n][vocab]); --ids-out the generated ids as a JSON list.
void run_ids(const GenerateArgs& a, const Model& model, const GenerateOptions& go) {
  const std::vector<int32_t> prompt = parse_id_list(a.prompt_ids);
  if (!a.logits_out.empty()) {
    KvCache cache = model.new_cache();
    std::vector<float> logits(prompt.size() * model.config().vocab_size);
    model.forward(prompt, cache, logits.data(), /*all_logits=*/true);
    std::ofstream out(a.logits_out, std::ios::binary);
    out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * 4));
    ARK_CHECK(out.good(), "--logits-out: cannot write '", a.logits_out, "'");
  }
  KvCache cache = model.new_cache();
  const GenerateResult r = generate(model, cache, prompt, go);
  nlohmann::json ids = r.tokens;
  if (!a.ids_out.empty()) {
    std::ofstream out(a.ids_out);
    out << ids.dump() << "\n";
    ARK_CHECK(out.good(), "--ids-out: cannot write '", a.ids_out, "'");
  }
  std::cout << ids.dump() << std::endl;
  if (!a.no_stats)
    std::fprintf(stderr, "[prompt %lld tokens, %.1f tokens/s; decode %zu tokens, %.2f tokens/s%s]\n",
                 static_cast<long long>(r.prompt_tokens), r.prompt_tokens_per_second(), r.tokens.size(),
                 r.decode_tokens_per_second(), r.stopped ? "; stopped at EOS" : "");
}

void run(GenerateArgs a) {
  if (a.model.empty()) a.model = default_model_dir();
  const bool by_ids = !a.prompt_ids.empty();
  ARK_CHECK(a.chat || !a.prompt.empty() || by_ids, "give --prompt TEXT, or --chat for a conversation");
  ARK_CHECK(!by_ids || (a.prompt.empty() && !a.chat), "--prompt-ids excludes --prompt and --chat");
  ARK_CHECK(by_ids || (a.logits_out.empty() && a.ids_out.empty()),
            "--logits-out and --ids-out need --prompt-ids");
  ARK_CHECK(a.messages.empty() || a.chat, "--messages needs --chat");
  ARK_CHECK(a.system.empty() || a.chat,
            "--system needs --chat (the chat template places the system message)");
  ARK_CHECK(!a.no_think || a.chat, "--no-think needs --chat (it is a chat template variable)");
  ARK_CHECK(a.threads >= 0, "--threads ", a.threads, " must be >= 0 (0: all)");
  ARK_CHECK(a.max_tokens >= 1, "--max-tokens ", a.max_tokens, " must be at least 1");
  // The sampling flags that were given, checked by the sampler's own rules before anything is loaded or
  // printed (generate() would refuse them only after the prompt was echoed).
  const bool temperature_given = a.temperature_flag && a.temperature_flag->count() > 0;
  const bool top_k_given = a.top_k_flag && a.top_k_flag->count() > 0;
  const bool top_p_given = a.top_p_flag && a.top_p_flag->count() > 0;
  {
    SamplingParams given;
    if (temperature_given) given.temperature = a.temperature;
    if (top_k_given) given.top_k = a.top_k;
    if (top_p_given) given.top_p = a.top_p;
    const Sampler check(given);
  }
  std::optional<Tokenizer> tokenizer_holder;
  if (!by_ids) tokenizer_holder = Tokenizer::load(a.model);
  std::optional<ChatTemplate> tmpl;
  if (a.chat) tmpl = ChatTemplate::from_dir(a.model);

  std::vector<ChatMessage> conversation;
  if (!a.messages.empty()) conversation = read_messages(a.messages);
  if (!a.system.empty()) conversation.insert(conversation.begin(), {"system", a.system});
  if (a.chat && !a.prompt.empty()) conversation.push_back({"user", a.prompt});
  // enable_thinking reaches the template only with --no-think, as transformers passes only what is given.
  const std::optional<bool> think = a.no_think ? std::optional<bool>(false) : std::nullopt;
  if (a.print_prompt) {
    ARK_CHECK(a.chat ? !conversation.empty() : true,
              "--print-prompt with --chat needs --prompt or --messages");
    const std::string text = a.chat ? tmpl->render(conversation, true, think) : a.prompt;
    const auto ids = tokenizer_holder->encode(text, !a.chat);
    std::cout << text;
    std::cerr << "\n[" << ids.size() << " tokens]\n";
    return;
  }

  if (a.threads > 0) set_default_num_threads(a.threads);
  LoadOptions lo;
  lo.max_model_len = a.max_model_len;
  lo.block_size = a.block_size;
  lo.mode = parse_compute_mode(a.mode);
  ProgressBar bar;
  if (!a.no_stats && isatty(fileno(stderr)))
    lo.progress = [&bar](size_t done, size_t total) { bar.update(done, total); };
  const Model model = Model::load(a.model, lo);
  if (lo.progress) bar.finish();
  const ModelConfig& c = model.config();

  GenerateOptions go;
  go.max_tokens = a.max_tokens;
  // Flags win; otherwise generation_config's sampling when it asks for sampling, else greedy.
  const GenerationDefaults& d = c.generation;
  go.sampling.temperature = temperature_given ? a.temperature : (d.do_sample ? d.temperature : 0.0);
  go.sampling.top_k = top_k_given ? a.top_k : (d.do_sample ? d.top_k : 0);
  go.sampling.top_p = top_p_given ? a.top_p : (d.do_sample ? d.top_p : 1.0);
  go.sampling.seed = a.seed;
  try {  // the flags passed above, so what the sampler refuses here came from generation_config.json
    const Sampler check(go.sampling);
  } catch (const Error& e) {
    throw_error(a.model, "/generation_config.json: its sampling values are not usable (", e.what(),
                "); give the flag to override it");
  }
  if (!a.ignore_eos) {
    go.stop_ids = c.eos_token_ids;
    if (tokenizer_holder)
      if (auto e = tokenizer_holder->eos_id()) go.stop_ids.push_back(*e);
  }
  if (!a.no_stats)
    std::cerr << architecture_name(c.arch) << ", " << c.num_layers << " layers, "
              << model.plan().quant_summary << "; loaded in " << model.load_seconds() << " s; "
              << default_thread_pool().num_threads() << " threads; max-model-len " << model.max_model_len()
              << ", block-size " << model.block_size() << "\n";

  if (by_ids) return run_ids(a, model, go);
  const Tokenizer& tokenizer = *tokenizer_holder;
  ARK_CHECK(tokenizer.vocab_size() <= c.vocab_size, a.model, ": the tokenizer has ", tokenizer.vocab_size(),
            " ids but the model's vocabulary is ", c.vocab_size);
  KvCache cache = model.new_cache();
  std::vector<int32_t> history;  // every token of the conversation; the cache holds all but the last one
  auto turn = [&](const std::vector<int32_t>& ids) -> std::string {
    // Reuse the cached prefix that the new rendering shares with what was already computed.
    size_t keep = std::min<size_t>(common_prefix(history, ids), cache.size());
    if (keep == ids.size()) --keep;  // at least one new token gives the next logits
    cache.truncate(static_cast<int64_t>(keep));
    const std::span<const int32_t> fresh(ids.data() + keep, ids.size() - keep);
    StreamDecoder stream(tokenizer, /*skip_special_tokens=*/true);
    std::string reply;
    const GenerateResult r = generate(model, cache, fresh, go, [&](int32_t id) {
      const std::string piece = stream.put(id);
      reply += piece;
      std::cout << piece << std::flush;
      return true;
    });
    const std::string tail = stream.flush();
    reply += tail;
    std::cout << tail << std::endl;
    history = ids;
    history.insert(history.end(), r.tokens.begin(), r.tokens.end());
    if (!a.no_stats)
      std::fprintf(stderr, "[prompt %lld tokens, %.1f tokens/s; decode %zu tokens, %.2f tokens/s%s]\n",
                   static_cast<long long>(r.prompt_tokens), r.prompt_tokens_per_second(), r.tokens.size(),
                   r.decode_tokens_per_second(), r.stopped ? "; stopped at EOS" : "");
    return reply;
  };

  if (!a.chat) {
    const std::vector<int32_t> ids = tokenizer.encode(a.prompt, true);
    check_generate(cache, static_cast<int64_t>(ids.size()), go);  // refused before the prompt is echoed
    std::cout << a.prompt << std::flush;
    turn(ids);
    return;
  }
  if (!a.prompt.empty() || !a.messages.empty()) {
    turn(tokenizer.encode(tmpl->render(conversation, true, think), false));
    return;
  }
  // Interactive: one user line per turn; an empty line or end of input ends the chat.
  std::cerr << "chat (the checkpoint's template); an empty line ends it\n";
  std::string line;
  while (true) {
    std::cerr << "> " << std::flush;
    if (!std::getline(std::cin, line) || line.empty()) break;
    conversation.push_back({"user", line});
    const std::string reply = turn(tokenizer.encode(tmpl->render(conversation, true, think), false));
    conversation.push_back({"assistant", reply});
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* c =
      app.add_subcommand("generate", "Generate text with a checkpoint directory (streams the text)");
  c->add_option("--model", a->model,
                "checkpoint directory (default: $ARK_DEFAULT_MODEL if set, else the int4 model in "
                "models/ark-brown-14m-int4 of the source tree ark was built from)");
  c->add_option("--prompt", a->prompt, "prompt text (with --chat: the user message)");
  c->add_flag("--chat", a->chat, "apply the chat template; without --prompt, chat on the terminal");
  c->add_option("--system", a->system, "system message (with --chat)");
  c->add_option("--messages", a->messages,
                "JSON file with a conversation [{role, content}, ...] (with --chat)");
  c->add_flag("--no-think", a->no_think, "Qwen3 templates: enable_thinking=false");
  c->add_option("--max-tokens", a->max_tokens, "most tokens to generate")->capture_default_str();
  a->temperature_flag =
      c->add_option("--temperature", a->temperature, "0: greedy (default: generation_config's, else greedy)");
  a->top_k_flag = c->add_option("--top-k", a->top_k, "keep the k most likely tokens (0: off)");
  a->top_p_flag = c->add_option("--top-p", a->top_p, "nucleus sampling mass (1: off)");
  c->add_option("--seed", a->seed, "sampling seed")
      ->capture_default_str()
      ->check([](const std::string& v) {  // the parser would wrap "-1" around to 2^64 - 1
        return v.find('-') == std::string::npos ? std::string() : "must be an integer >= 0 (got " + v + ")";
      });
  c->add_option("--threads", a->threads, "threads (0: all)")->capture_default_str();
  c->add_option("--max-model-len", a->max_model_len,
                "longest sequence (0: max_position_embeddings, capped by memory)")
      ->capture_default_str();
  c->add_option("--block-size", a->block_size, "KV cache block size in tokens")->capture_default_str();
  c->add_option("--mode", a->mode, "quantized compute mode: auto, exact, int8")->capture_default_str();
  c->add_flag("--ignore-eos", a->ignore_eos, "do not stop at EOS ids (benchmarks)");
  c->add_option("--prompt-ids", a->prompt_ids,
                "prompt as comma-separated token ids (no tokenizer; prints ids)");
  c->add_option("--logits-out", a->logits_out,
                "with --prompt-ids: write the prompt's logits (f32 [n][vocab])");
  c->add_option("--ids-out", a->ids_out, "with --prompt-ids: write the generated ids (JSON list)");
  c->add_flag("--print-prompt", a->print_prompt, "print the (rendered) prompt and exit; loads no weights");
  c->add_flag("--no-stats", a->no_stats, "no speed lines on stderr");
  c->callback([a] { run(*a); });
}

}  // namespace ark::tools
