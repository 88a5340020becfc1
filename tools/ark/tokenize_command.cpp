// `ark tokenize`: encode text or decode ids with a checkpoint's Hugging Face tokenizer.
//
//   ark tokenize --tokenizer DIR_OR_FILE --text "Hello"          one line per token: id, tab, token (JSON
//   string) ark tokenize --tokenizer DIR --file F --ids                   the ids of F's whole text as one
//   JSON array ark tokenize --tokenizer DIR --decode "9707,11,1879"          the text of the ids ark tokenize
//   --tokenizer DIR --file F --jsonl [--stream]      F holds one JSON value per line: a string is
//                                                                 encoded (a JSON array of ids comes out), an
//                                                                 array of ids is decoded (a JSON string
//                                                                 comes out)
// --stats prints bytes, tokens and throughput to stderr (encode time only, the tokenizer already loaded).
#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "ark/error.h"
#include "ark/tokenizer.h"
#include "commands.h"

namespace ark::tools {

namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string text;
  std::string file;
  std::string decode;
  bool ids = false;
  bool no_special = false;
  bool skip_special = false;
  bool jsonl = false;
  bool stream = false;
  bool stats = false;
};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ARK_CHECK(in.good(), "--file: cannot open '", path, "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<int64_t> parse_ids(const std::string& list) {
  std::vector<int64_t> ids;
  std::string cleaned = list;
  for (char& c : cleaned) {
    if (c == ',' || c == '[' || c == ']') c = ' ';
  }
  std::istringstream in(cleaned);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    ARK_CHECK(used == word.size() && value >= 0, "--decode: '", word,
              "' is not a token id (expected non-negative integers separated by commas or spaces)");
    ids.push_back(value);
  }
  return ids;
}

// JSON text of a string, ASCII only so that no line separator inside a string can split a JSON Lines file;
// invalid UTF-8 (never from decode, but token strings are arbitrary bytes) becomes U+FFFD.
std::string json_string(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

// `where` names the input in the error for an id the tokenizer does not have (the library's decode skips such
// ids, as the Hugging Face one does, since a model's vocabulary may be padded past the tokenizer's; here they
// are a mistake in what the user typed).
std::string decode_ids(const Tokenizer& tokenizer, const std::vector<int64_t>& ids, const TokenizeOptions& o,
                       const std::string& where) {
  std::vector<int32_t> valid;
  valid.reserve(ids.size());
  for (int64_t id : ids) {
    ARK_CHECK(id >= 0 && id < tokenizer.vocab_size(), where, ": id ", id,
              " is not in the tokenizer's vocabulary (ids 0..", tokenizer.vocab_size() - 1, ")");
    valid.push_back(static_cast<int32_t>(id));
  }
  if (!o.stream) return tokenizer.decode(valid, o.skip_special);
  StreamDecoder stream(tokenizer, o.skip_special);
  std::string text;
  for (int32_t id : valid) text += stream.put(id);
  return text + stream.flush();
}

// CPU time of this thread: on a shared, oversubscribed machine it shows the cost that wall time hides.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void print_stats(size_t bytes, size_t tokens, double seconds, double cpu_seconds) {
  std::cerr << "bytes " << bytes << ", tokens " << tokens << ", encode " << seconds * 1e3 << " ms wall ("
            << (seconds > 0 ? bytes / seconds / 1e6 : 0.0) << " MB/s, "
            << (seconds > 0 ? tokens / seconds : 0.0) << " tokens/s), " << cpu_seconds * 1e3 << " ms cpu ("
            << (cpu_seconds > 0 ? bytes / cpu_seconds / 1e6 : 0.0) << " MB/s)\n";
}

void run_jsonl(const Tokenizer& tokenizer, const TokenizeOptions& o) {
  std::ifstream in(o.file, std::ios::binary);
  ARK_CHECK(in.good(), "--file: cannot open '", o.file, "'");
  std::string line;
  size_t line_no = 0, bytes = 0, tokens = 0;
  double seconds = 0, cpu_seconds = 0;
  std::string out;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw_error("--file '", o.file, "' line ", line_no, ": not JSON: ", e.what());
    }
    if (value.is_string()) {
      const std::string text = value.get<std::string>();
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = thread_cpu_seconds();
      const std::vector<int32_t> ids = tokenizer.encode(text, !o.no_special);
      cpu_seconds += thread_cpu_seconds() - c0;
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      bytes += text.size();
      tokens += ids.size();
      out += nlohmann::json(ids).dump();
    } else if (value.is_array()) {
      std::vector<int64_t> ids;
      for (const auto& v : value) {
        ARK_CHECK(v.is_number_integer(), "--file '", o.file, "' line ", line_no,
                  ": expected an array of ids");
        ids.push_back(v.get<int64_t>());
      }
      out += json_string(
          decode_ids(tokenizer, ids, o, "--file '" + o.file + "' line " + std::to_string(line_no)));
    } else {
      throw_error("--file '", o.file, "' line ", line_no, ": expected a JSON string or an array of ids");
    }
    out += '\n';
  }
  std::cout << out;
  if (o.stats) print_stats(bytes, tokens, seconds, cpu_seconds);
}

void run_tokenize(const TokenizeOptions& o) {
  const Tokenizer tokenizer = Tokenizer::load(o.tokenizer);
  if (!o.decode.empty()) {
    std::cout << decode_ids(tokenizer, parse_ids(o.decode), o, "--decode") << "\n";
    return;
  }
  ARK_CHECK(!o.file.empty() || !o.text.empty() || o.jsonl, "tokenize: give --text, --file or --decode");
  if (o.jsonl) {
    ARK_CHECK(!o.file.empty(), "--jsonl needs --file");
    run_jsonl(tokenizer, o);
    return;
  }
  const std::string text = o.file.empty() ? o.text : read_text_file(o.file);
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = thread_cpu_seconds();
  const std::vector<int32_t> ids = tokenizer.encode(text, !o.no_special);
  const double cpu_seconds = thread_cpu_seconds() - c0;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.ids) {
    std::cout << nlohmann::json(ids).dump() << "\n";
  } else {
    for (int32_t id : ids) std::cout << id << "\t" << json_string(tokenizer.id_to_token(id)) << "\n";
  }
  if (o.stats) print_stats(text.size(), ids.size(), seconds, cpu_seconds);
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* cmd =
      app.add_subcommand("tokenize", "Encode text or decode ids with a Hugging Face tokenizer.json");
  cmd->add_option("--tokenizer", options->tokenizer, "Checkpoint directory or tokenizer.json file")
      ->required();
  auto* text = cmd->add_option("--text", options->text, "Text to encode");
  auto* file =
      cmd->add_option("--file", options->file, "File whose text to encode (or JSON Lines with --jsonl)");
  text->excludes(file);
  cmd->add_flag("--ids", options->ids, "Print only the ids, as one JSON array");
  cmd->add_option("--decode", options->decode, "Ids to decode, separated by commas or spaces")
      ->excludes(text);
  cmd->add_flag("--no-special", options->no_special,
                "Do not add the post-processor's special tokens (BOS/EOS)");
  cmd->add_flag("--skip-special", options->skip_special, "Leave special tokens out of decoded text");
  cmd->add_flag("--jsonl", options->jsonl,
                "--file holds JSON strings to encode / id arrays to decode, one a line");
  cmd->add_flag("--stream", options->stream, "Decode through the streaming decoder, one id at a time");
  cmd->add_flag("--stats", options->stats, "Print bytes, tokens and encode throughput to stderr");
  cmd->callback([options] { run_tokenize(*options); });
}

}  // namespace ark::tools
